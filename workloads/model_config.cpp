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

namespace einsim {
namespace fs = std::filesystem;

double ModelConfig::kv_bytes_per_token(DType kv) const {
  if (encoder_only) return 0;
  return 2.0 * static_cast<double>(num_hidden_layers * num_key_value_heads * head_dim) * dtype_bytes(kv);
}

std::string ModelConfig::fingerprint() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", quant.key(), sliding_window, name, model_type,
                     hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size, vocab_size,
                     max_position_embeddings, type_vocab_size, hidden_act, tie_word_embeddings, num_local_experts, num_experts_per_tok,
                     attention_bias, mlp_bias, dtype_name(dtype), static_cast<int>(norm), static_cast<int>(mlp), static_cast<int>(position),
                     parallel_attn, encoder_only, qk_norm);
}

namespace {

// Family defaults, from each family's HF modeling code (modeling_<type>.py).
void apply_family_defaults(ModelConfig& m) {
  const std::string& t = m.model_type;
  if (t == "llama" || t == "mistral" || t == "mixtral" || t == "qwen2" || t == "qwen3") {
    m.norm = NormKind::RMSNorm, m.mlp = MlpKind::Gated, m.position = PositionKind::Rope;
    m.qk_norm = t == "qwen3";  // modeling_qwen3.py: q_norm and k_norm over head_dim
    if (m.hidden_act.empty()) m.hidden_act = "silu";
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

const std::vector<std::string> kModelTypes = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "opt", "falcon", "gpt2",
                                              "bert", "xlm", "t5", "transfo-xl"};
const std::vector<std::string> kActs = {"silu", "gelu", "relu"};

std::string normalize_act(std::string a) {
  // HF spells GELU variants several ways; einsim costs them alike.
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return "gelu";
  if (a == "swish") return "silu";
  return a;
}

void finish_model(ModelConfig& m, const SourceLoc& loc) {
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
  if (m.position == PositionKind::Rope && m.head_dim % 2 != 0)
    throw UserError(loc, fmt::format("rotary embeddings need an even head_dim, found {}", m.head_dim));
  if (m.position == PositionKind::Learned && m.max_position_embeddings <= 0)
    throw UserError(loc, "learned position embeddings need max_position_embeddings");
  if (std::find(kActs.begin(), kActs.end(), m.hidden_act) == kActs.end())
    throw UserError(loc, fmt::format("unsupported hidden_act '{}' (einsim knows silu, gelu, relu)", m.hidden_act));
}

}  // namespace

ModelConfig read_model(const ConfigTable& t, const std::string& default_name) {
  ModelConfig m;
  m.loc = t.loc();
  m.name = t.opt_name("name").value_or(default_name);
  m.model_type = t.get_choice("model_type", kModelTypes);
  m.hidden_act = normalize_act(t.opt_string("hidden_act").value_or(""));
  apply_family_defaults(m);
  constexpr int64_t kMax = int64_t{1} << 24;
  m.hidden_size = t.get_int("hidden_size", 1, kMax);
  m.num_hidden_layers = t.get_int("num_hidden_layers", 1, 4096);
  m.num_attention_heads = t.get_int("num_attention_heads", 1, 65536);
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
  if (auto b = t.opt_bool("mlp_bias")) m.mlp_bias = *b;
  if (auto d = t.opt_choice("torch_dtype", {"float32", "float16", "bfloat16"}))
    m.dtype = *d == "float32" ? DType::FP32 : *d == "float16" ? DType::FP16 : DType::BF16;
  m.sliding_window = t.opt_int("sliding_window", 1, int64_t{1} << 31).value_or(0);
  if (auto q = t.opt_string("quantization")) {
    std::string why;
    auto parsed = parse_quantization(*q, &why);
    if (!parsed) throw UserError(t.loc("quantization"), why);
    m.quant = *parsed;
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
  if (auto b = t.opt_bool("encoder_only")) m.encoder_only = *b;
  finish_model(m, m.loc);
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
      if (required) throw UserError(SourceLoc{name, 1, 1}, fmt::format("missing required key '{}'", k));
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
  if (std::find(kModelTypes.begin(), kModelTypes.end(), m.model_type) == kModelTypes.end())
    throw UserError(loc_of_key("model_type"),
                    fmt::format("model_type '{}' is not one einsim builds (known: {})", m.model_type, fmt::join(kModelTypes, ", ")));
  std::string act = string({"hidden_act", "activation_function", "hidden_activation"}).value_or("");
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
  m.num_attention_heads = integer({"num_attention_heads", "n_head", "num_heads", "n_heads"}, true, 1, 65536);
  m.num_key_value_heads = integer({"num_key_value_heads", "num_kv_heads", "n_head_kv"}, false, 1, 65536);
  if (boolean({"multi_query"}).value_or(false) && m.num_key_value_heads == 0) m.num_key_value_heads = 1;
  m.head_dim = integer({"head_dim", "d_kv", "d_head"}, false, 1, 65536);
  // GPT-2 and Falcon define a missing FFN width as 4 x the model width (transformers' GPT2Config
  // n_inner = None, FalconConfig ffn_hidden_size = None); other families must state it.
  const bool ffn_default = m.model_type == "gpt2" || m.model_type == "falcon";
  m.intermediate_size = integer({"intermediate_size", "ffn_dim", "d_ff", "n_inner", "d_inner", "ffn_hidden_size"}, !ffn_default, 1, kMax);
  if (m.intermediate_size == 0) m.intermediate_size = 4 * m.hidden_size;
  m.vocab_size = integer({"vocab_size", "n_vocab"}, true, 1, kMax);
  m.max_position_embeddings = integer({"max_position_embeddings", "n_positions", "max_seq_len"}, false, 1, int64_t{1} << 32);
  m.type_vocab_size = integer({"type_vocab_size"}, false, 0, 1024);
  // transformers' PretrainedConfig ties word embeddings unless a config says otherwise.
  m.tie_word_embeddings = boolean({"tie_word_embeddings"}).value_or(true);
  m.num_local_experts = integer({"num_local_experts", "num_experts"}, false, 0, 65536);
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
  // Keys that change the architecture einsim does not model yet: refused at the key, never
  // dropped (a dropped sliding window multiplies the KV cache; a dropped expert width the
  // parameters). A key that is null, or switched off by its family's flag, changes nothing.
  {
    known.insert("use_sliding_window");
    const bool windows_off = j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean() && !j["use_sliding_window"].get<bool>();
    // A window on every layer is modelled; one on some layers only (Qwen2's max_window_layers
    // below the depth) is a layer pattern, not yet.
    if (!windows_off && j.contains("sliding_window") && !j["sliding_window"].is_null()) {
      m.sliding_window = integer({"sliding_window"}, false, 1, int64_t{1} << 31);
      if (j.contains("max_window_layers") && j["max_window_layers"].is_number_integer() && j.contains("use_sliding_window") &&
          j["max_window_layers"].get<int64_t>() < m.num_hidden_layers)
        throw UserError(loc_of_key("max_window_layers"), fmt::format("'max_window_layers' = {}: a sliding window on some layers only is not modelled yet",
                                                                     j["max_window_layers"].get<int64_t>()));
    }
    known.insert("max_window_layers");
    static const std::vector<std::pair<const char*, const char*>> unmodelled = {
        {"attention_chunk_size", "chunked local attention"},
        {"layer_types", "per-layer attention kinds"},
        {"moe_intermediate_size", "fine-grained experts of their own width"},
        {"n_shared_experts", "shared experts"},
        {"shared_expert_intermediate_size", "shared experts"},
        {"first_k_dense_replace", "dense layers before the MoE layers"},
        {"moe_layer_freq", "interleaved dense and MoE layers"},
        {"decoder_sparse_step", "interleaved dense and MoE layers"},
        {"mlp_only_layers", "interleaved dense and MoE layers"},
        {"n_group", "grouped expert routing"},
        {"kv_lora_rank", "multi-head latent attention (MLA)"},
        {"q_lora_rank", "multi-head latent attention (MLA)"},
        {"qk_rope_head_dim", "multi-head latent attention (MLA)"},
        {"attn_logit_softcapping", "attention logit soft-capping"},
        {"final_logit_softcapping", "final logit soft-capping"},
        {"attn_layer_period", "hybrid attention and state-space layers"},
        {"layers_block_type", "hybrid attention and state-space layers"},
        {"hybrid_override_pattern", "hybrid attention and state-space layers"},
        {"ssm_cfg", "state-space layers"},
        {"state_size", "state-space layers"},
    };
    for (const auto& [key, what] : unmodelled) {
      known.insert(key);  // `--set kv_lora_rank=null` drops one knowingly
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
    } else {
      throw UserError(at, fmt::format("quant_method '{}' is not one einsim models (gptq, awq, fp8); `--quant` names a scheme", method));
    }
    std::string why;
    auto parsed = parse_quantization(scheme, &why);
    if (!parsed) throw UserError(at, why);
    m.quant = *parsed;
    if (per_channel) m.quant.group = 0;
    // GPTQ and AWQ checkpoints keep the LM head in the model's type unless they say otherwise.
    m.quant.lm_head = method != "fp8" && qc->contains("lm_head") && (*qc)["lm_head"].is_boolean() && (*qc)["lm_head"].get<bool>();
  }
  for (const auto& [key, given] : overridden)
    if (!known.count(key)) {
      std::string hint;
      size_t best = 3;
      for (const std::string& k : known)
        if (size_t dist = edit_distance(key, k); dist < best) best = dist, hint = fmt::format(" (did you mean '{}'?)", k);
      throw UserError(SourceLoc{"--set"}, fmt::format("'{}': unknown key '{}' for a config.json{}", given, key, hint));
    }
  finish_model(m, m.loc);
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
