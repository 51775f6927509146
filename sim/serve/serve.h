#pragma once
// Request-level serving simulation: continuous batching on model instances (a tensor-parallel
// group of devices each), several instances per server, servers behind a router; step times
// from einsim's cost model (StepTimer). Discrete events in time order, deterministic.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sim/serve/step_time.h"
#include "sim/serve/trace.h"

namespace einsim {

enum class Batching { PrefillFirst, Chunked };
enum class Preemption { Recompute, Swap };
/// RoundRobin and LeastLoaded (fewest requests waiting and running) as before; CacheAware
/// (with prefix caching): the instance with the fewest prompt tokens to compute, its queue's
/// and this request's uncached ones (a KV-aware router's cost, as Mooncake's conductor and
/// Dynamo's KV router weigh cache hits against load), ties to the least loaded.
enum class Routing { RoundRobin, LeastLoaded, CacheAware };
/// What goes to the offload tier (ServeConfig::swap_tier): preempted requests' pages, prefix
/// cache blocks evicted from device memory (kept there LRU and loaded back on a hit instead of
/// recomputed, as LMCache does), or both.
enum class OffloadPolicy { Preempted, Evicted, Both };

/// Speculative decoding (a cost model, not a quality one): each decode step drafts k tokens
/// (k steps of the draft model, or of the MTP/EAGLE head) and the target verifies them at once
/// as a (k + 1)-token chunk over the request's context; each drafted token is accepted with
/// probability `acceptance`, independently, until the first rejection (Leviathan et al., ICML
/// 2023), so a step yields (1 - a^(k+1)) / (1 - a) tokens on average, the rejected position
/// replaced by the target's own token. The simulation advances every request by this mean
/// (fractions carried over), not by a random draw.
struct Speculation {
  int64_t k = 0;           ///< tokens drafted per step (0: no speculation)
  double acceptance = 0;   ///< per drafted token, in [0, 1]
  bool on() const { return k > 0; }
  double tokens_per_step() const;
};

/// Disaggregated serving (Splitwise, DistServe, Mooncake): prefill instances compute prompts
/// and emit the first token, then send the request's KV cache to a decode instance, which
/// reserves its pages when the transfer starts; the sender keeps its pages until the transfer
/// ends. A transfer waits for a decode instance with room and for both ends' links (one
/// transfer at a time per instance). Decode instances run the decodes (and recompute their
/// own preempted requests).
struct Disaggregation {
  int64_t prefill = 0, decode = 0;  ///< instances per pool (0: co-located serving)
  /// B/s per device pair: each device sends its shard, so an instance pair moves
  /// min(prefill devices, decode devices) x this; infinity: free.
  double bandwidth = 0;
  double latency = 0;  ///< s per transfer
  /// Layer-wise streaming: each layer's KV is sent as soon as it is computed, so the transfer
  /// overlaps the request's prefill and only the last layer's share (or what the link could
  /// not keep up with) follows it.
  bool layerwise = false;
  bool on() const { return prefill > 0; }
};

/// Power of every instance's devices over time, in bins: each iteration's dynamic energy is
/// spread evenly over its duration; a device draws its active baseline while busy and its idle
/// power otherwise. The devices of one instance (a tensor-parallel group) draw the same.
struct PowerTimeline {
  double bin = 1;                 ///< s
  double start = 0;               ///< s: the first bin's start
  PowerSpec power;
  int64_t devices_per_instance = 1;
  /// Per instance, when instances differ (disaggregated pools); empty: `power` and
  /// `devices_per_instance` for all.
  std::vector<PowerSpec> specs;
  std::vector<int64_t> devices;
  const PowerSpec& spec(size_t k) const { return k < specs.size() ? specs[k] : power; }
  int64_t devices_of(size_t k) const { return k < devices.size() ? devices[k] : devices_per_instance; }
  std::vector<std::vector<double>> energy;  ///< per instance, per bin: J dynamic per device
  std::vector<std::vector<double>> busy;    ///< per instance, per bin: s
  std::vector<std::vector<double>> clock;   ///< per instance, per bin: Hz x busy s
  /// Adds `e` J and busy time over [t0, t1) to instance k (negative `sign` takes them back).
  void add(size_t k, double t0, double t1, double e, double clock_hz, double sign = 1);
  size_t bins() const;
  /// W per device of instance k over bin b.
  double device_power(size_t k, size_t b) const;
  /// Hz, the busy-time-weighted clock of instance k over bin b (0: idle or nominal).
  double device_clock(size_t k, size_t b) const;
};

struct ServeConfig;
/// A power controller: called every `period` s of simulated time with the timeline so far;
/// it may change each instance's operating point (running iterations finish at the old one).
struct PowerControl {
  double period = 0;  ///< s (0: no controller)
  std::function<void(double now, const PowerTimeline& timeline, std::vector<Operating>& ops)> act;
};

struct ServeConfig {
  int64_t tp = 1;                   ///< tensor-parallel devices per model instance
  int64_t ep = 1;                   ///< expert-parallel devices per instance (a multiple of tp; 1: none)
  /// Pipeline stages per instance, each of max(tp, ep) devices. The instance keeps pp batches
  /// in flight (an engine's virtual engines): `pp` lanes, each scheduling its own requests on
  /// 1/pp of the instance's KV pages, each iteration passing through every stage (StepTimer
  /// with pp). Lanes of equal load keep every stage busy; unequal ones are not made to wait on a
  /// stage (the model's approximation).
  int64_t pp = 1;
  int64_t devices() const { return (ep > 1 ? ep : tp) * pp; }  ///< devices per model instance
  int64_t instances_per_server = 1;
  int64_t servers = 1;
  Batching batching = Batching::PrefillFirst;
  int64_t token_budget = 8192;      ///< tokens per iteration (prompt tokens + one per decoding request)
  int64_t max_batch = 256;          ///< requests running at once per instance
  int64_t block = 16;               ///< KV cache page, tokens
  Preemption preemption = Preemption::Recompute;
  Routing routing = Routing::LeastLoaded;
  double swap_bandwidth = 0;        ///< B/s per device to host memory (Swap); 0: the arch's host link
  /// KV offload (`serve --kv-offload TIER`): the tier preempted requests' pages swap to, and the
  /// bytes per device it holds for them (a swap that would overflow it recomputes instead).
  /// Empty / 0: host memory, unbounded.
  std::string swap_tier;
  double swap_capacity = 0;
  /// What goes to swap_tier: preempted requests (Swap preemption), evicted prefix-cache blocks,
  /// or both.
  OffloadPolicy offload_policy = OffloadPolicy::Preempted;
  /// Prefix caching (vLLM's automatic prefix caching, SGLang's radix cache): each instance keeps
  /// the KV pages of prompts' hashed blocks (Request::hashes) after their prefill, shared by the
  /// requests that begin with them and evicted least recently used when pages run out; a
  /// request prefills only what follows its longest cached prefix (at least its last token).
  bool prefix_caching = false;
  Speculation spec;
  Disaggregation disagg;
  double ttft_slo = 2.0, tpot_slo = 0.2;  ///< s, for goodput
  bool record_samples = false;      ///< keep an InstanceSample per iteration (a timeline)
  Operating operating;              ///< every instance's frequency lock and power cap
  double power_bin = 1;             ///< s per power-timeline bin
  /// Serving classes: requests of class c (Request::priority) go to the instances of class c.
  /// Empty: one class.
  std::vector<int> instance_class;
  PowerControl control;
};

struct RequestOutcome {
  int64_t id = 0;
  int instance = -1;         ///< where it decoded (disaggregated: a decode instance)
  int prefill_instance = -1; ///< disaggregated: where it prefilled (else = instance)
  double arrival = 0, admitted = -1, first_token = 0, finish = 0;  ///< admitted: first admission (-1: never)
  double transfer_start = -1, transfer_end = -1;  ///< disaggregated: its KV cache's transfer (-1: none)
  int64_t prompt = 0, output = 0;
  int64_t cached = 0;        ///< prompt tokens its first prefill found in the prefix cache
  int64_t preemptions = 0;
  double ttft() const { return first_token - arrival; }
  double tpot() const { return output > 1 ? (finish - first_token) / static_cast<double>(output - 1) : 0; }
  double e2e() const { return finish - arrival; }
};

/// A sample of one instance after an iteration (or a run of identical decode iterations).
struct InstanceSample {
  int instance = 0;
  double time = 0;           ///< s: when the iteration ended
  double duration = 0;       ///< s
  int64_t running = 0, waiting = 0;
  int64_t prefill_tokens = 0, decode = 0;
  int64_t iterations = 1;    ///< identical decode iterations this sample stands for
  double kv_used = 0;        ///< fraction of the KV pages held by requests (cached pages no request holds count as free)
  double power = 0;          ///< W per device over the sample
  double energy = 0;         ///< J dynamic per device
  double clock = 0;          ///< Hz, time-weighted (0: nominal)
};

struct ServeResult {
  std::vector<RequestOutcome> requests;  ///< by id
  std::vector<InstanceSample> samples;   ///< with ServeConfig::record_samples: every iteration of every instance
  double busy_time = 0;      ///< s, summed over instances
  double kv_area = 0;        ///< sum over iterations of duration x KV pages used (fraction)
  double kv_peak = 0;        ///< most KV pages in use on one instance (fraction)
  /// (time, requests arrived and not finished), at every event: for Little's law.
  std::vector<std::pair<double, int64_t>> in_system;
  int64_t iterations = 0, preemptions = 0;
  int64_t swaps = 0;         ///< preemptions that swapped out (the rest recomputed)
  double swap_peak = 0;      ///< most bytes per device swapped out of one instance at once
  int64_t kv_blocks = 0;     ///< pages per instance (with pp > 1: per lane; disaggregated: per decode instance)
  int64_t prefill_kv_blocks = 0;  ///< disaggregated: pages per prefill instance
  // Prefix caching: prompt tokens at first admission, and those found cached (in device
  // memory, or on the offload tier and loaded back).
  double prompt_tokens = 0, cached_tokens = 0, offload_hit_tokens = 0;
  int64_t evicted_blocks = 0, offloaded_blocks = 0;  ///< cache blocks evicted from device memory; of them, written to the offload tier
  // Speculative decoding: verify steps run and tokens they yielded.
  int64_t verify_steps = 0;
  double verified_tokens = 0;
  // Disaggregation: KV transfers, their bytes (whole instance) and time on the link.
  int64_t transfers = 0;
  double transfer_bytes = 0, transfer_time = 0, transfer_wait = 0;  ///< wait: from the first token to the transfer's start, summed
  int instances = 0;         ///< model instances (lanes) simulated; disaggregated: prefill ones first
  double makespan = 0;       ///< s from the first arrival to the last finish
  double tokens_generated = 0;
  PowerTimeline power;
  double energy = 0;         ///< J over all devices: dynamic, active while busy, idle otherwise, until the last finish
};

/// What else a serving run uses beside the main timer: the prefill pool of a disaggregated run
/// (its own model instance, arch and parallelism) and speculative decoding's drafter.
struct ServePools {
  StepTimer* prefill = nullptr;          ///< disaggregated: the prefill instances' steps (nullptr: the main timer's)
  const ArchSpec* prefill_arch = nullptr;  ///< its arch (power, links; nullptr: the main arch)
  /// The draft model (or MTP/EAGLE head), on every instance beside the target: its steps add
  /// to each iteration, its weights and KV cache take device memory.
  StepTimer* draft = nullptr;
  /// Bytes per device the drafter's weights take (StepTimer::weight_bytes(), less anything
  /// it shares with the target).
  double draft_weights = 0;
};

ServeResult simulate_serving(const Trace& t, const ServeConfig& c, StepTimer& timer, const ArchSpec& a, const ServePools& pools = {});

/// Percentile (0-100) of `v` (nearest rank on a sorted copy); 0 when empty.
double percentile(std::vector<double> v, double p);

}  // namespace einsim
