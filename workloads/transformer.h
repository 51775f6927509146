#pragma once
// Builds the Einsum cascade of a whole transformer for one phase of inference.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "workloads/cascade.h"
#include "workloads/model_config.h"

namespace einsim {

enum class PhaseKind { Prefill, Decode };
enum class AttentionKind {
  ThreePass,  ///< Cascade 4 (FuseMax §III): max, exp, sum, divide, each a pass over M
  OnePass,    ///< Cascade 5: running max and sum over blocks of M0 keys (FlashAttention-2)
};

/// One step of inference.
struct Phase {
  PhaseKind kind = PhaseKind::Prefill;
  int64_t batch = 1;
  int64_t prompt = 1;   ///< prefill: tokens per request
  int64_t context = 0;  ///< tokens already in the KV cache: decode's context; prefill: before this prompt (a chunk)
  /// Prefill of a decoder: each token attends to the keys at or before it, and fused (1-pass)
  /// attention skips the masked key blocks as FlashAttention does. Encoders never are.
  bool causal = true;
  AttentionKind attention = AttentionKind::OnePass;
  int64_t block = 256;  ///< M0 of the 1-pass cascade (keys per block)
  int64_t layers = 0;   ///< build only this many layers (0: all)
  /// Element type of the KV cache when it differs from the model's (a quantized cache:
  /// int8, fp8, int4); attention still computes in the model's type.
  std::optional<DType> kv_dtype;
  /// Decode: key channels kept per head in the KV cache (ThinK-style pruning; even under
  /// RoPE, half per rotary half); 0 keeps all. The query is gathered to the kept channels.
  int64_t key_channels = 0;
  /// Decode: beside softmax attention over the cached tokens (a short window), linear
  /// attention with a Taylor feature map of this dimension over a fixed-size state per KV
  /// head (BASED); 0: none.
  int64_t linear_features = 0;
  /// Decode, dense MLPs: FFN neurons computed per token (activation sparsity, LLM in a
  /// flash): the up (and gate) columns and down rows of the active neurons are gathered
  /// (which ones is data: the index ACT); 0 computes all.
  int64_t ffn_active = 0;
  /// Decode: rank of a low-rank predictor of the active neurons run before each MLP
  /// (XN -> rank -> intermediate scores, LLM in a flash); 0: none.
  int64_t predictor_rank = 0;
  /// Multi-head latent attention in its absorbed form (the key and value up-projections folded
  /// into the query and the output: attention over the cached latent, as engines decode) or
  /// naive (keys and values up-projected, as engines prefill). Unset: absorbed for decode.
  std::optional<bool> mla_absorbed;
  /// Expert parallelism: the model's experts split over this many devices, each holding
  /// num_local_experts / expert_parallel of them at full width. This device's experts compute
  /// the (token, expert) pairs routed to them from `expert_tokens` tokens of all devices
  /// (dispatched to it and their results combined back by all-to-alls, or gathered by the
  /// tensor-parallel group); 1: each device computes its own tokens' experts.
  int64_t expert_parallel = 1;
  int64_t expert_tokens = 0;

  /// Every field, as text: two phases build the same cascade (of one model) exactly when
  /// their keys are equal. A field added above must be added here.
  std::string key() const;
};

/// The cascade of `m` for `ph`: embeddings, per layer norm, QKV projections (GQA/MQA),
/// RoPE, attention, output projection, residuals, MLP (gated or plain) or MoE experts,
/// final norm and LM head (last position only). Decode reads K and V from cache tensors of
/// context+1 tokens (padded to whole blocks for the 1-pass cascade, as FlashAttention
/// computes the last block whole). Prefill attends over its prompt, and over `context` cached
/// tokens before it (a chunk; read from the cache as decode does); in a decoder the 1-pass
/// cascade's work is causal (causal_attention_work()); the 3-pass one computes the whole score
/// matrix and masks it, as unfused PyTorch does.
CascadeSpec transformer_cascade(const ModelConfig& m, const Phase& ph);

/// The share of a prefill's (query tile, key block) pairs causal attention computes: P queries
/// after `prefix` cached tokens, tiles of `tile` queries and keys (FlashAttention's: 128), a
/// partially masked pair computed whole, a fully masked one skipped; with a sliding `window`
/// (> 0), keys more than window - 1 positions back are masked too (a band); with chunked
/// attention (`chunk` > 0; the first cached key starts a chunk), keys before the query's chunk.
double causal_attention_work(int64_t prefix, int64_t prompt, int64_t tile = 128, int64_t window = 0, int64_t chunk = 0);

/// Parameter counts derived from the weight tensors of the cascade.
struct ParamCounts {
  double total = 0;
  double active = 0;      ///< per token: MoE models count num_experts_per_tok of num_local_experts
  double embedding = 0;   ///< token, position and type embeddings, and an untied LM head
  double per_layer_attention = 0;
  double per_layer_mlp = 0;  ///< MLP or all experts (and router)
  double per_layer_norm = 0;
  double final_norm = 0;
  /// Bytes as stored (the model's type; a quantization scheme's types and scales): the one
  /// source of weight bytes for memory fits, analyses and sweeps.
  double total_bytes = 0;
  double active_bytes = 0;     ///< read per token (routed experts only)
  double embedding_bytes = 0;
  double mlp_bytes = 0;        ///< every layer's MLP or experts (and router)
  double expert_bytes = 0;     ///< every layer's experts
  /// Parameters of each group of layers of one kind (ModelConfig::layer_groups), all its layers.
  std::vector<double> per_group;
};
ParamCounts count_params(const ModelConfig& m);

/// Component of an Einsum of a transformer cascade, by the tensor it writes (`tensor`):
/// embedding, norm, attention, out-proj, mlp, residual, lm-head.
std::string model_component(const Einsum& e, const std::string& tensor);

/// A transformer cascade's tensor or rank name without its layer group's suffix ("WQ_2" ->
/// "WQ"): the layers of one kind are one group, the first unsuffixed.
std::string_view base_name(std::string_view name);
/// The layer group of a rank or tensor name of a transformer cascade (its suffix: "WQ_2" -> 2,
/// "WQ" -> 0).
size_t group_of(std::string_view name);

}  // namespace einsim
