#pragma once
// Readers for published GPU kernel measurements (data/published/), the
// ground truth for calibrating and checking the GPU model. Malformed rows are located errors.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace einsim {

// The CSV primitives every reader here (and validate/gpt_fast.cpp) shares: fields keep their
// column, numbers are checked, errors are located.
/// The lines of `file`, carriage returns stripped.
std::vector<std::string> lines_of(const std::string& file);
/// One field of a line and the column it starts at (1-based), surrounding blanks trimmed.
struct Field {
  std::string text;
  int col = 1;
};
std::vector<Field> split(const std::string& line, char sep);
/// A finite non-negative number, optionally followed by `unit` (stripped).
double number(const Field& f, const SourceLoc& line, std::string_view unit = "");
/// The largest integer a measurement field may hold: 2^30 (about 1.07e9; the largest in the
/// published sets is the GELU file's 2^29 elements). Products of two such fields, and sums of
/// a few of them, stay well inside 64-bit integers.
inline constexpr int64_t kMaxMeasuredInteger = int64_t{1} << 30;
/// A positive integer no larger than `max`.
int64_t integer(const Field& f, const SourceLoc& line, int64_t max = kMaxMeasuredInteger);

/// One GEMM C[M,N] = A[M,K] B[K,N] and its measured latency.
struct GemmMeasurement {
  int64_t m = 0, n = 0, k = 0;
  double seconds = 0;
  double flops_per_s = 0;  ///< as reported
  SourceLoc loc;
};

/// LLMCompass `matmul_A100.csv`: "M, N, K, 0.1900ms, 101.7124Tflops" per line, no header.
std::vector<GemmMeasurement> read_llmcompass_matmul(const std::string& file);

/// A row-wise kernel over an M x N matrix (softmax, layer norm) or M elements (GELU, N = 1).
struct ElementwiseMeasurement {
  int64_t m = 0, n = 1;
  double elements_per_s = 0;
  SourceLoc loc;
  double seconds() const { return static_cast<double>(m) * static_cast<double>(n) / elements_per_s; }
};

/// LLMCompass softmax/layernorm ("M, N, Gelem/s") and gelu ("M, Gelem/s") files.
std::vector<ElementwiseMeasurement> read_llmcompass_elementwise(const std::string& file);

/// One operator of the LLMCompass GPT-3 layer measurement.
struct LayerOpMeasurement {
  std::string op;  ///< qkv, qk, av, out_proj, ffn1, ffn2, softmax, layernorm1, layernorm2, gelu, allreduce1, allreduce2
  double seconds = 0;
  SourceLoc loc;
};

/// LLMCompass `transformer_A100.csv` / `transformerAR_A100.csv`: twelve latencies in seconds,
/// one per line, in the order of the `op` names above (data/README.md).
std::vector<LayerOpMeasurement> read_llmcompass_layer(const std::string& file);

/// One Vidur profiling row: per-operator median times for one token count and TP degree.
struct VidurRow {
  std::map<std::string, double> median_seconds;  ///< by operator (attn_pre_proj, mlp_up_proj, ...)
  int64_t n_head = 0, n_kv_head = 0, n_embd = 0, n_expanded_embd = 0, vocab_size = 0;
  bool gated_mlp = false;
  int64_t num_tokens = 0, tensor_parallel = 1;
  SourceLoc loc;
};

/// Vidur `data/profiling/compute/a100/.../mlp.csv` files (header with time_stats.<op>.median).
std::vector<VidurRow> read_vidur_mlp(const std::string& file);

/// One NCCL collective of Vidur's network profiles (data/published/vidur-network): `bytes`
/// moved per device buffer (Vidur's `size` column holds bytes: fp16 buffers of size/2 elements),
/// `workers` GPUs, `devices_per_node` of them in one node, the median of the NCCL kernel's
/// duration (Kineto).
struct CollectiveMeasurement {
  std::string collective;  ///< all_reduce, send_recv, all_gather, reduce_scatter, all_to_all
  int64_t workers = 0, devices_per_node = 0;
  double bytes = 0;
  double seconds = 0;
  SourceLoc loc;
};

/// Vidur `all_reduce.csv` / `send_recv.csv` network files (header with
/// time_stats.<collective>.median, num_workers, size, collective, devices_per_node).
std::vector<CollectiveMeasurement> read_vidur_network(const std::string& file);

/// One kernel measurement in einsim's own CSV (validate/kbench and validate/gpu/torch_bench.py):
/// `kind` (gemm, attention, memory, rowwise, pcie), `op`, `dtype`, the shape (`m n k` for a
/// GEMM Z[m,n] = A[m,k] B[k,n]; `batch heads seq kv` and head size `k` for attention; `m`
/// elements for memory and PCIe; `m` rows of `n` for row-wise kernels), bytes and FLOPs as the
/// harness counts them, and the median time.
struct KernelMeasurement {
  std::string kind, op, dtype;
  int64_t m = 0, n = 0, k = 0, batch = 0, heads = 0, seq = 0, kv = 0;
  double bytes = 0, flops = 0;
  double seconds = 0;  ///< median
  double power = -1;   ///< W the GPU drew while it ran back to back (column power_w); < 0: not measured
  SourceLoc loc;
};

/// einsim's kernel CSV: optional leading `#` comment lines, a header naming at least kind, op,
/// dtype, m, n, k, batch, heads, seq, kv, bytes, flops and median_s, optionally power_w (W while
/// the kernel ran back to back; empty or nan: not sampled); other columns (clock samples) are
/// read past. Then one row per measurement.
std::vector<KernelMeasurement> read_kernel_csv(const std::string& file);

}  // namespace einsim
