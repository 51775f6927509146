#pragma once
// Readers shared by the `einsim analyze` scenario files.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

/// Loads the [scenario] table of `file_or_name` (a file, or a shipped name looked up in
/// configs/analyses) with `--set scenario.KEY=VALUE` overrides, checks that its kind is
/// `kind`, reads it with `read` and refuses unknown keys.
template <typename Read>
auto load_scenario(const std::string& file_or_name, const std::vector<std::string>& overrides, const std::string& kind, Read read) {
  auto doc = ConfigDoc::load(resolve_model_path(file_or_name), overrides);
  const ConfigTable t = doc->root().get_table("scenario");
  t.get_choice("kind", {kind});
  auto s = read(t);
  doc->finish();
  return s;
}

/// The decoder model a scenario names (a shipped name or a file); encoders, which keep no KV
/// cache, are refused at `where`.
ModelConfig scenario_model(const std::string& name, const SourceLoc& where);
/// The architecture a scenario names; one without compute arrays is refused.
ArchSpec scenario_arch(const std::string& name);

/// A scenario's emulation choice on its runs: `emulate = true` computes matrix products no array
/// runs at their type wider; without it a run is refused, located at the scenario.
void set_emulation(RunOptions& ro, bool emulate, const SourceLoc& scenario);

/// "\n<heading>:\n  note\n..." for the distinct non-empty notes, in order; "" when none.
std::string note_list(const std::string& heading, const std::vector<std::string>& notes);

/// A count in a scenario: an integer, or a token-count string ("32K", "1M"); located errors
/// name `what` (the key's dotted path).
int64_t scenario_count(const toml::node& n, const SourceLoc& where, const std::string& what);

/// `t.key` as a count in [min, max]; nullopt when absent.
std::optional<int64_t> scenario_count(const ConfigTable& t, const std::string& key, int64_t min, int64_t max);

/// `t.key` as a non-empty array of counts in [min, max]; empty when absent.
std::vector<int64_t> scenario_counts(const ConfigTable& t, const std::string& key, int64_t min, int64_t max);

}  // namespace einsim
