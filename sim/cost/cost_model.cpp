#include "sim/cost/cost_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace einsim {

std::vector<std::string> storage_path(const ArchSpec& a, int array) {
  std::vector<std::string> up;
  std::string cur = a.arrays.at(static_cast<size_t>(array)).level;
  while (!a.tier(cur)) {
    up.push_back(cur);
    cur = a.level(cur)->parent;
  }
  up.push_back(cur);
  std::reverse(up.begin(), up.end());
  return up;
}

namespace {

double footprint_at(const Cascade& c, const Einsum& e, const Access& acc, const int64_t* tile) {
  const Tensor& t = c.tensors[static_cast<size_t>(acc.tensor)];
  double n = 1;
  for (size_t d = 0; d < acc.dims.size(); ++d) {
    const Affine& f = acc.dims[d];
    double span;
    if (f.gather >= 0) {
      const Access& idx = e.reads[static_cast<size_t>(f.gather)];
      span = distinct_rows(static_cast<double>(t.shape[d]), c.tensors[static_cast<size_t>(idx.tensor)], footprint_at(c, e, idx, tile));
    } else {
      span = 1;
      for (auto [v, k] : f.terms) span += static_cast<double>(std::llabs(k)) * static_cast<double>(tile[static_cast<size_t>(v)] - 1);
      span = std::min(span, static_cast<double>(t.shape[d]));
    }
    n *= span;
  }
  return n;
}

}  // namespace

double footprint(const Cascade& c, const Einsum& e, const Access& acc, const std::vector<int64_t>& tile) {
  return footprint_at(c, e, acc, tile.data());
}

namespace {

void vars_of(const Einsum& e, const Access& a, std::vector<char>& out) {
  for (const Affine& f : a.dims) {
    for (auto [v, k] : f.terms) out[static_cast<size_t>(v)] = 1;
    if (f.gather >= 0) vars_of(e, e.reads[static_cast<size_t>(f.gather)], out);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

EinsumCost::EinsumCost(const Cascade& c, const Einsum& e, const std::vector<int>& resident, const std::vector<int>& in_array)
    : c_(c), e_(e) {
  auto add = [&](const Access& a, bool out) {
    auto it = std::find_if(ops_.begin(), ops_.end(), [&](const CostOperand& o) { return o.tensor == a.tensor && o.output == out; });
    if (it == ops_.end()) {
      CostOperand o;
      o.tensor = a.tensor;
      o.output = out;
      o.uses_var.assign(e.vars.size(), 0);
      o.bytes_per_element = c.tensors[static_cast<size_t>(a.tensor)].element_bytes();
      o.in_array = std::find(in_array.begin(), in_array.end(), a.tensor) != in_array.end();
      o.resident = o.in_array || std::find(resident.begin(), resident.end(), a.tensor) != resident.end();
      ops_.push_back(std::move(o));
      it = ops_.end() - 1;
    }
    it->accesses.push_back(&a);
    vars_of(e, a, it->uses_var);
  };
  for (const Access& a : e.reads) add(a, false);
  add(e.lhs, true);
  std::vector<int64_t> full;
  for (const Var& v : e.vars) full.push_back(v.extent);
  for (CostOperand& o : ops_) o.full_bytes = operand_footprint(o, full.data()) * o.bytes_per_element;
}

double EinsumCost::operand_footprint(const CostOperand& o, const int64_t* tile) const {
  double f = 0;
  for (const Access* a : o.accesses) f = std::max(f, footprint_at(c_, e_, *a, tile));
  return f;
}

double* EinsumCost::level_bytes(size_t level, const int64_t* tile) const {
  if (memo_.size() <= level) memo_.resize(level + 1);
  Memo& mm = memo_[level];
  const size_t nv = e_.vars.size();
  bool same = mm.tile.size() == nv;
  for (size_t v = 0; same && v < nv; ++v) same = mm.tile[v] == tile[v];
  if (!same) {
    mm.tile.assign(tile, tile + nv);
    mm.bytes.assign(ops_.size(), -1.0);
  }
  return mm.bytes.data();
}

double EinsumCost::occupancy(const Mapping& m, size_t level) const {
  const int64_t* tile = m.levels[level - 1].tile.data();
  double* memo = level_bytes(level, tile);
  double bytes = 0;
  for (size_t j = 0; j < ops_.size(); ++j)
    if (!ops_[j].in_array) bytes += bytes_of(memo, j, tile);
  return bytes;
}

double EinsumCost::compulsory_bytes() const {
  std::vector<int64_t> full;
  for (const Var& v : e_.vars) full.push_back(v.extent);
  double b = 0;
  for (const CostOperand& o : ops_) b += operand_footprint(o, full.data()) * o.bytes_per_element;
  return b;
}

double level_occupancy(const Cascade& c, const Einsum& e, const Mapping& m, size_t level) {
  return EinsumCost(c, e).occupancy(m, level);
}

void check_mapping(const Einsum& e, const ArchSpec& a, const Mapping& m) {
  if (m.array < 0 || static_cast<size_t>(m.array) >= a.arrays.size()) throw InternalError("mapping: no array");
  if (m.path.empty() || m.levels.size() != m.path.size()) throw InternalError("mapping: one tile set per on-chip level and the array");
  const size_t nv = e.vars.size();
  std::vector<int64_t> parent;
  for (const Var& v : e.vars) parent.push_back(v.extent);
  for (size_t i = 0; i < m.levels.size(); ++i) {
    const LevelTiles& l = m.levels[i];
    if (l.tile.size() != nv) throw InternalError("mapping: a tile per variable");
    std::set<int> seen;
    for (int v : l.order)
      if (v < 0 || static_cast<size_t>(v) >= nv || !seen.insert(v).second) throw InternalError("mapping: bad loop order");
    for (size_t v = 0; v < nv; ++v) {
      if (l.tile[v] < 1 || l.tile[v] > parent[v]) throw InternalError(fmt::format("mapping: tile of '{}' at level {} is out of range", e.vars[v].name, i));
      if (ceil_div(parent[v], l.tile[v]) > 1 && !seen.count(static_cast<int>(v)))
        throw InternalError(fmt::format("mapping: '{}' iterates at level {} but is not in its loop order", e.vars[v].name, i));
    }
    parent = l.tile;
  }
}

double compute_bound(const Einsum& e, const ComputeArray& arr, DType dt) {
  // Classes on the PE's shared datapath queue; a class with its own unit overlaps them.
  double shared = 0, own = 0;
  for (int c = 0; c < kOpClasses; ++c) {
    const double ops = e.ops.n[static_cast<size_t>(c)];
    if (ops == 0) continue;
    const double peak = arr.peak_ops(static_cast<OpClass>(c), dt);
    if (peak <= 0) return std::numeric_limits<double>::infinity();
    if (arr.own_unit.count(static_cast<OpClass>(c))) own = std::max(own, ops / peak);
    else shared += ops / peak;
  }
  return std::max(shared, own);
}

double compulsory_bytes(const Cascade& c, const Einsum& e) { return EinsumCost(c, e).compulsory_bytes(); }

Cost evaluate(const Cascade& c, const Einsum& e, const ArchSpec& a, const Mapping& m, DType dt) {
  return EinsumCost(c, e).evaluate(a, m, dt);
}

Cost EinsumCost::evaluate(const ArchSpec& a, const Mapping& m, DType dt, bool detail) const {
  Cost c;
  evaluate_into(a, m, dt, c, detail);
  return c;
}

void EinsumCost::evaluate_into(const ArchSpec& a, const Mapping& m, DType dt, Cost& cost, bool detail) const {
  evaluate_impl(a, m, dt, cost, detail, true);
}

void EinsumCost::order_free_into(const ArchSpec& a, const Mapping& m, DType dt, Cost& cost) const {
  evaluate_impl(a, m, dt, cost, false, false);
}

void EinsumCost::evaluate_impl(const ArchSpec& a, const Mapping& m, DType dt, Cost& cost, bool detail, bool with_traffic) const {
  const Einsum& e = e_;
  if (detail) check_mapping(e, a, m);  // the mapper builds valid mappings; skip in its inner loop
  const ComputeArray& arr = a.arrays[static_cast<size_t>(m.array)];
  // Storage looked up by name once per (arch, path, type), not per call.
  Resolved& rs = res_;
  if (rs.arch != &a || rs.array != m.array || rs.dt != dt || rs.path != m.path) {
    rs.arch = &a;
    rs.array = m.array;
    rs.dt = dt;
    rs.path = m.path;
    rs.tier = a.tier(m.path[0]);
    rs.levels.assign(m.path.size(), nullptr);
    for (size_t j = 1; j < m.path.size(); ++j) rs.levels[j] = a.level(m.path[j]);
    rs.ideal = compute_bound(e, arr, dt);
    rs.cycles_per_point = 0;
    double own_unit = 0;  // the slowest class with a dedicated unit (it overlaps the shared datapath)
    for (int cl = 0; cl < kOpClasses; ++cl) {
      const double n = e.ops.n[static_cast<size_t>(cl)];
      if (n == 0) continue;
      auto it = arr.ops_per_cycle.find(static_cast<OpClass>(cl));
      const double rate = it == arr.ops_per_cycle.end() || !it->second.count(dt) ? 0 : it->second.at(dt);
      if (rate <= 0) {
        rs.arch = nullptr;
        throw InternalError(fmt::format("array '{}' cannot run {} at {}", arr.name, op_class_name(static_cast<OpClass>(cl)), dtype_name(dt)));
      }
      double eff = 1;
      if (a.gpu && a.gpu->efficiency.count(static_cast<OpClass>(cl))) eff = a.gpu->efficiency.at(static_cast<OpClass>(cl));
      const double cyc = n / static_cast<double>(e.points) / (rate * eff);
      if (arr.own_unit.count(static_cast<OpClass>(cl))) own_unit = std::max(own_unit, cyc);
      else rs.cycles_per_point += cyc;
    }
    rs.cycles_per_point = std::max(rs.cycles_per_point, own_unit);
    rs.compute_energy = 0;
    for (int cl = 0; cl < kOpClasses; ++cl)
      if (auto it = arr.energy.find(static_cast<OpClass>(cl)); it != arr.energy.end()) rs.compute_energy += e.ops.n[static_cast<size_t>(cl)] * it->second;
    rs.block_level = 0;
    for (size_t i = 1; i < m.levels.size(); ++i) {
      const StorageLevel* l = rs.levels[i];
      if (l && arr.instances > 1 && l->instances == arr.instances) {
        rs.block_level = i;
        break;
      }
    }
  }
  const size_t nv = e.vars.size();
  const size_t N = m.levels.size();  // tiled levels: on-chip levels then the array
  const bool gpu = a.gpu.has_value();

  // tile(i): extents held at level i (0: the tier holds everything); trips(i)[v]. Scratch
  // buffers are reused across calls: the mapper calls this in its inner loop.
  struct Loop {
    int var;
    int64_t trip;
  };
  thread_local std::vector<int64_t> tile_buf, trip_buf;
  thread_local std::vector<Loop> loops;
  thread_local std::vector<double> boundary_bytes;
  tile_buf.resize((N + 1) * nv);
  trip_buf.assign((N + 1) * nv, 1);
  auto tile = [&](size_t i) { return tile_buf.data() + i * nv; };
  auto trips = [&](size_t i) { return trip_buf.data() + i * nv; };
  for (size_t v = 0; v < nv; ++v) tile(0)[v] = e.vars[v].extent;
  for (size_t i = 1; i <= N; ++i)
    for (size_t v = 0; v < nv; ++v) {
      tile(i)[v] = m.levels[i - 1].tile[v];
      trips(i)[v] = ceil_div(tile(i - 1)[v], tile(i)[v]);
    }

  // Traffic across each boundary i (parent i-1, child i), charged to the parent.
  const std::vector<CostOperand>& ops = ops_;
  std::vector<LevelTraffic>& traffic = cost.traffic;  // reuses the caller's capacity
  traffic.resize(N);
  for (size_t j = 0; j < N; ++j) {
    traffic[j].read_bytes = traffic[j].write_bytes = traffic[j].busy = 0;
    if (detail) traffic[j].name = m.path[j];
    else traffic[j].name.clear();
  }
  loops.clear();
  // GPUs: operands reach the tensor cores from registers the mapping does not tile; the SMEM
  // capacity bounds the tiles, and SMEM bandwidth is not charged for the array boundary.
  const size_t last_boundary = !with_traffic ? 0 : gpu ? N - 1 : N;
  boundary_bytes.assign(N + 1, 0);
  for (size_t i = 1; i <= last_boundary; ++i) {
    // A level holding whole tensors (the mapper's bounds) needs no footprint computed.
    const bool whole = std::equal(tile(i), tile(i) + nv, tile(0));
    for (int v : m.levels[i - 1].order)
      if (trips(i)[static_cast<size_t>(v)] > 1) loops.push_back({v, trips(i)[static_cast<size_t>(v)]});
    double* memo = whole ? nullptr : level_bytes(i, tile(i));
    for (size_t j = 0; j < ops.size(); ++j) {
      const CostOperand& o = ops[j];
      if ((o.resident && i < N) || o.in_array) continue;  // produced and consumed on chip
      // Fills: every loop counts except the innermost run of loops that do not move the tile.
      size_t keep = loops.size();
      while (keep > 0 && !o.uses_var[static_cast<size_t>(loops[keep - 1].var)]) --keep;
      double fills = 1, distinct = 1;
      for (size_t l = 0; l < keep; ++l) fills *= static_cast<double>(loops[l].trip);
      for (const Loop& l : loops)
        if (o.uses_var[static_cast<size_t>(l.var)]) distinct *= static_cast<double>(l.trip);
      const double bytes = whole ? o.full_bytes : bytes_of(memo, j, tile(i));
      if (o.output) {
        traffic[i - 1].write_bytes += bytes * fills;
        traffic[i - 1].read_bytes += bytes * (fills - distinct);  // partial sums read back
        boundary_bytes[i] += bytes * (2 * fills - distinct);
      } else {
        traffic[i - 1].read_bytes += bytes * fills;
        boundary_bytes[i] += bytes * fills;
      }
    }
  }

  cost.energy = 0;
  cost.compute_energy = 0;
  cost.bottleneck.clear();
  // Busy time of each storage level.
  const double mem_eff = gpu ? a.gpu->memory_efficiency : 1.0;
  for (size_t j = 0; j < N; ++j) {
    LevelTraffic& t = traffic[j];
    if (j == 0) {
      const MemoryTier& tier = *rs.tier;
      t.busy = (t.read_bytes / tier.read_bandwidth + t.write_bytes / tier.write_bandwidth) / mem_eff;
    } else {
      t.busy = (t.read_bytes + t.write_bytes) / rs.levels[j]->bandwidth;
    }
  }

  // Compute: cycles per point per PE at the achievable rate (rs.cycles_per_point), over the
  // padded iteration space, with blocks (tiles of the level replicated like the array, at
  // rs.block_level) issued in waves.
  const double cycles_per_point = rs.cycles_per_point;
  const size_t block_level = rs.block_level;
  double blocks = 1, per_block = 1;
  for (size_t v = 0; v < nv; ++v) {
    double inner = static_cast<double>(tile(N)[v]);
    for (size_t i = 1; i <= block_level; ++i) blocks *= static_cast<double>(trips(i)[v]);
    for (size_t i = block_level + 1; i <= N; ++i) inner *= static_cast<double>(trips(i)[v]);
    per_block *= inner;
  }
  // PEs one step occupies: a spatial array holds the array-level tile, one point per PE, so a
  // tile smaller than the array leaves PEs idle (a 16-row tile on a 256x256 array uses 1/16
  // of it); GPU lanes take whatever work there is (their losses are the calibrated efficiency
  // and the waves).
  double pes = static_cast<double>(arr.pes());
  if (!gpu) {
    double spatial = 1;
    for (size_t v = 0; v < nv; ++v) spatial *= static_cast<double>(tile(N)[v]);
    pes = std::min(pes, spatial);
  }
  if (block_level == 0) {
    cost.compute = blocks * per_block * cycles_per_point / (pes * static_cast<double>(arr.instances) * arr.clock);
  } else {
    const double inst = static_cast<double>(arr.instances);
    const double waves = gpu && a.gpu->wave_quantization ? std::ceil(blocks / inst) : blocks / inst;
    cost.compute = waves * per_block * cycles_per_point / (pes * arr.clock);
  }
  cost.ideal_compute = rs.ideal;

  // Fill and drain: the first wave of innermost tiles comes from the tier before computing
  // starts; the last wave's outputs go back after it ends.
  const MemoryTier& tier = *rs.tier;
  const size_t inner = N > 1 ? N - 1 : N;
  double in_bytes = 0, out_bytes = 0;
  double* memo = level_bytes(inner, tile(inner));
  for (size_t j = 0; j < ops.size(); ++j)
    if (!ops[j].resident) (ops[j].output ? out_bytes : in_bytes) += bytes_of(memo, j, tile(inner));
  const double first_wave = std::min(blocks, block_level ? static_cast<double>(arr.instances) : 1.0);
  cost.fill_drain = first_wave * (in_bytes / tier.read_bandwidth + out_bytes / tier.write_bandwidth) / mem_eff + 2 * tier.latency;
  cost.launch = gpu ? a.gpu->launch_overhead : 0;

  double busiest = cost.compute;
  int busiest_level = -1;
  for (size_t j = 0; j < N; ++j)
    if (traffic[j].busy > busiest) busiest = traffic[j].busy, busiest_level = static_cast<int>(j);
  if (detail)
    cost.bottleneck = busiest_level < 0 ? fmt::format("compute ({})", arr.name) : fmt::format("{} bandwidth", m.path[static_cast<size_t>(busiest_level)]);
  cost.time = busiest + cost.fill_drain + cost.launch;
  cost.utilization = cost.time > 0 ? cost.ideal_compute / cost.time : 0;

  // Energy: operations, and each byte at both ends of every boundary it crosses.
  cost.compute_energy = rs.compute_energy;
  cost.energy = cost.compute_energy;
  cost.energy += (cost.traffic[0].read_bytes + cost.traffic[0].write_bytes) * tier.energy;
  for (size_t j = 1; j < N; ++j) {
    const StorageLevel* l = rs.levels[j];
    cost.energy += cost.traffic[j].read_bytes * l->read_energy + cost.traffic[j].write_bytes * l->write_energy;
    cost.energy += boundary_bytes[j] * l->write_energy;  // filled from its parent
  }
}

}  // namespace einsim
