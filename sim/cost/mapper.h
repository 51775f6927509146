#pragma once
// The mapper: binds an Einsum to an array and searches tilings and loop orders.
#include <cstdint>
#include <string>

#include "sim/cost/cost_model.h"

namespace einsim {

enum class Objective { Latency, Energy, EDP };

struct MapperOptions {
  Objective objective = Objective::Latency;
  bool prune = true;                      ///< branch and bound (off: plain exhaustive search)
  int64_t max_evaluations = 4'000'000;    ///< refuse larger spaces (UserError)
  /// 0: tiles are powers of two (and the full extent). > 0: multiples of `granule` too, a
  /// much larger space, for checking how much the default space gives up.
  int64_t granule = 0;
  /// Most tile combinations tried per level: when the per-variable candidates multiply to
  /// more, the variable with the most candidates loses every other interior one (its
  /// smallest and largest stay) until they fit. Many-variable Einsums (attention: up to nine)
  /// need this; 0 keeps every combination.
  int64_t max_tiles = 4096;
  /// The array to run on (index into ArchSpec::arrays), as a study's binding decides (FuseMax
  /// binds the running max and the rescaling to the 1D array); -1: bind_array() chooses.
  int array = -1;
  /// GPUs under the latency objective: cost an innermost tile's loop orders only when the
  /// tile's order-free bound comes up in the search (same mappings found, fewer evaluations).
  /// Off: every order of every tile is costed up front (kept to check the two agree).
  bool lazy_orders = true;
  /// Threads a whole-model run maps its distinct Einsums on (the searches are independent:
  /// the same results on any number). 1 inside sweeps and serving, which run their points in
  /// parallel already; `einsim run` uses the machine's cores.
  int threads = 1;
};

struct MapResult {
  Mapping mapping;
  Cost cost;
  int64_t evaluated = 0;  ///< complete mappings costed
  int64_t pruned = 0;     ///< partial mappings cut by the bound
};

/// The array that runs every operation class of `e` at `dt` with the lowest compute bound;
/// -1 when none can.
int bind_array(const Einsum& e, const ArchSpec& a, DType dt);

/// Searches the mapping space of `e` on its bound array. The space: at each on-chip level, a
/// tile per variable from {powers of two below the parent's tile, the parent's tile}; at
/// each level, one variable innermost and the others in index order (the innermost run of
/// loops is what decides reuse); on 2D/1D accelerator arrays, every assignment of variables
/// to the array's dimensions; tiles whose data exceed a level's capacity are skipped.
/// Deterministic: ties keep the first mapping found (inner-first search visits in order of
/// bound, so among equal-cost mappings it may keep a different one than exhaustive search
/// would; the cost is the same). Throws UserError when nothing fits or
/// the space exceeds `max_evaluations`.
/// `resident`: tensors of a fused group that stay on chip; `in_array`: those still in the
/// PEs of the array that produced them (see EinsumCost).
MapResult map_einsum(const Cascade& c, const Einsum& e, const ArchSpec& a, DType dt, const MapperOptions& opt = {},
                     const std::vector<int>& resident = {}, const std::vector<int>& in_array = {});

/// Thins per-variable tile candidates to at most `budget` combinations (see max_tiles).
void thin_candidates(std::vector<std::vector<int64_t>>& cand, int64_t budget);

/// The mapping in words: array, tiles and loop order per level, spatial assignment.
std::string describe_mapping(const Einsum& e, const ArchSpec& a, const Mapping& m);

}  // namespace einsim
