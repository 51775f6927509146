#pragma once
// `einsim pareto`: the Pareto front of a sweep database's feasible points (status ok) over
// two or more objectives, as a table, CSV or JSON, and an SVG of the first two.
#include <set>
#include <string>
#include <vector>

#include "sim/report/format.h"
#include "sim/sweep/evaluate.h"

namespace einsim {

struct ParetoObjective {
  std::string column;
  int direction = -1;  ///< -1 minimise, +1 maximise
};
/// "latency", "max:throughput", "energy" (= energy_per_token), "cost" (= cost_per_mtok):
/// checked against the database's columns.
std::vector<ParetoObjective> parse_objectives(const std::string& list, const std::vector<SweepColumn>& cols, const std::string& where);

struct ParetoResult {
  std::string db, sweep;
  std::vector<ParetoObjective> objectives;
  std::vector<SweepColumn> columns;
  std::set<std::string> inputs;                    ///< parameter and derived columns (the sweep's meta)
  std::vector<std::vector<Cell>> front;            ///< rows on the front, by the first objective
  std::vector<std::vector<double>> all;            ///< objective values of every feasible point (for the plot)
  std::string color_by;                            ///< the column the plot colours points by ("" none)
  std::vector<std::string> labels;                 ///< its value for each point of `all`
  int64_t feasible = 0, stored = 0;
};

/// `objectives` empty: the sweep's own (its meta row).
/// `color_by`: a column whose value labels each point for the plot ("" none).
ParetoResult pareto_front(const std::string& db, const std::string& objectives, const std::string& color_by = "");
/// Indices of the non-dominated points of `values` (all minimised).
std::vector<size_t> non_dominated(const std::vector<std::vector<double>>& values);

std::string format_pareto(const ParetoResult& r, Format f);
std::string plot_pareto_svg(const ParetoResult& r);

}  // namespace einsim
