// The engine's timeline of a tensor-parallel step: every rank simulated, nested spans,
// counters and flows; in its own process (SystemC elaborates once).
#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "sim/engine/schedule.h"
#include "sim/engine/systemc_engine.h"
#include "decode_step.h"
#include "trace_check.h"
#include "workloads/model_config.h"

using namespace einsim;

TEST_CASE("engine trace: a TP 4 step shows four devices, kernels nested in layers, counters and the all-reduces' flows", "[engine][trace]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = test::decode_step(a, "llama-3-70b", 8, 2048, 3, {4, 1, 1});
  ScheduleOptions one, all;
  one.tiles = all.tiles = 8;
  one.layered = all.layered = true;
  all.every_rank = true;
  const Schedule s1 = build_schedule(r, a, one), s4 = build_schedule(r, a, all);
  REQUIRE(s4.plan.devices() == 4);
  REQUIRE(s4.resources.size() == 4 * s1.resources.size());
  EngineOptions eo;
  eo.trace = true;
  const std::vector<EngineResult> res = simulate_systemc({s1, s4}, eo);
  // The ranks run alike: simulating all four changes nothing.
  CHECK(res[1].total == Approx(res[0].total).epsilon(1e-9));
  CHECK(res[0].total == Approx(r.step_time).epsilon(0.02));

  TraceOptions to;
  to.tiles = false;
  const auto t = nlohmann::json::parse(chrome_trace(s4, res[1], to));
  CHECK(test::trace_problem(t) == "");
  std::set<std::string> processes, counters;
  std::map<int, int> kernels, layers, collectives;
  int flows = 0, tiles = 0;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "process_name") processes.insert(e["args"]["name"].get<std::string>());
    if (e["ph"] == "C") counters.insert(e["name"].get<std::string>());
    if (e["ph"] == "s") ++flows;
    if (e["ph"] != "X") continue;
    if (e["tid"] != 1) ++tiles;
    else if (e["cat"] == "kernel") ++kernels[e["pid"]];
    else if (e["cat"] == "layer") ++layers[e["pid"]];
    else if (e["cat"] == "collective") ++collectives[e["pid"]];
  }
  CHECK(processes == std::set<std::string>{"gpu0 (rank 0)", "gpu1 (rank 1)", "gpu2 (rank 2)", "gpu3 (rank 3)"});
  for (int pid = 1; pid <= 4; ++pid) {
    INFO(pid);
    CHECK(layers[pid] == 3);
    CHECK(collectives[pid] == 6);  // each layer's two all-reduces: after the attention, after the MLP
    CHECK(kernels[pid] > 3 * 8);
  }
  CHECK(flows == 4 * 6);  // each rank to the next, at every all-reduce
  CHECK(tiles == 0);      // tiles only when asked for
  CHECK(counters.count("hbm GB/s"));
  CHECK(counters.count("power W"));
  // Every kernel inside a layer but the blocks outside the layers (embedding, final norm, head).
  std::vector<std::pair<double, double>> layers_at;
  std::vector<std::pair<double, double>> kernels_at;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] != "X" || e["pid"] != 1) continue;
    const double b = e["ts"], end = b + e["dur"].get<double>();
    if (e["cat"] == "layer") layers_at.emplace_back(b, end);
    if (e["cat"] == "kernel") kernels_at.emplace_back(b, end);
  }
  int outside = 0;
  for (const auto& [b, e] : kernels_at)
    outside += std::none_of(layers_at.begin(), layers_at.end(), [&](const auto& l) { return l.first <= b && e <= l.second; });
  int non_layer_blocks = 0;
  for (const ScheduleBlock& b : s4.blocks) non_layer_blocks += b.layer_group < 0;
  CHECK(outside == non_layer_blocks);
  CHECK(non_layer_blocks >= 2);
  // The trace's bandwidth integrates to the bytes the step moves.
  double hbm_bytes = 0;
  const int hbm = s4.resource("hbm", "gpu0");
  for (const TraceEvent& e : res[1].events)
    if (e.resource == hbm) hbm_bytes += e.bytes;
  double want = 0;
  for (const BlockRun& b : r.blocks)
    for (const LevelTraffic& lt : b.traffic)
      if (lt.name == "hbm") want += lt.read_bytes + lt.write_bytes;
  CHECK(hbm_bytes == Approx(want).epsilon(1e-6));
}
