#include <catch2/catch.hpp>

#include "helpers.h"
#include "workloads/analysis.h"

using namespace einsim;
using einsim::test::cascade_from;
using einsim::test::shipped;

TEST_CASE("Cascade 4 (3-pass attention) needs three passes over M", "[passes]") {
  const Cascade c = load_cascade(shipped("workloads/attention-3pass.toml"));
  const PassReport r = pass_analysis(c, "M");
  CHECK(r.passes == 3);
  REQUIRE(r.reasons.size() == 2);
  CHECK_THAT(r.reasons[0], Catch::StartsWith("pass 2: SN") && Catch::Contains("reads GM") && Catch::Contains("done by GM"));
  CHECK_THAT(r.reasons[1], Catch::StartsWith("pass 3: A") && Catch::Contains("reads SD") && Catch::Contains("done by SD"));
  // QS (the scaled queries) does not traverse M; QK and GM in pass 1, SN and SD in pass 2,
  // A and AV in pass 3.
  CHECK(r.einsum_pass == std::vector<int>{0, 1, 1, 2, 2, 3, 3});
}

TEST_CASE("Cascade 5 (1-pass attention) needs one pass over M, for several M0 splits", "[passes]") {
  for (const char* block : {"cascade.params.block=1", "cascade.params.block=64", "cascade.params.block=1024"}) {
    const Cascade c = load_cascade(shipped("workloads/attention-1pass.toml"), {block});
    const PassReport r = pass_analysis(c, "M");
    CHECK(r.passes == 1);
    CHECK(r.reasons.empty());
  }
}

TEST_CASE("the pedagogical cascades: 2 passes, and 1 once the multiply is deferred", "[passes]") {
  const PassReport two = pass_analysis(load_cascade(shipped("workloads/pedagogical-2pass.toml")), "K");
  CHECK(two.passes == 2);
  REQUIRE(two.reasons.size() == 1);
  CHECK_THAT(two.reasons[0], Catch::StartsWith("pass 2: Z") && Catch::Contains("reads Y"));
  CHECK(pass_analysis(load_cascade(shipped("workloads/pedagogical-1pass.toml")), "K").passes == 1);
}

TEST_CASE("reading the final value of a running reduction inside the traversal costs a pass", "[passes]") {
  // Cascade 5 with SLN using the final max RM[M1] instead of the running max RM[m1+1].
  const Cascade c = cascade_from(R"TOML(version = 1
[cascade]
name = "late-max"
inputs = ["Q", "K"]
einsums = [
  "BQK[m1,m0,p] = Q[e,p] * K[e, m1*M0+m0]",
  "LM[m1,p] = max[m0] BQK[m1,m0,p]",
  "RM[m1=0,p] = -inf",
  "RM[m1+1,p] = max(RM[m1,p], LM[m1,p])",
  "SLN[m1,m0,p] = exp(BQK[m1,m0,p] - RM[M1,p])",
]
[cascade.ranks]
M = 8
M0 = 2
M1 = 4
P = 3
E = 2
[cascade.partitions]
M = ["M1", "M0"]
)TOML");
  const PassReport r = pass_analysis(c, "M");
  CHECK(r.passes == 2);
  REQUIRE(r.reasons.size() == 1);
  CHECK_THAT(r.reasons[0], Catch::Contains("SLN") && Catch::Contains("reads RM"));
}

TEST_CASE("an unknown rank is an error", "[passes][errors]") {
  const Cascade c = load_cascade(shipped("workloads/pedagogical-1pass.toml"));
  CHECK_THROWS_AS(pass_analysis(c, "Q"), UserError);
}
