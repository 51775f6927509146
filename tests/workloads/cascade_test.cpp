#include <catch2/catch.hpp>

#include "helpers.h"
#include "workloads/analysis.h"

using namespace einsim;
using einsim::test::cascade_from;
using einsim::test::error_of;

namespace {

// A cascade document around `einsums` (TOML array body) with ranks and inputs.
std::string doc(const std::string& einsums, const std::string& inputs = "\"A\", \"B\"",
                const std::string& ranks = "M = 4\nN = 3\nK = 5\n", const std::string& extra = "") {
  return "version = 1\n[cascade]\nname = \"t\"\ninputs = [" + inputs + "]\neinsums = [\n" + einsums + "]\n" + extra +
         "[cascade.ranks]\n" + ranks;
}

}  // namespace

TEST_CASE("shapes, iteration spaces and operation counts of a matrix multiply", "[cascade]") {
  const Cascade c = cascade_from(doc("\"Z[m,n] = A[m,k] * B[k,n]\",\n"));
  REQUIRE(c.einsums.size() == 1);
  const Einsum& e = c.einsums[0];
  CHECK(e.points == 4 * 3 * 5);
  CHECK(e.out_points == 12);
  CHECK(e.ops[OpClass::Mac] == 60);
  CHECK(e.ops[OpClass::Mul] == 0);
  CHECK(e.ops.flops() == 120);
  const Tensor& a = c.tensors[static_cast<size_t>(c.find_tensor("A"))];
  CHECK(a.shape == std::vector<int64_t>{4, 5});
  CHECK(a.bytes() == 40);  // fp16 by default
  const CascadeStats s = analyze(c);
  CHECK(s.compulsory_bytes == (20 + 15 + 12) * 2);
  CHECK(s.einsums[0].bytes_read == 70);
}

TEST_CASE("reductions, elementwise operators and constants are counted by class", "[cascade]") {
  const Cascade c = cascade_from(doc("\"G[n] = max[m] A[m,n]\",\n\"S[m,n] = exp(A[m,n] - G[n]) * 2 / 4\",\n"
                                     "\"D[n] = S[m,n]\",\n\"Q[m,n] = S[m,n] / D[n] + rsqrt(M)\",\n",
                                     "\"A\"", "M = 4\nN = 3\n"));
  CHECK(c.einsums[0].ops[OpClass::Max] == 12 - 3);
  // exp(A - G) * 2 / 4: one subtract, one exp, one multiply and one divide per point; the
  // constant sub-expressions fold away.
  CHECK(c.einsums[1].ops[OpClass::Add] == 12);
  CHECK(c.einsums[1].ops[OpClass::Exp] == 12);
  CHECK(c.einsums[1].ops[OpClass::Mul] == 12);
  CHECK(c.einsums[1].ops[OpClass::Div] == 12);
  CHECK(c.einsums[2].ops[OpClass::Add] == 12 - 3);
  CHECK(c.einsums[3].ops[OpClass::Div] == 12);
  CHECK(c.einsums[3].ops[OpClass::Add] == 12);
  CHECK(c.einsums[3].ops[OpClass::Unary] == 0);  // rsqrt(M) is a constant
}

TEST_CASE("extents are expressions over parameters, overridable at bind time", "[cascade]") {
  const std::string text = doc("\"Z[m1,m0] = A[m1*M0+m0]\",\n", "\"A\"", "M = \"len\"\nM0 = \"blk\"\nM1 = \"len / blk\"\n",
                               "[cascade.params]\nlen = 64\nblk = 16\n[cascade.partitions]\nM = [\"M1\", \"M0\"]\n");
  const Cascade c = cascade_from(text);
  CHECK(c.ranks[static_cast<size_t>(c.find_rank("M1"))].extent == 4);
  CHECK(c.tensors[static_cast<size_t>(c.find_tensor("A"))].shape == std::vector<int64_t>{64});
  const Cascade d = cascade_from(text, {{"len", 128}});
  CHECK(d.ranks[static_cast<size_t>(d.find_rank("M1"))].extent == 8);
  CHECK_THAT(error_of([&] { cascade_from(text, {{"len", 100}}); }),
             Catch::Contains("extent of rank 'M1' is not a whole number: 100 / 16 leaves 4"));
}

TEST_CASE("iterative ranks: initial value, update and final index", "[cascade]") {
  const Cascade c = cascade_from(doc("\"R[m=0,n] = 0\",\n\"R[m+1,n] = R[m,n] + A[m,n]\",\n\"Z[n] = R[M,n]\",\n", "\"A\"",
                                     "M = 4\nN = 3\n"));
  const Tensor& r = c.tensors[static_cast<size_t>(c.find_tensor("R"))];
  CHECK(r.shape == std::vector<int64_t>{5, 3});
  CHECK(r.writers.size() == 2);
  CHECK(c.einsums[1].iter_var == 0);
  // The recurrence is a step of its own, run for each m.
  bool found = false;
  for (const Step& s : c.schedule)
    if (s.iter_rank == c.find_rank("M")) found = s.body.size() == 1 && s.body[0].einsum == 1;
  CHECK(found);
}

TEST_CASE("undefined tensor", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Z[m,n] = A[m,k] * BB[k,n]\",\n", "\"A\"")); }) ==
        "c.toml:6:20: error: undefined tensor 'BB': no Einsum writes it and it is not an input (list it in cascade.inputs or "
        "declare it under [cascade.tensors])");
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m,n] = A[m,k] * A[k,n]\",\n")); }),
             Catch::Contains("input 'B' is not used by any Einsum"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m,n] = A[m,k] * B[k,n]\",\n", "\"A\", \"B\", \"Z\"")); }),
             Catch::Contains("'Z' is listed as an input but an Einsum writes it"));
}

TEST_CASE("rank used with two different extents", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Y[m] = A[m,k] * B[k,n]\",\n\"Z[n] = A[n,k]\",\n")); }) ==
        "c.toml:7:9: error: rank used with two different extents: dimension 1 of 'A' is indexed over N (3) here but over "
        "M (4) at c.toml:6:9");
}

TEST_CASE("arity mismatch", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Y[m] = A[m,k] * B[k]\",\n\"Z[n] = B[k,n]\",\n")); }) ==
        "c.toml:7:9: error: arity mismatch: 'B' has 2 indices here but 1 at c.toml:6:18");
}

TEST_CASE("a tensor written twice", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m,k]\",\n\"Z[m] = B[k,m]\",\n", "\"A\", \"B\"", "M = 4\nK = 5\n")); }) ==
        "c.toml:7:2: error: tensor 'Z' is written twice (also at c.toml:6:2)");
}

TEST_CASE("a cycle", "[cascade][errors]") {
  CHECK_THAT(error_of([] { cascade_from(doc("\"X[m] = Y[m] + A[m]\",\n\"Y[m] = X[m]\",\n", "\"A\"", "M = 4\n")); }),
             Catch::Contains("cycle: X, Y depend on each other with no iterative rank between them"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"X[m] = X[m] + A[m]\",\n", "\"A\"", "M = 4\n")); }),
             Catch::Contains("c.toml:6:9: error: cycle: 'X' reads the element it writes"));
}

TEST_CASE("an unbound extent", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = \"kv_len\"\n")); }) ==
        "c.toml:9:6: error: unbound extent: rank 'M' needs parameter 'kv_len' (give it a value under [cascade.params] or "
        "with --set cascade.params.kv_len=N)");
}

TEST_CASE("further located errors of cascades", "[cascade][errors]") {
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[q]\",\n", "\"A\"", "M = 4\n")); }),
             Catch::Contains("c.toml:6:11: error: index 'q' has no rank 'Q'"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m+1]\",\n\"Y[m] = A[m]\",\n", "\"A\"", "M = 4\n")); }),
             Catch::Contains("reads 'A' out of bounds in dimension 1: indices 1..4 but the extent is 4"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = max[m] A[m,k]\",\n", "\"A\"", "M = 4\nK = 2\n")); }),
             Catch::Contains("max[m] must list exactly the indices missing on the left-hand side (k)"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m,k] = A[m*k]\",\n", "\"A\"", "M = 4\nK = 2\n")); }),
             Catch::Contains("not affine"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m,m] = A[m]\",\n", "\"A\"", "M = 4\n")); }),
             Catch::Contains("index 'm' appears twice on the left-hand side"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 0\n")); }),
             Catch::Contains("rank 'M' has extent 0 = 0; it must be in [1, 2^40]"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = \"M * 2\"\n")); }),
             Catch::Contains("depends on itself"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.params]\nunused = 3\n")); }),
             Catch::Contains("parameter 'unused' is not used by any rank extent"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\nM1 = 2\nM0 = 3\n",
                                            "[cascade.partitions]\nM = [\"M1\", \"M0\"]\n")); }),
             Catch::Contains("partition M = M1*M0 has extent 6 but rank 'M' has extent 4"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = true\n")); }),
             Catch::Contains("rank 'M' needs an extent"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "m = 4\n")); }),
             Catch::Contains("rank names start with an upper-case letter"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"M[m] = A[m]\",\n", "\"A\"", "M = 4\n")); }), Catch::Contains("is a rank"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = W[m, I[m]]\",\n", "\"W\", \"I\"", "M = 4\n")); }),
             Catch::Contains("cannot infer the extent of dimension 2 of 'W'"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.tensors]\nU = {}\n")); }),
             Catch::Contains("tensor 'U' is declared but never used"));
  // A tensor declared with a type only takes its ranks from its accesses.
  const Cascade typed = cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.tensors]\nZ = { dtype = \"fp32\" }\n"));
  CHECK(typed.tensors[static_cast<size_t>(typed.find_tensor("Z"))].dtype == DType::FP32);
  CHECK(typed.tensors[static_cast<size_t>(typed.find_tensor("Z"))].shape == std::vector<int64_t>{4});
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.tensors]\nA = { ranks = [\"Q\"] }\n")); }),
             Catch::Contains("unknown rank 'Q'"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.tensors]\nA = { dtype = \"fp12\" }\n")); }),
             Catch::Contains("is not one of: fp32, fp16, bf16"));
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "\"A\"", "M = 4\n", "[cascade.tensors]\nA = { rank = [\"M\"] }\n")); }),
             Catch::Contains("unknown key 'rank' in [cascade.tensors.A] (did you mean 'ranks'?)"));
  CHECK_THAT(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\neinsums = []\n[cascade.ranks]\nM = 4\n"); }),
             Catch::Contains("'cascade.einsums' is empty"));
  CHECK_THAT(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\neinsums = [\"Z = \"]\n[cascade.ranks]\nM = 4\n"); }),
             Catch::Contains("c.toml:4:17: error: expected a value"));
}

TEST_CASE("huge extents are rejected before they overflow", "[cascade][errors]") {
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m,n,k] = A[m,n,k]\",\n", "\"A\"", "M = 1099511627776\nN = 1099511627776\nK = 1099511627776\n")); }),
             Catch::Contains("overflows"));
}

TEST_CASE("gathers touch only the indexed rows", "[cascade]") {
  const Cascade c = cascade_from(doc("\"X[b,d] = WE[d, TOK[b]]\",\n", "", "B = 3\nD = 8\nV = 1000\n",
                                     "[cascade.tensors]\nWE = { ranks = [\"D\", \"V\"], role = \"weight\" }\nTOK = { ranks = [\"B\"] }\n"));
  const Tensor& tok = c.tensors[static_cast<size_t>(c.find_tensor("TOK"))];
  CHECK(tok.role == TensorRole::Index);
  CHECK(tok.dtype == DType::INT32);
  const CascadeStats s = analyze(c);
  CHECK(s.compulsory_bytes == Approx(3 * 8 * 2 + 3 * 4 + 3 * 8 * 2));
}
