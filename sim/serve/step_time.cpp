#include "sim/serve/step_time.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <span>

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

namespace {

ClockedWork lerp_work(const ClockedWork& a, const ClockedWork& b, double f) {
  return {a.clock, a.time + (b.time - a.time) * f, a.compute_energy + (b.compute_energy - a.compute_energy) * f,
          a.memory_energy + (b.memory_energy - a.memory_energy) * f};
}

StepParts lerp_parts(const StepParts& a, const StepParts& b, double f) {
  StepParts s;
  s.linear = lerp_work(a.linear, b.linear, f);
  s.attention = lerp_work(a.attention, b.attention, f);
  s.lm = lerp_work(a.lm, b.lm, f);
  s.linear_kernels = a.linear_kernels + (b.linear_kernels - a.linear_kernels) * f;
  s.attention_kernels = a.attention_kernels + (b.attention_kernels - a.attention_kernels) * f;
  s.lm_kernels = a.lm_kernels + (b.lm_kernels - a.lm_kernels) * f;
  s.allreduces = a.allreduces + (b.allreduces - a.allreduces) * f;
  return s;
}

// Interpolates f(x) between grid points lo and hi.
template <typename F>
StepParts between(int64_t lo, int64_t hi, int64_t x, F&& f) {
  if (hi == lo) return f(lo);
  const StepParts a = f(lo);
  return lerp_parts(a, f(hi), static_cast<double>(x - lo) / static_cast<double>(hi - lo));
}

void add(ClockedWork& to, const ClockedWork& w) {
  to.time += w.time;
  to.compute_energy += w.compute_energy;
  to.memory_energy += w.memory_energy;
}

}  // namespace

StepTimer::StepTimer(ModelConfig m, ArchSpec a, int64_t tp, std::shared_ptr<const Runtime> rt, std::optional<DType> kv_dtype, int64_t ep, bool emulate,
                     int64_t pp)
    : m_(std::move(m)), a_(std::move(a)), tp_(tp), ep_(ep), pp_(std::max<int64_t>(1, pp)), rt_(std::move(rt)), kv_dtype_(kv_dtype) {
  clocks_ = dvfs_clocks(a_, 0);
  // The runtime's launch cost applied once (run_model then copies nothing); the iteration
  // strips launches and adds its own.
  for (double f : clocks_) archs_.push_back(with_runtime(at_clock(a_, f), runtime(), PhaseKind::Decode));
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 0;
  o.phase.kv_dtype = kv_dtype_;
  o.tp = tp_;
  o.ep = ep_;
  o.runtime = rt_.get();
  o.check_memory = false;
  o.emulate = emulate;  // every later step computes at the same types
  // The memory of the fullest stage's device (its weights, its layers' cache per token).
  o.pp = pp_;
  o.microbatches = 1;
  const RunReport r = run_model(m_, a_, o, &cache_);
  fabric_ = fabric(a_);  // run_model has checked that pp stages of the instance's devices can be formed
  ++runs_;
  emulated_ = r.emulated;
  const TierMemory& mem = r.memory.front();
  kv_per_token_ = mem.kv_cache;  // one request, one cached token
  weight_bytes_ = mem.weights;
  // Each group holds its own requests' caches: the instance has every group's room.
  kv_capacity_ = mem.fit().kv_room() * static_cast<double>(groups());
  if (kv_capacity_ <= 0)
    throw UserError(a_.loc, fmt::format("'{}' does not fit {} x {}: its weights need {:.1f} GiB per device of {:.1f} GiB", m_.name, std::max(tp_, ep_),
                                        a_.name, mem.weights / (1ull << 30), mem.capacity / (1ull << 30)));
}

RunReport StepTimer::run_at(size_t level, const Phase& p) {
  RunOptions o;
  o.phase = p;
  o.phase.kv_dtype = kv_dtype_;
  o.tp = tp_;
  o.ep = ep_;
  o.runtime = rt_.get();
  o.check_memory = false;  // the simulation keeps its own KV accounting
  if (level > 0) o.mapping_arch = &archs_[0];  // the kernels chosen at the fastest clock
  ++runs_;
  return run_model(m_, archs_[level], o, &cache_);
}

StepParts StepTimer::exact(size_t level, const Phase& p) {
  const RunReport r = run_at(level, p);
  StepParts s;
  s.linear.clock = s.attention.clock = s.lm.clock = clocks_[level];
  double blocks_energy = 0;
  for (const BlockRun& b : r.blocks) {
    double compute_energy = 0;
    bool lm = false;
    for (int i : b.einsums) {
      compute_energy += r.einsums[static_cast<size_t>(i)].compute_energy;
      lm |= r.einsums[static_cast<size_t>(i)].name == "LOGITS";
    }
    const bool attention = block_is_attention(r, b);
    ClockedWork& w = attention ? s.attention : lm ? s.lm : s.linear;
    double& kernels = attention ? s.attention_kernels : lm ? s.lm_kernels : s.linear_kernels;
    // Launches are the iteration's, added once for the whole forward.
    add(w, {0, b.time - b.repeats * b.launch, compute_energy, b.energy - compute_energy});
    kernels += b.repeats;
    blocks_energy += b.energy;
  }
  // The all-reduces and all-to-alls (and their link energy) belong to the forward, without
  // their graph nodes.
  const Runtime& rt = runtime();
  s.allreduces = r.allreduces + r.alltoalls;
  s.linear.time += r.allreduce_time + r.alltoall_time - (rt.graphed(p.kind) ? s.allreduces * rt.graph_node : 0.0);
  s.linear.memory_energy += r.compute_energy + r.memory_energy - blocks_energy;
  return s;
}

double StepTimer::prefill_exact(int64_t tokens) {
  Phase p;
  p.kind = PhaseKind::Prefill;
  p.prompt = std::max<int64_t>(1, tokens);
  return run_at(0, p).step_time;
}

double StepTimer::decode_exact(int64_t batch, int64_t context) {
  Phase p;
  p.kind = PhaseKind::Decode;
  p.batch = std::max<int64_t>(1, batch);
  p.context = std::max<int64_t>(0, context);
  return run_at(0, p).step_time;
}

const StepParts& StepTimer::forward_at(size_t level, int64_t tokens) {
  auto it = forward_.find({level, tokens});
  if (it != forward_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Prefill;
  p.prompt = std::max<int64_t>(1, tokens);
  // Expert parallelism: the tokens spread over the groups (each group's share as one
  // sequence), every token's experts reached through the all-to-alls.
  if (groups() > 1) {
    p.batch = groups();
    p.prompt = std::max<int64_t>(1, (tokens + groups() - 1) / groups());
  }
  return forward_[{level, tokens}] = exact(level, p);
}

const StepParts& StepTimer::lm_at(size_t level, int64_t rows) {
  auto it = lm_.find({level, rows});
  if (it != lm_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Decode;
  p.batch = std::max<int64_t>(1, rows);
  p.context = 0;
  return lm_[{level, rows}] = exact(level, p);
}

const StepParts& StepTimer::prefill_at(size_t level, int64_t tokens, int64_t prefix) {
  auto it = prefill_.find({level, tokens, prefix});
  if (it != prefill_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Prefill;
  p.prompt = std::max<int64_t>(1, tokens);
  p.context = std::max<int64_t>(0, prefix);
  return prefill_[{level, tokens, prefix}] = exact(level, p);
}

const StepParts& StepTimer::decode_at(size_t level, int64_t batch, int64_t context) {
  auto it = decode_.find({level, batch, context});
  if (it != decode_.end()) return it->second;
  Phase p;
  p.kind = PhaseKind::Decode;
  p.batch = std::max<int64_t>(1, batch);
  p.context = std::max<int64_t>(0, context);
  return decode_[{level, batch, context}] = exact(level, p);
}

ClockedWork StepTimer::decode_only_at(size_t level, int64_t batch, int64_t context) {
  auto it = decode_only_.find({level, batch, context});
  if (it != decode_only_.end()) return it->second;
  const Runtime& rt = runtime();
  const StepParts& f = forward_at(level, batch);
  const StepParts& l = lm_at(level, batch);
  const StepParts& d = decode_at(level, batch, context);
  ClockedWork w{clocks_[level], 0, 0, 0};
  add(w, f.linear);
  add(w, l.lm);
  add(w, d.attention);
  w.time += (f.linear_kernels + l.lm_kernels + d.attention_kernels) * rt.per_kernel(PhaseKind::Decode) + rt.iteration;
  if (rt.graphed(PhaseKind::Decode)) w.time += f.allreduces * rt.graph_node;
  return decode_only_[{level, batch, context}] = w;
}

ClockedWork StepTimer::iteration(size_t level, const Iteration& it) {
  ClockedWork w = forward(level, it);
  if (pp_ <= 1) return w;
  // Pipeline stages: the stages' work adds up to the whole forward's on one stage's devices,
  // plus the hops of every token's hidden state (run's pipeline_hops()).
  int64_t tokens = it.decode * std::max<int64_t>(1, it.verify) + (it.chunks.empty() ? std::max<int64_t>(0, it.prefill_tokens) : 0);
  for (const Chunk& c : it.chunks) tokens += c.tokens;
  const double bytes = static_cast<double>(tokens) * static_cast<double>(m_.hidden_size) * dtype_bytes(m_.dtype) / static_cast<double>(tp_);
  const PipelineHops hops = pipeline_hops(fabric_, pp_, std::max(tp_, ep_), bytes, runtime().collective_base);
  w.time += hops.time;
  w.memory_energy += hops.energy;
  return w;
}

ClockedWork StepTimer::forward(size_t level, const Iteration& it) {
  const int64_t verify = std::max<int64_t>(1, it.verify);
  if (it.chunks.empty() && it.prefill_tokens <= 0 && it.decode > 0 && it.sampled < 0 && verify == 1) {
    const std::pair<int64_t, int64_t> blobhi = grid_bracket(it.decode, true);
    const int64_t blo = blobhi.first, bhi = blobhi.second;
    const int64_t ctx = std::max<int64_t>(1, it.context);
    const std::pair<int64_t, int64_t> clochi = grid_bracket(ctx, false);
    const int64_t clo = clochi.first, chi = clochi.second;
    auto at_batch = [&](int64_t b) {
      if (clo == chi) return decode_only_at(level, b, clo);
      return lerp_work(decode_only_at(level, b, clo), decode_only_at(level, b, chi), static_cast<double>(ctx - clo) / static_cast<double>(chi - clo));
    };
    ClockedWork w = blo == bhi ? at_batch(blo) : lerp_work(at_batch(blo), at_batch(bhi), static_cast<double>(it.decode - blo) / static_cast<double>(bhi - blo));
    w.time += runtime().request * static_cast<double>(it.admitted);
    return w;
  }
  const Chunk whole{it.prefill_tokens, 0};
  const bool implicit = it.chunks.empty() && it.prefill_tokens > 0;
  const Chunk* first = implicit ? &whole : it.chunks.data();
  const size_t n_chunks = implicit ? 1 : it.chunks.size();
  const std::span<const Chunk> chunks(first, n_chunks);
  int64_t tokens = it.decode * verify;
  for (const Chunk& c : chunks) tokens += c.tokens;
  ClockedWork w{clocks_[level], 0, 0, 0};
  if (tokens <= 0) return w;
  const Runtime& rt = runtime();
  const bool decode_only = chunks.empty();  // a verify step runs as a decode step (graphs capture it)
  double kernels = 0;
  // The forward's matrix products, norms and all-reduces over every token at once.
  const std::pair<int64_t, int64_t> tlothi = grid_bracket(tokens, true);
  const int64_t tlo = tlothi.first, thi = tlothi.second;
  const StepParts f = between(tlo, thi, tokens, [&](int64_t n) { return forward_at(level, n); });
  add(w, f.linear);
  kernels += f.linear_kernels;
  if (rt.graphed(decode_only ? PhaseKind::Decode : PhaseKind::Prefill)) w.time += f.allreduces * rt.graph_node;
  // The LM head over the rows that sample.
  const int64_t rows = it.sampled >= 0 ? it.sampled : it.decode * verify + static_cast<int64_t>(chunks.size());
  if (rows > 0) {
    const std::pair<int64_t, int64_t> rlorhi = grid_bracket(rows, true);
    const int64_t rlo = rlorhi.first, rhi = rlorhi.second;
    const StepParts l = between(rlo, rhi, rows, [&](int64_t n) { return lm_at(level, n); });
    add(w, l.lm);
    kernels += l.lm_kernels;
  }
  // Attention per sequence: each chunk its causal square over its prefix.
  double chunk_kernels = 0, attended = 0, longest = 0;
  for (const Chunk& c : chunks) {
    const std::pair<int64_t, int64_t> nlonhi = grid_bracket(std::max<int64_t>(1, c.tokens), true);
    const int64_t nlo = nlonhi.first, nhi = nlonhi.second;
    auto at_prefix = [&](int64_t prefix) {
      return between(nlo, nhi, std::max<int64_t>(1, c.tokens), [&](int64_t n) { return prefill_at(level, n, prefix); });
    };
    StepParts a;
    if (c.prefix <= 0) {
      a = at_prefix(0);
    } else {
      const std::pair<int64_t, int64_t> plophi = grid_bracket(c.prefix, false);
      const int64_t plo = plophi.first, phi = plophi.second;
      const StepParts lo = at_prefix(plo);
      a = phi == plo ? lo : lerp_parts(lo, at_prefix(phi), static_cast<double>(c.prefix - plo) / static_cast<double>(phi - plo));
    }
    longest = std::max(longest, a.attention.time);
    attended += a.attention.time;
    add(w, {0, 0, a.attention.compute_energy, a.attention.memory_energy});
    chunk_kernels = std::max(chunk_kernels, a.attention_kernels);  // one varlen kernel for every chunk
  }
  // The groups attend to their own chunks at once (expert parallelism): the chunks' attention
  // spread over the groups, no less than the longest chunk's.
  w.time += std::max(attended / static_cast<double>(groups()), longest);
  kernels += chunk_kernels;
  // Verify steps: each decode a chunk of `verify` tokens over its context (the batch's mean),
  // in the same varlen kernel as the prompts' chunks.
  if (it.decode > 0 && verify > 1) {
    const int64_t ctx = std::max<int64_t>(1, it.context);
    const std::pair<int64_t, int64_t> clochi = grid_bracket(ctx, false);
    const StepParts a = between(clochi.first, clochi.second, ctx, [&](int64_t x) { return prefill_at(level, verify, x); });
    const double n = static_cast<double>(it.decode);
    w.time += std::max(n * a.attention.time / static_cast<double>(groups()), a.attention.time);
    add(w, {0, 0, n * a.attention.compute_energy, n * a.attention.memory_energy});
    if (chunks.empty()) kernels += a.attention_kernels;
  }
  // Each decode over its own context (the batch's mean: attention is linear in it).
  if (it.decode > 0 && verify == 1) {
    const std::pair<int64_t, int64_t> blobhi = grid_bracket(it.decode, true);
    const int64_t blo = blobhi.first, bhi = blobhi.second;
    const int64_t ctx = std::max<int64_t>(1, it.context);
    const std::pair<int64_t, int64_t> clochi = grid_bracket(ctx, false);
    const int64_t clo = clochi.first, chi = clochi.second;
    auto at_batch = [&](int64_t b) { return between(clo, chi, ctx, [&](int64_t x) { return decode_at(level, b, x); }); };
    const StepParts d = blo == bhi ? at_batch(blo) : lerp_parts(at_batch(blo), at_batch(bhi), static_cast<double>(it.decode - blo) / static_cast<double>(bhi - blo));
    add(w, d.attention);
    kernels += d.attention_kernels;
  }
  // Launches once per kernel of the forward, and the runtime's host time.
  w.time += kernels * rt.per_kernel(decode_only ? PhaseKind::Decode : PhaseKind::Prefill);
  w.time += rt.iteration + rt.request * static_cast<double>(it.admitted);
  return w;
}

double StepTimer::time(const Iteration& it) { return iteration(0, it).time; }

PoweredWork StepTimer::cost(const Iteration& it, const Operating& op) {
  const double limit = power_limit(a_.power, op.cap);
  std::vector<ClockedWork>& points = points_;  // reused: called once per simulated iteration
  points.clear();
  for (size_t l = 0; l < clocks_.size(); ++l) {
    if (op.lock > 0 && clocks_[l] > op.lock * (1 + 1e-9) && l + 1 < clocks_.size()) continue;
    points.push_back(iteration(l, it));
    if (limit <= 0 || work_power(a_.power, points.back()) <= limit) break;
  }
  PoweredWork total = under_cap(a_.power, points, op.cap);
  total.power = work_power(a_.power, {0, total.time, total.energy, 0});
  return total;
}

}  // namespace einsim
