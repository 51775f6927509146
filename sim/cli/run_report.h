#pragma once
// Rendering of `einsim run` reports.
#include <string>

#include "sim/cli/describe.h"
#include "sim/run/placement.h"
#include "sim/run/run.h"

namespace einsim {

/// The report as a table (blocks, Einsums, totals, memory), JSON (docs/FORMATS.md) or CSV
/// (one row per Einsum).
std::string format_run(const RunReport& r, Format f);

/// `einsim place`: the splits searched, best first (the first `top` rows as a table; every
/// split as JSON or CSV), with why the others cannot be formed or do not fit.
std::string format_placements(const std::vector<PlacementPoint>& points, const std::string& model, const ArchSpec& a, const Phase& phase,
                              const PlacementOptions& opt, const std::string& format, size_t top);

}  // namespace einsim
