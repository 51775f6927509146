#pragma once
// Placement search: the tensor x pipeline x expert-parallel splits of one model over one
// architecture's devices, each mapped as `run` maps it, and which of them holds the model and
// serves it cheapest (`einsim place`; the does-not-fit hint of `run`).
#include <optional>
#include <string>
#include <vector>

#include "sim/run/run.h"

namespace einsim {

struct Placement {
  int64_t tp = 1, pp = 1, ep = 1;
  int64_t devices() const { return std::max(tp, ep) * pp; }
  /// "--tp 8 --pp 2", "--tp 1" for one device.
  std::string flags() const;
};

struct PlacementPoint {
  Placement at;
  std::string invalid;       ///< why this split cannot be formed ("" when it can)
  bool fits = false;         ///< the fullest device holds its weights, caches and activations
  bool meets_slo = true;     ///< the step is within PlacementOptions::slo
  double memory = 0;         ///< B on the fullest device
  double capacity = 0;       ///< B per device
  double step = 0;           ///< s: one step alone (TTFT or TPOT)
  double interval = 0;       ///< s between steps back to back (pipelines keep pp batches in flight)
  double tokens_per_s = 0;   ///< back to back, over all devices
  /// Data parallelism: the replicas of this split that --max-devices holds, each serving its
  /// own requests (the step and the cost per token do not change; the throughput multiplies).
  int64_t replicas = 1;
  /// $ per million tokens at the architecture's rental rate, back to back; 0 without a rate.
  double cost_per_mtok = 0;
  /// What ranks the fitting points: $ per million tokens, or device-seconds per token
  /// without a rate.
  double rank = 0;
};

struct PlacementOptions {
  int64_t max_devices = 64;
  double slo = 0;  ///< s: the step (TTFT or TPOT) at most this (0: none)
  /// Stop at the smallest device count where a split fits (the run hint's search).
  bool fewest_devices = false;
};

/// Every split of at most `max_devices` devices: tp a degree shard_model() accepts, pp up to
/// the layers, ep (models with experts) tp or a multiple of it up to the experts; each split
/// that can be formed is mapped by run_model() (memory unchecked, `base`'s phase and options).
/// Sorted: fitting and within the SLO first, then by rank (cheapest), then by step.
std::vector<PlacementPoint> search_placements(const ModelConfig& m, const ArchSpec& a, const RunOptions& base, const PlacementOptions& opt,
                                              MapCache* cache = nullptr);

}  // namespace einsim
