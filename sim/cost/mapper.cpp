#include "sim/cost/mapper.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace einsim {

int bind_array(const Einsum& e, const ArchSpec& a, DType dt) {
  int best = -1;
  double best_t = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < a.arrays.size(); ++i) {
    const double t = compute_bound(e, a.arrays[i], dt);
    if (t < best_t) best_t = t, best = static_cast<int>(i);
  }
  return best;
}

namespace {

double objective(const Cost& c, Objective o) {
  switch (o) {
    // Near-ties in time go to the mapping that keeps the tier less busy: fused into a block
    // with other Einsums, the tier's traffic is what the block shares (a bound on time stays
    // a bound on this).
    case Objective::Latency: return c.time + 1e-3 * (c.traffic.empty() ? 0.0 : c.traffic[0].busy);
    case Objective::Energy: return c.energy;
    case Objective::EDP: return c.time * c.energy;
  }
  return c.time;
}

class Search {
 public:
  Search(const Cascade& c, const Einsum& e, const ArchSpec& a, DType dt, const MapperOptions& opt, const std::vector<int>& resident,
         const std::vector<int>& in_array)
      : e_(e), a_(a), dt_(dt), opt_(opt), cost_(c, e, resident, in_array) {}

  MapResult run() {
    int array = opt_.array >= 0 ? opt_.array : bind_array(e_, a_, dt_);
    if (array >= static_cast<int>(a_.arrays.size()) ||
        (array >= 0 && std::isinf(compute_bound(e_, a_.arrays[static_cast<size_t>(array)], dt_)))) {
      const std::string name = array < static_cast<int>(a_.arrays.size()) ? a_.arrays[static_cast<size_t>(array)].name : std::to_string(array);
      throw UserError(e_.loc, fmt::format("array '{}' of '{}' cannot run every operation of this Einsum at {}", name, a_.name, dtype_name(dt_)));
    }
    if (array < 0) {
      std::vector<std::string> need;
      for (int cl = 0; cl < kOpClasses; ++cl)
        if (e_.ops.n[static_cast<size_t>(cl)] > 0) need.emplace_back(op_class_name(static_cast<OpClass>(cl)));
      throw UserError(e_.loc, fmt::format("no array of '{}' runs all of {} at {}", a_.name, fmt::join(need, ", "), dtype_name(dt_)));
    }
    m_.array = array;
    m_.path = storage_path(a_, array);
    m_.levels.resize(m_.path.size());
    const ComputeArray& arr = a_.arrays[static_cast<size_t>(array)];
    lower_bound_ = arr.clock > 0 ? compute_bound(e_, arr, dt_) : 0;
    for (const Var& v : e_.vars) full_.push_back(v.extent);
    if (opt_.prune && m_.path.size() > 2) inner_first();  // two or more on-chip levels
    else level(1, full_);
    if (!found_) throw UserError(e_.loc, fmt::format("no mapping of this Einsum fits the buffers of '{}'", a_.name));
    result_.mapping = best_;
    result_.cost = cost_.evaluate(a_, best_, dt_);  // with names and the bottleneck label
    return std::move(result_);
  }

 private:
  // Branch and bound, innermost level first. A level's tile decides the traffic its parent
  // serves, so costing an innermost choice with every outer level holding whole tensors gives
  // a lower bound on all its completions (compute and the innermost traffic are exact, outer
  // traffic is compulsory). Choices are completed in order of bound until the bound reaches
  // the best cost found; the space searched is the exhaustive search's.
  void inner_first() {
    const size_t k = m_.path.size() - 1;  // innermost on-chip level, 1-based
    for (size_t i = 0; i + 1 < k; ++i) m_.levels[i] = LevelTiles{full_, {}};
    const StorageLevel& lvl = *a_.level(m_.path[k]);
    std::vector<std::vector<int64_t>> cand(full_.size());
    for (size_t v = 0; v < full_.size(); ++v) cand[v] = tiles(1, full_[v]);
    thin_candidates(cand, opt_.max_tiles);
    if (a_.gpu && opt_.objective == Objective::Latency && opt_.lazy_orders) {
      lazy_inner_first(cand, k, lvl);
      return;
    }
    collecting_ = true;  // leaf() records (bound, innermost and array tiles) instead of keeping a best
    for_each_tile(cand, [&](const std::vector<int64_t>& tile) {
      m_.levels[k - 1].tile = tile;
      if (cost_.occupancy(m_, k) > lvl.capacity) return;
      for_each_order(full_, tile, m_.levels[k - 1].order, [&] { array_level(tile); });
    });
    collecting_ = false;
    std::stable_sort(cands_.begin(), cands_.end(), [](const Candidate& x, const Candidate& y) { return x.bound < y.bound; });
    for (const Candidate& c : cands_) {
      if (found_ && c.bound >= best_obj_) {
        result_.pruned += 1;
        break;
      }
      load(m_.levels.back(), load(m_.levels[k - 1], c.at));
      cand_bound_ = c.bound;
      outer(1, full_, m_.levels[k - 1].tile);
    }
  }

  // inner_first() on a GPU under the latency objective, visiting the same candidates in the
  // same order without costing most of them. Only the traffic into the innermost level
  // depends on its loop order (compute, the tier's traffic with the outer levels whole, fill
  // and drain do not; the array level costs nothing below SMEM). So a tile's order-free bound
  // (order_free_into(): compute, fill/drain and launch, with the outer levels' busy time,
  // the same for every tile) bounds each of its orders' bounds from below. A best-first queue
  // over (bound, position in the exhaustive collection) that holds tiles under that bound and
  // expands one into its orders when it comes up pops the candidates in the stable sorted
  // order inner_first() completes them in, and stops at the same one.
  void lazy_inner_first(const std::vector<std::vector<int64_t>>& cand, size_t k, const StorageLevel& lvl) {
    struct Entry {
      double bound;
      size_t seq;   ///< position among the collected candidates (a tile: its first order's)
      size_t at;    ///< in pool_: the tile (tile entries) or the candidate
      bool tile;
    };
    const auto later = [](const Entry& x, const Entry& y) { return x.bound != y.bound ? x.bound > y.bound : x.seq > y.seq; };
    std::vector<Entry> heap;
    LevelTiles& inner = m_.levels[k - 1];
    LevelTiles& arr = m_.levels.back();
    size_t seq = 0;
    // The levels above the innermost hold whole tensors: their traffic, which the objective
    // and the busiest level take, is the same for every tile (from the first one costed).
    bool have_outer = false;
    double outer_busy = 0, tier_busy = 0;
    for_each_tile(cand, [&](const std::vector<int64_t>& tile) {
      inner.tile = tile;
      if (cost_.occupancy(m_, k) > lvl.capacity) return;
      inner.order.clear();
      arr.tile.assign(tile.size(), 1);
      arr.order.clear();
      if (!have_outer) {
        cost_.evaluate_into(a_, m_, dt_, scratch_);
        for (size_t j = 0; j + 1 < k; ++j) outer_busy = std::max(outer_busy, scratch_.traffic[j].busy);
        tier_busy = scratch_.traffic[0].busy;
        have_outer = true;
      }
      // evaluate_into()'s time is max(compute, each level's busy time) + fill/drain + launch,
      // and its objective adds 1e-3 of the tier's busy time: with the innermost level's
      // order-dependent traffic left out, the same sums give a bound no larger.
      cost_.order_free_into(a_, m_, dt_, scratch_);
      const double bound = std::max(scratch_.compute, outer_busy) + scratch_.fill_drain + scratch_.launch + 1e-3 * tier_busy;
      heap.push_back({bound, seq, pool_.size(), true});
      pool_.insert(pool_.end(), tile.begin(), tile.end());
      seq += order_count(full_, tile);
    });
    std::make_heap(heap.begin(), heap.end(), later);
    const size_t nv = full_.size();
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Entry top = heap.back();
      heap.pop_back();
      if (found_ && top.bound >= best_obj_) {
        result_.pruned += 1;
        break;
      }
      if (top.tile) {  // cost its orders, as inner_first() collected them
        inner.tile.assign(pool_.begin() + static_cast<long>(top.at), pool_.begin() + static_cast<long>(top.at + nv));
        const size_t first = cands_.size();
        collecting_ = true;
        for_each_order(full_, inner.tile, inner.order, [&] { array_level(inner.tile); });
        collecting_ = false;
        for (size_t j = first; j < cands_.size(); ++j) {
          heap.push_back({cands_[j].bound, top.seq + (j - first), cands_[j].at, false});
          std::push_heap(heap.begin(), heap.end(), later);
        }
        continue;
      }
      load(m_.levels.back(), load(inner, top.at));
      cand_bound_ = top.bound;
      outer(1, full_, inner.tile);
    }
  }

  // Whether variable v iterates (more than one `tile` in `parent`): the loops an order sorts.
  static bool moves(const std::vector<int64_t>& parent, const std::vector<int64_t>& tile, size_t v) {
    return (parent[v] + tile[v] - 1) / tile[v] > 1;
  }

  // How many loop orders for_each_order() visits for `tile` inside `parent`.
  static size_t order_count(const std::vector<int64_t>& parent, const std::vector<int64_t>& tile) {
    size_t moving = 0;
    for (size_t v = 0; v < tile.size(); ++v) moving += moves(parent, tile, v);
    return std::max<size_t>(moving, 1);
  }

  // Candidates of the innermost level live in one flat pool (no allocation per candidate):
  // tile, order length, order, for the innermost level and then the array.
  struct Candidate {
    double bound;
    size_t at;
  };
  void save(const LevelTiles& l) {
    pool_.insert(pool_.end(), l.tile.begin(), l.tile.end());
    pool_.push_back(static_cast<int64_t>(l.order.size()));
    pool_.insert(pool_.end(), l.order.begin(), l.order.end());
  }
  size_t load(LevelTiles& l, size_t at) const {
    const size_t nv = full_.size();
    l.tile.assign(pool_.begin() + static_cast<long>(at), pool_.begin() + static_cast<long>(at + nv));
    at += nv;
    const size_t n = static_cast<size_t>(pool_[at++]);
    l.order.assign(pool_.begin() + static_cast<long>(at), pool_.begin() + static_cast<long>(at + n));
    return at + n;
  }

  // Levels 1..k-1 around a fixed innermost tile: powers of two from the inner tile up.
  void outer(size_t i, const std::vector<int64_t>& parent, const std::vector<int64_t>& inner) {
    const size_t k = m_.path.size() - 1;
    // No completion of this innermost choice beats its bound: once one reaches it, stop.
    if (found_ && best_obj_ <= cand_bound_) return;
    if (i == k) {
      leaf();
      return;
    }
    const StorageLevel& lvl = *a_.level(m_.path[i]);
    std::vector<std::vector<int64_t>> cand(parent.size());
    for (size_t v = 0; v < parent.size(); ++v) cand[v] = tiles(inner[v], parent[v]);
    thin_candidates(cand, opt_.max_tiles);
    for_each_tile(cand, [&](const std::vector<int64_t>& tile) {
      if (found_ && best_obj_ <= cand_bound_) return;
      m_.levels[i - 1].tile = tile;
      if (cost_.occupancy(m_, i) > lvl.capacity) return;
      for_each_order(parent, tile, m_.levels[i - 1].order, [&] { outer(i + 1, tile, inner); });
    });
  }

  // Tile candidates in [lo, hi]: powers of two times lo below hi, hi itself, and with a
  // granule its multiples too.
  std::vector<int64_t> tiles(int64_t lo, int64_t hi) const {
    std::vector<int64_t> t;
    for (int64_t x = lo; x < hi; x *= 2) t.push_back(x);
    if (opt_.granule > 0)
      for (int64_t x = (lo + opt_.granule - 1) / opt_.granule * opt_.granule; x < hi; x += opt_.granule) t.push_back(x);
    t.push_back(hi);
    std::sort(t.begin(), t.end());
    t.erase(std::unique(t.begin(), t.end()), t.end());
    return t;
  }

  // Calls f(tile) for every combination of per-variable candidates (the first varies fastest).
  template <typename F>
  static void for_each_tile(const std::vector<std::vector<int64_t>>& cand, F&& f) {
    std::vector<size_t> idx(cand.size(), 0);
    std::vector<int64_t> tile(cand.size());
    for (;;) {
      for (size_t v = 0; v < tile.size(); ++v) tile[v] = cand[v][idx[v]];
      f(tile);
      size_t v = 0;
      while (v < idx.size() && ++idx[v] == cand[v].size()) idx[v++] = 0;
      if (v == idx.size()) return;
    }
  }

  // Loop orders worth distinguishing: each iterating variable innermost, the rest in index
  // order. Calls f() with `order` set to each in turn (`order` is reused: no allocation).
  template <typename F>
  static void for_each_order(const std::vector<int64_t>& parent, const std::vector<int64_t>& tile, std::vector<int>& order, F&& f) {
    thread_local std::vector<int> moving;
    moving.clear();
    for (size_t v = 0; v < tile.size(); ++v)
      if (moves(parent, tile, v)) moving.push_back(static_cast<int>(v));
    if (moving.size() <= 1) {
      order.assign(moving.begin(), moving.end());
      f();
      return;
    }
    // f() may recurse and reuse `moving`: keep this call's variables on the stack.
    constexpr size_t kInline = 16;
    int inline_mv[kInline];
    std::vector<int> heap_mv;
    int* mv = inline_mv;
    const size_t n = moving.size();
    if (n <= kInline) std::copy(moving.begin(), moving.end(), inline_mv);
    else heap_mv = moving, mv = heap_mv.data();
    for (size_t k = 0; k < n; ++k) {
      order.clear();
      for (size_t j = 0; j < n; ++j)
        if (j != k) order.push_back(mv[j]);
      order.push_back(mv[k]);
      f();
    }
  }

  void level(size_t i, const std::vector<int64_t>& parent) {
    const size_t n_levels = m_.path.size();
    if (i == n_levels) {
      array_level(parent);
      return;
    }
    const StorageLevel& lvl = *a_.level(m_.path[i]);
    // Candidate tiles per variable.
    std::vector<std::vector<int64_t>> cand(parent.size());
    for (size_t v = 0; v < parent.size(); ++v) cand[v] = tiles(1, parent[v]);
    thin_candidates(cand, opt_.max_tiles);
    for_each_tile(cand, [&](const std::vector<int64_t>& tile) {
      m_.levels[i - 1].tile = tile;
      if (cost_.occupancy(m_, i) > lvl.capacity) return;
      for_each_order(parent, tile, m_.levels[i - 1].order, [&] {
        if (i == 1 && opt_.prune && opt_.objective == Objective::Latency && found_ && tier_bound(tile) >= best_obj_) {
          ++result_.pruned;
          return;
        }
        level(i + 1, tile);
      });
    });
  }

  // A lower bound on the latency of every completion of the current level-1 choice: tier
  // traffic depends only on level-1 tiles and order, and no mapping beats the peak compute.
  double tier_bound(const std::vector<int64_t>& tile) {
    Mapping probe = m_;
    for (size_t i = 1; i < probe.levels.size(); ++i) probe.levels[i] = LevelTiles{tile, {}};
    cost_.evaluate_into(a_, probe, dt_, scratch_);
    return std::max(lower_bound_, scratch_.traffic[0].busy) + (a_.gpu ? a_.gpu->launch_overhead : 0.0);
  }

  void array_level(const std::vector<int64_t>& parent) {
    const ComputeArray& arr = a_.arrays[static_cast<size_t>(m_.array)];
    LevelTiles& at = m_.levels.back();
    const size_t nv = parent.size();
    if (a_.gpu) {
      // Tensor cores and SIMT lanes take operands from registers: no spatial assignment, and
      // the cost model charges no traffic below SMEM, so the loop order there changes nothing:
      // one order is enough.
      at.tile.assign(nv, 1);
      bool first = true;
      for_each_order(parent, at.tile, at.order, [&] {
        if (first) leaf();
        first = false;
      });
      return;
    }
    // Assign variables (or none) to the array's dimensions.
    const size_t dims = arr.shape.size();
    std::vector<int> assign(dims, -1);
    auto rec = [&](auto&& self, size_t d) -> void {
      if (d == dims) {
        at.tile.assign(nv, 1);
        for (size_t k = 0; k < dims; ++k)
          if (assign[k] >= 0) at.tile[static_cast<size_t>(assign[k])] = std::min(parent[static_cast<size_t>(assign[k])], arr.shape[k]);
        for_each_order(parent, at.tile, at.order, [&] { leaf(); });
        return;
      }
      for (int v = -1; v < static_cast<int>(nv); ++v) {
        if (v >= 0 && (parent[static_cast<size_t>(v)] == 1 || std::find(assign.begin(), assign.begin() + static_cast<long>(d), v) != assign.begin() + static_cast<long>(d))) continue;
        assign[d] = v;
        self(self, d + 1);
      }
    };
    rec(rec, 0);
  }

  void leaf() {
    if (collecting_) {
      // Bound of an innermost choice (outer levels hold whole tensors).
      cost_.evaluate_into(a_, m_, dt_, scratch_);
      cands_.push_back({objective(scratch_, opt_.objective), pool_.size()});
      save(m_.levels[m_.levels.size() - 2]);
      save(m_.levels.back());
      return;
    }
    if (++result_.evaluated > opt_.max_evaluations)
      throw UserError(e_.loc, fmt::format("the mapping space of this Einsum exceeds {} mappings", opt_.max_evaluations));
    cost_.evaluate_into(a_, m_, dt_, scratch_);
    const double obj = objective(scratch_, opt_.objective);
    if (!found_ || obj < best_obj_) {
      found_ = true;
      best_obj_ = obj;
      best_ = m_;
    }
  }

  const Einsum& e_;
  const ArchSpec& a_;
  DType dt_;
  MapperOptions opt_;
  EinsumCost cost_;
  Cost scratch_;
  Mapping m_, best_;
  MapResult result_;
  bool found_ = false;
  double best_obj_ = 0;
  double lower_bound_ = 0;
  double cand_bound_ = 0;  ///< bound of the innermost choice being completed
  std::vector<int64_t> full_;
  bool collecting_ = false;
  std::vector<Candidate> cands_;
  std::vector<int64_t> pool_;
};

}  // namespace

MapResult map_einsum(const Cascade& c, const Einsum& e, const ArchSpec& a, DType dt, const MapperOptions& opt,
                     const std::vector<int>& resident, const std::vector<int>& in_array) {
  return Search(c, e, a, dt, opt, resident, in_array).run();
}

void thin_candidates(std::vector<std::vector<int64_t>>& cand, int64_t budget) {
  if (budget <= 0) return;
  auto combos = [&] {
    double n = 1;
    for (const auto& c : cand) n *= static_cast<double>(c.size());
    return n;
  };
  while (combos() > static_cast<double>(budget)) {
    size_t widest = 0;
    for (size_t v = 1; v < cand.size(); ++v)
      if (cand[v].size() > cand[widest].size()) widest = v;
    std::vector<int64_t>& c = cand[widest];
    if (c.size() <= 2) return;  // every variable is down to its smallest and largest tile
    std::vector<int64_t> kept;
    for (size_t i = 0; i < c.size(); ++i)
      if (i % 2 == 0 || i + 1 == c.size()) kept.push_back(c[i]);
    c = std::move(kept);
  }
}

std::string describe_mapping(const Einsum& e, const ArchSpec& a, const Mapping& m) {
  const ComputeArray& arr = a.arrays[static_cast<size_t>(m.array)];
  std::string out = fmt::format("on {} ({} x {} PEs)", arr.name, arr.instances, fmt::join(arr.shape, "x"));
  for (size_t i = 0; i < m.levels.size(); ++i) {
    const LevelTiles& l = m.levels[i];
    std::vector<std::string> t, o;
    for (size_t v = 0; v < l.tile.size(); ++v)
      if (l.tile[v] > 1) t.push_back(fmt::format("{}={}", e.vars[v].name, l.tile[v]));
    for (int v : l.order) o.push_back(e.vars[static_cast<size_t>(v)].name);
    const std::string where = i + 1 < m.levels.size() ? m.path[i + 1] : arr.name;
    out += fmt::format("; {} tile {}{}", where, t.empty() ? "1" : fmt::format("{}", fmt::join(t, " ")),
                       o.empty() ? "" : fmt::format(" (loops {}, innermost last)", fmt::join(o, ",")));
  }
  return out;
}

}  // namespace einsim
