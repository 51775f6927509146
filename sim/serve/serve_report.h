#pragma once
// What `einsim serve` prints: latency percentiles, throughput, goodput under SLOs, queueing,
// KV use; the per-iteration timeline as CSV; and capacity planning (the fewest servers that
// meet the SLOs).
#include <limits>
#include <string>

#include "sim/report/format.h"
#include "sim/serve/deploy.h"
#include "sim/serve/serve.h"

namespace einsim {

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};

struct ServeSummary {
  std::string model, arch, trace;
  ServeConfig config;
  int64_t requests = 0, iterations = 0, preemptions = 0, step_runs = 0, kv_blocks = 0, swaps = 0;
  double swap_peak = 0;  ///< bytes per device
  double makespan = 0, tokens_per_s = 0, requests_per_s = 0;
  double slo_attainment = 0;  ///< fraction of requests meeting both SLOs
  double goodput = 0;         ///< requests/s meeting both SLOs
  Percentiles ttft, tpot, e2e, queueing;
  double kv_mean = 0, kv_peak = 0;  ///< fraction of KV pages in use, time-weighted over busy instances / peak
  double gpu_power_mean = 0;   ///< W per device, averaged over devices and the run
  double gpu_power_peak = 0;   ///< W, the highest one device draws over one power bin
  double server_power_peak = 0;  ///< W, the highest one server's devices draw over one bin
  double energy = 0;           ///< J, all devices
  double energy_per_token = 0; ///< J per generated token
  double power_bin = 0;        ///< s
  // Disaggregated pools, speculation, devices and costs (the rig's summarize() fills them).
  std::string prefill_arch, draft;
  int64_t prefill_tp = 0, prefill_kv_blocks = 0;
  // Prefix caching: shares of prompt tokens found cached (in device memory or on the offload
  // tier) at first admission.
  double prefix_hit_rate = 0, offload_hit_rate = 0;
  int64_t evicted_blocks = 0, offloaded_blocks = 0;
  double tokens_per_verify = 0;  ///< speculative decoding: tokens a verify step yields, measured
  int64_t transfers = 0;
  double transfer_bytes = 0, transfer_time_mean = 0, transfer_wait_mean = 0;  ///< whole transfers; s per transfer
  int64_t devices = 0;           ///< every instance's
  double cost_rate = 0;          ///< $/s for them (NaN: unknown)
  double cost_per_mtok = 0;      ///< $ per million generated tokens (NaN: no rate)
};

ServeSummary summarize(const Trace& t, const ServeResult& r, const ServeConfig& c, const std::string& model, const std::string& arch,
                       int64_t step_runs);
/// The same for a run of a deployment: its model and arch names, the prefill pool and drafter,
/// every instance's devices and their $ per second and per million tokens.
ServeSummary summarize(const Trace& t, const ServeResult& r, const ServeRig& rig, const ServeConfig& c);
std::string format_serve(const ServeSummary& s, Format f);
/// One row per iteration: time, instance, duration, running, waiting, prefill tokens, decode, KV used.
std::string timeline_csv(const ServeResult& r);
/// Per-GPU power over time: one row per power bin and device (time, server, GPU, W, GHz).
std::string power_csv(const ServeResult& r, const ServeConfig& c);
/// SVG: the latency distributions (TTFT, TPOT, end to end) and, when the run kept samples,
/// requests running and waiting and KV pages in use over time (summed over instances), and
/// GPU power over time (the mean and the highest device).
std::string plot_serve_svg(const ServeResult& r, const ServeSummary& s);

struct PerfettoOptions {
  double from = 0, to = std::numeric_limits<double>::infinity();  ///< s: the window of simulated time kept
  int64_t max_requests = 2000;  ///< requests kept, evenly sampled (their slices)
  /// Iteration slices kept: the window closes early at the iteration that reaches this (each
  /// iteration also writes three counter samples), so a long run's trace stays tens of MB.
  int64_t max_iterations = 50000;
};
/// The run as a Perfetto / Chrome trace (JSON, Trace Event Format): each request an async
/// track of slices (queued, prefill, transfer, decode), each instance a thread of iteration
/// slices (batch size, prompt tokens, decodes in their args), and counters per instance: batch,
/// KV pages in use, power per device. Needs ServeConfig::record_samples.
std::string perfetto_json(const Trace& t, const ServeResult& r, const ServeConfig& c, const PerfettoOptions& o = {});

struct CapacityPlan {
  int64_t servers = 0;  ///< the fewest that meet the SLOs (0: none up to the limit)
  std::vector<std::pair<int64_t, double>> tried;  ///< servers, SLO attainment
};
/// The fewest servers (at most `limit`) whose SLO attainment is at least `target`, by
/// doubling then bisection (attainment grows with servers).
CapacityPlan plan_capacity(const Trace& t, ServeConfig c, const ServeRig& rig, double target, int64_t limit);

}  // namespace einsim
