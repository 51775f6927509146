#include "sim/serve/step_time.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace einsim {

std::pair<int64_t, int64_t> grid_bracket(int64_t n, bool fine) {
  if (n <= 1) return {1, 1};
  // Points: every integer up to 8, then 4 (fine) or 2 per octave: 2^k * (1 + j/steps).
  const int64_t steps = fine ? 4 : 2;
  if (n <= 8) return {n, n};
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  const int64_t step = p / steps;
  const int64_t lo = n / step * step;
  return {lo, lo == n ? n : lo + step};
}

StepTimer::StepTimer(ModelConfig m, ArchSpec a, int64_t tp, std::shared_ptr<const Runtime> rt)
    : m_(std::move(m)), a_(std::move(a)), tp_(tp), rt_(std::move(rt)) {
  clocks_ = dvfs_clocks(a_, 0);
  for (double f : clocks_) archs_.push_back(at_clock(a_, f));
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 0;
  o.tp = tp_;
  o.runtime = rt_.get();
  o.check_memory = false;
  const RunReport r = run_model(m_, a_, o, &cache_);
  ++runs_;
  const TierMemory& mem = r.memory.front();
  kv_per_token_ = mem.kv_cache;  // one request, one cached token
  kv_capacity_ = mem.capacity - mem.weights - mem.activations;
  if (kv_capacity_ <= 0)
    throw UserError(a_.loc, fmt::format("'{}' does not fit {} x {}: its weights need {:.1f} GiB per device of {:.1f} GiB", m_.name, tp_, a_.name,
                                        mem.weights / (1ull << 30), mem.capacity / (1ull << 30)));
}

ClockedWork StepTimer::exact(size_t level, const Phase& p) {
  RunOptions o;
  o.phase = p;
  o.tp = tp_;
  o.runtime = rt_.get();
  o.check_memory = false;  // the simulation keeps its own KV accounting
  if (level > 0) o.mapping_arch = &archs_[0];  // the kernels chosen at the fastest clock
  ++runs_;
  const RunReport r = run_model(m_, archs_[level], o, &cache_);
  return {clocks_[level], r.step_time, r.compute_energy, r.memory_energy};
}

double StepTimer::prefill_exact(int64_t tokens) { return prefill_at(0, tokens).time; }
double StepTimer::decode_exact(int64_t batch, int64_t context) { return decode_at(0, batch, context).time; }

ClockedWork StepTimer::prefill_at(size_t level, int64_t tokens) {
  auto it = prefill_.find({level, tokens});
  if (it != prefill_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Prefill;
  p.batch = 1;
  p.prompt = std::max<int64_t>(1, tokens);
  return prefill_[{level, tokens}] = exact(level, p);
}

ClockedWork StepTimer::decode_at(size_t level, int64_t batch, int64_t context) {
  auto it = decode_.find({level, batch, context});
  if (it != decode_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Decode;
  p.batch = std::max<int64_t>(1, batch);
  p.context = std::max<int64_t>(0, context);
  return decode_[{level, batch, context}] = exact(level, p);
}

ClockedWork StepTimer::part(size_t level, const Iteration& it) {
  auto lerp = [](int64_t lo, int64_t hi, int64_t x, const ClockedWork& a, const ClockedWork& b) {
    if (hi == lo) return a;
    const double f = static_cast<double>(x - lo) / static_cast<double>(hi - lo);
    return ClockedWork{a.clock, a.time + (b.time - a.time) * f, a.compute_energy + (b.compute_energy - a.compute_energy) * f,
                       a.memory_energy + (b.memory_energy - a.memory_energy) * f};
  };
  if (it.prefill_tokens > 0) {
    const auto [lo, hi] = grid_bracket(it.prefill_tokens, true);
    return lerp(lo, hi, it.prefill_tokens, prefill_at(level, lo), prefill_at(level, hi));
  }
  const auto [blo, bhi] = grid_bracket(it.decode, true);
  const int64_t ctx = std::max<int64_t>(1, it.context);
  const auto [clo, chi] = grid_bracket(ctx, false);
  const ClockedWork lo = lerp(clo, chi, ctx, decode_at(level, blo, clo), decode_at(level, blo, chi));
  const ClockedWork hi = lerp(clo, chi, ctx, decode_at(level, bhi, clo), decode_at(level, bhi, chi));
  return lerp(blo, bhi, it.decode, lo, hi);
}

double StepTimer::time(const Iteration& it) {
  double t = 0;
  if (it.prefill_tokens > 0) t += part(0, {it.prefill_tokens, 0, 0}).time;
  if (it.decode > 0) t += part(0, {0, it.decode, it.context}).time;
  return t;
}

PoweredWork StepTimer::cost(const Iteration& it, const Operating& op) {
  const double limit = power_limit(a_.power, op.cap);
  PoweredWork total;
  double clock_time = 0;
  for (const Iteration& p : {Iteration{it.prefill_tokens, 0, 0}, Iteration{0, it.decode, it.context}}) {
    if (p.prefill_tokens == 0 && p.decode == 0) continue;
    std::vector<ClockedWork>& points = points_;  // reused: called once per simulated iteration
    points.clear();
    for (size_t l = 0; l < clocks_.size(); ++l) {
      if (op.lock > 0 && clocks_[l] > op.lock * (1 + 1e-9) && l + 1 < clocks_.size()) continue;
      points.push_back(part(l, p));
      if (limit <= 0 || work_power(a_.power, points.back()) <= limit) break;
    }
    const PoweredWork w = under_cap(a_.power, points, op.cap);
    total.time += w.time;
    total.energy += w.energy;
    clock_time += w.clock * w.time;
    total.throttled = total.throttled || w.throttled;
    total.over = total.over || w.over;
  }
  total.power = work_power(a_.power, {0, total.time, total.energy, 0});
  total.clock = total.time > 0 ? clock_time / total.time : 0;
  return total;
}

}  // namespace einsim
