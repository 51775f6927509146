#pragma once
// Rendering of `einsim run` reports.
#include <string>

#include "sim/cli/describe.h"
#include "sim/run/run.h"

namespace einsim {

/// The report as a table (blocks, Einsums, totals, memory), JSON (docs/FORMATS.md) or CSV
/// (one row per Einsum).
std::string format_run(const RunReport& r, Format f);

}  // namespace einsim
