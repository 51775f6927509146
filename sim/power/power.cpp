#include "sim/power/power.h"

#include <algorithm>
#include <cmath>

namespace einsim {

ArchSpec at_clock(const ArchSpec& a, double clock) {
  ArchSpec r = a;
  if (clock <= 0) return r;
  for (ComputeArray& arr : r.arrays) {
    if (arr.clock <= clock) continue;
    const double s = clock / arr.clock;
    arr.clock = clock;
    for (auto& [cls, e] : arr.energy) e *= std::pow(s, a.power.energy_exponent);
  }
  return r;
}

std::vector<double> dvfs_clocks(const ArchSpec& a, double lock) {
  std::vector<double> out;
  for (const DvfsPoint& d : a.power.dvfs)
    if (lock <= 0 || d.clock <= lock * (1 + 1e-9)) out.push_back(d.clock);
  if (out.empty()) out.push_back(a.power.dvfs.empty() ? 0 : a.power.dvfs.back().clock);
  return out;
}

double power_limit(const PowerSpec& p, double cap) {
  if (cap <= 0) return p.tdp;
  return p.tdp > 0 ? std::min(cap, p.tdp) : cap;
}

double work_power(const PowerSpec& p, const ClockedWork& w) { return w.time > 0 ? p.active + w.dynamic() / w.time : p.idle; }

PoweredWork under_cap(const PowerSpec& p, const std::vector<ClockedWork>& points, double cap) {
  PoweredWork r;
  if (points.empty()) return r;
  auto at = [&](const ClockedWork& w, bool throttled) {
    PoweredWork x;
    x.time = w.time;
    x.energy = w.dynamic();
    x.compute_energy = w.compute_energy;
    x.power = work_power(p, w);
    x.clock = w.clock;
    x.throttled = throttled;
    return x;
  };
  const double limit = power_limit(p, cap);
  if (limit <= 0 || work_power(p, points.front()) <= limit) return at(points.front(), false);
  const double c = limit - p.active;  // dynamic power allowed
  for (size_t i = 1; i < points.size(); ++i) {
    const ClockedWork& lo = points[i];
    if (work_power(p, lo) > limit) continue;
    // A share w of the work at the faster point `hi`, the rest at `lo`: the dynamic energy
    // equals c times the time when w (E_hi - c t_hi) + (1 - w) (E_lo - c t_lo) = 0.
    const ClockedWork& hi = points[i - 1];
    const double over = hi.dynamic() - c * hi.time, under = lo.dynamic() - c * lo.time;
    const double w = over - under > 0 ? -under / (over - under) : 0;
    r.time = w * hi.time + (1 - w) * lo.time;
    r.energy = w * hi.dynamic() + (1 - w) * lo.dynamic();
    r.compute_energy = w * hi.compute_energy + (1 - w) * lo.compute_energy;
    r.power = r.time > 0 ? p.active + r.energy / r.time : p.idle;
    r.clock = r.time > 0 ? (w * hi.time * hi.clock + (1 - w) * lo.time * lo.clock) / r.time : lo.clock;
    r.throttled = true;
    return r;
  }
  r = at(points.back(), true);
  r.over = true;
  return r;
}

RunReport run_powered(const ModelConfig& m, const ArchSpec& a, const RunOptions& o, double lock, double cap, MapCache* cache) {
  const std::vector<double> clocks = dvfs_clocks(a, lock);
  const double limit = power_limit(a.power, cap);
  std::vector<ClockedWork> points;
  std::vector<RunReport> runs;
  // Lower clocks run the kernels chosen at the fastest DVFS point: the same mappings, slower arrays.
  const double top = dvfs_clocks(a, 0).front();
  const ArchSpec fastest = at_clock(a, top);
  RunOptions fixed = o;
  fixed.mapping_arch = &fastest;
  for (double f : clocks) {
    const ArchSpec slow = at_clock(a, f);
    runs.push_back(run_model(m, slow, f == top ? o : fixed, cache));
    const RunReport& r = runs.back();
    points.push_back({f, r.step_time, r.compute_energy, r.memory_energy});
    if (limit <= 0 || work_power(a.power, points.back()) <= limit) break;
  }
  const PoweredWork w = under_cap(a.power, points, cap);
  // The report of the fastest point the mix uses.
  RunReport r = runs[points.size() >= 2 && w.throttled && !w.over ? points.size() - 2 : points.size() - 1];
  r.compute_energy = w.compute_energy;
  r.memory_energy = w.energy - w.compute_energy;
  // The mix of two clocks stretches the device's own work (the links and the host keep their
  // speed), and every block, Einsum and the per-layer time with it, so that they still add up
  // to the step.
  const double scale = r.compute_time > 0 ? (w.time - (r.step_time - r.compute_time)) / r.compute_time : 1;
  r.step_time = w.time;
  r.compute_time *= scale;
  r.layer_time *= scale;
  for (BlockRun& b : r.blocks) {
    b.time *= scale;
    b.compute *= scale;
    b.overhead *= scale;
    b.utilization /= scale;
  }
  for (EinsumRun& e : r.einsums) {
    e.compute *= scale;
    e.time_alone *= scale;
    e.utilization /= scale;
  }
  r.tokens_per_s = r.step_time > 0 ? r.tokens / r.step_time : 0;
  r.energy = static_cast<double>(r.devices()) * (w.energy + a.power.active * w.time);
  r.energy_per_token = r.tokens > 0 ? r.energy / r.tokens : 0;
  r.power = w.power;
  r.clock = w.clock;
  r.throttled = w.throttled;
  r.over_limit = w.over;
  return r;
}

}  // namespace einsim
