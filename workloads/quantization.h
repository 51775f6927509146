#pragma once
// Quantization as inference engines store it. A scheme says what the linear layers' weights
// are stored in, what their GEMMs read as activations, and how many bytes of scales (and zero
// points) sit beside each weight and activation element:
//   int8       weight-only int8 (W8A16), one bf16 scale per output channel (gpt-fast's int8,
//              TensorRT-LLM's int8 weight-only); activations stay in the model's type and the
//              GEMM dequantizes the weights in its prologue.
//   int4[-gN]  weight-only int4 (W4A16) in groups of N input channels (default 128, as AWQ and
//              GPTQ checkpoints; gpt-fast uses 32), a bf16 scale and a bf16 zero point per
//              group (tinygemm's and gpt-fast's layout: 4 bytes per group).
//   fp8        W8A8 fp8 (e4m3): weights in blocks of 128 x 128 with one fp32 scale each, GEMM
//              inputs quantized per token in groups of 128 channels with an fp32 scale each
//              (DeepSeek-V3's recipe, vLLM's and SGLang's block-fp8 path), a bf16 output.
//   mxfp4      the MoE experts only, in MXFP4 (OCP microscaling: 4-bit e2m1 elements, one 8-bit
//              e8m0 scale per 32; gpt-oss's checkpoints); attention, routers and embeddings stay
//              in the model's type. Stored at 4 bits (the int4 width: einsim has no fp4 type, and
//              only the width enters the cost), dequantized in the GEMM prologue on GPUs
//              without fp4 arithmetic (W4A16).
//   none       the model's own type.
// A scheme quantizes the projections of attention and the MLP (experts included) and, unless
// `lm_head` is off, the LM head; embeddings, norms and biases stay in the model's type.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "workloads/cascade.h"

namespace einsim {

struct Quantization {
  std::string name = "none";
  bool active = false;          ///< false: everything in the model's type
  DType weights = DType::BF16;  ///< storage type of quantized weights
  /// GEMM inputs: empty for weight-only schemes (the model's type), fp8 for fp8.
  std::optional<DType> activations;
  int64_t group = 0;             ///< input channels per weight scale (0: all of them, one per output channel)
  int64_t block_out = 1;         ///< output channels per weight scale (fp8's blocks: 128)
  double scale_bytes = 2;        ///< bytes of one scale (bf16 2, fp32 4)
  bool zero_point = false;       ///< a zero point of scale_bytes beside each scale
  int64_t activation_group = 0;  ///< elements per activation scale (0: none)
  double activation_scale_bytes = 4;
  bool lm_head = true;           ///< the LM head is quantized too
  bool experts_only = false;     ///< only routed experts' weights are quantized (mxfp4)

  /// Scale bytes per weight element of a matrix that contracts `inputs` input channels.
  double weight_scale_bytes(int64_t inputs) const;
  /// Scale bytes per element of a quantized GEMM input.
  double activation_bytes_per_element() const;
  /// Every field, as text (a memoisation key).
  std::string key() const;
};

/// Parses a scheme: none, int8, int4, int4-gN (N >= 1), fp8, mxfp4. `why` says what is wrong.
std::optional<Quantization> parse_quantization(std::string_view spec, std::string* why = nullptr);
/// The scheme names, for help texts.
const std::vector<std::string>& quantization_names();

}  // namespace einsim
