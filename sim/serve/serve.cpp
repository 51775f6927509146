#include "sim/serve/serve.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>

#include "common/error.h"

namespace einsim {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100 * static_cast<double>(v.size()));
  const size_t i = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(v.size()))) - 1;
  return v[i];
}

void PowerTimeline::add(size_t k, double t0, double t1, double e, double clock_hz, double sign) {
  if (t1 <= t0) return;
  if (energy.size() <= k) energy.resize(k + 1), busy.resize(k + 1), this->clock.resize(k + 1);
  const auto last = static_cast<size_t>(std::max(0.0, std::floor((t1 - start) / bin)));
  for (auto* v : {&energy[k], &busy[k], &this->clock[k]})
    if (v->size() <= last) v->resize(last + 1, 0.0);
  const double rate = e / (t1 - t0);
  for (size_t b = static_cast<size_t>(std::max(0.0, std::floor((t0 - start) / bin))); b <= last; ++b) {
    const double lo = std::max(t0, start + static_cast<double>(b) * bin), hi = std::min(t1, start + static_cast<double>(b + 1) * bin);
    if (hi <= lo) continue;
    energy[k][b] += sign * rate * (hi - lo);
    busy[k][b] += sign * (hi - lo);
    this->clock[k][b] += sign * clock_hz * (hi - lo);
  }
}

size_t PowerTimeline::bins() const {
  size_t n = 0;
  for (const auto& v : energy) n = std::max(n, v.size());
  return n;
}

double PowerTimeline::device_power(size_t k, size_t b) const {
  if (k >= energy.size() || b >= energy[k].size()) return power.idle;
  const double on = std::clamp(busy[k][b] / bin, 0.0, 1.0);
  return power.idle * (1 - on) + power.active * on + energy[k][b] / bin;
}

double PowerTimeline::device_clock(size_t k, size_t b) const {
  if (k >= energy.size() || b >= energy[k].size() || busy[k][b] <= 1e-12) return 0;
  return clock[k][b] / busy[k][b];
}

namespace {

// Where a request stands: its line in the trace file, or the synthetic trace's name.
SourceLoc request_loc(const Trace& t, const Request& r) { return r.line > 0 && !t.file.empty() ? SourceLoc{t.file, r.line, 1} : SourceLoc{t.name}; }

enum class State { Waiting, Running, Done };

struct Req {
  State state = State::Waiting;
  int instance = -1;
  int64_t prompt_left = 0;  ///< tokens still to prefill (the prompt, or everything so far after a recompute)
  int64_t context = 0;      ///< tokens in the KV cache
  int64_t generated = 0;
  int64_t blocks = 0;       ///< KV pages held
  bool swapped = false;     ///< KV in host memory (Swap): resumes without a prefill
  bool started = false;     ///< its first token is out
};

struct Instance {
  std::deque<size_t> waiting;
  std::vector<size_t> running;  ///< in admission order
  int64_t free_blocks = 0;
  bool busy = false;
  double swapped = 0;  ///< bytes per device of its preempted requests' pages on the swap tier
  // The iteration in flight.
  std::vector<std::pair<size_t, int64_t>> prefill;  ///< request, tokens
  std::vector<size_t> decode;
  int64_t steps = 1;  ///< identical decode iterations the plan runs back to back
  double run_start = 0, step_dt = 0;  ///< the plan's start and (for a run) the time of one step
  int64_t gen = 0;    ///< plans started; a completion event of an older plan is stale
  double kv_used = 0;
  InstanceSample planned;  ///< recorded when the plan completes
};

struct Event {
  double time;
  int64_t seq;
  bool arrival;  ///< else a completion, or a controller's turn when `index` is SIZE_MAX
  size_t index;  ///< request (arrival) or instance (completion)
  int64_t gen = 0;  ///< completion: the instance's plan it ends (a cut-short run leaves a stale one)
  bool operator>(const Event& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

}  // namespace

ServeResult simulate_serving(const Trace& t, const ServeConfig& c, StepTimer& timer, const ArchSpec& a) {
  if (c.servers < 1 || c.instances_per_server < 1 || c.token_budget < 1 || c.max_batch < 1 || c.block < 1)
    throw UserError(SourceLoc{"serve"}, "servers, instances per server, token budget, batch limit and page size must be at least 1");
  if (c.pp != timer.stages()) throw InternalError(fmt::format("serving {} pipeline stages with a timer of {}", c.pp, timer.stages()));
  // Lanes: an instance's batches in flight, one per pipeline stage (one without stages).
  const int lanes = static_cast<int>(std::max<int64_t>(1, c.pp));
  const int n_inst = static_cast<int>(c.servers * c.instances_per_server) * lanes;
  if (!c.instance_class.empty() && c.instance_class.size() * static_cast<size_t>(lanes) != static_cast<size_t>(n_inst))
    throw InternalError(fmt::format("{} instance classes for {} instances", c.instance_class.size(), n_inst / lanes));
  auto class_of = [&](int k) { return c.instance_class.empty() ? 0 : c.instance_class[static_cast<size_t>(k / lanes)]; };
  for (const Request& r : t.requests) {
    bool served = false;
    for (int k = 0; k < n_inst && !served; ++k) served = class_of(k) == r.priority;
    if (!served) throw UserError(request_loc(t, r), fmt::format("request {} is of class {}, which no instance serves", r.id, r.priority));
  }
  ServeResult res;
  res.power.bin = c.power_bin > 0 ? c.power_bin : 1;
  res.power.start = t.requests.empty() ? 0 : std::min(0.0, t.requests.front().arrival);
  res.power.power = a.power;
  res.power.devices_per_instance = c.devices() / lanes;  // a lane's share of the instance's devices
  res.power.energy.resize(static_cast<size_t>(n_inst));
  res.power.busy.resize(static_cast<size_t>(n_inst));
  res.power.clock.resize(static_cast<size_t>(n_inst));
  std::vector<Operating> ops(static_cast<size_t>(n_inst), c.operating);
  res.kv_blocks = static_cast<int64_t>(std::floor(timer.kv_capacity() / (timer.kv_bytes_per_token() * static_cast<double>(c.block)))) / lanes;
  double swap_bw = c.swap_bandwidth;
  if (swap_bw <= 0)
    for (const Link& l : a.links)
      if (l.to == "host") swap_bw = l.bandwidth;
  if (c.preemption == Preemption::Swap && swap_bw <= 0)
    throw UserError(a.loc, fmt::format("'{}' has no link to the host to swap KV pages over; give a swap bandwidth or preempt by recompute", a.name));
  // KV pages a request holds after `tokens` tokens (windows and chunks cap some layers': a
  // page holds `block` tokens of every attention layer).
  auto pages = [&](int64_t tokens) { return static_cast<int64_t>(std::ceil(timer.kv_tokens(tokens) / static_cast<double>(c.block) - 1e-9)); };
  for (const Request& r : t.requests)
    if (pages(r.prompt + r.output) > res.kv_blocks)
      throw UserError(request_loc(t, r), fmt::format("request {} ({} + {} tokens) needs {} KV pages; {} has {}", r.id, r.prompt, r.output,
                                                     pages(r.prompt + r.output), lanes > 1 ? "a lane of an instance" : "an instance", res.kv_blocks));

  std::vector<Req> rq(t.requests.size());
  res.requests.resize(t.requests.size());
  for (size_t i = 0; i < rq.size(); ++i) {
    const Request& r = t.requests[i];
    rq[i].prompt_left = r.prompt;
    RequestOutcome& o = res.requests[i];
    o.id = r.id;
    o.arrival = r.arrival;
    o.prompt = r.prompt;
    o.output = r.output;
  }
  std::vector<Instance> inst(static_cast<size_t>(n_inst));
  for (Instance& x : inst) x.free_blocks = res.kv_blocks;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> q;
  int64_t seq = 0;
  for (size_t i = 0; i < t.requests.size(); ++i) q.push({t.requests[i].arrival, seq++, true, i});
  size_t arrivals_left = t.requests.size();
  if (c.control.period > 0 && c.control.act && !t.requests.empty()) q.push({t.requests.front().arrival, seq++, false, SIZE_MAX});
  int next_rr = 0;
  int64_t in_system = 0;
  const double kv_bytes = timer.kv_bytes_per_token();

  // Frees a running request's pages and sends it back to the front of the queue.
  auto preempt = [&](Instance& x, size_t victim, double& extra) {
    Req& v = rq[victim];
    x.running.erase(std::find(x.running.begin(), x.running.end(), victim));
    x.free_blocks += v.blocks;
    const double bytes = static_cast<double>(v.context) * kv_bytes;
    if (c.preemption == Preemption::Swap && (c.swap_capacity <= 0 || x.swapped + bytes <= c.swap_capacity / lanes)) {
      v.swapped = true;
      x.swapped += bytes;
      res.swap_peak = std::max(res.swap_peak, x.swapped);
      ++res.swaps;
      extra += bytes / swap_bw;  // swap out
    } else {
      v.prompt_left = t.requests[victim].prompt + v.generated;  // recompute everything so far
      v.context = 0;
    }
    v.blocks = 0;
    v.state = State::Waiting;
    x.waiting.push_front(victim);
    ++res.requests[victim].preemptions;
    ++res.preemptions;
  };

  // Plans and starts instance k's next iteration at `now`, if it has work.
  auto start = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    x.prefill.clear();
    x.decode.clear();
    double extra = 0;  // swap traffic
    int64_t budget = c.token_budget;
    int64_t admitted = 0;  // requests seen for the first time (the runtime's per-request cost)
    auto admit = [&](bool whole_prompts) {
      while (!x.waiting.empty() && static_cast<int64_t>(x.running.size()) < c.max_batch && budget > 0) {
        const size_t r = x.waiting.front();
        Req& s = rq[r];
        const int64_t need = s.swapped ? pages(s.context + 1) : pages(s.prompt_left + 1);
        if (need > x.free_blocks) break;
        int64_t tokens = s.swapped ? 0 : s.prompt_left;
        if (whole_prompts && tokens > budget && !x.prefill.empty()) break;  // a prompt over the budget runs alone
        if (!whole_prompts) tokens = std::min(tokens, budget);
        x.waiting.pop_front();
        x.free_blocks -= need;
        s.blocks = need;
        s.state = State::Running;
        if (res.requests[r].admitted < 0) res.requests[r].admitted = now, ++admitted;
        x.running.push_back(r);
        if (s.swapped) {
          s.swapped = false;
          x.swapped -= static_cast<double>(s.context) * kv_bytes;
          extra += static_cast<double>(s.context) * kv_bytes / swap_bw;  // swap in
          continue;
        }
        x.prefill.push_back({r, tokens});
        budget -= tokens;
      }
    };
    // Decoding requests each need room for one more token; make it by preempting the latest.
    auto make_room = [&]() {
      for (size_t i = 0; i < x.running.size();) {
        const size_t r = x.running[i];
        Req& s = rq[r];
        if (s.prompt_left > 0 || !s.started) {
          ++i;
          continue;
        }
        if (pages(s.context + 1) > s.blocks) {
          while (x.free_blocks == 0 && x.running.back() != r) preempt(x, x.running.back(), extra);
          if (x.free_blocks == 0) {  // it is the latest itself
            preempt(x, r, extra);
            continue;
          }
          --x.free_blocks;
          ++s.blocks;
        }
        ++i;
      }
    };
    if (c.batching == Batching::PrefillFirst) {
      admit(true);
      if (x.prefill.empty()) {
        make_room();
        for (size_t r : x.running)
          if (rq[r].started && rq[r].prompt_left == 0) x.decode.push_back(r);
      }
    } else {
      make_room();
      for (size_t r : x.running)
        if (rq[r].started && rq[r].prompt_left == 0) x.decode.push_back(r);
      budget -= static_cast<int64_t>(x.decode.size());
      // Prompts already being prefilled continue first, then new ones.
      for (size_t r : x.running)
        if (rq[r].prompt_left > 0 && budget > 0) {
          const int64_t chunk = std::min(rq[r].prompt_left, budget);
          x.prefill.push_back({r, chunk});
          budget -= chunk;
        }
      admit(false);
    }
    if (x.prefill.empty() && x.decode.empty() && extra == 0) {
      x.busy = false;
      return;
    }
    Iteration it;
    for (const auto& [r, n] : x.prefill) {
      it.prefill_tokens += n;
      it.chunks.push_back({n, rq[r].context});  // each prompt chunk over what it has cached
    }
    it.admitted = admitted;
    it.decode = static_cast<int64_t>(x.decode.size());
    double ctx = 0;
    for (size_t r : x.decode) ctx += static_cast<double>(rq[r].context);
    it.context = it.decode ? static_cast<int64_t>(std::llround(ctx / static_cast<double>(it.decode))) : 0;
    const Operating& op = ops[static_cast<size_t>(k)];
    PoweredWork pw = timer.cost(it, op);
    double dt = pw.time + extra;
    double energy = pw.energy;
    // A run of identical decode iterations: nothing waits and every request has the tokens and
    // pages to go on. They run as one event; their times follow the context as it grows (the
    // step time is linear in the context between grid points, so the middle context gives the
    // sum). An arrival routed here cuts the run short at the next iteration boundary.
    x.steps = 1;
    if (x.prefill.empty() && extra == 0 && x.waiting.empty() && !x.decode.empty()) {
      int64_t n = 4096;
      for (size_t r : x.decode) n = std::min(n, t.requests[r].output - rq[r].generated);
      auto new_pages = [&](int64_t m) {
        int64_t need = 0;
        for (size_t r : x.decode) need += std::max<int64_t>(0, pages(rq[r].context + m + 1) - rq[r].blocks);
        return need;
      };
      while (n > 1 && new_pages(n - 1) > x.free_blocks) n /= 2;
      if (n > 1) {
        Iteration mid = it;
        mid.context += (n - 1) / 2;
        pw = timer.cost(mid, op);
        x.steps = n;
        dt = static_cast<double>(n) * pw.time;
        energy = static_cast<double>(n) * pw.energy;
        // Pages for the tokens the run appends, handed out now.
        for (size_t r : x.decode) {
          const int64_t more = std::max<int64_t>(0, pages(rq[r].context + n) - rq[r].blocks);
          rq[r].blocks += more;
          x.free_blocks -= more;
        }
      }
    }
    x.busy = true;
    x.run_start = now;
    x.step_dt = dt / static_cast<double>(x.steps);
    x.kv_used = 1 - static_cast<double>(x.free_blocks) / static_cast<double>(res.kv_blocks);
    InstanceSample& smp = x.planned;
    smp.instance = k;
    smp.time = now + dt;
    smp.duration = dt;
    smp.running = static_cast<int64_t>(x.running.size());
    smp.waiting = static_cast<int64_t>(x.waiting.size());
    smp.prefill_tokens = it.prefill_tokens;
    smp.decode = it.decode;
    smp.iterations = x.steps;
    smp.kv_used = x.kv_used;
    smp.energy = energy;
    smp.clock = pw.clock;
    res.power.add(static_cast<size_t>(k), now, now + dt, energy, pw.clock);
    q.push({now + dt, seq++, false, static_cast<size_t>(k), ++x.gen});
  };

  // An arrival at `now` for instance k, busy with a run: the run ends at the iteration boundary
  // after `now`, and the pages its later tokens held go back.
  auto cut_short = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    if (!x.busy || x.steps <= 1) return;
    const int64_t done = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((now - x.run_start) / x.step_dt - 1e-9)), 1, x.steps);
    if (done >= x.steps) return;
    for (size_t r : x.decode) {
      const int64_t keep = pages(rq[r].context + done);
      x.free_blocks += rq[r].blocks - keep;
      rq[r].blocks = keep;
    }
    x.steps = done;
    const double end = x.run_start + static_cast<double>(done) * x.step_dt;
    const double old_end = x.planned.time;
    const double removed = x.planned.energy * (old_end - end) / (old_end - x.run_start);
    res.power.add(static_cast<size_t>(k), end, old_end, removed, x.planned.clock, -1);
    x.planned.energy -= removed;
    x.planned.time = end;
    x.planned.duration = end - x.run_start;
    x.planned.iterations = done;
    q.push({end, seq++, false, static_cast<size_t>(k), ++x.gen});
  };

  auto finish_iteration = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    res.iterations += x.steps;
    res.busy_time += x.planned.duration;
    res.kv_area += x.planned.duration * x.kv_used;
    res.kv_peak = std::max(res.kv_peak, x.kv_used);
    if (c.record_samples) res.samples.push_back(x.planned);
    std::vector<size_t> done;
    for (const auto& [r, n] : x.prefill) {
      Req& s = rq[r];
      s.prompt_left -= n;
      s.context += n;
      if (s.prompt_left == 0) {  // the prefill emits a token
        ++s.generated;
        if (!s.started) res.requests[r].first_token = now;
        s.started = true;
        if (s.generated >= t.requests[r].output) done.push_back(r);
      }
    }
    for (size_t r : x.decode) {
      Req& s = rq[r];
      s.context += x.steps;
      s.generated += x.steps;
      if (s.generated >= t.requests[r].output) done.push_back(r);
    }
    x.steps = 1;
    for (size_t r : done) {
      Req& s = rq[r];
      s.state = State::Done;
      x.free_blocks += s.blocks;
      s.blocks = 0;
      x.running.erase(std::find(x.running.begin(), x.running.end(), r));
      res.requests[r].finish = now;
      res.tokens_generated += static_cast<double>(s.generated);
      --in_system;
    }
    x.busy = false;
  };

  double last = 0;
  while (!q.empty()) {
    const Event e = q.top();
    q.pop();
    if (!e.arrival && e.index == SIZE_MAX) {  // the controller's turn
      const std::vector<Operating> before = ops;
      c.control.act(e.time, res.power, ops);
      for (int k = 0; k < n_inst; ++k)
        if (!(ops[static_cast<size_t>(k)] == before[static_cast<size_t>(k)])) cut_short(k, e.time);
      if (arrivals_left > 0 || in_system > 0) q.push({e.time + c.control.period, seq++, false, SIZE_MAX});
      continue;
    }
    last = e.time;
    if (e.arrival) {
      --arrivals_left;
      const int cls = t.requests[e.index].priority;
      int k = -1;
      if (c.routing == Routing::RoundRobin) {
        for (int tries = 0; tries < n_inst && k < 0; ++tries) {
          if (class_of(next_rr) == cls) k = next_rr;
          next_rr = (next_rr + 1) % n_inst;
        }
      } else {
        size_t best = SIZE_MAX;
        for (int i = 0; i < n_inst; ++i) {
          if (class_of(i) != cls) continue;
          const size_t load = inst[static_cast<size_t>(i)].waiting.size() + inst[static_cast<size_t>(i)].running.size();
          if (load < best) best = load, k = i;
        }
      }
      rq[e.index].instance = k;
      res.requests[e.index].instance = k;
      inst[static_cast<size_t>(k)].waiting.push_back(e.index);
      ++in_system;
      res.in_system.emplace_back(e.time, in_system);
      if (!inst[static_cast<size_t>(k)].busy) start(k, e.time);
      else cut_short(k, e.time);
    } else {
      const int k = static_cast<int>(e.index);
      if (e.gen != inst[static_cast<size_t>(k)].gen) continue;  // a run that was cut short
      const int64_t before = in_system;
      finish_iteration(k, e.time);
      if (in_system != before) res.in_system.emplace_back(e.time, in_system);
      start(k, e.time);
    }
  }
  for (size_t i = 0; i < rq.size(); ++i)
    if (rq[i].state != State::Done) throw InternalError(fmt::format("request {} never finished", t.requests[i].id));
  res.makespan = t.requests.empty() ? 0 : last - t.requests.front().arrival;
  // Energy until the last finish: dynamic, the active baseline while busy, idle otherwise.
  const PowerTimeline& pt = res.power;
  double busy_all = 0, dyn = 0;
  for (size_t k = 0; k < pt.energy.size(); ++k)
    for (size_t b = 0; b < pt.energy[k].size(); ++b) dyn += pt.energy[k][b], busy_all += pt.busy[k][b];
  const double span = static_cast<double>(n_inst) * (last - pt.start);
  res.energy = static_cast<double>(c.devices()) / static_cast<double>(lanes) * (dyn + a.power.active * busy_all + a.power.idle * std::max(0.0, span - busy_all));
  return res;
}

}  // namespace einsim
