#include "workloads/cascade.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <numeric>
#include <queue>
#include <set>
#include <unordered_map>

namespace einsim {

// ---------------------------------------------------------------------------------------------
// Small tables

double dtype_bytes(DType t) {
  switch (t) {
    case DType::FP32: return 4;
    case DType::FP16:
    case DType::BF16: return 2;
    case DType::FP8:
    case DType::INT8: return 1;
    case DType::INT4: return 0.5;
    case DType::INT32: return 4;
    case DType::MXFP8: return 1 + 1.0 / 32;    // e4m3 + one e8m0 byte per 32 (OCP MX v1.0)
    case DType::MXFP6: return 0.75 + 1.0 / 32;  // e2m3
    case DType::MXFP4: return 0.5 + 1.0 / 32;   // e2m1
    case DType::NVFP4: return 0.5 + 1.0 / 16;   // e2m1 + one e4m3 byte per 16
  }
  return 0;
}

bool block_scaled(DType t) { return t == DType::MXFP8 || t == DType::MXFP6 || t == DType::MXFP4 || t == DType::NVFP4; }

const std::vector<std::string>& dtype_names() {
  static const std::vector<std::string> names = {"fp32", "fp16", "bf16", "fp8", "int8", "int4", "int32", "mxfp8", "mxfp6", "mxfp4", "nvfp4"};
  return names;
}

std::string_view dtype_name(DType t) { return dtype_names()[static_cast<size_t>(t)]; }

std::optional<DType> parse_dtype(std::string_view s) {
  const auto& n = dtype_names();
  for (size_t i = 0; i < n.size(); ++i)
    if (n[i] == s) return static_cast<DType>(i);
  return std::nullopt;
}

namespace {
constexpr std::array<std::string_view, 6> kRoleNames = {"auto", "weight", "expert_weight", "kv_cache", "input", "index"};
constexpr std::array<std::string_view, kOpClasses> kOpNames = {"mac", "mul", "add", "max", "exp", "div", "unary"};
}  // namespace

std::string_view role_name(TensorRole r) { return kRoleNames[static_cast<size_t>(r)]; }

std::optional<TensorRole> parse_role(std::string_view s) {
  for (size_t i = 0; i < kRoleNames.size(); ++i)
    if (kRoleNames[i] == s) return static_cast<TensorRole>(i);
  return std::nullopt;
}

std::string_view op_class_name(OpClass c) { return kOpNames[static_cast<size_t>(c)]; }

OpCounts& OpCounts::operator+=(const OpCounts& o) {
  for (int i = 0; i < kOpClasses; ++i) n[i] += o.n[i];
  return *this;
}

double OpCounts::flops() const {
  double f = 0;
  for (int i = 0; i < kOpClasses; ++i) f += n[i];
  return f + n[static_cast<int>(OpClass::Mac)];
}

int64_t Tensor::elements() const {
  int64_t e = 1;
  for (int64_t s : shape) e *= s;
  return e;
}

int Cascade::find_rank(std::string_view rank_name) const {
  for (size_t i = 0; i < ranks.size(); ++i)
    if (ranks[i].name == rank_name) return static_cast<int>(i);
  return -1;
}

int Cascade::find_tensor(std::string_view tensor_name) const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == tensor_name) return static_cast<int>(i);
  return -1;
}

namespace {
void flatten(const std::vector<Step>& steps, std::vector<int>& out) {
  for (const Step& s : steps) {
    if (s.iter_rank < 0) out.push_back(s.einsum);
    else flatten(s.body, out);
  }
}
}  // namespace

std::vector<int> Cascade::order() const {
  std::vector<int> out;
  out.reserve(einsums.size());
  flatten(schedule, out);
  return out;
}

std::vector<int> Cascade::rank_family(int rank) const {
  std::vector<int> out{rank};
  for (size_t i = 0; i < out.size(); ++i)
    for (int p : ranks[static_cast<size_t>(out[i])].parts) out.push_back(p);
  return out;
}

double apply_node(const Node& n, double a, double b) {
    switch (n.kind) {
      case Node::Kind::Neg: return -a;
      case Node::Kind::Add: return a + b;
      case Node::Kind::Sub: return a - b;
      case Node::Kind::Mul: return a * b;
      case Node::Kind::Div: return a / b;
      case Node::Kind::Max: return std::max(a, b);
      case Node::Kind::Min: return std::min(a, b);
      case Node::Kind::Func:
        switch (n.func) {
          case Func::Exp: return std::exp(a);
          case Func::Silu: return a / (1 + std::exp(-a));
          case Func::Gelu: return 0.5 * a * (1 + std::erf(a / std::sqrt(2.0)));
          case Func::Relu: return std::max(a, 0.0);
          case Func::Sigmoid: return 1 / (1 + std::exp(-a));
          case Func::Tanh: return std::tanh(a);
          case Func::Rsqrt: return 1 / std::sqrt(a);
          case Func::Sqrt: return std::sqrt(a);
          case Func::Log: return std::log(a);
          case Func::Abs: return std::fabs(a);
          default: return a;
        }
      default: return a;
    }
}


// ---------------------------------------------------------------------------------------------
// Binding

namespace {

constexpr int64_t kMaxExtent = int64_t{1} << 40;

int64_t checked_mul(int64_t a, int64_t b, const SourceLoc& loc, std::string_view what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw UserError(loc, fmt::format("{} overflows 64-bit integers", what));
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const SourceLoc& loc, std::string_view what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw UserError(loc, fmt::format("{} overflows 64-bit integers", what));
  return r;
}

std::string upper_rank_of(std::string_view var) {
  std::string r(var);
  r[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r[0])));
  return r;
}

class Binder {
 public:
  Binder(const CascadeSpec& spec, const std::map<std::string, int64_t>& params) : spec_(spec) {
    params_ = spec.params;
    for (const auto& [k, v] : params) params_[k] = v;
  }

  Cascade run() {
    c_.name = spec_.name;
    bind_ranks();
    bind_partitions();
    declare_tensors();
    c_.einsums.reserve(spec_.einsums.size());
    for (size_t i = 0; i < spec_.einsums.size(); ++i) bind_einsum(static_cast<int>(i), spec_.einsums[i]);
    for (Einsum& e : c_.einsums)
      if (auto it = spec_.work.find(c_.tensors[static_cast<size_t>(e.lhs.tensor)].name); it != spec_.work.end()) e.work = it->second;
    for (int v : spec_.views)
      if (v >= 0 && v < static_cast<int>(c_.einsums.size())) c_.einsums[static_cast<size_t>(v)].view = true, c_.einsums[static_cast<size_t>(v)].work = 0;
    for (int v : spec_.in_reader_kernel)
      if (v >= 0 && v < static_cast<int>(c_.einsums.size())) c_.einsums[static_cast<size_t>(v)].in_reader_kernel = true;
    check_inputs();
    infer_shapes();
    check_accesses();
    build_edges();
    schedule();
    for (const auto& [k, v] : params_) c_.params[k] = v;
    return std::move(c_);
  }

 private:
  // ---- ranks
  int64_t eval_extent(const ExtentExpr& x, const RankDecl& r, std::vector<int>& stack) {
    const SourceLoc at = r.loc.shifted(x.pos);
    switch (x.kind) {
      case ExtentExpr::Kind::Int: return x.value;
      case ExtentExpr::Kind::Name: {
        if (auto it = rank_decl_.find(x.name); it != rank_decl_.end()) return rank_extent(it->second, stack);
        auto p = params_.find(x.name);
        if (p == params_.end())
          throw UserError(at, fmt::format("unbound extent: rank '{}' needs parameter '{}' (give it a value under "
                                          "[cascade.params] or with --set cascade.params.{}=N)",
                                          r.name, x.name, x.name));
        used_params_.insert(x.name);
        return p->second;
      }
      default: break;
    }
    const int64_t a = eval_extent(x.kids[0], r, stack), b = eval_extent(x.kids[1], r, stack);
    switch (x.kind) {
      case ExtentExpr::Kind::Add: return checked_add(a, b, at, "extent");
      case ExtentExpr::Kind::Sub: return a - b;
      case ExtentExpr::Kind::Mul: return checked_mul(a, b, at, "extent");
      case ExtentExpr::Kind::Div:
        if (b == 0) throw UserError(at, fmt::format("extent of rank '{}' divides by zero", r.name));
        if (a % b != 0)
          throw UserError(at, fmt::format("extent of rank '{}' is not a whole number: {} / {} leaves {}", r.name, a, b, a % b));
        return a / b;
      default: return 0;
    }
  }

  int64_t rank_extent(int i, std::vector<int>& stack) {
    if (extent_[static_cast<size_t>(i)] > 0) return extent_[static_cast<size_t>(i)];
    const RankDecl& r = spec_.ranks[static_cast<size_t>(i)];
    if (std::find(stack.begin(), stack.end(), i) != stack.end())
      throw UserError(r.loc, fmt::format("the extent of rank '{}' depends on itself", r.name));
    stack.push_back(i);
    const int64_t v = eval_extent(r.extent, r, stack);
    stack.pop_back();
    if (v <= 0 || v > kMaxExtent)
      throw UserError(r.loc, fmt::format("rank '{}' has extent {} = {}; it must be in [1, 2^40]", r.name, r.extent_text, v));
    extent_[static_cast<size_t>(i)] = v;
    return v;
  }

  void bind_ranks() {
    for (size_t i = 0; i < spec_.ranks.size(); ++i) {
      const RankDecl& r = spec_.ranks[i];
      if (r.name.empty() || !std::isupper(static_cast<unsigned char>(r.name[0])))
        throw UserError(r.loc, fmt::format("rank names start with an upper-case letter: '{}'", r.name));
      if (!rank_decl_.emplace(r.name, static_cast<int>(i)).second)
        throw UserError(r.loc, fmt::format("rank '{}' is declared twice", r.name));
    }
    extent_.assign(spec_.ranks.size(), 0);
    for (size_t i = 0; i < spec_.ranks.size(); ++i) {
      std::vector<int> stack;
      rank_extent(static_cast<int>(i), stack);
      Rank r;
      r.name = spec_.ranks[i].name;
      r.extent = extent_[i];
      r.loc = spec_.ranks[i].loc;
      c_.ranks.push_back(r);
      rank_index_[r.name] = static_cast<int>(i);
    }
    for (const auto& [k, v] : params_) {
      if (used_params_.count(k)) continue;
      auto l = spec_.param_locs.find(k);
      throw UserError(l != spec_.param_locs.end() ? l->second : spec_.loc,
                      fmt::format("parameter '{}' is not used by any rank extent", k));
    }
  }

  void bind_partitions() {
    for (const PartitionDecl& p : spec_.partitions) {
      const int parent = rank_or_fail(p.parent, p.loc);
      if (p.parts.size() < 2) throw UserError(p.loc, fmt::format("partition of '{}' needs at least two ranks", p.parent));
      int64_t prod = 1;
      for (const auto& part : p.parts) {
        const int r = rank_or_fail(part, p.loc);
        if (r == parent || c_.ranks[static_cast<size_t>(r)].parent >= 0)
          throw UserError(p.loc, fmt::format("rank '{}' cannot partition '{}' (it already partitions a rank or is the rank itself)", part, p.parent));
        c_.ranks[static_cast<size_t>(r)].parent = parent;
        c_.ranks[static_cast<size_t>(parent)].parts.push_back(r);
        prod = checked_mul(prod, c_.ranks[static_cast<size_t>(r)].extent, p.loc, "partition extent");
      }
      if (prod != c_.ranks[static_cast<size_t>(parent)].extent)
        throw UserError(p.loc, fmt::format("partition {} = {} has extent {} but rank '{}' has extent {}", p.parent,
                                           fmt::join(p.parts, "*"), prod, p.parent,
                                           c_.ranks[static_cast<size_t>(parent)].extent));
    }
    // A partition tree must not loop back on itself.
    for (size_t i = 0; i < c_.ranks.size(); ++i) {
      int r = static_cast<int>(i);
      for (size_t steps = 0; r >= 0; ++steps) {
        if (steps > c_.ranks.size()) throw UserError(c_.ranks[i].loc, fmt::format("partitions of '{}' form a cycle", c_.ranks[i].name));
        r = c_.ranks[static_cast<size_t>(r)].parent;
      }
    }
  }

  int rank_or_fail(const std::string& name, const SourceLoc& loc) const {
    auto it = rank_index_.find(name);
    if (it == rank_index_.end()) throw UserError(loc, fmt::format("unknown rank '{}' (declare it under [cascade.ranks])", name));
    return it->second;
  }

  // ---- tensors
  void declare_tensors() {
    for (const TensorDecl& d : spec_.tensors) {
      Tensor t;
      t.name = d.name;
      t.dtype = d.dtype.value_or(spec_.dtype);
      t.scale_bytes = d.scale_bytes;
      t.routed = d.routed;
      t.routing_skew = d.routing_skew;
      t.role = d.role;
      t.loc = d.loc;
      if (d.has_ranks) {
        for (const auto& r : d.ranks) {
          t.ranks.push_back(rank_or_fail(r, d.loc));
          t.shape.push_back(c_.ranks[static_cast<size_t>(t.ranks.back())].extent);
        }
      }
      declared_.push_back(d.has_ranks);
      dtype_set_.push_back(d.dtype.has_value());
      tensor_index_[t.name] = static_cast<int>(c_.tensors.size());
      c_.tensors.push_back(std::move(t));
      arity_.push_back(d.has_ranks ? static_cast<int>(d.ranks.size()) : -1);
      arity_loc_.push_back(d.loc);
    }
  }

  int tensor_for(const std::string& name, size_t arity, const SourceLoc& at) {
    auto [it, fresh] = tensor_index_.emplace(name, static_cast<int>(c_.tensors.size()));
    if (fresh) {
      if (rank_index_.count(name))
        throw UserError(at, fmt::format("'{}' is a rank; a tensor cannot have the same name", name));
      Tensor t;
      t.name = name;
      t.dtype = spec_.dtype;
      t.loc = at;
      c_.tensors.push_back(std::move(t));
      declared_.push_back(false);
      dtype_set_.push_back(false);
      arity_.push_back(static_cast<int>(arity));
      arity_loc_.push_back(at);
    }
    const size_t ti = static_cast<size_t>(it->second);
    if (arity_[ti] < 0) {  // declared without ranks (a type only): the first access says
      arity_[ti] = static_cast<int>(arity);
      arity_loc_[ti] = at;
    }
    if (arity_[ti] != static_cast<int>(arity))
      throw UserError(at, fmt::format("arity mismatch: '{}' has {} ind{} here but {} at {}", name, arity,
                                      arity == 1 ? "ex" : "ices", arity_[ti], arity_loc_[ti].str()));
    return it->second;
  }

  // ---- Einsums
  struct Ctx {
    const EinsumAst* ast;
    Einsum* e;
    std::unordered_map<std::string, int> var_slot;
  };

  SourceLoc at(const Ctx& x, int pos) const { return x.ast->loc.shifted(pos); }

  int var_for(Ctx& x, const std::string& name, int pos) {
    if (auto it = x.var_slot.find(name); it != x.var_slot.end()) return it->second;
    const std::string rn = upper_rank_of(name);
    auto r = rank_index_.find(rn);
    if (r == rank_index_.end())
      throw UserError(at(x, pos), fmt::format("index '{}' has no rank '{}' (declare it under [cascade.ranks])", name, rn));
    Var v;
    v.name = name;
    v.rank = r->second;
    v.extent = c_.ranks[static_cast<size_t>(r->second)].extent;
    x.e->vars.push_back(v);
    const int slot = static_cast<int>(x.e->vars.size()) - 1;
    x.var_slot.emplace(name, slot);
    return slot;
  }

  void collect_vars(Ctx& x, const IndexExpr& ie) {
    if (ie.kind == IndexExpr::Kind::Var) var_for(x, ie.name, ie.pos);
    for (const auto& k : ie.kids) collect_vars(x, k);
  }
  void collect_vars(Ctx& x, const Expr& ex) {
    if (ex.kind == Expr::Kind::Ref)
      for (const auto& ie : ex.ref.idx) collect_vars(x, ie);
    for (const auto& a : ex.args) collect_vars(x, a);
  }

  int64_t extent_const(const Ctx& x, const std::string& name, int pos) const {
    auto r = rank_index_.find(name);
    if (r == rank_index_.end())
      throw UserError(at(x, pos), fmt::format("'{}' is not a rank, so it cannot stand for an extent here", name));
    return c_.ranks[static_cast<size_t>(r->second)].extent;
  }

  // Evaluates an index expression into affine form.
  Affine affine(Ctx& x, const IndexExpr& ie) {
    Affine a;
    switch (ie.kind) {
      case IndexExpr::Kind::Int: a.c = ie.value; return a;
      case IndexExpr::Kind::Extent: a.c = extent_const(x, ie.name, ie.pos); return a;
      case IndexExpr::Kind::Var: a.terms.push_back({x.var_slot.at(ie.name), 1}); return a;
      case IndexExpr::Kind::Neg: {
        a = affine(x, ie.kids[0]);
        if (a.gather >= 0) break;
        a.c = -a.c;
        for (auto& t : a.terms) t.second = -t.second;
        return a;
      }
      case IndexExpr::Kind::Add:
      case IndexExpr::Kind::Sub: {
        Affine l = affine(x, ie.kids[0]), r = affine(x, ie.kids[1]);
        if (l.gather >= 0 || r.gather >= 0) break;
        const int64_t s = ie.kind == IndexExpr::Kind::Add ? 1 : -1;
        l.c = checked_add(l.c, s * r.c, at(x, ie.pos), "index");
        for (const auto& term : r.terms) {
          const int v = term.first;
          const int64_t k = term.second;
          auto it = std::find_if(l.terms.begin(), l.terms.end(), [v](auto& t) { return t.first == v; });
          if (it == l.terms.end()) l.terms.push_back({v, s * k});
          else it->second += s * k;
        }
        std::erase_if(l.terms, [](auto& t) { return t.second == 0; });
        return l;
      }
      case IndexExpr::Kind::Mul: {
        Affine l = affine(x, ie.kids[0]), r = affine(x, ie.kids[1]);
        if (l.gather >= 0 || r.gather >= 0) break;
        if (!l.terms.empty() && !r.terms.empty())
          throw UserError(at(x, ie.pos), "index expression is not affine: two index variables are multiplied");
        if (!l.terms.empty()) std::swap(l, r);
        const int64_t k = l.c;
        r.c = checked_mul(r.c, k, at(x, ie.pos), "index");
        for (auto& t : r.terms) t.second = checked_mul(t.second, k, at(x, ie.pos), "index");
        std::erase_if(r.terms, [](auto& t) { return t.second == 0; });
        return r;
      }
      case IndexExpr::Kind::Gather: {
        TensorRef g;
        g.name = ie.name;
        g.idx = ie.kids;
        g.pos = ie.pos;
        a.gather = add_read(x, g);
        return a;
      }
    }
    throw UserError(at(x, ie.pos), "a gather index (T[...] inside brackets) must be the whole index expression");
  }

  void set_range(Affine& a) {
    a.lo = a.hi = a.c;
    for (auto [v, k] : a.terms) {
      const int64_t span = k * (vars_->at(static_cast<size_t>(v)).extent - 1);
      (span >= 0 ? a.hi : a.lo) += span;
    }
  }

  int add_read(Ctx& x, const TensorRef& r) {
    Access acc;
    acc.pos = r.pos;
    for (const auto& ie : r.idx) acc.dims.push_back(affine(x, ie));
    acc.tensor = tensor_for(r.name, r.idx.size(), at(x, r.pos));
    x.e->reads.push_back(std::move(acc));
    return static_cast<int>(x.e->reads.size()) - 1;
  }

  int compile(Ctx& x, const Expr& ex) {
    Einsum& e = *x.e;
    auto push = [&](Node n) {
      e.nodes.push_back(n);
      return static_cast<int>(e.nodes.size()) - 1;
    };
    Node n;
    switch (ex.kind) {
      case Expr::Kind::Number: n.kind = Node::Kind::Const; n.value = ex.number; return push(n);
      case Expr::Kind::Ref:
        if (ex.ref.idx.empty() && rank_index_.count(ex.ref.name)) {
          n.kind = Node::Kind::Const;
          n.value = static_cast<double>(extent_const(x, ex.ref.name, ex.pos));
          return push(n);
        }
        n.kind = Node::Kind::Read;
        n.read = add_read(x, ex.ref);
        return push(n);
      case Expr::Kind::Neg: n.kind = Node::Kind::Neg; n.a = compile(x, ex.args[0]); break;
      case Expr::Kind::Add: n.kind = Node::Kind::Add; break;
      case Expr::Kind::Sub: n.kind = Node::Kind::Sub; break;
      case Expr::Kind::Mul: n.kind = Node::Kind::Mul; break;
      case Expr::Kind::Div: n.kind = Node::Kind::Div; break;
      case Expr::Kind::Call:
        if (ex.func == Func::Max || ex.func == Func::Min) {
          n.kind = ex.func == Func::Max ? Node::Kind::Max : Node::Kind::Min;
        } else {
          n.kind = Node::Kind::Func;
          n.func = ex.func;
          n.a = compile(x, ex.args[0]);
        }
        break;
    }
    if (n.a < 0 && n.kind != Node::Kind::Neg && !(n.kind == Node::Kind::Func)) {
      n.a = compile(x, ex.args[0]);
      n.b = compile(x, ex.args[1]);
    }
    // Constant folding: an operation on constants is done once, at bind time, and costs nothing.
    const bool ca = e.nodes[static_cast<size_t>(n.a)].kind == Node::Kind::Const;
    const bool cb = n.b < 0 || e.nodes[static_cast<size_t>(n.b)].kind == Node::Kind::Const;
    if (ca && cb) {
      const double va = e.nodes[static_cast<size_t>(n.a)].value, vb = n.b < 0 ? 0 : e.nodes[static_cast<size_t>(n.b)].value;
      Node k;
      k.kind = Node::Kind::Const;
      k.value = apply_node(n, va, vb);
      return push(k);
    }
    return push(n);
  }

  void count_ops(Einsum& e) {

    OpCounts per;
    const Node& root = e.nodes.back();
    for (const Node& n : e.nodes) {
      switch (n.kind) {
        case Node::Kind::Add:
        case Node::Kind::Sub: per[OpClass::Add] += 1; break;
        case Node::Kind::Mul: per[OpClass::Mul] += 1; break;
        case Node::Kind::Div: per[OpClass::Div] += 1; break;
        case Node::Kind::Max:
        case Node::Kind::Min: per[OpClass::Max] += 1; break;
        case Node::Kind::Func: per[n.func == Func::Exp ? OpClass::Exp : OpClass::Unary] += 1; break;
        default: break;  // constants, reads, sign flips cost nothing
      }
    }
    const double points = static_cast<double>(e.points);
    for (int i = 0; i < kOpClasses; ++i) e.ops.n[i] = per.n[i] * points;
    if (e.points == e.out_points) return;
    const double combines = points - static_cast<double>(e.out_points);
    if (e.reduce == Reduce::Sum && root.kind == Node::Kind::Mul) {
      // A product accumulated into a sum is one multiply-accumulate per point.
      e.ops[OpClass::Mul] -= points;
      e.ops[OpClass::Mac] += points;
    } else if (e.reduce == Reduce::Sum) {
      e.ops[OpClass::Add] += combines;
    } else {
      e.ops[OpClass::Max] += combines;
    }
  }

  void bind_einsum(int id, const EinsumAst& ast) {
    c_.einsums.emplace_back();
    Einsum& e = c_.einsums.back();
    e.id = id;
    e.text = ast.text;
    e.loc = ast.loc;
    e.reduce = ast.reduce;
    Ctx x{&ast, &e, {}};
    vars_ = &e.vars;

    // Output variables, in left-hand-side order.
    const TensorRef& L = ast.lhs;
    for (size_t d = 0; d < L.idx.size(); ++d) {
      const IndexExpr& ie = L.idx[d];
      if (!L.init_var[d].empty()) {
        var_rank_only(x, L.init_var[d], ie.pos);
        continue;
      }
      const IndexExpr* v = &ie;
      if (ie.kind == IndexExpr::Kind::Add && ie.kids[0].kind == IndexExpr::Kind::Var && ie.kids[1].kind == IndexExpr::Kind::Int)
        v = &ie.kids[0];
      if (v->kind == IndexExpr::Kind::Var) {
        if (x.var_slot.count(v->name))
          throw UserError(at(x, v->pos), fmt::format("index '{}' appears twice on the left-hand side", v->name));
        var_for(x, v->name, v->pos);
      } else if (ie.kind != IndexExpr::Kind::Int && ie.kind != IndexExpr::Kind::Extent) {
        throw UserError(at(x, ie.pos), "a left-hand-side index must be a variable ('m'), an update ('m1+1'), an initial "
                                       "index ('m1=0') or a constant");
      }
    }
    e.n_out = static_cast<int>(e.vars.size());
    collect_vars(x, ast.rhs);

    // Reduction.
    std::vector<std::string> missing;
    for (size_t i = static_cast<size_t>(e.n_out); i < e.vars.size(); ++i) missing.push_back(e.vars[i].name);
    if (ast.explicit_reduce) {
      std::vector<std::string> want = ast.reduce_vars, have = missing;
      std::sort(want.begin(), want.end());
      std::sort(have.begin(), have.end());
      if (want != have)
        throw UserError(at(x, ast.reduce_pos),
                        fmt::format("{}[{}] must list exactly the indices missing on the left-hand side ({})",
                                    reduce_name(ast.reduce), fmt::join(ast.reduce_vars, ","),
                                    missing.empty() ? "none" : fmt::format("{}", fmt::join(missing, ","))));
    }

    // Left-hand side access.
    e.lhs.pos = L.pos;
    for (size_t d = 0; d < L.idx.size(); ++d) {
      Affine a = affine(x, L.idx[d]);
      if (a.terms.size() == 1 && a.c > 0) {
        if (e.iter_var >= 0) throw UserError(at(x, L.idx[d].pos), "only one iterative index ('m1+1') per Einsum");
        e.iter_var = a.terms[0].first;
      }
      e.lhs.dims.push_back(a);
    }
    e.lhs.tensor = tensor_for(L.name, L.idx.size(), at(x, L.pos));
    if (rank_index_.count(L.name)) throw UserError(at(x, L.pos), fmt::format("'{}' is a rank; it cannot be assigned", L.name));

    compile(x, ast.rhs);

    e.points = 1;
    e.out_points = 1;
    for (size_t i = 0; i < e.vars.size(); ++i) {
      e.points = checked_mul(e.points, e.vars[i].extent, ast.loc, "iteration space");
      if (static_cast<int>(i) < e.n_out) e.out_points *= e.vars[i].extent;
    }
    set_range_all(e);
    count_ops(e);
  }

  void var_rank_only(Ctx& x, const std::string& name, int pos) {
    const std::string rn = upper_rank_of(name);
    if (!rank_index_.count(rn))
      throw UserError(at(x, pos), fmt::format("index '{}' has no rank '{}' (declare it under [cascade.ranks])", name, rn));
  }

  void set_range_all(Einsum& e) {
    for (auto& d : e.lhs.dims) set_range(d);
    for (auto& r : e.reads)
      for (auto& d : r.dims) set_range(d);
  }

  // The rank a dimension is indexed over by one access, or -1 when the access does not say.
  int access_rank(const Einsum& e, const Access& a, size_t d, const std::string& init_var) const {
    if (!init_var.empty()) return rank_index_.at(upper_rank_of(init_var));
    const Affine& f = a.dims[d];
    if (f.gather >= 0 || f.terms.empty()) return -1;
    if (f.terms.size() == 1 && f.terms[0].second == 1) return e.vars[static_cast<size_t>(f.terms[0].first)].rank;
    // m1*M0 + m0 over the parts of one partitioned rank indexes that rank.
    int parent = -1;
    for (auto [v, k] : f.terms) {
      const int p = c_.ranks[static_cast<size_t>(e.vars[static_cast<size_t>(v)].rank)].parent;
      if (p < 0 || (parent >= 0 && p != parent)) return -1;
      parent = p;
    }
    return f.terms.size() == c_.ranks[static_cast<size_t>(parent)].parts.size() ? parent : -1;
  }

  void infer_shapes() {
    struct Use {
      const Einsum* e;
      const Access* a;
      bool write;
    };
    std::vector<std::vector<Use>> uses(c_.tensors.size());
    for (const Einsum& e : c_.einsums) {
      uses[static_cast<size_t>(e.lhs.tensor)].push_back({&e, &e.lhs, true});
      c_.tensors[static_cast<size_t>(e.lhs.tensor)].writers.push_back(e.id);
      for (const Access& r : e.reads) {
        uses[static_cast<size_t>(r.tensor)].push_back({&e, &r, false});
        auto& rd = c_.tensors[static_cast<size_t>(r.tensor)].readers;
        if (rd.empty() || rd.back() != e.id) rd.push_back(e.id);
      }
      for (const Access& r : e.reads)
        for (const Affine& d : r.dims)
          if (d.gather >= 0) gather_index_.insert(e.reads[static_cast<size_t>(d.gather)].tensor);
    }
    for (size_t ti = 0; ti < c_.tensors.size(); ++ti) {
      Tensor& t = c_.tensors[ti];
      if (uses[ti].empty()) throw UserError(t.loc, fmt::format("tensor '{}' is declared but never used", t.name));
      const size_t arity = static_cast<size_t>(arity_[ti]);
      if (!declared_[ti]) {
        t.ranks.assign(arity, -1);
        t.shape.assign(arity, 0);
      }
      std::vector<const Use*> first(arity, nullptr);
      for (const Use& u : uses[ti]) {
        const EinsumAst& ast = spec_.einsums[static_cast<size_t>(u.e->id)];
        for (size_t d = 0; d < arity; ++d) {
          const std::string& init = u.write ? ast.lhs.init_var[d] : std::string();
          const int r = access_rank(*u.e, *u.a, d, init);
          if (r < 0) continue;
          if (t.ranks[d] < 0) {
            t.ranks[d] = r;
            first[d] = &u;
            continue;
          }
          const int64_t e0 = c_.ranks[static_cast<size_t>(t.ranks[d])].extent, e1 = c_.ranks[static_cast<size_t>(r)].extent;
          if (e0 != e1) {
            const SourceLoc there = first[d] ? first[d]->e->loc.shifted(first[d]->a->pos) : t.loc;
            throw UserError(u.e->loc.shifted(u.a->pos),
                            fmt::format("rank used with two different extents: dimension {} of '{}' is indexed over {} "
                                        "({}) here but over {} ({}) at {}",
                                        d + 1, t.name, c_.ranks[static_cast<size_t>(r)].name, e1,
                                        c_.ranks[static_cast<size_t>(t.ranks[d])].name, e0, there.str()));
          }
        }
      }
      for (size_t d = 0; d < arity; ++d) {
        int64_t ext = 0;
        if (!t.writers.empty()) {
          for (const Use& u : uses[ti])
            if (u.write) ext = std::max(ext, u.a->dims[d].hi + 1);
        } else if (t.ranks[d] >= 0) {
          ext = c_.ranks[static_cast<size_t>(t.ranks[d])].extent;
        } else {
          for (const Use& u : uses[ti])
            if (u.a->dims[d].gather < 0) ext = std::max(ext, u.a->dims[d].hi + 1);
          if (ext == 0)
            throw UserError(t.loc, fmt::format("cannot infer the extent of dimension {} of '{}': declare its ranks under "
                                               "[cascade.tensors]",
                                               d + 1, t.name));
        }
        if (declared_[ti] && !t.writers.empty() && ext > t.shape[d])
          throw UserError(t.loc, fmt::format("'{}' is written up to index {} in dimension {}, beyond its declared rank {} ({})",
                                             t.name, ext - 1, d + 1, c_.ranks[static_cast<size_t>(t.ranks[d])].name, t.shape[d]));
        if (!declared_[ti]) t.shape[d] = ext;
      }
      checked_elements(t);
      if (gather_index_.count(static_cast<int>(ti))) {
        if (t.role == TensorRole::Auto) t.role = TensorRole::Index;
        if (!dtype_set_[ti]) t.dtype = DType::INT32;
      }
    }
  }

  void check_inputs() {
    std::set<std::string> listed;
    for (const std::string& n : spec_.inputs) {
      if (!listed.insert(n).second) throw UserError(spec_.inputs_loc, fmt::format("input '{}' is listed twice", n));
      auto it = tensor_index_.find(n);
      if (it == tensor_index_.end())
        throw UserError(spec_.inputs_loc, fmt::format("input '{}' is not used by any Einsum", n));
    }
    for (const Einsum& e : c_.einsums) c_.tensors[static_cast<size_t>(e.lhs.tensor)].writers.push_back(e.id);
    for (size_t i = 0; i < c_.tensors.size(); ++i) {
      Tensor& t = c_.tensors[i];
      const bool written = !t.writers.empty();
      if (listed.count(t.name) && written)
        throw UserError(spec_.inputs_loc, fmt::format("'{}' is listed as an input but an Einsum writes it at {}", t.name,
                                                      c_.einsums[static_cast<size_t>(t.writers[0])].loc.str()));
      const bool declared = i < spec_.tensors.size();  // declared tensors come first
      if (!written && !declared && !listed.count(t.name))
        throw UserError(t.loc, fmt::format("undefined tensor '{}': no Einsum writes it and it is not an input (list it in "
                                           "cascade.inputs or declare it under [cascade.tensors])",
                                           t.name));
      t.writers.clear();
    }
  }

  void checked_elements(const Tensor& t) const {
    int64_t e = 1;
    for (int64_t s : t.shape) e = checked_mul(e, s, t.loc, fmt::format("the size of '{}'", t.name));
  }

  void check_accesses() {
    for (const Einsum& e : c_.einsums) {
      auto check = [&](const Access& a, bool write) {
        const Tensor& t = c_.tensors[static_cast<size_t>(a.tensor)];
        for (size_t d = 0; d < a.dims.size(); ++d) {
          const Affine& f = a.dims[d];
          if (f.gather >= 0) continue;
          if (f.lo < 0 || f.hi >= t.shape[d])
            throw UserError(e.loc.shifted(a.pos),
                            fmt::format("{} '{}' out of bounds in dimension {}: indices {}..{} but the extent is {}",
                                        write ? "writes" : "reads", t.name, d + 1, f.lo, f.hi, t.shape[d]));
        }
      };
      check(e.lhs, true);
      for (const Access& r : e.reads) check(r, false);
    }
    // Two Einsums may write one tensor only where their regions do not overlap (an initial
    // value and its iterative update).
    for (const Tensor& t : c_.tensors) {
      for (size_t i = 0; i < t.writers.size(); ++i)
        for (size_t j = 0; j < i; ++j) {
          const Einsum& a = c_.einsums[static_cast<size_t>(t.writers[j])];
          const Einsum& b = c_.einsums[static_cast<size_t>(t.writers[i])];
          if (a.id == b.id || overlaps(a.lhs, b.lhs))
            throw UserError(b.loc.shifted(b.lhs.pos), fmt::format("tensor '{}' is written twice (also at {})", t.name,
                                                                      a.loc.shifted(a.lhs.pos).str()));
        }
    }
  }

  static bool overlaps(const Access& a, const Access& b) {
    for (size_t d = 0; d < a.dims.size(); ++d) {
      if (a.dims[d].gather >= 0 || b.dims[d].gather >= 0) continue;
      if (a.dims[d].hi < b.dims[d].lo || b.dims[d].hi < a.dims[d].lo) return false;
    }
    return true;
  }

  void build_edges() {
    for (const Einsum& r : c_.einsums) {
      for (const Access& a : r.reads) {
        for (int wi : c_.tensors[static_cast<size_t>(a.tensor)].writers) {
          const Einsum& w = c_.einsums[static_cast<size_t>(wi)];
          if (!overlaps(a, w.lhs)) continue;
          int carried = -1;
          if (w.iter_var >= 0) {
            for (size_t d = 0; d < w.lhs.dims.size(); ++d) {
              const Affine& wd = w.lhs.dims[d];
              if (wd.terms.size() != 1 || wd.terms[0].first != w.iter_var) continue;
              const Affine& rd = a.dims[d];
              if (rd.gather < 0 && rd.terms.size() == 1 && rd.terms[0].second == 1 &&
                  r.vars[static_cast<size_t>(rd.terms[0].first)].rank == w.vars[static_cast<size_t>(w.iter_var)].rank &&
                  rd.c < wd.c)
                carried = w.vars[static_cast<size_t>(w.iter_var)].rank;
            }
          }
          if (wi == r.id && carried < 0)
            throw UserError(r.loc.shifted(a.pos), fmt::format("cycle: '{}' reads the element it writes", c_.tensors[static_cast<size_t>(a.tensor)].name));
          // One edge per pair; it is carried only if every read behind it is.
          const uint64_t key = (static_cast<uint64_t>(wi) << 32) | static_cast<uint32_t>(r.id);
          auto [it, fresh] = edge_index_.emplace(key, c_.edges.size());
          if (fresh) c_.edges.push_back(Edge{wi, r.id, carried});
          else if (carried < 0) c_.edges[it->second].carried_rank = -1;
        }
      }
    }
  }

  // Tarjan's strongly connected components of `nodes` over `arcs`, iteratively. Returns the
  // component of each node (indexed like `nodes`) and fills `comps` with node positions.
  static std::vector<int> sccs(size_t n, const std::vector<std::vector<int>>& adj, std::vector<std::vector<int>>& comps) {
    std::vector<int> index(n, -1), low(n, 0), comp(n, -1), stack;
    std::vector<bool> on(n, false);
    int counter = 0;
    for (size_t s = 0; s < n; ++s) {
      if (index[s] >= 0) continue;
      std::vector<std::pair<int, size_t>> call{{static_cast<int>(s), 0}};
      while (!call.empty()) {
        auto& [v, it] = call.back();
        const size_t vi = static_cast<size_t>(v);
        if (it == 0 && index[vi] < 0) {
          index[vi] = low[vi] = counter++;
          stack.push_back(v);
          on[vi] = true;
        }
        if (it < adj[vi].size()) {
          const int w = adj[vi][it++];
          const size_t wi = static_cast<size_t>(w);
          if (index[wi] < 0) call.push_back({w, 0});
          else if (on[wi]) low[vi] = std::min(low[vi], index[wi]);
          continue;
        }
        if (low[vi] == index[vi]) {
          comps.emplace_back();
          int w;
          do {
            w = stack.back();
            stack.pop_back();
            on[static_cast<size_t>(w)] = false;
            comp[static_cast<size_t>(w)] = static_cast<int>(comps.size()) - 1;
            comps.back().push_back(w);
          } while (w != v);
          std::sort(comps.back().begin(), comps.back().end());
        }
        const int done = v;
        call.pop_back();
        if (!call.empty()) {
          const size_t p = static_cast<size_t>(call.back().first);
          low[p] = std::min(low[p], low[static_cast<size_t>(done)]);
        }
      }
    }
    return comp;
  }

  bool keeps_rank(const Einsum& e, int rank) const {
    for (int v = 0; v < e.n_out; ++v)
      if (e.vars[static_cast<size_t>(v)].rank == rank) return true;
    return false;
  }

  // Schedules `members` (sorted Einsum ids) under `edges` (all between members): components
  // in dependency order, smallest Einsum first when free; a component with a recurrence
  // becomes a loop over the rank every member keeps, whose body is scheduled recursively
  // without the edges that loop carries.
  std::vector<Step> schedule_of(const std::vector<int>& members, const std::vector<const Edge*>& edges) {
    // Each level removes the edges one rank carries, so depth is bounded by the rank count.
    const size_t n = members.size();
    std::unordered_map<int, int> pos;
    for (size_t i = 0; i < n; ++i) pos[members[i]] = static_cast<int>(i);
    std::vector<std::vector<int>> adj(n);
    for (const Edge* e : edges) adj[static_cast<size_t>(pos[e->from])].push_back(pos[e->to]);
    std::vector<std::vector<int>> comps;
    const std::vector<int> comp = sccs(n, adj, comps);

    // Order the components (Kahn, smallest member first).
    std::vector<int> indeg(comps.size(), 0);
    std::vector<std::vector<int>> succ(comps.size());
    std::vector<std::vector<const Edge*>> within(comps.size());
    for (const Edge* e : edges) {
      const int a = comp[static_cast<size_t>(pos[e->from])], b = comp[static_cast<size_t>(pos[e->to])];
      if (a == b) {
        within[static_cast<size_t>(a)].push_back(e);
      } else {
        succ[static_cast<size_t>(a)].push_back(b);
        ++indeg[static_cast<size_t>(b)];
      }
    }
    std::priority_queue<std::pair<int, int>, std::vector<std::pair<int, int>>, std::greater<>> ready;
    for (size_t ci = 0; ci < comps.size(); ++ci)
      if (indeg[ci] == 0) ready.push({members[static_cast<size_t>(comps[ci].front())], static_cast<int>(ci)});
    std::vector<Step> steps;
    while (!ready.empty()) {
      const size_t ci = static_cast<size_t>(ready.top().second);
      ready.pop();
      for (int b : succ[ci])
        if (--indeg[static_cast<size_t>(b)] == 0) ready.push({members[static_cast<size_t>(comps[static_cast<size_t>(b)].front())], b});
      std::vector<int> ids;
      for (int p : comps[ci]) ids.push_back(members[static_cast<size_t>(p)]);
      if (ids.size() == 1 && within[ci].empty()) {
        Step s;
        s.einsum = ids[0];
        steps.push_back(std::move(s));
        continue;
      }
      // The loop rank: carried by some edge here and kept by every member.
      int rank = -1;
      for (const Edge* e : within[ci]) {
        if (!e->carried()) continue;
        bool all = true;
        for (int id : ids) all = all && keeps_rank(c_.einsums[static_cast<size_t>(id)], e->carried_rank);
        if (all) {
          rank = e->carried_rank;
          break;
        }
      }
      if (rank < 0) {
        std::vector<std::string> names;
        names.reserve(ids.size());
        for (int id : ids) names.push_back(c_.tensors[static_cast<size_t>(c_.einsums[static_cast<size_t>(id)].lhs.tensor)].name);
        const Einsum& first = c_.einsums[static_cast<size_t>(ids.front())];
        bool any_carried = false;
        for (const Edge* e : within[ci]) any_carried |= e->carried();
        if (!any_carried)
          throw UserError(first.loc, fmt::format("cycle: {} depend on each other with no iterative rank between them",
                                                 fmt::join(names, ", ")));
        throw UserError(first.loc, fmt::format("cannot schedule the recurrence through {}: no iterative rank is kept on the "
                                               "left-hand side of all of them",
                                               fmt::join(names, ", ")));
      }
      std::vector<const Edge*> inner;
      for (const Edge* e : within[ci])
        if (e->carried_rank != rank) inner.push_back(e);
      Step loop;
      loop.iter_rank = rank;
      loop.body = schedule_of(ids, inner);
      steps.push_back(std::move(loop));
    }
    return steps;
  }

  void schedule() {
    std::vector<int> all(c_.einsums.size());
    std::iota(all.begin(), all.end(), 0);
    std::vector<const Edge*> edges;
    for (const Edge& e : c_.edges) edges.push_back(&e);
    c_.schedule = schedule_of(all, edges);
  }

  const CascadeSpec& spec_;
  std::map<std::string, int64_t> params_;
  std::set<std::string> used_params_;
  std::unordered_map<std::string, int> rank_decl_, rank_index_, tensor_index_;
  std::vector<int64_t> extent_;
  std::vector<bool> declared_, dtype_set_;
  std::vector<int> arity_;
  std::vector<SourceLoc> arity_loc_;
  std::set<int> gather_index_;
  std::unordered_map<uint64_t, size_t> edge_index_;
  const std::vector<Var>* vars_ = nullptr;
  Cascade c_;
};

}  // namespace

Cascade bind_cascade(const CascadeSpec& spec, const std::map<std::string, int64_t>& params) { return Binder(spec, params).run(); }

double distinct_rows(double rows, const Tensor& index, double draws) {
  if (index.routed <= 0 || rows <= 0) return std::min(rows, draws);
  const double k = std::min(static_cast<double>(index.routed), rows);
  const double tokens = draws / k;
  if (index.routing_skew <= 0) return rows * (1 - std::pow(1 - k / rows, tokens));
  double expected = 0;
  for (double p : routing_probabilities(rows, k, index.routing_skew)) expected += 1 - std::pow(1 - p, tokens);
  return expected;
}

const std::vector<double>& routing_probabilities(double rows, double k, double skew) {
  // Each row's probability p_i = min(1, c / i^s), c by bisection so that they sum to k. The
  // cost model asks per candidate mapping with the same table: the last one is kept.
  thread_local double memo_rows = -1, memo_k = -1, memo_skew = -1;
  thread_local std::vector<double> memo_p;
  if (memo_rows != rows || memo_k != k || memo_skew != skew) {
    const auto n = static_cast<size_t>(rows);
    auto picked = [&](double c) {
      double sum = 0;
      for (size_t i = 1; i <= n; ++i) sum += std::min(1.0, c / std::pow(static_cast<double>(i), skew));
      return sum;
    };
    double lo = 0, hi = std::pow(rows, skew) * k;
    for (int it = 0; it < 60; ++it) {
      const double mid = (lo + hi) / 2;
      (picked(mid) < k ? lo : hi) = mid;
    }
    memo_p.resize(n);
    for (size_t i = 1; i <= n; ++i) memo_p[i - 1] = std::min(1.0, hi / std::pow(static_cast<double>(i), skew));
    memo_rows = rows, memo_k = k, memo_skew = skew;
  }
  return memo_p;
}

Cascade gemm_cascade(int64_t m, int64_t n, int64_t k, DType t, std::optional<DType> out) {
  CascadeSpec s;
  s.name = "gemm";
  s.dtype = t;
  s.inputs = {"A", "B"};
  if (out) {
    TensorDecl z;
    z.name = "Z";
    z.dtype = out;
    s.tensors.push_back(z);
  }
  for (auto [name, extent] : {std::pair{"M", m}, {"N", n}, {"K", k}}) {
    RankDecl r;
    r.name = name;
    r.extent.value = extent;
    r.extent_text = std::to_string(extent);
    s.ranks.push_back(r);
  }
  s.einsums.push_back(parse_einsum("Z[m,n] = A[m,k] * B[k,n]", SourceLoc{"gemm"}));
  return bind_cascade(s);
}


}  // namespace einsim

namespace einsim {

double slice_einsum(Einsum& e, const std::map<int, int64_t>& extent_by_rank) {
  double repeats = 1;
  for (size_t v = 0; v < e.vars.size(); ++v) {
    auto it = extent_by_rank.find(e.vars[v].rank);
    if (it == extent_by_rank.end() || it->second >= e.vars[v].extent) continue;
    const double ratio = static_cast<double>(e.vars[v].extent) / static_cast<double>(std::max<int64_t>(it->second, 1));
    repeats *= ratio;
    e.points = static_cast<int64_t>(std::llround(static_cast<double>(e.points) / ratio));
    if (static_cast<int>(v) < e.n_out) e.out_points = static_cast<int64_t>(std::llround(static_cast<double>(e.out_points) / ratio));
    for (double& n : e.ops.n) n /= ratio;
    e.vars[v].extent = std::max<int64_t>(it->second, 1);
  }
  return repeats;
}

}  // namespace einsim
