#pragma once
// `einsim validate`: predicts every measured kernel with the simulator and reports the error
// per kernel class (count, MAPE, bias, worst rows). Reads einsim's kernel CSV (validate/kbench,
// validate/gpu/torch_bench.py) and the published A100 sets (LLMCompass matmul, softmax,
// layer norm and GELU files; Vidur's per-operator profiles), chosen by file name.
#include <string>
#include <vector>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "sim/report/format.h"
#include "sim/run/run.h"
#include "validate/measurements.h"

namespace einsim {

/// One measured kernel in a common form.
struct KernelSample {
  std::string set;    ///< file name, without folders
  std::string kind;   ///< gemm, attention, memory, rowwise, elementwise, pcie
  std::string op;     ///< matmul, scaled_mm, prefill, decode, copy, triad, softmax, layernorm, gelu, h2d, d2h, or a Vidur operator
  DType dtype = DType::BF16;
  int64_t m = 0, n = 0, k = 0, batch = 0, heads = 0, seq = 0, kv = 0;
  double bytes = 0;
  double measured = 0;  ///< s
  double power = -1;    ///< W measured while it ran back to back; < 0: not measured
  bool held_out = false;  ///< a row the fit did not see (classes say which)
  SourceLoc loc;
  /// The class its error is reported in: gemm-<dtype>, attention-<op>, or the kind.
  std::string kernel_class() const;
  std::string shape() const;
};

/// The samples of one file: einsim's kernel CSV (a header with kind,op,...), LLMCompass
/// `matmul_*`, `softmax_*`, `layernorm_*`, `gelu_*` (fp16), or Vidur `*_mlp.csv` (its GEMMs
/// at every tensor-parallel degree, fp16). Others are errors.
std::vector<KernelSample> load_kernel_samples(const std::string& file);

struct KernelPrediction {
  KernelSample sample;
  double predicted = 0;   ///< s
  double energy = 0;      ///< J per call: the operations' and data's dynamic energy (the arch's power model)
  double active = 0;      ///< W: the arch's active power
  std::string bottleneck;
  double error() const { return (predicted - sample.measured) / sample.measured; }  ///< signed, fraction
  /// The power the arch's model gives the kernel run back to back at its measured time:
  /// active + energy / measured (the time's error left out).
  double predicted_power() const { return active + energy / sample.measured; }
  bool has_power() const { return sample.power > 0; }
  double power_error() const { return (predicted_power() - sample.power) / sample.power; }
};

/// einsim's prediction of one kernel on `a`: a GEMM is one mapped Einsum; attention is the
/// 1-pass cascade (FuseMax Cascade 5, FlashAttention's algorithm) fused into one kernel (op
/// `prefill-3pass`: the 3-pass cascade, each product its own kernel, as kbench's naive one); copy,
/// triad, softmax, layer norm and GELU are their cascades fused into one kernel; a host copy is
/// the bytes over the arch's host link. Every time includes the arch's launch overhead.
KernelPrediction predict_kernel(const ArchSpec& a, const KernelSample& s, MapCache* cache = nullptr);

struct ClassError {
  std::string name;
  int64_t count = 0;
  double mape = 0;   ///< mean absolute error, fraction
  double bias = 0;   ///< mean signed error, fraction (> 0: einsim over-predicts)
  int64_t power_count = 0;   ///< rows with a measured power
  double power_mape = 0, power_bias = 0;  ///< of predicted_power() against it
  std::vector<size_t> worst;  ///< indices into the report's rows, largest absolute error first (at most 3)
};

struct ValidationReport {
  std::string arch;
  std::vector<std::string> files;
  std::vector<std::string> runtimes;  ///< the runtime each file was read under
  std::vector<KernelPrediction> rows;
  std::vector<ClassError> classes;  ///< by class name, then "all"
};

/// The runtime of the harness that measured `file`: pytorch-eager for the published A100 sets
/// (LLMCompass, Vidur), inference-engine for kbench (C++ launches), torch-bench for the
/// project's other kernel CSVs; NCCL profiles are kernel
/// durations (no dispatch): pytorch-eager, whose collective bases they were fitted under.
std::string harness_runtime(const std::string& file);

/// Predicts every sample of `files` on `a`, each file under `runtime` (nullptr: its harness's,
/// with `runtime_sets` applied: runtime.KEY=VALUE) and gathers the errors by class.
ValidationReport validate_measurements(const ArchSpec& a, const std::vector<std::string>& files, const Runtime* runtime = nullptr,
                                       const std::vector<std::string>& runtime_sets = {});
/// The errors of predicted rows by class (exposed for tests).
std::vector<ClassError> class_errors(const std::vector<KernelPrediction>& rows);

/// The kernel quality of one kind (Runtime::efficiency) that minimises the mean absolute
/// error of the rows of class `cls` in `files` on `a` under `base` (grid 0.50-1.00 in steps of
/// 0.01); with the MAPE it reaches.
std::pair<double, double> fit_kind_efficiency(const ArchSpec& a, const std::vector<std::string>& files, const Runtime& base, KernelKind kind,
                                              const std::string& cls);

std::string format_validation(const ValidationReport& r, Format f);
/// One row per measurement: set, class, op, shape, measured, predicted, error, bottleneck.
std::string validation_rows_csv(const ValidationReport& r);
/// SVG: predicted against measured time per class (log axes), with the line of no error.
std::string plot_validation_svg(const ValidationReport& r);

/// One kernel's output from `kbench --check` against einsim's reference executor.
struct AttentionCheck {
  std::string kernel;          ///< 1pass, 3pass
  double max_abs_error = 0;    ///< largest |kernel - reference| over the output
  double max_reference = 0;    ///< largest |reference|
  bool ok = false;             ///< max_abs_error <= tolerance x max_reference
};

/// A dump `kbench --check` writes: a text line "batch heads rows head_dim", then the values as
/// float32, row-major [batch, heads, rows, head_dim].
struct AttentionDump {
  int64_t batch = 0, heads = 0, rows = 0, head_dim = 0;
  std::vector<float> values;
};
AttentionDump read_attention_dump(const std::string& file);
void write_attention_dump(const std::string& file, const AttentionDump& d);

/// The outputs of `kbench --check DIR` (attention-q/k/v.bin and attention-out-{1pass,3pass}.bin)
/// against the reference executor running einsim's 1-pass cascade on the same inputs, within
/// `tolerance` of the largest reference value (bf16 inputs and outputs: 2% by default).
std::vector<AttentionCheck> check_attention_dump(const std::string& dir, double tolerance = 0.02);

}  // namespace einsim
