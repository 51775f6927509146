#include "sim/serve/serve.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <list>
#include <queue>
#include <unordered_map>

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
  const PowerSpec& p = spec(k);
  if (k >= energy.size() || b >= energy[k].size()) return p.idle;
  const double on = std::clamp(busy[k][b] / bin, 0.0, 1.0);
  return p.idle * (1 - on) + p.active * on + energy[k][b] / bin;
}

double PowerTimeline::device_clock(size_t k, size_t b) const {
  if (k >= energy.size() || b >= energy[k].size() || busy[k][b] <= 1e-12) return 0;
  return clock[k][b] / busy[k][b];
}

double Speculation::tokens_per_step() const {
  if (k <= 0) return 1;
  if (acceptance >= 1) return static_cast<double>(k + 1);
  return (1 - std::pow(acceptance, static_cast<double>(k + 1))) / (1 - acceptance);
}

namespace {

// Where a request stands: its line in the trace file, or the synthetic trace's name.
SourceLoc request_loc(const Trace& t, const Request& r) { return r.line > 0 && !t.file.empty() ? SourceLoc{t.file, r.line, 1} : SourceLoc{t.name}; }

enum class State { Waiting, Running, Sending, Done };
enum class Role { Mixed, Prefill, Decode };

struct Req {
  State state = State::Waiting;
  int instance = -1;
  int64_t prompt_left = 0;  ///< tokens still to prefill (the prompt, or everything so far after a recompute)
  int64_t context = 0;      ///< tokens in the KV cache
  int64_t generated = 0;
  int64_t blocks = 0;       ///< KV pages held privately
  int64_t shared = 0;       ///< leading hash blocks it holds in its instance's prefix cache
  bool swapped = false;     ///< KV on the offload tier (Swap): resumes without a prefill
  bool started = false;     ///< its first token is out
  double credit = 0;        ///< speculative decoding: the fraction of a token carried to the next step
  double ready = 0;         ///< disaggregated: when its prefill ended
  double prefill_began = 0; ///< disaggregated: when its last prefill chunk's iteration began
};

struct Instance {
  Role role = Role::Mixed;
  StepTimer* timer = nullptr;
  int64_t kv_blocks = 0;  ///< pages
  double kv_bytes = 0;    ///< per token per device (the target's cache and the drafter's)
  int64_t devices = 1;
  std::deque<size_t> waiting;
  std::vector<size_t> running;  ///< in admission order
  int64_t free_blocks = 0;
  bool busy = false;
  double swapped = 0;  ///< bytes per device of its preempted requests' pages on the swap tier
  // The prefix cache: block id -> requests holding it; those no request holds, least recently
  // used first (evictable).
  struct Entry {
    int64_t refs = 0;
    std::list<int64_t>::iterator at;
  };
  std::unordered_map<int64_t, Entry> cache;
  std::list<int64_t> evictable;
  // Blocks evicted to the offload tier, least recently used first.
  std::unordered_map<int64_t, std::list<int64_t>::iterator> tier;
  std::list<int64_t> tier_lru;
  // Disaggregation.
  int64_t incoming = 0;         ///< decode: transfers under way to it
  double link_free = 0;         ///< when its link is next free
  // The iteration in flight.
  std::vector<std::pair<size_t, int64_t>> prefill;  ///< request, tokens
  std::vector<size_t> decode;
  int64_t steps = 1;  ///< identical decode iterations the plan runs back to back
  double run_start = 0, step_dt = 0;  ///< the plan's start and (for a run) the time of one step
  int64_t gen = 0;    ///< plans started; a completion event of an older plan is stale
  double kv_used = 0;
  InstanceSample planned;  ///< recorded when the plan completes
};

enum class Kind { Arrival, Iteration, Control, Transfer };

struct Event {
  double time;
  int64_t seq;
  Kind kind;
  size_t index;     ///< request (arrival, transfer) or instance (iteration)
  int64_t gen = 0;  ///< iteration: the instance's plan it ends (a cut-short run leaves a stale one)
  bool operator>(const Event& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

}  // namespace

ServeResult simulate_serving(const Trace& t, const ServeConfig& c, StepTimer& timer, const ArchSpec& a, const ServePools& pools) {
  if (c.servers < 1 || c.instances_per_server < 1 || c.token_budget < 1 || c.max_batch < 1 || c.block < 1)
    throw UserError(SourceLoc{"serve"}, "servers, instances per server, token budget, batch limit and page size must be at least 1");
  if (c.pp != timer.stages()) throw InternalError(fmt::format("serving {} pipeline stages with a timer of {}", c.pp, timer.stages()));
  const bool disagg = c.disagg.on();
  if (disagg && (c.pp > 1 || !c.instance_class.empty() || c.disagg.decode < 1))
    throw InternalError("disaggregated serving takes no pipeline stages or serving classes, and at least one decode instance");
  if (c.spec.on() && !(c.spec.acceptance >= 0 && c.spec.acceptance <= 1))
    throw UserError(SourceLoc{"--spec-accept"}, fmt::format("the acceptance rate is a probability in [0, 1], not {}", c.spec.acceptance));
  if (disagg && !(c.disagg.bandwidth > 0) )
    throw UserError(SourceLoc{"--kv-link"}, "the link between the prefill and decode pools needs a positive bandwidth");
  if (disagg && !(c.disagg.latency >= 0) )
    throw UserError(SourceLoc{"--kv-link-latency"}, "the link latency must not be negative");
  // Lanes: an instance's batches in flight, one per pipeline stage (one without stages).
  const int lanes = static_cast<int>(std::max<int64_t>(1, c.pp));
  const int n_prefill = disagg ? static_cast<int>(c.disagg.prefill) : 0;
  const int n_inst = disagg ? static_cast<int>(c.disagg.prefill + c.disagg.decode) : static_cast<int>(c.servers * c.instances_per_server) * lanes;
  if (!c.instance_class.empty() && c.instance_class.size() * static_cast<size_t>(lanes) != static_cast<size_t>(n_inst))
    throw InternalError(fmt::format("{} instance classes for {} instances", c.instance_class.size(), n_inst / lanes));
  auto class_of = [&](int k) { return c.instance_class.empty() ? 0 : c.instance_class[static_cast<size_t>(k / lanes)]; };
  for (const Request& r : t.requests) {
    bool served = false;
    for (int k = 0; k < n_inst && !served; ++k) served = class_of(k) == r.priority;
    if (!served) throw UserError(request_loc(t, r), fmt::format("request {} is of class {}, which no instance serves", r.id, r.priority));
  }
  const int64_t H = t.hash_block;
  if (c.prefix_caching) {
    if (H > 0 && H % c.block != 0)
      throw UserError(SourceLoc{t.file.empty() ? t.name : t.file}, fmt::format("the trace hashes blocks of {} tokens, not a whole number of {}-token KV pages", H, c.block));
    for (int64_t n : {int64_t{1} << 10, int64_t{1} << 20})
      if (std::abs(timer.kv_tokens(n) - static_cast<double>(n)) > 1e-6)
        throw UserError(timer.model().loc, fmt::format("prefix caching keeps whole prompts' pages: '{}' caps some layers' caches (windows, chunks or state), which einsim does not share", timer.model().name));
  }
  const int64_t pph = H > 0 ? H / c.block : 0;  // pages per cache block
  const double E = c.spec.tokens_per_step();
  const int64_t grow = c.spec.on() ? c.spec.k + 1 : 1;  // tokens a decode step may append
  StepTimer& ptimer = pools.prefill ? *pools.prefill : timer;
  const ArchSpec& parch = pools.prefill_arch ? *pools.prefill_arch : a;

  ServeResult res;
  res.instances = n_inst;
  res.power.bin = c.power_bin > 0 ? c.power_bin : 1;
  res.power.start = t.requests.empty() ? 0 : std::min(0.0, t.requests.front().arrival);
  res.power.power = a.power;
  res.power.devices_per_instance = c.devices() / lanes;  // a lane's share of the instance's devices
  res.power.energy.resize(static_cast<size_t>(n_inst));
  res.power.busy.resize(static_cast<size_t>(n_inst));
  res.power.clock.resize(static_cast<size_t>(n_inst));
  std::vector<Operating> ops(static_cast<size_t>(n_inst), c.operating);
  // The instances: memory, pages, devices.
  std::vector<Instance> inst(static_cast<size_t>(n_inst));
  auto pages_of = [&](StepTimer& tm, int64_t groups, double& bytes) {
    bytes = tm.kv_bytes_per_token() + (pools.draft ? pools.draft->kv_bytes_per_token() : 0);
    const double room = tm.kv_capacity() - pools.draft_weights * static_cast<double>(groups);
    if (room <= 0)
      throw UserError(pools.draft ? pools.draft->model().loc : tm.model().loc,
                      fmt::format("the draft model's {:.2f} GiB of weights per device leave no room for the KV cache", pools.draft_weights / (1ull << 30)));
    return static_cast<int64_t>(std::floor(room / (bytes * static_cast<double>(c.block)))) / lanes;
  };
  for (int k = 0; k < n_inst; ++k) {
    Instance& x = inst[static_cast<size_t>(k)];
    x.role = !disagg ? Role::Mixed : k < n_prefill ? Role::Prefill : Role::Decode;
    x.timer = x.role == Role::Prefill ? &ptimer : &timer;
    x.kv_blocks = pages_of(*x.timer, x.timer->groups(), x.kv_bytes);
    x.free_blocks = x.kv_blocks;
    x.devices = x.role == Role::Prefill ? ptimer.devices() : c.devices() / lanes;
  }
  res.kv_blocks = inst.back().kv_blocks;
  res.prefill_kv_blocks = disagg ? inst.front().kv_blocks : 0;
  if (disagg) {
    for (const Instance& x : inst) {
      res.power.specs.push_back(x.role == Role::Prefill ? parch.power : a.power);
      res.power.devices.push_back(x.devices);
    }
  }
  double swap_bw = c.swap_bandwidth;
  if (swap_bw <= 0)
    for (const Link& l : a.links)
      if (l.to == "host") swap_bw = l.bandwidth;
  if ((c.preemption == Preemption::Swap || (c.offload_policy != OffloadPolicy::Preempted && c.prefix_caching)) && swap_bw <= 0)
    throw UserError(a.loc, fmt::format("'{}' has no link to the host to swap KV pages over; give a swap bandwidth or preempt by recompute", a.name));
  // KV pages a request holds after `tokens` tokens (windows and chunks cap some layers': a
  // page holds `block` tokens of every attention layer).
  auto pages = [&](int64_t tokens) { return static_cast<int64_t>(std::ceil(timer.kv_tokens(tokens) / static_cast<double>(c.block) - 1e-9)); };
  for (const Request& r : t.requests) {
    const int64_t need = pages(r.prompt + r.output + grow - 1);
    if (need > res.kv_blocks)
      throw UserError(request_loc(t, r), fmt::format("request {} ({} + {} tokens) needs {} KV pages; {} has {}", r.id, r.prompt, r.output, need,
                                                     disagg ? "a decode instance" : lanes > 1 ? "a lane of an instance" : "an instance", res.kv_blocks));
    if (disagg && pages(r.prompt + 1) > res.prefill_kv_blocks)
      throw UserError(request_loc(t, r), fmt::format("request {}'s prompt of {} tokens needs {} KV pages; a prefill instance has {}", r.id, r.prompt,
                                                     pages(r.prompt + 1), res.prefill_kv_blocks));
  }

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
  std::priority_queue<Event, std::vector<Event>, std::greater<>> q;
  int64_t seq = 0;
  for (size_t i = 0; i < t.requests.size(); ++i) q.push({t.requests[i].arrival, seq++, Kind::Arrival, i});
  size_t arrivals_left = t.requests.size();
  if (c.control.period > 0 && c.control.act && !t.requests.empty()) q.push({t.requests.front().arrival, seq++, Kind::Control, 0});
  int next_rr = 0;
  int64_t in_system = 0;
  std::deque<size_t> pending;  // disaggregated: prefilled requests waiting for a decode instance with room

  // Prefix cache and offload tier.
  const bool to_tier = c.prefix_caching && c.offload_policy != OffloadPolicy::Preempted;
  const double tier_cap = c.swap_capacity > 0 ? c.swap_capacity / lanes : 0;
  auto tier_bytes = [&](const Instance& x) { return static_cast<double>(x.tier_lru.size()) * static_cast<double>(H) * x.kv_bytes; };
  // Drops the offload tier's least recently used blocks until `bytes` more fit beside what is swapped.
  auto tier_room = [&](Instance& x, double bytes) {
    if (tier_cap <= 0) return true;
    while (!x.tier_lru.empty() && x.swapped + tier_bytes(x) + bytes > tier_cap) {
      x.tier.erase(x.tier_lru.front());
      x.tier_lru.pop_front();
    }
    return x.swapped + tier_bytes(x) + bytes <= tier_cap;
  };
  auto available = [&](const Instance& x) { return x.free_blocks + static_cast<int64_t>(x.evictable.size()) * pph; };
  // Makes `n` pages free, evicting cached blocks no request holds (least recently used first).
  auto take = [&](Instance& x, int64_t n) {
    while (x.free_blocks < n && !x.evictable.empty()) {
      const int64_t id = x.evictable.front();
      x.evictable.pop_front();
      x.cache.erase(id);
      x.free_blocks += pph;
      ++res.evicted_blocks;
      if (to_tier && !x.tier.count(id) && tier_room(x, static_cast<double>(H) * x.kv_bytes)) {
        x.tier_lru.push_back(id);
        x.tier[id] = std::prev(x.tier_lru.end());
        ++res.offloaded_blocks;
      }
    }
    if (x.free_blocks < n) throw InternalError(fmt::format("taking {} KV pages of {} free", n, x.free_blocks));
    x.free_blocks -= n;
  };
  auto hold = [&](Instance& x, int64_t id) {
    Instance::Entry& e = x.cache.at(id);
    if (e.refs++ == 0) x.evictable.erase(e.at);
  };
  auto unhold = [&](Instance& x, int64_t id) {
    Instance::Entry& e = x.cache.at(id);
    if (--e.refs == 0) {
      x.evictable.push_back(id);
      e.at = std::prev(x.evictable.end());
    }
  };
  // Gives back every page a request holds: its own, and its hold on cached blocks.
  auto release = [&](Instance& x, size_t r) {
    Req& s = rq[r];
    x.free_blocks += s.blocks;
    s.blocks = 0;
    for (int64_t j = 0; j < s.shared; ++j) unhold(x, t.requests[r].hashes[static_cast<size_t>(j)]);
    s.shared = 0;
  };
  // Pages a request has for its cache: its own and the cached blocks it holds.
  auto held = [&](const Req& s) { return s.blocks + s.shared * pph; };
  // Tokens a decoding request has produced after m more steps (speculation's mean, carried).
  auto produced = [&](size_t r, int64_t m) {
    const int64_t rem = t.requests[r].output - rq[r].generated;
    return std::min(rem, static_cast<int64_t>(std::floor(rq[r].credit + static_cast<double>(m) * E + 1e-9)));
  };

  // Frees a running request's pages and sends it back to the front of the queue.
  auto preempt = [&](Instance& x, size_t victim, double& extra) {
    Req& v = rq[victim];
    x.running.erase(std::find(x.running.begin(), x.running.end(), victim));
    release(x, victim);
    const double bytes = static_cast<double>(v.context) * x.kv_bytes;
    bool swap = c.preemption == Preemption::Swap;
    if (swap && tier_cap > 0) {  // preempted requests come before evicted blocks on the tier
      swap = tier_room(x, bytes);
    }
    if (swap) {
      v.swapped = true;
      x.swapped += bytes;
      res.swap_peak = std::max(res.swap_peak, x.swapped);
      ++res.swaps;
      extra += bytes / swap_bw;  // swap out
    } else {
      v.prompt_left = t.requests[victim].prompt + v.generated;  // recompute everything so far
      v.context = 0;
      v.credit = 0;
    }
    v.state = State::Waiting;
    x.waiting.push_front(victim);
    ++res.requests[victim].preemptions;
    ++res.preemptions;
  };

  // Plans and starts instance k's next iteration at `now`, if it has work.
  auto start = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    StepTimer& tm = *x.timer;
    x.prefill.clear();
    x.decode.clear();
    double extra = 0;  // swap and offload traffic
    int64_t budget = c.token_budget;
    int64_t admitted = 0;  // requests seen for the first time (the runtime's per-request cost)
    auto admit = [&](bool whole_prompts) {
      while (!x.waiting.empty() && static_cast<int64_t>(x.running.size()) < c.max_batch && budget > 0) {
        const size_t r = x.waiting.front();
        Req& s = rq[r];
        const Request& req = t.requests[r];
        // The longest cached prefix: blocks in device memory, then on the offload tier.
        int64_t hits = 0, loads = 0;
        if (c.prefix_caching && !s.swapped && pph > 0) {
          const int64_t most = std::min<int64_t>(static_cast<int64_t>(req.hashes.size()), std::min(req.prompt, s.prompt_left - 1) / H);
          while (hits < most && x.cache.count(req.hashes[static_cast<size_t>(hits)])) ++hits;
          if (to_tier)
            while (hits + loads < most && x.tier.count(req.hashes[static_cast<size_t>(hits + loads)])) ++loads;
        }
        const int64_t cached = (hits + loads) * H;
        const int64_t need = s.swapped ? pages(s.context + 1) : pages(s.prompt_left + 1) - hits * pph;
        for (int64_t j = 0; j < hits; ++j) hold(x, req.hashes[static_cast<size_t>(j)]);
        auto unpin = [&] {
          for (int64_t j = 0; j < hits; ++j) unhold(x, req.hashes[static_cast<size_t>(j)]);
        };
        if (need > available(x)) {
          unpin();
          break;
        }
        int64_t tokens = s.swapped ? 0 : s.prompt_left - cached;
        if (whole_prompts && tokens > budget && !x.prefill.empty()) {  // a prompt over the budget runs alone
          unpin();
          break;
        }
        if (!whole_prompts) tokens = std::min(tokens, budget);
        x.waiting.pop_front();
        take(x, need);
        // Blocks loaded back from the offload tier join the cache, held by this request.
        for (int64_t j = hits; j < hits + loads; ++j) {
          const int64_t id = req.hashes[static_cast<size_t>(j)];
          x.tier_lru.splice(x.tier_lru.end(), x.tier_lru, x.tier.at(id));  // recently used
          x.cache[id] = Instance::Entry{1, {}};
        }
        s.blocks = need - loads * pph;
        s.shared = hits + loads;
        extra += static_cast<double>(loads * H) * x.kv_bytes / swap_bw;
        s.state = State::Running;
        if (res.requests[r].admitted < 0) {
          res.requests[r].admitted = now, ++admitted;
          res.requests[r].cached = cached;
          res.prompt_tokens += static_cast<double>(req.prompt);
          res.cached_tokens += static_cast<double>(cached);
          res.offload_hit_tokens += static_cast<double>(loads * H);
        }
        x.running.push_back(r);
        if (s.swapped) {
          s.swapped = false;
          x.swapped -= static_cast<double>(s.context) * x.kv_bytes;
          extra += static_cast<double>(s.context) * x.kv_bytes / swap_bw;  // swap in
          continue;
        }
        s.prompt_left -= cached;
        s.context += cached;
        x.prefill.push_back({r, tokens});
        budget -= tokens;
      }
    };
    // Decoding requests each need room for the tokens a step appends; make it by preempting the latest.
    auto make_room = [&]() {
      for (size_t i = 0; i < x.running.size();) {
        const size_t r = x.running[i];
        Req& s = rq[r];
        if (s.prompt_left > 0 || !s.started) {
          ++i;
          continue;
        }
        const int64_t more = pages(s.context + grow) - held(s);
        if (more > 0) {
          while (available(x) < more && x.running.back() != r) preempt(x, x.running.back(), extra);
          if (available(x) < more) {  // it is the latest itself
            preempt(x, r, extra);
            continue;
          }
          take(x, more);
          s.blocks += more;
        }
        ++i;
      }
    };
    auto decoding = [&]() {
      for (size_t r : x.running)
        if (rq[r].started && rq[r].prompt_left == 0) x.decode.push_back(r);
    };
    if (c.batching == Batching::PrefillFirst) {
      admit(true);
      if (x.prefill.empty()) {
        make_room();
        decoding();
      }
    } else {
      make_room();
      decoding();
      budget -= static_cast<int64_t>(x.decode.size()) * grow;
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
      rq[r].prefill_began = now;
    }
    it.admitted = admitted;
    it.decode = static_cast<int64_t>(x.decode.size());
    double ctx = 0;
    for (size_t r : x.decode) ctx += static_cast<double>(rq[r].context);
    it.context = it.decode ? static_cast<int64_t>(std::llround(ctx / static_cast<double>(it.decode))) : 0;
    const Operating& op = ops[static_cast<size_t>(k)];
    // The target's step (verifying drafts), and the drafter's: its own pass over the step's
    // prompt chunks and decodes, then k - 1 more decode steps.
    auto step = [&](const Iteration& i) {
      Iteration v = i;
      if (c.spec.on()) v.verify = c.spec.k + 1;
      PoweredWork w = tm.cost(v, op);
      if (c.spec.on() && pools.draft) {
        const PoweredWork d = pools.draft->cost(i, op);
        w.time += d.time, w.energy += d.energy;
        if (i.decode > 0 && c.spec.k > 1) {
          Iteration dec;
          dec.decode = i.decode;
          dec.context = i.context;
          const PoweredWork dd = pools.draft->cost(dec, op);
          w.time += static_cast<double>(c.spec.k - 1) * dd.time, w.energy += static_cast<double>(c.spec.k - 1) * dd.energy;
        }
      }
      return w;
    };
    PoweredWork pw = step(it);
    double dt = pw.time + extra;
    double energy = pw.energy;
    // A run of identical decode iterations: nothing waits and every request has the tokens and
    // pages to go on. They run as one event; their times follow the context as it grows (the
    // step time is linear in the context between grid points, so the middle context gives the
    // sum). An arrival routed here cuts the run short at the next iteration boundary.
    x.steps = 1;
    if (x.prefill.empty() && extra == 0 && x.waiting.empty() && !x.decode.empty()) {
      int64_t n = 4096;
      for (size_t r : x.decode) {  // steps until the first request finishes
        const double rem = static_cast<double>(t.requests[r].output - rq[r].generated) - rq[r].credit;
        n = std::min<int64_t>(n, std::max<int64_t>(1, static_cast<int64_t>(std::ceil(rem / E - 1e-9))));
      }
      auto new_pages = [&](int64_t m) {  // pages the last of m steps needs beyond those held
        int64_t need = 0;
        for (size_t r : x.decode) need += std::max<int64_t>(0, pages(rq[r].context + produced(r, m - 1) + grow) - held(rq[r]));
        return need;
      };
      while (n > 1 && new_pages(n) > available(x)) n /= 2;
      if (n > 1) {
        Iteration mid = it;
        mid.context += static_cast<int64_t>(static_cast<double>(n - 1) / 2 * E + 1e-9);
        pw = step(mid);
        x.steps = n;
        dt = static_cast<double>(n) * pw.time;
        energy = static_cast<double>(n) * pw.energy;
        // Pages for the tokens the run appends, handed out now.
        for (size_t r : x.decode) {
          const int64_t more = std::max<int64_t>(0, pages(rq[r].context + produced(r, n - 1) + grow) - held(rq[r]));
          take(x, more);
          rq[r].blocks += more;
        }
      }
    }
    x.busy = true;
    x.run_start = now;
    x.step_dt = dt / static_cast<double>(x.steps);
    x.kv_used = 1 - static_cast<double>(available(x)) / static_cast<double>(x.kv_blocks);
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
    const PowerSpec& ps = res.power.spec(static_cast<size_t>(k));
    smp.power = dt > 0 ? ps.active + energy / dt : ps.idle;
    res.power.add(static_cast<size_t>(k), now, now + dt, energy, pw.clock);
    q.push({now + dt, seq++, Kind::Iteration, static_cast<size_t>(k), ++x.gen});
  };

  // An arrival at `now` for instance k, busy with a run: the run ends at the iteration boundary
  // after `now`, and the pages its later tokens held go back.
  auto cut_short = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    if (!x.busy || x.steps <= 1) return;
    const int64_t done = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((now - x.run_start) / x.step_dt - 1e-9)), 1, x.steps);
    if (done >= x.steps) return;
    for (size_t r : x.decode) {
      const int64_t keep = std::max(pages(rq[r].context + produced(r, done - 1) + grow), rq[r].shared * pph);
      x.free_blocks += held(rq[r]) - keep;
      rq[r].blocks = keep - rq[r].shared * pph;
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
    q.push({end, seq++, Kind::Iteration, static_cast<size_t>(k), ++x.gen});
  };

  auto finish_request = [&](Instance& x, size_t r, double now) {
    Req& s = rq[r];
    s.state = State::Done;
    release(x, r);
    res.requests[r].finish = now;
    res.tokens_generated += static_cast<double>(s.generated);
    --in_system;
  };

  // Disaggregation: starts the transfers of prefilled requests to decode instances with room
  // (first fit in arrival order at the prefill pool's end).
  auto try_send = [&](double now) {
    for (auto p = pending.begin(); p != pending.end();) {
      const size_t r = *p;
      Req& s = rq[r];
      const int64_t need = pages(s.context + grow);
      int dest = -1;
      size_t best = SIZE_MAX;
      for (int k = n_prefill; k < n_inst; ++k) {
        const Instance& d = inst[static_cast<size_t>(k)];
        const size_t load = d.waiting.size() + d.running.size() + static_cast<size_t>(d.incoming);
        if (available(d) >= need && load < best) best = load, dest = k;
      }
      if (dest < 0) {
        ++p;
        continue;
      }
      Instance& src = inst[static_cast<size_t>(s.instance)];
      Instance& dst = inst[static_cast<size_t>(dest)];
      take(dst, need);
      ++dst.incoming;
      const double bytes = static_cast<double>(s.context) * src.kv_bytes * static_cast<double>(src.timer->tp());
      const double bw = c.disagg.bandwidth * static_cast<double>(std::min(src.timer->tp(), dst.timer->tp()));
      const double xfer = std::isinf(bw) ? 0 : bytes / bw;
      double begin = std::max({now, src.link_free, dst.link_free});
      double end = begin + xfer;
      if (c.disagg.layerwise && now <= s.ready) {
        // Streamed layer by layer from the prefill's start: what the link could not keep up
        // with, or at least the last layer's share, follows the prefill.
        begin = std::max({s.prefill_began, src.link_free, dst.link_free});
        end = std::max(now + xfer / static_cast<double>(std::max<int64_t>(1, src.timer->model().num_hidden_layers)), begin + xfer);
      }
      src.link_free = dst.link_free = end;
      end += c.disagg.latency;
      ++res.transfers;
      res.transfer_bytes += bytes;
      res.transfer_time += end - begin;
      res.transfer_wait += std::max(0.0, begin - s.ready);
      res.requests[r].transfer_start = begin;
      res.requests[r].transfer_end = end;
      res.requests[r].instance = dest;
      s.instance = dest;  // where it goes; the sender is kept in the outcome
      res.requests[r].prefill_instance = static_cast<int>(&src - inst.data());
      q.push({end, seq++, Kind::Transfer, r});
      p = pending.erase(p);
    }
  };

  auto finish_iteration = [&](int k, double now) {
    Instance& x = inst[static_cast<size_t>(k)];
    res.iterations += x.steps;
    res.busy_time += x.planned.duration;
    res.kv_area += x.planned.duration * x.kv_used;
    res.kv_peak = std::max(res.kv_peak, x.kv_used);
    if (c.record_samples) res.samples.push_back(x.planned);
    std::vector<size_t> done, sent;
    for (const auto& [r, n] : x.prefill) {
      Req& s = rq[r];
      s.prompt_left -= n;
      s.context += n;
      if (s.prompt_left == 0) {  // the prefill emits a token
        ++s.generated;
        if (!s.started) res.requests[r].first_token = now;
        s.started = true;
        // Its prompt's whole blocks join the prefix cache (up to the first one already there).
        if (c.prefix_caching && pph > 0) {
          const Request& req = t.requests[r];
          const int64_t full = std::min<int64_t>(static_cast<int64_t>(req.hashes.size()), req.prompt / H);
          for (int64_t j = s.shared; j < full && s.blocks >= pph && !x.cache.count(req.hashes[static_cast<size_t>(j)]); ++j) {
            x.cache[req.hashes[static_cast<size_t>(j)]] = Instance::Entry{1, {}};
            s.blocks -= pph;
            s.shared = j + 1;
          }
        }
        if (s.generated >= t.requests[r].output) done.push_back(r);
        else if (x.role == Role::Prefill) sent.push_back(r);
      }
    }
    if (!x.decode.empty()) res.verify_steps += x.steps * static_cast<int64_t>(x.decode.size());
    for (size_t r : x.decode) {
      Req& s = rq[r];
      const int64_t got = produced(r, x.steps);
      const double v = s.credit + static_cast<double>(x.steps) * E;
      s.credit = std::max(0.0, v - std::floor(v + 1e-9));
      s.context += got;
      s.generated += got;
      res.verified_tokens += static_cast<double>(got);
      if (s.generated >= t.requests[r].output) done.push_back(r);
    }
    x.steps = 1;
    for (size_t r : done) {
      x.running.erase(std::find(x.running.begin(), x.running.end(), r));
      finish_request(x, r, now);
    }
    for (size_t r : sent) {
      x.running.erase(std::find(x.running.begin(), x.running.end(), r));
      rq[r].state = State::Sending;
      rq[r].ready = now;
      pending.push_back(r);
    }
    x.busy = false;
    if (disagg && (!sent.empty() || (x.role == Role::Decode && !done.empty()))) try_send(now);
  };

  double last = 0;
  while (!q.empty()) {
    const Event e = q.top();
    q.pop();
    if (e.kind == Kind::Control) {  // the controller's turn
      const std::vector<Operating> before = ops;
      c.control.act(e.time, res.power, ops);
      for (int k = 0; k < n_inst; ++k)
        if (!(ops[static_cast<size_t>(k)] == before[static_cast<size_t>(k)])) cut_short(k, e.time);
      if (arrivals_left > 0 || in_system > 0) q.push({e.time + c.control.period, seq++, Kind::Control, 0});
      continue;
    }
    last = e.time;
    if (e.kind == Kind::Arrival) {
      --arrivals_left;
      const Request& req = t.requests[e.index];
      const int cls = req.priority;
      const int first = 0, end = disagg ? n_prefill : n_inst;  // arrivals go to the prefill pool
      int k = -1;
      if (c.routing == Routing::RoundRobin) {
        for (int tries = 0; tries < end && k < 0; ++tries) {
          if (next_rr >= end) next_rr = first;
          if (class_of(next_rr) == cls) k = next_rr;
          next_rr = next_rr + 1 >= end ? first : next_rr + 1;
        }
      } else {
        double best = std::numeric_limits<double>::infinity();
        size_t best_load = SIZE_MAX;
        for (int i = first; i < end; ++i) {
          if (class_of(i) != cls) continue;
          const Instance& x = inst[static_cast<size_t>(i)];
          const size_t load = x.waiting.size() + x.running.size();
          double cost = static_cast<double>(load);
          if (c.routing == Routing::CacheAware) {
            // Prompt tokens to compute there: its queue's and this request's uncached ones.
            int64_t hit = 0;
            if (c.prefix_caching && pph > 0) {
              const int64_t most = std::min<int64_t>(static_cast<int64_t>(req.hashes.size()), (req.prompt - 1) / H);
              while (hit < most && (x.cache.count(req.hashes[static_cast<size_t>(hit)]) || (to_tier && x.tier.count(req.hashes[static_cast<size_t>(hit)])))) ++hit;
            }
            cost = static_cast<double>(req.prompt - hit * H);
            for (size_t w : x.waiting) cost += static_cast<double>(rq[w].prompt_left);
          }
          if (cost < best || (cost == best && load < best_load)) best = cost, best_load = load, k = i;
        }
      }
      rq[e.index].instance = k;
      res.requests[e.index].instance = k;
      res.requests[e.index].prefill_instance = k;
      inst[static_cast<size_t>(k)].waiting.push_back(e.index);
      ++in_system;
      res.in_system.emplace_back(e.time, in_system);
      if (!inst[static_cast<size_t>(k)].busy) start(k, e.time);
      else cut_short(k, e.time);
    } else if (e.kind == Kind::Transfer) {
      const size_t r = e.index;
      Req& s = rq[r];
      const int from = res.requests[r].prefill_instance, to = s.instance;
      Instance& src = inst[static_cast<size_t>(from)];
      release(src, r);  // the pages it held while its KV waited and crossed
      Instance& dst = inst[static_cast<size_t>(to)];
      --dst.incoming;
      s.blocks = pages(s.context + grow);  // reserved when the transfer started
      s.state = State::Running;
      dst.running.push_back(r);
      if (!src.busy) start(from, e.time);
      if (!dst.busy) start(to, e.time);
      else cut_short(to, e.time);
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
  res.energy = 0;
  for (size_t k = 0; k < pt.energy.size(); ++k) {
    double busy = 0, dyn = 0;
    for (size_t b = 0; b < pt.energy[k].size(); ++b) dyn += pt.energy[k][b], busy += pt.busy[k][b];
    const PowerSpec& ps = pt.spec(k);
    res.energy += static_cast<double>(pt.devices_of(k)) * (dyn + ps.active * busy + ps.idle * std::max(0.0, last - pt.start - busy));
  }
  return res;
}

}  // namespace einsim
