#pragma once
// Readers shared by the `einsim analyze` scenario files.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/toml_reader.h"

namespace einsim {

/// A count in a scenario: an integer, or a token-count string ("32K", "1M"); located errors
/// name `what` (the key's dotted path).
int64_t scenario_count(const toml::node& n, const SourceLoc& where, const std::string& what);

/// `t.key` as a count in [min, max]; nullopt when absent.
std::optional<int64_t> scenario_count(const ConfigTable& t, const std::string& key, int64_t min, int64_t max);

/// `t.key` as a non-empty array of counts in [min, max]; empty when absent.
std::vector<int64_t> scenario_counts(const ConfigTable& t, const std::string& key, int64_t min, int64_t max);

}  // namespace einsim
