#pragma once
// `einsim analyze power`: power oversubscription with POLCA's controller (Patel et al., arXiv
// 2308.12908; docs/REFERENCES.md). A row of inference servers in a power hierarchy (the row and its
// PDUs, each with a provisioned budget) serves high- and low-priority traffic; adding servers
// under the same budgets oversubscribes it. A controller sees each domain's power through a
// telemetry delay and acts with two thresholds: above T1 it locks the clock of low-priority
// servers, above T2 high-priority ones too (at a higher clock), releasing below the threshold
// minus a margin; above the budget it pulls the power brake, which takes effect only after
// its actuation latency. A domain above its budget for longer than the breaker tolerates is
// unsafe. Over a sweep of oversubscription and policies: extra servers, latency change per
// class, time capped, cap and brake events, overloads, and the largest safe oversubscription
// within a p99 latency loss.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/transformer.h"

namespace einsim {

/// A class of traffic and the servers that serve it.
struct PowerClass {
  std::string name;
  std::string trace = "conv";   ///< conv, code or a trace CSV
  bool high = true;             ///< high priority (locked only above T2)
  double share = 0.5;           ///< of the servers
  double rate_per_server = 1;   ///< requests/s each of its servers receives
  SourceLoc loc;
};

/// POLCA's two-threshold policy, thresholds as fractions of a domain's budget.
struct PowerPolicy {
  std::string name;
  double t1 = 0.8, t2 = 0.9;    ///< lock low priority above t1, high priority too above t2
  double margin = 0.05;         ///< release below the threshold minus this
  double low_clock = 0;         ///< Hz: low-priority lock (0: the arch's lowest DVFS point)
  double high_clock = 0;        ///< Hz: high-priority lock (0: the middle DVFS point)
  bool control = true;          ///< false: no controller at all (the row as deployed)
  SourceLoc loc;
};

struct PowerScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string model = "llama-2-70b", arch = "h100";
  int64_t tp = 8, instances_per_server = 1;
  int64_t servers = 20;          ///< the row as provisioned (0% oversubscription)
  int64_t servers_per_pdu = 4;   ///< PDUs of the row, each with its own budget
  double other_power = 0;        ///< W per server beyond its GPUs (CPUs, fans, NICs)
  /// "peak": each domain's budget is its highest power (mean over a telemetry interval) over
  /// the unoversubscribed run with no controller;
  /// "nameplate": GPUs x TDP + other power per server.
  std::string provisioning = "peak";
  std::vector<PowerClass> classes;
  double duration = 600;         ///< s of traffic
  std::vector<double> oversubscription = {0, 0.1, 0.2, 0.3, 0.4, 0.5};
  std::vector<PowerPolicy> policies;
  double bin = 0.1;              ///< s: power sampling of the simulation
  double telemetry_delay = 2;    ///< s (docs/REFERENCES.md: about 2 s)
  double telemetry_interval = 1; ///< s: the controller acts this often on the mean power of the last interval
  double lock_latency = 0.1;     ///< s: in-band frequency locking (fast)
  double brake_latency = 5;      ///< s: out-of-band power brake (docs/REFERENCES.md: about 5 s)
  double brake_clock = 0;        ///< Hz under the brake (0: the lowest DVFS point)
  double tolerance = 10;         ///< s above budget the breaker and UPS tolerate (docs/REFERENCES.md: about 10 s)
  double max_p99_loss = 0.05;    ///< high priority: largest allowed p99 TTFT and TPOT increase
  double max_p99_loss_low = 0.5; ///< low priority
  /// Matrix products no array runs at their type computed wider (`emulate = true`); else the
  /// analysis is refused at the model or the scenario.
  bool emulate = false;
  SourceLoc loc;
};

PowerScenario read_power(const ConfigTable& scenario);
PowerScenario load_power(const std::string& file_or_name, const std::vector<std::string>& overrides = {});

/// Latency of one class: p50 and p99 TTFT and TPOT (s) and their change against the same
/// row and traffic with no controller.
struct ClassLatency {
  std::string name;
  double ttft50 = 0, ttft99 = 0, tpot50 = 0, tpot99 = 0;
  double d_ttft50 = 0, d_ttft99 = 0, d_tpot50 = 0, d_tpot99 = 0;  ///< relative change
};

/// One power domain's record over a run.
struct DomainRecord {
  std::string name;
  double budget = 0;            ///< W
  double peak = 0, mean = 0;    ///< W; peak: the highest mean over a telemetry interval
  double over_time = 0;         ///< s with the telemetry-interval mean above budget
  double longest_over = 0;      ///< s, the longest such stretch
  int64_t violations = 0;       ///< stretches in which the mean over the breaker's tolerance exceeds the budget
  double violation_time = 0;    ///< s in such stretches
};

struct PowerRow {
  std::string policy;
  double oversubscription = 0;
  int64_t servers = 0, extra = 0;
  std::vector<ClassLatency> classes;
  double low_capped = 0, high_capped = 0, braked = 0;  ///< share of the run each was in force (row-wide: any server)
  int64_t cap_events = 0, brake_events = 0;
  double row_peak = 0, row_mean = 0;   ///< fractions of the row budget
  int64_t violations = 0;              ///< over the row and every PDU
  double violation_time = 0;           ///< s, summed over the row and every PDU
  double longest_over = 0;             ///< s, over all domains
  std::vector<DomainRecord> domains;   ///< the row first, then the PDUs
  double energy = 0;                   ///< J, all servers
  bool safe = false;                   ///< no violation
  bool within_loss = false;            ///< p99 losses within the limits
};

struct PowerReport {
  PowerScenario scenario;
  std::string model, arch;
  double row_budget = 0;               ///< W
  std::vector<double> pdu_budgets;     ///< W
  double gpu_tdp = 0;
  int64_t gpus_per_server = 0;
  std::vector<PowerRow> rows;          ///< per policy (the uncontrolled row first), per oversubscription
  /// Per policy: the largest oversubscription that is safe and within the p99 losses at it and
  /// every level below it (-1: none).
  std::vector<std::pair<std::string, double>> largest_safe;
};

PowerReport analyze_power(const PowerScenario& s);
std::string format_power(const PowerReport& r, Format f);
std::string plot_power_svg(const PowerReport& r);

}  // namespace einsim
