#include "sim/run/placement.h"

#include <fmt/format.h>

#include <algorithm>

namespace einsim {

std::string Placement::flags() const {
  std::string s = fmt::format("--tp {}", tp);
  if (pp > 1) s += fmt::format(" --pp {}", pp);
  if (ep > 1) s += fmt::format(" --ep {}", ep);
  return s;
}

namespace {

// The splits shard_model() accepts, fewest devices first.
std::vector<Placement> candidates(const ModelConfig& m, int64_t max_devices, int64_t layers) {
  std::vector<Placement> out;
  auto accepted = [&](int64_t tp, int64_t ep) {
    try {
      (void)shard_model(m, tp, ep);
      return true;
    } catch (const UserError&) {
      return false;
    }
  };
  for (int64_t tp = 1; tp <= max_devices; ++tp) {
    if (!accepted(tp, 1)) continue;
    std::vector<int64_t> eps = {1};
    if (m.num_local_experts > 0)
      for (int64_t ep = tp; ep <= std::min(max_devices, m.num_local_experts); ep += tp)
        if (ep > 1 && m.num_local_experts % ep == 0 && accepted(tp, ep)) eps.push_back(ep);
    for (int64_t ep : eps)
      for (int64_t pp = 1; pp <= layers && std::max(tp, ep) * pp <= max_devices; ++pp) out.push_back({tp, pp, ep});
  }
  std::stable_sort(out.begin(), out.end(), [](const Placement& x, const Placement& y) { return x.devices() < y.devices(); });
  return out;
}

}  // namespace

std::vector<PlacementPoint> search_placements(const ModelConfig& m, const ArchSpec& a, const RunOptions& base, const PlacementOptions& opt,
                                              MapCache* cache) {
  if (opt.max_devices < 1) throw UserError(SourceLoc{"--max-devices"}, "--max-devices must be at least 1");
  const int64_t layers = base.phase.layers > 0 ? std::min(base.phase.layers, m.num_hidden_layers) : m.num_hidden_layers;
  std::vector<PlacementPoint> out;
  int64_t found_at = 0;  // the device count where a split first fits (fewest_devices)
  for (const Placement& p : candidates(m, opt.max_devices, layers)) {
    if (opt.fewest_devices && found_at > 0 && p.devices() > found_at) break;
    PlacementPoint x;
    x.at = p;
    RunOptions o = base;
    o.tp = p.tp, o.pp = p.pp, o.ep = p.ep;
    o.microbatches = 0;
    o.check_memory = false;
    try {
      const RunReport r = run_model(m, a, o, cache);
      const TierMemory& mem = r.memory.front();
      x.fits = mem.fit().holds(mem.kv_cache);
      x.memory = mem.total();
      x.capacity = mem.capacity;
      x.step = r.step_time;
      x.interval = p.pp > 1 ? r.pipeline_interval + r.host_time : r.step_time;
      x.tokens_per_s = x.interval > 0 ? r.tokens / x.interval : 0;
      x.replicas = std::max<int64_t>(1, opt.max_devices / x.at.devices());
      const double device_seconds = static_cast<double>(p.devices()) * x.interval / std::max(r.tokens, 1.0);
      if (a.cost.rate) x.cost_per_mtok = device_seconds * *a.cost.rate * 1e6;
      x.rank = a.cost.rate ? x.cost_per_mtok : device_seconds;
      x.meets_slo = opt.slo <= 0 || x.step <= opt.slo;
    } catch (const UserError& e) {
      x.invalid = e.what();
    }
    if (x.fits && x.meets_slo && found_at == 0) found_at = p.devices();
    out.push_back(std::move(x));
  }
  std::stable_sort(out.begin(), out.end(), [](const PlacementPoint& x, const PlacementPoint& y) {
    const int gx = x.invalid.empty() ? (x.fits && x.meets_slo ? 0 : 1) : 2, gy = y.invalid.empty() ? (y.fits && y.meets_slo ? 0 : 1) : 2;
    if (gx != gy) return gx < gy;
    if (x.rank != y.rank) return x.rank < y.rank;
    return x.step < y.step;
  });
  return out;
}

}  // namespace einsim
