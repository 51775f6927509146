#pragma once
// The Einsum-cascade IR. A CascadeSpec is what a file says (ranks with symbolic extents,
// Einsums as parsed text); bind_cascade() resolves extents and produces a Cascade: tensors with
// shapes, Einsums with iteration spaces and affine accesses, and the dependency DAG.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "workloads/einsum.h"

namespace einsim {

/// Element types. The last four are block-scaled (microscaling) formats, each element sharing a
/// scale with its block: OCP MX v1.0's MXFP8 (e4m3), MXFP6 (e2m3) and MXFP4 (e2m1) with one
/// 8-bit e8m0 scale per 32 elements, and NVIDIA's NVFP4 (e2m1) with one e4m3 scale per 16 (and a
/// per-tensor fp32 scale, negligible). An array runs one natively only where its ops_per_cycle
/// lists it (Blackwell's and CDNA 4's tensor cores); plain fp8 hardware does not.
enum class DType { FP32, FP16, BF16, FP8, INT8, INT4, INT32, MXFP8, MXFP6, MXFP4, NVFP4 };
/// Bytes per element (INT4 is 0.5), a block-scaled format's share of its scale included
/// (MXFP4: 4 bits + 8 / 32 = 0.53125 B).
double dtype_bytes(DType t);
/// A block-scaled format (its scales are part of its bytes).
bool block_scaled(DType t);
std::string_view dtype_name(DType t);
std::optional<DType> parse_dtype(std::string_view s);
/// Names accepted by parse_dtype, for error messages.
const std::vector<std::string>& dtype_names();

/// What a tensor is to a deployment: decides where it lives and how it is counted.
enum class TensorRole {
  Auto,          ///< input / intermediate / output by the graph
  Weight,        ///< model parameter
  ExpertWeight,  ///< parameter of one MoE expert (only the routed ones are active)
  KVCache,       ///< persistent key/value cache
  Input,         ///< activation entering the cascade
  Index,         ///< integer index tensor (token ids, expert choices)
};
std::string_view role_name(TensorRole r);
std::optional<TensorRole> parse_role(std::string_view s);

struct RankDecl {
  std::string name;
  std::string extent_text;
  ExtentExpr extent;
  SourceLoc loc;
};

struct TensorDecl {
  std::string name;
  std::vector<std::string> ranks;  ///< empty: inferred from the accesses
  bool has_ranks = false;
  std::optional<DType> dtype;
  /// Bytes of quantization scales (and zero points) stored per element beside it: a group of
  /// 128 int4 weights with a bf16 scale carries 2/128 (workloads/quantization.h).
  double scale_bytes = 0;
  /// An index of routing choices: each token picks this many distinct rows of the table it
  /// indexes, uniformly (MoE experts); 0: an index of distinct rows (distinct_rows()).
  int64_t routed = 0;
  /// Skew of those choices across rows: row i (by popularity) is picked with probability
  /// proportional to 1 / i^s (Zipf); 0: uniform.
  double routing_skew = 0;
  TensorRole role = TensorRole::Auto;
  SourceLoc loc;
};

struct PartitionDecl {
  std::string parent;
  std::vector<std::string> parts;  ///< outer to inner: M = M1*M0 is {"M1", "M0"}
  SourceLoc loc;
};

/// A cascade as written: shape without sizes.
struct CascadeSpec {
  std::string name;
  SourceLoc loc;
  DType dtype = DType::FP16;
  std::vector<RankDecl> ranks;
  std::vector<PartitionDecl> partitions;
  std::map<std::string, int64_t> params;           ///< default parameter values
  std::map<std::string, SourceLoc> param_locs;
  std::vector<TensorDecl> tensors;
  /// Tensors that enter the cascade. A tensor no Einsum writes must be listed here or
  /// declared in `tensors`; anything else is an undefined tensor (a typo, usually).
  std::vector<std::string> inputs;
  SourceLoc inputs_loc;
  std::vector<EinsumAst> einsums;
  /// Fraction of each Einsum's iteration space computed, by the tensor it writes (absent: 1):
  /// causal attention skips masked key blocks (workloads/transformer.cpp).
  std::map<std::string, double> work;
  /// Einsums (by index in `einsums`) that pass a slice of a tensor on unchanged: views an
  /// engine takes without a kernel (the residual stream handed from one group of layers to the
  /// next). They cost nothing and run in no block.
  std::set<int> views;
  /// Einsums (by index in `einsums`) that belong to the kernel of the Einsums reading their
  /// output: a fused kernel computes them inside (FlashMLA's RoPE part of the scores). Fusion
  /// that would otherwise leave one in a block of its own puts it in its readers' block.
  std::set<int> in_reader_kernel;
};

/// Operation classes counted per Einsum.
enum class OpClass { Mac, Mul, Add, Max, Exp, Div, Unary };
constexpr int kOpClasses = 7;
std::string_view op_class_name(OpClass c);

struct OpCounts {
  std::array<double, kOpClasses> n{};
  double& operator[](OpClass c) { return n[static_cast<int>(c)]; }
  double operator[](OpClass c) const { return n[static_cast<int>(c)]; }
  OpCounts& operator+=(const OpCounts& o);
  /// FLOPs with a MAC counted as 2 and every other operation as 1.
  double flops() const;
};

struct Rank {
  std::string name;
  int64_t extent = 0;
  int parent = -1;            ///< rank this one partitions, or -1
  std::vector<int> parts;     ///< partitions of this rank, outer to inner
  SourceLoc loc;
};

/// c + sum(coeff * var) over the Einsum's variable slots; or a gather (`gather` >= 0 is the
/// index of the Einsum read that supplies the index).
struct Affine {
  int64_t c = 0;
  std::vector<std::pair<int, int64_t>> terms;
  int gather = -1;
  int64_t lo = 0, hi = 0;  ///< range of values over the iteration space
};

struct Access {
  int tensor = -1;
  std::vector<Affine> dims;
  int pos = 0;  ///< column in the Einsum text
};

struct Var {
  std::string name;
  int rank = -1;
  int64_t extent = 0;
};

/// Value expression compiled against an Einsum's reads (flat, children before parents).
struct Node {
  enum class Kind { Const, Read, Neg, Add, Sub, Mul, Div, Max, Min, Func };
  Kind kind = Kind::Const;
  double value = 0;  ///< Const
  int read = -1;     ///< Read: index into Einsum::reads
  Func func = Func::Exp;
  int a = -1, b = -1;
};

/// Applies one compiled operation to its operand values.
double apply_node(const Node& n, double a, double b);

struct Einsum {
  int id = 0;
  std::string text;
  SourceLoc loc;
  std::vector<Var> vars;      ///< output variables first, then reduced variables
  int n_out = 0;              ///< number of output variables
  Access lhs;
  std::vector<Access> reads;  ///< every tensor read, in order (gather indices included)
  Reduce reduce = Reduce::Sum;
  std::vector<Node> nodes;    ///< compiled right-hand side; root is nodes.back()
  int iter_var = -1;          ///< variable slot of an iterative update (lhs `m1+1`), or -1
  /// Fraction of the iteration space computed: causal attention skips the masked key blocks
  /// (CascadeSpec::work). `ops` and `points` count the whole space; costs and FLOPs scale by it.
  double work = 1;
  bool view = false;          ///< a view, not a kernel (CascadeSpec::views): work 0
  bool in_reader_kernel = false;  ///< computed in its readers' kernel (CascadeSpec::in_reader_kernel)
  int64_t points = 0;         ///< size of the iteration space
  int64_t out_points = 0;     ///< points of the output variables only
  OpCounts ops;               ///< operation counts over the whole iteration space
};

struct Tensor {
  std::string name;
  std::vector<int> ranks;       ///< rank of each dimension
  std::vector<int64_t> shape;
  DType dtype = DType::FP16;
  double scale_bytes = 0;       ///< quantization scales stored per element (TensorDecl::scale_bytes)
  int64_t routed = 0;           ///< routing choices per token (TensorDecl::routed)
  double routing_skew = 0;      ///< their Zipf skew (TensorDecl::routing_skew)
  TensorRole role = TensorRole::Auto;
  std::vector<int> writers;
  std::vector<int> readers;
  SourceLoc loc;                ///< first use
  int64_t elements() const;
  /// Bytes stored and moved per element: its type's and its scales' share.
  double element_bytes() const { return dtype_bytes(dtype) + scale_bytes; }
  double bytes() const { return static_cast<double>(elements()) * element_bytes(); }
  bool is_input() const { return writers.empty(); }
};

/// Rows of a table of `rows` that `draws` values of the index `index` select: each a distinct
/// row (at most `rows`), or, for routing choices (Tensor::routed = k per token, uniform), the
/// expected number of distinct rows n = draws / k tokens touch: rows (1 - (1 - k/rows)^n).
/// Skewed choices (Tensor::routing_skew = s): a token picks row i with probability
/// p_i = min(1, c / i^s), c such that the p_i sum to k; the expectation is sum 1 - (1 - p_i)^n.
double distinct_rows(double rows, const Tensor& index, double draws);
/// The probability that a token picks each of `rows` rows when it picks `k`, with Zipf skew
/// `skew` (row i: min(1, c / i^s), summing to k), most popular first. Valid until the next
/// call on this thread.
const std::vector<double>& routing_probabilities(double rows, double k, double skew);

/// A dependency between two Einsums. `carried_rank` >= 0 when the reader sees the writer's
/// result of an earlier iteration of that iterative rank (`R[m1,p]` read, `R[m1+1,p]` written).
struct Edge {
  int from = 0, to = 0;
  int carried_rank = -1;
  bool carried() const { return carried_rank >= 0; }
};

/// A step of the schedule: one Einsum, or a loop over an iterative rank whose body is a
/// schedule of its own (recurrences nest: layers outside, attention blocks inside).
struct Step {
  int einsum = -1;         ///< a single Einsum, when iter_rank < 0
  int iter_rank = -1;      ///< the rank looped over, or -1
  std::vector<Step> body;  ///< loop body
};

/// A cascade with every extent bound.
struct Cascade {
  std::string name;
  std::vector<Rank> ranks;
  std::vector<Tensor> tensors;
  std::vector<Einsum> einsums;
  std::vector<Edge> edges;
  std::vector<Step> schedule;  ///< a valid execution order, loops nested
  std::map<std::string, int64_t> params;

  int find_rank(std::string_view name) const;
  int find_tensor(std::string_view name) const;
  /// `rank` and every rank that partitions it, recursively.
  std::vector<int> rank_family(int rank) const;
  /// Einsums in schedule order (each once, loops flattened).
  std::vector<int> order() const;
};

/// Cuts the variables of `e` over the ranks in `extent_by_rank` to those extents (a slice of
/// the iteration space: one iteration of a loop, one tile of a fused block) and scales its
/// point and operation counts to match. Returns how many such slices make the whole (the
/// product of the ratios; operations are taken as spread evenly over the space).
double slice_einsum(Einsum& e, const std::map<int, int64_t>& extent_by_rank);

/// The cascade of one GEMM, Z[m,n] = A[m,k] * B[k,n], with elements of type `t`.
Cascade gemm_cascade(int64_t m, int64_t n, int64_t k, DType t = DType::FP16, std::optional<DType> out = std::nullopt);

/// Resolves extents (`params` override the spec's defaults), infers shapes, checks the
/// cascade and builds its DAG. Throws UserError with the location of the offending text.
Cascade bind_cascade(const CascadeSpec& spec, const std::map<std::string, int64_t>& params = {});

}  // namespace einsim
