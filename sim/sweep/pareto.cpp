#include "sim/sweep/pareto.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/sweep/store.h"

namespace einsim {

std::vector<ParetoObjective> parse_objectives(const std::string& list, const std::vector<SweepColumn>& cols, const std::string& where) {
  std::vector<ParetoObjective> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t end = std::min(list.find(',', pos), list.size());
    std::string name = list.substr(pos, end - pos);
    pos = end + 1;
    ParetoObjective o;
    int given = 0;
    if (name.starts_with("min:")) given = -1, name = name.substr(4);
    else if (name.starts_with("max:")) given = +1, name = name.substr(4);
    if (name == "energy") name = "energy_per_token";
    if (name == "cost") name = "cost_per_mtok";
    const bool known = std::any_of(cols.begin(), cols.end(), [&](const SweepColumn& c) { return c.name == name; });
    if (!known || name == "hash" || name == "idx" || name == "status" || name == "error" || name == "bottleneck") {
      std::string names;
      for (const MetricInfo& m : sweep_metrics())
        if (m.direction) names += (names.empty() ? "" : ", ") + std::string(m.name);
      throw UserError(SourceLoc{where}, fmt::format("'{}' is not an objective of this database (e.g. {}, or min:/max: and a column)", name, names));
    }
    o.column = name;
    o.direction = given ? given : -1;
    if (!given)
      for (const MetricInfo& m : sweep_metrics())
        if (name == m.name) {
          if (m.direction == 0) throw UserError(SourceLoc{where}, fmt::format("'{}' has no direction: write min:{} or max:{}", name, name, name));
          o.direction = m.direction;
        }
    if (std::any_of(out.begin(), out.end(), [&](const ParetoObjective& x) { return x.column == o.column; }))
      throw UserError(SourceLoc{where}, fmt::format("'{}' is given twice", name));
    out.push_back(o);
  }
  if (out.size() < 2) throw UserError(SourceLoc{where}, "a Pareto front needs two or more objectives, e.g. latency,energy");
  return out;
}

std::vector<size_t> non_dominated(const std::vector<std::vector<double>>& v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<size_t> front;
  if (v.empty()) return front;
  const size_t k = v.front().size();
  if (k == 2) {
    // Sorted by the first objective (then the second): a point is on the front when its
    // second is strictly below every earlier point's.
    double best = std::numeric_limits<double>::infinity();
    for (size_t i : order)
      if (v[i][1] < best) {
        best = v[i][1];
        front.push_back(i);
      }
    return front;
  }
  // In lexicographic order no later point dominates an earlier one: compare with the front.
  for (size_t i : order) {
    bool dominated = false;
    for (size_t j : front) {
      bool all_le = true;
      for (size_t d = 0; d < k && all_le; ++d) all_le = v[j][d] <= v[i][d];
      if (all_le) {
        dominated = true;  // an equal point is a duplicate: the first stays
        break;
      }
    }
    if (!dominated) front.push_back(i);
  }
  return front;
}

ParetoResult pareto_front(const std::string& path, const std::string& objectives, const std::string& color_by) {
  ParetoResult r;
  r.db = path;
  SweepDb db(path, false, true);
  if (!db.has_points_table()) throw UserError(SourceLoc{path}, "not a sweep database (no points table)");
  r.columns = db.columns();
  const auto meta = db.meta();
  r.sweep = meta.count("name") ? meta.at("name") : "";
  if (meta.count("inputs")) {
    const std::string& in = meta.at("inputs");
    for (size_t pos = 0; pos <= in.size();) {
      const size_t end = std::min(in.find(',', pos), in.size());
      if (end > pos) r.inputs.insert(in.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  std::string list = objectives;
  if (list.empty()) list = meta.count("objectives") ? meta.at("objectives") : "latency,energy_per_token";
  r.objectives = parse_objectives(list, r.columns, objectives.empty() ? path : "--objectives");
  std::vector<int> at;
  for (const ParetoObjective& o : r.objectives)
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (r.columns[i].name == o.column) at.push_back(static_cast<int>(i));
  int label_at = -1;
  if (!color_by.empty()) {
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (r.columns[i].name == color_by) label_at = static_cast<int>(i);
    if (label_at < 0) throw UserError(SourceLoc{"--color-by"}, fmt::format("'{}' is not a column of this database", color_by));
    r.color_by = color_by;
  }
  // First pass: the objective values (minimised) and hash of every feasible point.
  std::vector<std::vector<double>> vals;
  std::vector<int64_t> hashes;
  r.stored = db.count();
  db.scan("ok", [&](const std::vector<Cell>& row) {
    std::vector<double> v;
    for (size_t d = 0; d < at.size(); ++d) {
      const Cell& c = row[static_cast<size_t>(at[d])];
      const double x = c.type == Cell::Int ? static_cast<double>(c.i) : c.type == Cell::Real ? c.d : std::nan("");
      if (!std::isfinite(x)) return;
      v.push_back(-r.objectives[d].direction * x);
    }
    vals.push_back(std::move(v));
    hashes.push_back(row[kHashColumn].i);
    if (label_at >= 0) {
      const Cell& c = row[static_cast<size_t>(label_at)];
      r.labels.push_back(c.type == Cell::Text ? c.s : c.type == Cell::Int ? std::to_string(c.i) : c.type == Cell::Real ? fmt::format("{:g}", c.d) : "");
    }
  });
  r.feasible = static_cast<int64_t>(vals.size());
  const std::vector<size_t> idx = non_dominated(vals);
  std::set<int64_t> on;
  for (size_t i : idx) on.insert(hashes[i]);
  for (const auto& v : vals) {
    std::vector<double> p;
    for (size_t d = 0; d < v.size(); ++d) p.push_back(-r.objectives[d].direction * v[d]);
    r.all.push_back(std::move(p));
  }
  // Second pass: the front's rows.
  db.scan("ok", [&](const std::vector<Cell>& row) {
    if (on.count(row[kHashColumn].i)) r.front.push_back(row);
  });
  const int first = at.front();
  const int dir = r.objectives.front().direction;
  std::sort(r.front.begin(), r.front.end(), [&](const auto& a, const auto& b) {
    const Cell &x = a[static_cast<size_t>(first)], &y = b[static_cast<size_t>(first)];
    const double u = x.type == Cell::Int ? static_cast<double>(x.i) : x.d, w = y.type == Cell::Int ? static_cast<double>(y.i) : y.d;
    return dir < 0 ? u < w : u > w;
  });
  return r;
}

std::string format_pareto(const ParetoResult& r, Format f) {
  if (f == Format::Json) {
    nlohmann::json j;
    j["database"] = r.db;
    j["sweep"] = r.sweep;
    j["stored"] = r.stored;
    j["feasible"] = r.feasible;
    for (const ParetoObjective& o : r.objectives) j["objectives"].push_back({{"column", o.column}, {"direction", o.direction < 0 ? "min" : "max"}});
    j["front"] = nlohmann::json::array();
    for (const auto& row : r.front) {
      nlohmann::json p;
      for (size_t i = 0; i < row.size(); ++i) {
        const Cell& c = row[i];
        const std::string& name = r.columns[i].name;
        if (i == static_cast<size_t>(kHashColumn)) p[name] = fmt::format("{:016x}", static_cast<uint64_t>(c.i));
        else if (c.type == Cell::Int) p[name] = c.i;
        else if (c.type == Cell::Real) p[name] = c.d;
        else if (c.type == Cell::Text) p[name] = c.s;
        else p[name] = nullptr;
      }
      j["front"].push_back(std::move(p));
    }
    return j.dump(2) + "\n";
  }
  if (f == Format::Csv) {
    std::vector<std::string> header;
    for (const auto& c : r.columns) header.push_back(c.name);
    TextTable t(header);
    for (const auto& row : r.front) {
      std::vector<std::string> cells;
      for (size_t i = 0; i < row.size(); ++i)
        cells.push_back(i == static_cast<size_t>(kHashColumn) ? fmt::format("{:016x}", static_cast<uint64_t>(row[i].i)) : cell_text(row[i]));
      t.row(std::move(cells));
    }
    return t.csv();
  }
  // Table: the inputs that vary along the front, then the objectives.
  std::vector<size_t> show;
  std::set<std::string> objective_cols;
  for (const ParetoObjective& o : r.objectives) objective_cols.insert(o.column);
  const std::set<std::string> metric_names = [] {
    std::set<std::string> s{"bottleneck"};
    for (const MetricInfo& m : sweep_metrics()) s.insert(m.name);
    return s;
  }();
  for (size_t i = 4; i < r.columns.size(); ++i) {
    if (metric_names.count(r.columns[i].name) || objective_cols.count(r.columns[i].name)) continue;
    if (!r.inputs.empty() && !r.inputs.count(r.columns[i].name)) continue;
    std::set<std::string> seen;
    for (const auto& row : r.front) seen.insert(cell_text(row[i]));
    if (seen.size() > 1) show.push_back(i);
  }
  for (const ParetoObjective& o : r.objectives)
    for (size_t i = 0; i < r.columns.size(); ++i)
      if (r.columns[i].name == o.column) show.push_back(i);
  std::vector<std::string> header;
  for (size_t i : show) {
    std::string h = r.columns[i].name;
    for (const ParetoObjective& o : r.objectives)
      if (o.column == h) h += o.direction < 0 ? " (min)" : " (max)";
    header.push_back(h);
  }
  TextTable t(header);
  for (const auto& row : r.front) {
    std::vector<std::string> cells;
    cells.reserve(show.size());
    for (size_t i : show) cells.push_back(row[i].type == Cell::Real ? fmt::format("{:.4g}", row[i].d) : cell_text(row[i]));
    t.row(std::move(cells));
  }
  return fmt::format("Pareto front of '{}' ({}): {} of {} feasible points ({} stored)\n\n", r.sweep, r.db, r.front.size(), r.feasible, r.stored) +
         t.aligned();
}

std::string plot_pareto_svg(const ParetoResult& r) {
  PlotPanel p;
  const ParetoObjective& x = r.objectives[0];
  const ParetoObjective& y = r.objectives[1];
  p.title = fmt::format("{}: Pareto front", r.sweep);
  // Axis labels with the metric's unit (sweep_metrics(); none for user outputs).
  auto label = [](const ParetoObjective& o) {
    std::string unit;
    for (const MetricInfo& m : sweep_metrics())
      if (o.column == m.name && m.unit && *m.unit) unit = fmt::format(" [{}]", m.unit);
    return fmt::format("{}{} ({})", o.column, unit, o.direction < 0 ? "lower is better" : "higher is better");
  };
  p.xlabel = label(x);
  p.ylabel = label(y);
  p.log_x = true;
  p.log_y = true;
  p.round_x_ticks = true;
  p.legend_right = !r.labels.empty();
  // Feasible points, one colour per value of the --color-by column; at most 4,000 markers:
  // every k-th point (the front is drawn whole).
  std::vector<PlotSeries> groups;
  const size_t step = std::max<size_t>(1, r.all.size() / 4000);
  for (size_t i = 0; i < r.all.size(); i += step) {
    const std::string name = r.labels.empty() ? "feasible points" : fmt::format("{} = {}", r.color_by, r.labels[i]);
    auto g = std::find_if(groups.begin(), groups.end(), [&](const PlotSeries& s) { return s.name == name; });
    if (g == groups.end()) g = groups.insert(groups.end(), PlotSeries{name, {}, false, "", true});
    g->points.emplace_back(r.all[i][0], r.all[i][1]);
  }
  PlotSeries front{"Pareto front", {}, false, "", false};
  size_t xi = 0, yi = 0;
  for (size_t i = 0; i < r.columns.size(); ++i) {
    if (r.columns[i].name == x.column) xi = i;
    if (r.columns[i].name == y.column) yi = i;
  }
  auto num = [](const Cell& c) { return c.type == Cell::Int ? static_cast<double>(c.i) : c.d; };
  for (const auto& row : r.front) front.points.emplace_back(num(row[xi]), num(row[yi]));
  std::sort(front.points.begin(), front.points.end());
  p.series = std::move(groups);
  p.series.push_back(front);
  return svg_plot({p}, {fmt::format("{} of {} feasible points on the front; database {}", r.front.size(), r.feasible, r.db)});
}

}  // namespace einsim
