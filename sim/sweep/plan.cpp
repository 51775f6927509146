#include "sim/sweep/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/units.h"
#include "sim/report/table.h"
#include "sim/sweep/store.h"

namespace einsim {

ServePlan plan_from_db(const std::string& db, double target, size_t top) {
  if (!(target > 0 && target <= 1)) throw UserError(SourceLoc{"--attainment"}, fmt::format("the share of requests within the SLOs is in (0, 1], not {}", target));
  SweepDb d(db, false, true);
  if (!d.has_points_table()) throw UserError(SourceLoc{db}, "holds no sweep points");
  const auto meta = d.meta();
  const auto mode = meta.find("mode");
  if (mode == meta.end() || mode->second != "serve")
    throw UserError(SourceLoc{db}, fmt::format("holds a {} sweep; a plan needs a serving sweep (mode = \"serve\")", mode == meta.end() ? "pre-serving" : mode->second));
  ServePlan p;
  p.db = db;
  p.target = target;
  if (auto it = meta.find("name"); it != meta.end()) p.sweep = it->second;
  if (auto it = meta.find("description"); it != meta.end()) p.description = it->second;
  const std::vector<SweepColumn> cols = d.columns();
  auto col = [&](const char* name) {
    for (size_t i = 0; i < cols.size(); ++i)
      if (cols[i].name == name) return i;
    throw UserError(SourceLoc{db}, fmt::format("has no column '{}': it comes from another einsim", name));
  };
  const size_t first_metric = col("devices"), c_rate = col("rate"), c_cost = col("cost_per_mtok"), c_att = col("slo_attainment"), c_good = col("goodput"),
               c_ttft = col("ttft_p99"), c_tpot = col("tpot_p99"), c_energy = col("energy_per_token"), c_status = 2;
  auto num = [](const Cell& c) {
    return c.type == Cell::Real ? c.d : c.type == Cell::Int ? static_cast<double>(c.i) : std::numeric_limits<double>::quiet_NaN();
  };
  std::vector<PlanChoice> meeting, all;
  d.scan("", [&](const std::vector<Cell>& row) {
    ++p.points;
    if (row[c_status].type != Cell::Text || row[c_status].s != "ok") return;
    ++p.ok;
    PlanChoice c;
    for (size_t i = 4; i < first_metric; ++i) {
      // Numbers as written; a rental rate (stored in $/s) per hour.
      std::string v = cell_text(row[i]);
      if (row[i].type == Cell::Real) v = cols[i].name.ends_with("cost.rate") ? fmt::format("${:.4g}/h", row[i].d * 3600) : fmt::format("{:.6g}", row[i].d);
      c.settings.emplace_back(cols[i].name, v);
    }
    c.rate = num(row[c_rate]);
    c.cost_per_mtok = num(row[c_cost]);
    c.devices = num(row[first_metric]);
    c.slo_attainment = num(row[c_att]);
    c.goodput = num(row[c_good]);
    c.ttft_p99 = num(row[c_ttft]);
    c.tpot_p99 = num(row[c_tpot]);
    c.energy_per_token = num(row[c_energy]);
    (c.slo_attainment >= target ? meeting : all).push_back(c);
  });
  p.meeting = static_cast<int64_t>(meeting.size());
  // NaN (no rate) sorts last.
  auto key = [](double x) { return std::isnan(x) ? std::numeric_limits<double>::infinity() : x; };
  std::stable_sort(meeting.begin(), meeting.end(), [&](const PlanChoice& a, const PlanChoice& b) {
    return std::tuple(key(a.rate), key(a.cost_per_mtok), a.devices) < std::tuple(key(b.rate), key(b.cost_per_mtok), b.devices);
  });
  if (meeting.size() > top) meeting.resize(top);
  p.choices = std::move(meeting);
  if (p.choices.empty()) {
    std::stable_sort(all.begin(), all.end(), [](const PlanChoice& a, const PlanChoice& b) { return a.slo_attainment > b.slo_attainment; });
    if (all.size() > top) all.resize(top);
    p.closest = std::move(all);
  }
  return p;
}

std::string format_plan(const ServePlan& p, Format f) {
  const std::vector<PlanChoice>& rows = p.choices.empty() ? p.closest : p.choices;
  if (f == Format::Json) {
    nlohmann::json j = {{"kind", "plan"}, {"db", p.db}, {"sweep", p.sweep}, {"target_attainment", p.target}, {"points", p.points}, {"ok", p.ok},
                        {"meeting", p.meeting}};
    auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
    nlohmann::json list = nlohmann::json::array();
    for (const PlanChoice& c : rows) {
      nlohmann::json s = nlohmann::json::object();
      for (const auto& [k, v] : c.settings) s[k] = v;
      list.push_back({{"settings", s}, {"rate_per_hour", num(c.rate * 3600)}, {"cost_per_mtok", num(c.cost_per_mtok)}, {"devices", c.devices},
                      {"slo_attainment", c.slo_attainment}, {"goodput", c.goodput}, {"ttft_p99_s", c.ttft_p99}, {"tpot_p99_s", c.tpot_p99},
                      {"energy_per_token_j", num(c.energy_per_token)}});
    }
    j[p.choices.empty() ? "closest" : "choices"] = list;
    return j.dump(2) + "\n";
  }
  std::vector<std::string> head = {"rank"};
  if (!rows.empty())
    for (const auto& [k, v] : rows.front().settings) head.push_back(k);
  for (const char* h : {"devices", "$/h", "$/Mtok", "within SLOs", "TTFT p99", "TPOT p99", "J/token"}) head.push_back(h);
  TextTable t(head);
  for (size_t i = 0; i < rows.size(); ++i) {
    const PlanChoice& c = rows[i];
    std::vector<std::string> r = {std::to_string(i + 1)};
    for (const auto& [k, v] : c.settings) r.push_back(v);
    r.push_back(fmt::format("{:.0f}", c.devices));
    r.push_back(std::isfinite(c.rate) ? fmt::format("{:.2f}", c.rate * 3600) : "-");
    r.push_back(std::isfinite(c.cost_per_mtok) ? fmt::format("{:.3g}", c.cost_per_mtok) : "-");
    r.push_back(fmt::format("{:.2f}%", 100 * c.slo_attainment));
    r.push_back(fmt::format("{:.4g} ms", c.ttft_p99 * 1e3));
    r.push_back(fmt::format("{:.4g} ms", c.tpot_p99 * 1e3));
    r.push_back(std::isfinite(c.energy_per_token) ? fmt::format("{:.3g}", c.energy_per_token) : "-");
    t.row(r);
  }
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format("sweep '{}' ({}): {} points, {} evaluated ok, {} with at least {:.4g}% of requests within both SLOs\n", p.sweep, p.db, p.points,
                                p.ok, p.meeting, 100 * p.target);
  if (p.choices.empty()) {
    out += "no configuration meets the target; the closest:\n\n";
  } else {
    out += "cheapest: ";
    for (size_t i = 0; i < p.choices.front().settings.size(); ++i)
      out += (i ? ", " : "") + p.choices.front().settings[i].first + " " + p.choices.front().settings[i].second;
    out += std::isfinite(p.choices.front().rate) ? fmt::format(" (${:.2f}/h, {:.0f} devices)", p.choices.front().rate * 3600, p.choices.front().devices)
                                                 : fmt::format(" ({:.0f} devices; no rental rate)", p.choices.front().devices);
    out += p.choices.size() > 1 ? "\nthe runner-ups follow it, cheapest first:\n\n" : "\n\n";
  }
  out += t.aligned();
  return out;
}

}  // namespace einsim
