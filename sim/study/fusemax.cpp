#include "sim/study/fusemax.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "common/paths.h"
#include "sim/cost/mapper.h"
#include "sim/run/run.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

namespace einsim {

std::string_view fm_config_name(FmConfig c) {
  switch (c) {
    case FmConfig::Unfused: return "Unfused";
    case FmConfig::Flat: return "FLAT";
    case FmConfig::Cascade: return "+Cascade";
    case FmConfig::Architecture: return "+Architecture";
    case FmConfig::Binding: return "+Binding";
  }
  return "?";
}

FmModel load_fm_model(const std::string& name) {
  const ModelConfig m = load_model(name);
  FmModel f;
  f.name = name;
  f.display = m.name;
  f.d_model = m.hidden_size;
  f.heads = m.num_attention_heads;
  f.head_dim = m.head_dim;
  f.ffn = m.intermediate_size;
  f.layers = m.num_hidden_layers;
  return f;
}

namespace {

constexpr int64_t kTile = 256;  // FuseMax's M0 and P0: the 2D array's side (docs/REFERENCES.md)

// The FuseMax binding (paper §V, docs/REFERENCES.md): the 2D array runs the tile-wide Einsums of
// the 1-pass loop body, the 1D array the per-query running values and the final division.
bool fusemax_2d(const std::string& tensor) {
  static const std::set<std::string> k2d = {"BQK", "LM", "SLN", "SLD", "SLNV"};
  return k2d.count(tensor) > 0;
}

// Loads the shipped cascade for one (batch, head) instance: the study repeats it over the
// batch and the heads, which are independent and run one after another.
Cascade attention_cascade(bool three_pass, int64_t seq, int64_t head_dim, int64_t block = kTile) {
  const std::string file = config_path(three_pass ? "workloads/attention-3pass.toml" : "workloads/attention-1pass.toml");
  std::vector<std::string> sets = {"cascade.params.batch=1", "cascade.params.heads=1", fmt::format("cascade.params.kv_len={}", seq),
                                   fmt::format("cascade.params.q_len={}", seq), fmt::format("cascade.params.head_dim={}", head_dim)};
  if (!three_pass) sets.push_back(fmt::format("cascade.params.block={}", std::min(block, seq)));
  return load_cascade(file, sets);
}

// A pure re-indexing of an input (BK[e,m1,m0] = K[e,m1*M0+m0]): a view of the tensor in
// DRAM, not work.
bool is_view(const Cascade& c, const Einsum& e) {
  double ops = 0;
  for (double n : e.ops.n) ops += n;
  return ops == 0 && e.reads.size() == 1 && c.tensors[static_cast<size_t>(e.reads[0].tensor)].is_input();
}

int array_index(const ArchSpec& a, std::string_view name) {
  const ComputeArray* arr = a.array(name);
  if (!arr) throw InternalError(fmt::format("preset '{}' has no array '{}'", a.name, name));
  return static_cast<int>(arr - a.arrays.data());
}

// The 2D array's side: FuseMax's M0 and P0 (its key block and query tile).
int64_t side(const ArchSpec& a) { return a.arrays[static_cast<size_t>(array_index(a, "pe2d"))].shape.front(); }

// The study maps hundreds of Einsums: the tile budget whole-model runs use (RunOptions;
// docs/ARCHITECTURE.md measures what it gives up).
MapperOptions study_mapper() {
  MapperOptions o;
  o.max_tiles = RunOptions().mapper.max_tiles;
  return o;
}

std::vector<std::string> with(std::vector<std::string> v, std::string extra) {
  v.push_back(std::move(extra));
  return v;
}

// FLAT's dataflow at one point as the artifact takes it: the cloud rows of FLAT's own search
// result, data/published/fusemax-artifact/flat_validation.csv (the artifact's
// data/pregenerated/flat_validation.csv, MIT): which tensors stay in the 32 MiB buffer, the
// stationarity of the two matrix products, the query tile, and the share of the on-chip fibers
// spilled to DRAM.
struct FlatDataflow {
  std::set<std::string> on_chip;  ///< of Q, K, QK, A, V, AV
  bool qk_weight = false, av_weight = false;  ///< weight-stationary (else output-stationary)
  int64_t rows = 0;                           ///< queries per fused tile (the whole head: P)
  double spilled = 0;
};

std::map<std::string, FlatDataflow> load_flat_dataflows() {
  const std::string file = data_path("published/fusemax-artifact/flat_validation.csv");
  std::ifstream in(file);
  if (!in) throw UserError(SourceLoc{file}, "cannot read the artifact's FLAT dataflow table");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> head;
  {
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) head.push_back(x);
  }
  auto col = [&](const char* name) {
    for (size_t i = 0; i < head.size(); ++i)
      if (head[i] == name) return i;
    throw UserError(SourceLoc{file, 1, 1}, fmt::format("no column '{}'", name));
  };
  const size_t platform = col("platform"), model = col("models"), seq = col("seq_len"), stat_qk = col("QK_stationarity"),
               stat_av = col("AV_stationarity"), gran = col("fusion_granularity"), p1 = col("P1"), spill = col("proportion_spilled"),
               P = col("P");
  std::map<std::string, FlatDataflow> out;
  for (int n = 2; std::getline(in, line); ++n) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    if (f.size() != head.size()) throw UserError(SourceLoc{file, n, 1}, fmt::format("{} fields where the header has {}", f.size(), head.size()));
    if (f[platform] != "cloud") continue;
    FlatDataflow d;
    for (const char* t : {"Q", "K", "QK", "A", "V", "AV"})
      if (f[col((std::string(t) + "_loc").c_str())] == "onchip") d.on_chip.insert(t);
    d.qk_weight = f[stat_qk] == "weight";
    d.av_weight = f[stat_av] == "weight";
    d.rows = f[gran] == "row" ? std::stoll(f[p1]) : std::stoll(f[P]);
    d.spilled = std::stod(f[spill]);
    out[f[model] + "|" + f[seq]] = d;
  }
  return out;
}

// DRAM words one (batch, head) moves under FLAT's dataflow, as the artifact's Timeloop runs of
// its fixed mappings count them (src/accel/flat.py, stable_softmax.py): an operand kept off
// chip bypasses the buffer and is fetched again for every tile of the other operand;
// output-stationary products walk the reduced rank innermost, weight-stationary ones hold a
// 256-wide block of K (or V) in the PEs for a whole tile of queries; off-chip scores are
// written, read once by the softmax (which keeps one query's fiber on chip) and the
// probabilities written and read back; a share of every on-chip fiber access spills.
double flat_dataflow_words(const FlatDataflow& d, double P, double M, double E, double F) {
  const double t = static_cast<double>(kTile), tiles = P / static_cast<double>(d.rows);
  auto on = [&](const char* x) { return d.on_chip.count(x) > 0; };
  double w = 0;
  // QK = Q x K
  if (d.qk_weight) {
    w += M * E * tiles;                       // K, a block at a time in the PEs
    w += on("Q") ? P * E : P * E * M / t;     // Q, once per block of keys unless kept
  } else {
    w += on("Q") ? P * E : P * M * E / t;     // Q, per tile of keys
    w += on("K") ? M * E * tiles : P * M * E / t;
  }
  if (!on("QK")) w += 2 * P * M;              // written, then read by the softmax's max
  // AV = A x V
  if (d.av_weight) w += M * F * tiles;
  else w += on("V") ? M * F * tiles : P * M * F / t;
  if (!on("A")) w += 2 * P * M;               // the softmax writes it, AV reads it
  w += P * F;                                  // AV
  // Spill: the on-chip fibers' accesses (QK's write, the softmax's reads and writes, AV's read of A)
  if (on("QK") && on("A")) w += 7 * d.spilled * P * M;
  return w;
}

struct Member {
  int id = -1;
  Einsum sliced;
  double repeats = 1;  // per block instance (iterations of the key-block loop)
  bool in_loop = false;
  int array = -1;
};

class Study {
 public:
  Study(const std::vector<std::string>& fusemax_sets = {}, const std::vector<std::string>& flat_sets = {}, bool artifact = false)
      : flat_(load_arch("flat", flat_sets)), fusemax_(load_arch("fusemax", fusemax_sets)),
        flat_in_turn_(load_arch("flat", with(flat_sets, "arch.arrays.pe1d.own_unit=[]"))), artifact_(artifact),
        artifact_buffer_(fusemax_.level("gbuf")->capacity) {}
  const ArchSpec flat_, fusemax_;
  /// FLAT's hardware with the 1D exp unit sharing the PE's issue slot: exp(x - max) costs the
  /// subtract and the exp in turn, as the artifact charges +Cascade's SLN and PRM ("exponential"
  /// plus "add" per element, its FlatPEProposal class).
  const ArchSpec flat_in_turn_;
  /// The artifact's reading (docs/STUDIES.md lists its definitions).
  const bool artifact_ = false;
  std::map<std::string, FlatDataflow> flat_table_;
  /// The buffer the artifact's reading sizes the 1-pass query tile for, on either hardware (its
  /// Proposal classes' l3_sz, 16 MiB: FuseMax's buffer, so the fusemax preset's capacity).
  double artifact_buffer_ = 0;
  void set_artifact_buffer(double b) { artifact_buffer_ = b; }

  int64_t mappings() const { return mappings_; }

  FmCost attention(const FmModel& m, int64_t seq, FmConfig cfg, int64_t batch) {
    const bool three = cfg == FmConfig::Unfused || cfg == FmConfig::Flat;
    const ArchSpec& a = cfg == FmConfig::Architecture || cfg == FmConfig::Binding ? fusemax_
                        : artifact_ && cfg == FmConfig::Cascade                      ? flat_in_turn_
                                                                                      : flat_;
    const Cascade c = attention_cascade(three, seq, m.head_dim, side(a));
    const double heads = static_cast<double>(batch * m.heads);
    if (cfg == FmConfig::Unfused) return leak(unfused(c, a, heads), a);
    if (artifact_ && cfg == FmConfig::Flat) return flat_artifact(m, c, a, seq, heads);
    FmCost best;
    bool found = false;
    for (int64_t rows = 1; rows <= seq; rows *= 2) {
      // The 1-pass schedule walks queries in tiles of the 2D array's width (P0) at least.
      if (!three && rows < std::min(seq, side(a))) continue;
      std::optional<FmCost> r = fused(c, a, cfg, rows, heads);
      if (!r) continue;
      // Equal latency (compute-bound tiles): the one that moves the fewest DRAM bytes, which
      // is the one that uses the buffer to hold more queries (FuseMax's point: the buffer
      // cuts traffic); then the smaller buffer.
      const bool tie = r->latency <= best.latency * (1 + 1e-9) && r->latency >= best.latency * (1 - 1e-9);
      if (!found || r->latency < best.latency * (1 - 1e-9) ||
          (tie && (r->dram_bytes < best.dram_bytes * (1 - 1e-9) ||
                   (r->dram_bytes <= best.dram_bytes * (1 + 1e-9) && r->buffer_bytes < best.buffer_bytes)))) {
        best = *r;
        found = true;
      }
    }
    if (!found) throw UserError(SourceLoc{"--seq"}, fmt::format("no tile of queries of {} fits the buffer of '{}' at sequence length {}", m.name, a.name, seq));
    return leak(best, a);
  }

  // einsim's reading charges the chip's leakage (the preset's active power) for the whole
  // latency; the artifact's does not (its action counts carry no leak: src/accel/cascade.py).
  FmCost leak(FmCost r, const ArchSpec& a) const {
    if (!artifact_) r.energy += a.power.active * r.latency;
    return r;
  }

  // FLAT under the artifact's reading: its compute as einsim maps it over the query tile of
  // FLAT's own dataflow, its DRAM traffic as that dataflow moves it (flat_dataflow_words()).
  FmCost flat_artifact(const FmModel& m, const Cascade& c, const ArchSpec& a, int64_t seq, double heads) {
    if (flat_table_.empty()) flat_table_ = load_flat_dataflows();
    static const std::map<std::string, std::string> names = {{"bert-base", "BERT"}, {"trxl-wt103", "TrXL"}, {"t5-small-encoder", "T5"}, {"xlm", "XLM"}};
    const auto name = names.find(m.name);
    const auto it = name == names.end() ? flat_table_.end() : flat_table_.find(name->second + "|" + token_words(static_cast<double>(seq)));
    if (it == flat_table_.end())
      throw UserError(SourceLoc{"--reading"}, fmt::format("the artifact's reading takes FLAT's dataflow from its table, which has no row for {} at {} "
                                                          "(it has bert-base, trxl-wt103, t5-small-encoder and xlm at 512 to 1M)",
                                                          m.name, token_words(static_cast<double>(seq))));
    const FlatDataflow& d = it->second;
    std::optional<FmCost> r = fused(c, a, FmConfig::Flat, std::min(d.rows, seq), heads, nullptr, nullptr, &d);
    if (!r) throw InternalError("FLAT's tile did not map");
    const MemoryTier& dram = *a.tier("dram");
    const double s = static_cast<double>(seq), bytes = flat_dataflow_words(d, s, s, static_cast<double>(m.head_dim), static_cast<double>(m.head_dim)) *
                                                       2 * heads;  // fp16
    const double ideal_2d = r->util_2d * r->latency, ideal_1d = r->util_1d * r->latency;
    r->energy += (bytes - r->dram_bytes) * dram.energy;
    r->dram_bytes = bytes;
    r->busy_dram = bytes / dram.read_bandwidth;
    r->spilled = d.spilled;
    r->latency = std::max({r->busy_2d, r->busy_1d, r->busy_dram});
    finish(*r, ideal_2d, ideal_1d, false);
    return *r;
  }

  // The linear layers of one layer (Q, K, V, Z projections, FFN1, FFN2) as GEMMs over all
  // B x P tokens, each mapped alone by the mapper (default binding: the 2D array).
  struct Linear {
    FmCost cost;
    double ideal_2d = 0, ideal_1d = 0;  // s each array would take at its peak
  };
  Linear linear(const FmModel& m, int64_t seq, bool fusemax_hw, int64_t batch) {
    const ArchSpec& a = fusemax_hw ? fusemax_ : flat_;
    const int64_t t = batch * seq;
    const std::vector<std::array<int64_t, 3>> gemms = {{t, m.d_model, m.d_model}, {t, m.d_model, m.d_model}, {t, m.d_model, m.d_model},
                                                       {t, m.d_model, m.d_model}, {t, m.ffn, m.d_model},     {t, m.d_model, m.ffn}};
    Linear lin;
    FmCost& out = lin.cost;
    const int i2d = array_index(a, "pe2d");
    for (const auto& g : gemms) {
      const std::string key = fmt::format("gemm|{}|{}x{}x{}", a.name, g[0], g[1], g[2]);
      auto it = gemm_.find(key);
      if (it == gemm_.end()) {
        const Cascade c = gemm_cascade(g[0], g[1], g[2], DType::FP16);
        ++mappings_;
        MapResult r = map_einsum(c, c.einsums[0], a, DType::FP16, study_mapper());
        const double ideal = compute_bound(c.einsums[0], a.arrays[static_cast<size_t>(r.mapping.array)], DType::FP16);
        it = gemm_.emplace(key, std::make_pair(std::move(r), ideal)).first;
      }
      const Cost& k = it->second.first.cost;
      out.latency += k.time;
      out.energy += k.energy + (artifact_ ? 0 : a.power.active * k.time);
      out.dram_bytes += k.traffic[0].read_bytes + k.traffic[0].write_bytes;
      out.busy_dram += k.traffic[0].busy;
      const int arr = it->second.first.mapping.array;
      (arr == i2d ? out.busy_2d : out.busy_1d) += k.compute;
      (arr == i2d ? lin.ideal_2d : lin.ideal_1d) += it->second.second;
    }
    return lin;
  }

 private:
  int bind(const ArchSpec& a, FmConfig cfg, const Cascade& c, const Einsum& e) const {
    const std::string& name = c.tensors[static_cast<size_t>(e.lhs.tensor)].name;
    // The scaling of Q by 1/sqrt(E) is not in the paper's cascades (it drops the scale): the
    // mapper's default binding places it.
    if (name == "QS") return bind_array(e, a, DType::FP16);
    if (cfg == FmConfig::Architecture || cfg == FmConfig::Binding) return array_index(a, fusemax_2d(name) ? "pe2d" : "pe1d");
    // FLAT hardware: matrix products on the 2D array, softmax (everything else) on the 1D.
    return array_index(a, e.ops[OpClass::Mac] > 0 ? "pe2d" : "pe1d");
  }

  struct Mapped {
    MapResult r;
    double ideal = 0;  // s at the array's peak
  };

  const Mapped& map(const Cascade& c, const Einsum& e, const ArchSpec& a, int array, const std::vector<int>& resident,
                    const std::vector<int>& in_array = {}) {
    std::string key = fmt::format("{}|{}|{}|{}|", a.name, fmt::ptr(&a), array, e.text);
    for (const Var& v : e.vars) key += fmt::format("{},", v.extent);
    for (int t : resident) key += fmt::format("r{}", c.tensors[static_cast<size_t>(t)].name);
    for (int t : in_array) key += fmt::format("a{}", c.tensors[static_cast<size_t>(t)].name);
    for (const Access& acc : e.reads) key += fmt::format("|{}", fmt::join(c.tensors[static_cast<size_t>(acc.tensor)].shape, "x"));
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
    MapperOptions opt = study_mapper();
    opt.array = array;
    ++mappings_;
    auto m = std::make_unique<Mapped>();
    m->r = map_einsum(c, e, a, DType::FP16, opt, resident, in_array);
    m->ideal = compute_bound(e, a.arrays[static_cast<size_t>(array)], DType::FP16);
    return *cache_.emplace(key, std::move(m)).first->second;
  }

  // Fills the array shares and the bottleneck from busy times.
  static void finish(FmCost& r, double ideal_2d, double ideal_1d, bool serial) {
    r.util_2d = r.latency > 0 ? ideal_2d / r.latency : 0;
    r.util_1d = r.latency > 0 ? ideal_1d / r.latency : 0;
    const double arrays = serial ? r.busy_2d + r.busy_1d : std::max(r.busy_2d, r.busy_1d);
    if (r.busy_dram > arrays) r.bottleneck = "DRAM bandwidth";
    else if (serial) r.bottleneck = "2D + 1D arrays (in turn)";
    else r.bottleneck = r.busy_2d >= r.busy_1d ? "2D array" : "1D array";
  }

  // Unfused: every Einsum alone, its operands from DRAM and its result back (the mapper's
  // own cost per Einsum); a softmax fiber that does not fit the buffer spills like any tile.
  FmCost unfused(const Cascade& c, const ArchSpec& a, double heads) {
    FmCost r;
    double ideal_2d = 0, ideal_1d = 0;
    const int i2d = array_index(a, "pe2d");
    // The artifact's reading runs the softmax as one phase with each query's fiber on chip: it
    // reads QK from DRAM once (GM's read) and writes A; GM, SN and SD never leave the buffer.
    auto tensor_id = [&](const char* name) {
      for (size_t t = 0; t < c.tensors.size(); ++t)
        if (c.tensors[t].name == name) return static_cast<int>(t);
      return -1;
    };
    // Its softmax is one phase (src/accel/unfused.py): the phase takes the longer of its DRAM
    // time and its compute time, summed over the four Einsums. Its cascade has no 1/sqrt(E) scale
    // (QS), which folds into Q.
    const std::set<std::string> softmax = {"GM", "SN", "SD", "A"};
    double soft_dram = 0, soft_compute = 0;
    for (int id : c.order()) {
      const Einsum& e = c.einsums[static_cast<size_t>(id)];
      if (e.reads.empty() || is_view(c, e)) continue;
      const int arr = bind(a, FmConfig::Unfused, c, e);
      std::vector<int> on_chip;
      const std::string& out = c.tensors[static_cast<size_t>(e.lhs.tensor)].name;
      if (artifact_ && out == "QS") continue;
      if (artifact_ && softmax.count(out)) {
        for (const char* t : {"GM", "SN", "SD"})
          if (out != "A" || std::string(t) != "A") on_chip.push_back(tensor_id(t));
        if (out != "GM") on_chip.push_back(tensor_id("QK"));
        if (out == "A") on_chip.erase(std::remove(on_chip.begin(), on_chip.end(), e.lhs.tensor), on_chip.end());
        on_chip.erase(std::remove(on_chip.begin(), on_chip.end(), -1), on_chip.end());
      }
      const Mapped& m = map(c, e, a, arr, on_chip);
      const Cost& k = m.r.cost;
      if (artifact_ && softmax.count(out)) {
        soft_dram += k.traffic[0].busy * heads;
        soft_compute += k.compute * heads;
      } else {
        // (The artifact's time model, Timeloop's, has no pipeline fill and drain.)
        r.latency += (artifact_ ? k.time - k.fill_drain - k.launch : k.time) * heads;
      }
      r.energy += k.energy * heads;
      r.dram_bytes += (k.traffic[0].read_bytes + k.traffic[0].write_bytes) * heads;
      r.busy_dram += k.traffic[0].busy * heads;
      (arr == i2d ? r.busy_2d : r.busy_1d) += k.compute * heads;
      (arr == i2d ? ideal_2d : ideal_1d) += m.ideal * heads;
      // The largest working set one Einsum keeps in the buffer.
      r.buffer_bytes = std::max(r.buffer_bytes, EinsumCost(c, e).occupancy(m.r.mapping, 1));
    }
    r.latency += std::max(soft_dram, soft_compute);
    finish(r, ideal_2d, ideal_1d, false);
    return r;
  }

  // Bytes the block keeps live in the buffer at its peak: every resident intermediate from
  // its first write to its last read (values carried by the key-block loop, and values the
  // loop reads but does not write, for the whole loop); an element-wise Einsum writes over
  // an operand it reads for the last time (the 3-pass softmax rewrites its fiber in place).
  static double live_peak(const Cascade& c, const std::vector<Member>& ms, const std::set<int>& resident, const std::set<int>& carried) {
    std::map<int, double> bytes;
    std::map<int, int> first, last;
    int loop_lo = -1, loop_hi = -1;
    for (int k = 0; k < static_cast<int>(ms.size()); ++k)
      if (ms[static_cast<size_t>(k)].in_loop) loop_hi = k, loop_lo = loop_lo < 0 ? k : loop_lo;
    for (int k = 0; k < static_cast<int>(ms.size()); ++k) {
      const Einsum& e = ms[static_cast<size_t>(k)].sliced;
      std::vector<int64_t> tile;
      for (const Var& v : e.vars) tile.push_back(v.extent);
      auto touch = [&](const Access& acc, bool write) {
        if (!resident.count(acc.tensor)) return;
        const double b = footprint(c, e, acc, tile) * c.tensors[static_cast<size_t>(acc.tensor)].element_bytes();
        bytes[acc.tensor] = std::max(bytes[acc.tensor], b);
        if (write && !first.count(acc.tensor)) first[acc.tensor] = k;
        if (!write) last[acc.tensor] = k;
        if (!write && ms[static_cast<size_t>(k)].in_loop && loop_hi >= 0) {
          // Read inside the loop but written before it, or carried: live through the loop.
          const auto f = first.find(acc.tensor);
          if (f == first.end() || f->second < loop_lo || f->second >= k) last[acc.tensor] = std::max(last[acc.tensor], loop_hi);
        }
      };
      touch(e.lhs, true);
      for (const Access& acc : e.reads) touch(acc, false);
    }
    for (int t : carried) first[t] = 0, last[t] = static_cast<int>(ms.size()) - 1;
    double peak = 0;
    for (int k = 0; k < static_cast<int>(ms.size()); ++k) {
      const Einsum& e = ms[static_cast<size_t>(k)].sliced;
      int in_place = -1;  // the tensor this Einsum writes, when it reuses a dying operand's space
      if (e.n_out == static_cast<int>(e.vars.size()) && resident.count(e.lhs.tensor))
        for (const Access& acc : e.reads)
          if (resident.count(acc.tensor) && !carried.count(acc.tensor) && last[acc.tensor] == k && bytes[acc.tensor] >= bytes[e.lhs.tensor])
            in_place = e.lhs.tensor;
      double live = 0;
      for (const auto& [t, b] : bytes) {
        if (!first.count(t) || !last.count(t)) continue;  // written or read only outside the block
        if (first[t] <= k && k <= last[t] && t != in_place) live += b;
      }
      peak = std::max(peak, live);
    }
    return peak;
  }


  // The arrays' time as the artifact's FuseMax classes combine the Einsums' busy times
  // (src/accel/proposal.py, stall_proposal.py: the "waterfall" of the 1-pass loop body). Each
  // phase runs the 2D array's Einsums beside the 1D array's and waits for the slower:
  //   +Binding:       max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV)
  //   +Architecture:  max(QK+LM, RD+AV) + stall + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV+RNV)
  // where +Architecture's stall waits for each tile's running max to cross the 2D array's
  // row, LM's busy time once per PE of the row (`width`). einsim's QS (the 1/sqrt(E) scale) is
  // not in the artifact's cascade, which folds it away: it takes no phase here.
  static double artifact_phases(const std::vector<FmCost::Activity>& act, bool stall, double width) {
    auto busy = [&](const char* name) {
      for (const FmCost::Activity& x : act)
        if (x.einsum == name) return x.share;  // seconds, before the shares are taken
      return 0.0;
    };
    const double first = std::max(busy("BQK") + busy("LM"), busy("RD") + busy("AV") + (stall ? 0 : busy("RNV")));
    const double wait = stall ? busy("LM") * width : 0;
    return first + wait + busy("RM") + std::max(busy("SLN") + busy("SLD"), busy("PRM") + busy("SPD")) +
           std::max(busy("SLNV"), busy("SPNV") + (stall ? busy("RNV") : 0));
  }

  // The buffer the artifact's Proposal classes charge a tile of queries (src/accel/proposal.py,
  // flat_pe_proposal.py): per query Q (einsim's QS), RM, RD and RNV, plus the block's scores BQK and
  // exponentials SLN where they are not held in the PEs; plus one key block of K and V (BK, BV).
  static double artifact_peak(const Cascade& c, const std::vector<Member>& ms, const std::set<int>& in_array) {
    std::map<std::string, double> bytes;
    for (const Member& mb : ms) {
      const Einsum& e = mb.sliced;
      std::vector<int64_t> tile;
      for (const Var& v : e.vars) tile.push_back(v.extent);
      auto touch = [&](const Access& acc) {
        const Tensor& t = c.tensors[static_cast<size_t>(acc.tensor)];
        if (in_array.count(acc.tensor) && (t.name == "BQK" || t.name == "SLN")) return;
        double& b = bytes[t.name];
        b = std::max(b, footprint(c, e, acc, tile) * t.element_bytes());
      };
      touch(e.lhs);
      for (const Access& acc : e.reads) touch(acc);
    }
    double total = 0;
    for (const char* name : {"QS", "RM", "RD", "RNV", "BQK", "SLN", "BK", "BV"}) {
      auto it = bytes.find(name);
      if (it != bytes.end()) total += it->second;
      else if (std::string_view(name) != "BQK" && std::string_view(name) != "SLN")
        throw InternalError(fmt::format("the 1-pass cascade has no tensor '{}'", name));
    }
    return total;
  }

 public:
  // A fused block over tiles of `rows` queries: all its Einsums run per tile with their
  // intermediates resident (the 1-pass loop body once per key block). Returns nothing when
  // the tile's live intermediates do not fit the buffer. `dataflow`: FLAT costed under the
  // artifact's dataflow table (its bypassed operands cost no buffer energy).
  std::optional<FmCost> fused(const Cascade& c, const ArchSpec& a, FmConfig cfg, int64_t rows, double heads, double* live = nullptr,
                              FmTileCycles* loop_cycles = nullptr, const FlatDataflow* dataflow = nullptr) {
    const int p_rank = c.find_rank("P"), m1_rank = c.find_rank("M1");
    const int64_t seq = c.ranks[static_cast<size_t>(p_rank)].extent;
    std::vector<Member> ms;
    std::set<int> written, carried, views;
    for (int id : c.order()) {
      const Einsum& e = c.einsums[static_cast<size_t>(id)];
      if (is_view(c, e)) {
        views.insert(e.lhs.tensor);
        continue;
      }
      if (e.reads.empty()) {  // RM = -inf, RD = 0, RNV = 0: the loop's state, set on chip
        carried.insert(e.lhs.tensor);
        written.insert(e.lhs.tensor);
        continue;
      }
      Member mb;
      mb.id = id;
      mb.sliced = e;
      slice_einsum(mb.sliced, {{p_rank, rows}});
      for (const Var& v : e.vars) mb.in_loop |= v.rank == m1_rank && m1_rank >= 0;
      if (m1_rank >= 0) mb.repeats = slice_einsum(mb.sliced, {{m1_rank, 1}});
      mb.array = bind(a, cfg, c, e);
      written.insert(e.lhs.tensor);
      ms.push_back(std::move(mb));
    }
    // Resident: everything written inside the block that something in it reads (the output
    // AV goes to DRAM). Inputs the block reads whole per tile of queries, K and V (or their
    // key blocks), stay on chip across tiles when they fit beside the intermediates.
    std::set<int> resident;
    for (int t : written)
      if (!c.tensors[static_cast<size_t>(t)].readers.empty()) resident.insert(t);
    // An intermediate that one array writes and only the same array reads, one element per PE
    // (a 256x256 tile of scores in the 2D array), stays in the PEs' registers between the
    // Einsums: FuseMax's BQK and SLN (paper §V). Larger ones go through the buffer.
    std::set<int> in_array;
    for (int t : resident) {
      if (carried.count(t)) continue;
      int arr = -2;
      double elems = 0;
      for (const Member& mb : ms) {
        const Einsum& e = mb.sliced;
        bool touches = e.lhs.tensor == t;
        for (const Access& acc : e.reads) touches |= acc.tensor == t;
        if (!touches) continue;
        arr = arr == -2 || arr == mb.array ? mb.array : -1;
        std::vector<int64_t> tile;
        for (const Var& v : e.vars) tile.push_back(v.extent);
        if (e.lhs.tensor == t) elems = std::max(elems, footprint(c, e, e.lhs, tile));
      }
      // The array works through the tile of queries 256 at a time (P0), finishing each 256 x 256
      // tile's Einsums before the next: what must fit the PEs is one such tile's worth.
      const double per_tile = elems * std::min(1.0, static_cast<double>(side(a)) / static_cast<double>(rows));
      if (arr >= 0 && per_tile <= static_cast<double>(a.arrays[static_cast<size_t>(arr)].pes())) in_array.insert(t);
    }
    // The artifact's reading hands a key block's per-query values (LM, SLD, PRM, SPD, SLNV, SPNV:
    // one value or one F-vector per query, written inside the loop) between the arrays through
    // the 1D PEs' register files, the reg_file_1d level of its Proposal mappings, not through the
    // buffer; the running state (RM, RD, RNV) returns to the buffer after each block.
    if (artifact_ && m1_rank >= 0) {
      const int m0_rank = c.find_rank("M0");
      for (const Member& mb : ms) {
        const int t = mb.sliced.lhs.tensor;
        const Tensor& x = c.tensors[static_cast<size_t>(t)];
        if (!mb.in_loop || !resident.count(t) || carried.count(t)) continue;
        if (std::find(x.ranks.begin(), x.ranks.end(), m0_rank) == x.ranks.end()) in_array.insert(t);
      }
    }

    // The artifact's reading of the 1-pass schedules charges the buffer what its Proposal classes
    // count per query (Q, the running RM, RD and RNV, and one key block's scores and exponentials
    // where they pass through the buffer rather than stay in the PEs) plus one key block of K and
    // V, against 16 MiB; other per-block temporaries are not charged, and K and V stream once
    // per tile of queries.
    const bool artifact_state = artifact_ && m1_rank >= 0;
    const double capacity = artifact_state ? artifact_buffer_ : a.level("gbuf")->capacity;
    const double peak = artifact_state ? artifact_peak(c, ms, in_array) : live_peak(c, ms, resident, carried);
    if (live) *live = peak;
    // Intermediates beyond the buffer spill (FLAT may; the 1-pass schedules never need to):
    // that share of every fiber lives in DRAM, and each write and read of it crosses.
    // (The artifact's reading charges FLAT no spill: its FLAT streams K and V once per tile of
    // queries without counting the tile's score fibers against the buffer.)
    const double spill = peak > capacity && !(artifact_ && cfg == FmConfig::Flat) ? 1 - capacity / peak : 0;
    if (spill > 0 && cfg != FmConfig::Flat) return std::nullopt;
    std::set<int> held;
    double held_bytes = 0;
    if (rows < seq) {
      for (const Member& mb : ms)
        for (const Access& acc : c.einsums[static_cast<size_t>(mb.id)].reads) {
          const Tensor& x = c.tensors[static_cast<size_t>(acc.tensor)];
          if (!x.is_input() && !views.count(acc.tensor)) continue;
          if (std::find(x.ranks.begin(), x.ranks.end(), p_rank) != x.ranks.end()) continue;  // read once per tile anyway
          if (held.insert(acc.tensor).second) held_bytes += x.bytes();
        }
      if (spill > 0 || artifact_state || peak + held_bytes > capacity) held.clear(), held_bytes = 0;
    }
    std::vector<int> on_chip(resident.begin(), resident.end());
    on_chip.insert(on_chip.end(), held.begin(), held.end());
    // The artifact's reading holds each key block of K and V on chip while the tile of queries
    // uses it: K and V cross DRAM once per tile of queries, whatever the mapper's loop order.
    double streamed_bytes = 0;
    if (artifact_state)
      for (int t : views) {
        on_chip.push_back(t);
        for (const Einsum& e : c.einsums)
          if (e.lhs.tensor == t) streamed_bytes += c.tensors[static_cast<size_t>(e.reads[0].tensor)].bytes();
      }
    const double tiles = static_cast<double>(seq) / static_cast<double>(rows) * heads;  // powers of two: exact
    const bool serial = cfg == FmConfig::Architecture;
    const int i2d = array_index(a, "pe2d");
    FmCost r;
    r.rows = rows;
    r.kv_read_once = !held.empty() || rows == seq;
    r.buffer_bytes = std::min(peak, capacity) + held_bytes;
    r.spilled = spill;
    double ideal_2d = 0, ideal_1d = 0, fill = 0, busy_gbuf = 0;
    for (const Member& mb : ms) {
      std::vector<int> mine;
      for (int t : on_chip) {
        bool touches = mb.sliced.lhs.tensor == t;
        for (const Access& acc : mb.sliced.reads) touches |= acc.tensor == t;
        if (touches) mine.push_back(t);
      }
      std::vector<int> regs;
      for (int t : mine)
        if (in_array.count(t)) regs.push_back(t);
      const Mapped& m = map(c, mb.sliced, a, mb.array, mine, regs);
      const Cost& k = m.r.cost;
      const double n = mb.repeats * tiles;
      if (loop_cycles && mb.in_loop)
        (mb.array == i2d ? loop_cycles->cycles_2d : loop_cycles->cycles_1d) += k.compute * a.arrays[static_cast<size_t>(mb.array)].clock;
      r.energy += k.energy * n;
      if (dataflow && k.traffic.size() > 1) {
        // FLAT's dataflow under the artifact's reading: operands kept off chip bypass the
        // buffer (they cost DRAM, charged by the caller), so of the matrix products' buffer
        // accesses only the on-chip scores' (QK's write, AV's read of A) remain.
        const std::string& out = c.tensors[static_cast<size_t>(mb.sliced.lhs.tensor)].name;
        if (out == "QK" || out == "AV") {
          const StorageLevel& gb = *a.level("gbuf");
          const double scores = static_cast<double>(rows) * static_cast<double>(seq) * 2;  // bytes of one tile's scores
          const double kept = out == "QK" ? (dataflow->on_chip.count("QK") ? scores * gb.write_energy : 0)
                                          : (dataflow->on_chip.count("A") ? scores * gb.read_energy : 0);
          r.energy += (kept - k.traffic[1].read_bytes * gb.read_energy - k.traffic[1].write_bytes * gb.write_energy) * n;
        }
      }
      r.dram_bytes += (k.traffic[0].read_bytes + k.traffic[0].write_bytes) * n;
      r.busy_dram += k.traffic[0].busy * n;
      if (k.traffic.size() > 1) busy_gbuf += k.traffic[1].busy * n;
      (mb.array == i2d ? r.busy_2d : r.busy_1d) += k.compute * n;
      (mb.array == i2d ? ideal_2d : ideal_1d) += m.ideal * n;
      {
        const std::string name = c.tensors[static_cast<size_t>(c.einsums[static_cast<size_t>(mb.id)].lhs.tensor)].name;
        auto it = std::find_if(r.activity.begin(), r.activity.end(), [&](const FmCost::Activity& x) { return x.einsum == name; });
        if (it == r.activity.end()) it = r.activity.insert(r.activity.end(), {name, mb.array == i2d ? "2D" : "1D", 0.0});
        it->share += k.compute * n;  // seconds until the latency is known
      }
      fill = std::max(fill, k.fill_drain);
      if (spill > 0) {
        std::vector<int64_t> tile;
        for (const Var& v : mb.sliced.vars) tile.push_back(v.extent);
        std::set<int> seen;
        auto spilled = [&](const Access& acc, bool write) {
          if (!resident.count(acc.tensor) || carried.count(acc.tensor) || in_array.count(acc.tensor) || !seen.insert(acc.tensor).second) return;
          const double b = spill * footprint(c, mb.sliced, acc, tile) * c.tensors[static_cast<size_t>(acc.tensor)].element_bytes() * n;
          r.dram_bytes += b;
          r.busy_dram += b / (write ? a.tier("dram")->write_bandwidth : a.tier("dram")->read_bandwidth);
          r.energy += b * a.tier("dram")->energy;
        };
        spilled(mb.sliced.lhs, true);
        for (const Access& acc : mb.sliced.reads) spilled(acc, false);
      }
    }
    // Inputs held on chip come from DRAM once per (batch, head).
    const MemoryTier& dram = *a.tier("dram");
    r.dram_bytes += held_bytes * heads;
    r.busy_dram += held_bytes * heads / dram.read_bandwidth;
    r.energy += held_bytes * heads * dram.energy;
    const double streamed = streamed_bytes * tiles;
    r.dram_bytes += streamed;
    r.busy_dram += streamed / dram.read_bandwidth;
    r.energy += streamed * dram.energy;
    // Overlap (the TeAAL time model of the paper's artifact): within the block every resource
    // works concurrently, so time is the busiest one's; +Architecture's arrays take turns.
    double arrays = serial ? r.busy_2d + r.busy_1d : std::max(r.busy_2d, r.busy_1d);
    if (artifact_state && (cfg == FmConfig::Architecture || cfg == FmConfig::Binding))
      arrays = artifact_phases(r.activity, serial, static_cast<double>(a.arrays[static_cast<size_t>(i2d)].shape.back()));
    r.latency = std::max({arrays, r.busy_dram, busy_gbuf}) + (artifact_ ? 0 : fill * heads);
    for (FmCost::Activity& x : r.activity) x.share = r.latency > 0 ? x.share / r.latency : 0;
    finish(r, ideal_2d, ideal_1d, serial);
    return r;
  }

 private:
  std::map<std::string, std::unique_ptr<Mapped>> cache_;
  std::map<std::string, std::pair<MapResult, double>> gemm_;
  int64_t mappings_ = 0;

};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace

namespace {
// The FuseMax artifact's Accelergy area table (45 nm, um^2 per instance; docs/REFERENCES.md,
// "FuseMax artifact energy and area tables"). The artifact leaves adders out of its totals
// (counted in the MAC: src/accel/cascade.py, collect_area()).
constexpr double kAreaMac = 1545, kAreaMax = 49.29, kAreaExp = 8240, kAreaDivide = 23740;
constexpr double kAreaRfWordFuseMax = 4256.0 / 32;  // FuseMax's 32 x 16-bit PE register file
constexpr double kAreaRfWordFlat = 1838.0 / 16;     // FLAT's 4 x 64-bit PE register file
constexpr double kAreaBufferByte = 9.418e7 / (32.0 * (1 << 20));  // the 4,194,304 x 64-bit SRAM
}  // namespace

FmArea fm_area(bool fusemax, int64_t n, double buffer_bytes, double rf_words_2d, double rf_words_1d) {
  if (n < 1 || buffer_bytes < 0 || rf_words_2d < 0 || rf_words_1d < 0) throw InternalError("fm_area: negative or empty design");
  const double side = static_cast<double>(n), word = fusemax ? kAreaRfWordFuseMax : kAreaRfWordFlat;
  FmArea a;
  // FuseMax's PEs all have a MAC and a max unit (exp is 6 MACs + 1 add); its 1D PEs divide.
  // FLAT's 2D PEs are MACs; its 1D PEs add a max unit, an exp unit and a divider.
  a.array_2d = side * side * (kAreaMac + (fusemax ? kAreaMax : 0) + rf_words_2d * word);
  a.array_1d = side * (kAreaMac + kAreaMax + (fusemax ? 0 : kAreaExp) + kAreaDivide + rf_words_1d * word);
  a.buffer = buffer_bytes * kAreaBufferByte;
  return a;
}

FmTileCycles fusemax_tile_cycles(int64_t head_dim) {
  // One key block (M0 = 256) against one tile of 256 queries: the loop body of the 1-pass
  // cascade, each Einsum sliced to that tile and mapped on the array the binding gives it.
  Study st;
  FmTileCycles out;
  st.fused(attention_cascade(false, kTile, head_dim), st.fusemax_, FmConfig::Binding, kTile, 1, nullptr, &out);
  return out;
}

namespace {
// The paper's area-latency sweep (Fig. 12) as its artifact runs it (src/run.py, pareto(), and
// src/utils/pareto.py): for each 2D side n (and n 1D PEs), the buffer starts at the artifact's
// minimum, n x P1 x E x 8 fibers x 2 B with P1 the fewest tiles of queries that keep 2 x
// max(1, n / E) tiles in flight, and doubles until FuseMax's attention is no longer bound by
// DRAM; register files hold 2 (2D) and 8 (1D) words per tile in flight.
std::vector<FmParetoPoint> fusemax_pareto(const FmOptions& opt, int64_t& mappings) {
  std::vector<FmParetoPoint> out;
  const double clock = 940e6;  // both presets' clock (docs/REFERENCES.md)
  for (const std::string& name : opt.models) {
    const FmModel m = load_fm_model(name);
    for (int64_t n : opt.pe_dims) {
      if (n < 1 || n > opt.pareto_seq || (n & (n - 1)) != 0)
        throw UserError(SourceLoc{"--pe-dims"}, fmt::format("array side {} must be a power of two no larger than the sequence length {}", n, opt.pareto_seq));
      const int64_t min_tiles = std::max<int64_t>(1, n / m.head_dim) * 2, num_tiles = opt.pareto_seq / n;
      const int64_t min_p1 = std::max<int64_t>(1, min_tiles / num_tiles);
      const double min_buffer = static_cast<double>(n * min_p1 * m.head_dim * 8 * 2);
      FmParetoPoint pt;
      pt.model = name;
      pt.pe_dim = n;
      for (double buffer = min_buffer;; buffer *= 2) {
        std::vector<std::string> sets = opt.fusemax_sets;
        sets.push_back(fmt::format("arch.arrays.pe2d.shape=[{}, {}]", n, n));
        sets.push_back(fmt::format("arch.arrays.pe1d.shape=[{}]", n));
        sets.push_back(fmt::format("arch.levels.gbuf.capacity=\"{:.0f} B\"", buffer));
        // The buffer feeds the 2D array's two input edges, its output edge and the 1D array.
        sets.push_back(fmt::format("arch.levels.gbuf.bandwidth=\"{:.0f} B/s\"", 4.0 * static_cast<double>(n) * 2 * clock));
        Study st(sets, opt.flat_sets, opt.reading == "artifact");
        st.set_artifact_buffer(buffer);
        std::optional<FmCost> c;
        try {
          c = st.attention(m, opt.pareto_seq, FmConfig::Binding, opt.batch);
        } catch (const UserError&) {  // no tile of queries fits this buffer: a larger one
        }
        mappings += st.mappings();
        const bool bound = !c || c->busy_dram > std::max(c->busy_2d, c->busy_1d);
        if (c && (!bound || buffer >= (1 << 30))) {
          pt.buffer_bytes = buffer;
          pt.latency = c->latency;
          pt.dram_bytes = c->dram_bytes;
          pt.memory_bound = bound;
          break;
        }
        if (buffer >= (1 << 30)) throw UserError(SourceLoc{"--pe-dims"}, fmt::format("no buffer up to 1 GiB fits a tile of queries for a {}x{} array", n, n));
      }
      pt.area = fm_area(true, n, pt.buffer_bytes, static_cast<double>(2 * min_tiles), static_cast<double>(8 * min_tiles));
      out.push_back(pt);
    }
  }
  return out;
}
}  // namespace

FmStudy run_fusemax_study(const FmOptions& opt) {
  if (opt.models.empty()) throw UserError(SourceLoc{"--models"}, "no models given");
  if (opt.seqs.empty()) throw UserError(SourceLoc{"--seq"}, "no sequence lengths given");
  for (int64_t s : opt.seqs)
    if (s < kTile || (s & (s - 1)) != 0)
      throw UserError(SourceLoc{"--seq"}, fmt::format("sequence length {} must be a power of two of at least {} (whole 256x256 tiles)", s, kTile));
  if (opt.batch < 1) throw UserError(SourceLoc{"--batch"}, "--batch must be at least 1");
  if (opt.reading != "einsim" && opt.reading != "artifact")
    throw UserError(SourceLoc{"--reading"}, fmt::format("'{}' is not a reading: einsim or artifact", opt.reading));
  // The artifact's FLAT follows its dataflow table, made for FLAT's 32 MiB buffer and 256 x 256
  // array: overriding either would be ignored there, so it is refused.
  if (opt.reading == "artifact")
    for (const std::string& o : opt.flat_sets)
      if (o.starts_with("arch.levels.gbuf.capacity") || o.starts_with("arch.arrays.pe2d.shape"))
        throw UserError(SourceLoc{"--set"}, fmt::format("'{}': the artifact reading takes FLAT's dataflow from its table, made for FLAT's 32 MiB "
                                                        "buffer and 256 x 256 array; change them under --reading einsim",
                                                        o));
  Study st(opt.fusemax_sets, opt.flat_sets, opt.reading == "artifact");
  FmStudy out;
  out.batch = opt.batch;
  std::vector<double> att_speed, att_energy, e2e_speed, e2e_energy;
  for (const std::string& name : opt.models) {
    const FmModel m = load_fm_model(name);
    for (int64_t seq : opt.seqs) {
      FmPoint p;
      p.model = m;
      p.seq = seq;
      const Study::Linear lin_flat = st.linear(m, seq, false, opt.batch);
      const Study::Linear lin_fm = st.linear(m, seq, true, opt.batch);
      for (int k = 0; k < kFmConfigs; ++k) {
        const FmConfig cfg = static_cast<FmConfig>(k);
        const FmCost at = st.attention(m, seq, cfg, opt.batch);
        p.attention[static_cast<size_t>(k)] = at;
        const Study::Linear& ln = cfg == FmConfig::Architecture || cfg == FmConfig::Binding ? lin_fm : lin_flat;
        const FmCost& lin = ln.cost;
        // End to end: per layer the attention block and the six GEMMs run one after another.
        const double L = static_cast<double>(m.layers);
        FmCost e;
        e.latency = L * (at.latency + lin.latency);
        e.energy = L * (at.energy + lin.energy);
        e.dram_bytes = L * (at.dram_bytes + lin.dram_bytes);
        e.busy_2d = L * (at.busy_2d + lin.busy_2d);
        e.busy_1d = L * (at.busy_1d + lin.busy_1d);
        e.busy_dram = L * (at.busy_dram + lin.busy_dram);
        e.util_2d = (at.util_2d * at.latency + ln.ideal_2d) * L / e.latency;
        e.util_1d = (at.util_1d * at.latency + ln.ideal_1d) * L / e.latency;
        e.buffer_bytes = at.buffer_bytes;
        e.rows = at.rows;
        e.kv_read_once = at.kv_read_once;
        e.bottleneck = at.latency >= lin.latency ? "attention: " + at.bottleneck : "linear layers";
        p.end_to_end[static_cast<size_t>(k)] = e;
      }
      const FmCost& fa = p.attention[static_cast<size_t>(FmConfig::Flat)];
      const FmCost& ba = p.attention[static_cast<size_t>(FmConfig::Binding)];
      const FmCost& fe = p.end_to_end[static_cast<size_t>(FmConfig::Flat)];
      const FmCost& be = p.end_to_end[static_cast<size_t>(FmConfig::Binding)];
      att_speed.push_back(fa.latency / ba.latency);
      att_energy.push_back(ba.energy / fa.energy);
      e2e_speed.push_back(fe.latency / be.latency);
      e2e_energy.push_back(be.energy / fe.energy);

      // The pass analysis in action: passes over M, and what one tile of 256 queries keeps
      // live without spilling, for each cascade.
      FmPassRow pr;
      pr.model = m.name;
      pr.seq = seq;
      const Cascade c3 = attention_cascade(true, seq, m.head_dim), c1 = attention_cascade(false, seq, m.head_dim);
      pr.passes_3 = pass_analysis(c3, "M").passes;
      pr.passes_1 = pass_analysis(c1, "M").passes;
      auto buffer_at = [&](const Cascade& c, bool three) {
        double live = 0;
        st.fused(c, three ? st.flat_ : st.fusemax_, three ? FmConfig::Flat : FmConfig::Binding, kTile, 1, &live);
        return live;
      };
      pr.buffer_3 = buffer_at(c3, true);
      pr.buffer_1 = buffer_at(c1, false);
      pr.flat_rows = fa.rows;
      pr.flat_kv_read_once = fa.kv_read_once;
      pr.flat_spilled = fa.spilled;
      pr.flat_dram_share = fa.busy_dram / fa.latency;
      pr.flat_bottleneck = fa.bottleneck;
      out.passes.push_back(pr);
      out.points.push_back(std::move(p));
    }
  }
  out.headlines = {{"attention speedup, FuseMax over FLAT (x)", 6.7, mean(att_speed)},
                   {"attention energy, FuseMax / FLAT", 0.79, mean(att_energy)},
                   {"end-to-end speedup, FuseMax over FLAT (x)", 5.3, mean(e2e_speed)},
                   {"end-to-end energy, FuseMax / FLAT", 0.83, mean(e2e_energy)}};
  out.mappings = st.mappings();
  const auto gbuf = [](const ArchSpec& a) { return a.level("gbuf")->capacity; };
  // The presets' designs: FuseMax's 32-word PE register files, FLAT's 4 x 64-bit ones.
  out.area_fusemax = fm_area(true, side(st.fusemax_), gbuf(st.fusemax_), 32, 32);
  out.area_flat = fm_area(false, side(st.flat_), gbuf(st.flat_), 16, 16);
  if (opt.pareto) out.pareto = fusemax_pareto(opt, out.mappings);
  return out;
}

namespace {

std::string seq_words(int64_t s) { return token_words(static_cast<double>(s)); }

nlohmann::json cost_json(const FmCost& c) {
  nlohmann::json act = nlohmann::json::object();
  for (const FmCost::Activity& x : c.activity) act[x.einsum] = {{"array", x.array}, {"share", x.share}};
  return {{"activity", act}, {"latency_s", c.latency},     {"energy_j", c.energy},   {"dram_bytes", c.dram_bytes}, {"buffer_bytes", c.buffer_bytes},
          {"busy_2d_s", c.busy_2d},     {"busy_1d_s", c.busy_1d}, {"busy_dram_s", c.busy_dram}, {"util_2d", c.util_2d},
          {"util_1d", c.util_1d},       {"query_tile", c.rows},   {"kv_read_once", c.kv_read_once}, {"spilled", c.spilled},
          {"bottleneck", c.bottleneck}};
}

void add_rows(TextTable& t, const FmStudy& s, bool e2e) {
  for (const FmPoint& p : s.points) {
    const auto& cs = e2e ? p.end_to_end : p.attention;
    const FmCost& flat = cs[static_cast<size_t>(FmConfig::Flat)];
    const FmCost& unf = cs[static_cast<size_t>(FmConfig::Unfused)];
    for (int k = 0; k < kFmConfigs; ++k) {
      const FmCost& c = cs[static_cast<size_t>(k)];
      t.row({p.model.name, seq_words(p.seq), std::string(fm_config_name(static_cast<FmConfig>(k))), fmt::format("{:.4g}", c.latency * 1e3),
             fmt::format("{:.4g}", c.energy), fmt::format("{:.1f}%", 100 * c.util_2d), fmt::format("{:.1f}%", 100 * c.util_1d),
             fmt_bytes(c.dram_bytes), fmt_bytes(c.buffer_bytes), c.rows ? std::to_string(c.rows) : "-",
             fmt::format("{:.2f}", flat.latency / c.latency), fmt::format("{:.2f}", unf.latency / c.latency),
             fmt::format("{:.3f}", c.energy / flat.energy), fmt::format("{:.3f}", c.energy / unf.energy), c.bottleneck});
    }
  }
}

std::vector<std::string> cost_header() {
  return {"model", "seq", "config", "latency ms", "energy J", "2D util", "1D util", "DRAM", "buffer", "query tile",
          "speedup vs FLAT", "speedup vs Unfused", "energy / FLAT", "energy / Unfused", "bottleneck"};
}

}  // namespace

std::string format_fusemax(const FmStudy& s, Format f) {
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "study-fusemax";
    j["batch"] = s.batch;
    j["points"] = nlohmann::json::array();
    for (const FmPoint& p : s.points) {
      nlohmann::json pj = {{"model", p.model.name}, {"seq", p.seq}, {"attention", nlohmann::json::object()}, {"end_to_end", nlohmann::json::object()}};
      for (int k = 0; k < kFmConfigs; ++k) {
        const std::string n(fm_config_name(static_cast<FmConfig>(k)));
        pj["attention"][n] = cost_json(p.attention[static_cast<size_t>(k)]);
        pj["end_to_end"][n] = cost_json(p.end_to_end[static_cast<size_t>(k)]);
      }
      j["points"].push_back(pj);
    }
    j["passes"] = nlohmann::json::array();
    for (const FmPassRow& r : s.passes)
      j["passes"].push_back({{"model", r.model}, {"seq", r.seq}, {"passes_3pass", r.passes_3}, {"passes_1pass", r.passes_1},
                             {"buffer_3pass_bytes", r.buffer_3}, {"buffer_1pass_bytes", r.buffer_1}, {"flat_query_tile", r.flat_rows},
                             {"flat_kv_read_once", r.flat_kv_read_once}, {"flat_spilled", r.flat_spilled}, {"flat_dram_share", r.flat_dram_share}, {"flat_bottleneck", r.flat_bottleneck}});
    j["headlines"] = nlohmann::json::array();
    for (const FmHeadline& h : s.headlines) j["headlines"].push_back({{"what", h.what}, {"paper", h.paper}, {"einsim", h.einsim}, {"error", h.error()}});
    auto area_json = [](const FmArea& a) {
      return nlohmann::json{{"array_2d_um2", a.array_2d}, {"array_1d_um2", a.array_1d}, {"buffer_um2", a.buffer}, {"total_um2", a.total()}};
    };
    j["area"] = {{"FuseMax", area_json(s.area_fusemax)}, {"FLAT", area_json(s.area_flat)}};
    if (!s.pareto.empty()) {
      j["pareto"] = nlohmann::json::array();
      for (const FmParetoPoint& p : s.pareto)
        j["pareto"].push_back({{"model", p.model}, {"pe_dim", p.pe_dim}, {"buffer_bytes", p.buffer_bytes}, {"latency_s", p.latency},
                               {"dram_bytes", p.dram_bytes}, {"memory_bound", p.memory_bound}, {"area", area_json(p.area)}});
    }
    j["mappings"] = s.mappings;
    return j.dump(2) + "\n";
  }
  if (f == Format::Csv) {
    // One CSV: the scope column first.
    std::string out;
    for (bool e2e : {false, true}) {
      TextTable part(cost_header());
      add_rows(part, s, e2e);
      std::string csv = part.csv();
      const size_t nl = csv.find('\n');
      if (!e2e) out += "scope," + csv.substr(0, nl + 1);
      size_t pos = nl + 1;
      while (pos < csv.size()) {
        const size_t end = csv.find('\n', pos);
        out += std::string(e2e ? "end-to-end," : "attention,") + csv.substr(pos, end - pos + 1);
        pos = end + 1;
      }
    }
    return out;
  }
  std::string out = fmt::format(
      "FuseMax study (Nayak et al., MICRO 2024): batch {}, FLAT and FuseMax presets, 16-bit words.\n"
      "Attention: one layer, all heads. End to end: every layer's attention and linear layers (norms ignored).\n\n",
      s.batch);
  TextTable at(cost_header());
  add_rows(at, s, false);
  out += "Attention\n" + at.aligned() + "\n";
  TextTable e2e(cost_header());
  add_rows(e2e, s, true);
  out += "End to end\n" + e2e.aligned() + "\n";
  TextTable pt({"model", "seq", "passes 3-pass", "passes 1-pass", "3-pass live (256 queries)", "1-pass live (256 queries)", "FLAT query tile",
                "FLAT K,V read once", "FLAT spilled", "FLAT DRAM busy", "FLAT bottleneck"});
  for (const FmPassRow& r : s.passes)
    pt.row({r.model, seq_words(r.seq), std::to_string(r.passes_3), std::to_string(r.passes_1), fmt_bytes(r.buffer_3), fmt_bytes(r.buffer_1),
            std::to_string(r.flat_rows), r.flat_kv_read_once ? "yes" : "no", fmt::format("{:.0f}%", 100 * r.flat_spilled),
            fmt::format("{:.0f}%", 100 * r.flat_dram_share), r.flat_bottleneck});
  out += "Pass analysis: buffer without spilling, and where FLAT turns memory-bound\n" + pt.aligned() + "\n";
  // Fig. 7: each Einsum's share of the latency on its array, FuseMax (+Binding) and
  // +Architecture, at every model's first length.
  std::vector<std::string> einsums;
  for (const FmPoint& p : s.points)
    for (const FmCost::Activity& x : p.attention[static_cast<size_t>(FmConfig::Binding)].activity)
      if (std::find(einsums.begin(), einsums.end(), x.einsum) == einsums.end()) einsums.push_back(x.einsum);
  std::vector<std::string> head = {"model", "seq", "config"};
  for (const std::string& e : einsums) head.push_back(e);
  TextTable act(head);
  for (const FmPoint& p : s.points) {
    if (p.seq != s.points.front().seq) continue;
    for (FmConfig cfg : {FmConfig::Architecture, FmConfig::Binding}) {
      const FmCost& c = p.attention[static_cast<size_t>(cfg)];
      std::vector<std::string> row = {p.model.name, seq_words(p.seq), std::string(fm_config_name(cfg))};
      for (const std::string& e : einsums) {
        auto it = std::find_if(c.activity.begin(), c.activity.end(), [&](const FmCost::Activity& x) { return x.einsum == e; });
        row.push_back(it == c.activity.end() ? "-" : fmt::format("{:.1f}% {}", 100 * it->share, it->array));
      }
      act.row(row);
    }
  }
  out += "Per-Einsum activity (the paper's Fig. 7): share of the latency each Einsum keeps its array busy\n" + act.aligned() + "\n";
  TextTable ht({"headline (mean over points)", "paper", "einsim", "difference"});
  for (const FmHeadline& h : s.headlines)
    ht.row({h.what, fmt::format("{:.2f}", h.paper), fmt::format("{:.2f}", h.einsim), fmt::format("{:+.1f}%", 100 * h.error())});
  out += fmt::format("Headlines over {} points{}\n", s.points.size(),
                     s.points.size() == 24 ? "" : " (the paper's are means over its 24 points: compare the full study only)") +
         ht.aligned();
  TextTable ar({"design", "2D array mm^2", "1D array mm^2", "buffer mm^2", "total mm^2"});
  for (const auto& [name, a] : {std::pair{"FuseMax", s.area_fusemax}, std::pair{"FLAT", s.area_flat}})
    ar.row({name, fmt::format("{:.1f}", a.array_2d * 1e-6), fmt::format("{:.2f}", a.array_1d * 1e-6), fmt::format("{:.1f}", a.buffer * 1e-6),
            fmt::format("{:.1f}", a.total() * 1e-6)});
  out += "\nArea (the artifact's 45 nm area table)\n" + ar.aligned();
  if (!s.pareto.empty()) {
    TextTable pa({"model", "2D side", "buffer", "latency s", "DRAM", "DRAM-bound", "2D array mm^2", "total mm^2"});
    for (const FmParetoPoint& p : s.pareto)
      pa.row({p.model, std::to_string(p.pe_dim), fmt_bytes(p.buffer_bytes), fmt::format("{:.4g}", p.latency), fmt_bytes(p.dram_bytes), p.memory_bound ? "yes" : "no",
              fmt::format("{:.3g}", p.area.array_2d * 1e-6), fmt::format("{:.3g}", p.area.total() * 1e-6)});
    out += "\nArea against latency (the paper's Fig. 12): FuseMax attention, the buffer doubled until DRAM does not bound it\n" + pa.aligned();
  }
  out += fmt::format("\n{} mapper searches\n", s.mappings);
  return out;
}

std::string plot_fusemax_svg(const FmStudy& s) {
  // Two panels (attention, end to end): speedup of +Binding over FLAT against the length.
  std::vector<PlotPanel> panels(2);
  for (int k = 0; k < 2; ++k) {
    PlotPanel& p = panels[static_cast<size_t>(k)];
    p.title = k == 0 ? "Attention: FuseMax speedup over FLAT" : "End to end: FuseMax speedup over FLAT";
    p.xlabel = "sequence length";
    p.ylabel = "speedup (x)";
    p.xtick = token_words;
    for (const FmPoint& pt : s.points) {
      auto it = std::find_if(p.series.begin(), p.series.end(), [&](const PlotSeries& x) { return x.name == pt.model.name; });
      if (it == p.series.end()) it = p.series.insert(p.series.end(), PlotSeries{pt.model.name, {}, false, ""});
      const auto& cs = k == 0 ? pt.attention : pt.end_to_end;
      it->points.emplace_back(static_cast<double>(pt.seq), cs[static_cast<size_t>(FmConfig::Flat)].latency / cs[static_cast<size_t>(FmConfig::Binding)].latency);
    }
  }
  return svg_plot(panels);
}

}  // namespace einsim
