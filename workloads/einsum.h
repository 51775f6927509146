#pragma once
// Extended-Einsum expressions (FuseMax/TeAAL notation) as written in cascade files:
//   "QK[b,h,m,p] = Q[b,h,e,p] * K[b,h,e,m]"        ranks missing on the left are summed
//   "GM[b,h,p]   = max[m] QK[b,h,m,p]"             explicit reduction operator
//   "BK[e,m1,m0] = K[e, m1*M0+m0]"                 partitioned rank (M0 is an extent)
//   "RM[m1=0,p]  = -inf"                           initial value of an iterative rank
//   "RM[m1+1,p]  = max(RM[m1,p], LM[m1,p])"        iterative update
//   "AV[f,p]     = RNV[f,M1,p] / RD[M1,p]"         final index of an iterative rank
//   "X[b,d,p]    = WE[d, TOK[b,p]]"                gather through an index tensor
// Index variables are lower case; the rank they range over is the same name in upper case.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace einsim {

/// An index expression inside brackets: affine in index variables and rank extents, or a
/// gather through an index tensor.
struct IndexExpr {
  enum class Kind { Int, Var, Extent, Add, Sub, Mul, Neg, Gather };
  Kind kind = Kind::Int;
  int64_t value = 0;             ///< Int
  std::string name;              ///< Var (lower case), Extent (rank name), Gather (tensor name)
  std::vector<IndexExpr> kids;   ///< operands; for Gather, the index tensor's own indices
  int pos = 0;                   ///< column offset in the Einsum text (0-based)
};

/// A tensor reference `T[i, j+1, ...]` (or a scalar `T`).
struct TensorRef {
  std::string name;
  std::vector<IndexExpr> idx;
  /// Left-hand side only: for `m1=0`, the variable naming the dimension's rank (else empty).
  std::vector<std::string> init_var;
  int pos = 0;
};

/// Functions allowed in value expressions.
enum class Func { Exp, Max, Min, Silu, Gelu, Relu, Sigmoid, Tanh, Rsqrt, Sqrt, Log, Abs };

/// A value expression on the right-hand side.
struct Expr {
  enum class Kind { Number, Ref, Neg, Add, Sub, Mul, Div, Call };
  Kind kind = Kind::Number;
  double number = 0;            ///< Number
  TensorRef ref;                ///< Ref (a bare upper-case name may also be a rank extent)
  Func func = Func::Exp;        ///< Call
  std::vector<Expr> args;       ///< operands
  int pos = 0;
};

enum class Reduce { Sum, Max, Min };

/// One parsed Einsum.
struct EinsumAst {
  std::string text;
  SourceLoc loc;                          ///< location of the first character of `text`
  TensorRef lhs;
  Reduce reduce = Reduce::Sum;
  bool explicit_reduce = false;
  std::vector<std::string> reduce_vars;   ///< as written in `max[m, n]`
  int reduce_pos = 0;
  Expr rhs;
};

/// Parses one Einsum. Errors are UserErrors located at `loc` shifted to the offending column.
EinsumAst parse_einsum(std::string_view text, const SourceLoc& loc);

/// An integer expression over named parameters, for rank extents ("kv_len / block").
struct ExtentExpr {
  enum class Kind { Int, Name, Add, Sub, Mul, Div };
  Kind kind = Kind::Int;
  int64_t value = 0;
  std::string name;
  std::vector<ExtentExpr> kids;
  int pos = 0;
};
ExtentExpr parse_extent_expr(std::string_view text, const SourceLoc& loc);

std::string_view func_name(Func f);
std::string_view reduce_name(Reduce r);
/// A name is an index variable when it starts with a lower-case letter.
bool is_var_name(std::string_view s);

}  // namespace einsim
