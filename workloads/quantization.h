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
//              in the model's type. Weight-only (W4A16): dequantized in the GEMM prologue.
//   mxfp8      W8A8 MXFP8 (e4m3 in blocks of 32 with an e8m0 scale, weights and GEMM inputs),
//              the OCP MX recipe Blackwell and CDNA 4 tensor cores run natively.
//   mxfp6      W6A6 MXFP6 (e2m3, blocks of 32).
//   mxfp4-w4a4 every projection W4A4 in MXFP4 (AMD Quark's MXFP4 checkpoints for CDNA 4).
//   nvfp4      W4A4 NVFP4 (e2m1 in blocks of 16 with an e4m3 scale; TensorRT Model Optimizer's
//              NVFP4 checkpoints, quant_method "modelopt").
// The block-scaled formats carry their scales in their element size (workloads/cascade.h), and
// keep the LM head in the model's type, as their checkpoints do. On hardware whose arrays do
// not list the format, their matrix products are an error unless emulated (run --emulate).
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
  SourceLoc loc;                 ///< where the scheme was chosen (a model file's key, --quant)

  /// Scale bytes per weight element of a matrix that contracts `inputs` input channels.
  double weight_scale_bytes(int64_t inputs) const;
  /// Scale bytes per element of a quantized GEMM input.
  double activation_bytes_per_element() const;
  /// Every field, as text (a memoisation key).
  std::string key() const;
};

/// Parses a scheme: none, int8, int4, int4-gN (N >= 1), fp8, mxfp4, mxfp8, mxfp6, mxfp4-w4a4, nvfp4. `why` says what is wrong.
std::optional<Quantization> parse_quantization(std::string_view spec, std::string* why = nullptr);
/// The scheme names, for help texts.
const std::vector<std::string>& quantization_names();

}  // namespace einsim
