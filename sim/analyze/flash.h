#pragma once
// `einsim analyze flash`: weights on a flash tier, a DRAM budget (LLM in a flash, Alizadeh et
// al., arXiv 2312.11514; docs/REFERENCES.md). Per generated token: flash I/O (bytes / the tier's
// read bandwidth at that request size and parallelism, from the arch's read table; plus the
// host link when the flash sits behind one), DRAM memory management (bytes copied at DRAM
// bandwidth) and compute (einsim's mapped decode step on the host, with only the active FFN
// neurons and the sparsity predictor when they are used), added up as the paper adds them.
// The paper's ablation: naive loading, hybrid (attention and embeddings resident), +sparsity
// predictor, +windowing, +row-column bundling, +preallocated memory management. Then the
// largest of a list of models that runs at a token rate within each of a list of DRAM sizes.
#include <cstdint>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/transformer.h"

namespace einsim {

/// Activation statistics of the FFN neurons, which einsim cannot derive (they are data).
/// Defaults: OPT-6.7B, arXiv 2312.11514 Sec. 4.1.
/// When the window's statistics are not given they follow from `active` as if neurons fired
/// independently from token to token: new = a (1 - a)^k, held = 1 - (1 - a)^k. Real
/// activations recur, so this over-estimates both (OPT-6.7B at k = 5: 5.9% and 41% against
/// the measured 2.4% and 24%).
struct FlashSparsity {
  double active = 0.10;        ///< fraction of FFN neurons the predictor marks active per token
  int64_t window = 5;          ///< k: tokens whose active neurons stay in DRAM
  std::optional<double> window_new = 0.024;   ///< fraction of FFN neurons loaded per token with the window
  std::optional<double> window_union = 0.24;  ///< fraction of FFN neurons the window keeps in DRAM
  int64_t predictor_rank = 128;  ///< 1.25% of OPT-6.7B's parameters (Sec. 4.1)
  /// The predictor's quality: of the truly active neurons it marks `recall`; of those it marks,
  /// `precision` are truly active. With both 1 (the default, and what a table of the predictor's
  /// own marks means) `active` is what it loads; otherwise it loads active x recall / precision
  /// of the neurons, the window's statistics scale with it, and it misses active x (1 - recall)
  /// (a quality cost the report states; einsim does not model accuracy).
  double recall = 1, precision = 1;
  double loaded() const { return active * recall / precision; }
  /// `active` derived from `window_union` (a table that gives the window's hold but not the
  /// active share, as Falcon-7B's Sec. 4.2 does), through the independence model.
  bool active_derived = false;
  /// The window's statistics: as given, or from the independence model.
    double new_fraction() const;
  double union_fraction() const;
  /// The window's statistics of what the predictor loads (scaled by recall / precision).
  double loaded_new() const { return std::min(loaded(), new_fraction() * recall / precision); }
  double loaded_union() const { return std::min(1.0, union_fraction() * recall / precision); }
  bool measured() const { return window_new && window_union; }
  /// What the statistics rest on, for the report.
  std::string source = "OPT-6.7B's, arXiv 2312.11514 Sec. 4.1";
};

struct FlashScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::vector<std::string> models = {"opt-6.7b", "falcon-7b"};
  std::vector<std::string> hosts = {"laptop-m1max", "h200-host"};  ///< archs with a flash or SSD tier
  std::optional<DType> dtype;   ///< weights (default: each model's)
  double dram_fraction = 0.55;  ///< DRAM budget as a fraction of the model's weights, or:
  double dram_bytes = 0;        ///< DRAM budget in bytes (when > 0)
  int64_t context = 512;        ///< tokens in the KV cache at the step
  int64_t threads = 32;         ///< parallel reads (queue depth)
  double sequential_request = double(1ull << 30);  ///< bytes per read when streaming whole matrices
  FlashSparsity sparsity;
  /// Per model (its name as `models` gives it): statistics that replace `sparsity` for it
  /// (`[scenario.sparsity.MODEL]`); the shipped scenario gives Falcon-7B's from Sec. 4.2.
  std::map<std::string, FlashSparsity> model_sparsity;
  /// DRAM budgets to sweep (`[scenario.budget] dram`): bytes, or (negative) shares of the
  /// model's weights.
  std::vector<double> budget_sweep;
  int64_t max_window = 64;  ///< the largest window the sweep considers
  /// The paper's hybrid baseline keeps this share of the weights in DRAM and reads the rest
  /// from flash every token (half the model).
  double hybrid_share = 0.5;
  /// The statistics that apply to `model`.
  const FlashSparsity& sparsity_of(const std::string& model) const {
    auto it = model_sparsity.find(model);
    return it == model_sparsity.end() ? sparsity : it->second;
  }
  // The largest model at a token rate within each DRAM size (all techniques).
  double rate = 2;              ///< tokens/s
  std::vector<double> dram_sizes;  ///< bytes
  std::vector<std::string> candidates;
  /// Matrix products no array runs at their type computed wider (`emulate = true`); else each
  /// such run is refused and its cell says why.
  bool emulate = false;
  SourceLoc loc;
};

FlashScenario read_flash(const ConfigTable& scenario);
FlashScenario load_flash(const std::string& file_or_name, const std::vector<std::string>& overrides = {});

/// One rung of the ablation for one model on one host.
struct FlashStep {
  std::string name;            ///< naive, hybrid, +predictor, ...
  double flash_bytes = 0;      ///< read from flash per token
  double request = 0;          ///< bytes per read
  double reads = 0;            ///< reads per token
  double throughput = 0;       ///< B/s the tier gives at that request size and parallelism
  double io = 0;               ///< s: max(flash, link)
  std::string io_bound;        ///< "flash (N KiB reads)" or the link
  double mgmt_bytes = 0;       ///< copied within DRAM per token (read + write)
  double mgmt = 0;             ///< s
  double compute = 0;          ///< s: einsim's mapped decode step
  std::string compute_bound;   ///< the step's bottleneck
  double total = 0;            ///< s per token
  double dram_needed = 0;      ///< bytes resident: weights kept, predictor, FFN cache, KV cache
  bool fits = true;            ///< dram_needed within the budget
  std::string note;
};

/// One DRAM budget of the sweep (`[scenario.budget]`), all techniques: the largest window
/// that fits (its statistics scaled from the given or derived ones by the independence model's
/// shape) and, with DRAM left over at the largest window, a share of the remaining FFN pinned.
struct FlashBudgetPoint {
  double dram = 0;         ///< bytes
  bool fits = false;       ///< a window of one token fits
  int64_t window = 0;      ///< k chosen
  double pinned = 0;       ///< share of the FFN pinned beyond the window
  double flash_bytes = 0;  ///< per token
  double dram_used = 0;
  double latency = 0;      ///< s per token
};

struct FlashCase {
  std::string model, host, flash_tier;
  int64_t predictor_rank = 0;  ///< of the statistics that apply to it
  std::string dtype;
  double params = 0;
  double weights = 0, ffn = 0, embeddings = 0, attention = 0, predictor = 0, kv = 0;  ///< bytes
  double dram_budget = 0;
  double neuron_bytes = 0;     ///< one neuron: its up (and gate) column and down row
  int64_t neurons = 0;         ///< FFN neurons, all layers
  int64_t active = 0;          ///< active neurons per layer computed with the predictor
  std::vector<FlashBudgetPoint> budget;  ///< the DRAM budget sweep, when the scenario asks
  std::vector<FlashStep> steps;
};

struct FlashLargest {
  std::string host;
  double dram = 0;
  struct Candidate {
    std::string model;
    double params = 0, dram_needed = 0, latency = 0;
    bool fits = false, meets_rate = false;
    std::string note;
  };
  std::vector<Candidate> candidates;
  std::string largest;         ///< "" when none qualifies
};

struct FlashReport {
  FlashScenario scenario;
  std::vector<FlashCase> cases;       ///< hosts outer, models inner
  std::vector<FlashLargest> largest;  ///< hosts outer, DRAM sizes inner
  std::vector<std::string> notes;
};

FlashReport analyze_flash(const FlashScenario& s);
std::string format_flash(const FlashReport& r, Format f);
std::string plot_flash_svg(const FlashReport& r);

}  // namespace einsim
