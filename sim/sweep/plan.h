#pragma once
// Capacity planning over a serving sweep (`einsim plan`): the cheapest configuration of the
// sweep's database that serves its trace with at least a target share of requests within both
// SLOs, and the runner-up configurations.
#include <cstdint>
#include <string>
#include <vector>

#include "sim/report/format.h"

namespace einsim {

struct PlanChoice {
  std::vector<std::pair<std::string, std::string>> settings;  ///< the point's parameters and derived values, as stored
  double rate = 0;           ///< $/s of its devices (NaN: no rental rate)
  double cost_per_mtok = 0;  ///< $ per million generated tokens
  double devices = 0, slo_attainment = 0, goodput = 0, ttft_p99 = 0, tpot_p99 = 0, energy_per_token = 0;
};

struct ServePlan {
  std::string db, sweep, description;
  double target = 0.99;           ///< share of requests within both SLOs
  int64_t points = 0, ok = 0, meeting = 0;
  /// The configurations meeting the target, cheapest first (by $/h of their devices, then $
  /// per million tokens, then devices), at most `top`.
  std::vector<PlanChoice> choices;
  /// When none meets it: the points closest to it (highest attainment first).
  std::vector<PlanChoice> closest;
};

/// Reads a serving sweep's database (mode = "serve"); a database of another mode, or an
/// unreadable one, is an error located at `db`.
ServePlan plan_from_db(const std::string& db, double target, size_t top);
std::string format_plan(const ServePlan& p, Format f);

}  // namespace einsim
