#pragma once
// Evaluates design points of a sweep: the point's values, its derived values and hash, the
// constraints decidable from sizes alone (memory fit, area, cost: pruned before any mapping),
// then the model mapped on the architecture (`run_model`, with a mapping cache shared by the
// points one worker evaluates) or a roofline screen, the outputs and the other constraints.
// One evaluator per thread: it caches architectures, models and mappings, and is not shared.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "sim/run/run.h"
#include "sim/sweep/spec.h"

namespace einsim {

/// One cell of a stored row.
struct Cell {
  enum Type : uint8_t { Null, Int, Real, Text } type = Null;
  int64_t i = 0;
  double d = 0;
  std::string s;
  void set_null() { type = Null; }
  void set_int(int64_t v) { type = Int, i = v; }
  void set_real(double v);  ///< NaN and infinities are stored as NULL
  void set_text(std::string_view v) { type = Text, s.assign(v); }
};

struct SweepColumn {
  std::string name;
  const char* type;  ///< SQLite: INTEGER, REAL or TEXT
};
/// The columns of a sweep's table: hash, idx, status, error, the parameters and variables,
/// the derived values, the built-in outputs, bottleneck, and the [outputs].
std::vector<SweepColumn> sweep_columns(const SweepSpec& s);
constexpr int kHashColumn = 0, kIndexColumn = 1, kStatusColumn = 2, kErrorColumn = 3;

/// The built-in outputs of a roofline screen: per device, time = max(FLOPs / achievable
/// FLOP/s, bytes / achievable bandwidth) + the all-reduce; docs/SWEEPS.md.
struct ModelSizes;
class ServeRig;
struct Trace;

/// Checks the first point's derived architecture and model keys (located errors).
void check_sweep(const SweepSpec& s);

class PointEvaluator {
 public:
  explicit PointEvaluator(const SweepSpec& s);
  ~PointEvaluator();
  /// Point i's values, derived values and hash (no evaluation): what resume and sharding use.
  uint64_t prepare(int64_t i);
  /// Evaluates the prepared point into `row` (one cell per column).
  void evaluate(std::vector<Cell>& row);
  /// Both.
  void run(int64_t i, std::vector<Cell>& row) {
    prepare(i);
    evaluate(row);
  }
  int64_t mappings() const { return mappings_; }
  /// Loads the prepared point's architecture and model (throws their UserError).
  void load_point();

 private:
  struct Settings;
  struct Entry {
    enum Source { Fixed, Param, Derived } source;
    size_t index;
    const std::string* key;
    ValueKind kind;
    Dim dim;
    int key_id;
    std::string canon_key;  ///< "key=" (or "$name=" for a variable)
  };
  std::vector<Entry> order_;
  const ArchSpec& arch(const std::string& key, const std::string& name, const std::vector<std::string>& sets);
  const ModelConfig& model(const std::string& key, const std::string& name, const std::vector<std::string>& sets);
  const ModelSizes& sizes(const ModelConfig& m, const std::string& key, int64_t tp, DType dt, int64_t ep = 1);

  const SweepSpec& s_;
  const Runtime& runtime_ = s_.runtime ? *s_.runtime : default_runtime();
  SampleTable samples_;
  std::vector<SweepValue> values_;
  std::vector<double> slots_;
  std::vector<std::string> derived_text_;
  std::string canon_;
  int64_t index_ = -1;
  uint64_t hash_ = 0;
  std::unique_ptr<Settings> set_;
  std::map<std::string, std::shared_ptr<const ArchSpec>> archs_;
  std::map<std::string, std::shared_ptr<const ModelConfig>> models_;
  /// Entries the two caches keep before starting over: every architecture (model) a grid can
  /// name, up to 4096, so that a key varying fastest does not miss on every point.
  size_t arch_capacity_ = 256, model_capacity_ = 256;
  std::map<std::string, std::shared_ptr<ModelSizes>> sizes_;
  MapCache cache_;
  int64_t mappings_ = 0;
  /// Serving sweeps: the deployments' timers (built once per arch, model, parallelism,
  /// types, runtime, prefill pool and drafter) and the traces (per trace, rate, duration).
  std::map<std::string, std::shared_ptr<ServeRig>> rigs_;
  std::map<std::string, std::shared_ptr<const Trace>> traces_;
  /// A serving point's metrics; the constraint decidable before its simulation that fails it
  /// (nullptr: it ran).
  const SweepExpr* evaluate_serve(const ArchSpec& a, const ModelConfig& m);
};

}  // namespace einsim
