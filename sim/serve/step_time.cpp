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

StepTimer::StepTimer(ModelConfig m, ArchSpec a, int64_t tp) : m_(std::move(m)), a_(std::move(a)), tp_(tp) {
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 0;
  o.tp = tp_;
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

double StepTimer::prefill_exact(int64_t tokens) {
  RunOptions o;
  o.phase.kind = PhaseKind::Prefill;
  o.phase.batch = 1;
  o.phase.prompt = std::max<int64_t>(1, tokens);
  o.tp = tp_;
  o.check_memory = false;  // the simulation keeps its own KV accounting
  ++runs_;
  return run_model(m_, a_, o, &cache_).step_time;
}

double StepTimer::decode_exact(int64_t batch, int64_t context) {
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = std::max<int64_t>(1, batch);
  o.phase.context = std::max<int64_t>(0, context);
  o.tp = tp_;
  o.check_memory = false;
  ++runs_;
  return run_model(m_, a_, o, &cache_).step_time;
}

double StepTimer::prefill_at(int64_t tokens) {
  auto it = prefill_.find(tokens);
  if (it != prefill_.end()) return it->second;
  return prefill_[tokens] = prefill_exact(tokens);
}

double StepTimer::decode_at(int64_t batch, int64_t context) {
  auto it = decode_.find({batch, context});
  if (it != decode_.end()) return it->second;
  return decode_[{batch, context}] = decode_exact(batch, context);
}

double StepTimer::time(const Iteration& it) {
  auto lerp = [](int64_t lo, int64_t hi, int64_t x, double a, double b) {
    return hi == lo ? a : a + (b - a) * static_cast<double>(x - lo) / static_cast<double>(hi - lo);
  };
  double t = 0;
  if (it.prefill_tokens > 0) {
    const auto [lo, hi] = grid_bracket(it.prefill_tokens, true);
    t += lerp(lo, hi, it.prefill_tokens, prefill_at(lo), prefill_at(hi));
  }
  if (it.decode > 0) {
    const auto [blo, bhi] = grid_bracket(it.decode, true);
    const int64_t ctx = std::max<int64_t>(1, it.context);
    const auto [clo, chi] = grid_bracket(ctx, false);
    const double lo = lerp(clo, chi, ctx, decode_at(blo, clo), decode_at(blo, chi));
    const double hi = lerp(clo, chi, ctx, decode_at(bhi, clo), decode_at(bhi, chi));
    t += lerp(blo, bhi, it.decode, lo, hi);
  }
  return t;
}

}  // namespace einsim
