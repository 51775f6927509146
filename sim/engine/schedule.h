#pragma once
// The mapped schedule as the timing engine executes it: resources (memory tiers, on-chip
// levels, links, compute arrays) and, in program order, blocks run instance by instance and
// tile by tile. Every amount of work comes from the analytical cost model's result (the
// RunReport), so the engine and the analytical model price the same bytes and the same compute
// cycles; they differ only in how work overlaps and contends. No SystemC here.
#include <cstdint>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "sim/run/run.h"

namespace einsim {

enum class ResourceKind { Tier, Level, Link, Array, Dma };
std::string_view resource_kind_name(ResourceKind k);

/// Something with a bandwidth (or a compute rate) that work queues on.
struct Resource {
  std::string name;      ///< hierarchical: "system.gpu0.hbm"
  std::string short_name;  ///< as in the architecture config: "hbm"
  std::string device = "gpu0";  ///< the device it belongs to
  ResourceKind kind = ResourceKind::Tier;
  double read_bandwidth = 0, write_bandwidth = 0;  ///< B/s (achievable: the GPU memory efficiency applied)
  double latency = 0;    ///< s per transaction
};

/// One resource's share of one tile.
struct StageWork {
  int resource = -1;
  double read_bytes = 0, write_bytes = 0;  ///< memory and links
  double seconds = 0;                       ///< arrays: busy time from the cost model
};

/// A fused block of the schedule: `instances` sequential instances, each a launch, a
/// fill/drain and `tiles` tiles. Per tile, the loads (every storage level and link, in
/// parallel) and then the compute (every array, in parallel), double buffered: the loads of
/// tile i+1 run while tile i computes.
struct ScheduleBlock {
  std::string name;        ///< the Einsums it holds, for the trace ("QK..AV (7)")
  int64_t instances = 1;
  int64_t tiles = 1;       ///< per instance
  double launch = 0, fill = 0;  ///< s per instance
  std::vector<StageWork> loads;    ///< per tile
  std::vector<StageWork> compute;  ///< per tile
  double analytical = 0;   ///< s: the analytical model's time for the whole block
};

/// Work outside the block sequence, issued by its own DMA engine at `start` and competing for
/// the resources it crosses (a KV swap over PCIe, a stream of weights from flash).
struct BackgroundTransfer {
  std::string name;
  double start = 0;        ///< s after the step begins
  double bytes = 0;
  std::vector<int> path;   ///< resources crossed; each chunk occupies all of them, pipelined
  std::vector<char> writes;  ///< per path entry: the chunk is written there (else read)
  double chunk = 1 << 20;  ///< bytes per transaction
  /// B/s the first resource of the path gives this transfer's requests when below its
  /// bandwidth (a flash tier's read table at this request size and parallelism); 0: none.
  double rate = 0;
};

/// A further sequence of blocks with its own executor, running beside the main one (another
/// batch in flight) and competing for the same resources.
struct Stream {
  std::string name;
  std::vector<ScheduleBlock> blocks;
  double start = 0;  ///< s: when its first block may begin (staggering)
};

struct Schedule {
  std::vector<Resource> resources;
  std::vector<ScheduleBlock> blocks;
  std::vector<BackgroundTransfer> background;
  std::vector<Stream> streams;  ///< beside the main blocks
  int64_t steps = 1;            ///< the main blocks run this many times in a row (decode steps)
  double tail = 0;            ///< s after the last block (tensor-parallel all-reduces)
  int tail_resource = -1;     ///< the link the tail occupies
  double analytical = 0;      ///< s: the analytical step time
  /// Index of the part named `short_name` (of `device`, when given), or -1.
  int resource(const std::string& short_name, const std::string& device = "") const;
  /// Appends `other`'s resources (under its own device name, which must differ from every
  /// device here) and returns the offset added to its resource indices.
  int merge_resources(const Schedule& other);
};

struct ScheduleOptions {
  int64_t tiles = 64;       ///< tiles per block instance (the pipeline's depth)
  std::string device = "gpu0";
};

/// The schedule of a costed run on `a`.
Schedule build_schedule(const RunReport& r, const ArchSpec& a, const ScheduleOptions& o = {});

/// A slice of the timeline: `resource` busy with `name` over [start, end).
struct TraceEvent {
  int resource = -1;
  std::string name;
  double start = 0, end = 0;
};

/// What the engine reports.
struct EngineResult {
  double total = 0;                  ///< s: the step
  std::vector<double> block_time;    ///< s per schedule block (all instances)
  std::vector<double> busy;          ///< s per resource
  std::vector<double> background_done;  ///< s at which each background transfer finished
  std::vector<double> stream_done;      ///< s at which each extra stream finished
  std::vector<double> step_done;        ///< s at which each step of the main blocks finished
  int64_t transactions = 0;          ///< TLM transactions issued
  double quantum = 0;                ///< s: the temporal-decoupling quantum
  std::vector<TraceEvent> events;    ///< when asked for
};

/// Puts a simulated step into the run's report: block times, step, throughput and the idle
/// energy of the longer or shorter step; the analytical step is kept beside it.
void apply_engine(RunReport& r, const ArchSpec& a, const Schedule& s, const EngineResult& e, const std::string& engine);

/// Chrome-trace / Perfetto JSON: one track per resource, slices in microseconds.
std::string chrome_trace(const Schedule& s, const EngineResult& r);

}  // namespace einsim
