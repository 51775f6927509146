// Quantization as engines store it: scheme parsing, scale bytes, the cascade's types, and what
// a run moves and holds.
#include <catch2/catch.hpp>

#include <cmath>

#include "helpers.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"
#include "workloads/quantization.h"
#include "workloads/transformer.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

Quantization scheme(const std::string& s) {
  std::string why;
  const auto q = parse_quantization(s, &why);
  REQUIRE(q);
  return *q;
}

const Tensor& tensor_of(const Cascade& c, const std::string& name) {
  const int i = c.find_tensor(name);
  REQUIRE(i >= 0);
  return c.tensors[static_cast<size_t>(i)];
}

}  // namespace

TEST_CASE("quantization: schemes and their scale bytes", "[quant]") {
  CHECK_FALSE(scheme("none").active);
  // int8: one bf16 scale per output channel over all 4096 inputs.
  const Quantization i8 = scheme("int8");
  CHECK(i8.weights == DType::INT8);
  CHECK_FALSE(i8.activations);
  CHECK(i8.weight_scale_bytes(4096) == Approx(2.0 / 4096));
  // int4: groups of 128 (or N), a bf16 scale and a bf16 zero point per group.
  CHECK(scheme("int4").weight_scale_bytes(4096) == Approx(4.0 / 128));
  CHECK(scheme("int4-g32").weight_scale_bytes(4096) == Approx(4.0 / 32));
  // A last, shorter group keeps its scale: 100 inputs in groups of 32 are 4 groups.
  CHECK(scheme("int4-g32").weight_scale_bytes(100) == Approx(4.0 * 4 / 100));
  // fp8: an fp32 scale per 128 x 128 block; activations an fp32 scale per 128.
  const Quantization f8 = scheme("fp8");
  CHECK(f8.weights == DType::FP8);
  CHECK(f8.activations == DType::FP8);
  CHECK(f8.weight_scale_bytes(4096) == Approx(4.0 / (128 * 128)));
  CHECK(f8.activation_bytes_per_element() == Approx(4.0 / 128));
  CHECK_FALSE(f8.lm_head);
  for (const char* bad : {"int3", "int4-g0", "int4-g", "int4g32", "int4-g32x", "fp4", ""}) {
    std::string why;
    CHECK_FALSE(parse_quantization(bad, &why));
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("quantization: the cascade stores the linear layers as the scheme says", "[quant]") {
  ModelConfig m = load_model("llama-3-8b");
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.context = 1023;
  m.quant = scheme("int4-g32");
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  for (const char* w : {"WQ", "WK", "WV", "WO", "WG", "WU", "WD", "WLM"}) {
    CAPTURE(w);
    CHECK(tensor_of(c, w).dtype == DType::INT4);
    CHECK(tensor_of(c, w).element_bytes() == Approx(0.5 + 4.0 / 32));
  }
  // Embeddings, norms and activations keep the model's type.
  for (const char* t : {"WE", "N1W", "XN", "H", "Q"}) {
    CAPTURE(t);
    CHECK(tensor_of(c, t).dtype == DType::BF16);
    CHECK(tensor_of(c, t).scale_bytes == 0);
  }
  // fp8: the GEMM inputs are fp8 with their scales, the outputs bf16; the LM head stays bf16.
  m.quant = scheme("fp8");
  const Cascade f = bind_cascade(transformer_cascade(m, ph));
  for (const char* t : {"XN", "XN2", "AV", "H"}) {
    CAPTURE(t);
    CHECK(tensor_of(f, t).dtype == DType::FP8);
    CHECK(tensor_of(f, t).scale_bytes == Approx(4.0 / 128));
  }
  for (const char* t : {"Q", "K", "O", "DN", "WLM", "XF"}) {
    CAPTURE(t);
    CHECK(tensor_of(f, t).dtype == DType::BF16);
  }
  // The scheme is part of the model's fingerprint: cascades of two schemes never share a memo.
  ModelConfig other = m;
  other.quant = scheme("int8");
  CHECK(m.fingerprint() != other.fingerprint());
}

TEST_CASE("quantization: a run moves and holds the stored bytes, scales included", "[quant]") {
  const ModelConfig base = load_model("llama-3-8b");
  const ArchSpec a = load_arch("h100");
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 1023;
  auto weights_of = [&](const std::string& s) {
    ModelConfig m = base;
    m.quant = scheme(s);
    return run_model(m, a, o);
  };
  const RunReport bf16 = weights_of("none"), i8 = weights_of("int8"), i4 = weights_of("int4"), f8 = weights_of("fp8");
  const ParamCounts pc = count_params(base);
  const double embedding = static_cast<double>(base.vocab_size * base.hidden_size);  // WE (and an untied WLM)
  CHECK(bf16.memory[0].weights == Approx(2 * pc.total).epsilon(1e-6));
  // int4 in groups of 128: 0.5 + 4/128 bytes per quantized weight; the embedding stays bf16.
  const double quantized = pc.total - embedding - pc.final_norm - static_cast<double>(base.num_hidden_layers) * pc.per_layer_norm;
  CHECK(i4.memory[0].weights == Approx((0.5 + 4.0 / 128) * quantized + 2 * (pc.total - quantized)).epsilon(1e-3));
  CHECK(i8.memory[0].weights < 0.55 * bf16.memory[0].weights);
  CHECK(f8.memory[0].weights < 0.60 * bf16.memory[0].weights);  // its LM head stays bf16
  // A batch-1 decode step reads its weights: fewer bytes, a shorter step.
  CHECK(i8.step_time < 0.75 * bf16.step_time);
  CHECK(i4.step_time < i8.step_time);
  // Weight-only GEMMs compute in bf16 (a kind of their own); fp8 GEMMs in fp8.
  bool w4 = false, fp8 = false;
  for (const BlockRun& b : i4.blocks) w4 |= b.kind == KernelKind::GemmW4A16;
  for (const BlockRun& b : f8.blocks) fp8 |= b.kind == KernelKind::GemmFp8;
  CHECK(w4);
  CHECK(fp8);
}

TEST_CASE("quantization: a model file and a config.json name their scheme, bad ones are located errors", "[quant][errors]") {
  CHECK(error_of([&] { load_model("llama-3-8b", {"model.quantization=\"int3\""}); }).find("unknown quantization 'int3'") != std::string::npos);
  CHECK(load_model("llama-3-8b", {"model.quantization=\"int4-g64\""}).quant.group == 64);
  const std::string head = R"({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 32,
 "intermediate_size": 11008, "vocab_size": 32000, )";
  const ModelConfig gptq = parse_hf_config_json(head + R"("quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}})", "q.json");
  CHECK(gptq.quant.weights == DType::INT4);
  CHECK(gptq.quant.group == 128);
  CHECK_FALSE(gptq.quant.lm_head);
  const ModelConfig awq = parse_hf_config_json(head + R"("quantization_config": {"quant_method": "awq", "bits": 4, "group_size": -1}})", "q.json");
  CHECK(awq.quant.group == 0);
  CHECK(parse_hf_config_json(head + R"("quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}})", "q.json").quant.weights ==
        DType::FP8);
  const std::string e1 = error_of([&] { parse_hf_config_json(head + R"("quantization_config": {"quant_method": "bitsandbytes"}})", "q.json"); });
  CHECK(e1.find("q.json:2:") != std::string::npos);
  CHECK(e1.find("quant_method 'bitsandbytes'") != std::string::npos);
  CHECK(error_of([&] { parse_hf_config_json(head + R"("quantization_config": {"quant_method": "gptq", "bits": 3}})", "q.json"); })
            .find("3 bits") != std::string::npos);
  CHECK(error_of([&] { parse_hf_config_json(head + R"("quantization_config": 4})", "q.json"); }).find("must be an object") != std::string::npos);
}

TEST_CASE("memory fit: one model of what the devices hold, quantized weights as stored", "[quant][memory]") {
  ModelConfig m = load_model("llama-3-70b");
  const ParamCounts bf16 = count_params(m);
  CHECK(bf16.total_bytes == Approx(2 * bf16.total));
  m.quant = scheme("int4");
  const ParamCounts i4 = count_params(m);
  CHECK(i4.total == bf16.total);  // the same parameters
  CHECK(i4.total_bytes < 0.3 * bf16.total_bytes);
  CHECK(i4.mlp_bytes == Approx(static_cast<double>(m.num_hidden_layers) * i4.per_layer_mlp * (0.5 + 4.0 / 128)));
  // 2 devices of 80 GiB, 2 GiB reserved on each: 141 GB of bf16 weights leave the rest to the cache.
  const double gib = 1ull << 30;
  const MemoryFit two{2, 80 * gib, bf16.total_bytes, 2 * gib};
  CHECK(two.kv_room() == Approx(2 * 78 * gib - bf16.total_bytes));
  CHECK(two.holds(two.kv_room()));
  CHECK_FALSE(two.holds(two.kv_room() + 1));
  // One device: bf16 does not fit (no room at all); int4 does.
  CHECK(MemoryFit{1, 80 * gib, bf16.total_bytes, 2 * gib}.kv_room() == 0);
  CHECK_FALSE(MemoryFit{1, 80 * gib, bf16.total_bytes, 2 * gib}.holds());
  CHECK(MemoryFit{1, 80 * gib, i4.total_bytes, 2 * gib}.holds(10 * gib));
}

TEST_CASE("block-scaled formats: their scales in their bytes, native where an array lists them, else a located error", "[quant][formats]") {
  // OCP MX v1.0: an 8-bit e8m0 scale per 32 elements; NVFP4: an e4m3 byte per 16.
  CHECK(dtype_bytes(DType::MXFP8) == 1 + 1.0 / 32);
  CHECK(dtype_bytes(DType::MXFP6) == 0.75 + 1.0 / 32);
  CHECK(dtype_bytes(DType::MXFP4) == 0.5 + 1.0 / 32);
  CHECK(dtype_bytes(DType::NVFP4) == 0.5 + 1.0 / 16);
  CHECK(block_scaled(DType::NVFP4));
  CHECK_FALSE(block_scaled(DType::FP8));
  for (const char* s : {"mxfp8", "mxfp6", "mxfp4-w4a4", "nvfp4"}) {
    CAPTURE(s);
    const Quantization q = scheme(s);
    CHECK(q.activations == q.weights);  // W8A8, W6A6, W4A4
    CHECK(q.weight_scale_bytes(4096) == 0);
    CHECK_FALSE(q.lm_head);
  }
  CHECK(scheme("mxfp4").weights == DType::MXFP4);
  CHECK_FALSE(scheme("mxfp4").activations);  // gpt-oss: weight-only experts

  const ModelConfig base = load_model("llama-3-8b");
  RunOptions o;
  o.phase.kind = PhaseKind::Prefill;
  o.phase.batch = 1;
  o.phase.context = 2048;
  o.emulate = false;
  auto run_as = [&](const std::string& s, const char* arch) {
    ModelConfig m = base;
    m.quant = scheme(s);
    m.quant.loc = SourceLoc{"--quant"};
    return run_model(m, load_arch(arch), o);
  };
  const ParamCounts pc = count_params(base);
  const double embedding = static_cast<double>(base.vocab_size * base.hidden_size);
  const double projections = pc.total - 2 * embedding - pc.final_norm - static_cast<double>(base.num_hidden_layers) * pc.per_layer_norm;
  // On the B200 every format is native: the projections' bytes as the format stores them (the
  // embedding and the LM head in bf16), the GEMMs scaled narrow kernels, and NVFP4's prefill
  // faster than MXFP8's.
  const RunReport nv = run_as("nvfp4", "b200"), mx8 = run_as("mxfp8", "b200");
  CHECK(nv.memory[0].weights == Approx(0.5625 * projections + 2 * (pc.total - projections)).epsilon(1e-3));
  CHECK(mx8.memory[0].weights == Approx(1.03125 * projections + 2 * (pc.total - projections)).epsilon(1e-3));
  CHECK(nv.emulated.empty());
  bool scaled = false;
  for (const BlockRun& b : nv.blocks) scaled |= b.kind == KernelKind::GemmFp8;
  CHECK(scaled);
  CHECK(nv.step_time < mx8.step_time);
  // gpt-oss's weight-only MXFP4 on the H100: W4A16, nothing emulated.
  ModelConfig oss = load_model("gpt-oss-120b");
  oss.num_hidden_layers = 2;
  o.phase.kind = PhaseKind::Decode;
  const RunReport w4 = run_model(oss, load_arch("h100"), o);
  bool w4a16 = false;
  for (const BlockRun& b : w4.blocks) w4a16 |= b.kind == KernelKind::GemmW4A16;
  CHECK(w4a16);
  CHECK(w4.emulated.empty());
  // No H100 array runs NVFP4, no MI355X array NVIDIA's 16-element scales: errors at the flag,
  // unless emulated (at fp8, the narrowest type the H100 runs, and reported).
  CHECK_THAT(error_of([&] { run_as("nvfp4", "h100"); }),
             Catch::StartsWith("--quant: error: nvfp4 matrix products computed at fp8: no array of H100-SXM5-80GB runs them at nvfp4"));
  CHECK_THAT(error_of([&] { run_as("nvfp4", "mi355x"); }), Catch::StartsWith("--quant: error: nvfp4 matrix products"));
  CHECK(run_as("mxfp4-w4a4", "mi355x").emulated.empty());
  o.emulate = true;
  const RunReport emulated = run_as("nvfp4", "h100");
  REQUIRE(emulated.emulated.size() == 1);
  CHECK(emulated.emulated[0] == "nvfp4 matrix products computed at fp8: no array of H100-SXM5-80GB runs them at nvfp4");
}

TEST_CASE("block-scaled formats: modelopt checkpoints name them, a quantized KV cache is refused at its key", "[quant][formats][errors]") {
  const std::string head = R"({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 32,
 "intermediate_size": 11008, "vocab_size": 32000, )";
  const ModelConfig nv =
      parse_hf_config_json(head + R"("quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": null}})", "q.json");
  CHECK(nv.quant.weights == DType::NVFP4);
  CHECK(nv.quant.loc.file == "q.json");
  CHECK(parse_hf_config_json(head + R"("quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8"}})", "q.json").quant.weights == DType::FP8);
  CHECK_THAT(error_of([&] { parse_hf_config_json(head + R"("quantization_config": {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}})", "q.json"); }),
             Catch::StartsWith("q.json:2:") && Catch::Contains("quant_algo 'W4A8_AWQ': einsim models NVFP4 and FP8"));
  CHECK_THAT(error_of([&] {
               parse_hf_config_json(head + R"("quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}})",
                                    "q.json");
             }),
             Catch::StartsWith("q.json:2:") && Catch::Contains("kv_cache_quant_algo 'FP8'"));
  CHECK_FALSE(load_model("llama-3-8b", {"model.quantization=\"nvfp4\""}).quant.loc.file.empty());
}
