#include "sim/analyze/flash.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/units.h"
#include "sim/analyze/scenario.h"
#include "sim/cost/cost_model.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

namespace einsim {

namespace {

// A DRAM budget: a byte size ("8 GB", returned as bytes) or a share of the model's weights
// ("55%", returned negative: -0.55). Errors at `at`, naming `what`.
double parse_budget(const std::string& v, const SourceLoc& at, const std::string& what) {
  if (!v.empty() && v.back() == '%') {
    char* end = nullptr;
    const std::string num = v.substr(0, v.size() - 1);
    const double p = std::strtod(num.c_str(), &end);
    if (num.empty() || end != num.c_str() + num.size() || !(p > 0) || p > 1000)
      throw UserError(at, fmt::format("'{}': '{}' is not a share in (0%, 1000%]", what, v));
    return -p / 100;
  }
  std::string err;
  auto q = parse_quantity(v, &err);
  if (!q || q->dim != Dim::Bytes || !(q->value > 0))
    throw UserError(at, fmt::format("'{}': '{}' is neither a positive size (\"8 GB\") nor a share (\"55%\")", what, v));
  return q->value;
}

void read_budget(const ConfigTable& t, FlashScenario& s) {
  const toml::node* n = t.node("dram");
  if (!n) return;
  const std::string what = t.path() + ".dram";
  auto v = n->value<std::string>();
  if (!v) throw UserError(t.loc("dram"), fmt::format("'{}' must be a size (\"8 GB\") or a share of the model's weights (\"55%\")", what));
  const double b = parse_budget(*v, t.loc("dram"), what);
  s.dram_fraction = b < 0 ? -b : s.dram_fraction;
  s.dram_bytes = b > 0 ? b : 0;
}

std::vector<double> read_sizes(const ConfigTable& t, const std::string& key) {
  std::vector<double> out;
  if (!t.contains(key)) return out;
  const std::vector<std::string> v = t.get_string_array(key);
  if (v.empty()) throw UserError(t.loc(key), fmt::format("'{}.{}' must be a non-empty array of sizes", t.path(), key));
  for (const std::string& x : v) {
    std::string err;
    auto q = parse_quantity(x, &err);
    if (!q || q->dim != Dim::Bytes || !(q->value > 0))
      throw UserError(t.loc(key), fmt::format("'{}.{}': '{}' is not a positive size such as \"16 GB\"", t.path(), key, x));
    out.push_back(q->value);
  }
  return out;
}

const MemoryTier* flash_tier(const ArchSpec& a) {
  for (const MemoryTier& t : a.tiers)
    if (t.kind == TierKind::Flash || t.kind == TierKind::SSD) return &t;
  return nullptr;
}

// The link flash data crosses into the device's memory: one from the compute tier to the host
// (a GPU's PCIe); none when the flash feeds the same memory the arrays read (a laptop).
const Link* host_link(const ArchSpec& a, const std::string& tier) {
  for (const Link& l : a.links)
    if (l.from == tier && l.to == "host") return &l;
  return nullptr;
}

// What bounds a step: the bottleneck of its longest block.
std::string step_bound(const RunReport& r) {
  const BlockRun* worst = nullptr;
  for (const BlockRun& b : r.blocks)
    if (!worst || b.time > worst->time) worst = &b;
  return worst ? worst->bottleneck : "-";
}

struct Computed {
  double time = 0;
  std::string bound;
};

}  // namespace

double FlashSparsity::new_fraction() const {
  return window_new ? *window_new : active * std::pow(1 - active, static_cast<double>(window));
}
double FlashSparsity::union_fraction() const {
  return window_union ? *window_union : 1 - std::pow(1 - active, static_cast<double>(window));
}

FlashScenario read_flash(const ConfigTable& t) {
  FlashScenario s;
  s.loc = t.loc();
  if (t.contains("models")) s.models = t.get_string_array("models");
  if (t.contains("hosts")) s.hosts = t.get_string_array("hosts");
  if (s.models.empty()) throw UserError(t.loc("models"), "'scenario.models' must name at least one model");
  if (s.hosts.empty()) throw UserError(t.loc("hosts"), "'scenario.hosts' must name at least one architecture");
  if (auto d = t.opt_choice("dtype", dtype_names())) s.dtype = parse_dtype(*d);
  read_budget(t, s);
  s.context = scenario_count(t, "context", 0, int64_t{1} << 24).value_or(s.context);
  s.threads = t.opt_int("threads", 1, 4096).value_or(s.threads);
  s.sequential_request = t.opt_quantity("sequential_request", Dim::Bytes).value_or(s.sequential_request);
  if (!(s.sequential_request > 0)) throw UserError(t.loc("sequential_request"), "'scenario.sequential_request' must be a positive size");
  s.hybrid_share = t.opt_number("hybrid_share", 0, 1).value_or(s.hybrid_share);
  // A sparsity table states its statistics: the window's, when absent, follow from `active`
  // (the independence model), not from OPT-6.7B's defaults. Given only the window's hold
  // (`window_union`), `active` follows from it the same way.
  auto read_stats = [](const ConfigTable& sp, FlashSparsity x, bool model_table) {
    const bool has_active = sp.contains("active");
    x.active = sp.opt_number("active", 1e-6, 1).value_or(x.active);
    x.window = sp.opt_int("window", 1, 1 << 20).value_or(x.window);
    x.window_new = sp.opt_number("window_new", 0, 1);
    x.window_union = sp.opt_number("window_union", 1e-6, 1);
    x.predictor_rank = sp.opt_int("predictor_rank", 0, 1 << 20).value_or(x.predictor_rank);
    x.recall = sp.opt_number("recall", 1e-6, 1).value_or(x.recall);
    x.precision = sp.opt_number("precision", 1e-6, 1).value_or(x.precision);
    x.source = sp.opt_string("source").value_or(model_table ? "" : x.source);
    x.active_derived = false;
    if (x.window_new && !x.window_union)
      throw UserError(sp.loc(), fmt::format("'{}' gives 'window_new' without 'window_union': give both (measured) or the hold alone", sp.path()));
    if (x.window_union && !x.window_new && !has_active) {
      x.active = 1 - std::pow(1 - *x.window_union, 1 / static_cast<double>(x.window));
      x.active_derived = true;
    }
    if (x.window_union && !x.window_new) {
      // The hold as given, the new share by independence from the active share.
      x.window_new = x.active * std::pow(1 - x.active, static_cast<double>(x.window));
    }
    if (x.window_new && *x.window_new > x.active)
      throw UserError(sp.loc("window_new"), fmt::format("'{}.window_new' ({}) exceeds 'active' ({}): the window only saves loads", sp.path(), *x.window_new, x.active));
    if (x.window_union && *x.window_union < x.active)
      throw UserError(sp.loc("window_union"),
                      fmt::format("'{}.window_union' ({}) is below 'active' ({}): the window holds at least one token's active neurons", sp.path(), *x.window_union, x.active));
    if (x.loaded() > 1)
      throw UserError(sp.loc(sp.contains("precision") ? "precision" : "recall"),
                      fmt::format("'{}': a predictor of recall {} and precision {} would load {:.3g} of the neurons of an FFN with {} active: more than all of them",
                                  sp.path(), x.recall, x.precision, x.loaded(), x.active));
    return x;
  };
  std::vector<std::pair<std::string, SourceLoc>> sparsity_keys;
  if (auto sp = t.opt_table("sparsity")) {
    FlashSparsity base;
    base.window_new.reset();
    base.window_union.reset();
    base.source = "as given";
    // Numbers belong to every model; a sub-table to the model it is named after.
    s.sparsity = read_stats(*sp, base, false);
    for (const std::string& key : sp->keys()) {
      const toml::node* n = sp->node(key);
      if (!n || !n->is_table()) continue;
      auto sub = sp->opt_table(key);
      sparsity_keys.emplace_back(key, sp->key_loc(key));
      FlashSparsity start = s.sparsity;
      start.window_new.reset();
      start.window_union.reset();
      s.model_sparsity[key] = read_stats(*sub, start, true);
    }
  }
  if (auto bt = t.opt_table("budget")) {
    // Sizes ("8 GB") or shares of each model's weights ("55%", stored negative).
    const std::vector<std::string> v = bt->get_string_array("dram");
    if (v.empty()) throw UserError(bt->loc("dram"), "'scenario.budget.dram' must be a non-empty array of sizes or shares");
    for (const std::string& x : v) s.budget_sweep.push_back(parse_budget(x, bt->loc("dram"), "scenario.budget.dram"));
    s.max_window = bt->opt_int("max_window", 1, 4096).value_or(s.max_window);
  }
  if (auto lg = t.opt_table("largest")) {
    s.rate = lg->opt_number("rate", 1e-6, 1e6).value_or(s.rate);
    s.dram_sizes = read_sizes(*lg, "dram");
    if (lg->contains("models")) s.candidates = lg->get_string_array("models");
  }
  for (const auto& [key, at] : sparsity_keys)
    if (std::find(s.models.begin(), s.models.end(), key) == s.models.end() && std::find(s.candidates.begin(), s.candidates.end(), key) == s.candidates.end())
      throw UserError(at, fmt::format("'scenario.sparsity.{}' names no model of the scenario ({})", key, fmt::join(s.models, ", ")));
  s.emulate = t.opt_bool("emulate").value_or(false);
  return s;
}

FlashScenario load_flash(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "flash", read_flash);
}

namespace {

// The ablation of one model on one host at one DRAM budget (0: the scenario's).
FlashCase flash_case(const FlashScenario& s, const std::string& model, const ArchSpec& a, double budget, MapCache& cache) {
  const ModelConfig m = scenario_model(model, s.loc);
  const MemoryTier* fl = flash_tier(a);
  if (!fl) throw UserError(a.loc, fmt::format("'{}' has no flash or ssd tier to hold the weights", a.name));
  const DType dt = s.dtype.value_or(m.dtype);
  const double e = dtype_bytes(dt);
  ModelConfig stored = m;
  stored.dtype = dt;
  const ParamCounts pc = count_params(stored);
  const double L = static_cast<double>(m.num_hidden_layers), d = static_cast<double>(m.hidden_size), I = static_cast<double>(m.intermediate_size);
  if (m.num_local_experts > 0) throw UserError(m.loc, fmt::format("'{}' routes its MLP to experts: this analysis needs a dense FFN", m.name));

  FlashCase c;
  c.model = m.name;
  c.host = a.name;
  c.flash_tier = fl->name;
  c.dtype = std::string(dtype_name(dt));
  c.params = pc.total;
  c.weights = pc.total_bytes;
  c.ffn = pc.mlp_bytes;
  c.embeddings = pc.embedding_bytes;
  const double ffn_element = c.ffn / (L * pc.per_layer_mlp);  // bytes per FFN weight as stored (quantized: scales included)
  c.attention = c.weights - c.ffn - c.embeddings;  // attention, norms
  const FlashSparsity& sp = s.sparsity_of(model);
  const double r = static_cast<double>(sp.predictor_rank);
  c.predictor = L * (d * r + r * I) * e;
  c.predictor_rank = sp.predictor_rank;
  c.kv = m.kv_bytes_per_token(dt) * static_cast<double>(m.kv_tokens(s.context + 1));
  c.dram_budget = budget > 0 ? budget : s.dram_bytes > 0 ? s.dram_bytes : s.dram_fraction * c.weights;
  const double mats = m.mlp == MlpKind::Gated ? 3 : 2;
  c.neuron_bytes = mats * d * ffn_element;  // one column of each up-type matrix and one row of the down matrix
  c.neurons = m.num_hidden_layers * m.intermediate_size;
  c.active = std::max<int64_t>(1, std::llround(sp.loaded() * I));
  if (c.weights > fl->capacity)
    throw UserError(fl->loc, fmt::format("the weights of {} ({}) do not fit {}'s {} tier ({})", m.name, fmt_bytes(c.weights), a.name, fl->name,
                                         fmt_bytes(fl->capacity)));

  // Compute: the mapped decode step, dense or with the active neurons and the predictor.
  const std::string tier = storage_path(a, 0)[0];
  const MemoryTier& dram = *a.tier(tier);
  auto step = [&](bool sparse) {
    RunOptions ro;
    ro.phase.kind = PhaseKind::Decode;
    ro.phase.batch = 1;
    ro.phase.context = s.context;
    ro.runtime = s.runtime.get();
    ro.dtype = dt;
    set_emulation(ro, s.emulate, s.loc);
    ro.check_memory = false;  // the budget is this analysis's, checked below
    if (sparse) {
      ro.phase.ffn_active = c.active;
      ro.phase.predictor_rank = sp.predictor_rank;
    }
    const RunReport rr = run_model(m, a, ro, &cache);
    return Computed{rr.step_time, step_bound(rr)};
  };
  const Computed dense = step(false), sparse = step(true);

  const double mem_eff = a.gpu ? a.gpu->memory_efficiency : 1.0;
  const Link* link = host_link(a, tier);
  auto copy_time = [&](double bytes) { return (bytes / 2 / dram.read_bandwidth + bytes / 2 / dram.write_bandwidth) / mem_eff; };
  const double nb = static_cast<double>(c.neurons);
  const double kept = c.embeddings + c.attention;  // what hybrid loading keeps in DRAM
  auto add = [&](const std::string& name, double bytes, double request, double reads, const Computed& comp, double mgmt_bytes, double resident) {
    FlashStep x;
    x.name = name;
    x.flash_bytes = bytes;
    x.request = std::min(request, bytes);
    x.reads = reads > 0 ? reads : std::ceil(bytes / x.request);
    x.throughput = fl->read_bandwidth_at(x.request, s.threads);
    const double t_flash = bytes / x.throughput;
    const double t_link = link ? bytes / link->bandwidth : 0;
    x.io = std::max(t_flash, t_link);
    x.io_bound = t_link > t_flash ? fmt::format("{} link", link->name) : fmt::format("{} ({} reads)", fl->name, fmt_bytes(x.request));
    x.mgmt_bytes = mgmt_bytes;
    x.mgmt = copy_time(mgmt_bytes);
    x.compute = comp.time;
    x.compute_bound = comp.bound;
    x.total = x.io + x.mgmt + x.compute;
    x.dram_needed = resident + c.kv;
    x.fits = x.dram_needed <= c.dram_budget;
    if (!x.fits) x.note = fmt::format("{} on {}: '{}' needs {} of DRAM, over the {} budget", c.model, c.host, name, fmt_bytes(x.dram_needed), fmt_bytes(c.dram_budget));
    c.steps.push_back(std::move(x));
  };
  const double chunk = d * e;  // one column or one row
  // Naive: every weight streamed from flash each token, in large sequential reads.
  add("naive", c.weights, s.sequential_request, 0, dense, 0, 0);
  // Hybrid (the paper's baseline): a share of the weights (half) resident, the rest streamed.
  add("hybrid", (1 - s.hybrid_share) * c.weights, s.sequential_request, 0, dense, 0, s.hybrid_share * c.weights);
  // +predictor: only the predicted-active neurons, each matrix's column or row its own read.
  add("+predictor", sp.loaded() * c.ffn, chunk, sp.loaded() * nb * mats, sparse, 0, kept + c.predictor + sp.loaded() * c.ffn);
  // +windowing: only neurons not active in the last k tokens; the window's cache is
  // reallocated and rewritten when neurons join it (paper Sec. 3.3's naive management).
  const double window = sp.loaded_union() * c.ffn, fresh = sp.loaded_new();
  add(fmt::format("+windowing (k={})", sp.window), fresh * c.ffn, chunk, fresh * nb * mats, sparse, 2 * window, kept + c.predictor + window);
  // +bundling: a neuron's columns and row stored together, one read each.
  add("+bundling", fresh * c.ffn, c.neuron_bytes, fresh * nb, sparse, 2 * window, kept + c.predictor + window);
  // +preallocation (Sec. 3.3): a preallocated matrix; each evicted neuron's slot takes the
  // last row, so only as many rows move as leave the window (as many as join it).
  add("+preallocation", fresh * c.ffn, c.neuron_bytes, fresh * nb, sparse, 2 * fresh * c.ffn, kept + c.predictor + window);
  // The DRAM budget swept, all techniques: the largest window that fits, then the rest of the
  // budget pinning FFN neurons outside it. Windows other than the statistics' own scale them by
  // the independence model's shape: new(k) = new x (1 - a)^(k - k0), held(k) = held x
  // (1 - (1 - a)^k) / (1 - (1 - a)^k0).
  if (!s.budget_sweep.empty()) {
    const double act = sp.loaded(), k0 = static_cast<double>(sp.window), held0 = sp.loaded_union(), new0 = sp.loaded_new();
    auto held = [&](int64_t k) { return std::min(1.0, held0 * (1 - std::pow(1 - act, static_cast<double>(k))) / (1 - std::pow(1 - act, k0))); };
    auto fresh_at = [&](int64_t k) { return new0 * std::pow(1 - act, static_cast<double>(k) - k0); };
    const double base_need = kept + c.predictor + c.kv;
    const double tput = fl->read_bandwidth_at(c.neuron_bytes, s.threads);
    for (double b : s.budget_sweep) {
      FlashBudgetPoint pt;
      pt.dram = b > 0 ? b : -b * c.weights;
      for (int64_t k = 1; k <= s.max_window; ++k)
        if (base_need + held(k) * c.ffn <= pt.dram) pt.window = k;
      pt.fits = pt.window > 0;
      if (pt.fits) {
        const double h = held(pt.window);
        pt.dram_used = base_need + h * c.ffn;
        // Left over at the largest window: pin that much more of the FFN (new neurons come from
        // outside the window, uniformly: pinning a share of it saves that share of the loads).
        if (pt.window == s.max_window && h < 1) pt.pinned = std::min(1 - h, (pt.dram - pt.dram_used) / c.ffn);
        pt.dram_used += pt.pinned * c.ffn;
        const double frac = fresh_at(pt.window) * (h < 1 ? 1 - pt.pinned / (1 - h) : 0);
        pt.flash_bytes = frac * c.ffn;
        const double io = std::max(pt.flash_bytes / tput, link ? pt.flash_bytes / link->bandwidth : 0.0);
        pt.latency = io + copy_time(2 * pt.flash_bytes) + sparse.time;
      }
      c.budget.push_back(pt);
    }
  }
  return c;
}

}  // namespace

FlashReport analyze_flash(const FlashScenario& s) {
  FlashReport r;
  r.scenario = s;
  MapCache cache;
  std::vector<ArchSpec> hosts;
  for (const std::string& h : s.hosts) hosts.push_back(scenario_arch(h));
  for (const ArchSpec& a : hosts)
    for (const std::string& m : s.models) {
      r.cases.push_back(flash_case(s, m, a, 0, cache));
      for (const FlashStep& x : r.cases.back().steps) r.notes.push_back(x.note);
    }
  const std::vector<std::string> cands = s.candidates.empty() ? s.models : s.candidates;
  for (const ArchSpec& a : hosts) {
    // Latency does not depend on the budget: one case per candidate, checked against each size.
    std::vector<FlashCase> done;
    done.reserve(cands.size());
    for (const std::string& m : cands) done.push_back(flash_case(s, m, a, 1, cache));
    for (double size : s.dram_sizes) {
      FlashLargest lg;
      lg.host = a.name;
      lg.dram = size;
      double best = 0;
      for (const FlashCase& c : done) {
        const double params = c.params;
        const FlashStep& all = c.steps.back();
        FlashLargest::Candidate x;
        x.model = c.model;
        x.params = params;
        x.dram_needed = all.dram_needed;
        x.latency = all.total;
        x.fits = all.dram_needed <= size;
        x.meets_rate = all.total <= 1 / s.rate;
        if (x.fits && x.meets_rate && params > best) best = params, lg.largest = c.model;
        lg.candidates.push_back(x);
      }
      r.largest.push_back(std::move(lg));
    }
  }
  for (const std::string& m : s.models) {
    const FlashSparsity& sp = s.sparsity_of(m);
    const bool own = s.model_sparsity.count(m) > 0;
    r.notes.push_back(fmt::format(
        "{}: sparsity statistics are inputs, not predictions: {:.3g}% of FFN neurons active per token{}, {:.3g}% new per token and {:.3g}% held with a "
        "window of {} tokens, a predictor of rank {} ({}{})",
        m, sp.active * 100, sp.active_derived ? " (derived from the hold)" : "", sp.new_fraction() * 100, sp.union_fraction() * 100, sp.window,
        sp.predictor_rank, own ? "its own statistics" : "the scenario's statistics, not measured for this model",
        sp.source.empty() ? "" : "; " + sp.source));
    if (sp.recall < 1 || sp.precision < 1)
      r.notes.push_back(fmt::format("{}: a predictor of recall {:.3g} and precision {:.3g} loads {:.3g}% of FFN neurons per token and misses {:.3g}% "
                                    "(truly active, not loaded: a quality cost, not modelled)",
                                    m, sp.recall, sp.precision, sp.loaded() * 100, sp.active * (1 - sp.recall) * 100));
  }
  return r;
}

namespace {

std::string ms(double s) { return fmt::format("{:.4g} ms", s * 1e3); }
std::string pct(double part, double whole) { return fmt::format("{:.1f}%", 100 * part / whole); }

}  // namespace

std::string format_flash(const FlashReport& r, Format f) {
  const FlashScenario& s = r.scenario;
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "analyze-flash";
    j["context"] = s.context;
    j["threads"] = s.threads;
    auto stats = [](const FlashSparsity& x) {
      return nlohmann::json{{"active", x.active}, {"active_derived", x.active_derived}, {"window", x.window}, {"window_new", x.new_fraction()},
                            {"window_union", x.union_fraction()}, {"window_measured", x.measured()}, {"predictor_rank", x.predictor_rank},
                            {"recall", x.recall}, {"precision", x.precision}, {"loaded", x.loaded()},
                            {"source", x.source}};
    };
    j["sparsity"] = stats(s.sparsity);
    for (const auto& [m, x] : s.model_sparsity) j["sparsity_per_model"][m] = stats(x);
    j["hybrid_share"] = s.hybrid_share;
    j["cases"] = nlohmann::json::array();
    for (const FlashCase& c : r.cases) {
      nlohmann::json cj = {{"model", c.model}, {"host", c.host}, {"flash_tier", c.flash_tier}, {"dtype", c.dtype},
                           {"weights_bytes", c.weights}, {"ffn_bytes", c.ffn}, {"embedding_bytes", c.embeddings}, {"attention_bytes", c.attention},
                           {"predictor_bytes", c.predictor}, {"kv_bytes", c.kv}, {"dram_budget_bytes", c.dram_budget},
                           {"neuron_bytes", c.neuron_bytes}, {"neurons", c.neurons}, {"active_per_layer", c.active}};
      cj["steps"] = nlohmann::json::array();
      for (const FlashStep& x : c.steps)
        cj["steps"].push_back({{"step", x.name}, {"flash_bytes", x.flash_bytes}, {"request_bytes", x.request}, {"reads", x.reads},
                               {"throughput_bytes_per_s", x.throughput}, {"io_s", x.io}, {"io_bound", x.io_bound}, {"mgmt_bytes", x.mgmt_bytes},
                               {"mgmt_s", x.mgmt}, {"compute_s", x.compute}, {"compute_bound", x.compute_bound}, {"total_s", x.total},
                               {"dram_needed_bytes", x.dram_needed}, {"fits", x.fits}});
      if (!c.budget.empty()) {
        cj["budget"] = nlohmann::json::array();
        for (const FlashBudgetPoint& b : c.budget)
          cj["budget"].push_back({{"dram_bytes", b.dram}, {"fits", b.fits}, {"window", b.window}, {"pinned_ffn_share", b.pinned},
                                  {"flash_bytes", b.flash_bytes}, {"dram_used_bytes", b.dram_used}, {"latency_s", b.latency}});
      }
      j["cases"].push_back(cj);
    }
    j["largest"] = nlohmann::json::array();
    for (const FlashLargest& lg : r.largest) {
      nlohmann::json lj = {{"host", lg.host}, {"dram_bytes", lg.dram}, {"rate_tokens_per_s", s.rate}, {"largest", lg.largest}};
      lj["candidates"] = nlohmann::json::array();
      for (const auto& x : lg.candidates)
        lj["candidates"].push_back({{"model", x.model}, {"params", x.params}, {"dram_needed_bytes", x.dram_needed}, {"latency_s", x.latency},
                                    {"fits", x.fits}, {"meets_rate", x.meets_rate}});
      j["largest"].push_back(lj);
    }
    return j.dump(2) + "\n";
  }
  // CSV keeps one number per cell: the DRAM needed and its share of the weights apart.
  const bool csv = f == Format::Csv;
  std::vector<std::string> header = {"host", "model", "step", "flash read", "request", "throughput", "I/O", "I/O bound", "mem mgmt", "compute", "compute bound",
                                     "total", "vs naive", "DRAM needed"};
  if (csv) header.push_back("DRAM needed of weights");
  TextTable t(header);
  for (const FlashCase& c : r.cases)
    for (const FlashStep& x : c.steps) {
      std::vector<std::string> row = {c.host, c.model, x.name, fmt_bytes(x.flash_bytes), fmt_bytes(x.request), fmt::format("{:.3g} GB/s", x.throughput / 1e9),
                                      ms(x.io), x.io_bound, ms(x.mgmt), ms(x.compute), x.compute_bound, x.fits ? ms(x.total) : "over budget",
                                      x.fits ? fmt::format("{:.1f}x", c.steps.front().total / x.total) : "-",
                                      csv ? fmt_bytes(x.dram_needed) : fmt::format("{} ({})", fmt_bytes(x.dram_needed), pct(x.dram_needed, c.weights))};
      if (csv) row.push_back(pct(x.dram_needed, c.weights));
      t.row(std::move(row));
    }
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format(
      "LLM in a flash: weights on flash, a DRAM budget; one token at batch 1 with {} tokens of context, {} parallel reads. Per token: I/O (bytes / "
      "the tier's read bandwidth at that request size; the host link when the flash sits behind one) + memory management (bytes copied in DRAM) + "
      "compute (einsim's mapped decode step; with the active neurons and the predictor from +predictor on).\n\n",
      s.context, s.threads);
  for (const FlashCase& c : r.cases)
    out += fmt::format(
        "{} on {} ({}): weights {}: embeddings {}, attention and norms {}, FFN {} ({} neurons of {} each); predictor rank {}: {} ({}); "
        "KV cache {}; DRAM budget {} ({}).\n",
        c.model, c.host, c.dtype, fmt_bytes(c.weights), pct(c.embeddings, c.weights), pct(c.attention, c.weights), pct(c.ffn, c.weights), c.neurons,
        fmt_bytes(c.neuron_bytes), c.predictor_rank, fmt_bytes(c.predictor), pct(c.predictor, c.weights), fmt_bytes(c.kv),
        fmt_bytes(c.dram_budget), pct(c.dram_budget, c.weights));
  out += "\n" + t.aligned();
  if (!s.budget_sweep.empty()) {
    out += fmt::format("\nDRAM budget swept (all techniques): the largest window (up to {} tokens) that fits, then the rest pinning FFN neurons outside it; "
                       "other windows scaled from the statistics by the independence model's shape.\n",
                       s.max_window);
    TextTable bt({"host", "model", "DRAM", "of weights", "window", "FFN pinned", "flash read", "per token"});
    for (const FlashCase& c : r.cases)
      for (const FlashBudgetPoint& b : c.budget)
        bt.row({c.host, c.model, fmt_bytes(b.dram), pct(b.dram, c.weights), b.fits ? std::to_string(b.window) : "-",
                b.fits ? fmt::format("{:.1f}%", 100 * b.pinned) : "-", b.fits ? fmt_bytes(b.flash_bytes) : "-", b.fits ? ms(b.latency) : "does not fit"});
    out += bt.aligned();
  }
  if (!r.largest.empty()) {
    out += fmt::format("\nLargest model at {:.3g} tokens/s (all techniques):\n", s.rate);
    TextTable lt({"host", "DRAM", "largest", "candidates (latency per token, DRAM needed)"});
    for (const FlashLargest& lg : r.largest) {
      std::string cs;
      for (const auto& x : lg.candidates)
        cs += fmt::format("{}{} {} {}{}", cs.empty() ? "" : "; ", x.model, ms(x.latency), fmt_bytes(x.dram_needed),
                          !x.fits ? " (does not fit)" : !x.meets_rate ? " (too slow)" : "");
      lt.row({lg.host, fmt_bytes(lg.dram), lg.largest.empty() ? "none" : lg.largest, cs});
    }
    out += lt.aligned();
  }
  return out + note_list("notes", r.notes);
}

std::string plot_flash_svg(const FlashReport& r) {
  std::vector<PlotPanel> panels;
  std::vector<std::string> steps;
  for (const FlashCase& c : r.cases) {
    auto it = std::find_if(panels.begin(), panels.end(), [&](const PlotPanel& p) { return p.title == c.host; });
    if (it == panels.end()) {
      PlotPanel p;
      p.title = c.host;
      p.xlabel = "technique (paper's ablation order)";
      p.ylabel = "ms per token";
      p.log_x = false;
      p.log_y = true;
      panels.push_back(std::move(p));
      it = panels.end() - 1;
    }
    if (steps.empty())
      for (const FlashStep& x : c.steps) steps.push_back(x.name);
    PlotSeries total{c.model + " total", {}, false, c.model}, io{c.model + " I/O", {}, true, c.model};
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const FlashStep& x = c.steps[i];
      if (!x.fits) continue;
      total.points.emplace_back(static_cast<double>(i + 1), x.total * 1e3);
      if (x.io > 0) io.points.emplace_back(static_cast<double>(i + 1), x.io * 1e3);
    }
    it->series.push_back(std::move(total));
    it->series.push_back(std::move(io));
  }
  for (PlotPanel& p : panels)
    p.xtick = [steps](double x) {
      const auto i = static_cast<size_t>(std::llround(x));
      return i >= 1 && i <= steps.size() ? steps[i - 1] : std::string();
    };
  return svg_plot(panels, {"dashed: flash I/O alone; steps over the DRAM budget are left out"});
}

}  // namespace einsim
