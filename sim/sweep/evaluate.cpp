#include "sim/sweep/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "arch/collective.h"
#include "sim/cost/cost_model.h"
#include "sim/power/power.h"
#include "sim/serve/deploy.h"
#include "sim/serve/serve_report.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

namespace einsim {

void Cell::set_real(double v) {
  if (std::isfinite(v)) type = Real, d = v;
  else type = Null;
}

namespace {

const char* sql_type(ValueKind k) {
  switch (k) {
    case ValueKind::Integer:
    case ValueKind::Tokens: return "INTEGER";
    case ValueKind::Real:
    case ValueKind::Quantity: return "REAL";
    default: return "TEXT";
  }
}

// A number as an override writes it: whole numbers as integers.
std::string number_text(double v) {
  if (std::fabs(v) < 9e15 && v == std::round(v)) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

}  // namespace

/// What the pre-evaluation checks and the roofline need of one sharded model.
struct ModelSizes {
  std::string error;            ///< the deployment cannot be built (TP does not divide the model)
  DType dtype = DType::BF16;
  double weights = 0;           ///< B per device
  double dense_weights = 0;     ///< B per device outside the experts
  double expert_weights = 0;    ///< B per device in the experts
  double expert_share = 1;      ///< experts routed per token / experts
  double linear_flops = 0;      ///< FLOPs per token in the layers' matrix products
  double head_flops = 0;        ///< FLOPs per sequence of the LM head (last position)
  double attention_flops = 0;   ///< FLOPs per (query, key) pair over all layers
  double hidden = 0, layers = 0;
  double moe_layers = 0, experts_per_token = 0;  ///< for expert parallelism's all-to-alls
  double expert_flops = 0;      ///< of linear_flops, the routed experts' (whole experts under ep)
  double sublayers = 0;         ///< tensor-parallel all-reduces per step (ModelConfig::sublayers)
  std::vector<LayerGroup> attention_groups;  ///< the attention layers by kind (windows, chunks)
  bool encoder_only = false;
  ModelConfig sharded;
};

namespace {
// What a settable key sets.
enum KeyId : int {
  kArch, kModel, kPhase, kBatch, kContext, kPrompt, kTp, kEp, kPp, kBlock, kDtype, kKvDtype, kFusion, kAttention, kClock, kPowerCap,
  kInstances, kPrefillInstances, kDecodeInstances, kPrefillTp, kPrefillArch, kBatching, kTokenBudget, kMaxBatch, kTrace, kRateKey, kDuration,
  kTtftSlo, kTpotSlo, kPrefixCaching, kRouting, kSpecK, kSpecAccept, kDraft, kKvLink, kRuntime,
  kArchKey, kModelKey, kVariable
};
int key_id(const std::string& key) {
  static const std::map<std::string, int> ids = {{"arch", kArch},     {"model", kModel},       {"phase", kPhase},     {"batch", kBatch},
                                                 {"context", kContext}, {"prompt", kPrompt},   {"tp", kTp},           {"ep", kEp},  {"pp", kPp},         {"block", kBlock},
                                                 {"dtype", kDtype},   {"kv_dtype", kKvDtype}, {"fusion", kFusion},   {"attention", kAttention},
                                                 {"clock", kClock},   {"power_cap", kPowerCap},
                                                 {"instances", kInstances}, {"prefill_instances", kPrefillInstances}, {"decode_instances", kDecodeInstances},
                                                 {"prefill_tp", kPrefillTp}, {"prefill_arch", kPrefillArch}, {"batching", kBatching},
                                                 {"token_budget", kTokenBudget}, {"max_batch", kMaxBatch}, {"trace", kTrace}, {"request_rate", kRateKey},
                                                 {"duration", kDuration}, {"ttft_slo", kTtftSlo}, {"tpot_slo", kTpotSlo},
                                                 {"prefix_caching", kPrefixCaching}, {"routing", kRouting}, {"spec_k", kSpecK},
                                                 {"spec_accept", kSpecAccept}, {"draft", kDraft}, {"kv_link", kKvLink}, {"runtime", kRuntime}};
  if (auto it = ids.find(key); it != ids.end()) return it->second;
  return key.starts_with("arch.") ? kArchKey : kModelKey;
}
}  // namespace

// The settable values of a point, resolved.
struct PointEvaluator::Settings {
  std::string arch_name, model_name, phase = "decode", dtype, kv_dtype, fusion, attention = "1pass";
  std::vector<std::string> arch_sets, model_sets;
  std::string arch_key, model_key;
  int64_t batch = 1, context = 2048, prompt = 2048, tp = 1, ep = 1, pp = 1, block = 256;
  double clock = 0, power_cap = 0;
  bool block_set = false;
  // Serving sweeps (ServeConfig's defaults).
  int64_t instances = 1, prefill_instances = 0, decode_instances = 0, prefill_tp = 0, token_budget = 8192, max_batch = 256, spec_k = 0;
  std::string prefill_arch, batching = "prefill-first", trace = "conv", prefix_caching = "off", routing = "least-loaded", draft = "mtp",
                            kv_link = "network", runtime;
  double rate = 0, duration = 0, ttft_slo = 2, tpot_slo = 0.2, spec_accept = 0;

  void apply(int id, const std::string& key, ValueKind kind, const std::string& text, const SweepValue& v) {
    const auto n = static_cast<int64_t>(std::llround(v.number));
    switch (id) {
      case kArch: arch_name = v.text; break;
      case kModel: model_name = v.text; break;
      case kPhase: phase = v.text; break;
      case kBatch: batch = n; break;
      case kContext: context = n; break;
      case kPrompt: prompt = n; break;
      case kTp: tp = n; break;
      case kEp: ep = n; break;
      case kPp: pp = n; break;
      case kBlock: block = n, block_set = true; break;
      case kInstances: instances = n; break;
      case kPrefillInstances: prefill_instances = n; break;
      case kDecodeInstances: decode_instances = n; break;
      case kPrefillTp: prefill_tp = n; break;
      case kPrefillArch: prefill_arch = v.text; break;
      case kBatching: batching = v.text; break;
      case kTokenBudget: token_budget = n; break;
      case kMaxBatch: max_batch = n; break;
      case kTrace: trace = v.text; break;
      case kRateKey: rate = v.number; break;
      case kDuration: duration = v.number; break;
      case kTtftSlo: ttft_slo = v.number; break;
      case kTpotSlo: tpot_slo = v.number; break;
      case kPrefixCaching: prefix_caching = v.text; break;
      case kRouting: routing = v.text; break;
      case kSpecK: spec_k = n; break;
      case kSpecAccept: spec_accept = v.number; break;
      case kDraft: draft = v.text; break;
      case kKvLink: kv_link = v.text; break;
      case kRuntime: runtime = v.text; break;
      case kDtype: dtype = v.text; break;
      case kKvDtype: kv_dtype = v.text; break;
      case kFusion: fusion = v.text; break;
      case kAttention: attention = v.text; break;
      case kClock: clock = v.number; break;
      case kPowerCap: power_cap = v.number; break;
      default: {
        // arch.* and model.* keys: a `--set` override.
        std::string o = key + "=";
        if (kind == ValueKind::Name || kind == ValueKind::Quantity) o += "\"" + text + "\"";
        else if (kind == ValueKind::Integer) o += number_text(v.number);
        else o += text;
        (id == kArchKey ? arch_sets : model_sets).push_back(std::move(o));
      }
    }
  }
};

std::vector<SweepColumn> sweep_columns(const SweepSpec& s) {
  std::vector<SweepColumn> c = {{"hash", "INTEGER"}, {"idx", "INTEGER"}, {"status", "TEXT"}, {"error", "TEXT"}};
  for (const SweepParam& p : s.params) c.push_back({p.key, sql_type(p.kind)});
  for (const SweepExpr& d : s.derived) c.push_back({d.name, d.kind == ValueKind::Toml ? "TEXT" : "REAL"});
  for (const MetricInfo& m : sweep_metrics()) c.push_back({m.name, "REAL"});
  c.push_back({"bottleneck", "TEXT"});
  for (const SweepExpr& o : s.outputs) c.push_back({o.name, "REAL"});
  return c;
}

namespace {

// How many distinct architectures (prefix "arch") or models ("model") a grid sweep can name:
// the product of the sizes of the parameters that set them (every point, when a derived value
// sets one); 0 when unbounded (samples, continuous ranges).
size_t distinct_settings(const SweepSpec& s, const std::string& prefix) {
  if (s.design != Design::Grid) return 0;
  auto sets = [&](const std::string& key) { return key == prefix || key.starts_with(prefix + "."); };
  for (const SweepExpr& d : s.derived)
    if (d.settable && sets(d.name)) return static_cast<size_t>(std::max<int64_t>(s.total, 1));
  size_t n = 1;
  for (const SweepParam& p : s.params)
    if (p.settable && sets(p.key)) {
      if (p.size() <= 0) return 0;
      n *= static_cast<size_t>(p.size());
      if (n > (size_t{1} << 20)) return 0;
    }
  return n;
}

// Cache entries: all of them when a grid names at most 4096 (an architecture is a few KB), else 256.
size_t cache_capacity(size_t distinct) { return distinct > 0 && distinct <= 4096 ? std::max<size_t>(distinct, 256) : 256; }

}  // namespace

PointEvaluator::PointEvaluator(const SweepSpec& s)
    : s_(s),
      samples_(make_samples(s)),
      set_(std::make_unique<Settings>()),
      arch_capacity_(cache_capacity(distinct_settings(s, "arch"))),
      model_capacity_(cache_capacity(distinct_settings(s, "model"))) {
  slots_.assign(s.slots(), std::numeric_limits<double>::quiet_NaN());
  derived_text_.resize(s.derived.size());
  // Every point sets the same keys: their order (sorted, so the canonical text and the
  // overrides do not depend on the spec's layout) is fixed here. Variables enter the
  // canonical text as "$name".
  for (size_t k = 0; k < s.fixed.size(); ++k) order_.push_back({Entry::Fixed, k, &s.fixed[k].key, s.fixed[k].kind, s.fixed[k].dim, key_id(s.fixed[k].key), ""});
  for (size_t k = 0; k < s.params.size(); ++k) {
    const SweepParam& p = s.params[k];
    order_.push_back({Entry::Param, k, &p.key, p.kind, p.dim, p.settable ? key_id(p.key) : kVariable, ""});
  }
  for (size_t k = 0; k < s.derived.size(); ++k)
    if (s.derived[k].settable) order_.push_back({Entry::Derived, k, &s.derived[k].name, s.derived[k].kind, s.derived[k].dim, key_id(s.derived[k].name), ""});
  for (Entry& e : order_) e.canon_key = (e.key_id == kVariable ? "$" : "") + *e.key + "=";
  std::sort(order_.begin(), order_.end(), [](const Entry& a, const Entry& b) { return a.canon_key < b.canon_key; });
}
PointEvaluator::~PointEvaluator() = default;

uint64_t PointEvaluator::prepare(int64_t i) {
  index_ = i;
  point_values(s_, samples_, i, values_);
  std::fill(slots_.begin(), slots_.end(), std::numeric_limits<double>::quiet_NaN());
  for (size_t k = 0; k < values_.size(); ++k)
    if (!values_[k].is_text()) slots_[k] = values_[k].number;
  for (size_t k = 0; k < s_.derived.size(); ++k) {
    const SweepExpr& d = s_.derived[k];
    if (d.kind != ValueKind::Toml) {
      slots_[static_cast<size_t>(s_.derived_slot(k))] = d.parts[0].eval(slots_.data());
      continue;
    }
    std::string text = "[";
    for (size_t j = 0; j < d.parts.size(); ++j) text += (j ? ", " : "") + number_text(d.parts[j].eval(slots_.data()));
    derived_text_[k] = text + "]";
  }
  // The settings and the canonical text, in the key order fixed at construction.
  Settings& st = *set_;
  st = Settings{};
  canon_ = s_.mode == SweepMode::Roofline ? "mode=roofline\n" : s_.mode == SweepMode::Serve ? "mode=serve\n" : fmt::format("mode=mapped\nmax_tiles={}\n", s_.max_tiles);
  SweepValue derived_value;
  for (const Entry& e : order_) {
    const SweepValue* v = nullptr;
    if (e.source == Entry::Fixed) v = &s_.fixed[e.index].values.front();
    else if (e.source == Entry::Param) v = &values_[e.index];
    else {
      derived_value.text = s_.derived[e.index].kind == ValueKind::Toml ? derived_text_[e.index] : std::string();
      derived_value.number = slots_[static_cast<size_t>(s_.derived_slot(e.index))];
      v = &derived_value;
    }
    const std::string text = value_text(e.kind, e.dim, *v);
    if (e.key_id != kVariable) st.apply(e.key_id, *e.key, e.kind, text, *v);
    canon_ += e.canon_key;
    canon_ += text;
    canon_ += '\n';
  }
  st.arch_key = st.arch_name;
  for (const std::string& x : st.arch_sets) st.arch_key += "\n" + x;
  st.model_key = st.model_name;
  for (const std::string& x : st.model_sets) st.model_key += "\n" + x;
  hash_ = fnv1a(canon_);
  return hash_;
}

void check_sweep(const SweepSpec& s) {
  // The first point's architecture and model with every derived key applied: a derived value
  // the configs reject is reported at its line in the spec, not as an error row per point.
  PointEvaluator ev(s);
  ev.prepare(0);
  try {
    ev.load_point();
  } catch (const UserError& e) {
    const std::string& f = e.loc().file;
    for (const SweepExpr& d : s.derived)
      if (d.settable && f.starts_with("--set " + d.name + "="))
        throw UserError(d.loc, fmt::format("'{}' = {} is rejected: {}", d.name, f.substr(6 + d.name.size() + 1), e.message()));
    throw;
  }
}

void PointEvaluator::load_point() {
  const Settings& st = *set_;
  arch(st.arch_key, st.arch_name, st.arch_sets);
  model(st.model_key, st.model_name, st.model_sets);
}

const ArchSpec& PointEvaluator::arch(const std::string& key, const std::string& name, const std::vector<std::string>& sets) {
  if (auto it = archs_.find(key); it != archs_.end()) return *it->second;
  if (archs_.size() >= arch_capacity_) archs_.clear();  // bounded: a random sweep over hardware varies it every point
  // The runtime's launch cost applied once per architecture (run_model then copies nothing).
  auto a = std::make_shared<const ArchSpec>(with_runtime(load_arch(name, sets), runtime_, PhaseKind::Decode));
  return *archs_.emplace(key, std::move(a)).first->second;
}

const ModelConfig& PointEvaluator::model(const std::string& key, const std::string& name, const std::vector<std::string>& sets) {
  if (auto it = models_.find(key); it != models_.end()) return *it->second;
  if (models_.size() >= model_capacity_) models_.clear();
  auto m = std::make_shared<const ModelConfig>(load_model(name, sets));
  return *models_.emplace(key, std::move(m)).first->second;
}

const ModelSizes& PointEvaluator::sizes(const ModelConfig& m, const std::string& key, int64_t tp, DType dt, int64_t ep) {
  const std::string k = fmt::format("{}|{}|{}|{}", key, tp, dtype_name(dt), ep);
  if (auto it = sizes_.find(k); it != sizes_.end()) return *it->second;
  if (sizes_.size() >= 1024) sizes_.clear();
  auto z = std::make_shared<ModelSizes>();
  try {
    // Expert parallelism (as run_model checks it): whole experts, ep / tp of them per device.
    if (ep > 1) {
      if (m.num_local_experts == 0) throw UserError(SourceLoc{"ep"}, fmt::format("ep {}: '{}' has no experts to split", ep, m.name));
      if (ep % tp != 0) throw UserError(SourceLoc{"ep"}, fmt::format("ep {} is not a multiple of tp {}", ep, tp));
      if (m.num_local_experts % ep != 0)
        throw UserError(SourceLoc{"ep"}, fmt::format("ep {} does not divide the {} experts of '{}'", ep, m.num_local_experts, m.name));
    }
    ModelConfig sh = shard_model(m, tp, ep);
    sh.dtype = dt;
    const ParamCounts pc = count_params(sh);
    const double L = static_cast<double>(sh.num_hidden_layers);
    z->dtype = dt;
    // Bytes as stored (a quantization scheme's types and scales); with expert parallelism
    // this device holds 1 / ep of the experts.
    const double experts_here = pc.expert_bytes / static_cast<double>(ep);
    z->weights = pc.total_bytes - pc.expert_bytes + experts_here;
    // Experts: every one is stored; a decode step reads those its tokens are routed to.
    if (sh.num_local_experts > sh.num_experts_per_tok) {
      z->expert_share = static_cast<double>(sh.num_experts_per_tok) / static_cast<double>(sh.num_local_experts);
      z->expert_weights = experts_here;
      // (total - active = the experts not chosen: experts x (1 - share).)
      z->expert_flops = 2 * (pc.total - pc.active) / (1 - z->expert_share) * z->expert_share;
    }
    z->dense_weights = z->weights - z->expert_weights;
    z->moe_layers = static_cast<double>(sh.moe_layers());
    z->experts_per_token = static_cast<double>(sh.num_experts_per_tok);
    const double per_layer_active = (pc.active - pc.embedding - pc.final_norm) / L;
    z->linear_flops = 2 * L * per_layer_active;
    z->head_flops = 2 * static_cast<double>(sh.hidden_size) * static_cast<double>(sh.vocab_size);
    z->attention_flops = 4 * static_cast<double>(sh.attention_layers()) * static_cast<double>(sh.num_attention_heads) * static_cast<double>(sh.head_dim);
    z->sublayers = static_cast<double>(sh.sublayers());
    for (const LayerGroup& g : sh.layer_groups())
      if (g.kind.mixer == MixerKind::Attention) z->attention_groups.push_back(g);
    z->hidden = static_cast<double>(sh.hidden_size);
    z->layers = L;
    z->encoder_only = sh.encoder_only;
    z->sharded = std::move(sh);
  } catch (const UserError& e) {
    z->error = e.message();
  }
  return *sizes_.emplace(k, std::move(z)).first->second;
}

void PointEvaluator::evaluate(std::vector<Cell>& row) {
  const size_t nparams = s_.params.size(), nderived = s_.derived.size(), nmetrics = sweep_metrics().size();
  row.resize(4 + nparams + nderived + nmetrics + 1 + s_.outputs.size());
  for (Cell& c : row) c.set_null();
  row[kHashColumn].set_int(static_cast<int64_t>(hash_));
  row[kIndexColumn].set_int(index_);
  for (size_t k = 0; k < nparams; ++k) {
    const SweepParam& p = s_.params[k];
    Cell& c = row[4 + k];
    if (values_[k].is_text()) c.set_text(values_[k].text);
    else if (p.kind == ValueKind::Integer || p.kind == ValueKind::Tokens) c.set_int(std::llround(values_[k].number));
    else c.set_real(values_[k].number);
  }
  for (size_t k = 0; k < nderived; ++k) {
    Cell& c = row[4 + nparams + k];
    if (s_.derived[k].kind == ValueKind::Toml) c.set_text(derived_text_[k]);
    else c.set_real(slots_[static_cast<size_t>(s_.derived_slot(k))]);
  }
  const size_t metric0 = 4 + nparams + nderived;
  auto metric = [&](MetricId id) -> double& { return slots_[static_cast<size_t>(s_.metric_slot(static_cast<size_t>(id)))]; };
  std::string bottleneck;

  auto finish = [&](const char* status, const std::string& error) {
    row[kStatusColumn].set_text(status);
    if (!error.empty()) row[kErrorColumn].set_text(error);
    for (size_t k = 0; k < nmetrics; ++k) row[metric0 + k].set_real(slots_[static_cast<size_t>(s_.metric_slot(k))]);
    if (!bottleneck.empty()) row[metric0 + nmetrics].set_text(bottleneck);
    for (size_t k = 0; k < s_.outputs.size(); ++k) row[metric0 + nmetrics + 1 + k].set_real(slots_[static_cast<size_t>(s_.output_slot(k))]);
  };

  // A derived value that is not a finite number (batch / 0) makes the point an error, not a
  // NULL beside status ok.
  for (size_t k = 0; k < nderived; ++k)
    if (s_.derived[k].kind != ValueKind::Toml && !std::isfinite(slots_[static_cast<size_t>(s_.derived_slot(k))]))
      return finish("error", fmt::format("derived '{}' = {} is not a finite number ({})", s_.derived[k].name,
                                         slots_[static_cast<size_t>(s_.derived_slot(k))], s_.derived[k].parts[0].text()));
  const Settings& st = *set_;
  try {
    const ArchSpec& a = arch(st.arch_key, st.arch_name, st.arch_sets);
    const ModelConfig& m0 = model(st.model_key, st.model_name, st.model_sets);
    const DType dt = st.dtype.empty() ? m0.dtype : *parse_dtype(st.dtype);
    const ModelSizes& z = sizes(m0, st.model_key, st.tp, dt, st.ep);
    // Expert parallelism: ep / tp data-parallel groups, each its share of the batch.
    const double groups = st.ep > 1 ? static_cast<double>(st.ep) / st.tp : 1.0;  // (ep is a multiple of tp: sizes() checks)
    if (!z.error.empty()) return finish("error", z.error);
    if (a.arrays.empty()) return finish("error", fmt::format("'{}' has no compute arrays", a.name));
    const bool decode = st.phase == "decode";
    const DType kv_dt = st.kv_dtype.empty() ? dt : *parse_dtype(st.kv_dtype);
    // Windows and chunks cap what some layers keep.
    const double kv = z.encoder_only ? 0 : z.sharded.kv_bytes(kv_dt, decode ? st.context + 1 : st.prompt) * std::ceil(static_cast<double>(st.batch) / groups);
    const MemoryTier& tier = *a.tier(storage_path(a, 0)[0]);
    if (s_.mode == SweepMode::Serve) {
      if (const SweepExpr* pruned = evaluate_serve(a, m0)) return finish("pruned", pruned->parts[0].text());
      for (size_t k = 0; k < s_.outputs.size(); ++k) {
        double& out = slots_[static_cast<size_t>(s_.output_slot(k))];
        out = s_.outputs[k].parts[0].eval(slots_.data());
        if (std::isinf(out)) return finish("error", fmt::format("output '{}' is infinite ({})", s_.outputs[k].name, s_.outputs[k].parts[0].text()));
      }
      for (const SweepExpr& c : s_.constraints)
        if (!c.before && c.parts[0].eval(slots_.data()) == 0) return finish("infeasible", c.parts[0].text());
      return finish("ok", "");
    }
    const double devices = static_cast<double>(std::max(st.tp, st.ep) * st.pp);
    metric(kDevices) = devices;
    metric(kWeights) = z.weights;
    metric(kKvCache) = kv;
    metric(kCapacity) = tier.capacity;
    metric(kMemoryFit) = MemoryFit{1, tier.capacity, z.weights, 0}.holds(kv) ? 1 : 0;
    metric(kTdp) = a.power.tdp > 0 ? a.power.tdp : std::numeric_limits<double>::quiet_NaN();
    metric(kPrice) = a.cost.price ? *a.cost.price * devices : std::numeric_limits<double>::quiet_NaN();
    metric(kRate) = a.cost.rate ? *a.cost.rate * devices : std::numeric_limits<double>::quiet_NaN();
    for (const SweepExpr& c : s_.constraints)
      if (c.before && c.parts[0].eval(slots_.data()) == 0) return finish("pruned", c.parts[0].text());

    double flops = 0;
    double peak = 0;
    for (const ComputeArray& arr : a.arrays) peak = std::max(peak, arr.peak_flops(dt));
    if (s_.mode == SweepMode::Mapped) {
      RunOptions ro;
      ro.runtime = s_.runtime.get();
      ro.phase.kind = decode ? PhaseKind::Decode : PhaseKind::Prefill;
      ro.phase.batch = st.batch;
      ro.phase.context = decode ? st.context : 0;  // a prefill point has nothing cached before its prompt
      ro.phase.prompt = st.prompt;
      ro.phase.block = st.block;
      ro.phase.attention = st.attention == "3pass" ? AttentionKind::ThreePass : AttentionKind::OnePass;
      if (!st.kv_dtype.empty()) ro.phase.kv_dtype = kv_dt;
      ro.tp = st.tp;
      ro.ep = st.ep;
      ro.pp = st.pp;
      ro.dtype = dt;
      if (!st.fusion.empty()) ro.fusion = parse_fusion(st.fusion);
      ro.check_memory = false;
      ro.emulate = s_.emulate;
      ro.mapper.max_tiles = s_.max_tiles;
      // Bounded memory: bound cascades are kept per phase (a new context is a new cascade),
      // mappings per Einsum shape; a long sweep drops them when they grow large.
      if (cache_.cascades().size() > 64) cache_.cascades().clear();
      if (cache_.size() > 100000) cache_ = MapCache{};
      const RunReport r = st.clock > 0 || st.power_cap > 0 ? run_powered(m0, a, ro, st.clock, st.power_cap, &cache_) : run_model(m0, a, ro, &cache_);
      mappings_ += r.mappings_evaluated;
      const TierMemory& mem = r.memory.front();
      metric(kLatency) = r.step_time;
      metric(kThroughput) = r.tokens_per_s;
      metric(kEnergyPerToken) = r.energy_per_token;
      metric(kPower) = r.power;
      metric(kActivations) = mem.activations;
      metric(kMemory) = mem.total();
      metric(kMemoryFit) = mem.fit().holds(mem.kv_cache) ? 1 : 0;
      metric(kComputeTime) = r.compute_time;
      metric(kAllreduceTime) = r.allreduce_time;
      metric(kWeights) = mem.weights;
      metric(kKvCache) = mem.kv_cache;
      flops = r.flops;
      // The bottleneck that holds the most time.
      std::map<std::string, double> by;
      for (const BlockRun& b : r.blocks) by[b.bottleneck] += b.time;
      double most = -1;
      for (const auto& [name, t] : by)
        if (t > most) most = t, bottleneck = name;
      if (r.allreduce_time > most) bottleneck = "all-reduce";
      if (r.alltoall_time > std::max(most, r.allreduce_time)) bottleneck = "all-to-all";
    } else {
      // Roofline screen: per device, FLOPs at the largest array's achievable rate against
      // the bytes every step must move (weights read once, the KV cache read by decode and
      // written by prefill) at the tier's achievable bandwidth; the all-reduce as run_model
      // computes it. No fusion, mapping, launches or activations.
      ArchSpec clocked;
      if (st.clock > 0) clocked = at_clock(a, st.clock);
      const ArchSpec& ar = st.clock > 0 ? clocked : a;
      if (st.pp > 1) return finish("error", "pp > 1 needs mode = \"mapped\": the roofline screen has no pipeline model");
      const ComputeArray* best = &ar.arrays.front();
      for (const ComputeArray& arr : ar.arrays)
        if (arr.peak_flops(dt) > best->peak_flops(dt)) best = &arr;
      const double raw_peak = best->peak_flops(dt);
      if (raw_peak <= 0) return finish("error", fmt::format("no array of '{}' computes {}", a.name, dtype_name(dt)));
      const double mac_eff = ar.gpu && ar.gpu->efficiency.count(OpClass::Mac) ? ar.gpu->efficiency.at(OpClass::Mac) : 1.0;
      const double mem_eff = ar.gpu ? ar.gpu->memory_efficiency : 1.0;
      // (With expert parallelism a device runs its group's share; its experts see every
      // group's tokens.)
      const double all_tokens = static_cast<double>(st.batch) * (decode ? 1.0 : static_cast<double>(st.prompt));
      const double requests = std::ceil(static_cast<double>(st.batch) / groups);
      const double tokens = requests * (decode ? 1.0 : static_cast<double>(st.prompt));
      const double keys = decode ? z.sharded.kv_tokens(st.context + 1) : static_cast<double>(st.prompt);  // over the attention layers
      const double queries = decode ? requests : tokens;
      // A decoder's prefill skips the masked key blocks (workloads/transformer.h), and those a
      // window or chunk leaves behind: the mean over the attention layers.
      double causal = 1.0;
      if (!decode && !z.encoder_only) {
        double sum = 0, n = 0;
        for (const LayerGroup& g : z.attention_groups) {
          sum += static_cast<double>(g.count) * causal_attention_work(0, st.prompt, 128, g.kind.window, g.kind.chunk);
          n += static_cast<double>(g.count);
        }
        causal = n > 0 ? sum / n : 1.0;
      }
      // A device runs its group's tokens through the dense layers; its experts (whole, ep of
      // them over the instance) see every group's pairs: tokens x expert FLOPs / tp of them.
      const double linear = st.ep > 1 ? z.linear_flops - z.expert_flops * (1 - 1.0 / static_cast<double>(st.tp)) : z.linear_flops;
      flops = tokens * linear + requests * z.head_flops + queries * keys * z.attention_flops * causal;
      const double touched = z.expert_weights > 0 ? 1 - std::pow(1 - z.expert_share, all_tokens) : 0;
      const double bytes = z.dense_weights + z.expert_weights * touched + kv;
      const double t_compute = flops / (raw_peak * mac_eff);
      const double t_memory = bytes / (tier.read_bandwidth * mem_eff);
      double ar_time = 0, link_energy = 0;
      const Fabric fab = st.tp > 1 || st.ep > 1 ? fabric(ar) : Fabric{};
      if (st.tp > 1 || st.ep > 1)
        for (const auto& [key, n] : {std::pair{"tp", st.tp}, std::pair{"ep", st.ep}})
          if (const std::string why = fab.unusable(n); !why.empty()) return finish("error", fmt::format("'{}' cannot run {} {}: {}", a.name, key, n, why));
      if (st.tp > 1) {
        const TensorParallelComm comm = tensor_parallel_allreduces(fab, st.tp, z.sublayers, tokens * z.hidden * dtype_bytes(dt));
        ar_time = comm.time;
        link_energy = fab.energy(comm.bytes, comm.out_bytes);
      }
      // Expert parallelism across groups: per MoE layer an all-to-all of the group's tokens'
      // k hidden states out and one back, as run_model costs them.
      double a2a_time = 0;
      if (st.ep > 1 && groups > 1) {
        const double sent = tokens * z.experts_per_token * z.hidden * dtype_bytes(dt);
        const CollectiveCost one = collective_cost(fab, Collective::AllToAll, st.ep, sent, runtime_.collective_base);
        a2a_time = 2 * z.moe_layers * one.time;
        link_energy += 2 * z.moe_layers * fab.energy(one);
      }
      // The runtime's host time per step (the roofline counts no kernels, so no launches).
      const double step = std::max(t_compute, t_memory) + ar_time + a2a_time + runtime_.iteration;
      auto e_mac = best->energy.find(OpClass::Mac);
      const double dynamic = flops / 2 * (e_mac == best->energy.end() ? 0.0 : e_mac->second) + bytes * tier.energy + link_energy;
      bottleneck = t_compute >= t_memory ? fmt::format("compute ({})", best->name) : fmt::format("{} bandwidth", tier.name);
      if (ar_time > std::max(t_compute, t_memory)) bottleneck = "all-reduce";
      if (a2a_time > std::max({t_compute, t_memory, ar_time})) bottleneck = "all-to-all";
      metric(kLatency) = step;
      metric(kThroughput) = tokens * groups / step;
      metric(kEnergyPerToken) = devices * (dynamic + ar.power.active * step) / (tokens * groups);
      metric(kPower) = ar.power.active + dynamic / step;
      metric(kActivations) = 0;
      metric(kMemory) = z.weights + kv;
      metric(kComputeTime) = std::max(t_compute, t_memory);
      metric(kAllreduceTime) = ar_time;
    }
    const double latency = metric(kLatency);
    metric(kThroughputPerDevice) = metric(kThroughput) / devices;
    metric(kCostPerMtok) = a.cost.rate ? *a.cost.rate * devices / metric(kThroughput) * 1e6 : std::numeric_limits<double>::quiet_NaN();
    metric(kUtilization) = peak > 0 && latency > 0 ? flops / (peak * latency) : std::numeric_limits<double>::quiet_NaN();
    for (size_t k = 0; k < s_.outputs.size(); ++k) {
      double& out = slots_[static_cast<size_t>(s_.output_slot(k))];
      out = s_.outputs[k].parts[0].eval(slots_.data());
      // NaN is "not given" (an output of a metric the point has none of: stored empty); an
      // infinite output is a division by zero in the spec.
      if (std::isinf(out)) return finish("error", fmt::format("output '{}' is infinite ({})", s_.outputs[k].name, s_.outputs[k].parts[0].text()));
    }
    for (const SweepExpr& c : s_.constraints)
      if (!c.before && c.parts[0].eval(slots_.data()) == 0) return finish("infeasible", c.parts[0].text());
    return finish("ok", "");
  } catch (const UserError& e) {
    return finish("error", e.loc().file.empty() ? e.message() : e.what());
  }
}

const SweepExpr* PointEvaluator::evaluate_serve(const ArchSpec& a, const ModelConfig& m0) {
  const Settings& st = *set_;
  auto metric = [&](MetricId id) -> double& { return slots_[static_cast<size_t>(s_.metric_slot(static_cast<size_t>(id)))]; };
  const bool disagg = st.prefill_instances > 0 || st.decode_instances > 0;
  if (disagg && (st.prefill_instances < 1 || st.decode_instances < 1))
    throw UserError(SourceLoc{"prefill_instances"}, fmt::format("disaggregated serving needs both pools: prefill_instances {} and decode_instances {}",
                                                                st.prefill_instances, st.decode_instances));
  if (!disagg && (st.prefill_tp > 0 || !st.prefill_arch.empty()))
    throw UserError(SourceLoc{st.prefill_tp > 0 ? "prefill_tp" : "prefill_arch"}, "prefill_tp and prefill_arch size a disaggregated prefill pool: set prefill_instances and decode_instances");
  if (disagg && (st.pp > 1 || st.ep > 1)) throw UserError(SourceLoc{st.pp > 1 ? "pp" : "ep"}, "disaggregated pools run tensor parallelism only");
  if (st.spec_k == 0 && st.spec_accept > 0) throw UserError(SourceLoc{"spec_accept"}, "spec_accept needs spec_k, the tokens drafted per step");
  if (st.routing == "cache-aware" && st.prefix_caching != "on") throw UserError(SourceLoc{"routing"}, "cache-aware routing needs prefix_caching = \"on\"");
  const DType dt = st.dtype.empty() ? m0.dtype : *parse_dtype(st.dtype);
  // The trace, once per (trace, rate, duration).
  const std::string tkey = fmt::format("{}|{}|{}", st.trace, st.rate, st.duration);
  auto tit = traces_.find(tkey);
  if (tit == traces_.end()) {
    if (traces_.size() >= 16) traces_.clear();
    Trace t = load_trace(st.trace);
    if (st.rate > 0) t = scale_to_rate(t, st.rate);
    keep_first(t, st.duration);
    tit = traces_.emplace(tkey, std::make_shared<const Trace>(std::move(t))).first;
  }
  const Trace& trace = *tit->second;
  // The deployment's timers, once per what they depend on.
  ServeConfig c;
  c.tp = st.tp;
  c.ep = st.ep;
  c.pp = st.pp;
  c.servers = 1;
  c.instances_per_server = st.instances;
  if (st.block_set) c.block = st.block;
  c.batching = st.batching == "chunked" ? Batching::Chunked : Batching::PrefillFirst;
  c.token_budget = st.token_budget;
  c.max_batch = st.max_batch;
  c.ttft_slo = st.ttft_slo;
  c.tpot_slo = st.tpot_slo;
  c.prefix_caching = st.prefix_caching == "on";
  c.routing = st.routing == "round-robin" ? Routing::RoundRobin : st.routing == "cache-aware" ? Routing::CacheAware : Routing::LeastLoaded;
  c.spec.k = st.spec_k;
  c.spec.acceptance = st.spec_accept;
  c.operating.lock = st.clock;
  c.operating.cap = st.power_cap;
  const std::string rkey = fmt::format("{}\n{}\n{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", st.arch_key, st.model_key, st.tp, st.ep, st.pp, dtype_name(dt), st.kv_dtype,
                                       disagg ? st.prefill_arch + "/" + std::to_string(st.prefill_tp) : "-", st.spec_k > 0 ? st.draft : "-", st.runtime, s_.emulate,
                                       disagg);
  auto rit = rigs_.find(rkey);
  if (rit == rigs_.end()) {
    if (rigs_.size() >= 32) rigs_.clear();
    Deployment d;
    d.model = m0;
    d.model.dtype = dt;
    d.arch = load_arch(st.arch_name, st.arch_sets);
    d.runtime = st.runtime.empty() ? s_.runtime : std::make_shared<const Runtime>(load_runtime(st.runtime));
    if (!st.kv_dtype.empty()) d.kv_dtype = parse_dtype(st.kv_dtype);
    d.emulate = s_.emulate;
    d.config = c;
    if (disagg) {
      d.config.disagg.prefill = st.prefill_instances;
      d.config.disagg.decode = st.decode_instances;
      if (!st.prefill_arch.empty()) d.prefill_arch = load_arch(st.prefill_arch);
      d.prefill_tp = st.prefill_tp;
    }
    if (st.spec_k > 0 && st.draft != "mtp") {
      d.draft = load_model(st.draft);
      d.draft->dtype = dt;
      if (d.draft->vocab_size != m0.vocab_size)
        throw UserError(SourceLoc{"draft"}, fmt::format("'{}' has a vocabulary of {} tokens and '{}' {}", d.draft->name, d.draft->vocab_size, m0.name, m0.vocab_size));
    }
    rit = rigs_.emplace(rkey, std::make_shared<ServeRig>(d)).first;
  }
  const ServeRig& rig = *rit->second;
  if (disagg) {
    const Deployment& d = rig.deployment();
    c.disagg.prefill = st.prefill_instances;
    c.disagg.decode = st.decode_instances;
    const ArchSpec& pa = d.prefill_arch ? *d.prefill_arch : d.arch;
    c.disagg.bandwidth = kv_link_bandwidth(pa, d.arch, st.kv_link, "kv_link");
    c.disagg.latency = kv_link_latency(pa, st.kv_link);
  }
  const double devices = static_cast<double>(rig.devices(c));
  metric(kDevices) = devices;
  metric(kTdp) = a.power.tdp > 0 ? a.power.tdp : std::numeric_limits<double>::quiet_NaN();
  metric(kRate) = rig.rate(c);  // known before the run: constraints on it prune
  metric(kPrice) = a.cost.price && !disagg ? *a.cost.price * devices : std::numeric_limits<double>::quiet_NaN();
  metric(kWeights) = rig.timer().weight_bytes();
  metric(kCapacity) = rig.timer().kv_capacity();
  // Constraints on the sizes and costs prune before the simulation.
  for (const SweepExpr& k : s_.constraints)
    if (k.before && k.parts[0].eval(slots_.data()) == 0) return &k;
  const ServeResult r = rig.run(trace, c);
  const ServeSummary sum = summarize(trace, r, rig, c);
  metric(kThroughput) = sum.tokens_per_s;
  metric(kThroughputPerDevice) = sum.tokens_per_s / devices;
  metric(kEnergyPerToken) = sum.energy_per_token;
  metric(kPower) = sum.gpu_power_mean;
  metric(kCostPerMtok) = sum.cost_per_mtok;
  metric(kLatency) = sum.e2e.mean;
  metric(kKvCache) = sum.kv_peak;
  metric(kGoodput) = sum.goodput;
  metric(kSloAttainment) = sum.slo_attainment;
  metric(kTtftP50) = sum.ttft.p50;
  metric(kTtftP99) = sum.ttft.p99;
  metric(kTpotP50) = sum.tpot.p50;
  metric(kTpotP99) = sum.tpot.p99;
  metric(kPrefixHitRate) = c.prefix_caching ? sum.prefix_hit_rate : std::numeric_limits<double>::quiet_NaN();
  return nullptr;
}

}  // namespace einsim
