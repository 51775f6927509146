#pragma once
// The collective model's fit (arch/collective.h) on Vidur's NCCL profiles of DGX A100 and DGX
// H100 (data/published/vidur-network). Method (docs/CALIBRATION.md): the ring all-reduce's
// base, per-step latency and efficiency by least squares on relative error over the 2- and
// 8-GPU all-reduce rows; then the point-to-point base and efficiency over every other
// send/recv row (the per-step latency kept). Held out: the 4-GPU all-reduce rows and the
// other send/recv rows. Rows that span nodes are outside the presets (one node) and skipped.
#include <string>
#include <vector>

#include "arch/arch.h"
#include "validate/measurements.h"

namespace einsim {

/// The intra-node rows of Vidur network files, each marked fitted or held out by the rule above.
struct CollectiveSample {
  CollectiveMeasurement m;
  bool held_out = false;
};
std::vector<CollectiveSample> vidur_collectives(const std::string& file);

/// einsim's time for one measured collective over `link`.
double predict_collective(const Link& link, const CollectiveMeasurement& m);

struct LinkFit {
  double latency = 0;  ///< s per step
  AlgoCost ring, p2p;
  struct Error {
    std::string group;  ///< "all_reduce n4 (held out)", ...
    int64_t count = 0;
    double mape = 0;
  };
  std::vector<Error> errors;  ///< at the fitted values
};

/// Fits `link`'s latency and ring/p2p costs on the fitted rows of `samples` (bandwidth kept)
/// and reports the error of every group of rows.
LinkFit fit_peer_link(const Link& link, const std::vector<CollectiveSample>& samples);

/// The error of `link` as configured on every group of rows.
std::vector<LinkFit::Error> collective_errors(const Link& link, const std::vector<CollectiveSample>& samples);

}  // namespace einsim
