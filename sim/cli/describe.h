#pragma once
// Summaries of configs for `einsim check` and `einsim describe`.
#include <optional>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/cascade.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

namespace einsim {

/// What a config file holds.
enum class ConfigKind { Cascade, Model, Arch, Scenario, Sweep, Runtime };

/// Loads, checks and classifies a config file; returns a one-line summary. Throws UserError.
std::string check_file(const std::string& file, const std::vector<std::string>& overrides);

/// Kind of a config file (by its top-level table, or .json for HF configs).
ConfigKind config_kind(const std::string& file);

/// The analysis a [scenario] file is for (its `kind`); a located error when unknown.
std::string scenario_kind(const std::string& file);

/// The kinds `einsim list` takes, each a folder of configs/ (archs -> arch).
const std::vector<std::string>& list_kinds();
/// The shipped presets of one kind (every kind when empty): kind, name, the first sentence of
/// the file's leading comment, and the file. A located error for an unknown kind.
std::string list_presets(const std::string& kind, Format f);

/// Einsums, ranks, tensors, op counts, bytes and passes of a cascade.
std::string describe_cascade(const Cascade& c, Format f);

/// Tiers, levels, arrays with their peaks, links, power and cost of an architecture.
std::string describe_arch(const ArchSpec& a, Format f);

/// Parameters, KV bytes and per-layer breakdown of a model; with a phase, the figures of
/// its cascade for that phase.
std::string describe_model(const ModelConfig& m, const std::optional<Phase>& phase, Format f);

}  // namespace einsim
