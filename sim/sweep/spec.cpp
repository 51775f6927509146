#include "sim/sweep/spec.h"

#include "sim/serve/deploy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>
#include <cmath>
#include <map>
#include <set>
#include <numeric>
#include <random>
#include <set>

#include "arch/arch.h"
#include "common/toml_reader.h"
#include "workloads/cascade.h"
#include "workloads/model_config.h"

namespace einsim {

const std::vector<MetricInfo>& sweep_metrics() {
  static const std::vector<MetricInfo> m = {
      {"devices", "", true, -1, "devices of the deployment (tensor-parallel degree)"},
      {"weights", "B", true, -1, "weight bytes per device"},
      {"kv_cache", "B", true, -1, "KV-cache bytes per device"},
      {"capacity", "B", true, 0, "bytes of the tier that holds them"},
      {"memory_fit", "", true, 0, "1 when weights, KV cache (and, once evaluated, activations) fit the tier"},
      {"tdp", "W", true, -1, "TDP of one device"},
      {"price", "$", true, -1, "purchase price of all devices ([arch.cost] price; empty when not given)"},
      {"rate", "$/s", true, -1, "rental rate of all devices ([arch.cost] rate; empty when not given)"},
      {"latency", "s", false, -1, "time of one step: TTFT for prefill, TPOT for decode"},
      {"throughput", "tokens/s", false, +1, "tokens produced (decode) or processed (prefill) per second"},
      {"throughput_per_device", "tokens/s", false, +1, "throughput / devices"},
      {"energy_per_token", "J", false, -1, "energy per token, all devices, idle/active baseline included"},
      {"power", "W", false, -1, "mean power of one device over the step"},
      {"cost_per_mtok", "$", false, -1, "$ per million tokens at the rental rate (empty without one)"},
      {"activations", "B", false, -1, "activation bytes per device"},
      {"memory", "B", false, -1, "weights + KV cache + activations per device"},
      {"utilization", "", false, +1, "FLOPs / (peak FLOP/s x latency)"},
      {"compute_time", "s", false, -1, "time of the device's own kernels per step"},
      {"allreduce_time", "s", false, -1, "tensor-parallel all-reduce time per step"},
      {"goodput", "requests/s", false, +1, "serve: requests per second meeting both SLOs"},
      {"slo_attainment", "", false, +1, "serve: share of requests meeting both SLOs"},
      {"ttft_p50", "s", false, -1, "serve: median time to first token"},
      {"ttft_p99", "s", false, -1, "serve: 99th-percentile time to first token"},
      {"tpot_p50", "s", false, -1, "serve: median time per output token"},
      {"tpot_p99", "s", false, -1, "serve: 99th-percentile time per output token"},
      {"prefix_hit_rate", "", false, +1, "serve: share of prompt tokens found in the prefix cache"},
  };
  return m;
}
static_assert(kMetricCount == 26, "MetricId follows sweep_metrics()");

uint64_t fnv1a(std::string_view s, uint64_t h) {
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

// Settable deployment keys: how their values are written.
struct KeyInfo {
  ValueKind kind;
  Dim dim;
};
const std::map<std::string, KeyInfo>& deployment_keys() {
  static const std::map<std::string, KeyInfo> k = {
      {"arch", {ValueKind::Name, Dim::Count}},     {"model", {ValueKind::Name, Dim::Count}},   {"phase", {ValueKind::Name, Dim::Count}},
      {"batch", {ValueKind::Tokens, Dim::Count}},  {"context", {ValueKind::Tokens, Dim::Count}}, {"prompt", {ValueKind::Tokens, Dim::Count}},
      {"tp", {ValueKind::Integer, Dim::Count}},    {"ep", {ValueKind::Integer, Dim::Count}}, {"pp", {ValueKind::Integer, Dim::Count}},    {"block", {ValueKind::Integer, Dim::Count}}, {"dtype", {ValueKind::Name, Dim::Count}},
      {"kv_dtype", {ValueKind::Name, Dim::Count}}, {"fusion", {ValueKind::Name, Dim::Count}},  {"attention", {ValueKind::Name, Dim::Count}},
      {"clock", {ValueKind::Quantity, Dim::Frequency}}, {"power_cap", {ValueKind::Quantity, Dim::Power}},
      // mode = "serve": a serving simulation per point (docs/SWEEPS.md).
      {"instances", {ValueKind::Integer, Dim::Count}}, {"prefill_instances", {ValueKind::Integer, Dim::Count}},
      {"decode_instances", {ValueKind::Integer, Dim::Count}}, {"prefill_tp", {ValueKind::Integer, Dim::Count}},
      {"prefill_arch", {ValueKind::Name, Dim::Count}}, {"batching", {ValueKind::Name, Dim::Count}},
      {"token_budget", {ValueKind::Tokens, Dim::Count}}, {"max_batch", {ValueKind::Integer, Dim::Count}},
      {"trace", {ValueKind::Name, Dim::Count}}, {"request_rate", {ValueKind::Real, Dim::Count}}, {"duration", {ValueKind::Quantity, Dim::Time}},
      {"ttft_slo", {ValueKind::Quantity, Dim::Time}}, {"tpot_slo", {ValueKind::Quantity, Dim::Time}},
      {"prefix_caching", {ValueKind::Name, Dim::Count}}, {"routing", {ValueKind::Name, Dim::Count}},
      {"spec_k", {ValueKind::Integer, Dim::Count}}, {"spec_accept", {ValueKind::Real, Dim::Count}}, {"draft", {ValueKind::Name, Dim::Count}},
      {"kv_link", {ValueKind::Name, Dim::Count}}, {"runtime", {ValueKind::Name, Dim::Count}},
  };
  return k;
}

// Keys only a serving sweep takes, and keys only a step sweep (mapped, roofline) takes.
bool serve_key(const std::string& key) {
  static const std::set<std::string> k = {"instances", "prefill_instances", "decode_instances", "prefill_tp", "prefill_arch", "batching", "token_budget",
                                          "max_batch", "trace", "request_rate", "duration", "ttft_slo", "tpot_slo", "prefix_caching", "routing", "spec_k",
                                          "spec_accept", "draft", "kv_link", "runtime"};
  return k.count(key) > 0;
}
bool step_key(const std::string& key) { return key == "phase" || key == "batch" || key == "context" || key == "prompt" || key == "fusion" || key == "attention"; }

std::string base_unit(Dim d) {
  switch (d) {
    case Dim::Count: return "";
    case Dim::Bytes: return "B";
    case Dim::Bandwidth: return "B/s";
    case Dim::Frequency: return "Hz";
    case Dim::Time: return "s";
    case Dim::Energy: return "J";
    case Dim::EnergyPerByte: return "J/B";
    case Dim::Power: return "W";
    case Dim::OpRate: return "FLOP/s";
    case Dim::Money: return "$";
    case Dim::MoneyRate: return "$/s";
  }
  return "";
}

bool is_settable(const std::string& key) {
  return deployment_keys().count(key) || key.starts_with("arch.") || key.starts_with("model.");
}

// Checks a deployment key's value; throws at `at`.
void check_deployment_value(const std::string& key, const SweepValue& v, const SourceLoc& at) {
  auto bad = [&](const std::string& why) { throw UserError(at, fmt::format("'{}': {}", key, why)); };
  if (key == "phase" && v.text != "prefill" && v.text != "decode") bad(fmt::format("'{}' is not prefill or decode", v.text));
  if ((key == "dtype" || key == "kv_dtype") && !parse_dtype(v.text)) bad(fmt::format("'{}' is not an element type", v.text));
  if (key == "fusion" && v.text != "none" && v.text != "eager" && v.text != "kernels" && v.text != "greedy")
    bad(fmt::format("'{}' is not none, eager, kernels or greedy", v.text));
  if (key == "attention" && v.text != "1pass" && v.text != "3pass") bad(fmt::format("'{}' is not 1pass or 3pass", v.text));
  if ((key == "batch" || key == "prompt" || key == "tp" || key == "ep" || key == "pp" || key == "block") && v.number < 1) bad("must be at least 1");
  if (key == "context" && v.number < 0) bad("must be at least 0");
  if ((key == "tp" || key == "ep" || key == "pp") && v.number > 1024) bad("at most 1024 devices");
  if ((key == "clock" || key == "power_cap") && v.number <= 0) bad("must be positive");
  if ((key == "instances" || key == "prefill_tp" || key == "token_budget" || key == "max_batch") && v.number < 1) bad("must be at least 1");
  if ((key == "prefill_instances" || key == "decode_instances" || key == "spec_k") && v.number < 0) bad("must be at least 0");
  if ((key == "instances" || key == "prefill_instances" || key == "decode_instances") && v.number > 100000) bad("at most 100000 instances");
  if (key == "spec_k" && v.number > 64) bad("at most 64 drafted tokens");
  if ((key == "request_rate" || key == "duration" || key == "ttft_slo" || key == "tpot_slo") && !(v.number > 0)) bad("must be positive");
  if (key == "spec_accept" && !(v.number >= 0 && v.number <= 1)) bad(fmt::format("an acceptance rate is in [0, 1], not {}", v.number));
  if (key == "batching" && v.text != "prefill-first" && v.text != "chunked") bad(fmt::format("'{}' is not prefill-first or chunked", v.text));
  if (key == "prefix_caching" && v.text != "on" && v.text != "off") bad(fmt::format("'{}' is not on or off", v.text));
  if (key == "routing" && v.text != "round-robin" && v.text != "least-loaded" && v.text != "cache-aware")
    bad(fmt::format("'{}' is not round-robin, least-loaded or cache-aware", v.text));
}

class SpecReader {
 public:
  SpecReader(const std::string& file, const std::vector<std::string>& overrides) : doc_(ConfigDoc::load(file, overrides)) { s_.file = file; }

  SweepSpec read() {
    const ConfigTable root = doc_->root();
    const ConfigTable sw = root.get_table("sweep");
    s_.name = sw.opt_string("name").value_or(std::filesystem::path(s_.file).stem().string());
    s_.description = sw.opt_string("description").value_or("");
    const std::string mode = sw.opt_choice("mode", {"mapped", "roofline", "serve"}).value_or("mapped");
    s_.mode = mode == "roofline" ? SweepMode::Roofline : mode == "serve" ? SweepMode::Serve : SweepMode::Mapped;
    s_.max_tiles = sw.opt_int("max_tiles", 1, int64_t{1} << 20).value_or(128);
    s_.emulate = sw.opt_bool("emulate").value_or(false);
    const std::string design = sw.opt_choice("design", {"grid", "random", "lhs"}).value_or("grid");
    s_.design = design == "random" ? Design::Random : design == "lhs" ? Design::Lhs : Design::Grid;
    if (s_.design != Design::Grid) {
      s_.samples = sw.get_int("samples", 1, int64_t{1} << 40);
      s_.seed = static_cast<uint64_t>(sw.opt_int("seed", 0).value_or(1));
    } else if (sw.contains("samples") || sw.contains("seed")) {
      throw UserError(sw.key_loc(sw.contains("samples") ? "samples" : "seed"), "'samples' and 'seed' apply to design = \"random\" or \"lhs\"");
    }

    // Fixed settings: every deployment key the [sweep] table gives.
    for (const auto& [key, info] : deployment_keys()) {
      if (!sw.contains(key)) continue;
      SweepParam p = make_param(key, true, sw.loc(key));
      p.values.push_back(read_value(p, *sw.node(key), sw.loc(key), true));
      check_deployment_value(key, p.values[0], p.loc);
      s_.fixed.push_back(std::move(p));
    }

    if (auto t = root.opt_table("parameters")) read_params(*t, true);
    if (auto t = root.opt_table("variables")) read_params(*t, false);
    if (s_.params.empty()) throw UserError(root.loc(), "a sweep needs a [parameters] table with at least one parameter");
    for (const char* key : {"arch", "model", "phase"})
      if (!has_setting(key) && (key != std::string("phase") || s_.mode != SweepMode::Serve))
        throw UserError(sw.loc(), fmt::format("the sweep sets no '{}': give it in [sweep] or as a parameter", key));
    // Serving keys and step keys belong to their modes.
    auto where = [&](const std::string& key) {
      for (const auto& f : s_.fixed)
        if (f.key == key) return f.loc;
      for (const auto& p : s_.params)
        if (p.key == key) return p.loc;
      return sw.loc();
    };
    for (const auto& [key, info] : deployment_keys()) {
      if (!has_setting(key)) continue;
      if (s_.mode == SweepMode::Serve && step_key(key))
        throw UserError(where(key), fmt::format("'{}' sets one step; a serving sweep (mode = \"serve\") runs a request trace instead", key));
      if (s_.mode != SweepMode::Serve && serve_key(key))
        throw UserError(where(key), fmt::format("'{}' is a serving key: it needs mode = \"serve\"", key));
    }
    if (s_.mode == SweepMode::Roofline && has_setting("power_cap"))
      throw UserError(sw.loc("mode"), "a roofline screen has no power model under a cap: power_cap needs mode = \"mapped\"");
    read_groups(sw);
    check_against_configs();

    if (auto t = root.opt_table("derived")) read_exprs(*t, s_.derived, true);
    for (const SweepExpr& d : s_.derived) {
      if (!d.settable) continue;
      if (s_.mode == SweepMode::Serve && step_key(d.name))
        throw UserError(d.loc, fmt::format("'{}' sets one step; a serving sweep (mode = \"serve\") runs a request trace instead", d.name));
      if (s_.mode != SweepMode::Serve && serve_key(d.name)) throw UserError(d.loc, fmt::format("'{}' is a serving key: it needs mode = \"serve\"", d.name));
    }
    if (auto t = root.opt_table("outputs")) read_exprs(*t, s_.outputs, false);
    if (sw.contains("constraints")) {
      const toml::array* arr = sw.node("constraints")->as_array();
      if (!arr) throw UserError(sw.loc("constraints"), "'constraints' is an array of expressions, e.g. [\"memory_fit\", \"power <= 700 W\"]");
      for (const toml::node& n : *arr) {
        const auto* str = n.as_string();
        if (!str) throw UserError(loc_of(n, sw.loc("constraints")), "a constraint is a string expression");
        SweepExpr c;
        c.loc = loc_of(n, sw.loc("constraints")).shifted(1);
        c.parts.push_back(Formula::parse(str->get(), c.loc, resolver(true), dim_of()));
        // Before evaluation when it reads parameters, derived values and size metrics only.
        c.before = true;
        for (int slot : c.parts[0].slots())
          if (slot >= s_.metric_slot(0) && (slot >= s_.output_slot(0) || !sweep_metrics()[static_cast<size_t>(slot - s_.metric_slot(0))].before))
            c.before = false;
        s_.constraints.push_back(std::move(c));
      }
    }
    s_.objectives = sw.contains("objectives")             ? sw.get_string_array("objectives")
                    : s_.mode == SweepMode::Serve          ? std::vector<std::string>{"cost_per_mtok", "goodput"}
                                                           : std::vector<std::string>{"latency", "energy_per_token"};
    for (size_t i = 0; i < s_.objectives.size(); ++i) check_objective(s_.objectives[i], sw.loc("objectives"));
    count_points(sw);
    doc_->finish();
    return std::move(s_);
  }

 private:
  bool has_setting(const std::string& key) const {
    for (const auto& f : s_.fixed)
      if (f.key == key) return true;
    for (const auto& p : s_.params)
      if (p.key == key) return true;
    return false;
  }

  SweepParam make_param(const std::string& key, bool settable, const SourceLoc& loc) {
    SweepParam p;
    p.key = key;
    p.settable = settable;
    p.loc = loc;
    if (auto it = deployment_keys().find(key); settable && it != deployment_keys().end()) {
      p.kind = it->second.kind;
      p.dim = it->second.dim;
    } else {
      p.kind = ValueKind::Real;  // refined by the values
    }
    return p;
  }
  bool kind_fixed(const SweepParam& p) const { return p.settable && deployment_keys().count(p.key); }

  // One value of a list (or a fixed setting) as the parameter's kind; the first value of a
  // key that is not a deployment key decides its kind.
  SweepValue read_value(SweepParam& p, const toml::node& n, const SourceLoc& at, bool first) {
    const SourceLoc loc = loc_of(n, at);
    SweepValue v;
    const bool fixed_kind = kind_fixed(p);
    if (fixed_kind && (p.kind == ValueKind::Name)) {
      const auto* s = n.as_string();
      if (!s) throw UserError(loc, fmt::format("'{}' takes a name (a string)", p.key));
      v.text = s->get();
      if (v.text.empty()) throw UserError(loc, fmt::format("'{}' takes a non-empty name", p.key));
      return v;
    }
    if (fixed_kind && p.kind == ValueKind::Tokens) {
      if (auto i = n.value_exact<int64_t>()) {
        v.number = static_cast<double>(*i);
        return v;
      }
      const auto* s = n.as_string();
      const std::optional<int64_t> t = s ? parse_token_count(s->get()) : std::nullopt;
      if (!t) throw UserError(loc, fmt::format("'{}' takes a token count (4096, \"32k\", \"1M\")", p.key));
      v.number = static_cast<double>(*t);
      return v;
    }
    if (fixed_kind && p.kind == ValueKind::Integer) {
      auto i = n.value_exact<int64_t>();
      if (!i) throw UserError(loc, fmt::format("'{}' takes an integer", p.key));
      v.number = static_cast<double>(*i);
      return v;
    }
    if (fixed_kind && p.kind == ValueKind::Quantity) {
      const auto* s = n.as_string();
      std::string why;
      const auto q = s ? parse_quantity(s->get(), &why) : std::nullopt;
      if (!q || q->dim != p.dim) throw UserError(loc, fmt::format("'{}' takes {}", p.key, dim_description(p.dim)));
      v.number = q->value;
      return v;
    }
    // arch.*, model.* and variables: the kind follows the values.
    ValueKind kind;
    Dim dim = Dim::Count;
    if (auto i = n.value_exact<int64_t>()) {
      kind = ValueKind::Integer;
      v.number = static_cast<double>(*i);
    } else if (auto d = n.value_exact<double>()) {
      kind = ValueKind::Real;
      v.number = *d;
    } else if (const auto* s = n.as_string()) {
      std::string why;
      if (auto q = parse_quantity(s->get(), &why); q && q->dim != Dim::Count) {
        kind = ValueKind::Quantity;
        dim = q->dim;
        v.number = q->value;
      } else {
        kind = ValueKind::Name;
        v.text = s->get();
        if (v.text.empty()) throw UserError(loc, "an empty string is not a value");
      }
    } else if (n.is_array() || n.is_boolean()) {
      kind = ValueKind::Toml;
      std::ostringstream os;
      if (n.is_array()) os << toml::default_formatter{*n.as_array(), toml::format_flags::none};
      else os << (n.value_exact<bool>().value() ? "true" : "false");
      v.text = os.str();
    } else {
      throw UserError(loc, "a value is a number, a string, an array or a boolean");
    }
    if (!p.settable && (kind == ValueKind::Name || kind == ValueKind::Toml))
      throw UserError(loc, fmt::format("variable '{}' feeds expressions: its values are numbers or quantities", p.key));
    if (first) {
      p.kind = kind;
      p.dim = dim;
    } else if (kind != p.kind || dim != p.dim) {
      // Integers and reals mix as reals.
      const bool numeric = (kind == ValueKind::Integer || kind == ValueKind::Real) && (p.kind == ValueKind::Integer || p.kind == ValueKind::Real);
      if (!numeric) throw UserError(loc, fmt::format("'{}': every value must be of one kind (this one differs from the first)", p.key));
      p.kind = ValueKind::Real;
    }
    return v;
  }

  // Every name is given once: a fixed setting, a parameter, a variable, a derived value, a
  // built-in output and an [outputs] entry share one namespace (expressions read them all).
  void check_name_free(const std::string& key, const SourceLoc& at) const {
    auto taken = [&](const char* what) { throw UserError(at, fmt::format("'{}' is already {}: give it in one place", key, what)); };
    // Every name is a column of the database, and SQLite's column names ignore case.
    auto same = [&](const std::string& other) {
      return other.size() == key.size() && std::equal(other.begin(), other.end(), key.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
             });
    };
    for (const char* column : {"hash", "idx", "status", "error", "bottleneck"})
      if (same(column)) taken("a column every sweep database has (hash, idx, status, error, bottleneck)");
    for (const auto& f : s_.fixed)
      if (same(f.key)) taken("fixed in [sweep]");
    for (const auto& p : s_.params)
      if (same(p.key)) taken(p.settable ? "a parameter" : "a variable");
    for (const auto& d : s_.derived)
      if (same(d.name)) taken("derived");
    for (const auto& o : s_.outputs)
      if (same(o.name)) taken("an output");
    for (const MetricInfo& m : sweep_metrics())
      if (same(m.name)) taken("a built-in output");
  }

  // A table's keys in file order (toml++ iterates them sorted).
  static std::vector<std::string> in_file_order(const ConfigTable& t) {
    std::vector<std::string> keys = t.keys();
    std::stable_sort(keys.begin(), keys.end(), [&](const std::string& a, const std::string& b) {
      const SourceLoc x = t.key_loc(a), y = t.key_loc(b);
      return std::pair(x.line, x.col) < std::pair(y.line, y.col);
    });
    return keys;
  }

  void read_params(const ConfigTable& t, bool settable) {
    for (const std::string& key : in_file_order(t)) {
      const SourceLoc kl = t.key_loc(key);
      if (settable && !is_settable(key)) {
        std::string hint;
        size_t best = 3;
        for (const auto& [k, info] : deployment_keys())
          if (size_t d = edit_distance(k, key); d < best) best = d, hint = fmt::format(" (did you mean '{}'?)", k);
        throw UserError(kl, fmt::format("unknown parameter '{}'{}: a parameter is a deployment key (arch, model, phase, batch, context, prompt, tp, "
                                        "block, dtype, kv_dtype, fusion, attention, clock, power_cap; in a serving sweep instances, prefill_instances, ... as docs/SWEEPS.md "
                                        "lists) or a dotted arch./model. key; free "
                                        "names go in [variables]",
                                        key, hint));
      }
      if (!settable && (is_settable(key) || key.find('.') != std::string::npos))
        throw UserError(kl, fmt::format("variable '{}' must be a plain name (settable keys go in [parameters])", key));
      check_name_free(key, kl);
      SweepParam p = make_param(key, settable, t.loc(key));
      const toml::node* n = t.node(key);
      if (const toml::array* arr = n->as_array()) {
        if (arr->empty()) throw UserError(p.loc, fmt::format("'{}' has no values", key));
        // An array of arrays lists TOML array values (a shape); otherwise each element is a value.
        for (const toml::node& item : *arr) p.values.push_back(read_value(p, item, p.loc, p.values.empty()));
      } else if (n->is_table()) {
        read_range(p, t.get_table(key));
      } else {
        throw UserError(p.loc, fmt::format("'{}' takes a list of values or a range such as {{ log = [1, 256], points = 9 }}", key));
      }
      if (p.settable && deployment_keys().count(p.key)) {
        if (p.is_range) {
          check_deployment_value(key, SweepValue{p.lo, ""}, p.loc);
        } else {
          for (const SweepValue& v : p.values) check_deployment_value(key, v, p.loc);
        }
      }
      s_.params.push_back(std::move(p));
    }
  }

  void read_range(SweepParam& p, const ConfigTable& t) {
    const bool lin = t.contains("linear"), lg = t.contains("log");
    if (lin == lg) throw UserError(t.loc(), fmt::format("range '{}' needs exactly one of linear = [lo, hi] or log = [lo, hi]", p.key));
    const char* which = lin ? "linear" : "log";
    const toml::array* ends = t.node(which)->as_array();
    if (!ends || ends->size() != 2) throw UserError(t.loc(which), fmt::format("'{}' takes two ends: [lo, hi]", which));
    if (kind_fixed(p) && p.kind == ValueKind::Name) throw UserError(t.loc(which), fmt::format("'{}' takes names: list them", p.key));
    const SweepValue lo = read_value(p, *ends->get(0), t.loc(which), true);
    const SweepValue hi = read_value(p, *ends->get(1), t.loc(which), false);
    if (p.kind == ValueKind::Name || p.kind == ValueKind::Toml) throw UserError(t.loc(which), "a range's ends are numbers or quantities");
    p.is_range = true;
    p.log = lg;
    p.lo = lo.number;
    p.hi = hi.number;
    if (p.lo > p.hi) throw UserError(t.loc(which), fmt::format("range '{}' runs backwards: lo > hi", p.key));
    if (p.log && p.lo <= 0) throw UserError(t.loc(which), fmt::format("log range '{}' needs lo > 0", p.key));
    const int given = t.contains("points") + t.contains("step") + t.contains("factor");
    if (given > 1) throw UserError(t.loc(), fmt::format("range '{}': give one of points, step or factor", p.key));
    if (t.contains("step")) {
      if (p.log) throw UserError(t.key_loc("step"), "'step' applies to linear ranges (log ranges take 'factor')");
      const double step = t.get_number("step", 0);
      if (step <= 0) throw UserError(t.loc("step"), "'step' must be positive");
      p.points = static_cast<int64_t>(std::floor((p.hi - p.lo) / step * (1 + 1e-12))) + 1;
      p.hi = p.lo + step * static_cast<double>(p.points - 1);
    } else if (t.contains("factor")) {
      if (!p.log) throw UserError(t.key_loc("factor"), "'factor' applies to log ranges (linear ranges take 'step')");
      const double f = t.get_number("factor", 0);
      if (f <= 1) throw UserError(t.loc("factor"), "'factor' must be greater than 1");
      p.points = static_cast<int64_t>(std::floor(std::log(p.hi / p.lo) / std::log(f) * (1 + 1e-12))) + 1;
      p.hi = p.lo * std::pow(f, static_cast<double>(p.points - 1));
    } else if (t.contains("points")) {
      p.points = t.get_int("points", 1, int64_t{1} << 32);
      if (p.points == 1 && p.lo != p.hi) throw UserError(t.loc("points"), "one point cannot span a range: points >= 2, or list the value");
    }
    if (p.points > (int64_t{1} << 32)) throw UserError(t.loc(), fmt::format("range '{}' has too many points", p.key));
    const bool integral = p.kind == ValueKind::Integer || p.kind == ValueKind::Tokens;
    if (integral && p.points > 1) {
      // Integer keys: the rounded grid must not repeat a value.
      int64_t prev = std::llround(p.range_value(0));
      for (int64_t i = 1; i < p.points; ++i) {
        const int64_t v = std::llround(p.range_value(i));
        if (v == prev)
          throw UserError(t.loc(), fmt::format("range '{}' rounds to the same integer twice ({}): use fewer points or a wider range", p.key, v));
        prev = v;
      }
    }
  }

  void read_groups(const ConfigTable& sw) {
    std::vector<int> group_of(s_.params.size(), -1);
    if (sw.contains("zip")) {
      const toml::array* zips = sw.node("zip")->as_array();
      if (!zips) throw UserError(sw.loc("zip"), "'zip' is an array of name lists, e.g. [[\"a\", \"b\"]]");
      for (const toml::node& z : *zips) {
        const SourceLoc zl = loc_of(z, sw.loc("zip"));
        const toml::array* names = z.as_array();
        if (!names || names->size() < 2) throw UserError(zl, "a zip lists two or more parameters");
        std::vector<int> members;
        int64_t size = -1;
        for (const toml::node& nm : *names) {
          const auto* str = nm.as_string();
          const SourceLoc nl = loc_of(nm, zl);
          if (!str) throw UserError(nl, "a zip lists parameter names");
          int idx = -1;
          for (size_t i = 0; i < s_.params.size(); ++i)
            if (s_.params[i].key == str->get()) idx = static_cast<int>(i);
          if (idx < 0) throw UserError(nl, fmt::format("'{}' is not a parameter or variable of this sweep", str->get()));
          if (group_of[static_cast<size_t>(idx)] >= 0) throw UserError(nl, fmt::format("'{}' is zipped twice", str->get()));
          const SweepParam& p = s_.params[static_cast<size_t>(idx)];
          if (p.is_range && p.points == 0) throw UserError(nl, fmt::format("'{}' is a range without points: a zip needs listed or gridded values", p.key));
          if (size >= 0 && p.size() != size)
            throw UserError(nl, fmt::format("zipped parameters must have as many values: '{}' has {}, the first has {}", p.key, p.size(), size));
          size = p.size();
          group_of[static_cast<size_t>(idx)] = static_cast<int>(s_.groups.size());
          members.push_back(idx);
        }
        s_.groups.push_back(members);
      }
    }
    // Every other parameter is a group of its own; groups in file order of their first member.
    for (size_t i = 0; i < s_.params.size(); ++i)
      if (group_of[i] < 0) {
        group_of[i] = static_cast<int>(s_.groups.size());
        s_.groups.push_back({static_cast<int>(i)});
      }
    std::stable_sort(s_.groups.begin(), s_.groups.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  }

  // Loads the architecture and model once per listed value (or range end) of every arch. and
  // model. parameter, so a bad key or value is reported at the spec's line, not mid-sweep.
  void check_against_configs() {
    std::vector<std::string> archs, models;
    for (const auto& f : s_.fixed) {
      if (f.key == "arch") archs.push_back(f.values[0].text);
      if (f.key == "model") models.push_back(f.values[0].text);
    }
    for (const SweepParam& p : s_.params) {
      if (p.key == "arch")
        for (const auto& v : p.values) archs.push_back(v.text);
      if (p.key == "model")
        for (const auto& v : p.values) models.push_back(v.text);
    }
    auto try_load = [&](const SweepParam& p, const std::string& key, const std::string& base, const std::vector<std::string>& sets,
                        const std::string& shown) {
      try {
        if (key == "arch") load_arch(base, sets);
        else load_model(base, sets);
      } catch (const UserError& e) {
        const bool from_set = e.loc().file.starts_with("--set ");
        // An error inside another file than the preset itself (a file it inherits) is its own.
        auto path_of = [&] {
          try {
            return resolve_model_path(base);
          } catch (const UserError&) {
            return base;
          }
        };
        if (!from_set && !sets.empty() && e.loc().file != path_of()) throw;
        const std::string name = base.size() > 80 ? base.substr(0, 80) + "..." : base;
        throw UserError(p.loc, fmt::format("{} '{}'{}: {}", key, name, shown.empty() ? "" : " with " + shown, e.message()));
      }
    };
    for (const std::vector<SweepParam>* list : {&s_.fixed, &s_.params})
      for (const SweepParam& p : *list) {
        if (p.key == "arch" || p.key == "model")
          for (const auto& v : p.values) try_load(p, p.key, v.text, {}, "");
        // A serving sweep's other names: the prefill pool's arch, the drafter, the trace, the
        // runtime, the link between pools.
        for (const auto& v : p.values) {
          auto check = [&](auto&& f) {
            try {
              f();
            } catch (const UserError& e) {
              throw UserError(p.loc, fmt::format("{} '{}': {}", p.key, v.text, e.message()));
            }
          };
          if (p.key == "prefill_arch") check([&] { load_arch(v.text); });
          if (p.key == "draft" && v.text != "mtp") check([&] { load_model(v.text); });
          if (p.key == "trace") check([&] { load_trace(v.text); });
          if (p.key == "runtime") check([&] { load_runtime(v.text); });
          if (p.key == "kv_link") check([&] { check_kv_link(v.text, "kv_link"); });
        }
      }
    for (const SweepParam& p : s_.params) {
      for (const char* key : {"arch", "model"}) {
        if (!p.key.starts_with(std::string(key) + ".")) continue;
        std::vector<SweepValue> probe = p.values;
        if (p.is_range) probe = {SweepValue{p.lo, ""}, SweepValue{p.hi, ""}};
        for (const std::string& base : key == std::string("arch") ? archs : models)
          for (const SweepValue& v : probe)
            try_load(p, key, base, {p.key + "=" + override_text(p, v)},
                     p.key + " = " + (p.kind == ValueKind::Quantity ? format_quantity(v.number, p.dim) : value_text(p, v)));
      }
    }
  }

  static std::string override_text(const SweepParam& p, const SweepValue& v) {
    const std::string t = value_text(p, v);
    return p.kind == ValueKind::Name || p.kind == ValueKind::Quantity ? fmt::format("\"{}\"", t) : t;
  }

  Formula::Resolver resolver(bool metrics) {
    return [this, metrics](const std::string& name) -> std::optional<int> {
      for (size_t i = 0; i < s_.params.size(); ++i)
        if (s_.params[i].key == name) {
          const ValueKind k = s_.params[i].kind;
          if (k == ValueKind::Name || k == ValueKind::Toml) return std::nullopt;
          return static_cast<int>(i);
        }
      for (size_t i = 0; i < s_.derived.size(); ++i)
        if (s_.derived[i].name == name) return s_.derived_slot(i);
      if (!metrics) return std::nullopt;
      for (size_t i = 0; i < sweep_metrics().size(); ++i)
        if (sweep_metrics()[i].name == name) return s_.metric_slot(i);
      for (size_t i = 0; i < s_.outputs.size(); ++i)
        if (s_.outputs[i].name == name) return s_.output_slot(i);
      return std::nullopt;
    };
  }

  // The dimension of a slot, for the formulas' dimension check: quantity parameters and the
  // built-in metrics with a unit; derived values and outputs are not checked.
  Formula::DimOf dim_of() const {
    return [this](int slot) -> std::optional<Dim> {
      const size_t i = static_cast<size_t>(slot);
      if (i < s_.params.size()) return s_.params[i].kind == ValueKind::Quantity ? std::optional<Dim>(s_.params[i].dim) : std::nullopt;
      if (slot < s_.metric_slot(0) || slot >= s_.output_slot(0)) return std::nullopt;
      const std::string unit = sweep_metrics()[static_cast<size_t>(slot - s_.metric_slot(0))].unit;
      if (unit == "s") return Dim::Time;
      if (unit == "W") return Dim::Power;
      if (unit == "B") return Dim::Bytes;
      if (unit == "J") return Dim::Energy;
      if (unit == "$") return Dim::Money;
      if (unit == "$/s") return Dim::MoneyRate;
      return std::nullopt;
    };
  }

  void read_exprs(const ConfigTable& t, std::vector<SweepExpr>& into, bool derived) {
    for (const std::string& key : in_file_order(t)) {
      SweepExpr e;
      e.name = key;
      e.loc = t.loc(key);
      const SourceLoc kl = t.key_loc(key);
      e.settable = derived && is_settable(key);
      if (!e.settable && (key.find('.') != std::string::npos || !std::isalpha(static_cast<unsigned char>(key[0]))))
        throw UserError(kl, fmt::format("'{}': {} names are plain identifiers{}", key, derived ? "derived" : "output",
                                        derived ? " (or a settable key: a deployment key, arch.* or model.*)" : ""));
      check_name_free(key, kl);
      const toml::node* n = t.node(key);
      std::vector<std::pair<std::string, SourceLoc>> texts;
      if (const auto* s = n->as_string()) {
        texts.emplace_back(s->get(), e.loc.shifted(1));
      } else if (const auto* arr = n->as_array(); arr && derived) {
        for (const toml::node& item : *arr) {
          const auto* s2 = item.as_string();
          if (!s2) throw UserError(loc_of(item, e.loc), "an array value lists expressions (strings)");
          texts.emplace_back(s2->get(), loc_of(item, e.loc).shifted(1));
        }
        if (texts.empty()) throw UserError(e.loc, "an empty array");
        e.kind = ValueKind::Toml;
      } else if (n->is_table() && derived) {
        const ConfigTable sub = t.get_table(key);
        texts.emplace_back(sub.get_string("value"), sub.loc("value").shifted(1));
        std::string why;
        const auto q = parse_quantity("1 " + sub.get_string("unit"), &why);
        if (!q) throw UserError(sub.loc("unit"), why);
        e.kind = ValueKind::Quantity;
        e.dim = q->dim;
        if (q->value != 1) throw UserError(sub.loc("unit"), fmt::format("'unit' is a base unit ({}), not a multiple", base_unit(q->dim)));
      } else {
        throw UserError(e.loc, derived ? "a derived value is an expression (a string), an array of expressions, or { value = \"...\", unit = \"B\" }"
                                       : "an output is an expression (a string)");
      }
      for (const auto& [text, at] : texts) e.parts.push_back(Formula::parse(text, at, resolver(!derived), dim_of()));
      if (e.settable) {
        if (auto it = deployment_keys().find(key); it != deployment_keys().end()) {
          if (it->second.kind == ValueKind::Name) throw UserError(kl, fmt::format("'{}' takes a name: list it as a parameter", key));
          if (e.kind == ValueKind::Toml) throw UserError(e.loc, fmt::format("'{}' takes one number", key));
          e.kind = it->second.kind;
          e.dim = it->second.dim;
        } else if (e.kind == ValueKind::Real) {
          e.kind = ValueKind::Integer;  // whole numbers are written as integers, others as floats
        }
      }
      into.push_back(std::move(e));
    }
  }

  void check_objective(const std::string& o, const SourceLoc& at) {
    std::string name = o;
    if (name.starts_with("min:") || name.starts_with("max:")) name = name.substr(4);
    for (const MetricInfo& m : sweep_metrics())
      if (name == m.name) {
        if (m.direction == 0 && o == name) throw UserError(at, fmt::format("'{}' has no direction: write min:{} or max:{}", name, name, name));
        return;
      }
    for (const auto& e : s_.outputs)
      if (e.name == name) return;
    for (const auto& d : s_.derived)
      if (d.name == name) return;
    throw UserError(at, fmt::format("objective '{}' is not an output (latency, throughput, energy_per_token, cost_per_mtok, power, ... or an [outputs] name)", o));
  }

  void count_points(const ConfigTable& sw) {
    if (s_.design != Design::Grid) {
      s_.total = s_.samples;
      return;
    }
    double total = 1;
    int64_t n = 1;
    for (const auto& g : s_.groups) {
      const SweepParam& p = s_.params[static_cast<size_t>(g.front())];
      if (p.is_range && p.points == 0)
        throw UserError(p.loc, fmt::format("range '{}' needs points, step or factor in a grid (or design = \"random\" / \"lhs\")", p.key));
      total *= static_cast<double>(p.size());
      n *= p.size();
      if (total > 1e12) throw UserError(sw.loc(), "the grid has more than 10^12 points: sample it (design = \"lhs\", samples = N)");
    }
    s_.total = n;
  }

  std::unique_ptr<ConfigDoc> doc_;
  SweepSpec s_;
};

// A double in [0, 1) from (seed, point, group): splitmix64 of the three.
double unit_hash(uint64_t seed, uint64_t i, uint64_t g) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull ^ (i + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull ^ (g + 1) * 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace

double SweepParam::range_value(int64_t i) const {
  if (points <= 1) return lo;
  const double f = static_cast<double>(i) / static_cast<double>(points - 1);
  double v = log ? lo * std::pow(hi / lo, f) : lo + (hi - lo) * f;
  if (i == points - 1) v = hi;
  if (kind == ValueKind::Integer || kind == ValueKind::Tokens) v = std::round(v);
  return v;
}

std::string value_text(ValueKind kind, Dim dim, const SweepValue& v) {
  switch (kind) {
    case ValueKind::Integer:
    case ValueKind::Tokens: return fmt::format("{}", std::llround(v.number));
    case ValueKind::Real: return fmt::format("{}", v.number);
    case ValueKind::Quantity:
      if (dim == Dim::Money) return fmt::format("${}", v.number);
      if (dim == Dim::MoneyRate) return fmt::format("${}/s", v.number);
      return fmt::format("{} {}", v.number, base_unit(dim));
    case ValueKind::Name:
    case ValueKind::Toml: return v.text;
  }
  return v.text;
}
std::string value_text(const SweepParam& p, const SweepValue& v) { return value_text(p.kind, p.dim, v); }

SweepSpec load_sweep(const std::string& file, const std::vector<std::string>& overrides) { return SpecReader(file, overrides).read(); }

SampleTable make_samples(const SweepSpec& s) {
  SampleTable t;
  if (s.design != Design::Lhs) return t;
  if (s.total > int64_t{1} << 32) throw UserError(SourceLoc{s.file}, "a Latin hypercube of more than 2^32 samples");
  std::mt19937_64 rng(s.seed);
  t.strata.resize(s.groups.size());
  for (auto& perm : t.strata) {
    perm.resize(static_cast<size_t>(s.total));
    std::iota(perm.begin(), perm.end(), 0u);
    std::shuffle(perm.begin(), perm.end(), rng);
  }
  return t;
}

void point_values(const SweepSpec& s, const SampleTable& t, int64_t i, std::vector<SweepValue>& out) {
  out.resize(s.params.size());
  if (s.design == Design::Grid) {
    int64_t rest = i;
    for (size_t g = s.groups.size(); g-- > 0;) {
      const SweepParam& first = s.params[static_cast<size_t>(s.groups[g].front())];
      const int64_t n = first.size();
      const int64_t k = rest % n;
      rest /= n;
      for (int m : s.groups[g]) {
        const SweepParam& p = s.params[static_cast<size_t>(m)];
        SweepValue& v = out[static_cast<size_t>(m)];
        if (p.is_range) {
          v.text.clear();
          v.number = p.range_value(k);
        } else {
          v = p.values[static_cast<size_t>(k)];
        }
      }
    }
    return;
  }
  // Random or Latin-hypercube: u in [0, 1) per group; a list (or a zip, or a gridded range
  // in a zip) takes item floor(u * n); a range alone is sampled continuously (log ranges
  // log-uniformly; integer keys rounded).
  for (size_t g = 0; g < s.groups.size(); ++g) {
    const double jitter = unit_hash(s.seed, static_cast<uint64_t>(i), g);
    const double u = s.design == Design::Lhs
                         ? (static_cast<double>(t.strata[g][static_cast<size_t>(i)]) + jitter) / static_cast<double>(s.total)
                         : jitter;
    const bool alone = s.groups[g].size() == 1;
    for (int m : s.groups[g]) {
      const SweepParam& p = s.params[static_cast<size_t>(m)];
      SweepValue& v = out[static_cast<size_t>(m)];
      v.text.clear();
      if (p.is_range && alone) {
        v.number = p.log ? p.lo * std::pow(p.hi / p.lo, u) : p.lo + (p.hi - p.lo) * u;
        if (p.kind == ValueKind::Integer || p.kind == ValueKind::Tokens) v.number = std::round(v.number);
        continue;
      }
      const int64_t n = p.size();
      const int64_t k = std::min<int64_t>(n - 1, static_cast<int64_t>(u * static_cast<double>(n)));
      if (p.is_range) v.number = p.range_value(k);
      else v = p.values[static_cast<size_t>(k)];
    }
  }
}

}  // namespace einsim
