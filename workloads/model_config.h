#pragma once
// Transformer model descriptions, with HuggingFace config.json key names.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/toml_reader.h"
#include "workloads/cascade.h"
#include "workloads/quantization.h"

namespace einsim {

enum class NormKind { RMSNorm, LayerNorm };
enum class MlpKind { Gated, Plain };
enum class PositionKind { Rope, Learned, Relative, None };
/// What mixes tokens in a layer: attention, a Mamba (selective state-space) mixer, or nothing
/// (an MLP-only layer of a hybrid).
enum class MixerKind { Attention, Mamba, None };
/// What follows the mixer: a dense MLP, routed experts, or nothing.
enum class FfnKind { Dense, Moe, None };
enum class ScoringKind { Softmax, Sigmoid };

/// One layer's kind. Layers of one kind are built as one group of the cascade (a layer rank
/// of their own); layers exchange only the residual stream, so grouping them does not change
/// what a step costs.
struct LayerKind {
  MixerKind mixer = MixerKind::Attention;
  int64_t window = 0;  ///< sliding window: a token attends to the last this-many tokens (0: all)
  int64_t chunk = 0;   ///< chunked attention: a token attends within its aligned chunk of this many tokens (0: none)
  FfnKind ffn = FfnKind::Dense;
  bool operator==(const LayerKind&) const = default;
  /// "attention + dense", "window 4096 + moe", "chunk 8192 + moe", "mlp".
  std::string name() const;
  /// Tokens this layer's cache holds after `tokens` tokens (0 without attention).
  int64_t cached(int64_t tokens) const;
};

/// A run of layers of one kind, in order of first appearance.
struct LayerGroup {
  LayerKind kind;
  int64_t count = 0;
};

struct ModelConfig {  // new fields: add them to fingerprint()
  std::string name;
  SourceLoc loc;
  std::string model_type;          ///< HF model_type: llama, mistral, mixtral, opt, falcon, gpt2, bert, t5, xlm, transfo-xl
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  ///< = heads (MHA) unless GQA/MQA
  int64_t head_dim = 0;             ///< = hidden_size / heads unless given
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;      ///< BERT token-type embeddings
  std::string hidden_act;           ///< silu, gelu, relu
  bool tie_word_embeddings = false;
  int64_t num_local_experts = 0;    ///< MoE experts per layer (0: dense)
  int64_t num_experts_per_tok = 0;  ///< experts routed per token
  /// FFN width of one routed expert (`moe_intermediate_size`; fine-grained experts); 0: the
  /// dense intermediate_size.
  int64_t moe_intermediate_size = 0;
  /// Total FFN width of the shared experts every token passes through beside the routed ones
  /// (DeepSeek: n_shared_experts x moe_intermediate_size; Qwen2-MoE:
  /// shared_expert_intermediate_size); 0: none.
  int64_t shared_expert_size = 0;
  bool shared_expert_gate = false;  ///< a sigmoid gate scales the shared expert's output (Qwen2-MoE)
  /// Grouped routing (DeepSeek-V3): experts in n_group groups, a token's experts drawn from
  /// its topk_group best groups. 0: ungrouped.
  int64_t n_group = 0, topk_group = 0;
  ScoringKind scoring = ScoringKind::Softmax;  ///< router scores (`scoring_func`)
  bool router_bias = false;          ///< a per-expert bias on the selection scores (e_score_correction_bias; gpt-oss's router bias)
  bool norm_topk_prob = true;        ///< the chosen experts' weights renormalised to sum to one
  double routed_scaling_factor = 1;  ///< the routed experts' sum scaled by this
  /// Skew of routing across experts: a token picks expert i (by popularity rank) with
  /// probability proportional to 1 / i^s (Zipf); 0: uniform. Sets how many distinct experts
  /// a batch reads (distinct_rows()).
  double routing_skew = 0;
  /// Expert parallelism over `ep` devices: the busiest device's share of the (token, expert)
  /// pairs over the mean share (1 with uniform routing). The experts are dealt to the devices
  /// by popularity, round-robin (a balancer's static placement: each device one of every ep
  /// in popularity order); skewed routing still loads the device with the hottest expert most.
  double expert_imbalance(int64_t ep) const;
  /// Per-layer kinds, one per layer, when the layers differ (a config's layer pattern); empty:
  /// every layer attention with `sliding_window`, with experts if the model has them.
  std::vector<LayerKind> layer_kinds;
  /// tanh soft-capping of attention scores and of the final logits (Gemma 2): cap * tanh(x / cap); 0: none.
  double attn_logit_softcapping = 0, final_logit_softcapping = 0;
  /// A learned logit per head joins each softmax's denominator (gpt-oss's attention sinks).
  bool attention_sinks = false;
  /// Multi-head latent attention (DeepSeek-V2/V3): keys and values up-projected from a latent
  /// of kv_lora_rank channels per token (cached with the qk_rope_head_dim RoPE key shared by
  /// the heads); queries through a q_lora_rank bottleneck (0: a plain projection). Each head's
  /// query and key have qk_nope_head_dim + qk_rope_head_dim channels, its value v_head_dim.
  /// 0: ordinary attention.
  int64_t kv_lora_rank = 0, q_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  bool mla() const { return kv_lora_rank > 0; }
  /// Mamba mixers (Gu & Dao 2023): an inner width of ssm_inner channels, each with a state of
  /// ssm_state elements, a causal depthwise conv of ssm_conv taps, a dt projection of rank
  /// ssm_dt_rank. A request's cache per Mamba layer is constant in the context: the conv's last
  /// ssm_conv - 1 inputs and the state.
  int64_t ssm_state = 0, ssm_inner = 0, ssm_conv = 4, ssm_dt_rank = 0;
  bool ssm_conv_bias = true, ssm_proj_bias = false;
  /// Mamba-2 mixers (Dao & Gu 2024, SSD): the inner channels in ssm_heads heads of
  /// ssm_inner / ssm_heads channels, each head with a scalar decay and its own dt; B and C shared
  /// by the heads of each of ssm_groups groups, projected from the layer input with x, z and dt;
  /// the conv over x, B and C; a gated RMSNorm per group before the out projection.
  /// 0 heads: Mamba-1.
  int64_t ssm_heads = 0, ssm_groups = 1;
  bool mamba2() const { return ssm_heads > 0; }
  /// Channels the conv runs over (and caches): x, and for Mamba-2 B and C too.
  int64_t ssm_conv_channels() const { return ssm_inner + (mamba2() ? 2 * ssm_groups * ssm_state : 0); }
  /// Cache bytes of one request in one Mamba layer: the conv's last ssm_conv - 1 inputs and
  /// the state (ssm_inner x ssm_state either way).
  double ssm_state_bytes(DType t) const {
    return static_cast<double>(ssm_conv_channels() * (ssm_conv - 1) + ssm_inner * ssm_state) * dtype_bytes(t);
  }
  bool attention_bias = false;       ///< biases on q, k, v and the output projection
  bool qkv_bias = false;             ///< biases on q, k and v only (Qwen2)
  bool mlp_bias = false;
  DType dtype = DType::BF16;        ///< from torch_dtype
  /// How the checkpoint stores its linear layers (`quantization`; config.json's
  /// quantization_config): weight-only int8/int4 or fp8 with their scales.
  Quantization quant;
  /// Sliding-window attention on every layer (`sliding_window`; Mistral-7B-v0.1): a token
  /// attends to the last this-many tokens and the KV cache keeps only them. 0: none.
  int64_t sliding_window = 0;
  // Architecture switches einsim needs beyond config.json (defaults follow model_type).
  NormKind norm = NormKind::RMSNorm;
  MlpKind mlp = MlpKind::Gated;
  PositionKind position = PositionKind::Rope;
  bool parallel_attn = false;       ///< attention and MLP read the same normed input (Falcon)
  bool qk_norm = false;             ///< RMSNorm over each head's queries and keys before RoPE (Qwen3)
  bool sandwich_norm = false;       ///< a norm after attention and after the MLP too, before each residual add (Gemma 2/3)
  bool encoder_only = false;        ///< bidirectional encoder: no KV cache, no LM head
  /// What reading the config assumed or left out (an unknown model_type built from its keys, a
  /// vision tower beside the text model): shown by the commands, not part of the model.
  std::vector<std::string> notes;

  int64_t kv_heads() const { return num_key_value_heads; }
  int64_t group() const { return num_attention_heads / num_key_value_heads; }
  /// KV-cache bytes per token of one attention layer: K and V of each KV head, or MLA's latent
  /// and RoPE key.
  double kv_bytes_per_layer_token(DType kv) const;
  /// KV-cache bytes per token over all attention layers (K and V), as if each kept it.
  double kv_bytes_per_token(DType kv) const;
  /// Bytes of one request's cache after `tokens` tokens: each attention layer's K and V of the
  /// tokens it keeps (all, or its window's or chunk's), and any constant per-request state.
  double kv_bytes(DType kv, int64_t tokens) const;
  /// Tokens a request's KV cache holds after `tokens`, averaged over the attention layers
  /// (kv_bytes / kv_bytes_per_token): all of them unless windows or chunks cap some layers.
  double kv_tokens(int64_t tokens) const;
  /// Each layer's kind (layer_kinds, or the uniform kind).
  std::vector<LayerKind> layers() const;
  /// The kind of every layer when layer_kinds is empty.
  LayerKind uniform_kind() const;
  /// The sum of `f(kind)` over the layers, without copying them (sweeps ask per point).
  template <typename F>
  int64_t sum_over_layers(F f) const {
    if (layer_kinds.empty()) return num_hidden_layers * static_cast<int64_t>(f(uniform_kind()));
    int64_t n = 0;
    for (const LayerKind& k : layer_kinds) n += static_cast<int64_t>(f(k));
    return n;
  }
  /// Layers of each kind, in order of first appearance (of the first `layers`; 0: all).
  std::vector<LayerGroup> layer_groups(int64_t layers = 0) const;
  /// Layers with attention, with a dense MLP, with experts.
  int64_t attention_layers() const;
  /// Sublayers whose outputs join the residual stream, of the first `layers` (0: all): an
  /// attention and an MLP each, one per layer when they read the same input (parallel_attn).
  /// A tensor-parallel step all-reduces each one's output.
  int64_t sublayers(int64_t layers = 0) const;
  /// The sublayers of one layer of kind `k` (0, 1 or 2).
  int64_t sublayers_of(const LayerKind& k) const;
  int64_t moe_layers() const;
  int64_t dense_layers() const;
  /// Width of a routed expert's FFN.
  int64_t expert_width() const { return moe_intermediate_size > 0 ? moe_intermediate_size : intermediate_size; }
  /// Every field above as text: equal fingerprints build equal cascades (memoisation keys).
  /// A new field must be added here.
  std::string fingerprint() const;
};

/// Reads the [model] table of a TOML document (does not call finish()).
ModelConfig read_model(const ConfigTable& model, const std::string& default_name);
/// Loads a model from a TOML file (with `inherits` and `--set` overrides), a HF config.json or
/// a shipped preset's name.
ModelConfig load_model(const std::string& file_or_preset, const std::vector<std::string>& overrides = {});
/// Parses a HuggingFace config.json text; keys einsim does not model are ignored. `overrides`
/// ("model.KEY=VALUE") replace top-level keys; one the reader does not know is an error.
ModelConfig parse_hf_config_json(const std::string& text, const std::string& name, const std::vector<std::string>& overrides = {});
/// Path of a shipped preset ("llama-3-70b" -> configs/models/llama-3-70b.toml, "h100" ->
/// configs/arch/h100.toml), or the argument itself when it names a file. A bare name that is
/// neither is a UserError naming the closest presets (of `kind`, a configs/ folder, if given).
std::string resolve_model_path(const std::string& name_or_path, const std::string& kind = "");

}  // namespace einsim
