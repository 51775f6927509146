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

namespace einsim {

class Formula {
 public:
  /// Resolves a name to a slot index, or nullopt when the name is unknown.
  using Resolver = std::function<std::optional<int>(const std::string&)>;

  /// Parses `text`; errors are located at `loc` shifted by the column of the offending
  /// character (`loc` is where the string's first character sits).
  static Formula parse(const std::string& text, const SourceLoc& loc, const Resolver& resolve);

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
