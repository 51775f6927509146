#pragma once
// Calibration of a GPU preset's efficiency parameters against measured GEMMs, and the error
// report. Method (docs/CALIBRATION.md): map every measured GEMM once with the preset, then
// choose the achievable MAC fraction, the achievable memory-bandwidth fraction and one fixed
// per-operator overhead that minimise the mean of the data sets' mean absolute percentage
// errors (grid over fractions in steps of 0.01, ternary search over the overhead).
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "sim/cost/mapper.h"
#include "sim/run/run.h"
#include "validate/measurements.h"

namespace einsim {

/// One measured GEMM C[M,N] = A[M,K] B[K,N].
struct GemmSample {
  std::string set;    ///< data set name ("llmcompass", "vidur")
  std::string label;  ///< operator or row description
  int64_t m = 0, n = 0, k = 0;
  double measured = 0;  ///< s
  SourceLoc loc;
};

/// The LLMCompass matmul sweep as samples.
std::vector<GemmSample> llmcompass_gemms(const std::string& file);
/// The Vidur projections and MLP GEMMs at one tensor-parallel degree (QKV, output
/// projection, gate+up or up, down; widths divided by the TP degree as Vidur profiles them).
std::vector<GemmSample> vidur_gemms(const std::string& file, int64_t tensor_parallel = 1);

struct Predicted {
  GemmSample sample;
  double predicted = 0;  ///< s
  std::string bottleneck;
};

/// Maps and predicts every sample on `a` at `dt`.
std::vector<Predicted> predict_gemms(const ArchSpec& a, const std::vector<GemmSample>& samples, DType dt);

/// Mean absolute percentage error (as a fraction) of the samples of one set ("" for all).
double mape(const std::vector<Predicted>& p, const std::string& set = "");

struct GpuFit {
  double mac_efficiency = 0;
  double memory_efficiency = 0;
  double launch_overhead = 0;  ///< s per operator
  std::vector<std::pair<std::string, double>> mape;  ///< per set, at the fitted values
};

/// Fits the MAC efficiency, memory efficiency and per-operator overhead of GPU `a` (the
/// overhead held at `fixed_overhead` when given: the harness runtime's kernel launch).
GpuFit fit_gpu(const ArchSpec& a, const std::vector<GemmSample>& samples, DType dt, std::optional<double> fixed_overhead = std::nullopt);

/// `einsim calibrate`: a GPU preset's efficiencies fitted to a user's measured GEMMs (the
/// method above), every other GEMM row held out, and the overriding architecture file that
/// `inherits` the preset with the fitted values.
struct Calibration {
  std::string arch;      ///< the preset's name (its [arch] name)
  DType dtype = DType::BF16;
  int64_t fitted = 0, held_out = 0, skipped = 0;  ///< GEMM rows used; other rows of the files
  GpuFit fit;
  double preset_mac = 0, preset_memory = 0;
  bool overhead_fixed = false;  ///< the overhead is --runtime's kernel launch, not fitted
  double before_fitted = 0, before_held_out = 0;  ///< MAPE with the preset's efficiencies (same overhead)
  double after_fitted = 0, after_held_out = 0;    ///< MAPE with the fitted ones
  std::string toml;      ///< the overriding file
};
/// `arch_ref`: the preset name or file the output inherits; `runtime`: the harness the files
/// were measured under (nullptr: its per-kernel overhead is fitted too); `dtype`: the GEMMs'
/// type (default: the type most GEMM rows have). `command` and `date` go in the file's header.
Calibration calibrate_gpu(const ArchSpec& a, const std::string& arch_ref, const std::vector<std::string>& files, const Runtime* runtime,
                          std::optional<DType> dtype, const std::string& command, const std::string& date);

/// One row of an end-to-end layer comparison: a group of the measured operators and what
/// `einsim run` predicts for the kernels that compute them.
struct LayerRow {
  std::string part;
  double measured = 0;   ///< s
  double predicted = 0;  ///< s
};

/// Predicts the LLMCompass GPT-3-175B layer (TP 4, batch 8; prefill with a 2048-token prompt
/// or decode with `context` tokens cached) with `einsim run` (one layer, 3-pass attention and
/// eager kernels as PyTorch runs them) and compares it with `measured` part by part:
/// layer norm 1, QKV projection, attention (QK, softmax, AV), output projection with the
/// residual add and layer norm 2, FFN1 with GELU, FFN2 (with the residual add), all-reduces,
/// and the whole layer last. Kernels are attributed to the part of their first Einsum.
std::vector<LayerRow> compare_llmcompass_layer(const ArchSpec& a, const ModelConfig& gpt3, const std::vector<LayerOpMeasurement>& measured,
                                               bool prefill, int64_t context);

/// A kernel kind's quality in a runtime, fitted: `base` with the quality of `kind` set to each of
/// lowest, lowest + 0.01, ..., 1.00, the one whose `error` (a mean absolute relative error) is
/// least; returns {quality, error}. The prefill-attention and weight-only GEMM fits share it.
std::pair<double, double> fit_kind_quality(const Runtime& base, KernelKind kind, double lowest, const std::function<double(const Runtime&)>& error);

}  // namespace einsim
