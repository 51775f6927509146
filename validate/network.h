#pragma once
// The collective model's fit (arch/collective.h) on Vidur's NCCL profiles of DGX A100 and DGX
// H100 (data/published/vidur-network). Method (docs/CALIBRATION.md): the ring all-reduce's
// base, per-step latency and efficiency by least squares on relative error over the 2- and
// 8-GPU all-reduce rows; then the point-to-point base and efficiency over every other
// send/recv row (the per-step latency kept). Held out: the 4-GPU all-reduce rows and the
// other send/recv rows. Rows that span nodes fit and check the network link (below).
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

// Across nodes (docs/CALIBRATION.md, "Scale-out"): the rows of Vidur's files that span nodes.
// One GPU per node (2 workers, 1 per node) crosses only the network: those all-reduce rows and
// every other send/recv row fit the network link's ring and point-to-point base and efficiency,
// its per-step latency kept (NCCL's own tuning model's). The rows with several GPUs per node
// (hierarchical: 4 over 2 nodes, 8 over 2, 16 over 2) and the other send/recv rows are held out.

/// The rows of Vidur network files that span nodes (devices_per_node < num_workers).
std::vector<CollectiveSample> vidur_cross_node(const std::string& file);

/// einsim's time for one measured collective over `peer` within nodes of the measurement's
/// devices_per_node and `network` between them (arch/collective.h, hierarchical).
double predict_collective(const Link& peer, const Link& network, const CollectiveMeasurement& m);

/// Fits `network`'s ring and p2p costs on the fitted cross-node rows (bandwidth and latency
/// kept) and reports the error of every group of rows, hierarchical ones over `peer` as set.
LinkFit fit_network_link(const Link& network, const Link& peer, const std::vector<CollectiveSample>& samples);

/// The error of `network` as configured on every group of cross-node rows.
std::vector<LinkFit::Error> collective_errors(const Link& peer, const Link& network, const std::vector<CollectiveSample>& samples);

}  // namespace einsim
