#include "workloads/quantization.h"

#include <fmt/format.h>

#include <charconv>

namespace einsim {

double Quantization::weight_scale_bytes(int64_t inputs) const {
  if (!active || inputs < 1) return 0;
  const double per_scale = scale_bytes * (zero_point ? 2 : 1);
  // A last group shorter than the rest still has its scale.
  const int64_t g = group > 0 && group < inputs ? group : inputs;
  const int64_t groups = (inputs + g - 1) / g;
  return per_scale * static_cast<double>(groups) / (static_cast<double>(inputs) * static_cast<double>(block_out));
}

double Quantization::activation_bytes_per_element() const {
  return active && activation_group > 0 ? activation_scale_bytes / static_cast<double>(activation_group) : 0;
}

std::string Quantization::key() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", name, active, static_cast<int>(weights), activations ? static_cast<int>(*activations) : -1,
                     group, block_out, scale_bytes, zero_point, activation_group, activation_scale_bytes, lm_head, experts_only);
}

const std::vector<std::string>& quantization_names() {
  static const std::vector<std::string> n = {"none", "int8", "int4", "int4-gN", "fp8", "mxfp4", "mxfp8", "mxfp6", "mxfp4-w4a4", "nvfp4"};
  return n;
}

std::optional<Quantization> parse_quantization(std::string_view spec, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<Quantization> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  Quantization q;
  q.name = std::string(spec);
  if (spec == "none") return q;
  q.active = true;
  if (spec == "int8") {
    q.weights = DType::INT8;  // per output channel, bf16 scales
    return q;
  }
  if (spec == "fp8") {
    q.weights = DType::FP8;
    q.activations = DType::FP8;
    q.group = 128, q.block_out = 128, q.scale_bytes = 4;
    q.activation_group = 128, q.activation_scale_bytes = 4;
    q.lm_head = false;  // the engines' fp8 paths keep the LM head in bf16
    return q;
  }
  // Block-scaled formats: the scales are in the element type's bytes.
  auto block = [&](DType weights, std::optional<DType> activations) {
    q.weights = weights;
    q.activations = activations;
    q.scale_bytes = 0;
    q.lm_head = false;
    return q;
  };
  if (spec == "mxfp4") {
    q.experts_only = true;
    return block(DType::MXFP4, std::nullopt);
  }
  if (spec == "mxfp8") return block(DType::MXFP8, DType::MXFP8);
  if (spec == "mxfp6") return block(DType::MXFP6, DType::MXFP6);
  if (spec == "mxfp4-w4a4") return block(DType::MXFP4, DType::MXFP4);
  if (spec == "nvfp4") return block(DType::NVFP4, DType::NVFP4);
  if (spec.starts_with("int4")) {
    q.weights = DType::INT4;
    q.group = 128;
    q.zero_point = true;
    std::string_view rest = spec.substr(4);
    if (rest.empty()) return q;
    if (!rest.starts_with("-g")) return fail(fmt::format("'{}': a group size is written int4-gN (int4-g32)", spec));
    rest.remove_prefix(2);
    int64_t g = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), g);
    if (ec != std::errc{} || end != rest.data() + rest.size() || g < 1)
      return fail(fmt::format("'{}': the group size must be a positive integer (int4-g32)", spec));
    q.group = g;
    return q;
  }
  return fail(fmt::format("unknown quantization '{}' (known: {})", spec, fmt::join(quantization_names(), ", ")));
}

}  // namespace einsim
