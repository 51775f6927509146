#pragma once
// Whole-cascade evaluation: fuses Einsums into blocks, maps every Einsum with the mapper and
// adds the blocks up into a step time, energy, traffic per tier and memory per tier. This is
// what `einsim run` prints.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "arch/collective.h"
#include "arch/runtime.h"
#include "sim/cost/mapper.h"
#include "workloads/transformer.h"

namespace einsim {

/// Which consecutive Einsums run as one fused block (one kernel on a GPU).
enum class Fusion {
  None,     ///< every Einsum is its own block; every tensor round-trips the tier
  Eager,    ///< PyTorch eager: each matrix product its own kernel (with its bias add), softmax and norms one kernel each
  Kernels,  ///< as inference engines issue GPU kernels: one GEMM (a contraction with a weight) per block, with its prologue/epilogue
  Greedy,   ///< as long as the intermediates fit (FuseMax-style accelerators)
};
std::string_view fusion_name(Fusion f);
std::optional<Fusion> parse_fusion(std::string_view s);

/// One Einsum of a costed cascade.
struct EinsumRun {
  int einsum = -1;
  std::string name;       ///< the tensor it writes
  std::string component;  ///< model component (attention, mlp, ...), or "" outside models
  int block = -1;         ///< index into RunReport::blocks
  double repeats = 1;     ///< sequential instances (layers x iterations of enclosing loops)
  double flops = 0;       ///< all instances
  double compute = 0;     ///< s the array is busy, all instances
  std::vector<LevelTraffic> traffic;  ///< all instances, tier first; `busy` in s
  double energy = 0;      ///< J, all instances (dynamic)
  double compute_energy = 0;  ///< J of `energy` in the array's operations
  double utilization = 0; ///< ideal compute / time it would take alone
  double time_alone = 0;  ///< s it would take as a block of its own (all instances)
  std::string bottleneck; ///< of one instance
  std::string mapping;    ///< in words
  std::string array;      ///< the compute array it runs on
  int64_t mappings_evaluated = 0;
};

/// A fused block: Einsums whose intermediates stay on chip.
struct BlockRun {
  std::vector<int> einsums;           ///< indices into RunReport::einsums, in schedule order
  std::vector<std::string> resident;  ///< intermediates kept on chip
  std::vector<std::string> shared;    ///< inputs several members read, loaded from the tier once
  double repeats = 1;                 ///< sequential instances (launches on a GPU)
  double time = 0;                    ///< s, all instances
  double compute = 0;                 ///< s the busiest array works
  double overhead = 0;                ///< s of fill/drain and launch, all instances
  double fill = 0;                    ///< s of fill/drain per instance
  double launch = 0;                  ///< s of kernel launch per instance
  double energy = 0;
  double flops = 0;
  double utilization = 0;             ///< the members' peak compute time over the block's time
  int layer_group = -1;               ///< the group of layers (ModelConfig::layer_groups()) it repeats over; -1: outside the layers
  KernelKind kind = KernelKind::Gemm; ///< kernel_kind(): whose quality the runtime sets
  std::vector<LevelTraffic> traffic;  ///< tier first
  std::string bottleneck;
};

/// The memory-fit model `run`, `serve`, the analyses and the sweeps share: `devices` devices,
/// each with a tier of `capacity` bytes that holds its share of the weights (as stored:
/// ParamCounts::total_bytes, quantization scales included), a reserve (activations, workspace)
/// and the KV cache.
struct MemoryFit {
  double devices = 1;
  double capacity = 0;  ///< bytes per device
  double weights = 0;   ///< bytes over all devices
  double reserve = 0;   ///< bytes per device
  /// Bytes of KV cache the devices hold beside the weights and reserves (0 when the weights
  /// alone do not fit).
  double kv_room() const { return std::max(0.0, devices * (capacity - reserve) - weights); }
  /// Whether `kv` bytes of cache fit beside the weights.
  bool holds(double kv = 0) const { return weights + kv <= devices * (capacity - reserve); }
};

/// One device's memory in a run.
struct TierMemory {
  std::string tier;
  double capacity = 0;
  double weights = 0;
  double kv_cache = 0;
  double activations = 0;
  int64_t stage = -1;  ///< with pipeline stages: the stage whose device this is (the one holding the most)
  double total() const { return weights + kv_cache + activations; }
  /// The fit of this device: its weights, its activations as the reserve.
  MemoryFit fit() const { return MemoryFit{1, capacity, weights, activations}; }
};

/// A share of the weights or the KV cache held on another tier of the architecture (host
/// memory, a CXL expander, an SSD: arch/arch.h tier_path()) and streamed to the device every step.
enum class Offloaded { Weights, KvCache };
struct TierPlacement {
  Offloaded what = Offloaded::Weights;
  std::string tier;
  double fraction = 1;  ///< of this device's share, (0, 1]
  SourceLoc loc;        ///< the flag that asked for it (errors point there)
};

/// One placement as run: bytes per device per step over its path.
struct OffloadRun {
  std::string tier, what, links;  ///< what: "weights" or "KV cache"; links: the path, tier side first
  double fraction = 0;
  double read_bytes = 0, write_bytes = 0;  ///< per device per step
  double bandwidth = 0;                    ///< B/s: the path's read bandwidth for this device
  double time = 0;                         ///< s per step to stream them
};

struct RunOptions {
  Phase phase;
  /// Shares placed on other tiers (`--weights-tier`, `--kv-tier`): streamed from there layer by
  /// layer ahead of use; the step takes the longer of its work and the streams, plus one
  /// layer's share of the streams (the first layer's, which nothing hides). Not with pp > 1.
  std::vector<TierPlacement> offload;
  int64_t tp = 1;                ///< tensor-parallel devices
  /// Expert-parallel devices (a multiple of tp): the experts split over them, attention
  /// tensor-parallel over tp and data-parallel over ep / tp groups of the batch, tokens
  /// dispatched to their experts' devices and combined back by all-to-alls. 1: none.
  int64_t ep = 1;
  /// Pipeline stages: the layers split into pp contiguous runs (the first L % pp stages one
  /// layer more), each on its own max(tp, ep) devices; the batch goes through in
  /// `microbatches` micro-batches (0: the largest divisor of the batch not above pp). 1: none.
  int64_t pp = 1;
  int64_t microbatches = 0;
  std::optional<DType> dtype;    ///< weights, activations and KV cache (default: the model's)
  std::optional<Fusion> fusion;  ///< default: Kernels on GPUs, Greedy elsewhere
  MapperOptions mapper;
  /// Refuse a deployment that does not fit the first tier (off: an analysis that places the
  /// weights and the KV cache on different devices checks its own memory).
  bool check_memory = true;
  /// Matrix products no array runs at their operands' type are computed at a wider one and
  /// reported (RunReport::emulated); false: such a run is a located error (`run` without
  /// --emulate).
  bool emulate = true;
  /// Where a refused emulation is reported: the switch that allows it (`--emulate`, a
  /// scenario's `emulate = true`) and where the type came from when `dtype` set it.
  std::string emulate_switch = "--emulate";
  SourceLoc dtype_loc{"--dtype"};
  /// Map every Einsum on this architecture and cost the chosen mappings on the run's (the same
  /// kernels at another clock: `at_clock` of it); nullptr: map on the run's architecture.
  const ArchSpec* mapping_arch = nullptr;
  /// The software (arch/runtime.h); nullptr: default_runtime(), an inference engine.
  const Runtime* runtime = nullptr;
  /// Whole models map dozens of Einsums per design point: a smaller tile budget than a lone
  /// Einsum gets (docs/ARCHITECTURE.md measures what it gives up: about 0.1% of step time).
  RunOptions() { mapper.max_tiles = 128; }
};

struct RunReport {
  std::string model, arch;
  Phase phase;
  int64_t tp = 1;
  DType dtype = DType::BF16;
  std::string quantization = "none";  ///< how the linear layers are stored (workloads/quantization.h)
  /// Matrix products computed at a wider type than their operands' because no array runs it
  /// (fp8 on an A100, int4 on an H100), one sentence per kind.
  std::vector<std::string> emulated;
  std::vector<OffloadRun> offloads;  ///< RunOptions::offload, as run
  double offload_time = 0;           ///< s per step streaming the offloaded shares
  double offload_stall = 0;          ///< s the streams add to the step
  Fusion fusion = Fusion::Kernels;
  std::vector<EinsumRun> einsums;
  std::vector<BlockRun> blocks;
  int64_t layers = 0;
  double layer_time = 0;       ///< s of one layer's blocks
  double compute_time = 0;     ///< s: all blocks on one device
  double allreduce_time = 0;   ///< s: tensor-parallel all-reduces (not overlapped)
  double allreduce_bytes = 0;  ///< B each device sends, over every link
  double allreduce_network_bytes = 0;  ///< of them, over the scale-out network (tp spans domains)
  int64_t allreduce_domains = 1;  ///< scale-up domains the tensor-parallel group spans
  std::string allreduce_link;  ///< "nvlink", or "nvlink + nic" across domains
  std::string allreduce_algo;  ///< the algorithm the collective model chose (ring, tree, sharp)
  double allreduces = 0;       ///< all-reduces per step
  int64_t ep = 1;              ///< expert-parallel devices (RunOptions::ep)
  double expert_imbalance = 1;  ///< the busiest device's (token, expert) pairs over the mean (skewed routing)
  double alltoall_time = 0;    ///< s: expert parallelism's dispatch and combine (not overlapped)
  double alltoall_bytes = 0;   ///< B each device sends, over every link
  double alltoall_network_bytes = 0;  ///< of them, over the scale-out network (ep spans domains)
  std::string alltoall_link;   ///< "nvlink", or "nvlink + nic" across domains
  double alltoalls = 0;        ///< all-to-alls per step
  /// Pipeline parallelism (RunOptions::pp); with pp > 1 the per-device figures above
  /// (compute_time, the collectives) are the slowest stage's over the step's micro-batches.
  int64_t pp = 1;
  int64_t microbatches = 1;
  struct Stage {
    int64_t first_layer = 0, layers = 0;
    double time = 0;  ///< s per micro-batch: its blocks and collectives
  };
  std::vector<Stage> stages;
  double pipeline_time = 0;        ///< s: the first micro-batch through every stage and hop, then one slowest interval per later one
  double pipeline_send_time = 0;   ///< s: one micro-batch's activations over every stage boundary
  double pipeline_send_bytes = 0;  ///< B each sending device sends per step
  std::string pipeline_link;       ///< the link the activations cross ("nvlink", "nic")
  double bubble = 0;               ///< the share of device time idle in the pipeline's fill and drain
  /// s between steps run back to back, the next step's micro-batches filling the bubble (as
  /// engines keep pp batches in flight): max(M x the slowest stage or hop, one micro-batch's
  /// way through every stage and hop).
  double pipeline_interval = 0;
  std::vector<int64_t> group_layers;  ///< layers per group (ModelConfig::layer_groups()), as built
  /// What the timing engine needs to run the step layer by layer (filled by run_model for a
  /// model; empty for a bare cascade): each built layer's group in model order, each group's
  /// all-reduces per layer and whether its layers route to experts, the collectives' time
  /// each (before a pipeline's per-stage scaling), and each stage boundary's hop.
  std::vector<int> layer_order;
  std::vector<double> group_sublayers;
  std::vector<char> group_moe;
  double allreduce_each = 0;   ///< s: one all-reduce of one sublayer's output
  double alltoall_each = 0;    ///< s: one MoE layer's dispatch and combine
  std::vector<double> pipeline_hops;            ///< s per micro-batch, per stage boundary
  std::vector<std::string> pipeline_hop_links;  ///< the link each hop crosses
  int64_t devices() const { return std::max(tp, ep) * pp; }
  std::string runtime;         ///< the runtime's name
  double host_time = 0;        ///< s: the runtime's host time per step (not overlapped)
  double step_time = 0;        ///< s: compute_time + allreduce_time + alltoall_time + host_time (pp > 1: pipeline_time + host_time)
  double tokens = 0;           ///< tokens produced (decode) or processed (prefill) per step
  double tokens_per_s = 0;
  double energy = 0;           ///< J per step, all devices: dynamic + idle power over the step
  double energy_per_token = 0;
  /// Dynamic energy of one device per step, J: the arrays' operations (which scale with the
  /// clock's voltage) and data movement (memory, levels, the all-reduce's link bytes).
  double compute_energy = 0, memory_energy = 0;
  double power = 0;            ///< W per device averaged over the step: idle + dynamic energy / step time
  double clock = 0;            ///< Hz: the clock the arrays ran at (time-weighted under a power cap); 0: nominal
  bool throttled = false;      ///< the clock was lowered to keep within the power limit
  bool over_limit = false;     ///< even the lowest clock exceeds the power limit
  double flops = 0;            ///< per device
  std::vector<TierMemory> memory;  ///< per device
  int64_t mappings_evaluated = 0;
  int64_t cache_hits = 0;
  /// Which engine timed the blocks: "analytical", or "systemc" (then the block times and the
  /// step are the simulated ones, and these say how the simulation ran).
  std::string engine = "analytical";
  double analytical_step = 0;  ///< s: the analytical model's step, beside a simulated one
  int64_t transactions = 0;    ///< TLM transactions simulated
  double quantum = 0;          ///< s: temporal-decoupling quantum
  int64_t tiles = 0;           ///< tiles per block instance
};

/// Whether the Einsum writing tensor `name` of a transformer cascade is attention proper: the
/// scores, the softmax and the weighted values, which read the KV cache (the projections,
/// which need weights, are not).
bool is_attention_core(const std::string& name);
/// The one place that classifies a fused block's kernel for its software quality
/// (Runtime::efficiency): fused attention (attention's products and softmax in one kernel;
/// decode when the cascade has one query per sequence), a contraction (grouped when it reads
/// expert weights), a row-wise kernel (softmax, norms: maxima, exponentials, divisions,
/// reductions), or elementwise.
KernelKind kernel_kind(const Cascade& c, const std::vector<int>& members);

/// Whether block `b` of `r` holds attention proper.
bool block_is_attention(const RunReport& r, const BlockRun& b);

/// Memoises mappings by Einsum shape (variables, accesses, operand shapes and types, which
/// operands stay on chip), architecture (every parameter the cost depends on) and mapper
/// setting. Reusing it across design points that share Einsum shapes (another context length,
/// another batch) skips their search.
struct MappedEinsum {
  MapResult result;
  std::string words;  ///< describe_mapping() of the result
};
class MapCache {
 public:
  /// The entries of one architecture (its description as text): looked up once per run, so
  /// the long architecture key is not compared per Einsum.
  using Bucket = std::map<std::string, std::unique_ptr<MappedEinsum>>;
  Bucket& bucket(const std::string& arch) { return map_[arch]; }
  /// Bound cascades by model fingerprint and phase: design points that vary only the
  /// hardware rebuild nothing.
  std::map<std::string, std::shared_ptr<const Cascade>>& cascades() { return cascades_; }
  /// Blocks (fused Einsums) of a bound cascade on one architecture, by the cascade's key, the
  /// run's type and fusion: a warm run regroups nothing. Within one architecture's bucket.
  std::vector<std::vector<int>>& grouping(const std::string& arch, const std::string& key) { return groupings_[arch][key]; }
  size_t size() const {
    size_t n = 0;
    for (const auto& [a, b] : map_) n += b.size();
    return n;
  }

 private:
  std::map<std::string, Bucket> map_;
  std::map<std::string, std::shared_ptr<const Cascade>> cascades_;
  std::map<std::string, std::map<std::string, std::vector<std::vector<int>>>> groupings_;
};

/// Costs every Einsum of `c` on one device of `a`. Einsums inside loops over iterative ranks
/// (the layer rank L, the block rank M1 of the 1-pass attention) run their loop's iterations
/// one after another: each is mapped for one iteration and repeated.
RunReport run_cascade(const Cascade& c, const ArchSpec& a, DType dt, Fusion fusion, const MapperOptions& mopt,
                      MapCache* cache = nullptr);

/// The share of `m` one of `tp` devices holds (with expert parallelism, `ep` > 1, the experts
/// stay whole: the cascade splits them by expert): heads, KV heads (replicated when there are
/// fewer than devices), MLP columns and the vocabulary split evenly (Megatron-LM). Throws
/// UserError when `tp` does not divide the model.
ModelConfig shard_model(const ModelConfig& m, int64_t tp, int64_t ep = 1);

/// The pp - 1 hops of one micro-batch through pipeline stages of `stage_devices` devices each:
/// every device sends `message` bytes (its 1/tp share of the hidden states) to the next stage,
/// over the peer link within a scale-up domain and the network link where the hop crosses one.
struct PipelineHops {
  double time = 0;     ///< s, all hops in turn
  double slowest = 0;  ///< s, the slowest hop
  double energy = 0;   ///< J per sending device over all hops
  std::string links;   ///< the links used ("nvlink + nic")
  std::vector<double> each;        ///< s per hop, in stage order
  std::vector<std::string> each_link;  ///< the link each hop crosses
};
PipelineHops pipeline_hops(const Fabric& f, int64_t pp, int64_t stage_devices, double message, double base_scale);

/// `einsim run`: one phase of `m` on `tp` devices of `a`. Throws UserError when the deployment
/// does not fit the first tier or TP does not divide the model.
RunReport run_model(const ModelConfig& m, const ArchSpec& a, const RunOptions& opt, MapCache* cache = nullptr);

}  // namespace einsim
