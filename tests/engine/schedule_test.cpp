// The schedule the SystemC engine executes, built without simulating (no SystemC here).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "../workloads/helpers.h"
#include "sim/engine/contention.h"
#include "sim/engine/schedule.h"
#include "decode_step.h"
#include "trace_check.h"
#include "workloads/model_config.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

RunReport decode_run(const ArchSpec& a, int64_t tp = 1) { return test::decode_step(a, "llama-2-7b", 4, 1024, 2, {tp, 1, 1}); }

}  // namespace

TEST_CASE("schedule: resources follow the architecture, named system.gpu0.<part>", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const Schedule s = build_schedule(decode_run(a), a);
  for (const std::string n : {"hbm", "l2", "smem", "tensor", "vector", "nvlink", "pcie", "nic", "dma0"}) {
    INFO(n);
    REQUIRE(s.resource(n) >= 0);
    CHECK(s.resources[static_cast<size_t>(s.resource(n))].name == "system.gpu0." + n);
  }
  // The tier at its achievable bandwidth, as the cost model charges it (H100: 0.9 of 3.35 TB/s
  // unless the preset says otherwise).
  const Resource& hbm = s.resources[static_cast<size_t>(s.resource("hbm"))];
  CHECK(hbm.read_bandwidth == Approx(a.tiers[0].read_bandwidth * a.gpu->memory_efficiency));
  CHECK(s.resource("no-such-part") == -1);
}

TEST_CASE("schedule: every block's bytes and compute are split over its instances and tiles, nothing lost", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = decode_run(a);
  ScheduleOptions o;
  o.tiles = 16;
  const Schedule s = build_schedule(r, a, o);
  REQUIRE(s.blocks.size() == r.blocks.size());
  CHECK(s.analytical == r.step_time);
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    const ScheduleBlock& b = s.blocks[i];
    const BlockRun& br = r.blocks[i];
    INFO(b.name);
    CHECK(b.tiles == 16);
    CHECK(static_cast<double>(b.instances) == Approx(br.repeats));
    CHECK(b.launch == br.launch);
    CHECK(b.fill == br.fill);
    CHECK(b.analytical == br.time);
    const double n = static_cast<double>(b.instances * b.tiles);
    for (const LevelTraffic& t : br.traffic) {
      double read = 0, write = 0;
      for (const StageWork& w : b.loads)
        if (s.resources[static_cast<size_t>(w.resource)].short_name == t.name) read += w.read_bytes * n, write += w.write_bytes * n;
      CHECK(read == Approx(t.read_bytes));
      CHECK(write == Approx(t.write_bytes));
    }
    double compute = 0, want = 0;
    for (const StageWork& w : b.compute) compute += w.seconds * n;
    for (int e : br.einsums) want += r.einsums[static_cast<size_t>(e)].compute;
    CHECK(compute == Approx(want));
  }
}

TEST_CASE("schedule: tensor-parallel all-reduces run on the peer link after the blocks", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = decode_run(a, 2);
  const Schedule s = build_schedule(r, a);
  CHECK(s.tail == r.allreduce_time);
  CHECK(s.tail_resource == s.resource("nvlink"));
}

TEST_CASE("schedule: a simulated step replaces the analytical one in the report", "[engine]") {
  const ArchSpec a = load_arch("h100");
  RunReport r = decode_run(a);
  const Schedule s = build_schedule(r, a);
  EngineResult e;
  e.total = r.step_time * 1.1;
  e.quantum = 1e-6;
  e.transactions = 42;
  for (const BlockRun& b : r.blocks) e.block_time.push_back(b.time * 1.1);
  const double step = r.step_time, energy = r.energy;
  apply_engine(r, a, s, e, "systemc");
  CHECK(r.engine == "systemc");
  CHECK(r.analytical_step == step);
  CHECK(r.step_time == e.total);
  CHECK(r.compute_time == Approx(step * 1.1));
  CHECK(r.energy == Approx(energy + a.power.active * step * 0.1));
  CHECK(r.tokens_per_s == Approx(4 / e.total));
  CHECK(r.transactions == 42);
  e.block_time.pop_back();
  CHECK_THROWS_WITH(apply_engine(r, a, s, e, "systemc"), Catch::Contains("does not match"));
}

TEST_CASE("schedule: the Chrome trace has a program track and one named track per resource, slices in microseconds", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const Schedule s = build_schedule(decode_run(a), a);
  EngineResult e;
  e.total = 2e-3;
  e.events.push_back(TraceEvent{s.resource("hbm"), "QK tile 3", 1e-3, 1.5e-3, 3e6});
  const auto j = nlohmann::json::parse(chrome_trace(s, e));
  int tracks = 0;
  for (const auto& ev : j["traceEvents"]) {
    if (ev["ph"] == "M" && ev["name"] == "thread_name") ++tracks;
    if (ev["ph"] == "X") {
      CHECK(ev["name"] == "QK tile 3");
      CHECK(ev["ts"].get<double>() == Approx(1000));
      CHECK(ev["dur"].get<double>() == Approx(500));
      CHECK(ev["cat"] == "tier");
      CHECK(ev["tid"].get<int>() == s.resource("hbm") + 2);  // tid 1: the device's program
    }
    // 3 MB over 0.5 ms: 6 GB/s in the bins it covers.
    if (ev["ph"] == "C" && ev["name"] == "hbm GB/s" && ev["ts"].get<double>() >= 1000 && ev["ts"].get<double>() < 1490) {
      CHECK(ev["args"]["GB/s"].get<double>() == Approx(6.0));
    }
  }
  CHECK(tracks == static_cast<int>(s.resources.size()) + 1);
  CHECK(test::trace_problem(j) == "");
  CHECK(j["otherData"]["step_s"] == 2e-3);
}

TEST_CASE("schedule: bad engine options are clear errors", "[engine][errors]") {
  const ArchSpec a = load_arch("h100");
  ScheduleOptions o;
  o.tiles = 0;
  CHECK(error_of([&] { build_schedule(decode_run(a), a, o); }) == "--tiles: error: the engine needs at least one tile per block instance");
}

TEST_CASE("contention scenarios: bad files are located errors, raised before anything is simulated", "[engine][errors]") {
  auto from = [](const std::string& body) { return test::scenario_from("kind = \"contention\"\n", body, read_contention); };
  CHECK_THAT(error_of([&] { from("case = \"melt\"\n"); }), Catch::Contains("s.toml:4:8: error: 'scenario.case' = \"melt\" is not one of: kv-host"));
  CHECK_THAT(error_of([&] { from("case = \"kv-host\"\nhost_fraction = 1.5\n"); }), Catch::Contains("s.toml:5:17: error:"));
  CHECK_THAT(error_of([&] { from("case = \"kv-host\"\nstep = 3\n"); }), Catch::Contains("unknown key 'step'"));
  CHECK_THAT(error_of([&] { simulate_contention({from("case = \"kv-host\"\nlink = \"cxl\"\n")}); }),
             Catch::Contains("has no link 'cxl' to carry the transfers"));
  CHECK_THAT(error_of([&] { simulate_contention({from("case = \"offload\"\nmemory = \"mi300x\"\n")}); }), Catch::Contains("has no network link"));
  CHECK_THAT(error_of([&] { simulate_contention({from("case = \"kv-host\"\nmodel = \"bert-base\"\n")}); }), Catch::Contains("is an encoder"));
}

TEST_CASE("trace check: catches what a trace viewer would reject", "[engine]") {
  auto x = [](const char* name, int tid, double ts, double dur) {
    return nlohmann::json{{"name", name}, {"ph", "X"}, {"pid", 1}, {"tid", tid}, {"ts", ts}, {"dur", dur}};
  };
  auto doc = [](nlohmann::json ev) { return nlohmann::json{{"traceEvents", std::move(ev)}}; };
  CHECK(test::trace_problem(doc({x("layer", 1, 0, 10), x("kernel", 1, 2, 5), x("next", 1, 10, 3)})) == "");
  CHECK_THAT(test::trace_problem(doc({x("layer", 1, 0, 10), x("kernel", 1, 8, 5)})), Catch::Contains("overlaps its parent 'layer'"));
  CHECK_THAT(test::trace_problem(doc({x("b", 1, 5, 1), x("a", 1, 2, 1)})), Catch::Contains("starts before the slice before it"));
  CHECK_THAT(test::trace_problem(doc({{{"name", "f"}, {"ph", "s"}, {"id", 7}, {"pid", 1}, {"ts", 1}}})), Catch::Contains("flow 7 lacks an end"));
  CHECK_THAT(test::trace_problem(doc({{{"name", "c"}, {"ph", "C"}, {"pid", 1}, {"ts", 5}}, {{"name", "c"}, {"ph", "C"}, {"pid", 1}, {"ts", 1}}})),
             Catch::Contains("goes back in time"));
  CHECK(test::trace_problem(nlohmann::json::object()) == "no traceEvents array");
}

TEST_CASE("schedule: a layered step places each layer's collectives, and they add up to the run's", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = test::decode_step(a, "mixtral-8x7b", 32, 1024, 3, {2, 4, 1});
  REQUIRE(r.alltoall_time > 0);
  REQUIRE(r.allreduce_time > 0);
  ScheduleOptions so;
  so.layered = true;
  so.every_rank = true;
  const Schedule s = build_schedule(r, a, so);
  REQUIRE(s.plan.order.size() == 3);
  CHECK(s.plan.ranks == 4);  // max(tp, ep) devices, each its own resources
  CHECK(s.resources.size() == 4 * static_cast<size_t>(s.plan.per_device));
  CHECK(s.resources.back().name.rfind("system.gpu3.", 0) == 0);
  CHECK(s.tail == 0);  // the plan runs them
  // Placed on blocks: an all-reduce after the output projection, one after the MLP, the
  // all-to-all with the MLP; over the layers they add up to the run's.
  double ar = 0, a2a = 0;
  for (int g : s.plan.order) {
    int placed = 0;
    for (const ScheduleBlock& b : s.blocks)
      if (b.layer_group == g) ar += b.allreduce_after, a2a += b.alltoall_after, placed += b.allreduce_after > 0;
    CHECK(placed == 2);
  }
  CHECK(ar == Approx(r.allreduce_time));
  CHECK(a2a == Approx(r.alltoall_time));
  // Unlayered, both collectives run after the blocks (an expert-parallel step's all-to-alls too).
  const Schedule flat = build_schedule(r, a);
  CHECK(flat.plan.order.empty());
  CHECK(flat.tail == Approx(r.allreduce_time + r.alltoall_time));
  // Every layer block's instances split evenly over its group's layers.
  for (const ScheduleBlock& b : s.blocks)
    if (b.layer_group >= 0) CHECK(b.instances % s.plan.group_layers[static_cast<size_t>(b.layer_group)] == 0);
}

TEST_CASE("schedule: a pipeline's stages, micro-batches and hops come from the run", "[engine]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = test::decode_step(a, "llama-2-7b", 8, 1024, 5, {1, 1, 2});
  ScheduleOptions so;
  so.layered = true;
  const Schedule s = build_schedule(r, a, so);
  CHECK(s.plan.stages == 2);
  CHECK(s.plan.ranks == 1);  // one device a stage unless every rank is asked for
  CHECK(s.plan.microbatches == r.microbatches);
  CHECK(s.plan.stage_layers == std::vector<int64_t>{3, 2});
  REQUIRE(s.plan.hops.size() == 1);
  CHECK(s.plan.hops[0] == Approx(r.pipeline_send_time));
  CHECK(s.plan.hop_resource[0] == s.resource(r.pipeline_hop_links[0]));
}
