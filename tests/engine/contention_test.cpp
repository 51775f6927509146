// The shipped contention scenarios (configs/scenarios), all in one SystemC elaboration: each
// effect's direction and size against its hand calculation.
#include <catch2/catch.hpp>

#include "sim/engine/contention.h"

using namespace einsim;

namespace {

const ContentionFigure& fig(const ContentionReport& r, size_t i) {
  REQUIRE(i < r.figures.size());
  return r.figures[i];
}

// Simulated once (Catch re-enters the test case for each section).
const std::vector<ContentionReport>& results() {
  static const std::vector<ContentionReport> r = [] {
    std::vector<ContentionScenario> sc;
    for (const std::string n : {"kv-host", "context-switch", "flash-stream", "offload-pools"}) sc.push_back(load_contention(n));
    sc.push_back(load_contention("offload-pools", {"scenario.batches=3"}));
    return simulate_contention(sc);
  }();
  return r;
}

}  // namespace

TEST_CASE("contention scenarios: direction and size of each effect against the hand calculation", "[engine]") {
  const std::vector<ContentionReport>& r = results();
  REQUIRE(r.size() == 5);

  SECTION("reports: every format names the figures") {
    CHECK_THAT(format_contention(r[0], Format::Table), Catch::Contains("hand calculation") && Catch::Contains("effect: the step slows"));
    CHECK_THAT(format_contention(r[1], Format::Csv), Catch::StartsWith("figure,SystemC engine [s],hand calculation [s]"));
    CHECK_THAT(format_contention(r[2], Format::Json), Catch::Contains("\"case\": \"flash-stream\""));
  }
  SECTION("kv-host: the PCIe share of the KV cache binds attention") {
    const ContentionReport& x = r[0];
    INFO(format_contention(x, Format::Table));
    const ContentionFigure &alone = fig(x, 0), &split = fig(x, 1), &link = fig(x, 2);
    CHECK(alone.engine == Approx(alone.hand).epsilon(0.02));
    CHECK(split.engine == Approx(split.hand).epsilon(0.02));
    CHECK(split.engine > 5 * alone.engine);  // 8 GiB over 63 GB/s against 32 GiB over 3 TB/s
    // The link works the whole of its share: moved bytes / bandwidth.
    CHECK(link.engine == Approx(link.hand).epsilon(1e-6));
    CHECK(split.engine >= link.engine);
  }
  SECTION("context-switch: the swap takes Fu's time and slows decoding by its HBM share") {
    const ContentionReport& x = r[1];
    INFO(format_contention(x, Format::Table));
    const ContentionFigure &sw = fig(x, 0), &alone = fig(x, 1), &during = fig(x, 2);
    CHECK(sw.engine == Approx(sw.hand).epsilon(0.02));
    CHECK(alone.engine == Approx(alone.hand).epsilon(0.02));
    const double slowdown = during.engine - alone.engine, expected = during.hand - alone.hand;
    CHECK(slowdown > 0);
    CHECK(slowdown == Approx(expected).epsilon(0.25));  // the swap's HBM time, give or take its overlap at the ends
    CHECK(sw.engine < during.engine);  // the switch ends within the decode steps simulated
  }
  SECTION("flash-stream: overlapping the loads with compute hides the compute") {
    const ContentionReport& x = r[2];
    INFO(format_contention(x, Format::Table));
    const ContentionFigure &comp = fig(x, 0), &io = fig(x, 1), &over = fig(x, 2), &serial = fig(x, 3);
    CHECK(comp.engine == Approx(comp.hand).epsilon(0.02));
    CHECK(io.engine == Approx(io.hand).epsilon(0.02));
    CHECK(over.engine == Approx(over.hand).epsilon(0.02));
    CHECK(over.engine < serial.engine);
    CHECK(serial.engine - over.engine == Approx(comp.engine).epsilon(0.1));  // what overlap saves: about the compute
  }
  SECTION("offload: staggered batches raise throughput, never above Lamina's bound") {
    const ContentionReport& x = r[3];
    INFO(format_contention(x, Format::Table));
    const ContentionFigure &one = fig(x, 0), &many = fig(x, 1), &net = fig(x, 2);
    CHECK(one.engine == Approx(one.hand).epsilon(0.03));
    CHECK(many.engine > 1.2 * one.engine);
    CHECK(many.engine <= many.hand * 1.001);  // the formula is an upper bound: every resource fully busy
    CHECK(many.engine >= 0.8 * many.hand);
    CHECK(net.engine == Approx(net.hand).epsilon(1e-6));
    // A third batch keeps the compute pool busy: within 5% of the formula.
    const ContentionFigure& three = fig(r[4], 1);
    CHECK(three.engine > many.engine);
    CHECK(three.engine <= three.hand * 1.001);
    CHECK(three.engine == Approx(three.hand).epsilon(0.05));
  }
}
