#pragma once
// A design-space sweep (configs/sweeps/*.toml, docs/SWEEPS.md): the settings every point
// shares, the parameters it varies (lists, linear and log ranges; a grid, zips, random or
// Latin-hypercube samples), derived parameters, constraints, extra outputs and objectives.
// The spec is read and checked once; point i is then generated on demand, so a sweep of a
// million points holds none of them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/error.h"
#include "common/units.h"
#include "sim/sweep/formula.h"

namespace einsim {

/// One value a parameter takes: a number (SI; `dim` says its unit), or text (a name such as
/// a dtype or a preset, or a TOML array such as a shape).
struct SweepValue {
  double number = 0;
  std::string text;   ///< set for text values; numbers have it empty
  bool is_text() const { return !text.empty(); }
};

/// How a parameter's values are written and stored.
enum class ValueKind { Integer, Real, Quantity, Tokens, Name, Toml };

/// A parameter (settable key) or a free variable (used only by derived values).
struct SweepParam {
  std::string key;       ///< dotted path: batch, tp, arch.tiers.hbm.read_bandwidth, model.num_hidden_layers, ...
  bool settable = true;  ///< false: a [variables] entry
  ValueKind kind = ValueKind::Real;
  Dim dim = Dim::Count;  ///< for quantities
  SourceLoc loc;         ///< of the value in the spec
  // Exactly one of: a list of values, or a range.
  std::vector<SweepValue> values;
  bool is_range = false;
  bool log = false;
  double lo = 0, hi = 0;
  int64_t points = 0;    ///< grid points of a range (0: continuous, samples only)
  /// The grid's i-th value of a range.
  double range_value(int64_t i) const;
  int64_t size() const { return is_range ? points : static_cast<int64_t>(values.size()); }
};

/// A derived parameter, output or constraint: an expression over earlier names.
struct SweepExpr {
  std::string name;  ///< the column (or settable key) it writes; "" for a constraint
  SourceLoc loc;
  std::vector<Formula> parts;  ///< one, or several for an array value ("[e1, e2]")
  bool settable = false;    ///< writes a settable key (then it is applied like a parameter)
  ValueKind kind = ValueKind::Real;
  Dim dim = Dim::Count;
  bool before = false;      ///< constraint: decidable before evaluation (prunes)
};

enum class Design { Grid, Random, Lhs };
/// Mapped: one step of the model mapped on the arch; Roofline: the same screened by rooflines;
/// Serve: a serving simulation of a request trace per point (sim/serve), its latency
/// percentiles, SLO goodput, cost and energy per token.
enum class SweepMode { Mapped, Roofline, Serve };

/// The metrics every evaluated point reports (columns, and names expressions can use).
struct MetricInfo {
  const char* name;
  const char* unit;
  bool before;     ///< known before evaluation (from the deployment's sizes alone)
  int direction;   ///< Pareto: -1 smaller is better, +1 larger is better, 0 not an objective
  const char* what;
};
const std::vector<MetricInfo>& sweep_metrics();
/// Indices into sweep_metrics(), in its order.
enum MetricId : int {
  kDevices, kWeights, kKvCache, kCapacity, kMemoryFit, kTdp, kPrice, kRate, kLatency, kThroughput, kThroughputPerDevice,
  kEnergyPerToken, kPower, kCostPerMtok, kActivations, kMemory, kUtilization, kComputeTime, kAllreduceTime,
  kGoodput, kSloAttainment, kTtftP50, kTtftP99, kTpotP50, kTpotP99, kPrefixHitRate, kMetricCount
};

struct SweepSpec {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string file, name, description;
  SweepMode mode = SweepMode::Mapped;
  Design design = Design::Grid;
  int64_t samples = 0;
  /// Mapper tile candidates per level (RunOptions' default for whole models is 128).
  int64_t max_tiles = 128;
  /// Mapped points whose matrix products no array runs at their type compute wider (`emulate
  /// = true`); false: such a point is an error naming the emulation (as `run` without --emulate).
  bool emulate = false;
  uint64_t seed = 1;
  /// Fixed settable values (the `[sweep]` table's deployment keys), one value each.
  std::vector<SweepParam> fixed;
  std::vector<SweepParam> params;  ///< parameters, then variables, in file order
  /// Groups varied together (a lone parameter, or a zip), in grid order (last fastest).
  std::vector<std::vector<int>> groups;
  std::vector<SweepExpr> derived, outputs, constraints;
  std::vector<std::string> objectives;
  int64_t total = 0;  ///< points in the sweep

  /// Slot layout for expressions: params, then derived, then metrics, then outputs.
  int derived_slot(size_t i) const { return static_cast<int>(params.size() + i); }
  int metric_slot(size_t i) const { return static_cast<int>(params.size() + derived.size() + i); }
  int output_slot(size_t i) const { return static_cast<int>(params.size() + derived.size() + sweep_metrics().size() + i); }
  size_t slots() const { return params.size() + derived.size() + sweep_metrics().size() + outputs.size(); }
};

/// Reads and checks a sweep spec: unknown keys, impossible ranges, bad expressions and
/// values the architecture or model would reject are errors located in the spec.
SweepSpec load_sweep(const std::string& file, const std::vector<std::string>& overrides = {});

/// Latin-hypercube strata, one permutation of [0, total) per group (empty for other designs).
struct SampleTable {
  std::vector<std::vector<uint32_t>> strata;
};
SampleTable make_samples(const SweepSpec& s);

/// The values of point `i`: one per parameter, in `s.params` order.
void point_values(const SweepSpec& s, const SampleTable& t, int64_t i, std::vector<SweepValue>& out);

/// The text a value is written as: in a `--set` override, in the point's hash, in exports.
std::string value_text(const SweepParam& p, const SweepValue& v);
std::string value_text(ValueKind kind, Dim dim, const SweepValue& v);

/// 64-bit FNV-1a.
uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull);

}  // namespace einsim
