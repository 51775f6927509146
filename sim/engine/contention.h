#pragma once
// `einsim simulate SCENARIO`: contention scenarios on the SystemC engine (configs/scenarios/).
// Each builds a baseline and a contended schedule from einsim's mapped runs, simulates both in
// one elaboration, and sets the engine's figures beside a hand calculation of the same effect:
//   kv-host         a share of the KV cache in host memory, streamed over PCIe while the HBM
//                   share is read (long-context decode);
//   context-switch  one request's KV swapped out and another's in over PCIe while a batch
//                   decodes (Fu 2024's context switch);
//   flash-stream    the new FFN neurons of each token streamed from flash while the token
//                   computes (LLM in a flash, all techniques);
//   offload         attention offloading: a compute pool and a memory pool joined by a
//                   network link, one batch and n batches in flight (Lamina).
#include <memory>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/transformer.h"
#include "sim/engine/systemc_engine.h"

namespace einsim {

struct ContentionScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string kind;  ///< kv-host, context-switch, flash-stream, offload
  std::string model = "llama-3-8b";
  std::string arch = "h100";        ///< kv-host, context-switch; flash-stream: the host
  std::string link = "pcie";        ///< the link that carries the transfers
  int64_t batch = 1, context = 4096;
  double host_fraction = 0.25;      ///< kv-host: share of the KV cache in host memory
  int64_t swap_context = 32768;     ///< context-switch: tokens of each swapped request
  int64_t steps = 10;               ///< context-switch: decode steps simulated
  std::string compute = "h100", memory = "h20";  ///< offload
  int64_t compute_devices = 4, memory_devices = 8, batches = 2;  ///< offload: batches in flight
  int64_t tiles = 16;               ///< per block instance
  std::string flash_scenario = "flash";  ///< flash-stream: the analysis scenario it takes statistics from
  SourceLoc loc;
};

ContentionScenario read_contention(const ConfigTable& scenario);
ContentionScenario load_contention(const std::string& file_or_name, const std::vector<std::string>& overrides = {});

/// One figure: the engine's value and the hand calculation's (same unit).
struct ContentionFigure {
  std::string name, unit;
  double engine = 0, hand = 0;
  std::string how;  ///< the hand calculation in words
};

struct ContentionReport {
  ContentionScenario scenario;
  std::string title;
  std::vector<ContentionFigure> figures;
  std::string effect;  ///< the effect in one sentence, from the engine's figures
  int64_t transactions = 0;
};

/// Builds, simulates (one SystemC elaboration for all) and reports every scenario.
std::vector<ContentionReport> simulate_contention(const std::vector<ContentionScenario>& scenarios, const EngineOptions& o = {},
                                                  std::vector<std::string>* traces = nullptr);
std::string format_contention(const ContentionReport& r, Format f);

}  // namespace einsim
