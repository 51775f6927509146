#pragma once
// Static analysis of a bound cascade: operation counts, footprints, compulsory traffic and
// the pass analysis of FuseMax §III.
#include <string>
#include <vector>

#include "workloads/cascade.h"

namespace einsim {

/// Per-Einsum figures.
struct EinsumStats {
  int64_t points = 0;
  OpCounts ops;
  double bytes_read = 0;     ///< distinct elements read, in bytes (each operand once)
  double bytes_written = 0;  ///< elements written, in bytes
};

/// Whole-cascade figures.
struct CascadeStats {
  std::vector<EinsumStats> einsums;
  OpCounts ops;
  double input_bytes = 0;         ///< tensors nobody writes
  double output_bytes = 0;        ///< tensors nobody reads
  double intermediate_bytes = 0;  ///< tensors written and read inside the cascade
  /// Compulsory traffic: inputs read once (only the touched part of gathered tables) plus
  /// outputs written once; intermediates stay on chip.
  double compulsory_bytes = 0;
  /// Sum over Einsums of their operand traffic: what an unfused execution moves.
  double unfused_bytes = 0;
};

/// Elements of `a`'s tensor the access touches (gathered dimensions count distinct indices,
/// at most the extent).
double touched_elements(const Cascade& c, const Einsum& e, const Access& a);

CascadeStats analyze(const Cascade& c);

/// Result of the pass analysis for one rank.
struct PassReport {
  std::string rank;
  int passes = 0;                 ///< 0 when no Einsum traverses the rank
  std::vector<int> einsum_pass;   ///< pass of each Einsum (0: does not traverse the rank)
  /// One line per extra pass: which Einsum needs it and which full reduction forces it.
  std::vector<std::string> reasons;
};

/// Number of passes over `rank` (and the ranks that partition it): a pass is one traversal of
/// a fiber; an Einsum that traverses the rank must wait for another pass when it depends on a
/// full reduction over that rank (FuseMax §III).
///
/// With `subset` (Einsum ids in schedule order, e.g. a candidate fused block): only those
/// Einsums; tensors written outside the subset are complete before it starts, and carried reads
/// see the previous iteration's values (one sweep, no iteration to a fixed point); `reasons`
/// stays empty.
PassReport pass_analysis(const Cascade& c, const std::string& rank, const std::vector<int>* subset = nullptr);

}  // namespace einsim
