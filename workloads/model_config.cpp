#include "workloads/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/paths.h"
#include "workloads/cascade.h"

namespace einsim {
namespace fs = std::filesystem;

std::string LayerKind::name() const {
  std::string s = mixer == MixerKind::None    ? ""
                  : mixer == MixerKind::Mamba ? "mamba"
                  : window > 0                ? fmt::format("window {}", window)
                  : chunk > 0                 ? fmt::format("chunk {}", chunk)
                                              : "attention";
  const char* f = ffn == FfnKind::Dense ? "dense" : ffn == FfnKind::Moe ? "moe" : "";
  if (s.empty()) return ffn == FfnKind::Dense ? "mlp" : ffn == FfnKind::Moe ? "moe only" : "empty";
  return *f ? s + " + " + f : s;
}

int64_t LayerKind::cached(int64_t tokens) const {
  if (mixer != MixerKind::Attention || tokens <= 0) return 0;
  if (window > 0) return std::min(tokens, window);
  if (chunk > 0) return (tokens - 1) % chunk + 1;  // the tokens of the current chunk
  return tokens;
}

LayerKind ModelConfig::uniform_kind() const {
  LayerKind k;
  k.window = sliding_window;
  k.ffn = num_local_experts > 0 ? FfnKind::Moe : FfnKind::Dense;
  return k;
}

std::vector<LayerKind> ModelConfig::layers() const {
  if (!layer_kinds.empty()) return layer_kinds;
  return std::vector<LayerKind>(static_cast<size_t>(num_hidden_layers), uniform_kind());
}

std::vector<LayerGroup> ModelConfig::layer_groups(int64_t first) const {
  std::vector<LayerGroup> g;
  const std::vector<LayerKind> all = layers();
  const size_t n = first > 0 ? std::min(all.size(), static_cast<size_t>(first)) : all.size();
  for (size_t i = 0; i < n; ++i) {
    auto it = std::find_if(g.begin(), g.end(), [&](const LayerGroup& x) { return x.kind == all[i]; });
    if (it == g.end()) g.push_back(LayerGroup{all[i], 1});
    else ++it->count;
  }
  return g;
}

int64_t ModelConfig::attention_layers() const {
  return sum_over_layers([](const LayerKind& k) { return k.mixer == MixerKind::Attention; });
}
int64_t ModelConfig::sublayers_of(const LayerKind& k) const {
  const int64_t parts = (k.mixer != MixerKind::None) + (k.ffn != FfnKind::None);
  return parallel_attn && parts == 2 ? 1 : parts;
}
int64_t ModelConfig::sublayers(int64_t first) const {
  int64_t n = 0;
  for (const LayerGroup& g : layer_groups(first)) n += g.count * sublayers_of(g.kind);
  return n;
}
int64_t ModelConfig::moe_layers() const {
  return sum_over_layers([](const LayerKind& k) { return k.ffn == FfnKind::Moe; });
}
int64_t ModelConfig::dense_layers() const {
  return sum_over_layers([](const LayerKind& k) { return k.ffn == FfnKind::Dense; });
}

double ModelConfig::expert_imbalance(int64_t ep) const {
  if (ep <= 1 || routing_skew <= 0 || num_local_experts <= 0) return 1;
  const std::vector<double>& p =
      routing_probabilities(static_cast<double>(num_local_experts), static_cast<double>(num_experts_per_tok), routing_skew);
  std::vector<double> load(static_cast<size_t>(ep), 0.0);
  for (size_t i = 0; i < p.size(); ++i) load[i % static_cast<size_t>(ep)] += p[i];
  const double mean = static_cast<double>(num_experts_per_tok) / static_cast<double>(ep);
  return *std::max_element(load.begin(), load.end()) / mean;
}

double ModelConfig::kv_bytes_per_layer_token(DType kv) const {
  if (encoder_only) return 0;
  if (mla()) return static_cast<double>(kv_lora_rank + qk_rope_head_dim) * dtype_bytes(kv);
  return 2.0 * static_cast<double>(num_key_value_heads * head_dim) * dtype_bytes(kv);
}

double ModelConfig::kv_bytes_per_token(DType kv) const { return static_cast<double>(attention_layers()) * kv_bytes_per_layer_token(kv); }

double ModelConfig::kv_bytes(DType kv, int64_t tokens) const {
  if (encoder_only) return 0;
  const int64_t cached = sum_over_layers([&](const LayerKind& k) { return k.cached(tokens); });
  const int64_t ssm = sum_over_layers([](const LayerKind& k) { return k.mixer == MixerKind::Mamba; });
  return static_cast<double>(cached) * kv_bytes_per_layer_token(kv) + static_cast<double>(ssm) * ssm_state_bytes(kv);
}

double ModelConfig::kv_tokens(int64_t tokens) const {
  const int64_t layers_with = attention_layers();
  if (layers_with == 0) return 0;
  const int64_t cached = sum_over_layers([&](const LayerKind& k) { return k.cached(tokens); });
  return static_cast<double>(cached) / static_cast<double>(layers_with);
}

std::string ModelConfig::fingerprint() const {
  std::string kinds;
  for (const LayerKind& k : layer_kinds) kinds += fmt::format("{}.{}.{}.{},", static_cast<int>(k.mixer), k.window, k.chunk, static_cast<int>(k.ffn));
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", quant.key(), sliding_window, name, model_type,
                     hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size, vocab_size,
                     max_position_embeddings, type_vocab_size, hidden_act, tie_word_embeddings, num_local_experts, num_experts_per_tok,
                     attention_bias, mlp_bias, dtype_name(dtype), static_cast<int>(norm), static_cast<int>(mlp), static_cast<int>(position),
                     parallel_attn, encoder_only, qk_norm) +
         fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", moe_intermediate_size, shared_expert_size, shared_expert_gate, n_group, topk_group,
                     static_cast<int>(scoring), router_bias, norm_topk_prob, routed_scaling_factor, routing_skew, kinds, attn_logit_softcapping,
                     final_logit_softcapping, attention_sinks) +
         fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", sandwich_norm, kv_lora_rank, q_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim,
                     ssm_state, ssm_inner, ssm_conv, ssm_dt_rank, ssm_conv_bias, ssm_proj_bias) +
         fmt::format("|{}|{}|{}", ssm_heads, ssm_groups, qkv_bias);
}

namespace {

// Family defaults, from each family's HF modeling code (modeling_<type>.py).
void apply_family_defaults(ModelConfig& m) {
  const std::string& t = m.model_type;
  if (t == "llama" || t == "mistral" || t == "mixtral" || t == "qwen2" || t == "qwen2_moe" || t == "qwen3" || t == "qwen3_moe" || t == "phi3" ||
      t == "gpt_oss" || t == "deepseek_v2" || t == "deepseek_v3" || t == "llama4_text") {
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Gated, m.position = PositionKind::Rope;
    m.qk_norm = t == "qwen3" || t == "qwen3_moe";  // modeling_qwen3(_moe).py: q_norm and k_norm over head_dim
    m.qkv_bias = t == "qwen2" || t == "qwen2_moe";  // modeling_qwen2(_moe).py: q, k and v biased, o not
    // modeling_gpt_oss.py: biased attention projections, a biased router, biased experts and a
    // learned sink logit per head in every softmax.
    if (t == "gpt_oss") m.attention_bias = m.mlp_bias = m.router_bias = m.attention_sinks = true;
    if (m.hidden_act.empty()) m.hidden_act = "silu";
  } else if (t == "mamba" || t == "mamba2" || t == "jamba") {
    // modeling_mamba.py / modeling_mamba2.py / modeling_jamba.py: RMSNorm, no position encoding
    // (the mixers and the conv order the tokens), Jamba's MLPs gated.
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Gated, m.position = PositionKind::None;
    if (m.hidden_act.empty()) m.hidden_act = "silu";
  } else if (t == "nemotron_h") {
    // modeling_nemotron_h.py: RMSNorm; attention layers without position encoding; MLP layers
    // an up and a down projection with squared ReLU between.
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::None;
    if (m.hidden_act.empty()) m.hidden_act = "relu2";
  } else if (t == "gemma2" || t == "gemma3_text") {
    // modeling_gemma2/3.py: RMSNorm before and after attention and the MLP, gated GELU (tanh),
    // QK-norm in Gemma 3.
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Gated, m.position = PositionKind::Rope, m.sandwich_norm = true;
    m.qk_norm = t == "gemma3_text";
    if (m.hidden_act.empty()) m.hidden_act = "gelu";
  } else if (t == "opt") {
    m.norm = NormKind::LayerNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Learned;
    m.attention_bias = m.mlp_bias = true;
    if (m.hidden_act.empty()) m.hidden_act = "relu";
  } else if (t == "falcon") {
    m.norm = NormKind::LayerNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Rope, m.parallel_attn = true;
    if (m.hidden_act.empty()) m.hidden_act = "gelu";
  } else if (t == "gpt2") {
    m.norm = NormKind::LayerNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Learned;
    m.attention_bias = m.mlp_bias = true;
    if (m.hidden_act.empty()) m.hidden_act = "gelu";
  } else if (t == "bert" || t == "xlm") {
    m.norm = NormKind::LayerNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Learned, m.encoder_only = true;
    m.attention_bias = m.mlp_bias = true;
    if (m.hidden_act.empty()) m.hidden_act = "gelu";
  } else if (t == "t5") {
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Relative, m.encoder_only = true;
    if (m.hidden_act.empty()) m.hidden_act = "relu";
  } else if (t == "transfo-xl") {
    m.norm = NormKind::LayerNorm, m.mlp = MlpKind::Plain, m.position = PositionKind::Relative;
    m.attention_bias = m.mlp_bias = true;
    if (m.hidden_act.empty()) m.hidden_act = "relu";
  }
}

const std::vector<std::string> kModelTypes = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "gemma3_text",
                                              "gpt_oss", "phi3", "deepseek_v2", "deepseek_v3", "llama4_text", "mamba", "mamba2", "jamba", "nemotron_h", "opt",
                                              "falcon", "gpt2",
                                              "bert", "xlm", "t5", "transfo-xl"};
const std::vector<std::string> kActs = {"silu", "gelu", "relu", "relu2"};

std::string normalize_act(std::string a) {
  // HF spells GELU variants several ways; einsim costs them alike.
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return "gelu";
  if (a == "swish") return "silu";
  return a;
}

// Keys that shape the per-layer pattern, as a config gives them (0 / empty: absent), each
// with where it was given.
struct PatternKeys {
  std::vector<std::string> layer_types;  ///< full_attention, sliding_attention, chunked_attention
  int64_t first_k_dense_replace = 0;     ///< DeepSeek: the first k layers dense
  int64_t moe_layer_freq = 0;            ///< DeepSeek: layer i >= k is MoE when i % freq == 0
  int64_t decoder_sparse_step = 0;       ///< Qwen-MoE: layer i is MoE when (i + 1) % step == 0
  std::vector<int64_t> mlp_only_layers;  ///< Qwen-MoE: these layers dense
  std::optional<std::vector<int64_t>> moe_layers;  ///< Llama 4: the MoE layers
  int64_t interleave_moe_layer_step = 0;  ///< Llama 4: layer i is MoE when (i + 1) % step == 0
  int64_t sliding_window_pattern = 0;    ///< Gemma 3: layer i global when (i + 1) % n == 0, else windowed
  bool alternate_windows = false;        ///< Gemma 2: even layers windowed, odd global
  int64_t max_window_layers = -1;        ///< Qwen2: layers from this one on windowed
  int64_t attention_chunk_size = 0;      ///< Llama 4: chunked attention on RoPE layers
  std::vector<int64_t> no_rope_layers;   ///< Llama 4: 1 on a RoPE (chunked) layer, 0 on a global NoPE one
  int64_t attn_layer_period = 0, attn_layer_offset = 0;      ///< Jamba: attention where i % period == offset, Mamba elsewhere
  int64_t expert_layer_period = 0, expert_layer_offset = 0;  ///< Jamba: MoE where i % period == offset
  bool all_mamba = false;                ///< Mamba: every layer a Mamba mixer without an MLP
  /// Nemotron-H: one character per layer, each layer one block: 'M' a Mamba mixer, '*'
  /// attention, '-' an MLP, 'E' experts (`hybrid_override_pattern`; `layers_block_type`'s
  /// mamba, attention, mlp and moe spell the same).
  std::string hybrid;
  std::map<std::string, SourceLoc> at;   ///< where each given key is
  bool any() const {
    return !layer_types.empty() || first_k_dense_replace > 0 || moe_layer_freq > 1 || decoder_sparse_step > 1 || !mlp_only_layers.empty() ||
           moe_layers || interleave_moe_layer_step > 1 || sliding_window_pattern > 0 || alternate_windows || max_window_layers >= 0 ||
           attention_chunk_size > 0 || attn_layer_period > 0 || expert_layer_period > 0 || all_mamba || !hybrid.empty();
  }
  SourceLoc loc(const std::string& key, const SourceLoc& fallback) const {
    auto it = at.find(key);
    return it == at.end() ? fallback : it->second;
  }
};

// Each layer's kind from the pattern keys; empty when every layer is alike.
void apply_pattern(ModelConfig& m, const PatternKeys& p, const SourceLoc& loc) {
  if (!p.any()) return;
  const int64_t L = m.num_hidden_layers;
  auto in_range = [&](const std::vector<int64_t>& v, const std::string& key) {
    for (int64_t i : v)
      if (i < 0 || i >= L) throw UserError(p.loc(key, loc), fmt::format("'{}' names layer {}; '{}' has layers 0 to {}", key, i, m.name, L - 1));
  };
  in_range(p.mlp_only_layers, "mlp_only_layers");
  if (p.moe_layers) in_range(*p.moe_layers, "moe_layers");
  if (!p.layer_types.empty() && static_cast<int64_t>(p.layer_types.size()) != L)
    throw UserError(p.loc("layer_types", loc), fmt::format("'layer_types' lists {} layers; the model has {} (num_hidden_layers)", p.layer_types.size(), L));
  if (!p.hybrid.empty() && static_cast<int64_t>(p.hybrid.size()) != L)
    throw UserError(p.loc("hybrid_override_pattern", loc),
                    fmt::format("'hybrid_override_pattern' has {} layers; the model has {} (num_hidden_layers)", p.hybrid.size(), L));
  if (!p.no_rope_layers.empty() && static_cast<int64_t>(p.no_rope_layers.size()) != L)
    throw UserError(p.loc("no_rope_layers", loc), fmt::format("'no_rope_layers' lists {} layers; the model has {} (num_hidden_layers)", p.no_rope_layers.size(), L));
  const bool windowed_keys = p.sliding_window_pattern > 0 || p.alternate_windows || p.max_window_layers >= 0 ||
                             std::find(p.layer_types.begin(), p.layer_types.end(), "sliding_attention") != p.layer_types.end();
  if (windowed_keys && m.sliding_window <= 0)
    throw UserError(p.loc("layer_types", loc), "windowed layers need 'sliding_window' (the window, in tokens)");
  std::vector<LayerKind> kinds(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) {
    LayerKind& k = kinds[static_cast<size_t>(i)];
    // Attention: global, windowed or chunked.
    bool windowed = m.sliding_window > 0 && !windowed_keys;  // a window with no pattern: every layer
    if (p.sliding_window_pattern > 0) windowed = (i + 1) % p.sliding_window_pattern != 0;
    if (p.alternate_windows) windowed = i % 2 == 0;
    if (p.max_window_layers >= 0) windowed = i >= p.max_window_layers;
    bool chunked = p.attention_chunk_size > 0 && (p.no_rope_layers.empty() || p.no_rope_layers[static_cast<size_t>(i)] != 0);
    if (!p.layer_types.empty()) {
      const std::string& t = p.layer_types[static_cast<size_t>(i)];
      if (t != "full_attention" && t != "sliding_attention" && t != "chunked_attention" && t != "mamba")
        throw UserError(p.loc("layer_types", loc),
                        fmt::format("layer {} is '{}': einsim knows full_attention, sliding_attention, chunked_attention and mamba", i, t));
      windowed = t == "sliding_attention";
      chunked = t == "chunked_attention";
      if (chunked && p.attention_chunk_size <= 0)
        throw UserError(p.loc("layer_types", loc), "chunked_attention layers need 'attention_chunk_size'");
    }
    if (windowed) k.window = m.sliding_window;
    else if (chunked) k.chunk = p.attention_chunk_size;
    if (p.all_mamba || (p.attn_layer_period > 0 && i % p.attn_layer_period != p.attn_layer_offset)) k = LayerKind{MixerKind::Mamba, 0, 0, FfnKind::Dense};
    if (!p.layer_types.empty() && p.layer_types[static_cast<size_t>(i)] == "mamba") k = LayerKind{MixerKind::Mamba, 0, 0, FfnKind::Dense};
    // Feed-forward: dense or experts.
    bool moe = m.num_local_experts > 0;
    if (moe && p.first_k_dense_replace > 0) moe = i >= p.first_k_dense_replace;
    if (moe && p.moe_layer_freq > 1) moe = i % p.moe_layer_freq == 0;
    if (moe && p.decoder_sparse_step > 1) moe = (i + 1) % p.decoder_sparse_step == 0;
    if (moe && p.interleave_moe_layer_step > 1) moe = (i + 1) % p.interleave_moe_layer_step == 0;
    if (moe && p.moe_layers) moe = std::find(p.moe_layers->begin(), p.moe_layers->end(), i) != p.moe_layers->end();
    if (std::find(p.mlp_only_layers.begin(), p.mlp_only_layers.end(), i) != p.mlp_only_layers.end()) moe = false;
    if (moe && p.expert_layer_period > 0) moe = i % p.expert_layer_period == p.expert_layer_offset;
    k.ffn = p.all_mamba ? FfnKind::None : moe ? FfnKind::Moe : FfnKind::Dense;
    if (!p.hybrid.empty()) {
      const char c = p.hybrid[static_cast<size_t>(i)];
      if (c == 'E' && m.num_local_experts == 0)
        throw UserError(p.loc("hybrid_override_pattern", loc), fmt::format("layer {} is 'E' (experts) but the model has none (n_routed_experts)", i));
      if (c == 'M') k = LayerKind{MixerKind::Mamba, 0, 0, FfnKind::None};
      else if (c == '*') k.ffn = FfnKind::None;
      else if (c == '-') k = LayerKind{MixerKind::None, 0, 0, FfnKind::Dense};
      else if (c == 'E') k = LayerKind{MixerKind::None, 0, 0, FfnKind::Moe};
      else
        throw UserError(p.loc("hybrid_override_pattern", loc),
                        fmt::format("layer {} is '{}': einsim knows M (Mamba), * (attention), - (MLP) and E (experts)", i, c));
    }
  }
  m.layer_kinds = std::move(kinds);
  // A pattern that makes every layer alike is no pattern (the same cascade, the same key).
  if (std::all_of(m.layer_kinds.begin(), m.layer_kinds.end(), [&](const LayerKind& k) { return k == m.layer_kinds[0]; }) &&
      m.layer_kinds[0].mixer == MixerKind::Attention && m.layer_kinds[0].window == m.sliding_window && m.layer_kinds[0].chunk == 0 &&
      (m.layer_kinds[0].ffn == FfnKind::Moe) == (m.num_local_experts > 0))
    m.layer_kinds.clear();
}

void finish_model(ModelConfig& m, const SourceLoc& loc, const PatternKeys& pattern = {}) {
  const bool ssm = pattern.all_mamba || pattern.attn_layer_period > 0 || pattern.hybrid.find('M') != std::string::npos ||
                   std::find(pattern.layer_types.begin(), pattern.layer_types.end(), "mamba") != pattern.layer_types.end();
  if (ssm) {
    if (m.ssm_state < 1 || m.ssm_inner < 1 || m.ssm_conv < 2 || (!m.mamba2() && m.ssm_dt_rank < 1))
      throw UserError(loc, "Mamba layers need their state size, inner width, conv kernel (2 taps or more) and dt rank (ssm_state_size, ssm_inner_size, "
                           "ssm_conv_kernel, ssm_dt_rank; Mamba-2 ssm_heads instead of the dt rank)");
    if (m.mamba2() && (m.ssm_inner % m.ssm_heads != 0 || m.ssm_groups < 1 || m.ssm_heads % m.ssm_groups != 0))
      throw UserError(loc, fmt::format("Mamba-2 mixers split {} inner channels into {} heads in {} groups: the heads must divide the channels and "
                                       "the groups the heads",
                                       m.ssm_inner, m.ssm_heads, m.ssm_groups));
    if (pattern.attn_layer_period > 0 && (pattern.attn_layer_offset < 0 || pattern.attn_layer_offset >= pattern.attn_layer_period))
      throw UserError(pattern.loc("attn_layer_period", loc), fmt::format("attn_layer_offset {} must be in [0, attn_layer_period = {})", pattern.attn_layer_offset,
                                                                         pattern.attn_layer_period));
  }
  if (pattern.expert_layer_period > 0 && (pattern.expert_layer_offset < 0 || pattern.expert_layer_offset >= pattern.expert_layer_period))
    throw UserError(pattern.loc("expert_layer_period", loc), fmt::format("expert_layer_offset {} must be in [0, expert_layer_period = {})",
                                                                         pattern.expert_layer_offset, pattern.expert_layer_period));
  if (pattern.all_mamba && m.num_attention_heads == 0) m.num_attention_heads = m.num_key_value_heads = 1;  // none are built
  if (m.num_attention_heads < 1) throw UserError(loc, "a model needs at least one attention head");
  if (m.mla()) {
    if (m.qk_rope_head_dim <= 0 || m.qk_nope_head_dim <= 0 || m.v_head_dim <= 0)
      throw UserError(loc, "multi-head latent attention (kv_lora_rank) needs qk_rope_head_dim, qk_nope_head_dim and v_head_dim");
    if (m.qk_rope_head_dim % 2 != 0) throw UserError(loc, fmt::format("rotary embeddings need an even qk_rope_head_dim, found {}", m.qk_rope_head_dim));
    // Every head has its own keys and values (up-projected from the shared latent).
    m.num_key_value_heads = m.num_attention_heads;
    m.head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim;
  } else if (m.q_lora_rank > 0 || m.qk_rope_head_dim > 0) {
    throw UserError(loc, "q_lora_rank and qk_rope_head_dim belong to multi-head latent attention: give kv_lora_rank too");
  }
  if (m.num_key_value_heads == 0) m.num_key_value_heads = m.num_attention_heads;
  if (m.head_dim == 0) {
    if (m.hidden_size % m.num_attention_heads != 0)
      throw UserError(loc, fmt::format("hidden_size {} is not divisible by num_attention_heads {}; give head_dim",
                                       m.hidden_size, m.num_attention_heads));
    m.head_dim = m.hidden_size / m.num_attention_heads;
  }
  if (m.num_attention_heads % m.num_key_value_heads != 0)
    throw UserError(loc, fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}",
                                     m.num_attention_heads, m.num_key_value_heads));
  if ((m.num_local_experts > 0) != (m.num_experts_per_tok > 0))
    throw UserError(loc, "an MoE model needs both num_local_experts and num_experts_per_tok");
  if (m.num_experts_per_tok > m.num_local_experts)
    throw UserError(loc, fmt::format("num_experts_per_tok {} exceeds num_local_experts {}", m.num_experts_per_tok,
                                     m.num_local_experts));
  if (m.position == PositionKind::Rope && !m.mla() && m.head_dim % 2 != 0)
    throw UserError(loc, fmt::format("rotary embeddings need an even head_dim, found {}", m.head_dim));
  if (m.position == PositionKind::Learned && m.max_position_embeddings <= 0)
    throw UserError(loc, "learned position embeddings need max_position_embeddings");
  if (std::find(kActs.begin(), kActs.end(), m.hidden_act) == kActs.end())
    throw UserError(loc, fmt::format("unsupported hidden_act '{}' (einsim knows silu, gelu, relu, relu2)", m.hidden_act));
  if (m.num_local_experts == 0 && (m.moe_intermediate_size > 0 || m.shared_expert_size > 0 || m.n_group > 0))
    throw UserError(loc, "expert widths, shared experts and expert groups need an MoE model (num_local_experts)");
  if (m.n_group > 0) {
    if (m.num_local_experts % m.n_group != 0)
      throw UserError(loc, fmt::format("n_group {} does not divide the {} experts", m.n_group, m.num_local_experts));
    if (m.topk_group < 1 || m.topk_group > m.n_group)
      throw UserError(loc, fmt::format("topk_group {} must be in [1, n_group = {}]", m.topk_group, m.n_group));
    if (m.num_experts_per_tok > m.topk_group * (m.num_local_experts / m.n_group))
      throw UserError(loc, fmt::format("num_experts_per_tok {} exceeds the experts of topk_group {} groups ({})", m.num_experts_per_tok, m.topk_group,
                                       m.topk_group * (m.num_local_experts / m.n_group)));
  }
  apply_pattern(m, pattern, loc);
}

}  // namespace

ModelConfig read_model(const ConfigTable& t, const std::string& default_name) {
  constexpr int64_t kMax = int64_t{1} << 24;
  ModelConfig m;
  m.loc = t.loc();
  m.name = t.opt_name("name").value_or(default_name);
  m.model_type = t.get_choice("model_type", kModelTypes);
  m.hidden_act = normalize_act(t.opt_string("hidden_act").value_or(""));
  apply_family_defaults(m);
  m.hidden_size = t.get_int("hidden_size", 1, kMax);
  m.num_hidden_layers = t.get_int("num_hidden_layers", 1, 4096);
  const bool pure_ssm = m.model_type == "mamba" || m.model_type == "mamba2";
  m.num_attention_heads = pure_ssm ? t.opt_int("num_attention_heads", 1, 65536).value_or(0) : t.get_int("num_attention_heads", 1, 65536);
  m.num_key_value_heads = t.opt_int("num_key_value_heads", 1, 65536).value_or(0);
  m.head_dim = t.opt_int("head_dim", 1, 65536).value_or(0);
  m.intermediate_size = t.get_int("intermediate_size", 1, kMax);
  m.vocab_size = t.get_int("vocab_size", 1, kMax);
  m.max_position_embeddings = t.opt_int("max_position_embeddings", 1, int64_t{1} << 32).value_or(0);
  m.type_vocab_size = t.opt_int("type_vocab_size", 0, 1024).value_or(0);
  m.tie_word_embeddings = t.opt_bool("tie_word_embeddings").value_or(false);
  m.num_local_experts = t.opt_int("num_local_experts", 0, 65536).value_or(0);
  m.num_experts_per_tok = t.opt_int("num_experts_per_tok", 0, 65536).value_or(0);
  if (auto b = t.opt_bool("attention_bias")) m.attention_bias = *b;
  if (auto b = t.opt_bool("qkv_bias")) m.qkv_bias = *b;
  if (auto b = t.opt_bool("mlp_bias")) m.mlp_bias = *b;
  if (auto d = t.opt_choice("torch_dtype", {"float32", "float16", "bfloat16"}))
    m.dtype = *d == "float32" ? DType::FP32 : *d == "float16" ? DType::FP16 : DType::BF16;
  m.sliding_window = t.opt_int("sliding_window", 1, int64_t{1} << 31).value_or(0);
  if (auto q = t.opt_string("quantization")) {
    std::string why;
    auto parsed = parse_quantization(*q, &why);
    if (!parsed) throw UserError(t.loc("quantization"), why);
    m.quant = *parsed;
    m.quant.loc = t.loc("quantization");
  }
  t.opt_number("rms_norm_eps", 0, 1);
  t.opt_number("layer_norm_eps", 0, 1);
  t.opt_number("rope_theta", 0);
  if (auto n = t.opt_choice("norm", {"rmsnorm", "layernorm"})) m.norm = *n == "rmsnorm" ? NormKind::RMSNorm : NormKind::LayerNorm;
  if (auto n = t.opt_choice("mlp", {"gated", "plain"})) m.mlp = *n == "gated" ? MlpKind::Gated : MlpKind::Plain;
  if (auto n = t.opt_choice("position", {"rope", "learned", "relative", "none"}))
    m.position = *n == "rope" ? PositionKind::Rope : *n == "learned" ? PositionKind::Learned
               : *n == "relative" ? PositionKind::Relative : PositionKind::None;
  if (auto b = t.opt_bool("parallel_attn")) m.parallel_attn = *b;
  if (auto b = t.opt_bool("qk_norm")) m.qk_norm = *b;
  if (auto b = t.opt_bool("sandwich_norm")) m.sandwich_norm = *b;
  if (auto b = t.opt_bool("encoder_only")) m.encoder_only = *b;
  // Experts: their width, shared experts, routing.
  m.moe_intermediate_size = t.opt_int("moe_intermediate_size", 1, kMax).value_or(0);
  const int64_t shared = t.opt_int("n_shared_experts", 0, 1024).value_or(0);
  m.shared_expert_size = t.opt_int("shared_expert_intermediate_size", 0, kMax).value_or(shared * m.expert_width());
  if (shared > 0 && t.contains("shared_expert_intermediate_size"))
    throw UserError(t.loc("n_shared_experts"), "give n_shared_experts (of moe_intermediate_size each) or shared_expert_intermediate_size, not both");
  m.shared_expert_gate = t.opt_bool("shared_expert_gate").value_or(false);
  m.n_group = t.opt_int("n_group", 1, 65536).value_or(0);
  m.topk_group = t.opt_int("topk_group", 1, 65536).value_or(m.n_group);
  if (auto f = t.opt_choice("scoring_func", {"softmax", "sigmoid"})) m.scoring = *f == "sigmoid" ? ScoringKind::Sigmoid : ScoringKind::Softmax;
  m.router_bias = t.opt_bool("router_bias").value_or(false);
  m.norm_topk_prob = t.opt_bool("norm_topk_prob").value_or(true);
  m.routed_scaling_factor = t.opt_number("routed_scaling_factor", 1e-6, 1e6).value_or(1.0);
  m.routing_skew = t.opt_number("routing_skew", 0, 10).value_or(0.0);
  m.attn_logit_softcapping = t.opt_number("attn_logit_softcapping", 0, 1e6).value_or(0.0);
  m.final_logit_softcapping = t.opt_number("final_logit_softcapping", 0, 1e6).value_or(0.0);
  m.attention_sinks = t.opt_bool("attention_sinks").value_or(false);
  m.kv_lora_rank = t.opt_int("kv_lora_rank", 1, 65536).value_or(0);
  m.q_lora_rank = t.opt_int("q_lora_rank", 1, 65536).value_or(0);
  m.qk_nope_head_dim = t.opt_int("qk_nope_head_dim", 1, 65536).value_or(0);
  m.qk_rope_head_dim = t.opt_int("qk_rope_head_dim", 1, 65536).value_or(0);
  m.v_head_dim = t.opt_int("v_head_dim", 1, 65536).value_or(0);
  m.ssm_state = t.opt_int("ssm_state_size", 1, 65536).value_or(0);
  m.ssm_inner = t.opt_int("ssm_inner_size", 1, kMax).value_or(pure_ssm ? m.intermediate_size : 0);
  m.ssm_conv = t.opt_int("ssm_conv_kernel", 1, 64).value_or(4);
  m.ssm_dt_rank = t.opt_int("ssm_dt_rank", 1, kMax).value_or(0);
  m.ssm_conv_bias = t.opt_bool("ssm_conv_bias").value_or(true);
  m.ssm_proj_bias = t.opt_bool("ssm_proj_bias").value_or(false);
  m.ssm_heads = t.opt_int("ssm_heads", 1, 65536).value_or(0);
  m.ssm_groups = t.opt_int("ssm_groups", 1, 65536).value_or(1);
  if (m.model_type == "mamba2" && m.ssm_heads == 0) throw UserError(m.loc, "a mamba2 model needs 'ssm_heads' (its mixers' heads)");
  if (t.contains("ssm_groups") && m.ssm_heads == 0) throw UserError(t.loc("ssm_groups"), "'ssm_groups' is for Mamba-2 mixers: give 'ssm_heads' too");
  // The layer pattern.
  PatternKeys p;
  auto note = [&](const char* key) { p.at[key] = t.loc(key); };
  auto ints = [&](const char* key) {
    std::vector<int64_t> v;
    const toml::node* n = t.node(key);
    if (!n) return v;
    note(key);
    const toml::array* a = n->as_array();
    if (!a) throw UserError(t.loc(key), fmt::format("'model.{}' must be an array of integers", key));
    for (const toml::node& x : *a) {
      auto i = x.value_exact<int64_t>();
      if (!i) throw UserError(loc_of(x, t.loc(key)), fmt::format("'model.{}' must be an array of integers", key));
      v.push_back(*i);
    }
    return v;
  };
  if (t.contains("layer_types")) note("layer_types"), p.layer_types = t.get_string_array("layer_types");
  p.first_k_dense_replace = t.opt_int("first_k_dense_replace", 0, 4096).value_or(0);
  p.moe_layer_freq = t.opt_int("moe_layer_freq", 1, 4096).value_or(0);
  p.decoder_sparse_step = t.opt_int("decoder_sparse_step", 1, 4096).value_or(0);
  p.interleave_moe_layer_step = t.opt_int("interleave_moe_layer_step", 1, 4096).value_or(0);
  p.mlp_only_layers = ints("mlp_only_layers");
  if (t.contains("moe_layers")) p.moe_layers = ints("moe_layers");
  p.sliding_window_pattern = t.opt_int("sliding_window_pattern", 1, 4096).value_or(0);
  p.max_window_layers = t.opt_int("max_window_layers", 0, 4096).value_or(-1);
  p.attention_chunk_size = t.opt_int("attention_chunk_size", 1, int64_t{1} << 31).value_or(0);
  p.no_rope_layers = ints("no_rope_layers");
  p.attn_layer_period = t.opt_int("attn_layer_period", 1, 4096).value_or(0);
  p.attn_layer_offset = t.opt_int("attn_layer_offset", 0, 4096).value_or(0);
  p.expert_layer_period = t.opt_int("expert_layer_period", 1, 4096).value_or(0);
  p.expert_layer_offset = t.opt_int("expert_layer_offset", 0, 4096).value_or(0);
  p.all_mamba = pure_ssm;
  if (t.contains("hybrid_override_pattern")) note("hybrid_override_pattern"), p.hybrid = t.get_string("hybrid_override_pattern");
  for (const char* k : {"attn_layer_period", "expert_layer_period"})
    if (t.contains(k)) note(k);
  for (const char* k : {"first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step", "interleave_moe_layer_step", "sliding_window_pattern",
                        "max_window_layers", "attention_chunk_size"})
    if (t.contains(k)) note(k);
  finish_model(m, m.loc, p);
  return m;
}

namespace {

// Line and column of the first `"key"` in a JSON text, for located errors.
SourceLoc json_key_loc(const std::string& text, const std::string& name, const std::string& key) {
  const size_t at = text.find("\"" + key + "\"");
  if (at == std::string::npos) return SourceLoc{name};
  int line = 1, col = 1;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return SourceLoc{name, line, col};
}

}  // namespace

namespace {

// Python's json module writes Infinity, -Infinity and NaN bare; JSON has no such numbers. They
// are read as the strings "Infinity", "-Infinity", "NaN" (a key einsim reads as a number then
// says so at the key). `shift` maps a byte of the result back to the text: (position in the
// result after which, bytes added so far).
std::string quote_python_numbers(const std::string& text, std::vector<std::pair<size_t, size_t>>& shift) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') {
      in_string = true;
      out += ch;
      continue;
    }
    bool replaced = false;
    for (std::string_view word : {"-Infinity", "Infinity", "NaN"})
      if (text.compare(i, word.size(), word) == 0) {
        out += '"';
        out += word;
        out += '"';
        shift.emplace_back(out.size(), (shift.empty() ? 0 : shift.back().second) + 2);
        i += word.size() - 1;
        replaced = true;
        break;
      }
    if (!replaced) out += ch;
  }
  return out;
}

}  // namespace

ModelConfig parse_hf_config_json(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  nlohmann::json j;
  std::vector<std::pair<size_t, size_t>> shift;
  try {
    j = nlohmann::json::parse(quote_python_numbers(text, shift));
  } catch (const nlohmann::json::exception& e) {
    // Syntax errors carry the 1-based byte of the error; others (number overflow) do not.
    const auto* pe = dynamic_cast<const nlohmann::json::parse_error*>(&e);
    size_t byte = pe ? pe->byte : 0;
    size_t added = 0;
    for (const auto& [after, total] : shift)
      if (after < byte) added = total;
    byte = byte > added ? byte - added : 1;
    int line = 1, col = 1;
    for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
      if (text[i] == '\n') ++line, col = 1;
      else ++col;
    }
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw UserError(pe ? SourceLoc{name, line, col} : SourceLoc{name}, what);
  }
  if (!j.is_object()) throw UserError(SourceLoc{name, 1, 1}, "a config.json must hold an object");
  // A multimodal wrapper (Gemma 3, Llama 4, Mistral 3): the language model is its text_config;
  // keys only the wrapper gives (its dtype, tied embeddings) apply to it. Other towers are not
  // modelled.
  std::vector<std::string> notes;
  if (auto tc = j.find("text_config"); tc != j.end() && tc->is_object()) {
    nlohmann::json lm = *tc;
    for (const auto& [k, v] : j.items())
      if (k != "text_config" && !k.ends_with("_config") && !lm.contains(k) && k != "model_type" && k != "architectures") lm[k] = v;
    std::vector<std::string> towers;
    for (const auto& [k, v] : j.items())
      if (k != "text_config" && k.ends_with("_config") && v.is_object() && k != "quantization_config") towers.push_back(k);
    notes.push_back(fmt::format("the language model of '{}' is its text_config{}", j.value("model_type", std::string("?")),
                                towers.empty() ? "" : fmt::format("; {} not modelled", fmt::join(towers, ", "))));
    if (j.contains("quantization_config") && !lm.contains("quantization_config")) lm["quantization_config"] = j["quantization_config"];
    j = std::move(lm);
  }
  // Keys a family's transformers config class fills in, which its published configs leave out
  // (Gemma3TextConfig: vocab_size = 262208), taken from the class with a note.
  if (j.contains("model_type") && j["model_type"] == "gemma3_text" && !j.contains("vocab_size")) {
    j["vocab_size"] = 262208;
    notes.push_back("vocab_size not given: Gemma3TextConfig's default, 262208");
  }
  // `--set model.KEY=VALUE` (or KEY=VALUE): VALUE is JSON (a number, true, "text"), or taken as
  // a string; a key the reader does not know is an error once every key has been read.
  std::map<std::string, std::string> overridden;  // key -> the override as given
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    std::string key = o.substr(0, eq);
    if (key.starts_with("model.")) key = key.substr(6);
    if (eq == std::string::npos || key.empty() || key.find('.') != std::string::npos)
      throw UserError(SourceLoc{"--set"}, fmt::format("'{}': a config.json override is model.KEY=VALUE with a top-level KEY", o));
    const std::string value = o.substr(eq + 1);
    nlohmann::json v = nlohmann::json::parse(value, nullptr, false);
    j[key] = v.is_discarded() ? nlohmann::json(value) : v;
    overridden[key] = o;
  }
  std::set<std::string> known;  // every key the reader asks for
  auto loc_of_key = [&](const std::string& k) {
    return overridden.count(k) ? SourceLoc{"--set"} : json_key_loc(text, name, k);
  };
  ModelConfig m;
  m.loc = SourceLoc{name, 1, 1};
  int64_t llama4_experts = 0;  // Llama 4's expert width (its intermediate_size)
  std::string unknown_type;    // a model_type einsim does not know, built Llama-style
  // Named by the model it describes (transformers writes `_name_or_path`), else by the file.
  if (auto it = j.find("_name_or_path"); it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
    m.name = fs::path(it->get<std::string>()).filename().string();
    if (m.name.size() > 256 || std::any_of(m.name.begin(), m.name.end(), [](char c) { return static_cast<unsigned char>(c) < 32; }))
      throw UserError(loc_of_key("_name_or_path"), "'_name_or_path' must end in a name of at most 256 characters without control characters");
  }
  if (m.name.empty()) m.name = fs::path(name).stem().string();

  // First present key among `keys` (HF families spell the same quantity differently).
  auto find = [&](std::initializer_list<const char*> keys) -> const nlohmann::json* {
    known.insert(keys.begin(), keys.end());
    for (const char* k : keys)
      if (auto it = j.find(k); it != j.end() && !it->is_null()) return &*it;
    return nullptr;
  };
  auto key_of = [&](std::initializer_list<const char*> keys) -> std::string {
    for (const char* k : keys)
      if (j.contains(k)) return k;
    return *keys.begin();
  };
  auto integer = [&](std::initializer_list<const char*> keys, bool required, int64_t lo, int64_t hi) -> int64_t {
    const nlohmann::json* v = find(keys);
    const std::string k = key_of(keys);
    if (!v) {
      if (required)
        throw UserError(SourceLoc{name, 1, 1}, fmt::format("missing required key '{}'{}", k,
                                                           unknown_type.empty() ? ""
                                                                                : fmt::format(" (model_type '{}' is not one einsim knows; it is built "
                                                                                              "from a Llama-style decoder's keys, which this config lacks)",
                                                                                              unknown_type)));
      return 0;
    }
    if (!v->is_number_integer()) throw UserError(loc_of_key(k), fmt::format("'{}' must be an integer", k));
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
      throw UserError(loc_of_key(k), fmt::format("'{}' = {} is out of range: it must be in [{}, {}]", k, x, lo, hi));
    return x;
  };
  auto boolean = [&](std::initializer_list<const char*> keys) -> std::optional<bool> {
    const nlohmann::json* v = find(keys);
    if (!v) return std::nullopt;
    if (!v->is_boolean())
      throw UserError(loc_of_key(key_of(keys)), fmt::format("'{}' must be true or false", key_of(keys)));
    return v->get<bool>();
  };
  auto string = [&](std::initializer_list<const char*> keys) -> std::optional<std::string> {
    const nlohmann::json* v = find(keys);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw UserError(loc_of_key(key_of(keys)), fmt::format("'{}' must be a string", key_of(keys)));
    return v->get<std::string>();
  };

  auto type = string({"model_type"});
  if (!type) throw UserError(SourceLoc{name, 1, 1}, "missing required key 'model_type'");
  m.model_type = *type == "RefinedWebModel" || *type == "RefinedWeb" ? "falcon" : *type;
  if (std::find(kModelTypes.begin(), kModelTypes.end(), m.model_type) == kModelTypes.end()) {
    // Built from its keys as a Llama-style decoder (RMSNorm, gated MLP, RoPE), and said so.
    notes.push_back(fmt::format("model_type '{}' is not one einsim knows ({}): built from its keys as a Llama-style decoder (RMSNorm, gated MLP, "
                                "RoPE); check `describe` against the model card",
                                m.model_type, fmt::join(kModelTypes, ", ")));
    unknown_type = m.model_type;
    m.model_type = "llama";
  }
  const bool nemotron_h = m.model_type == "nemotron_h", mamba2 = m.model_type == "mamba2";
  std::string act = (nemotron_h ? string({"mlp_hidden_act", "hidden_act"}) : string({"hidden_act", "activation_function", "hidden_activation"})).value_or("");
  if (auto ff = string({"feed_forward_proj"})) {
    if (ff->starts_with("gated-")) m.mlp = MlpKind::Gated, act = ff->substr(6);
    else act = *ff;
  }
  m.hidden_act = normalize_act(act);
  apply_family_defaults(m);
  if (auto ff = string({"feed_forward_proj"}); ff && ff->starts_with("gated-")) m.mlp = MlpKind::Gated;
  constexpr int64_t kMax = int64_t{1} << 24;
  m.hidden_size = integer({"hidden_size", "n_embd", "d_model", "emb_size"}, true, 1, kMax);
  m.num_hidden_layers = integer({"num_hidden_layers", "n_layer", "num_layers", "n_layers"}, true, 1, 4096);
  // A Mamba-2 config's num_heads and head_dim are its mixers'.
  m.num_attention_heads = mamba2 ? integer({"num_attention_heads"}, false, 1, 65536)
                                 : integer({"num_attention_heads", "n_head", "num_heads", "n_heads"}, m.model_type != "mamba", 1, 65536);
  m.num_key_value_heads = integer({"num_key_value_heads", "num_kv_heads", "n_head_kv"}, false, 1, 65536);
  if (boolean({"multi_query"}).value_or(false) && m.num_key_value_heads == 0) m.num_key_value_heads = 1;
  m.head_dim = mamba2 ? 0 : integer({"head_dim", "d_kv", "d_head", "attention_head_dim"}, false, 1, 65536);
  // GPT-2 and Falcon define a missing FFN width as 4 x the model width (transformers' GPT2Config
  // n_inner = None, FalconConfig ffn_hidden_size = None); other families must state it.
  const bool ffn_default = m.model_type == "gpt2" || m.model_type == "falcon" || mamba2;  // Mamba-2 has no MLP
  m.intermediate_size = integer({"intermediate_size", "ffn_dim", "d_ff", "n_inner", "d_inner", "ffn_hidden_size"}, !ffn_default, 1, kMax);
  if (m.intermediate_size == 0) m.intermediate_size = 4 * m.hidden_size;
  // Llama 4 (modeling_llama4.py): intermediate_size is an expert's width, and each MoE layer
  // has a shared expert of that width; dense layers are intermediate_size_mlp wide; the router
  // scores the chosen experts by a sigmoid, not renormalised. Its QK L2-norm has no weights.
  const int64_t dense_width = integer({"intermediate_size_mlp"}, false, 1, kMax);
  if (m.model_type == "llama4_text") {
    const int64_t expert = m.intermediate_size;
    if (dense_width > 0) m.intermediate_size = dense_width;
    llama4_experts = expert;
    known.insert("use_qk_norm");
    if (j.value("use_qk_norm", false))
      notes.push_back("use_qk_norm: Llama 4's L2 norm of the RoPE layers' queries and keys (no weights) is not costed");
  }
  m.vocab_size = integer({"vocab_size", "n_vocab"}, true, 1, kMax);
  m.max_position_embeddings = integer({"max_position_embeddings", "n_positions", "max_seq_len"}, false, 1, int64_t{1} << 32);
  m.type_vocab_size = integer({"type_vocab_size"}, false, 0, 1024);
  // transformers' PretrainedConfig ties word embeddings unless a config says otherwise.
  m.tie_word_embeddings = boolean({"tie_word_embeddings"}).value_or(true);
  m.num_local_experts = integer({"num_local_experts", "num_experts", "n_routed_experts"}, false, 0, 65536);
  m.num_experts_per_tok = integer({"num_experts_per_tok", "top_k"}, false, 0, 65536);
  if (auto b = boolean({"attention_bias", "bias", "enable_bias"})) m.attention_bias = *b;
  if (auto b = boolean({"mlp_bias", "bias", "enable_bias"})) m.mlp_bias = *b;
  if (auto b = boolean({"parallel_attn"})) m.parallel_attn = *b;
  if (auto d = string({"torch_dtype", "dtype"})) {
    if (*d == "float32") m.dtype = DType::FP32;
    else if (*d == "float16") m.dtype = DType::FP16;
    else if (*d == "bfloat16") m.dtype = DType::BF16;
    else
      throw UserError(loc_of_key(key_of({"torch_dtype", "dtype"})),
                      fmt::format("'{}' is not a type einsim computes in (float32, float16, bfloat16; `--dtype` runs a model in another)", *d));
  }
  // Experts: their width, shared experts and routing (DeepSeek, Qwen-MoE, gpt-oss spellings).
  m.moe_intermediate_size = integer({"moe_intermediate_size"}, false, 1, kMax);
  if (llama4_experts > 0 && m.num_local_experts > 0) {
    m.moe_intermediate_size = llama4_experts;
    m.shared_expert_size = llama4_experts;
    m.scoring = ScoringKind::Sigmoid;
    m.norm_topk_prob = false;
  }
  {
    const int64_t shared = integer({"n_shared_experts", "num_shared_experts"}, false, 0, 1024);
    const int64_t shared_width = integer({"shared_expert_intermediate_size"}, false, 0, kMax);
    if (shared > 0 && shared_width > 0)
      throw UserError(loc_of_key("shared_expert_intermediate_size"), "give n_shared_experts or shared_expert_intermediate_size, not both");
    if (shared > 0 || shared_width > 0) m.shared_expert_size = shared_width > 0 ? shared_width : shared * m.expert_width();
    // Qwen2-MoE gates its shared expert with a sigmoid of a learned projection.
    m.shared_expert_gate = shared_width > 0 && m.model_type == "qwen2_moe";
  }
  m.n_group = integer({"n_group"}, false, 1, 65536);
  m.topk_group = integer({"topk_group"}, false, 1, 65536);
  if (m.n_group > 0 && m.topk_group == 0) m.topk_group = m.n_group;
  if (m.n_group > 0 && j.contains("topk_method") && j["topk_method"] == "greedy") m.n_group = m.topk_group = 0;  // groups ignored
  known.insert("topk_method");
  if (j.contains("topk_method") && j["topk_method"] == "noaux_tc") m.router_bias = true;  // e_score_correction_bias
  if (auto f = string({"scoring_func"})) {
    if (*f != "softmax" && *f != "sigmoid") throw UserError(loc_of_key("scoring_func"), fmt::format("scoring_func '{}': einsim knows softmax and sigmoid", *f));
    m.scoring = *f == "sigmoid" ? ScoringKind::Sigmoid : ScoringKind::Softmax;
  }
  if (auto b = boolean({"norm_topk_prob"})) m.norm_topk_prob = *b;
  if (const nlohmann::json* v = find({"routed_scaling_factor"})) {
    if (!v->is_number() || v->get<double>() <= 0) throw UserError(loc_of_key("routed_scaling_factor"), "'routed_scaling_factor' must be a positive number");
    m.routed_scaling_factor = v->get<double>();
  }
  // einsim's own key (no config.json has it; `--set model.routing_skew=S` gives it): the Zipf
  // skew of measured routing.
  if (const nlohmann::json* v = find({"routing_skew"})) {
    if (!v->is_number() || v->get<double>() < 0 || v->get<double>() > 10) throw UserError(loc_of_key("routing_skew"), "'routing_skew' must be a number in [0, 10]");
    m.routing_skew = v->get<double>();
  }
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    const nlohmann::json* v = find({key});
    if (!v) continue;
    if (!v->is_number() || v->get<double>() < 0) throw UserError(loc_of_key(key), fmt::format("'{}' must be a number >= 0", key));
    (std::string_view(key) == "attn_logit_softcapping" ? m.attn_logit_softcapping : m.final_logit_softcapping) = v->get<double>();
  }
  // The layer pattern: windows, chunks, dense and MoE layers.
  PatternKeys pattern;
  {
    auto ints = [&](const char* key) {
      std::vector<int64_t> v;
      const nlohmann::json* a = find({key});
      if (!a) return v;
      pattern.at[key] = loc_of_key(key);
      if (!a->is_array()) throw UserError(loc_of_key(key), fmt::format("'{}' must be an array of integers", key));
      for (const nlohmann::json& x : *a) {
        if (!x.is_number_integer()) throw UserError(loc_of_key(key), fmt::format("'{}' must be an array of integers", key));
        v.push_back(x.get<int64_t>());
      }
      return v;
    };
    auto count = [&](const char* key, int64_t lo) {
      const int64_t v = integer({key}, false, lo, 4096);
      if (j.contains(key) && !j[key].is_null()) pattern.at[key] = loc_of_key(key);
      return v;
    };
    if (const nlohmann::json* t = find({"layer_types"})) {
      pattern.at["layer_types"] = loc_of_key("layer_types");
      if (!t->is_array()) throw UserError(loc_of_key("layer_types"), "'layer_types' must be an array of strings");
      for (const nlohmann::json& x : *t) {
        if (!x.is_string()) throw UserError(loc_of_key("layer_types"), "'layer_types' must be an array of strings");
        pattern.layer_types.push_back(x.get<std::string>());
      }
    }
    pattern.first_k_dense_replace = count("first_k_dense_replace", 0);
    pattern.moe_layer_freq = count("moe_layer_freq", 1);
    pattern.decoder_sparse_step = count("decoder_sparse_step", 1);
    pattern.interleave_moe_layer_step = count("interleave_moe_layer_step", 1);
    pattern.mlp_only_layers = ints("mlp_only_layers");
    if (j.contains("moe_layers") && !j["moe_layers"].is_null()) pattern.moe_layers = ints("moe_layers");
    pattern.no_rope_layers = ints("no_rope_layers");
    pattern.attention_chunk_size = integer({"attention_chunk_size"}, false, 1, int64_t{1} << 31);
    if (pattern.attention_chunk_size > 0) pattern.at["attention_chunk_size"] = loc_of_key("attention_chunk_size");
    known.insert("use_sliding_window");
    const bool windows_off = j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean() && !j["use_sliding_window"].get<bool>();
    if (!windows_off && j.contains("sliding_window") && !j["sliding_window"].is_null()) {
      m.sliding_window = integer({"sliding_window"}, false, 1, int64_t{1} << 31);
      // Qwen2: layers from max_window_layers on are windowed (when use_sliding_window says so).
      if (j.contains("use_sliding_window") && j.contains("max_window_layers") && pattern.layer_types.empty())
        pattern.max_window_layers = count("max_window_layers", 0);
      // Gemma 3 without layer_types: every n-th layer global; Gemma 2: every other one.
      if (pattern.layer_types.empty()) {
        if (m.model_type == "gemma3_text") pattern.sliding_window_pattern = integer({"sliding_window_pattern"}, false, 1, 4096);
        if (m.model_type == "gemma3_text" && pattern.sliding_window_pattern == 0) pattern.sliding_window_pattern = 6;
        pattern.alternate_windows = m.model_type == "gemma2";
      }
    }
    known.insert({"max_window_layers", "sliding_window_pattern"});
  }
  // DeepSeek's multi-token-prediction modules serve speculative decoding; the model's own
  // steps never run them.
  if (const int64_t mtp = integer({"num_nextn_predict_layers"}, false, 0, 64); mtp > 0)
    notes.push_back(fmt::format("num_nextn_predict_layers: the {} multi-token-prediction layer{} (speculative decoding) not costed", mtp,
                                mtp == 1 ? "" : "s"));
  // Multi-head latent attention.
  m.kv_lora_rank = integer({"kv_lora_rank"}, false, 1, 65536);
  m.q_lora_rank = integer({"q_lora_rank"}, false, 1, 65536);
  m.qk_nope_head_dim = integer({"qk_nope_head_dim"}, false, 1, 65536);
  m.qk_rope_head_dim = integer({"qk_rope_head_dim"}, false, 1, 65536);
  m.v_head_dim = integer({"v_head_dim"}, false, 1, 65536);
  // Mamba mixers (HF MambaConfig; Jamba's mamba_* keys) and Jamba's layer periods.
  if (m.model_type == "mamba" || m.model_type == "jamba") {
    const bool jamba = m.model_type == "jamba";
    m.ssm_state = integer({jamba ? "mamba_d_state" : "state_size"}, true, 1, 65536);
    m.ssm_conv = integer({jamba ? "mamba_d_conv" : "conv_kernel"}, true, 1, 64);
    const nlohmann::json* expand = find({jamba ? "mamba_expand" : "expand"});
    const int64_t e = expand && expand->is_number_integer() ? expand->get<int64_t>() : 2;
    m.ssm_inner = jamba ? e * m.hidden_size : m.intermediate_size;
    const char* rank_key = jamba ? "mamba_dt_rank" : "time_step_rank";
    const nlohmann::json* rank = find({rank_key});
    // "auto" (and absent): ceil(hidden / 16), as transformers does.
    if (rank && rank->is_number_integer()) m.ssm_dt_rank = integer({rank_key}, true, 1, kMax);
    else if (!rank || (rank->is_string() && rank->get<std::string>() == "auto")) m.ssm_dt_rank = (m.hidden_size + 15) / 16;
    else throw UserError(loc_of_key(rank_key), fmt::format("'{}' must be an integer or \"auto\"", rank_key));
    m.ssm_conv_bias = boolean({jamba ? "mamba_conv_bias" : "use_conv_bias"}).value_or(true);
    m.ssm_proj_bias = boolean({jamba ? "mamba_proj_bias" : "use_bias"}).value_or(false);
    if (jamba) {
      pattern.attn_layer_period = integer({"attn_layer_period"}, true, 1, 4096);
      pattern.attn_layer_offset = integer({"attn_layer_offset"}, true, 0, 4096);
      pattern.expert_layer_period = integer({"expert_layer_period"}, false, 1, 4096);
      pattern.expert_layer_offset = integer({"expert_layer_offset"}, false, 0, 4096);
      pattern.at["attn_layer_period"] = loc_of_key("attn_layer_period");
      pattern.at["expert_layer_period"] = loc_of_key("expert_layer_period");
    } else {
      pattern.all_mamba = true;
    }
  }
  // Mamba-2 mixers (HF Mamba2Config; NemotronHConfig's mamba_* keys) and Nemotron-H's pattern.
  if (mamba2 || nemotron_h) {
    m.ssm_state = integer({nemotron_h ? "ssm_state_size" : "state_size"}, true, 1, 65536);
    m.ssm_conv = integer({"conv_kernel"}, true, 1, 64);
    const char* heads_key = nemotron_h ? "mamba_num_heads" : "num_heads";
    m.ssm_heads = integer({heads_key}, true, 1, 65536);
    const int64_t head_dim = integer({nemotron_h ? "mamba_head_dim" : "head_dim"}, true, 1, 65536);
    m.ssm_groups = integer({"n_groups"}, false, 1, 65536);
    if (m.ssm_groups == 0) m.ssm_groups = 1;
    m.ssm_inner = m.ssm_heads * head_dim;
    // Mamba2Mixer's inner width is expand x hidden (its heads must tile it); NemotronH's is
    // heads x head_dim, whatever expand says.
    if (const nlohmann::json* e = find({"expand"}); e && mamba2) {
      if (!e->is_number() || e->get<double>() <= 0) throw UserError(loc_of_key("expand"), "'expand' must be a positive number");
      const auto inner = static_cast<int64_t>(e->get<double>() * static_cast<double>(m.hidden_size));
      if (inner != m.ssm_inner)
        throw UserError(loc_of_key(heads_key), fmt::format("num_heads {} x head_dim {} = {} channels, but expand x hidden_size = {}", m.ssm_heads,
                                                           head_dim, m.ssm_inner, inner));
    }
    m.ssm_conv_bias = boolean({"use_conv_bias"}).value_or(true);
    m.ssm_proj_bias = (nemotron_h ? boolean({"mamba_proj_bias", "use_bias"}) : boolean({"use_bias"})).value_or(false);
    if (auto a = string({"mamba_hidden_act"}); a && normalize_act(*a) != "silu")
      throw UserError(loc_of_key("mamba_hidden_act"), fmt::format("mamba_hidden_act '{}': einsim's Mamba mixers gate with silu", *a));
    if (auto n = boolean({"rms_norm"}); n && !*n)
      throw UserError(loc_of_key("rms_norm"), "'rms_norm' = false (no gated norm in the mixer) is not modelled; einsim's Mamba-2 mixers norm per group");
    known.insert({"time_step_rank", "time_step_min", "time_step_max", "time_step_floor", "time_step_limit", "chunk_size", "norm_before_gate"});
    if (mamba2) pattern.all_mamba = true;
    if (nemotron_h) {
      const char* key = j.contains("hybrid_override_pattern") ? "hybrid_override_pattern" : "layers_block_type";
      const nlohmann::json* v = find({"hybrid_override_pattern", "layers_block_type"});
      if (!v) throw UserError(SourceLoc{name, 1, 1}, "missing required key 'hybrid_override_pattern' (Nemotron-H's layer pattern)");
      pattern.at["hybrid_override_pattern"] = loc_of_key(key);
      if (v->is_string()) {
        pattern.hybrid = v->get<std::string>();
      } else if (v->is_array()) {
        // layers_block_type: mamba, attention, mlp, moe per layer.
        static const std::map<std::string, char> block = {{"mamba", 'M'}, {"attention", '*'}, {"mlp", '-'}, {"moe", 'E'}};
        for (const nlohmann::json& x : *v) {
          const auto it = x.is_string() ? block.find(x.get<std::string>()) : block.end();
          if (it == block.end()) throw UserError(loc_of_key(key), fmt::format("'{}' lists {}: einsim knows mamba, attention, mlp and moe", key, x.dump()));
          pattern.hybrid += it->second;
        }
      } else {
        throw UserError(loc_of_key(key), fmt::format("'{}' must be a string or an array of strings", key));
      }
      // Nemotron 3's expert layers (modeling_nemotron_h.py NemotronHMOE): squared-ReLU experts
      // of up and down projections, a shared one beside them, DeepSeek-V3's router (sigmoid
      // scores with a selection bias, groups, scaling). The larger models' latent projection
      // around the experts (moe_latent_size) is not built: refused.
      if (pattern.hybrid.find('E') != std::string::npos) {
        if (m.num_local_experts == 0)
          throw UserError(loc_of_key(key), fmt::format("'{}' has expert layers ('E') but no 'n_routed_experts'", key));
        m.shared_expert_size = integer({"moe_shared_expert_intermediate_size"}, false, 0, kMax);
        m.scoring = ScoringKind::Sigmoid;
        m.router_bias = true;
      }
      if (const nlohmann::json* lat = find({"moe_latent_size"}); lat && !(lat->is_number() && lat->get<double>() == 0))
        throw UserError(loc_of_key("moe_latent_size"), "'moe_latent_size': Nemotron 3's latent projection around the experts is not modelled yet");
    }
  }
  // Keys that change the architecture einsim does not model yet: refused at the key, never
  // dropped. A key that is null, or switched off by its family's flag, changes nothing.
  {
    static const std::vector<std::pair<const char*, const char*>> unmodelled = {
        {"attn_layer_period", "hybrid attention and state-space layers"},
        {"layers_block_type", "hybrid attention and state-space layers"},
        {"hybrid_override_pattern", "hybrid attention and state-space layers"},
        {"ssm_cfg", "state-space layers"},
        {"state_size", "state-space layers"},
    };
    for (const auto& [key, what] : unmodelled) {
      if (known.count(key)) continue;  // read by the model's family
      known.insert(key);  // `--set KEY=null` drops one knowingly
      const auto it = j.find(key);
      if (it == j.end() || it->is_null()) continue;
      if (it->is_boolean() && !it->get<bool>()) continue;
      throw UserError(loc_of_key(key), fmt::format("'{}' = {}: {} is not modelled yet; einsim refuses the config rather than drop a key that "
                                                   "changes the architecture",
                                                   key, it->dump().substr(0, 60), what));
    }
  }
  // A quantized checkpoint (transformers' quantization_config): GPTQ and AWQ store int4 or int8
  // in groups; fp8 checkpoints fp8 weights in blocks. Any other method changes what is stored
  // in a way einsim does not model: an error, not a silently bf16 model.
  if (const nlohmann::json* qc = find({"quantization_config"})) {
    const SourceLoc at = loc_of_key("quantization_config");
    if (!qc->is_object()) throw UserError(at, "'quantization_config' must be an object");
    const std::string method = qc->contains("quant_method") && (*qc)["quant_method"].is_string() ? (*qc)["quant_method"].get<std::string>() : "";
    std::string scheme;
    bool per_channel = false;
    if (method == "gptq" || method == "awq") {
      const auto bits = qc->find("bits") != qc->end() ? qc->find("bits") : qc->find("w_bit");
      const int64_t b = bits != qc->end() && bits->is_number_integer() ? bits->get<int64_t>() : 0;
      const auto group = qc->find("group_size") != qc->end() ? qc->find("group_size") : qc->find("q_group_size");
      const int64_t g = group != qc->end() && group->is_number_integer() ? group->get<int64_t>() : 128;
      if (b == 8) scheme = "int8";
      else if (b == 4) scheme = g > 0 ? fmt::format("int4-g{}", g) : "int4";
      else throw UserError(at, fmt::format("a {} checkpoint of {} bits: einsim models 4 and 8", method, b));
      if (b == 4 && g <= 0) per_channel = true;  // group_size -1: one scale per output channel
    } else if (method == "fp8") {
      scheme = "fp8";
    } else if (method == "mxfp4") {
      scheme = "mxfp4";  // gpt-oss: the experts in MXFP4, the rest in the model's type
    } else if (method == "modelopt") {
      // TensorRT Model Optimizer: quant_algo names the recipe; a quantized KV cache changes
      // the cache's bytes, which this reader does not carry (run's --kv-dtype does).
      const auto algo = qc->find("quant_algo");
      const std::string a = algo != qc->end() && algo->is_string() ? algo->get<std::string>() : "";
      if (a == "NVFP4") scheme = "nvfp4";
      else if (a == "FP8") scheme = "fp8";
      else throw UserError(at, fmt::format("a modelopt checkpoint with quant_algo '{}': einsim models NVFP4 and FP8", a));
      if (const auto kv = qc->find("kv_cache_quant_algo"); kv != qc->end() && !kv->is_null())
        throw UserError(at, fmt::format("kv_cache_quant_algo '{}': the checkpoint quantizes its KV cache; set it to null here and give the "
                                        "cache's type with --kv-dtype (fp8)",
                                        kv->is_string() ? kv->get<std::string>() : kv->dump()));
    } else {
      throw UserError(at, fmt::format("quant_method '{}' is not one einsim models (gptq, awq, fp8, mxfp4, modelopt); `--quant` names a scheme", method));
    }
    std::string why;
    auto parsed = parse_quantization(scheme, &why);
    if (!parsed) throw UserError(at, why);
    m.quant = *parsed;
    m.quant.loc = at;
    if (per_channel) m.quant.group = 0;
    // GPTQ and AWQ checkpoints keep the LM head in the model's type unless they say otherwise.
    m.quant.lm_head = (method == "gptq" || method == "awq") && qc->contains("lm_head") && (*qc)["lm_head"].is_boolean() && (*qc)["lm_head"].get<bool>();
  }
  for (const auto& [key, given] : overridden)
    if (!known.count(key)) {
      std::string hint;
      size_t best = 3;
      for (const std::string& k : known)
        if (size_t dist = edit_distance(key, k); dist < best) best = dist, hint = fmt::format(" (did you mean '{}'?)", k);
      throw UserError(SourceLoc{"--set"}, fmt::format("'{}': unknown key '{}' for a config.json{}", given, key, hint));
    }
  finish_model(m, m.loc, pattern);
  m.notes = std::move(notes);
  return m;
}

std::string resolve_model_path(const std::string& s, const std::string& kind) {
  std::error_code ec;
  if (fs::is_regular_file(s, ec)) return s;
  for (const char* folder : kPresetKinds) {
    const fs::path preset = fs::path(config_path(folder)) / (s + ".toml");
    if (fs::is_regular_file(preset, ec)) return preset.string();
  }
  if (is_bare_name(s)) throw_unknown_preset(s, kind, kind == "models" ? "model" : "preset");
  return s;
}

ModelConfig load_model(const std::string& file_or_preset, const std::vector<std::string>& overrides) {
  const std::string file = resolve_model_path(file_or_preset, "models");
  if (file.ends_with(".json")) {
    std::ifstream in(file);
    if (!in) throw UserError(SourceLoc{file}, "cannot open file");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_hf_config_json(ss.str(), file, overrides);
  }
  auto doc = ConfigDoc::load(file, overrides, config_path("models"));
  ModelConfig m = read_model(doc->root().get_table("model"), fs::path(file).stem().string());
  doc->finish();
  return m;
}

}  // namespace einsim
