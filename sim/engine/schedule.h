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
  int layer_group = -1;    ///< the group of layers it repeats over (RunReport's); -1: outside the layers
  double energy = 0;       ///< J per instance: the dynamic energy of its operations and traffic
  /// Layered: s of all-reduce and of all-to-all each layer runs right after this block's
  /// instances (the attention's output projection, the MLP's last block).
  double allreduce_after = 0, alltoall_after = 0;
};

/// A model's step as its devices run it (ScheduleOptions::layered): layer by layer in model
/// order, each layer's blocks (their instances / the group's layers each) and then its
/// collectives; pipeline stages pass each micro-batch's activations on.
struct LayerPlan {
  std::vector<int> order;             ///< each built layer's group, in model order (empty: no plan)
  std::vector<int64_t> group_layers;  ///< layers per group
  int ranks = 1;                      ///< devices per stage simulated (tensor/expert-parallel group)
  int stages = 1;                     ///< pipeline stages, each on its own `ranks` devices
  int64_t microbatches = 1;
  std::vector<int64_t> stage_layers;  ///< layers per stage, in order
  std::vector<double> hops;           ///< s per micro-batch over each stage boundary
  std::vector<int> hop_resource;      ///< the sending device's link for each hop (device 0's index)
  int collective_resource = -1;       ///< the peer link the collectives occupy (device 0's index)
  int per_device = 0;                 ///< resources per device: device d's are at d x per_device
  double host = 0;                    ///< s of host time at the end of each step (the runtime's)
  double active_power = 0;            ///< W per device while it runs (for the trace's power tracks)
  int devices() const { return ranks * stages; }
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
  LayerPlan plan;             ///< when built layered: the main blocks run by it
  /// Index of the part named `short_name` (of `device`, when given), or -1.
  int resource(const std::string& short_name, const std::string& device = "") const;
  /// Appends `other`'s resources (under its own device name, which must differ from every
  /// device here) and returns the offset added to its resource indices.
  int merge_resources(const Schedule& other);
};

struct ScheduleOptions {
  int64_t tiles = 64;       ///< tiles per block instance (the pipeline's depth)
  std::string device = "gpu0";
  /// Run the step layer by layer with its collectives in place (a model's run; LayerPlan).
  /// Otherwise the blocks run one after another, all instances each, then the collectives.
  bool layered = false;
  /// With `layered`: simulate every device of the deployment (each tensor/expert-parallel
  /// rank with its own resources) rather than one per pipeline stage. The ranks run the same
  /// work, so the step is the same; the trace shows them all.
  bool every_rank = false;
};

/// The schedule of a costed run on `a`.
Schedule build_schedule(const RunReport& r, const ArchSpec& a, const ScheduleOptions& o = {});

/// A slice of the timeline: `resource` busy with `name` over [start, end).
struct TraceEvent {
  int resource = -1;
  std::string name;
  double start = 0, end = 0;
  double bytes = 0;  ///< moved (memories and links)
};

/// A span of a device's program (layered schedules): the step, a micro-batch, a layer, a
/// kernel (one block instance) or a collective, nested by `depth` (0 outermost).
struct TraceSpan {
  int device = 0;
  int depth = 0;
  std::string name, cat;
  double start = 0, end = 0;
  double power = 0;  ///< W the device draws over it (kernels); 0: not attributed
};

/// An arrow between two devices' spans: a collective's ring neighbour, a pipeline hop.
struct TraceFlow {
  std::string name;
  int from_device = 0, to_device = 0;
  double from = 0, to = 0;  ///< s: a moment inside each end's span
};

/// What the engine reports.
struct EngineResult {
  double total = 0;                  ///< s: the step
  std::vector<double> block_time;    ///< s per schedule block (all instances; a pipeline's: one micro-batch's)
  std::vector<double> stage_compute; ///< layered: s each stage's first device spends in blocks over the step
  std::vector<double> busy;          ///< s per resource
  std::vector<double> background_done;  ///< s at which each background transfer finished
  std::vector<double> stream_done;      ///< s at which each extra stream finished
  std::vector<double> step_done;        ///< s at which each step of the main blocks finished
  int64_t transactions = 0;          ///< TLM transactions issued
  double quantum = 0;                ///< s: the temporal-decoupling quantum
  std::vector<TraceEvent> events;    ///< when asked for
  std::vector<TraceSpan> spans;      ///< when asked for (layered schedules)
  std::vector<TraceFlow> flows;      ///< when asked for (layered schedules)
};

/// Puts a simulated step into the run's report: block times, step, throughput and the idle
/// energy of the longer or shorter step; the analytical step is kept beside it.
void apply_engine(RunReport& r, const ArchSpec& a, const Schedule& s, const EngineResult& e, const std::string& engine);

struct TraceOptions {
  bool tiles = true;      ///< each resource's transactions as slices (tile by tile)
  int counter_bins = 400; ///< samples of the bandwidth counters over the step
};

/// Chrome-trace / Perfetto JSON, times in microseconds: a process per device; on its first
/// track the program's spans nested (step, micro-batch, layer, kernel, collective); a track
/// per resource with its transactions (TraceOptions::tiles); counter tracks of each memory's
/// and link's bandwidth and of the device's power; flow arrows between devices.
std::string chrome_trace(const Schedule& s, const EngineResult& r, const TraceOptions& o = {});

}  // namespace einsim
