#pragma once
// What the serving tests share: Llama-3-8B on an H100, Poisson arrivals with the conversation
// trace's sizes, and the invariants every serving run must keep.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "arch/arch.h"
#include "sim/serve/serve.h"
#include "workloads/model_config.h"

namespace einsim::test {

struct ServeSetup {
  ModelConfig model = load_model("llama-3-8b");
  ArchSpec arch;
  explicit ServeSetup(std::vector<std::string> sets = {}) : arch(load_arch("h100", sets)) {}
};

inline Trace poisson(double rate, int64_t n, uint64_t seed = 7) {
  SyntheticTrace s;
  s.rate = rate;
  s.count = n;
  s.seed = seed;
  static const Trace conv = load_trace("conv");
  s.sizes = &conv;
  return synthetic_trace(s);
}

// The time-average of requests in the system over the run, from the simulator's own record.
inline double mean_in_system(const ServeResult& r, double t0) {
  double area = 0;
  for (size_t i = 1; i < r.in_system.size(); ++i) area += static_cast<double>(r.in_system[i - 1].second) * (r.in_system[i].first - r.in_system[i - 1].first);
  return area / (r.in_system.back().first - t0);
}

// Every request completes exactly once with the tokens it asked for, in causal order (a KV
// transfer between its admission and its finish); Little's law holds on the simulator's record.
inline void check_invariants(const Trace& t, const ServeResult& r) {
  REQUIRE(r.requests.size() == t.requests.size());
  double wanted = 0, e2e = 0;
  for (size_t i = 0; i < t.requests.size(); ++i) {
    const RequestOutcome& o = r.requests[i];
    wanted += static_cast<double>(t.requests[i].output);
    e2e += o.e2e();
    REQUIRE(o.finish >= o.first_token);
    REQUIRE(o.first_token > o.arrival);
    REQUIRE(o.admitted >= o.arrival);
    if (o.transfer_start >= 0) {
      REQUIRE(o.transfer_start >= o.admitted);  // layer-wise streaming starts it with the prefill
      REQUIRE(o.transfer_end >= o.transfer_start);
      REQUIRE(o.finish >= o.transfer_end);
    }
  }
  CHECK(r.tokens_generated == wanted);
  CHECK(r.in_system.back().second == 0);
  const double span = r.in_system.back().first - t.requests.front().arrival;
  const double lambda = static_cast<double>(t.requests.size()) / span, w = e2e / static_cast<double>(t.requests.size());
  CHECK(mean_in_system(r, t.requests.front().arrival) == Approx(lambda * w).epsilon(1e-9));
}

}  // namespace einsim::test
