#include "workloads/executor.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <random>

namespace einsim {
namespace {

std::vector<int64_t> strides(const Tensor& t) {
  std::vector<int64_t> s(t.shape.size(), 1);
  for (size_t d = t.shape.size(); d-- > 1;) s[d - 1] = s[d] * t.shape[d];
  return s;
}

class Runner {
 public:
  Runner(const Cascade& c, TensorValues& v) : c_(c), v_(v) {
    for (const Tensor& t : c.tensors) stride_.push_back(strides(t));
    data_.resize(c.tensors.size());
  }

  void run() {
    for (size_t i = 0; i < c_.tensors.size(); ++i) {
      const Tensor& t = c_.tensors[i];
      auto& vec = v_[t.name];
      if (t.is_input()) {
        if (vec.size() != t.elements())
          throw UserError(t.loc, fmt::format("input '{}' has {} values but needs {}", t.name, vec.size(), t.elements()));
      } else {
        vec = Eigen::VectorXd::Constant(t.elements(), std::numeric_limits<double>::quiet_NaN());
      }
      data_[i] = vec.data();
    }
    std::vector<int64_t> fixed(c_.ranks.size(), -1);
    run_steps(c_.schedule, fixed);
  }

  void run_steps(const std::vector<Step>& steps, std::vector<int64_t>& fixed) {
    for (const Step& s : steps) {
      if (s.iter_rank < 0) {
        einsum(c_.einsums[static_cast<size_t>(s.einsum)], fixed);
        continue;
      }
      const size_t r = static_cast<size_t>(s.iter_rank);
      for (int64_t it = 0; it < c_.ranks[r].extent; ++it) {
        fixed[r] = it;
        run_steps(s.body, fixed);
      }
      fixed[r] = -1;
    }
  }

 private:
  int64_t offset(const Einsum& e, const Access& a, const std::vector<int64_t>& val) const {
    const auto& st = stride_[static_cast<size_t>(a.tensor)];
    const Tensor& t = c_.tensors[static_cast<size_t>(a.tensor)];
    int64_t off = 0;
    for (size_t d = 0; d < a.dims.size(); ++d) {
      const Affine& f = a.dims[d];
      int64_t i = f.c;
      if (f.gather >= 0) {
        const Access& ia = e.reads[static_cast<size_t>(f.gather)];
        const double raw = data_[static_cast<size_t>(ia.tensor)][offset(e, ia, val)];
        if (!(raw >= 0 && raw < static_cast<double>(t.shape[d])))
          throw UserError(e.loc.shifted(a.pos), fmt::format("gather index {} out of range for '{}' (extent {})", raw, t.name, t.shape[d]));
        i = static_cast<int64_t>(raw);
      }
      for (auto [v, k] : f.terms) i += k * val[static_cast<size_t>(v)];
      off += i * st[d];
    }
    return off;
  }

  double eval(const Einsum& e, const std::vector<int64_t>& val, std::vector<double>& tmp) const {
    for (size_t i = 0; i < e.nodes.size(); ++i) {
      const Node& n = e.nodes[i];
      switch (n.kind) {
        case Node::Kind::Const: tmp[i] = n.value; break;
        case Node::Kind::Read: {
          const Access& a = e.reads[static_cast<size_t>(n.read)];
          tmp[i] = data_[static_cast<size_t>(a.tensor)][offset(e, a, val)];
          break;
        }
        default:
          tmp[i] = apply_node(n, tmp[static_cast<size_t>(n.a)], n.b >= 0 ? tmp[static_cast<size_t>(n.b)] : 0.0);
      }
    }
    return tmp.back();
  }

  // Runs `e` over its iteration space, with the output variables of ranks that enclosing
  // loops iterate held at the loops' current values.
  void einsum(const Einsum& e, const std::vector<int64_t>& fixed_rank) {
    const size_t nv = e.vars.size();
    std::vector<int64_t> val(nv, 0);
    std::vector<bool> held(nv, false);
    std::vector<double> tmp(e.nodes.size());
    for (size_t v = 0; v < static_cast<size_t>(e.n_out); ++v)
      if (const int64_t f = fixed_rank[static_cast<size_t>(e.vars[v].rank)]; f >= 0) val[v] = f, held[v] = true;
    const double identity = e.reduce == Reduce::Sum ? 0.0
                            : e.reduce == Reduce::Max ? -std::numeric_limits<double>::infinity()
                                                      : std::numeric_limits<double>::infinity();
    Node combine;
    combine.kind = e.reduce == Reduce::Sum ? Node::Kind::Add : e.reduce == Reduce::Max ? Node::Kind::Max : Node::Kind::Min;
    double* out = data_[static_cast<size_t>(e.lhs.tensor)];
    const size_t nout = static_cast<size_t>(e.n_out);
    // Odometer over output variables (outer) and reduced variables (inner).
    auto step = [&](size_t from, size_t to) {
      for (size_t d = to; d-- > from;) {
        if (held[d]) continue;
        if (++val[d] < e.vars[d].extent) return true;
        val[d] = 0;
      }
      return false;
    };
    do {
      double acc = identity;
      if (nout == nv) {
        acc = eval(e, val, tmp);
      } else {
        do acc = apply_node(combine, acc, eval(e, val, tmp));
        while (step(nout, nv));
      }
      out[offset(e, e.lhs, val)] = acc;
    } while (step(0, nout));
  }

  const Cascade& c_;
  TensorValues& v_;
  std::vector<std::vector<int64_t>> stride_;
  std::vector<double*> data_;
};

}  // namespace

TensorValues random_inputs(const Cascade& c, uint64_t seed, int64_t max_values) {
  int64_t total = 0;
  for (const Tensor& t : c.tensors)
    if (t.is_input() && (total += t.elements()) > max_values)
      throw UserError(t.loc, fmt::format("the reference executor runs small extents only: inputs exceed {} values", max_values));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  TensorValues v;
  // Index tensors must hold valid indices of the dimension they gather.
  std::vector<int64_t> index_range(c.tensors.size(), 0);
  for (const Einsum& e : c.einsums)
    for (const Access& a : e.reads)
      for (size_t d = 0; d < a.dims.size(); ++d)
        if (a.dims[d].gather >= 0) {
          const int it = e.reads[static_cast<size_t>(a.dims[d].gather)].tensor;
          const int64_t ext = c.tensors[static_cast<size_t>(a.tensor)].shape[d];
          auto& r = index_range[static_cast<size_t>(it)];
          r = r == 0 ? ext : std::min(r, ext);
        }
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    const Tensor& t = c.tensors[i];
    if (!t.is_input()) continue;
    Eigen::VectorXd x(t.elements());
    for (Eigen::Index k = 0; k < x.size(); ++k)
      x[k] = index_range[i] > 0 ? static_cast<double>(rng() % static_cast<uint64_t>(index_range[i])) : u(rng);
    v[t.name] = std::move(x);
  }
  return v;
}

TensorValues execute(const Cascade& c, const TensorValues& inputs, int64_t max_points) {
  int64_t total = 0;
  for (const Einsum& e : c.einsums) {
    total += e.points;
    if (total > max_points)
      throw UserError(e.loc, fmt::format("the reference executor runs small extents only: more than {} iteration points", max_points));
  }
  int64_t values = 0;
  for (const Tensor& t : c.tensors)
    if ((values += t.elements()) > max_points)
      throw UserError(t.loc, fmt::format("the reference executor runs small extents only: tensors exceed {} values", max_points));
  TensorValues v = inputs;
  Runner(c, v).run();
  return v;
}

}  // namespace einsim
