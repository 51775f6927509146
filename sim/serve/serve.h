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
enum class Routing { RoundRobin, LeastLoaded };

/// Power of every instance's devices over time, in bins: each iteration's dynamic energy is
/// spread evenly over its duration; a device draws its active baseline while busy and its idle
/// power otherwise. The devices of one instance (a tensor-parallel group) draw the same.
struct PowerTimeline {
  double bin = 1;                 ///< s
  double start = 0;               ///< s: the first bin's start
  PowerSpec power;
  int64_t devices_per_instance = 1;
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
  int instance = -1;
  double arrival = 0, admitted = -1, first_token = 0, finish = 0;  ///< admitted: first admission (-1: never)
  int64_t prompt = 0, output = 0;
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
  double kv_used = 0;        ///< fraction of the KV pages in use
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
  int64_t kv_blocks = 0;     ///< pages per instance (with pp > 1: per lane)
  double makespan = 0;       ///< s from the first arrival to the last finish
  double tokens_generated = 0;
  PowerTimeline power;
  double energy = 0;         ///< J over all devices: dynamic, active while busy, idle otherwise, until the last finish
};

ServeResult simulate_serving(const Trace& t, const ServeConfig& c, StepTimer& timer, const ArchSpec& a);

/// Percentile (0-100) of `v` (nearest rank on a sorted copy); 0 when empty.
double percentile(std::vector<double> v, double p);

}  // namespace einsim
