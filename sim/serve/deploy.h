#pragma once
// A serving deployment built once and run on traces: the step timers of the model instances
// (the decode or co-located pool, a disaggregated prefill pool, a speculative drafter) and the
// link between pools. `einsim serve` and serving sweeps both build theirs here.
#include <memory>
#include <optional>
#include <string>

#include "sim/serve/serve.h"

namespace einsim {

/// The multi-token-prediction head of `m` (DeepSeek-V3's MTP module, an EAGLE head) as a
/// draft model: one more layer of the target's last layer's kind, sharing its embedding and
/// LM head.
ModelConfig mtp_head(const ModelConfig& m);

struct Deployment {
  ModelConfig model;
  ArchSpec arch;
  std::shared_ptr<const Runtime> runtime;
  std::optional<DType> kv_dtype;
  bool emulate = true;
  ServeConfig config;  ///< tp, ep, pp and the serving knobs
  /// Disaggregated serving: the prefill pool's arch (nullopt: `arch`) and tensor parallelism.
  std::optional<ArchSpec> prefill_arch;
  int64_t prefill_tp = 0;  ///< 0: config.tp
  /// Speculative decoding's drafter (config.spec.k > 0): a model, or nullopt for the target's
  /// MTP head (mtp_head()).
  std::optional<ModelConfig> draft;
};

/// The timers of a deployment, built once (each a few hundred mapped runs, memoised).
class ServeRig {
 public:
  explicit ServeRig(const Deployment& d);
  ServeResult run(const Trace& t) const { return run(t, d_.config); }
  /// The same instances under another serving configuration (its tp, ep, pp and pools'
  /// parallelism must be the rig's).
  ServeResult run(const Trace& t, const ServeConfig& c) const;
  StepTimer& timer() const { return *timer_; }
  const Deployment& deployment() const { return d_; }
  int64_t step_runs() const;
  /// Devices the deployment uses: every instance's.
  int64_t devices(const ServeConfig& c) const;
  /// $ per s for those devices (NaN when an arch has no rental rate).
  double rate(const ServeConfig& c) const;
  std::vector<std::string> emulated() const;
  double draft_weights() const { return draft_weights_; }

 private:
  Deployment d_;
  std::unique_ptr<StepTimer> timer_, prefill_, draft_;
  double draft_weights_ = 0;
};

/// The link prefilled KV caches cross between pools, B/s per device: "network" (each
/// device's NIC, the arch's network link), "peer" (the scale-up link: both pools in one
/// NVLink domain), "inf" (free), or a bandwidth ("50 GB/s"). Located at `flag`.
double kv_link_bandwidth(const ArchSpec& prefill, const ArchSpec& decode, const std::string& which, const char* flag = "--kv-link");
/// Checks the form of a link name (network, peer, inf, or a positive bandwidth) without the
/// archs it joins; a bad one is an error located at `flag`.
void check_kv_link(const std::string& which, const char* flag = "--kv-link");
/// The same link's latency per transfer (s): the link's own (0 for "inf" or a bandwidth).
double kv_link_latency(const ArchSpec& prefill, const std::string& which);

}  // namespace einsim
