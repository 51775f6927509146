#include <catch2/catch.hpp>

#include "workloads/einsum.h"
#include "helpers.h"

using namespace einsim;
using einsim::test::error_of;

namespace {
EinsumAst p(const char* s) { return parse_einsum(s, SourceLoc{"e.toml", 3, 5}); }
}  // namespace

TEST_CASE("products, sums and implicit reductions parse", "[einsum]") {
  const EinsumAst e = p("QK[b,h,m,p] = Q[b,h,e,p] * K[b,h,e,m]");
  CHECK(e.lhs.name == "QK");
  CHECK(e.lhs.idx.size() == 4);
  CHECK_FALSE(e.explicit_reduce);
  CHECK(e.rhs.kind == Expr::Kind::Mul);
  CHECK(e.rhs.args[0].ref.name == "Q");
}

TEST_CASE("explicit max reduction and elementwise functions parse", "[einsum]") {
  const EinsumAst e = p("GM[p] = max[m] QK[m,p]");
  CHECK(e.explicit_reduce);
  CHECK(e.reduce == Reduce::Max);
  CHECK(e.reduce_vars == std::vector<std::string>{"m"});
  const EinsumAst f = p("RM[m1+1,p] = max(RM[m1,p], LM[m1,p])");
  CHECK(f.rhs.kind == Expr::Kind::Call);
  CHECK(f.rhs.func == Func::Max);
  CHECK(f.lhs.idx[0].kind == IndexExpr::Kind::Add);
  const EinsumAst g = p("H[i] = silu(G[i]) * U[i] + rsqrt(E) - gelu(X[i]) / 2");
  CHECK(g.rhs.kind == Expr::Kind::Sub);
}

TEST_CASE("partitioned, initial, final and gathered indices parse", "[einsum]") {
  const EinsumAst bk = p("BK[e,m1,m0] = K[e, m1*M0+m0]");
  CHECK(bk.rhs.ref.idx[1].kind == IndexExpr::Kind::Add);
  const EinsumAst init = p("RM[m1=0,p] = -inf");
  CHECK(init.lhs.init_var[0] == "m1");
  CHECK(init.rhs.kind == Expr::Kind::Neg);
  const EinsumAst fin = p("AV[f,p] = RNV[f,M1,p] / RD[M1,p]");
  CHECK(fin.rhs.args[0].ref.idx[1].kind == IndexExpr::Kind::Extent);
  const EinsumAst g = p("X[b,d,p] = WE[d, TOK[b,p]]");
  CHECK(g.rhs.ref.idx[1].kind == IndexExpr::Kind::Gather);
  CHECK(g.rhs.ref.idx[1].name == "TOK");
  const EinsumAst s = p("Z = Y * A[k]");
  CHECK(s.lhs.idx.empty());
  CHECK(s.rhs.args[0].ref.name == "Y");
}

TEST_CASE("extent expressions parse", "[einsum]") {
  const ExtentExpr x = parse_extent_expr("kv_len / block", SourceLoc{});
  CHECK(x.kind == ExtentExpr::Kind::Div);
  CHECK(parse_extent_expr("(a + 2) * 3", SourceLoc{}).kind == ExtentExpr::Kind::Mul);
}

TEST_CASE("syntax errors point at the offending column", "[einsum][errors]") {
  // The Einsum starts at e.toml:3:5, so column 5 + offset.
  CHECK(error_of([] { p("Z[m] = A[m] $ B[m]"); }) == "e.toml:3:17: error: unexpected character '$'");
  CHECK(error_of([] { p("Z[m] = foo(A[m])"); }) ==
        "e.toml:3:12: error: unknown function 'foo' (known: exp, max, min, silu, gelu, relu, sigmoid, tanh, rsqrt, sqrt, log, abs)");
  CHECK(error_of([] { p("Z[m] = exp(A[m], B[m])"); }) == "e.toml:3:12: error: 'exp' takes 1 argument, found 2");
  CHECK(error_of([] { p("Z[m] = A[m/2]"); }) == "e.toml:3:15: error: division is not allowed in an index expression");
  CHECK(error_of([] { p("Z[m] = a[m]"); }) ==
        "e.toml:3:12: error: tensor names start with an upper-case letter or '_': 'a' is an index variable");
  CHECK(error_of([] { p("Z[m] = A[m] * m"); }) ==
        "e.toml:3:19: error: index variable 'm' cannot be used as a value; use its rank's extent ('M') or a tensor");
  CHECK(error_of([] { p("Z[m] A[m]"); }) == "e.toml:3:10: error: expected '=' after the left-hand side, found 'A'");
  CHECK(error_of([] { p("Z[m] = A[m] B[m]"); }) == "e.toml:3:17: error: unexpected 'B' after the expression");
  CHECK(error_of([] { p("Z[m = A[m]"); }) == "e.toml:3:11: error: expected an integer initial index, found 'A'");
  CHECK(error_of([] { p("= A[m]"); }) == "e.toml:3:5: error: an Einsum starts with the tensor it defines, e.g. 'Z[m,n] = ...'");
  CHECK(error_of([] { p("Z[m] = max[M] A[m]"); }) == "e.toml:3:16: error: 'M' is not an index variable (lower case)");
  CHECK_THAT(error_of([] { p("Z[m] = A[m"); }), Catch::Contains("expected ',' or ']' in the index list"));
  CHECK_THAT(error_of([] { p("Z[m] = A[1.5]"); }), Catch::Contains("'1.5' is not an integer"));
  CHECK_THAT(error_of([] { p("Z[m] = (A[m]"); }), Catch::Contains("expected ')'"));
}

TEST_CASE("deep nesting is an error, not a stack overflow", "[einsum][errors]") {
  std::string deep = "Z = " + std::string(5000, '(') + "A" + std::string(5000, ')');
  CHECK_THAT(error_of([&] { parse_einsum(deep, SourceLoc{"d"}); }), Catch::Contains("nested too deeply"));
  std::string neg = "Z = " + std::string(5000, '-') + "A";
  CHECK_THAT(error_of([&] { parse_einsum(neg, SourceLoc{"d"}); }), Catch::Contains("nested too deeply"));
  std::string idx = "Z = A[" + std::string(5000, '(') + "i" + std::string(5000, ')') + "]";
  CHECK_THAT(error_of([&] { parse_einsum(idx, SourceLoc{"d"}); }), Catch::Contains("nested too deeply"));
  // Long chains build trees as deep as they are long: 100,000 terms of a sum, a product, an
  // index sum and an extent are located errors too (they overflowed the stack in binding).
  std::string sum = "Z[m] = A[m]", product = "Z[m] = A[m]", index = "Z[m] = A[m", extent = "x";
  for (int i = 0; i < 100000; ++i) sum += " + A[m]", product += " * A[m]", index += "+m", extent += "+x";
  index += "]";
  for (const std::string& text : {sum, product, index}) {
    const std::string e = error_of([&] { parse_einsum(text, SourceLoc{"d", 1, 1}); });
    CHECK_THAT(e, Catch::StartsWith("d:1:") && Catch::Contains("nested too deeply or too long"));
  }
  CHECK_THAT(error_of([&] { parse_extent_expr(extent, SourceLoc{"x"}); }), Catch::Contains("nested too deeply"));
  // 150 terms are fine.
  std::string ok = "Z[m] = A[m]";
  for (int i = 0; i < 150; ++i) ok += " + A[m]";
  CHECK_NOTHROW(parse_einsum(ok, SourceLoc{"d", 1, 1}));
}
