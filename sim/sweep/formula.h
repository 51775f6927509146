#pragma once
// Arithmetic expressions of a sweep spec (derived parameters, constraints, outputs):
// numbers (with an optional unit, read in SI: "16 MiB", "700 W"), names, + - * / ^,
// comparisons (< <= > >= == !=, giving 1 or 0), parentheses and the functions min, max, abs,
// sqrt, log2, log10, ln, exp, ceil, floor, round. Compiled once; evaluated per design point
// against an array of slots, so evaluation allocates nothing.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/units.h"

namespace einsim {

class Formula {
 public:
  /// Resolves a name to a slot index, or nullopt when the name is unknown.
  using Resolver = std::function<std::optional<int>(const std::string&)>;
  /// The dimension of a slot's values, or nullopt when it has none to check.
  using DimOf = std::function<std::optional<Dim>(int)>;

  /// Parses `text`; errors are located at `loc` shifted by the column of the offending
  /// character (`loc` is where the string's first character sits). With `dim_of`, sums,
  /// differences, comparisons, min and max of two known, different dimensions ("power <=
  /// 600 GB") are errors; a number without a unit goes with anything.
  static Formula parse(const std::string& text, const SourceLoc& loc, const Resolver& resolve, const DimOf& dim_of = {});

  double eval(const double* slots) const;
  /// The slots this expression reads, each once.
  const std::vector<int>& slots() const { return used_; }
  /// Whether the top operator is a comparison (a constraint).
  bool is_comparison() const;
  const std::string& text() const { return text_; }

 private:
  struct Node {
    enum Kind { Const, Slot, Neg, Add, Sub, Mul, Div, Pow, Lt, Le, Gt, Ge, Eq, Ne, Call } kind = Const;
    double value = 0;
    int slot = -1;
    int a = -1, b = -1;  ///< operand nodes
    int height = 1;      ///< levels below and including this node (evaluation recurses this deep)
    double (*fn1)(double) = nullptr;
    double (*fn2)(double, double) = nullptr;
  };
  double run(int n, const double* slots) const;
  friend class FormulaParser;
  std::vector<Node> nodes_;
  int root_ = -1;
  std::vector<int> used_;
  std::string text_;
};

}  // namespace einsim
