#pragma once
// Analytical cost model: pure functions from (Einsum, architecture, mapping) to time, energy,
// traffic per storage level and the bottleneck. The SystemC engine will take its per-tile
// delays from the same functions.
#include <string>
#include <vector>

#include "arch/arch.h"
#include "workloads/cascade.h"

namespace einsim {

/// Tiles of one on-chip storage level (or of the array, last): the extent of each Einsum
/// variable held per instance, and the order (outer to inner) in which the level's tiles
/// are visited inside its parent's tile. Variables left out of `order` must have one trip.
struct LevelTiles {
  std::vector<int64_t> tile;
  std::vector<int> order;
};

/// Where an Einsum runs and how it is tiled.
struct Mapping {
  int array = -1;                  ///< index into ArchSpec::arrays
  std::vector<std::string> path;   ///< storage from the tier down to the array's level, outer first
  std::vector<LevelTiles> levels;  ///< one per on-chip level of `path` (path[1..]), then the array's
};

/// Bytes moved between a storage level and the level below it, and the time they occupy it.
struct LevelTraffic {
  std::string name;
  double read_bytes = 0;   ///< read from this level by the level below (or the array)
  double write_bytes = 0;  ///< written into this level from below (outputs, partial sums)
  double busy = 0;         ///< s
};

struct Cost {
  double time = 0;          ///< s: max over resources of their busy time, plus fill/drain and launch
  double compute = 0;       ///< s the array is busy (quantized, at the achievable rate)
  double ideal_compute = 0; ///< s at peak with no quantization
  double fill_drain = 0;    ///< s before the first tile computes and after the last finishes
  double launch = 0;        ///< s of kernel launch (GPUs)
  double energy = 0;        ///< J (0 for parts whose energy the arch does not give)
  double compute_energy = 0;  ///< J of `energy` spent in the array's operations (scales with DVFS)
  double utilization = 0;   ///< ideal_compute / time
  std::vector<LevelTraffic> traffic;  ///< path[0] (the tier) first
  std::string bottleneck;   ///< "compute (<array>)" or "<level> bandwidth"
};

/// A tensor as one Einsum uses it: its accesses and the variables they depend on.
struct CostOperand {
  int tensor = -1;
  std::vector<const Access*> accesses;
  std::vector<char> uses_var;  ///< per Einsum variable: does an access depend on it
  bool output = false;
  bool resident = false;  ///< an intermediate of a fused group: lives on chip, never crosses to the tier
  bool in_array = false;  ///< held in the PEs that produced it (one element per PE): crosses no level at all
  double bytes_per_element = 0;
  double full_bytes = 0;  ///< footprint over the whole iteration space, in bytes
};

/// An Einsum prepared for costing many mappings: its operands are gathered once. Holds
/// references to `c` and `e`, which must outlive it.
class EinsumCost {
 public:
  /// `resident`: tensors that stay on chip (intermediates of a fused group): they occupy the
  /// buffers like any operand but move only between the innermost level and the array.
  /// `in_array`: intermediates the same array produced, still in its PEs' registers (FuseMax
  /// keeps a 256x256 tile of scores in the 2D array between the Einsums bound to it): they
  /// occupy no buffer and move across no level.
  EinsumCost(const Cascade& c, const Einsum& e, const std::vector<int>& resident = {}, const std::vector<int>& in_array = {});
  /// See the free function evaluate(). Without `detail` the level names and the bottleneck
  /// label are left empty (the mapper's inner loop needs only the numbers).
  Cost evaluate(const ArchSpec& a, const Mapping& m, DType dt, bool detail = true) const;
  /// evaluate() into `out`, reusing its storage (the mapper's inner loop).
  void evaluate_into(const ArchSpec& a, const Mapping& m, DType dt, Cost& out, bool detail = false) const;
  /// evaluate_into() without the storage traffic (left zero, and the energy with it): compute,
  /// fill and drain and launch exactly as a full evaluation gives them, which do not depend on
  /// the loop orders. The mapper bounds a tile by them before choosing its orders.
  void order_free_into(const ArchSpec& a, const Mapping& m, DType dt, Cost& out) const;
  /// See the free function level_occupancy().
  double occupancy(const Mapping& m, size_t level) const;
  /// See the free function compulsory_bytes().
  double compulsory_bytes() const;

 private:
  void evaluate_impl(const ArchSpec& a, const Mapping& m, DType dt, Cost& out, bool detail, bool with_traffic) const;
  double operand_footprint(const CostOperand& o, const int64_t* tile) const;
  /// Bytes of each operand held at level `level` (1-based) under `tile`, memoised per level
  /// (the mapper costs one tile under several loop orders and checks its occupancy first;
  /// footprints do not depend on the order). Entries are computed on first use: take them
  /// through bytes_of().
  double* level_bytes(size_t level, const int64_t* tile) const;
  double bytes_of(double* memo, size_t op, const int64_t* tile) const {
    if (memo[op] < 0) memo[op] = operand_footprint(ops_[op], tile) * ops_[op].bytes_per_element;
    return memo[op];
  }
  const Cascade& c_;
  const Einsum& e_;
  std::vector<CostOperand> ops_;
  struct Memo {
    std::vector<int64_t> tile;  ///< the tile the bytes are for (empty: none yet)
    std::vector<double> bytes;  ///< per operand; negative: not computed for this tile
  };
  mutable std::vector<Memo> memo_;
  /// Storage of the last mapping's path and the array's compute bound, looked up once
  /// (an EinsumCost is not for concurrent use).
  struct Resolved {
    const ArchSpec* arch = nullptr;
    int array = -1;
    DType dt = DType::FP16;
    std::vector<std::string> path;
    const MemoryTier* tier = nullptr;
    std::vector<const StorageLevel*> levels;
    double ideal = 0;
    double cycles_per_point = 0;  ///< per PE, at the achievable rate
    size_t block_level = 0;       ///< level whose tiles are issued to array instances (0: none)
    double compute_energy = 0;    ///< J of the array's operations
  };
  mutable Resolved res_;
};

/// The storage levels from the tier that ultimately feeds `array` down to the level the array
/// reads, outer first (e.g. {"hbm", "l2", "smem"}).
std::vector<std::string> storage_path(const ArchSpec& a, int array);

/// Elements of the tensor of `acc` touched when each variable v ranges over [0, tile[v]).
double footprint(const Cascade& c, const Einsum& e, const Access& acc, const std::vector<int64_t>& tile);

/// Bytes of data held per instance at on-chip level `level` (1-based in the mapping's path)
/// under `m`: the sum of the tiles' footprints of every tensor the Einsum touches.
double level_occupancy(const Cascade& c, const Einsum& e, const Mapping& m, size_t level);

/// Checks shapes and nesting of `m` against `e` and `a`; throws InternalError when broken.
void check_mapping(const Einsum& e, const ArchSpec& a, const Mapping& m);

/// Cost of `e` (element type `dt`) on `a` under `m`. Overlap rule: inside one Einsum the
/// array and every storage level work concurrently, so time = max of their busy times +
/// fill/drain + launch overhead; Einsums (blocks) add.
Cost evaluate(const Cascade& c, const Einsum& e, const ArchSpec& a, const Mapping& m, DType dt);

/// Lower bounds every mapping of `e` on array `array` obeys: peak compute time and
/// compulsory traffic over the tier's bandwidth.
double compute_bound(const Einsum& e, const ComputeArray& arr, DType dt);
double compulsory_bytes(const Cascade& c, const Einsum& e);

}  // namespace einsim
