#pragma once
// `einsim analyze kv-compression`: KV-cache policies as transforms of the decode workload
// (docs/REFERENCES.md: Scissorhands and LazyEviction evict tokens, ThinK prunes key channels, KV
// quantization, sliding windows, BASED's fixed-size linear-attention state). For each policy,
// alone or combined: KV bytes per request, concurrency, attention FLOPs and bytes per step,
// and the decode step time, first-order and (where einsim's cascade expresses the policy)
// mapped. einsim models cost, not quality: the report says so.
#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/transformer.h"

namespace einsim {

/// One policy: any combination of the transforms below (absent: not applied).
struct KvPolicy {
  std::string name;
  std::optional<int64_t> evict_budget;  ///< keep at most this many tokens (Scissorhands)
  std::optional<double> evict_ratio;    ///< evict this fraction of the tokens (LazyEviction)
  std::optional<double> prune_keys;     ///< fraction of key channels pruned (ThinK)
  std::optional<int64_t> bits;          ///< KV element width (16, 8, 4, 2)
  int64_t group = 128;                  ///< elements per fp16 quantization scale
  std::optional<int64_t> window;        ///< sliding window of this many tokens
  std::optional<int64_t> feature_dim;   ///< BASED: linear attention with this feature dimension...
  int64_t linear_window = 64;           ///< ...plus exact attention over this many recent tokens
  /// BASED mixes its layers (the 1.3B reference config, HazyResearch/based
  /// train/configs/experiment/reference/based_1.3b_50b_tok.yaml): linear attention on 7 of 36
  /// layers, sliding-window attention on 7, gated convolutions (BaseConv, kernel 3) on the
  /// other 22. The shares of the model's layers of each kind (rounded to whole layers); the
  /// convolution layers keep (conv_kernel - 1) tokens of the hidden width.
  double linear_layers = 7.0 / 36, window_layers = 7.0 / 36;
  int64_t conv_kernel = 3;
  SourceLoc loc;
};

struct KvCompressionScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string model = "llama-3-8b", arch = "h100";
  int64_t devices = 1;
  int64_t context = 32768;
  int64_t batch = 16;              ///< decode batch for the step-time comparison
  double activation_reserve = 0;   ///< bytes per device
  std::vector<KvPolicy> policies;  ///< the baseline (no compression) is always first
  /// Matrix products no array runs at their type computed wider (`emulate = true`); else each
  /// such run is refused and its cell says why.
  bool emulate = false;
  SourceLoc loc;
};

KvCompressionScenario read_kv_compression(const ConfigTable& scenario);
KvCompressionScenario load_kv_compression(const std::string& file_or_name, const std::vector<std::string>& overrides = {});

struct KvResult {
  KvPolicy policy;
  double tokens_kept = 0;        ///< KV entries per request per layer and head
  double bytes_per_element_k = 0, bytes_per_element_v = 0;  ///< with quantization scales
  double key_channels = 0;       ///< kept per head
  double kv_per_request = 0;     ///< bytes: cache or state, all layers
  int64_t max_requests = 0;      ///< HBM capacity
  double attention_flops = 0;    ///< per decode step at the scenario's batch, all layers
  double attention_bytes = 0;    ///< KV (or state) read per step at that batch
  int64_t layers_linear = 0, layers_window = 0, layers_conv = 0;  ///< BASED's mix over the model's layers
  /// tokens/s at the largest batch that fits (max_requests), a roofline: max_requests / the
  /// larger of (weights + max_requests x the per-request bytes a step reads) / (N x HBM
  /// bandwidth) and (2 x active parameters + the attention FLOPs per request) x max_requests /
  /// (N x dense peak)
  double throughput_formula = 0;
  std::string throughput_bound;  ///< "HBM bandwidth" or "FLOPs"
  double step_formula = 0;       ///< s: (weights + attention bytes) / (N x HBM bandwidth)
  std::optional<double> step_mapped;  ///< s: einsim run on the transformed workload
  std::string mapped_note;       ///< why there is no mapped step, or what it leaves out
  std::string bound;             ///< of the mapped step (or the formula's)
};

struct KvCompressionReport {
  KvCompressionScenario scenario;
  std::string model, arch;
  double weights = 0, kv_free = 0;
  std::vector<KvResult> results;  ///< baseline first
};

KvCompressionReport analyze_kv_compression(const KvCompressionScenario& s);
std::string format_kv_compression(const KvCompressionReport& r, Format f);
std::string plot_kv_compression_svg(const KvCompressionReport& r);

}  // namespace einsim
