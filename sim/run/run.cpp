#include "sim/run/run.h"
#include "sim/run/placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "arch/collective.h"
#include "arch/runtime.h"
#include "workloads/analysis.h"

namespace einsim {

std::string_view fusion_name(Fusion f) {
  switch (f) {
    case Fusion::None: return "none";
    case Fusion::Eager: return "eager";
    case Fusion::Kernels: return "kernels";
    case Fusion::Greedy: return "greedy";
  }
  return "?";
}

std::optional<Fusion> parse_fusion(std::string_view s) {
  for (Fusion f : {Fusion::None, Fusion::Eager, Fusion::Kernels, Fusion::Greedy})
    if (fusion_name(f) == s) return f;
  return std::nullopt;
}

namespace {

bool is_weight(const Tensor& t) { return t.role == TensorRole::Weight || t.role == TensorRole::ExpertWeight; }

// Loop ranks enclosing each Einsum in the schedule, outer first.
void enclosing_loops(const std::vector<Step>& steps, std::vector<int>& stack, std::vector<std::vector<int>>& out) {
  for (const Step& s : steps) {
    if (s.iter_rank < 0) {
      out[static_cast<size_t>(s.einsum)] = stack;
      continue;
    }
    stack.push_back(s.iter_rank);
    enclosing_loops(s.body, stack, out);
    stack.pop_back();
  }
}

int root_rank(const Cascade& c, int r) {
  while (c.ranks[static_cast<size_t>(r)].parent >= 0) r = c.ranks[static_cast<size_t>(r)].parent;
  return r;
}

// Ranks of the variables indexing dimension `d` of an access.
std::set<int> dim_ranks(const Einsum& e, const Access& a, size_t d) {
  std::set<int> r;
  for (auto [v, k] : a.dims[d].terms) r.insert(e.vars[static_cast<size_t>(v)].rank);
  return r;
}

// Everything about an architecture a mapping's cost depends on, as text: a mapping cache
// shared across design points that vary the hardware never mixes them up.
std::string arch_key(const ArchSpec& a) {
  std::string k = a.name;
  for (const MemoryTier& t : a.tiers)
    k += fmt::format("|{}:{}:{}:{}:{}:{}", t.name, t.capacity, t.read_bandwidth, t.write_bandwidth, t.latency, t.energy);
  for (const StorageLevel& l : a.levels)
    k += fmt::format("|{}<{}:{}:{}:{}:{}:{}", l.name, l.parent, l.capacity, l.instances, l.bandwidth, l.read_energy, l.write_energy);
  for (const ComputeArray& r : a.arrays) {
    k += fmt::format("|{}@{}:{}:{}:{}", r.name, r.level, fmt::join(r.shape, "x"), r.instances, r.clock);
    for (const auto& [cls, by_type] : r.ops_per_cycle)
      for (const auto& [t, n] : by_type) k += fmt::format(",{}{}{}", static_cast<int>(cls), static_cast<int>(t), n);
    for (const auto& [cls, j] : r.energy) k += fmt::format(";{}{}", static_cast<int>(cls), j);
    for (OpClass cls : r.own_unit) k += fmt::format("!{}", static_cast<int>(cls));
  }
  if (a.gpu) {
    k += fmt::format("|gpu:{}:{}:{}", a.gpu->launch_overhead, a.gpu->wave_quantization, a.gpu->memory_efficiency);
    for (const auto& [cls, f] : a.gpu->efficiency) k += fmt::format(",{}{}", static_cast<int>(cls), f);
  }
  return k;
}

// The cascade prepared for costing: loops, sliced Einsums, pass analyses on demand.
class Planner {
 public:
  /// `layer_ranks`: the ranks of a model's layers, one per group of layers of a kind (blocks
  /// never span one), or none.
  Planner(const Cascade& c, const ArchSpec& a, DType dt, Fusion fusion, const MapperOptions& mopt, MapCache* cache, std::vector<int> layer_ranks,
          const ArchSpec* mapping_arch = nullptr, const std::string& cascade_key = "")
      : c_(c), a_(a), dt_(dt), fusion_(fusion), mopt_(mopt), layer_ranks_(std::move(layer_ranks)), arch_key_(arch_key(a)),
        bucket_(&(cache ? *cache : local_).bucket(arch_key_)), map_arch_(mapping_arch),
        map_bucket_(mapping_arch ? &(cache ? *cache : local_).bucket(arch_key(*mapping_arch)) : nullptr) {
    // The grouping depends on the cascade, the architecture, the type and the fusion only.
    if (cache && !cascade_key.empty())
      grouping_ = &cache->grouping(arch_key_, fmt::format("{}|{}|{}", cascade_key, dtype_name(dt), static_cast<int>(fusion)));
    loops_.resize(c.einsums.size());
    std::vector<int> stack;
    enclosing_loops(c.schedule, stack, loops_);
    // The schedule hoists out of a loop what is not part of its recurrence. A hoisted Einsum
    // with a variable over the loop's rank that reads a value produced per iteration still
    // runs per iteration (the new K and V of a decode step: per layer, from that layer's
    // normed input); one that reads nothing per-iteration runs all iterations at once
    // (the scores BQK of every key block, FlashDecoding-style).
    std::map<int, size_t> depth;
    for (const auto& lp : loops_)
      for (size_t k = 0; k < lp.size(); ++k) depth.emplace(lp[k], k);
    for (int id : c.order()) {
      const Einsum& e = c.einsums[static_cast<size_t>(id)];
      std::vector<int>& lp = loops_[static_cast<size_t>(id)];
      for (const Var& v : e.vars) {
        if (!depth.count(v.rank) || std::find(lp.begin(), lp.end(), v.rank) != lp.end()) continue;
        bool per_iteration = false;
        for (const Access& acc : e.reads)
          for (int w : c.tensors[static_cast<size_t>(acc.tensor)].writers) {
            const std::vector<int>& wl = loops_[static_cast<size_t>(w)];
            per_iteration |= w != id && std::find(wl.begin(), wl.end(), v.rank) != wl.end();
          }
        if (per_iteration) lp.push_back(v.rank);
      }
      std::stable_sort(lp.begin(), lp.end(), [&](int x, int y) { return depth[x] < depth[y]; });
    }
    // One iteration of every enclosing loop: the loop's variables get extent 1.
    for (const Einsum& e : c.einsums) {
      Einsum s = e;
      std::map<int, int64_t> one;
      for (int rk : loops_[static_cast<size_t>(e.id)]) one[rk] = 1;
      repeats_.push_back(slice_einsum(s, one));
      sliced_.push_back(std::move(s));
    }
  }

  RunReport run() {
    RunReport r;
    r.arch = a_.name;
    r.dtype = dt_;
    r.fusion = fusion_;
    if (grouping_ && grouping_->empty()) *grouping_ = group();
    const std::vector<std::vector<int>> blocks = grouping_ ? *grouping_ : group();
    // What each block holds on chip and each member is mapped with, decided before any
    // mapping, so that the searches can run ahead in parallel.
    struct MemberPlan {
      std::vector<int> invariant;
      Search search;  ///< what map() is asked for
    };
    struct BlockPlan {
      std::vector<int> resident, shared;
      std::vector<MemberPlan> members;
    };
    std::vector<BlockPlan> plans;
    for (const std::vector<int>& members : blocks) {
      BlockPlan p;
      p.resident = resident_of(members);
      // Inputs several members read (the row a layer norm sums, then scales) come from the
      // tier once when their slices fit beside the intermediates; later readers find them on
      // chip.
      p.shared = shared_inputs(members);
      if (!p.shared.empty() && fusion_ != Fusion::None && !fits(members, p.shared)) p.shared.clear();
      std::set<int> loaded;
      for (int id : members) {
        MemberPlan mp;
        std::vector<int> on_chip = p.resident;
        const Einsum& me = c_.einsums[static_cast<size_t>(id)];
        for (int t : p.shared) {
          bool reads = false;
          for (const Access& acc : me.reads) reads |= acc.tensor == t;
          if (reads && !loaded.insert(t).second) on_chip.push_back(t);
        }
        // A scan's operands that its steps do not index (Mamba's A and D): the kernel loads them
        // once and holds them on chip across the steps, so each step is mapped with them there
        // and their one read is added below.
        if (fusion_ == Fusion::Kernels && scan(id))
          for (const Access& acc : me.reads) {
            bool stepped = false;
            for (const Affine& d : acc.dims)
              for (const auto& [v, k] : d.terms) stepped |= v == me.iter_var && k != 0;
            if (!stepped && is_weight(c_.tensors[static_cast<size_t>(acc.tensor)]) &&
                std::find(on_chip.begin(), on_chip.end(), acc.tensor) == on_chip.end())
              mp.invariant.push_back(acc.tensor), on_chip.push_back(acc.tensor);
          }
        mp.search = search_for(id, on_chip);
        p.members.push_back(std::move(mp));
      }
      plans.push_back(std::move(p));
    }
    prefetch(blocks, plans);
    for (size_t bi = 0; bi < blocks.size(); ++bi) {
      const std::vector<int>& members = blocks[bi];
      const std::vector<int>& resident = plans[bi].resident;
      const std::vector<int>& shared = plans[bi].shared;
      BlockRun b;
      // The software's kernel quality for this kind of kernel (the runtime's, arch/runtime.h):
      // the arrays and the memory levels reach that share of their calibrated rates.
      b.kind = kernel_kind(c_, members);
      const double quality = a_.gpu ? a_.gpu->kind_efficiency[static_cast<size_t>(b.kind)] : 1.0;
      for (int t : resident) b.resident.push_back(c_.tensors[static_cast<size_t>(t)].name);
      for (int t : shared) b.shared.push_back(c_.tensors[static_cast<size_t>(t)].name);
      std::map<std::string, double> array_busy, array_ideal;
      std::vector<LevelTraffic> traffic;
      double fill = 0, launch = 0;
      for (size_t k = 0; k < members.size(); ++k) {
        const int id = members[k];
        const Einsum& me = c_.einsums[static_cast<size_t>(id)];
        const std::vector<int>& invariant = plans[bi].members[k].invariant;
        const MappedEinsum& mapped = map(plans[bi].members[k].search);
        note_emulation(plans[bi].members[k].search, r.emulated);
        const MapResult& m = mapped.result;
        // Instances, times the share of the iteration space computed (causal attention).
        const double n = repeats_[static_cast<size_t>(id)] * me.work;
        EinsumRun er;
        er.einsum = id;
        er.name = c_.tensors[static_cast<size_t>(me.lhs.tensor)].name;
        er.block = static_cast<int>(r.blocks.size());
        er.repeats = repeats_[static_cast<size_t>(id)];
        er.flops = me.ops.flops() * me.work;
        er.compute = m.cost.compute * n / quality;
        er.energy = m.cost.energy * n;
        er.compute_energy = m.cost.compute_energy * n;
        er.utilization = m.cost.utilization;
        er.time_alone = m.cost.time * n;
        er.bottleneck = m.cost.bottleneck;
        er.mapping = mapped.words;
        er.mappings_evaluated = m.evaluated;
        std::vector<LevelTraffic> per_step = m.cost.traffic;
        if (!invariant.empty() && !per_step.empty()) {
          // One read per kernel (per layer), at the tier's read bandwidth.
          const Einsum& one = sliced_[static_cast<size_t>(id)];
          const double steps = static_cast<double>(me.vars[static_cast<size_t>(me.iter_var)].extent);
          std::vector<int64_t> whole;
          for (const Var& v : one.vars) whole.push_back(v.extent);
          double bytes = 0;
          for (const Access& acc : one.reads)
            if (std::find(invariant.begin(), invariant.end(), acc.tensor) != invariant.end()) bytes += footprint(c_, one, acc, whole);
          const MemoryTier* tier = a_.tier(per_step[0].name);
          const double mem_eff = a_.gpu ? a_.gpu->memory_efficiency : 1.0;
          per_step[0].read_bytes += bytes / steps;
          if (tier && tier->read_bandwidth > 0) per_step[0].busy += bytes / steps / tier->read_bandwidth / mem_eff;
        }
        for (LevelTraffic t : per_step) {
          t.read_bytes *= n, t.write_bytes *= n, t.busy *= n / quality;
          er.traffic.push_back(t);
          auto it = std::find_if(traffic.begin(), traffic.end(), [&](const LevelTraffic& x) { return x.name == t.name; });
          if (it == traffic.end()) traffic.push_back(t);
          else it->read_bytes += t.read_bytes, it->write_bytes += t.write_bytes, it->busy += t.busy;
        }
        er.array = a_.arrays[static_cast<size_t>(m.mapping.array)].name;
        array_busy[er.array] += er.compute;
        fill = std::max(fill, m.cost.fill_drain);
        launch = std::max(launch, m.cost.launch);
        b.energy += er.energy;
        b.flops += er.flops;
        array_ideal[er.array] += m.cost.ideal_compute * n;
        b.einsums.push_back(static_cast<int>(r.einsums.size()));
        r.einsums.push_back(std::move(er));
      }
      // Overlap rule: inside a block every array and every storage level works concurrently;
      // the block takes its busiest resource's summed time plus, per sequential instance, one
      // fill/drain and one launch. Blocks run one after another.
      b.repeats = block_repeats(members);
      double busiest = 0;
      for (const auto& [name, t] : array_busy)
        if (t > busiest || b.bottleneck.empty()) busiest = t, b.bottleneck = fmt::format("compute ({})", name), b.compute = t;
      for (const LevelTraffic& t : traffic)
        if (t.busy > busiest) busiest = t.busy, b.bottleneck = fmt::format("{} bandwidth", t.name);
      b.fill = fill;
      b.launch = launch;
      b.overhead = b.repeats * (fill + launch);
      if (b.repeats * launch > busiest) b.bottleneck = "kernel launch";
      b.time = busiest + b.overhead;
      // Utilization of the block's most used array: arrays run concurrently, so their ideal
      // times do not add (a sum exceeded 100% when the tensor and vector arrays overlapped).
      double ideal = 0;
      for (const auto& [name, t] : array_ideal) ideal = std::max(ideal, t);
      b.utilization = b.time > 0 ? ideal / b.time : 0;
      b.traffic = std::move(traffic);
      r.blocks.push_back(std::move(b));
    }
    for (int rk : layer_ranks_) r.group_layers.push_back(c_.ranks[static_cast<size_t>(rk)].extent);
    for (BlockRun& b : r.blocks) {
      const int rk = layer_of(r.einsums[static_cast<size_t>(b.einsums[0])].einsum);
      if (rk >= 0) b.layer_group = static_cast<int>(std::find(layer_ranks_.begin(), layer_ranks_.end(), rk) - layer_ranks_.begin());
      r.compute_time += b.time;
      r.flops += b.flops;
      if (rk >= 0) r.layer_time += b.time;
    }
    if (!layer_ranks_.empty()) {
      r.layers = 0;
      for (int rk : layer_ranks_) r.layers += c_.ranks[static_cast<size_t>(rk)].extent;
      r.layer_time /= static_cast<double>(r.layers);  // the mean over the layers' kinds
    }
    r.step_time = r.compute_time;
    r.mappings_evaluated = evaluated_;
    r.cache_hits = hits_;
    return r;
  }

  // Bytes of activations live at once: the largest set of non-weight, non-cache tensors one
  // block touches, for one iteration of its outermost loop (one layer).
  double activation_bytes(const RunReport& r) const {
    double peak = 0;
    for (const BlockRun& b : r.blocks) {
      std::set<int> ts;
      for (int i : b.einsums) {
        const Einsum& e = c_.einsums[static_cast<size_t>(r.einsums[static_cast<size_t>(i)].einsum)];
        ts.insert(e.lhs.tensor);
        for (const Access& acc : e.reads) ts.insert(acc.tensor);
      }
      double bytes = 0;
      for (int t : ts) {
        const Tensor& x = c_.tensors[static_cast<size_t>(t)];
        if (is_weight(x) || x.role == TensorRole::KVCache || x.role == TensorRole::Index) continue;
        if (std::find(b.resident.begin(), b.resident.end(), x.name) != b.resident.end()) continue;
        double per = x.bytes();
        for (int rk : x.ranks)
          if (is_outer_loop(rk)) per /= static_cast<double>(c_.ranks[static_cast<size_t>(rk)].extent);
        bytes += per;
      }
      peak = std::max(peak, bytes);
    }
    return peak;
  }

 private:
  // The layer rank of Einsum `id`'s group, or -1 outside the layers: an Einsum belongs to a
  // layer inside the layer loop or over the layer rank (with one layer the schedule has no loop).
  int layer_of(int id) const {
    const std::vector<int>& lp = loops_[static_cast<size_t>(id)];
    for (int rk : layer_ranks_) {
      if (std::find(lp.begin(), lp.end(), rk) != lp.end()) return rk;
      for (const Var& v : c_.einsums[static_cast<size_t>(id)].vars)
        if (v.rank == rk) return rk;
    }
    return -1;
  }

  bool is_outer_loop(int rank) const {
    for (const auto& lp : loops_)
      if (!lp.empty() && lp[0] == rank) return true;
    return false;
  }

  // Whether Einsum `id` is a scan: a recurrence over a rank other than the layers'.
  bool scan(int id) const {
    const Einsum& e = c_.einsums[static_cast<size_t>(id)];
    if (e.iter_var < 0) return false;
    const int rk = e.vars[static_cast<size_t>(e.iter_var)].rank;
    return std::find(layer_ranks_.begin(), layer_ranks_.end(), rk) == layer_ranks_.end();
  }

  // Whether Einsum `id` reads only cached state (a scan's start).
  bool from_cache(int id) const {
    const Einsum& e = c_.einsums[static_cast<size_t>(id)];
    return !e.reads.empty() && std::all_of(e.reads.begin(), e.reads.end(), [&](const Access& a) {
      return c_.tensors[static_cast<size_t>(a.tensor)].role == TensorRole::KVCache;
    });
  }

  // Whether Einsum `id` starts a scan from the cache (another writer of its output is the scan).
  bool scan_init(int id) const {
    const Einsum& e = c_.einsums[static_cast<size_t>(id)];
    if (e.iter_var >= 0 || !from_cache(id)) return false;
    for (int w : c_.tensors[static_cast<size_t>(e.lhs.tensor)].writers)
      if (w != id && scan(w)) return true;
    return false;
  }

  // Iterations of the loops enclosing every member: the block's sequential instances.
  double block_repeats(const std::vector<int>& members) const {
    // Initialisations run once per instance of the block they sit in: they do not count.
    std::vector<int> counted;
    for (int id : members)
      if (!c_.einsums[static_cast<size_t>(id)].reads.empty() && !scan_init(id)) counted.push_back(id);
    if (counted.empty()) counted = members;
    std::vector<int> common = loops_[static_cast<size_t>(counted[0])];
    for (int id : counted) {
      const std::vector<int>& lp = loops_[static_cast<size_t>(id)];
      size_t k = 0;
      while (k < common.size() && k < lp.size() && common[k] == lp[k]) ++k;
      common.resize(k);
    }
    // A kernel holding a scan (a recurrence over the tokens) runs the scan's loop inside.
    if (fusion_ == Fusion::Kernels)
      for (int id : counted)
        if (scan(id)) {
          const Einsum& e = c_.einsums[static_cast<size_t>(id)];
          std::erase(common, e.vars[static_cast<size_t>(e.iter_var)].rank);
        }
    double n = 1;
    for (int rk : common) n *= static_cast<double>(c_.ranks[static_cast<size_t>(rk)].extent);
    return n;
  }

  // One search the blocks ask for: the Einsum, the resident tensors it touches, its compute
  // type and its cache key.
  struct Search {
    int id = 0;
    std::vector<int> mine;
    DType asked = DType::FP16;  ///< the operands' type (operand_type())
    DType dt = DType::FP16;     ///< the type it computes at (compute_type())
    std::string key;
  };

  // The element type an Einsum computes in, given the type `dt` its operands ask for
  // (operand_type(): the widest, the run's where that is as wide), so a weight-only int4 GEMM
  // computes at the bf16 of its activations (dequantized in the prologue) and an fp8 GEMM of
  // fp8 activations and weights at fp8 (its bf16 output is not an operand); or, where no array
  // runs all its operations at that type (fp8 or int8 norms, softmax and activations), the
  // first of bf16, fp16, fp32 that one does, as fp8 inference keeps epilogues in higher
  // precision. Tensors keep their storage type (bytes moved do not change).
  // A block-scaled format (MXFP8, NVFP4...) no array runs natively falls back to fp8 first,
  // as engines run such checkpoints on fp8 hardware (scales applied in software).
  DType compute_type(const Einsum& e, DType dt) const {
    if (bind_array(e, a_, dt) >= 0) return dt;
    if (block_scaled(dt) && bind_array(e, a_, DType::FP8) >= 0) return DType::FP8;
    for (DType w : {DType::BF16, DType::FP16, DType::FP32})
      if (bind_array(e, a_, w) >= 0) return w;
    return dt;  // the mapper reports what no array runs
  }

  // The type an Einsum's operands ask for: the widest; at equal width the run's type, then a
  // floating type over an integer one.
  DType operand_type(const Einsum& e) const {
    auto rank = [&](DType x) {
      const bool integer = x == DType::INT8 || x == DType::INT4 || x == DType::INT32;
      return std::tuple{dtype_bytes(x), x == dt_, !integer};
    };
    DType dt = dt_;
    bool any = false;
    for (const Access& acc : e.reads) {
      const Tensor& t = c_.tensors[static_cast<size_t>(acc.tensor)];
      if (t.role == TensorRole::Index) continue;
      if (!any || rank(t.dtype) > rank(dt)) dt = t.dtype;
      any = true;
    }
    return dt;
  }

  // Matrix products (contractions of two different tensors: GEMMs and attention, not a norm's
  // X*X) that run at a wider type than their operands because no array runs that type: the
  // report states each such emulation (weights stored at int4 on a GPU without int4 tensor
  // cores compute at bf16), so none is silent.
  void note_emulation(const Search& q, std::vector<std::string>& notes) const {
    if (q.asked == q.dt || !matmul(sliced_[static_cast<size_t>(q.id)])) return;
    const std::string note = fmt::format("{} matrix products computed at {}: no array of {} runs them at {}",
                                         dtype_name(q.asked), dtype_name(q.dt), a_.name, dtype_name(q.asked));
    if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
  }

  // A matrix product: a contraction of two different tensors (not X*X of a norm).
  bool matmul(const Einsum& e) const {
    if (e.ops[OpClass::Mac] <= 0) return false;
    std::set<int> operands;
    for (const Access& acc : e.reads)
      if (c_.tensors[static_cast<size_t>(acc.tensor)].role != TensorRole::Index) operands.insert(acc.tensor);
    return operands.size() >= 2;
  }

  // Runs ahead, on mopt_.threads threads, the distinct searches the blocks will ask for and
  // are not cached, in the order they are first asked for. Searches are independent and
  // deterministic, so the results are the sequential ones; a search that fails is left for
  // the sequential pass to fail again where it is asked for.
  void prefetch(const std::vector<std::vector<int>>& blocks, const auto& plans) {
    if (mopt_.threads <= 1 || map_arch_) return;
    std::vector<Search> todo;
    std::set<std::string> seen;
    for (size_t bi = 0; bi < blocks.size(); ++bi)
      for (size_t k = 0; k < blocks[bi].size(); ++k) {
        const Search& q = plans[bi].members[k].search;
        if (bucket_->count(q.key) || !seen.insert(q.key).second) continue;
        todo.push_back(q);
      }
    if (todo.size() < 2) return;
    std::vector<std::optional<MapResult>> done(todo.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < todo.size();) {
        try {
          done[i] = map_einsum(c_, sliced_[static_cast<size_t>(todo[i].id)], a_, todo[i].dt, mopt_, todo[i].mine);
        } catch (...) {  // asked for again in order, where it throws
        }
      }
    };
    const size_t n = std::min(todo.size(), static_cast<size_t>(mopt_.threads));
    std::vector<std::thread> pool;
    for (size_t t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    for (size_t i = 0; i < todo.size(); ++i)
      if (done[i]) {
        evaluated_ += done[i]->evaluated;
        (*bucket_)[todo[i].key] = std::make_unique<MappedEinsum>(MappedEinsum{std::move(*done[i]), ""});
        prefetched_.insert(todo[i].key);
      }
  }

  Search search_for(int id, const std::vector<int>& resident) {
    const Einsum& s = sliced_[static_cast<size_t>(id)];
    Search q;
    q.id = id;
    std::vector<int>& mine = q.mine;  // the resident tensors this Einsum touches
    for (const Access& acc : s.reads)
      if (std::find(resident.begin(), resident.end(), acc.tensor) != resident.end()) mine.push_back(acc.tensor);
    if (std::find(resident.begin(), resident.end(), s.lhs.tensor) != resident.end()) mine.push_back(s.lhs.tensor);
    q.asked = operand_type(s);
    const DType dt = q.dt = compute_type(s, q.asked);
    // Keyed by structure, not names: the two norms of a layer, K and V, gate and up share a
    // search. Per access: its operand's place among the Einsum's tensors, type, shape,
    // residency and affine dimensions.
    std::string& key = q.key;
    key.reserve(512);
    auto num = [&](double x) {
      char buf[32];
      // Most fields are integers: their shorter conversion first.
      const bool whole = x == std::trunc(x) && std::fabs(x) < 1e15;
      const auto end = whole ? std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(x)).ptr : std::to_chars(buf, buf + sizeof buf, x).ptr;
      key.append(buf, static_cast<size_t>(end - buf));
      key += ',';
    };
    key += dtype_name(dt);
    for (double x : {static_cast<double>(mopt_.objective), static_cast<double>(mopt_.max_tiles), static_cast<double>(mopt_.granule),
                     static_cast<double>(mopt_.prune), static_cast<double>(mopt_.array), static_cast<double>(s.reduce), static_cast<double>(s.n_out)})
      num(x);
    key += "|v";
    for (const Var& v : s.vars) num(static_cast<double>(v.extent));
    key += "|o";
    for (double n : s.ops.n) num(n);
    std::vector<int> seen;
    auto add_access = [&](const Access& acc) {
      auto it = std::find(seen.begin(), seen.end(), acc.tensor);
      const size_t place = static_cast<size_t>(it - seen.begin());
      if (it == seen.end()) seen.push_back(acc.tensor);
      const Tensor& x = c_.tensors[static_cast<size_t>(acc.tensor)];
      key += std::find(mine.begin(), mine.end(), acc.tensor) != mine.end() ? "|r" : "|t";
      num(static_cast<double>(place));
      key += dtype_name(x.dtype);
      num(x.scale_bytes);
      num(static_cast<double>(x.routed));
      // The cost model reads a tensor's shape only to cap an access's span along each
      // dimension (footprint_at); a span never exceeds the access's full-extent span, so the
      // shape enters the key capped by that span: equal costs, and a slice of a tensor that
      // grows with the context (the 1-pass blocks) keeps one key.
      for (size_t d = 0; d < x.shape.size(); ++d) {
        int64_t cap = x.shape[d];
        if (d < acc.dims.size() && acc.dims[d].gather < 0) {
          int64_t span = 1;
          for (auto [v, k] : acc.dims[d].terms) span += std::llabs(k) * (s.vars[static_cast<size_t>(v)].extent - 1);
          cap = std::min(cap, span);
        }
        num(static_cast<double>(cap));
      }
      for (const Affine& f : acc.dims) {
        key += '[';  // the offset f.c moves a window without changing its cost: not keyed
        num(static_cast<double>(f.gather));
        for (auto [v, k] : f.terms) num(static_cast<double>(k)), num(static_cast<double>(v));
      }
    };
    add_access(s.lhs);
    for (const Access& acc : s.reads) add_access(acc);
    return q;
  }

  const MappedEinsum& map(const Search& q) {
    const Einsum& s = sliced_[static_cast<size_t>(q.id)];
    const std::vector<int>& mine = q.mine;
    const DType dt = q.dt;
    const std::string& key = q.key;
    MapCache::Bucket& cache = *bucket_;
    std::unique_ptr<MappedEinsum>& hit = cache[map_arch_ ? "fixed|" + key : key];
    if (hit) {
      if (!prefetched_.erase(key)) ++hits_;  // a search run ahead for this request is no hit
    } else if (map_arch_) {
      // The mapping chosen on the mapping architecture, costed here.
      std::unique_ptr<MappedEinsum>& chosen = (*map_bucket_)[key];
      if (!chosen) {
        chosen = std::make_unique<MappedEinsum>(MappedEinsum{map_einsum(c_, s, *map_arch_, dt, mopt_, mine), ""});
        evaluated_ += chosen->result.evaluated;
      }
      MapResult r = chosen->result;
      r.cost = EinsumCost(c_, s, mine).evaluate(a_, r.mapping, dt);
      hit = std::make_unique<MappedEinsum>(MappedEinsum{std::move(r), ""});
    } else {
      hit = std::make_unique<MappedEinsum>(MappedEinsum{map_einsum(c_, s, a_, dt, mopt_, mine), ""});
      evaluated_ += hit->result.evaluated;
    }
    // The mapping in words uses this Einsum's variable names: cached by its text too.
    std::unique_ptr<MappedEinsum>& w = cache["words|" + s.text + "|" + key];
    if (!w) w = std::make_unique<MappedEinsum>(MappedEinsum{hit->result, describe_mapping(s, a_, hit->result.mapping)});
    return *w;
  }

  // Tensors two or more members read that no member writes (index tensors aside).
  std::vector<int> shared_inputs(const std::vector<int>& members) const {
    std::map<int, int> readers;
    for (int id : members) {
      const Einsum& e = c_.einsums[static_cast<size_t>(id)];
      std::set<int> mine;
      for (const Access& acc : e.reads) mine.insert(acc.tensor);
      for (int t : mine) ++readers[t];
    }
    std::vector<int> out;
    for (const auto& [t, n] : readers) {
      if (n < 2 || c_.tensors[static_cast<size_t>(t)].role == TensorRole::Index) continue;
      bool written = false;
      for (int id : members) written |= c_.einsums[static_cast<size_t>(id)].lhs.tensor == t;
      if (!written) out.push_back(t);
    }
    return out;
  }

  // Tensors written inside the block whose every writer and reader is in it.
  std::vector<int> resident_of(const std::vector<int>& members) const {
    std::vector<int> out;
    auto in = [&](int id) { return std::find(members.begin(), members.end(), id) != members.end(); };
    for (int id : members) {
      const int t = c_.einsums[static_cast<size_t>(id)].lhs.tensor;
      const Tensor& x = c_.tensors[static_cast<size_t>(t)];
      if (x.role == TensorRole::KVCache || x.readers.empty() || std::find(out.begin(), out.end(), t) != out.end()) continue;
      if (std::all_of(x.readers.begin(), x.readers.end(), in) && std::all_of(x.writers.begin(), x.writers.end(), in)) out.push_back(t);
    }
    return out;
  }

  // Can `members` run as one block with its intermediates on chip? The block walks the ranks
  // every member produces (its fusion ranks) one slice at a time, and streams a rank only when
  // the pass analysis of the block puts every member that traverses it in the same pass
  // (FuseMax §III: the 1-pass attention streams M, the 3-pass one holds whole M fibers);
  // other ranks of an intermediate are held whole. A reader that indexes an intermediate along
  // another rank than its writer's fusion rank would need slices not yet produced: illegal.
  bool fits(const std::vector<int>& members, const std::vector<int>& extra = {}) {
    std::vector<int> resident = resident_of(members);
    resident.insert(resident.end(), extra.begin(), extra.end());
    if (resident.empty()) return true;
    std::set<int> fused;  // fusion ranks: output ranks of every member
    for (size_t k = 0; k < members.size(); ++k) {
      const Einsum& e = c_.einsums[static_cast<size_t>(members[k])];
      std::set<int> outs;
      for (int v = 0; v < e.n_out; ++v) outs.insert(e.vars[static_cast<size_t>(v)].rank);
      if (k == 0) fused = outs;
      else {
        std::set<int> both;
        for (int r : fused)
          if (outs.count(r)) both.insert(r);
        fused = both;
      }
    }
    std::map<int, PassReport> passes;  // by root rank, over the block only
    auto streamed = [&](int rank) {
      const int root = root_rank(c_, rank);
      auto it = passes.find(root);
      if (it == passes.end()) it = passes.emplace(root, pass_analysis(c_, c_.ranks[static_cast<size_t>(root)].name, &members)).first;
      const PassReport& p = it->second;
      int pass = 0;
      for (int id : members) {
        const int q = p.einsum_pass[static_cast<size_t>(id)];
        if (q == 0) continue;
        if (pass != 0 && q != pass) return false;
        pass = q;
      }
      return true;
    };
    // The block executes on the arrays the mapper binds; intermediates live in the storage
    // level private to one array instance (SMEM on a GPU, the global buffer on FuseMax).
    const Einsum& first = c_.einsums[static_cast<size_t>(members[0])];
    const int array = bind_array(first, a_, compute_type(first, operand_type(first)));
    if (array < 0) return false;
    const ComputeArray& arr = a_.arrays[static_cast<size_t>(array)];
    const std::vector<std::string> path = storage_path(a_, array);
    const StorageLevel* where = a_.level(path.back());
    for (size_t i = 1; i < path.size(); ++i)
      if (const StorageLevel* l = a_.level(path[i]); l && l->instances == arr.instances) {
        where = l;
        break;
      }
    if (!where) return false;
    // Each member's tile: one along its loops, the fusion ranks and the streamed ranks.
    std::vector<std::vector<int64_t>> tiles(members.size());
    for (size_t k = 0; k < members.size(); ++k) {
      const Einsum& e = c_.einsums[static_cast<size_t>(members[k])];
      const std::vector<int>& lp = loops_[static_cast<size_t>(members[k])];
      for (const Var& v : e.vars) {
        const bool one = std::find(lp.begin(), lp.end(), v.rank) != lp.end() || fused.count(v.rank) || streamed(v.rank);
        tiles[k].push_back(one ? 1 : v.extent);
      }
    }
    double bytes = 0;
    for (int t : resident) {
      const Tensor& x = c_.tensors[static_cast<size_t>(t)];
      double worst = 0;
      for (size_t k = 0; k < members.size(); ++k) {
        const int id = members[k];
        const Einsum& e = c_.einsums[static_cast<size_t>(id)];
        const std::vector<int>& lp = loops_[static_cast<size_t>(id)];
        const std::vector<int64_t>& tile = tiles[k];
        auto consider = [&](const Access& acc, bool write) {
          if (acc.tensor != t) return;
          worst = std::max(worst, footprint(c_, e, acc, tile));
          if (write) return;
          // Legality: a dimension the writer walks along a fusion rank must be read along it.
          for (int w : x.writers) {
            const Einsum& we = c_.einsums[static_cast<size_t>(w)];
            for (size_t d = 0; d < acc.dims.size(); ++d) {
              const std::set<int> wr = dim_ranks(we, we.lhs, d);
              bool along_fused = false;
              for (int r : wr) along_fused |= fused.count(r) > 0 && std::find(lp.begin(), lp.end(), r) == lp.end();
              if (along_fused && dim_ranks(e, acc, d) != wr) worst = std::numeric_limits<double>::infinity();
            }
          }
        };
        consider(e.lhs, true);
        for (const Access& acc : e.reads) consider(acc, false);
      }
      bytes += worst * x.element_bytes();
    }
    return bytes <= where->capacity;
  }

  // Blocks in schedule order.
  std::vector<std::vector<int>> group() {
    std::vector<int> order;
    std::vector<int> inits;
    for (int id : c_.order())
      if (!c_.einsums[static_cast<size_t>(id)].view) (c_.einsums[static_cast<size_t>(id)].reads.empty() ? inits : order).push_back(id);
    std::vector<std::vector<int>> blocks = group_ordered(order);
    // Einsums the cascade puts in their readers' kernel (a latent-attention kernel computes
    // both parts of its scores, FlashMLA): a block of them alone joins the block that reads it.
    if (fusion_ == Fusion::Kernels)
      for (size_t i = 0; i + 1 < blocks.size(); ++i) {
        bool scores = true, read = false;
        for (int id : blocks[i]) {
          const Einsum& e = c_.einsums[static_cast<size_t>(id)];
          scores = scores && e.in_reader_kernel;
          for (int r : c_.tensors[static_cast<size_t>(e.lhs.tensor)].readers)
            read |= std::find(blocks[i + 1].begin(), blocks[i + 1].end(), r) != blocks[i + 1].end();
        }
        if (!scores || !read) continue;
        std::vector<int> merged = blocks[i];
        merged.insert(merged.end(), blocks[i + 1].begin(), blocks[i + 1].end());
        if (!fits(merged)) continue;
        blocks[i + 1] = std::move(merged);
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
      }
    // Initialisations (`RM[m1=0] = -inf`, which read nothing) run in the block of their
    // first reader, just before it.
    for (int id : inits) {
      if (fusion_ == Fusion::None) {
        blocks.push_back({id});
        continue;
      }
      const Tensor& t = c_.tensors[static_cast<size_t>(c_.einsums[static_cast<size_t>(id)].lhs.tensor)];
      bool placed = false;
      for (std::vector<int>& b : blocks) {
        auto at = std::find_if(b.begin(), b.end(), [&](int r) { return std::find(t.readers.begin(), t.readers.end(), r) != t.readers.end(); });
        if (at == b.end()) continue;
        b.insert(at, id);
        placed = true;
        break;
      }
      if (!placed) blocks.push_back({id});
    }
    return blocks;
  }

  std::vector<std::vector<int>> group_ordered(const std::vector<int>& order) {
    auto contracts = [&](const Einsum& e) { return e.ops[OpClass::Mac] > 0; };
    auto with_weight = [&](const Einsum& e) {
      if (!contracts(e)) return false;
      for (const Access& acc : e.reads)
        if (is_weight(c_.tensors[static_cast<size_t>(acc.tensor)])) return true;
      return false;
    };
    std::vector<std::vector<int>> blocks;
    auto may_join = [&](int id, std::vector<int>& cur) {
      const Einsum& e = c_.einsums[static_cast<size_t>(id)];
      // A block does not span the layers and what surrounds them (each layer is its own
      // kernel); other loops (the key blocks of attention) may run inside a block.
      if (!layer_ranks_.empty() && layer_of(id) != layer_of(cur[0])) return false;
      // Connected: reads something the block writes, or an activation a member reads too
      // (siblings: the mean and the mean square of a layer norm); or a copy or elementwise
      // operation of the cascade's inputs alone (a reshape such as `BK[m1,m0] = K[m1*M0+m0]`),
      // which can run anywhere.
      bool connected = false, inputs_only = !contracts(e);
      for (const Access& acc : e.reads) {
        const Tensor& t = c_.tensors[static_cast<size_t>(acc.tensor)];
        inputs_only = inputs_only && t.is_input();
        const bool activation = !is_weight(t) && t.role != TensorRole::Index && !t.is_input();
        for (int m : cur) {
          const Einsum& me = c_.einsums[static_cast<size_t>(m)];
          connected |= me.lhs.tensor == acc.tensor;
          if (activation)
            for (const Access& ma : me.reads) connected |= ma.tensor == acc.tensor;
        }
      }
      if (!connected && !inputs_only) return false;
      // Kernels: a contraction with a weight (a GEMM) starts a kernel, and a kernel holds
      // one GEMM with its prologue and epilogue, or contractions of activations only
      // (attention); as inference engines issue them.
      if (fusion_ == Fusion::Kernels && contracts(e)) {
        bool has_gemm = false;
        for (int m : cur) has_gemm |= with_weight(c_.einsums[static_cast<size_t>(m)]);
        if (with_weight(e) || has_gemm) return false;
      }
      // A scan (a recurrence over the tokens, not the layers: a state-space mixer's) is a kernel
      // of its own, not a GEMM's epilogue: its reductions of the state join it there.
      if (fusion_ == Fusion::Kernels && scan(id))
        for (int m : cur)
          if (with_weight(c_.einsums[static_cast<size_t>(m)])) return false;
      // Eager (PyTorch without fused attention): every matrix product is a kernel of its own
      // with at most its bias add (addmm); softmax and norms are one kernel each.
      if (fusion_ == Fusion::Eager) {
        if (matmul(e)) return false;
        bool has_matmul = false;
        for (int m : cur) has_matmul |= matmul(c_.einsums[static_cast<size_t>(m)]);
        bool bias = false;
        for (const Access& acc : e.reads) bias |= is_weight(c_.tensors[static_cast<size_t>(acc.tensor)]);
        if (has_matmul && !(bias && !contracts(e) && cur.size() == 1)) return false;
      }
      cur.push_back(id);
      const bool ok = fits(cur);
      cur.pop_back();
      return ok;
    };
    // Each Einsum joins the latest block it may join whose place comes after every input it
    // reads is produced (moving it up is legal: its readers all come later); otherwise it
    // starts a block. The schedule hoists what a loop does not need past it (a decode step's
    // new K and V), so the latest block is not always the one to join.
    std::vector<int> block_of(c_.einsums.size(), -1);
    for (int id : order) {
      int target = -1;
      if (fusion_ != Fusion::None) {
        size_t earliest = 0;  // blocks before the last producer of an input cannot take it
        for (const Access& acc : c_.einsums[static_cast<size_t>(id)].reads)
          for (int w : c_.tensors[static_cast<size_t>(acc.tensor)].writers)
            if (block_of[static_cast<size_t>(w)] >= 0) earliest = std::max(earliest, static_cast<size_t>(block_of[static_cast<size_t>(w)]));
        for (size_t bi = blocks.size(); bi-- > earliest;)
          if (may_join(id, blocks[bi])) {
            target = static_cast<int>(bi);
            break;
          }
      }
      if (target < 0) {
        target = static_cast<int>(blocks.size());
        blocks.push_back({});
      }
      blocks[static_cast<size_t>(target)].push_back(id);
      block_of[static_cast<size_t>(id)] = target;
    }
    // A scan's kernel starts from the cached state: its initialisation, which reads only the
    // cache (so the schedule hoists it), runs inside the scan's kernel. With the scan's readers
    // there too, the per-token states are the kernel's intermediates (resident_of): held on
    // chip one token at a time and never written out, as fused scan kernels do (each channel's
    // state is independent, so the states split across the array instances); the final state
    // goes back to the cache (the cascade writes it).
    if (fusion_ == Fusion::Kernels) {
      for (size_t bi = 0; bi < blocks.size(); ++bi)
        for (int id : std::vector<int>(blocks[bi]))
          if (scan(id))
            for (int w : c_.tensors[static_cast<size_t>(c_.einsums[static_cast<size_t>(id)].lhs.tensor)].writers) {
              if (w == id || block_of[static_cast<size_t>(w)] < 0 || !from_cache(w)) continue;
              const auto from = static_cast<size_t>(block_of[static_cast<size_t>(w)]);
              if (from == bi) continue;
              std::erase(blocks[from], w);
              blocks[bi].insert(blocks[bi].begin(), w);
              block_of[static_cast<size_t>(w)] = static_cast<int>(bi);
            }
      std::erase_if(blocks, [](const std::vector<int>& b) { return b.empty(); });
    }
    return blocks;
  }

  int64_t evaluated_ = 0, hits_ = 0;
  std::set<std::string> prefetched_;  ///< keys prefetch() mapped that map() has not asked for yet
  const Cascade& c_;
  const ArchSpec& a_;
  DType dt_;
  Fusion fusion_;
  MapperOptions mopt_;
  std::vector<int> layer_ranks_;
  std::string arch_key_;
  std::vector<std::vector<int>>* grouping_ = nullptr;  ///< the cache's grouping of this cascade, if any
  MapCache local_;  // without a cache of the caller's: shapes repeated within the run
  MapCache::Bucket* bucket_;
  const ArchSpec* map_arch_;
  MapCache::Bucket* map_bucket_;
  std::vector<std::vector<int>> loops_;
  std::vector<Einsum> sliced_;
  std::vector<double> repeats_;
};

}  // namespace

RunReport run_cascade(const Cascade& c, const ArchSpec& a, DType dt, Fusion fusion, const MapperOptions& mopt, MapCache* cache) {
  return Planner(c, a, dt, fusion, mopt, cache, {}).run();
}

ModelConfig shard_model(const ModelConfig& m, int64_t tp, int64_t ep) {
  const SourceLoc at{"--tp"};
  if (tp < 1) throw UserError(at, "--tp must be at least 1");
  ModelConfig s = m;
  if (ep > 1) s.moe_intermediate_size = m.expert_width();  // whole experts, split by expert
  if (tp == 1) return s;
  if (m.num_attention_heads % tp)
    throw UserError(at, fmt::format("--tp {} does not divide the {} attention heads of '{}'", tp, m.num_attention_heads, m.name));
  if (m.intermediate_size % tp)
    throw UserError(at, fmt::format("--tp {} does not divide the FFN width {} of '{}'", tp, m.intermediate_size, m.name));
  const int64_t kv = m.num_key_value_heads;
  if (kv % tp != 0 && tp % kv != 0)
    throw UserError(at, fmt::format("--tp {} neither divides nor is a multiple of the {} KV heads of '{}'", tp, kv, m.name));
  s.num_attention_heads = m.num_attention_heads / tp;
  s.num_key_value_heads = kv % tp == 0 ? kv / tp : 1;
  s.intermediate_size = m.intermediate_size / tp;
  // Experts under TP: each split by its columns as a dense MLP is (expert parallelism splits
  // them by expert instead).
  for (auto [width, what] : {std::pair{ep > 1 ? 0 : m.moe_intermediate_size, "expert width"}, {m.shared_expert_size, "shared experts' width"}})
    if (width % tp)
      throw UserError(at, fmt::format("--tp {} does not divide the {} {} of '{}'", tp, what, width, m.name));
  if (ep == 1) s.moe_intermediate_size = m.moe_intermediate_size / tp;
  s.shared_expert_size = m.shared_expert_size / tp;
  s.vocab_size = (m.vocab_size + tp - 1) / tp;
  return s;
}

// The layer ranks of a transformer cascade: L, and L_g for each further group of layers.
static std::vector<int> layer_ranks(const Cascade& c) {
  std::vector<int> out;
  for (size_t r = 0; r < c.ranks.size(); ++r)
    if (base_name(c.ranks[r].name) == "L") out.push_back(static_cast<int>(r));
  return out;
}

// Where the type of an emulated matrix product was chosen: the quantization scheme's key or
// flag when it is one of the scheme's types, else the model file.
static SourceLoc emulation_source(const ModelConfig& m, const std::string& note) {
  const Quantization& q = m.quant;
  // Notes start with the asked type's name and a space (note_emulation()).
  auto names = [&](DType t) { return note.starts_with(std::string(dtype_name(t)) + " "); };
  const bool scheme = q.active && (names(q.weights) || (q.activations && names(*q.activations)));
  return scheme && !q.loc.file.empty() ? q.loc : m.loc;
}

// RunOptions::offload: moves the placed shares of `mem` (the device tier's memory) to their
// tiers, checks each tier holds them, prices the streams and stretches the step; returns the
// J per device the streams spend on their tiers and links.
static double place_offload(RunReport& r, TierMemory& mem, std::vector<TierMemory>& held, const ArchSpec& a, const RunOptions& opt, int64_t layers) {
  if (opt.offload.empty()) return 0;
  if (r.pp > 1) throw UserError(opt.offload.front().loc, "an offloaded share with pipeline stages is not modelled; place it with --pp 1");
  const bool decode = opt.phase.kind == PhaseKind::Decode;
  const double weights = mem.weights, kv = mem.kv_cache;
  double placed[2] = {0, 0}, energy = 0;
  for (const TierPlacement& pl : opt.offload) {
    std::string why;
    const std::optional<TierPath> path = tier_path(a, pl.tier, mem.tier, &why);
    if (!path) throw UserError(pl.loc, why);
    const bool w = pl.what == Offloaded::Weights;
    placed[w ? 0 : 1] += pl.fraction;
    if (placed[w ? 0 : 1] > 1 + 1e-9) throw UserError(pl.loc, fmt::format("the shares of the {} placed off the device add up to more than 1", w ? "weights" : "KV cache"));
    OffloadRun o;
    o.tier = pl.tier;
    o.what = w ? "weights" : "KV cache";
    o.links = fmt::format("{}", fmt::join(path->links, " + "));
    o.fraction = pl.fraction;
    const double bytes = pl.fraction * (w ? weights : kv);
    if (w) {
      o.read_bytes = bytes;  // every step reads every weight
    } else if (decode) {
      // The step reads the cache and appends one token to it.
      const double tokens = static_cast<double>(opt.phase.context + 1);
      o.read_bytes = bytes * (tokens - 1) / tokens, o.write_bytes = bytes / tokens;
    } else {
      // A prefill reads the cached context and writes the prompt's keys and values.
      const double tokens = static_cast<double>(opt.phase.context + opt.phase.prompt);
      o.read_bytes = bytes * static_cast<double>(opt.phase.context) / tokens, o.write_bytes = bytes * static_cast<double>(opt.phase.prompt) / tokens;
    }
    if (o.write_bytes > 0 && path->write_bandwidth <= 0)
      throw UserError(pl.loc, fmt::format("tier '{}' gives no write bandwidth, and the KV cache is written every step", pl.tier));
    o.bandwidth = path->read_bandwidth;
    o.time = o.read_bytes / path->read_bandwidth + (o.write_bytes > 0 ? o.write_bytes / path->write_bandwidth : 0);
    energy += (o.read_bytes + o.write_bytes) * path->energy;
    r.offload_time += o.time;
    auto it = std::find_if(held.begin(), held.end(), [&](const TierMemory& t) { return t.tier == pl.tier; });
    if (it == held.end()) {
      held.push_back(TierMemory{pl.tier, path->capacity});
      it = held.end() - 1;
    }
    (w ? it->weights : it->kv_cache) += bytes;
    if (opt.check_memory && it->total() > it->capacity * (1 + 1e-12))
      throw UserError(pl.loc, fmt::format("tier '{}' holds {:.2f} GiB per device, and the shares placed on it need {:.2f} GiB", pl.tier,
                                          it->capacity / (1ull << 30), it->total() / (1ull << 30)));
    r.offloads.push_back(o);
  }
  mem.weights -= placed[0] * weights;
  mem.kv_cache -= placed[1] * kv;
  const double busy = r.step_time - r.host_time;
  const double stretched = std::max(busy, r.offload_time) + r.offload_time / static_cast<double>(std::max<int64_t>(1, layers));
  r.offload_stall = stretched - busy;
  r.step_time = stretched + r.host_time;
  return energy;
}

PipelineHops pipeline_hops(const Fabric& f, int64_t pp, int64_t stage_devices, double message, double base_scale) {
  PipelineHops h;
  const int64_t d = f.domain();
  std::set<std::string> links;
  for (int64_t s = 0; s + 1 < pp; ++s) {
    const bool across = stage_devices >= d || ((s + 1) * stage_devices) % d == 0;
    const Link& l = across ? *f.out : *f.up;
    const CollectiveCost c = collective_cost(l, Collective::SendRecv, 2, message, base_scale);
    h.time += c.time;
    h.slowest = std::max(h.slowest, c.time);
    h.each.push_back(c.time);
    h.each_link.push_back(l.name);
    h.energy += c.bytes * l.energy;
    links.insert(l.name);
  }
  h.links = fmt::format("{}", fmt::join(links, " + "));
  return h;
}

KernelKind kernel_kind(const Cascade& c, const std::vector<int>& members) {
  bool attention = false, contraction = false, experts = false, exp = false, rowwise = false;
  std::optional<KernelKind> quantized;
  for (int id : members) {
    const Einsum& e = c.einsums[static_cast<size_t>(id)];
    attention |= is_attention_core(c.tensors[static_cast<size_t>(e.lhs.tensor)].name);
    exp |= e.ops[OpClass::Exp] > 0;
    if (e.ops[OpClass::Mac] > 0) {
      contraction = true;
      // A quantized weight (one with scales, or a block-scaled format): dequantized in the
      // prologue when the activations are 16-bit (weight-only int8 / int4 / fp4), a scaled
      // narrow GEMM when they are fp8 or block-scaled too.
      std::optional<DType> weight, activations;
      for (const Access& acc : e.reads) {
        const Tensor& t = c.tensors[static_cast<size_t>(acc.tensor)];
        experts |= t.role == TensorRole::ExpertWeight;
        if (t.role == TensorRole::Weight || t.role == TensorRole::ExpertWeight) {
          if (t.scale_bytes > 0 || block_scaled(t.dtype)) weight = t.dtype;
        } else if (t.role != TensorRole::Index) {
          activations = t.dtype;
        }
      }
      const bool sixteen = activations && dtype_bytes(*activations) == 2;
      // Weight-only kinds by the stored width: under a byte (int4, MXFP6/4, NVFP4) or a byte.
      const bool narrow_float = activations && (activations == DType::FP8 || block_scaled(*activations));
      if (weight && sixteen) quantized = dtype_bytes(*weight) < 1 ? KernelKind::GemmW4A16 : KernelKind::GemmW8A16;
      else if (weight && (weight == DType::FP8 || block_scaled(*weight)) && narrow_float) quantized = KernelKind::GemmFp8;
    }
    rowwise |= e.ops[OpClass::Max] > 0 || e.ops[OpClass::Exp] > 0 || e.ops[OpClass::Div] > 0 || e.ops[OpClass::Unary] > 0 ||
               (e.n_out < static_cast<int>(e.vars.size()) && e.ops[OpClass::Mac] == 0);
  }
  // Fused attention: its products and its softmax in one kernel. The 3-pass cascade's products
  // on their own are batched GEMMs, its softmax a row-wise kernel.
  if (attention && contraction && exp) {
    const int p = c.find_rank("P");
    return p >= 0 && c.ranks[static_cast<size_t>(p)].extent == 1 ? KernelKind::AttentionDecode : KernelKind::AttentionPrefill;
  }
  if (quantized) return *quantized;
  if (contraction) return experts ? KernelKind::GroupedGemm : KernelKind::Gemm;
  return rowwise ? KernelKind::Rowwise : KernelKind::Elementwise;
}

bool is_attention_core(const std::string& n) {
  static const std::set<std::string, std::less<>> core = {"QK", "QKC", "GM", "SN", "SD", "SKD", "A", "AV", "BQK", "BQC", "LM", "RM", "SLN", "SLD",
                                                          "SLNV", "PRM", "RD", "SPD", "RNV", "SPNV", "SNP", "SRP"};
  return core.count(base_name(n)) > 0;
}

bool block_is_attention(const RunReport& r, const BlockRun& b) {
  for (int i : b.einsums)
    if (is_attention_core(r.einsums[static_cast<size_t>(i)].name)) return true;
  return false;
}

namespace {

// What pipeline() leaves for the energy and memory accounts.
struct Pipeline {
  double send_energy = 0;  ///< J over all devices per step: the activations between stages
  /// Layers of each group (ModelConfig::layer_groups()) in each stage.
  std::vector<std::vector<int64_t>> group_layers;
};

// Pipeline parallelism over a report of the whole model mapped for one micro-batch: stage s
// takes its layers' share of each layer block (a block repeated over a group of n layers costs
// n equal instances), the blocks before the layers (embedding) go to the first stage and those
// after (final norm, head) to the last, and each stage its sublayers' share of the
// all-reduces and its expert layers' of the all-to-alls. Between stages each device sends its
// 1/tp share of the micro-batch's hidden states (Megatron-LM's scatter-gather), over the peer
// link within a scale-up domain and the network across one. With M micro-batches the first
// goes through every stage and hop, then each later one adds the slowest stage or hop:
//   time = sum_s t_s + sum_hops t_x + (M - 1) max(max_s t_s, max t_x).
// The report's per-device figures become the slowest stage's over the M micro-batches.
Pipeline pipeline(RunReport& r, const ModelConfig& m, const Fabric& fab, const Runtime& rt, int64_t layers_option, int64_t layers, int64_t pp,
                  int64_t micro, int64_t stage_devices, double rows) {
  const std::vector<LayerGroup> groups = m.layer_groups(layers_option);
  if (groups.size() != r.group_layers.size())
    throw UserError(SourceLoc{"--pp"}, fmt::format("'{}': the cascade's {} groups of layers do not match the model's {}", m.name, r.group_layers.size(), groups.size()));
  std::vector<LayerKind> kinds = m.layers();
  kinds.resize(static_cast<size_t>(layers));
  Pipeline out;
  r.stages.assign(static_cast<size_t>(pp), {});
  out.group_layers.assign(static_cast<size_t>(pp), std::vector<int64_t>(groups.size(), 0));
  std::vector<double> sub(static_cast<size_t>(pp), 0), moe(static_cast<size_t>(pp), 0);
  int64_t at = 0;
  for (int64_t s = 0; s < pp; ++s) {
    RunReport::Stage& st = r.stages[static_cast<size_t>(s)];
    st.first_layer = at;
    st.layers = layers / pp + (s < layers % pp ? 1 : 0);
    for (int64_t i = at; i < at + st.layers; ++i) {
      const LayerKind& k = kinds[static_cast<size_t>(i)];
      const auto g = std::find_if(groups.begin(), groups.end(), [&](const LayerGroup& x) { return x.kind == k; }) - groups.begin();
      out.group_layers[static_cast<size_t>(s)][static_cast<size_t>(g)] += 1;
      sub[static_cast<size_t>(s)] += static_cast<double>(m.sublayers_of(k));
      moe[static_cast<size_t>(s)] += k.ffn == FfnKind::Moe ? 1 : 0;
    }
    at += st.layers;
  }
  // Each stage's blocks and collectives for one micro-batch.
  std::vector<double> compute(static_cast<size_t>(pp), 0);
  const auto first_layer_block = std::find_if(r.blocks.begin(), r.blocks.end(), [](const BlockRun& b) { return b.layer_group >= 0; }) - r.blocks.begin();
  for (size_t i = 0; i < r.blocks.size(); ++i) {
    const BlockRun& b = r.blocks[i];
    if (b.layer_group < 0) {
      compute[static_cast<long>(i) < first_layer_block ? 0 : static_cast<size_t>(pp - 1)] += b.time;
      continue;
    }
    const auto g = static_cast<size_t>(b.layer_group);
    for (size_t s = 0; s < compute.size(); ++s)
      compute[s] += b.time * static_cast<double>(out.group_layers[s][g]) / static_cast<double>(r.group_layers[g]);
  }
  double all_sub = 0, all_moe = 0;
  for (size_t s = 0; s < sub.size(); ++s) all_sub += sub[s], all_moe += moe[s];
  auto share = [](double part, double whole) { return whole > 0 ? part / whole : 0.0; };
  size_t slow = 0;
  double sum = 0;
  for (size_t s = 0; s < compute.size(); ++s) {
    r.stages[s].time = compute[s] + r.allreduce_time * share(sub[s], all_sub) + r.alltoall_time * share(moe[s], all_moe);
    sum += r.stages[s].time;
    if (r.stages[s].time > r.stages[slow].time) slow = s;
  }
  // The hops: each device sends its 1/tp share of the hidden states.
  const double message = rows * static_cast<double>(m.hidden_size) * dtype_bytes(m.dtype) / static_cast<double>(r.tp);
  const PipelineHops ph = pipeline_hops(fab, pp, stage_devices, message, rt.collective_base);
  const double hops = ph.time, slowest_hop = ph.slowest;
  out.send_energy = static_cast<double>(micro) * static_cast<double>(stage_devices) * ph.energy;
  const double M = static_cast<double>(micro);
  r.pipeline_time = sum + hops + (M - 1) * std::max(r.stages[slow].time, slowest_hop);
  r.pipeline_send_time = hops;
  r.pipeline_hops = ph.each;
  r.pipeline_hop_links = ph.each_link;
  r.pipeline_send_bytes = M * message;
  r.pipeline_link = ph.links;
  r.bubble = r.pipeline_time > 0 ? 1 - M * sum / (static_cast<double>(pp) * r.pipeline_time) : 0;
  r.pipeline_interval = std::max(M * std::max(r.stages[slow].time, slowest_hop), sum + hops);
  // Per device: the slowest stage's, over the micro-batches.
  const double ar = M * share(sub[slow], all_sub), a2a = M * share(moe[slow], all_moe);
  r.compute_time = M * compute[slow];
  r.allreduce_time *= ar, r.allreduce_bytes *= ar, r.allreduce_network_bytes *= ar, r.allreduces *= ar;
  r.alltoall_time *= a2a, r.alltoall_bytes *= a2a, r.alltoall_network_bytes *= a2a, r.alltoalls *= a2a;
  return out;
}

}  // namespace

RunReport run_model(const ModelConfig& model, const ArchSpec& hardware, const RunOptions& opt, MapCache* cache) {
  // The software's per-kernel cost for this phase, on a copy of the hardware.
  const Runtime& rt = opt.runtime ? *opt.runtime : default_runtime();
  // (A copy only when the launch cost differs: loops over design points apply it once.)
  std::optional<ArchSpec> applied;
  if (hardware.gpu && (hardware.gpu->launch_overhead != rt.per_kernel(opt.phase.kind) || hardware.gpu->kind_efficiency != rt.efficiency))
    applied = with_runtime(hardware, rt, opt.phase.kind);
  const ArchSpec& a = applied ? *applied : hardware;
  if (a.arrays.empty())
    throw UserError(a.loc, fmt::format("'{}' has no compute arrays: it holds memory and links only, and cannot run a model", a.name));
  // Expert parallelism: ep / tp data-parallel groups of the batch, each tensor-parallel over
  // tp devices; every device's experts compute the pairs routed to them from all tokens.
  const int64_t ep = opt.ep, dp = opt.ep > 1 ? opt.ep / opt.tp : 1;
  if (ep > 1) {
    if (model.num_local_experts == 0) throw UserError(SourceLoc{"--ep"}, fmt::format("--ep {}: '{}' has no experts to split", ep, model.name));
    if (ep % opt.tp != 0)
      throw UserError(SourceLoc{"--ep"}, fmt::format("--ep {} is not a multiple of --tp {} (attention is tensor-parallel within each of ep / tp groups)", ep, opt.tp));
  }
  ModelConfig m = shard_model(model, opt.tp, ep);
  if (opt.dtype) m.dtype = *opt.dtype;
  const Fusion fusion = opt.fusion.value_or(a.gpu ? Fusion::Kernels : Fusion::Greedy);
  const Fabric fab = fabric(a);
  for (const auto& [flag, n] : {std::pair{"--tp", opt.tp}, std::pair{"--ep", ep}})
    if (const std::string why = fab.unusable(n); !why.empty()) throw UserError(a.loc, fmt::format("'{}' cannot run {} {}: {}", a.name, flag, n, why));
  std::shared_ptr<const Cascade> built;
  Phase local = opt.phase;
  if (ep > 1) {
    const int64_t tokens_per_request = opt.phase.kind == PhaseKind::Decode ? 1 : opt.phase.prompt;
    local.expert_parallel = ep;
    local.expert_tokens = opt.phase.batch * tokens_per_request;
    local.batch = (opt.phase.batch + dp - 1) / dp;  // this group's requests (the largest group sets the pace)
  }
  // Pipeline parallelism: pp stages of contiguous layers, each on its own max(tp, ep) devices;
  // the (group's) batch goes through as micro-batches, so the model is mapped for one.
  const int64_t pp = opt.pp, stage_devices = std::max(opt.tp, ep);
  const int64_t built_layers = opt.phase.layers > 0 ? std::min(opt.phase.layers, model.num_hidden_layers) : model.num_hidden_layers;
  int64_t micro = 1;
  if (pp > 1) {
    if (pp > built_layers) throw UserError(SourceLoc{"--pp"}, fmt::format("--pp {}: '{}' has {} layers to split into stages", pp, model.name, built_layers));
    if (opt.microbatches > 0) {
      if (local.batch % opt.microbatches != 0)
        throw UserError(SourceLoc{"--microbatches"}, fmt::format("--microbatches {} does not divide the batch of {} requests{}", opt.microbatches, local.batch,
                                                                 dp > 1 ? " per expert-parallel group" : ""));
      micro = opt.microbatches;
    } else {
      for (int64_t k = std::min(pp, local.batch); k >= 1 && micro == 1; --k)
        if (local.batch % k == 0) micro = k;
    }
    if (const std::string why = fab.unusable(stage_devices * pp); !why.empty())
      throw UserError(a.loc, fmt::format("'{}' cannot run --pp {} over {} devices a stage: {}", a.name, pp, stage_devices, why));
    local.batch /= micro;
    if (ep > 1) local.expert_tokens = (local.expert_tokens + micro - 1) / micro;
  } else if (opt.microbatches > 1) {
    throw UserError(SourceLoc{"--microbatches"}, "--microbatches splits the batch between pipeline stages: it needs --pp 2 or more");
  }
  const Phase& ph = local;
  const std::string workload = m.fingerprint() + "|" + ph.key();
  if (cache)
    if (auto it = cache->cascades().find(workload); it != cache->cascades().end()) built = it->second;
  if (!built) {
    built = std::make_shared<const Cascade>(bind_cascade(transformer_cascade(m, ph)));
    if (cache) cache->cascades()[workload] = built;
  }
  const Cascade& c = *built;
  Planner p(c, a, m.dtype, fusion, opt.mapper, cache, layer_ranks(c), opt.mapping_arch, workload);
  RunReport r = p.run();
  if (!opt.emulate && !r.emulated.empty())
    throw UserError(opt.dtype ? opt.dtype_loc : emulation_source(m, r.emulated.front()),
                    fmt::format("{}; {} computes them at the wider type (and says so), or choose a type the arrays run", r.emulated.front(),
                                opt.emulate_switch));
  r.model = model.name;
  r.quantization = m.quant.name;
  r.phase = opt.phase;
  r.tp = opt.tp;
  r.pp = pp;
  r.microbatches = micro;
  for (EinsumRun& e : r.einsums) e.component = model_component(c.einsums[static_cast<size_t>(e.einsum)], e.name);

  // Tensor parallelism: the all-reduces of the hidden state (arch/collective.h), not overlapped.
  const bool decode = opt.phase.kind == PhaseKind::Decode;
  const double rows = static_cast<double>(ph.batch) * static_cast<double>(decode ? 1 : opt.phase.prompt);  // this device's tokens
  double link_energy = 0;  // J per device: the collectives' bytes over their links
  if (opt.tp > 1) {
    const TensorParallelComm comm = tensor_parallel_allreduces(fab, opt.tp, static_cast<double>(m.sublayers(opt.phase.layers)),
                                                               rows * static_cast<double>(m.hidden_size) * dtype_bytes(m.dtype), rt.collective_base);
    r.allreduce_bytes = comm.bytes + comm.out_bytes;
    r.allreduce_network_bytes = comm.out_bytes;
    r.allreduce_domains = comm.domains;
    link_energy += fab.energy(comm.bytes, comm.out_bytes);
    // Replayed from a graph, each all-reduce is a node like any kernel. Launched eagerly, its
    // dispatch is not added: the fitted bases (measured under eager launches) already hold the
    // ranks' arrival spread that dispatch causes.
    r.allreduce_time = comm.time + (rt.graphed(opt.phase.kind) ? comm.count * rt.graph_node : 0.0);
    r.allreduce_link = fab.links(opt.tp);
    r.allreduce_algo = collective_algo_name(comm.algo);
    r.allreduces = comm.count;
    r.allreduce_each = comm.count > 0 ? r.allreduce_time / comm.count : 0;
  }
  // Expert parallelism across data-parallel groups: per MoE layer, each device dispatches its
  // tokens' k (token, expert) pairs to the experts' devices and receives the results back
  // (all-to-alls of tokens x k hidden states; dispatched in the activations' type, combined
  // in the model's). Within one tensor-parallel group the MLP's all-reduce combines them.
  r.ep = ep;
  if (ep > 1 && dp > 1) {
    int64_t moe = 0;
    for (const LayerGroup& g : m.layer_groups(opt.phase.layers)) moe += g.kind.ffn == FfnKind::Moe ? g.count : 0;
    // Skewed routing: the busiest device receives the most, and the all-to-all ends with it.
    r.expert_imbalance = m.expert_imbalance(ep);
    const double pairs = rows * static_cast<double>(m.num_experts_per_tok) * static_cast<double>(m.hidden_size) * r.expert_imbalance;
    const DType sent = m.quant.active && m.quant.activations ? *m.quant.activations : m.dtype;
    const CollectiveCost dispatch = collective_cost(fab, Collective::AllToAll, ep, pairs * dtype_bytes(sent), rt.collective_base);
    const CollectiveCost back = collective_cost(fab, Collective::AllToAll, ep, pairs * dtype_bytes(m.dtype), rt.collective_base);
    r.alltoalls = 2.0 * static_cast<double>(moe);
    r.alltoall_time = static_cast<double>(moe) * (dispatch.time + back.time) + (rt.graphed(opt.phase.kind) ? r.alltoalls * rt.graph_node : 0.0);
    r.alltoall_bytes = static_cast<double>(moe) * (dispatch.bytes + back.bytes + dispatch.out_bytes + back.out_bytes);
    r.alltoall_network_bytes = static_cast<double>(moe) * (dispatch.out_bytes + back.out_bytes);
    r.alltoall_each = moe > 0 ? r.alltoall_time / static_cast<double>(moe) : 0;
    r.alltoall_link = fab.links(ep);
    link_energy += static_cast<double>(moe) * (fab.energy(dispatch) + fab.energy(back));
  }
  // The layers in model order, for the timing engine (when the cascade's groups are the model's).
  if (const std::vector<LayerGroup> gs = m.layer_groups(opt.phase.layers); gs.size() == r.group_layers.size()) {
    for (const LayerGroup& g : gs) {
      r.group_sublayers.push_back(static_cast<double>(m.sublayers_of(g.kind)));
      r.group_moe.push_back(g.kind.ffn == FfnKind::Moe ? 1 : 0);
    }
    std::vector<LayerKind> kinds = m.layers();
    kinds.resize(static_cast<size_t>(built_layers));
    for (const LayerKind& k : kinds)
      r.layer_order.push_back(static_cast<int>(std::find_if(gs.begin(), gs.end(), [&](const LayerGroup& x) { return x.kind == k; }) - gs.begin()));
  }
  r.runtime = rt.name;
  r.host_time = rt.iteration;
  r.step_time = r.compute_time + r.allreduce_time + r.alltoall_time + r.host_time;
  r.tokens = rows * static_cast<double>(dp);
  // Energy per step and device (a pipeline's devices share the micro-batches' work).
  double dynamic = 0;
  for (const BlockRun& b : r.blocks) dynamic += b.energy;
  for (const EinsumRun& e : r.einsums) r.compute_energy += e.compute_energy;
  Pipeline pipe;
  if (pp > 1) {
    pipe = pipeline(r, m, fab, rt, opt.phase.layers, built_layers, pp, micro, stage_devices, rows);
    const double share = static_cast<double>(micro) / static_cast<double>(pp);
    dynamic *= share;
    link_energy = link_energy * share + pipe.send_energy / static_cast<double>(r.devices());
    r.compute_energy *= share;
    r.step_time = r.pipeline_time + r.host_time;
    r.tokens *= static_cast<double>(micro);
  }
  // Memory of one device, all in the tier that feeds the arrays.
  const MemoryTier& tier = *a.tier(storage_path(a, 0)[0]);
  TierMemory mem;
  mem.tier = tier.name;
  mem.capacity = tier.capacity;
  for (const Tensor& t : c.tensors)
    if (is_weight(t)) mem.weights += t.bytes();
  // The tokens each request's cache holds (windows and chunks keep their last tokens).
  const double cached = m.kv_tokens(decode ? opt.phase.context + 1 : opt.phase.context + opt.phase.prompt);
  const double kv_layers = opt.phase.layers > 0 ? static_cast<double>(r.layers) / static_cast<double>(m.num_hidden_layers) : 1.0;
  // Pruned key channels shrink the K half of the cache.
  const double kept = decode && ph.key_channels > 0 && ph.key_channels < m.head_dim
                          ? static_cast<double>(ph.key_channels + m.head_dim) / static_cast<double>(2 * m.head_dim)
                          : 1.0;
  // A pipeline's devices hold their stage's micro-batches' caches: all of the batch's.
  const double requests = static_cast<double>(ph.batch) * static_cast<double>(micro);
  double kv_attention = 0, kv_other = 0;
  if (!m.encoder_only) kv_attention = m.kv_bytes_per_token(ph.kv_dtype.value_or(m.dtype)) * kept * kv_layers * requests * cached;
  // Mamba layers keep a constant state per request (their conv inputs and the scan's state).
  const double mamba_state = m.ssm_state_bytes(ph.kv_dtype.value_or(m.dtype)) * requests;
  // Other persistent state (a linear-attention layer's): as the cascade declares it.
  // (Attention's keys and values, MLA's latents, Mamba's conv inputs and states are counted
  // above from the model.)
  static const std::set<std::string_view> counted = {"KC", "VC", "CKC", "KRC", "SSC", "SSO", "CVX", "CVB", "CVC"};
  for (const Tensor& t : c.tensors)
    if (t.role == TensorRole::KVCache && !counted.count(base_name(t.name))) kv_other += t.bytes() * static_cast<double>(micro);
  const std::vector<LayerGroup> groups = m.layer_groups(opt.phase.layers);
  auto cache_of = [&](const std::vector<int64_t>& per_group) {  // the state of the layers counted per group
    double attention = 0, all_attention = 0, n = 0, mamba = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      const bool attends = groups[g].kind.mixer == MixerKind::Attention;
      attention += attends ? static_cast<double>(per_group[g]) : 0;
      all_attention += attends ? static_cast<double>(groups[g].count) : 0;
      mamba += groups[g].kind.mixer == MixerKind::Mamba ? static_cast<double>(per_group[g]) : 0;
      n += static_cast<double>(per_group[g]);
    }
    return (all_attention > 0 ? kv_attention * attention / all_attention : 0) + mamba * mamba_state + kv_other * n / static_cast<double>(built_layers);
  };
  std::vector<int64_t> every(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) every[g] = groups[g].count;
  mem.kv_cache = cache_of(every);
  if (pp > 1) {
    // The stage whose device holds the most: its layers' weights (a weight over a group of n
    // layers holds n equal slices), the embedding on the first stage and the head on the last
    // (by where the weight is first read), and its layers' caches.
    const std::vector<int> lr = layer_ranks(c);
    auto layer_rank = [&](const std::vector<int>& ranks) {
      for (size_t g = 0; g < lr.size(); ++g)
        if (std::find(ranks.begin(), ranks.end(), lr[g]) != ranks.end()) return static_cast<int>(g);
      return -1;
    };
    size_t first_layer_einsum = c.einsums.size();
    for (size_t i = 0; i < c.einsums.size() && first_layer_einsum == c.einsums.size(); ++i)
      for (const Var& v : c.einsums[i].vars)
        if (std::find(lr.begin(), lr.end(), v.rank) != lr.end()) first_layer_einsum = i;
    std::vector<double> weights(static_cast<size_t>(pp), 0);
    for (size_t ti = 0; ti < c.tensors.size(); ++ti) {
      const Tensor& t = c.tensors[ti];
      if (!is_weight(t)) continue;
      if (const int g = layer_rank(t.ranks); g >= 0) {
        for (size_t s = 0; s < weights.size(); ++s)
          weights[s] += t.bytes() * static_cast<double>(pipe.group_layers[s][static_cast<size_t>(g)]) / static_cast<double>(r.group_layers[static_cast<size_t>(g)]);
        continue;
      }
      size_t reader = c.einsums.size();
      for (size_t i = 0; i < c.einsums.size() && reader == c.einsums.size(); ++i)
        for (const Access& acc : c.einsums[i].reads)
          if (acc.tensor == static_cast<int>(ti)) reader = i;
      weights[reader < first_layer_einsum ? 0 : static_cast<size_t>(pp - 1)] += t.bytes();
    }
    size_t heavy = 0;
    double most = -1;
    for (size_t s = 0; s < weights.size(); ++s)
      if (const double held = weights[s] + cache_of(pipe.group_layers[s]); held > most) most = held, heavy = s;
    mem.weights = weights[heavy];
    mem.kv_cache = cache_of(pipe.group_layers[heavy]);
    mem.stage = static_cast<int64_t>(heavy);
  }
  mem.activations = p.activation_bytes(r);

  // Offloaded shares (--weights-tier, --kv-tier): held on another tier and streamed to the
  // device every step (placed_offload below).
  std::vector<TierMemory> held;
  link_energy += place_offload(r, mem, held, a, opt, r.layers > 0 ? r.layers : built_layers);
  r.memory.push_back(mem);
  for (const TierMemory& t : held) r.memory.push_back(t);
  r.tokens_per_s = r.step_time > 0 ? r.tokens / r.step_time : 0;

  // Energy per step over all devices: the cost model's dynamic energy, the collectives' bytes
  // over their links, and the active baseline power for the step's duration.
  r.energy = static_cast<double>(r.devices()) * (dynamic + link_energy + a.power.active * r.step_time);
  r.memory_energy = dynamic + link_energy - r.compute_energy;
  r.power = r.step_time > 0 ? a.power.active + (dynamic + link_energy) / r.step_time : a.power.idle;
  r.energy_per_token = r.tokens > 0 ? r.energy / r.tokens : 0;
  // No report holds a number that is not finite: a configuration that gives one (a rate or
  // efficiency near zero, a capacity near infinity) is the user's to fix, said here.
  for (const auto& [what, v] : {std::pair<const char*, double>{"step time", r.step_time}, {"energy", r.energy}, {"power", r.power}, {"tokens/s", r.tokens_per_s}})
    if (!std::isfinite(v))
      throw UserError(a.loc, fmt::format("'{}' gives a non-finite {} for {} (a bandwidth, rate or efficiency at or near zero?)", a.name, what, m.name));

  if (opt.check_memory && !mem.fit().holds(mem.kv_cache)) {
    // The hint: the cheapest split that holds it (placement.h: the fewest devices, then the
    // cheapest or fastest of them), searched up to 256 devices.
    PlacementOptions po;
    po.max_devices = 256;
    po.fewest_devices = true;
    const std::vector<PlacementPoint> places = search_placements(model, hardware, opt, po, cache);
    const bool found = !places.empty() && places.front().invalid.empty() && places.front().fits;
    const std::string hint = found ? fmt::format("or {} (the cheapest placement that holds it: {} devices, {} ms a step)", places.front().at.flags(),
                                                 places.front().at.devices(), fmt::format("{:.4g}", places.front().step * 1e3))
                                   : fmt::format("no placement of up to {} devices holds it", po.max_devices);
    throw UserError(SourceLoc{"--batch/--context"},
                    fmt::format("the deployment does not fit: each device needs {:.2f} GiB of {} (weights {:.2f} GiB, KV cache {:.2f} GiB, "
                                "activations {:.2f} GiB) but '{}' has {:.2f} GiB; use a smaller batch or context, {}",
                                mem.total() / (1ull << 30), tier.name, mem.weights / (1ull << 30), mem.kv_cache / (1ull << 30),
                                mem.activations / (1ull << 30), a.name, mem.capacity / (1ull << 30), hint));
  }
  return r;
}

}  // namespace einsim
