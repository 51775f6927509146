#include <catch2/catch.hpp>

#include "../workloads/helpers.h"
#include "sim/analyze/power.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

// Two-GPU servers (Llama-3-8B, one instance per GPU), four of them on two PDUs, one minute of
// traffic per class.
const char* kRow = R"(model = "llama-3-8b"
arch = "h100"
tp = 1
instances_per_server = 2
servers = 4
servers_per_pdu = 2
duration = "60 s"
[scenario.classes.chat]
trace = "conv"
priority = "high"
share = 0.5
rate_per_server = 6
[scenario.classes.code]
trace = "code"
priority = "low"
share = 0.5
rate_per_server = 8
)";

PowerScenario scenario_from(const std::string& head, const std::string& policies = "[scenario.policies.polca]\nt1 = 0.8\nt2 = 0.9\n") {
  return test::scenario_from("kind = \"power\"\n" + head, std::string(kRow) + policies, read_power);
}

const PowerRow& row(const PowerReport& r, const std::string& policy, double over) {
  for (const PowerRow& x : r.rows)
    if (x.policy == policy && std::abs(x.oversubscription - over) < 1e-9) return x;
  FAIL("no row " << policy << " " << over);
  return r.rows.front();
}

}  // namespace

TEST_CASE("power: budgets, the uncontrolled row and what the controller changes", "[analyze][power]") {
  const PowerReport r = analyze_power(scenario_from("oversubscription = [0.0, 1.0]\n"));
  REQUIRE(r.rows.size() == 4);
  CHECK(r.gpus_per_server == 2);
  REQUIRE(r.pdu_budgets.size() == 2);
  // Provisioned at the peaks: the PDUs' peaks never coincide better than the row's.
  CHECK(r.pdu_budgets[0] + r.pdu_budgets[1] >= r.row_budget);
  CHECK(r.row_budget <= 4 * 2 * 700.0);
  const PowerRow& none0 = row(r, "none", 0), &none1 = row(r, "none", 1), &polca1 = row(r, "polca", 1);
  // No controller: nothing capped, no latency change, and at 0% the row reaches exactly its budget.
  for (const PowerRow* x : {&none0, &none1}) {
    CHECK(x->cap_events == 0);
    CHECK(x->brake_events == 0);
    CHECK(x->low_capped == 0);
    for (const ClassLatency& c : x->classes) CHECK(c.d_ttft99 == 0);
  }
  CHECK(none0.row_peak == Approx(1.0));
  CHECK(none0.violations == 0);
  CHECK(none0.safe);
  // Twice the servers under the same budgets: sustained overloads without control...
  CHECK(none1.servers == 8);
  CHECK(none1.extra == 4);
  CHECK(none1.violations > 0);
  CHECK_FALSE(none1.safe);
  // ...fewer with it: the controller locks clocks, draws less and costs latency.
  CHECK(polca1.cap_events > 0);
  CHECK(polca1.violation_time < none1.violation_time);
  CHECK(polca1.row_mean < none1.row_mean);
  CHECK(polca1.low_capped >= polca1.high_capped);
  CHECK(polca1.energy < none1.energy);
  double worst = 0;
  for (const ClassLatency& c : polca1.classes) worst = std::max(worst, c.d_ttft50);
  CHECK(worst > 0);
  // The largest safe oversubscription: 0% without control (100% violates).
  REQUIRE(r.largest_safe.size() == 2);
  CHECK(r.largest_safe[0] == std::pair<std::string, double>{"none", 0.0});
}

TEST_CASE("power: thresholds below any load lock every server from the first telemetry reading", "[analyze][power]") {
  const PowerReport r = analyze_power(scenario_from("oversubscription = [0.0]\n", "[scenario.policies.always]\nt1 = 0.05\nt2 = 0.05\nmargin = 0\n"));
  const PowerRow& x = row(r, "always", 0);
  // Telemetry 2 s late over 1 s intervals: locked from t = 3 s to the end of the run.
  const double span = x.low_capped;  // share of the run
  CHECK(span > 0.9);
  CHECK(x.high_capped == Approx(x.low_capped));
  CHECK(x.cap_events == 2 * 3);  // low and high, in the row and both PDUs, once each
  for (const ClassLatency& c : x.classes) CHECK(c.d_ttft50 > 0);
}

TEST_CASE("power: nameplate provisioning budgets GPUs x TDP plus other power", "[analyze][power]") {
  const PowerReport r = analyze_power(scenario_from("oversubscription = [0.0]\nprovisioning = \"nameplate\"\nother_power = \"500 W\"\n"));
  CHECK(r.row_budget == Approx(4 * (2 * 700.0 + 500)));
  CHECK(r.pdu_budgets[0] == Approx(2 * (2 * 700.0 + 500)));
  CHECK(row(r, "none", 0).row_peak < 1);
}

TEST_CASE("power: bad scenarios get located errors", "[analyze][power][errors]") {
  CHECK_THAT(error_of([] { scenario_from("", "[scenario.policies.p]\nt1 = 0.9\nt2 = 0.8\n"); }),
             Catch::Contains("s.toml:") && Catch::Contains("t2 (0.8) is below t1 (0.9)"));
  CHECK_THAT(error_of([] { scenario_from("", "[scenario.policies.p]\nlow_clock = \"1.6 GHz\"\nhigh_clock = \"1.2 GHz\"\n"); }),
             Catch::Contains("high_clock is below low_clock"));
  CHECK_THAT(error_of([] { scenario_from("", ""); }), Catch::Contains("no policies"));
  CHECK_THAT(error_of([] { scenario_from("oversubscription = [-0.1]\n"); }), Catch::Contains("lists fractions from 0 to 10"));
  CHECK_THAT(error_of([] { scenario_from("oversubscription = []\n"); }), Catch::Contains("non-empty list"));
  CHECK_THAT(error_of([] { scenario_from("provisioning = \"average\"\n"); }), Catch::Contains("provisioning"));
  CHECK_THAT(error_of([] { scenario_from("telemetry_interval = \"0.01 s\"\n"); }), Catch::Contains("'telemetry_interval' must be at least 0.1 s"));
  CHECK_THAT(error_of([] { scenario_from("telemetry_delay = \"2 GB\"\n"); }), Catch::Contains("telemetry_delay"));
  CHECK_THAT(error_of([] { scenario_from("breaker = \"10 s\"\n"); }), Catch::Contains("unknown key 'breaker'"));
  CHECK_THAT(error_of([] { test::scenario_from("kind = \"power\"\nservers = 1\n", std::string(kRow).substr(std::string(kRow).find("duration")) +
                                                   "[scenario.policies.p]\n", read_power); }),
             Catch::Contains("1 servers cannot serve 2 classes"));
  CHECK_THAT(error_of([] {
               test::scenario_from("kind = \"power\"\n", "[scenario.classes.a]\npriority = \"high\"\nshare = 0.7\nrate_per_server = 1\n[scenario.policies.p]\n",
                                   read_power);
             }),
             Catch::Contains("shares add up to 0.7, not 1"));
  CHECK_THAT(error_of([] {
               test::scenario_from("kind = \"power\"\n", "[scenario.classes.a]\npriority = \"urgent\"\nshare = 1\nrate_per_server = 1\n[scenario.policies.p]\n",
                                   read_power);
             }),
             Catch::Contains("priority"));
  CHECK_THAT(error_of([] {
               PowerScenario s = scenario_from("");
               s.arch = "tpu-v5e";
               analyze_power(s);
             }),
             Catch::Contains("gives no TDP"));
  CHECK_THAT(error_of([] {
               PowerScenario s = scenario_from("");
               s.arch = "fusemax";
               analyze_power(s);
             }),
             Catch::Contains("fewer than two DVFS clocks"));
}
