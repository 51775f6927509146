#pragma once
// `einsim analyze offload`: attention offloading (Lamina, Chen et al., arXiv 2405.01814;
// docs/REFERENCES.md). A compute pool holds the weights and runs every operator but attention; a
// memory pool holds the KV cache and runs attention; a network joins them. The decode step
// splits by einsim's mapped blocks: attention's (the Einsums that read the KV cache and the
// softmax around them) on the memory pool's architecture, the rest on the compute pool's.
// Staggered pipelining keeps n batches in flight over n-1 compute replicas, so the memory
// pool holds n batches' KV caches. Throughput per dollar against a homogeneous
// tensor-parallel deployment of the compute devices alone.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arch/runtime.h"
#include "common/toml_reader.h"
#include "arch/arch.h"
#include "sim/report/format.h"
#include "workloads/transformer.h"

namespace einsim {

struct OffloadScenario {
  /// The software its runs assume (--runtime; default: default_runtime(), an inference engine).
  std::shared_ptr<const Runtime> runtime;
  std::string model = "llama-3-70b";
  std::string compute = "h100", memory = "h20";  ///< architectures (preset or file)
  int64_t compute_devices = 4;  ///< tensor-parallel devices of one compute replica
  int64_t memory_devices = 8;   ///< devices of the memory pool
  int64_t replicas = 1;         ///< compute replicas: n - 1 for n batches in flight
  double alpha = 0.2;           ///< allowed slowdown from communication (BW_min)
  std::vector<int64_t> batches = {16, 64, 128, 256, 512};
  std::vector<int64_t> contexts = {4096, 16384};
  double activation_reserve = 0;  ///< bytes per device
  /// Matrix products no array runs at their type computed wider (`emulate = true`); else each
  /// such run is refused and its cell says why.
  bool emulate = false;
  SourceLoc loc;
};

OffloadScenario read_offload(const ConfigTable& scenario);
OffloadScenario load_offload(const std::string& file_or_name, const std::vector<std::string>& overrides = {});

struct OffloadRow {
  int64_t batch = 0, context = 0;
  bool fits = false;         ///< the KV caches of every batch in flight fit the memory pool
  double kv_bytes = 0;       ///< the memory pool's KV caches: replicas + 1 batches of B requests
  std::string note;
  double mtime = 0;          ///< s: non-attention part of one decode step, one compute replica
  double atime = 0;          ///< s: attention of one batch on the memory pool
  double net_bytes = 0;      ///< per step: q, k, v out and the attention output back, all layers
  /// s per step of one batch on the link: 2 L transfers (out and back per layer), each the
  /// link's point-to-point cost (its base and latency, then the bytes over the replica's
  /// and the pool's NICs, whichever are fewer)
  double net_time = 0;
  double net_latency = 0;    ///< s: of net_time, the transfers' bases and latencies
  double net_busy = 0;       ///< s the pools' aggregate link is busy with one batch's bytes
  double cycle = 0;          ///< s: one batch's step, MTIME + ATIME + net_time in turn
  double bw_min = 0;         ///< B/s: docs/REFERENCES.md formula at the scenario's alpha, all devices
  double bw_min_device = 0;  ///< B/s: the same per device of the side with fewer devices (the paper's unit)
  double link = 0;           ///< B/s: aggregate link between the pools
  double link_device = 0;    ///< B/s: one device's NIC (the smaller side's)
  std::string bottleneck;    ///< compute pool, memory pool or network
  double tokens_per_s = 0;   ///< offloaded, pipelined
  double cost_rate = 0;      ///< $/s of the offloaded deployment
  int64_t base_batch = 0;    ///< homogeneous: the batch that fits (at most `batch`)
  double base_tokens_per_s = 0, base_cost_rate = 0;
  std::string base_note;
  double advantage = 0;      ///< offloaded tokens per $ / homogeneous tokens per $
};

struct OffloadReport {
  OffloadScenario scenario;
  std::string model, compute, memory;
  double weights = 0, kv_per_token = 0;
  double compute_rate = 0, memory_rate = 0;  ///< $/s per device
  std::vector<OffloadRow> rows;              ///< contexts outer, batches inner
};

OffloadReport analyze_offload(const OffloadScenario& s);
std::string format_offload(const OffloadReport& r, Format f);
std::string plot_offload_svg(const OffloadReport& r);

}  // namespace einsim
