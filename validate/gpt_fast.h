#pragma once
// gpt-fast's published A100 batch-1 decode throughput (data/published/gpt-fast): the reader,
// einsim's prediction of each row under a runtime, and the fit of a CUDA-graph runtime's
// fixed costs on it (docs/CALIBRATION.md). The table is the runtime's training set: its errors
// are in-sample.
#include <string>
#include <vector>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "common/error.h"
#include "sim/run/run.h"
#include "workloads/quantization.h"

namespace einsim {

struct DecodeThroughput {
  std::string model;    ///< an einsim model preset
  std::string weights;  ///< bf16, int8, int4 (weight-only)
  std::string kv_cache;
  int64_t tp = 1;
  double tokens_per_s = 0;
  std::string gpu;
  double power_limit = 0;  ///< W
  int64_t prompt = 0, new_tokens = 0;
  std::string table;
  SourceLoc loc;
};

/// The gpt-fast CSV (header: model, weights, kv_cache, tp, tokens_per_s, gpu, power_limit_w,
/// prompt_tokens, new_tokens, table). Bad rows are located errors.
std::vector<DecodeThroughput> read_gpt_fast(const std::string& file);

/// One row as einsim sees it. gpt-fast's tokens/s counts the whole generation (a prefill of
/// the prompt, then new_tokens - 1 decode steps, the context growing from the prompt): einsim
/// runs the decode step at the mean context and the prompt's prefill, and combines them so.
struct DecodePrediction {
  DecodeThroughput row;
  double tokens_per_s = 0;
  double decode_step = 0;  ///< s
  double prefill = 0;      ///< s
  RunReport decode;        ///< the decode step's report
  double error() const { return (tokens_per_s - row.tokens_per_s) / row.tokens_per_s; }  ///< signed
};
DecodePrediction predict_gpt_fast(const ArchSpec& a, const Runtime& rt, const DecodeThroughput& row, MapCache* cache = nullptr);

/// How gpt-fast stores a row's weights: bf16 as is; int8 weight-only per output channel; int4
/// weight-only in groups of 32 (its README's quantize.py --groupsize 32).
Quantization gpt_fast_quantization(const DecodeThroughput& row);

/// The rows the quantized kernels' quality is fitted on: Llama-2-7B at TP 1, one per weight
/// type; every other int8/int4 row is held out.
bool gpt_fast_fit_row(const DecodeThroughput& row);

struct QuantizedFit {
  double efficiency = 1;  ///< of the weight-only GEMM kind
  double mape = 0;        ///< over the rows fitted
  int64_t rows = 0;
};

/// Fits the weight-only GEMM quality (gemm_w8a16 for "int8", gemm_w4a16 for "int4") of `base`
/// on the fit rows of that weight type: the grid 0.20..1.00 by 0.01, least absolute relative
/// error of tokens/s.
QuantizedFit fit_quantized_runtime(const ArchSpec& a, const Runtime& base, const std::vector<DecodeThroughput>& rows, const std::string& weights);

struct GraphRuntimeFit {
  double graph_node = 0;       ///< s per kernel
  double iteration = 0;        ///< s per step
  double collective_base = 0;  ///< scale of the links' fitted bases
  double mape = 0;             ///< over the rows fitted, at the fitted values
  int64_t rows = 0;
};

/// Fits a graph-replaying runtime's node cost, per-step host time and collective base scale on
/// the rows of `rows` einsim can run (bf16 weights), by least squares on relative decode-step
/// error: a step costs (compute without launches) + node x kernels + iteration + scale x
/// (the all-reduces' fitted bases). `base` supplies everything else.
GraphRuntimeFit fit_graph_runtime(const ArchSpec& a, const Runtime& base, const std::vector<DecodeThroughput>& rows);

}  // namespace einsim
