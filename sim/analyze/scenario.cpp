#include "sim/analyze/scenario.h"

#include <fmt/format.h>

#include <algorithm>

namespace einsim {

ModelConfig scenario_model(const std::string& name, const SourceLoc& where) {
  ModelConfig m = load_model(name);
  if (m.encoder_only) throw UserError(where, fmt::format("'{}' is an encoder: it keeps no KV cache to analyse", m.name));
  return m;
}

ArchSpec scenario_arch(const std::string& name) {
  ArchSpec a = load_arch(name);
  if (a.arrays.empty()) throw UserError(a.loc, fmt::format("'{}' has no compute arrays and cannot run a model", a.name));
  return a;
}

int64_t scenario_count(const toml::node& n, const SourceLoc& where, const std::string& what) {
  if (auto v = n.value_exact<int64_t>()) return *v;
  if (auto s = n.value<std::string>()) {
    if (auto v = parse_token_count(*s)) return *v;
    throw UserError(loc_of(n, where), fmt::format("'{}': '{}' is not a token count (use 4096, \"32K\" or \"1M\")", what, *s));
  }
  throw UserError(loc_of(n, where), fmt::format("'{}' must be a count (an integer, or a string like \"32K\")", what));
}

std::optional<int64_t> scenario_count(const ConfigTable& t, const std::string& key, int64_t min, int64_t max) {
  const toml::node* n = t.node(key);
  if (!n) return std::nullopt;
  const std::string what = t.path() + "." + key;
  const int64_t v = scenario_count(*n, t.loc(key), what);
  if (v < min || v > max) throw UserError(t.loc(key), fmt::format("'{}' must be in [{}, {}]", what, min, max));
  return v;
}

std::vector<int64_t> scenario_counts(const ConfigTable& t, const std::string& key, int64_t min, int64_t max) {
  const toml::node* n = t.node(key);
  if (!n) return {};
  const std::string what = t.path() + "." + key;
  const toml::array* a = n->as_array();
  if (!a || a->empty()) throw UserError(t.loc(key), fmt::format("'{}' must be a non-empty array", what));
  std::vector<int64_t> out;
  for (const toml::node& e : *a) {
    const int64_t v = scenario_count(e, t.loc(key), what);
    if (v < min || v > max) throw UserError(loc_of(e, t.loc(key)), fmt::format("'{}' entries must be in [{}, {}]", what, min, max));
    out.push_back(v);
  }
  return out;
}

std::string note_list(const std::string& heading, const std::vector<std::string>& notes) {
  std::vector<std::string> seen;
  std::string out;
  for (const std::string& n : notes) {
    if (n.empty() || std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
    seen.push_back(n);
    out += "  " + n + "\n";
  }
  return out.empty() ? "" : "\n" + heading + ":\n" + out;
}

void set_emulation(RunOptions& ro, bool emulate, const SourceLoc& scenario) {
  ro.emulate = emulate;
  ro.emulate_switch = "emulate = true in [scenario]";
  ro.dtype_loc = scenario;
}

}  // namespace einsim
