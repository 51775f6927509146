#pragma once
// `einsim analyze long-context`: what serving long contexts costs on a given deployment
// (Fu 2024, arXiv 2405.08944; docs/REFERENCES.md). Every figure twice: the paper's first-order
// formula (prefill bound by FLOPs, decode by HBM bandwidth, concurrency by HBM capacity,
// context switching by PCIe bandwidth) and einsim's mapped prediction (`run_model`: the
// model's cascade mapped onto the architecture), each with the resource that bounds it.
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

struct LongContextScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string model = "yi-34b-200k";  ///< preset name or file
  std::string arch = "a100";          ///< preset name or file
  std::optional<DType> dtype;         ///< weights and KV cache (default: the model's)
  std::optional<DType> kv_dtype;      ///< the KV cache's, when quantized apart from the weights
  std::vector<int64_t> devices = {1, 2, 4, 8};
  std::vector<int64_t> contexts;      ///< tokens per request
  int64_t output_tokens = 1000;       ///< n: tokens generated per request
  double activation_reserve = 0;      ///< bytes per device kept free of weights and KV
  bool communication = false;         ///< tensor-parallel all-reduces cost time (Fu 2024: no)
  /// "einsim" (default): sizes in bytes as the datasheets give them (an A100's 80 GB is 74.5
  /// GiB), prefill FLOPs as einsim counts them. "fu2024": the paper's reading: the datasheet's
  /// GB taken as GiB (80 GB is 80 GiB, 85.9e9 bytes) for HBM, and the formula's prefill its
  /// FLOP convention (2 x parameters x tokens plus half the dense QK and AV).
  std::string convention = "einsim";
  /// Matrix products no array runs at their type computed wider (`emulate = true`); else each
  /// such run is refused and its cell says why.
  bool emulate = false;
  SourceLoc loc;
};

/// Reads `[scenario]` with kind = "long-context" (does not call finish()).
LongContextScenario read_long_context(const ConfigTable& scenario);

/// A figure and what bounds it ("FLOPs", "HBM bandwidth", "HBM capacity", "PCIe bandwidth",
/// ...). `value` is in SI units (s, bytes, requests); `note` says why there is no value.
struct LcFigure {
  double value = 0;
  std::string bound;
  std::string note;
  bool ok() const { return note.empty(); }
};

struct LcRow {
  int64_t context = 0, devices = 0;
  double kv_per_request = 0;  ///< bytes
  double kv_free = 0;         ///< bytes of HBM left for KV, all devices
  int64_t max_requests = 0;   ///< concurrency at this context (HBM capacity)
  /// One request's prompt of `context` tokens. Formula: einsim's FLOP convention (2 per active
  /// parameter per token, QK and AV over the (query tile, key block) pairs causal attention
  /// computes: causal_attention_work()); `prefill_fu`: Fu 2024's (2 x parameters x tokens plus
  /// exactly half of the dense QK and AV).
  LcFigure prefill_formula, prefill_fu, prefill_mapped;
  int64_t decode_batch = 0;                  ///< the decode batch: max_requests
  LcFigure decode_formula, decode_mapped;    ///< one decode step at that batch
  LcFigure generate_formula, generate_mapped;  ///< `output_tokens` steps
  LcFigure switch_formula, switch_mapped;    ///< swap one request's KV out and another's in
  /// End-to-end session throughput, tokens/s: the four metrics together. The device group serves
  /// sessions in rounds of max_requests users: each user's prompt prefilled in turn, then
  /// `output_tokens` decode steps of the whole batch, then each user's KV swapped out and the
  /// next user's in (a context switch per user); tokens/s = users x output_tokens / round.
  LcFigure session_formula, session_mapped;
};

struct LongContextReport {
  LongContextScenario scenario;
  std::string model, arch, dtype, host_link, hbm_tier;
  double weights = 0;       ///< bytes, the whole model
  double kv_per_token = 0;  ///< bytes, all layers
  double peak_flops = 0, hbm_bandwidth = 0, hbm_capacity = 0, host_bandwidth = 0;  ///< one device (capacity as the convention counts it)
  std::vector<LcRow> rows;  ///< contexts outer, devices inner
};

LongContextReport analyze_long_context(const LongContextScenario& s);
/// Loads a scenario file (with `--set scenario.KEY=VALUE` overrides) whose kind is
/// "long-context"; a shipped name ("long-context") is looked up in configs/analyses.
LongContextScenario load_long_context(const std::string& file_or_name, const std::vector<std::string>& overrides = {});
std::string format_long_context(const LongContextReport& r, Format f);
/// Two panels: decode step time and concurrency against context, one series per device count
/// (first-order dashed, mapped solid).
std::string plot_long_context_svg(const LongContextReport& r);

}  // namespace einsim
