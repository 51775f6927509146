#include "workloads/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace einsim {

double touched_elements(const Cascade& c, const Einsum& e, const Access& a) {
  const Tensor& t = c.tensors[static_cast<size_t>(a.tensor)];
  double n = 1;
  for (size_t d = 0; d < a.dims.size(); ++d) {
    const Affine& f = a.dims[d];
    if (f.gather >= 0) {
      // At most one distinct row per index element, never more rows than the table has;
      // routing choices touch the expected distinct rows (distinct_rows()).
      const Access& idx = e.reads[static_cast<size_t>(f.gather)];
      n *= distinct_rows(static_cast<double>(t.shape[d]), c.tensors[static_cast<size_t>(idx.tensor)], touched_elements(c, e, idx));
    } else {
      n *= static_cast<double>(f.hi - f.lo + 1);
    }
  }
  return n;
}

CascadeStats analyze(const Cascade& c) {
  CascadeStats s;
  std::vector<double> input_touched(c.tensors.size(), 0);
  for (const Einsum& e : c.einsums) {
    EinsumStats es;
    es.points = e.points;
    es.ops = e.ops;
    for (double& n : es.ops.n) n *= e.work;  // causal attention: the blocks computed
    std::set<int> seen;
    for (const Access& a : e.reads) {
      const Tensor& t = c.tensors[static_cast<size_t>(a.tensor)];
      const double touched = touched_elements(c, e, a);
      if (seen.insert(a.tensor).second) es.bytes_read += touched * t.element_bytes();
      if (t.is_input()) input_touched[static_cast<size_t>(a.tensor)] = std::max(input_touched[static_cast<size_t>(a.tensor)], touched);
    }
    const Tensor& out = c.tensors[static_cast<size_t>(e.lhs.tensor)];
    es.bytes_written = touched_elements(c, e, e.lhs) * out.element_bytes();
    s.ops += es.ops;
    s.unfused_bytes += es.bytes_read + es.bytes_written;
    s.einsums.push_back(es);
  }
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    const Tensor& t = c.tensors[i];
    if (t.is_input()) {
      s.input_bytes += t.bytes();
      s.compulsory_bytes += input_touched[i] * t.element_bytes();
    } else if (t.readers.empty()) {
      s.output_bytes += t.bytes();
      s.compulsory_bytes += t.bytes();
    } else {
      s.intermediate_bytes += t.bytes();
    }
  }
  return s;
}

PassReport pass_analysis(const Cascade& c, const std::string& rank_name, const std::vector<int>* subset) {
  PassReport rep;
  rep.rank = rank_name;
  const int rank = c.find_rank(rank_name);
  if (rank < 0) throw UserError(SourceLoc{}, fmt::format("cascade '{}' has no rank '{}'", c.name, rank_name));
  const std::vector<int> fam = c.rank_family(rank);
  auto in_family = [&](int r) { return std::find(fam.begin(), fam.end(), r) != fam.end(); };

  // level[t]: how many complete traversals of the rank must finish before t can be consumed
  // element by element; cause[t]: the Einsum whose full reduction set that level.
  std::vector<int> level(c.tensors.size(), 0), cause(c.tensors.size(), -1);
  // Reads carried across iterations of a recurrence see values from earlier iterations, so
  // sweep the schedule until the levels settle, then once more to record passes and reasons.
  const std::vector<int> order = subset ? *subset : c.order();
  std::vector<char> traverses_rank(c.einsums.size(), 0);
  auto traversal = [&](const Einsum& e) {
    for (const Var& v : e.vars) traverses_rank[static_cast<size_t>(e.id)] |= in_family(v.rank);
  };
  if (subset) {
    // The subset's members and the writers of what they read (a read waits on its writer's
    // traversal); nothing else is consulted.
    for (int id : *subset) {
      const Einsum& e = c.einsums[static_cast<size_t>(id)];
      traversal(e);
      for (const Access& a : e.reads)
        for (int w : c.tensors[static_cast<size_t>(a.tensor)].writers) traversal(c.einsums[static_cast<size_t>(w)]);
    }
  } else {
    for (const Einsum& e : c.einsums) traversal(e);
  }
  struct Reason {
    int pass, einsum, cause, via;
  };
  std::vector<Reason> reasons;  // formatted once the levels settle
  bool changed = true;
  const int rounds = subset ? 1 : 64;
  for (int round = 0; round < rounds && changed; ++round) {
    changed = false;
    rep.passes = 0;
    reasons.clear();
    rep.einsum_pass.assign(c.einsums.size(), 0);
    for (int id : order) {
      const Einsum& e = c.einsums[static_cast<size_t>(id)];
      const bool traverses = traverses_rank[static_cast<size_t>(id)];
      int base = 0, why = -1, via = -1;
      for (const Access& a : e.reads) {
        const Tensor& t = c.tensors[static_cast<size_t>(a.tensor)];
        int need = level[static_cast<size_t>(a.tensor)];
        int need_cause = cause[static_cast<size_t>(a.tensor)];
        // Reading the final index of a dimension over the rank, produced by an Einsum that
        // traverses it, means waiting for that traversal to end.
        for (size_t d = 0; d < a.dims.size(); ++d) {
          if (a.dims[d].gather >= 0 || !a.dims[d].terms.empty() || a.dims[d].c == 0 || !in_family(t.ranks[d])) continue;
          for (int w : t.writers) {
            const bool wt = traverses_rank[static_cast<size_t>(w)];
            if (wt && level[static_cast<size_t>(a.tensor)] + 1 > need) need = level[static_cast<size_t>(a.tensor)] + 1, need_cause = w;
          }
        }
        if (need > base) base = need, why = need_cause, via = a.tensor;
      }
      const Tensor& out = c.tensors[static_cast<size_t>(e.lhs.tensor)];
      int out_level = base, out_cause = why;
      if (traverses) {
        rep.einsum_pass[static_cast<size_t>(id)] = base + 1;
        if (base + 1 > rep.passes) {
          rep.passes = base + 1;
          if (base >= 1) reasons.push_back({base + 1, id, why, via});
        }
        bool keeps = false;
        for (int r : out.ranks) keeps |= r >= 0 && in_family(r);
        // A full reduction over the rank is only available once its traversal ends.
        if (!keeps) out_level = base + 1, out_cause = id;
      }
      if (out_level > level[static_cast<size_t>(e.lhs.tensor)]) {
        level[static_cast<size_t>(e.lhs.tensor)] = out_level;
        cause[static_cast<size_t>(e.lhs.tensor)] = out_cause;
        changed = true;
      }
    }
  }
  if (subset) return rep;  // a block's fusion check needs the passes, not the words
  for (const Reason& r : reasons) {
    const Einsum& e = c.einsums[static_cast<size_t>(r.einsum)];
    const Einsum& ce = c.einsums[static_cast<size_t>(r.cause)];
    rep.reasons.push_back(fmt::format("pass {}: {} ({}) reads {}, which needs the full reduction over {} done by {} ({}) in pass {}", r.pass,
                                      c.tensors[static_cast<size_t>(e.lhs.tensor)].name, e.loc.str(),
                                      c.tensors[static_cast<size_t>(r.via)].name, rank_name,
                                      c.tensors[static_cast<size_t>(ce.lhs.tensor)].name, ce.loc.str(), r.pass - 1));
  }
  return rep;
}

}  // namespace einsim
