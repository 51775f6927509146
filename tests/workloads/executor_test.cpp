#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <cmath>

#include "helpers.h"
#include "workloads/executor.h"

using namespace einsim;
using einsim::test::shipped;

namespace {

double max_rel_error(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (Eigen::Index i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(1e-12, std::fabs(b[i])));
  return worst;
}

// softmax(Q^T K / sqrt(E)) V for each (b, h), with layouts Q[b,h,e,p], K[b,h,e,m], V[b,h,f,m]
// and the result AV[b,h,f,p], computed with Eigen matrices.
Eigen::VectorXd direct_attention(const TensorValues& in, int B, int H, int E, int F, int M, int P) {
  Eigen::VectorXd out(B * H * F * P);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int bh = b * H + h;
      // Row-major [e][p] blocks map to column-major P x E after a transpose.
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Q(
          in.at("Q").data() + bh * E * P, E, P), K(in.at("K").data() + bh * E * M, E, M), V(in.at("V").data() + bh * F * M, F, M);
      Eigen::MatrixXd S = (Q.transpose() * K) / std::sqrt(static_cast<double>(E));  // P x M
      for (int p = 0; p < P; ++p) {
        const double mx = S.row(p).maxCoeff();
        S.row(p) = (S.row(p).array() - mx).exp().matrix();
        S.row(p) /= S.row(p).sum();
      }
      const Eigen::MatrixXd AV = V * S.transpose();  // F x P
      for (int f = 0; f < F; ++f)
        for (int p = 0; p < P; ++p) out[((bh * F) + f) * P + p] = AV(f, p);
    }
  return out;
}

const std::vector<std::string> kSmall = {"cascade.params.batch=2", "cascade.params.heads=3", "cascade.params.kv_len=24",
                                         "cascade.params.q_len=5", "cascade.params.head_dim=4"};

}  // namespace

TEST_CASE("Cascade 4, Cascade 5 (several M0 splits) and direct softmax attention agree", "[executor]") {
  const Cascade c4 = load_cascade(shipped("workloads/attention-3pass.toml"), kSmall);
  const TensorValues in = random_inputs(c4, 42);
  const Eigen::VectorXd direct = direct_attention(in, 2, 3, 4, 4, 24, 5);
  const TensorValues r4 = execute(c4, in);
  CHECK(max_rel_error(r4.at("AV"), direct) < 1e-5);
  for (int block : {1, 2, 3, 4, 6, 8, 12, 24}) {
    std::vector<std::string> o = kSmall;
    o.push_back("cascade.params.block=" + std::to_string(block));
    const Cascade c5 = load_cascade(shipped("workloads/attention-1pass.toml"), o);
    const TensorValues r5 = execute(c5, in);
    INFO("M0 = " << block);
    CHECK(max_rel_error(r5.at("AV"), direct) < 1e-5);
  }
}

TEST_CASE("the pedagogical cascades compute the same Z", "[executor]") {
  const Cascade two = load_cascade(shipped("workloads/pedagogical-2pass.toml"));
  const Cascade one = load_cascade(shipped("workloads/pedagogical-1pass.toml"));
  const TensorValues in = random_inputs(two, 7);
  const TensorValues a = execute(two, in), b = execute(one, in);
  // Z[k] = (A.B) A[k] in the first, and Z = (A.B) sum(A) in the second: sum over k agrees.
  CHECK(a.at("Z").sum() == Approx(b.at("Z")[0]).epsilon(1e-12));
}

TEST_CASE("the executor reports bad inputs", "[executor][errors]") {
  const Cascade c4 = load_cascade(shipped("workloads/attention-3pass.toml"), kSmall);
  TensorValues in = random_inputs(c4, 1);
  in["Q"] = Eigen::VectorXd::Zero(3);
  CHECK_THROWS_AS(execute(c4, in), UserError);
  CHECK_THROWS_AS(execute(load_cascade(shipped("workloads/attention-3pass.toml")), in, 1000), UserError);
}

TEST_CASE("gathers read the indexed rows", "[executor]") {
  const Cascade c = einsim::test::cascade_from(R"(version = 1
[cascade]
name = "g"
einsums = ["X[b,d] = WE[d, TOK[b]] * 2"]
[cascade.ranks]
B = 2
D = 3
V = 4
[cascade.tensors]
WE = { ranks = ["D", "V"] }
TOK = { ranks = ["B"] }
)");
  TensorValues in;
  in["WE"] = Eigen::VectorXd::LinSpaced(12, 0, 11);  // WE[d,v] = 4d + v
  in["TOK"] = Eigen::VectorXd(2);
  in["TOK"] << 3, 1;
  const TensorValues r = execute(c, in);
  CHECK(r.at("X")[0] == 2 * 3);        // b=0, d=0 -> WE[0,3]
  CHECK(r.at("X")[5] == 2 * (8 + 1));  // b=1, d=2 -> WE[2,1]
  in["TOK"] << 9, 1;
  CHECK_THROWS_AS(execute(c, in), UserError);
}
