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
  bool attention_bias = false;
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
  bool encoder_only = false;        ///< bidirectional encoder: no KV cache, no LM head

  int64_t kv_heads() const { return num_key_value_heads; }
  int64_t group() const { return num_attention_heads / num_key_value_heads; }
  /// KV-cache bytes per token over all layers (K and V).
  double kv_bytes_per_token(DType kv) const;
  /// Tokens a request's KV cache holds after `tokens` tokens: all of them, or at most the
  /// sliding window.
  int64_t kv_tokens(int64_t tokens) const { return sliding_window > 0 && tokens > sliding_window ? sliding_window : tokens; }
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
