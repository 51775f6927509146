// `einsim run --engine systemc --pp`: the pipeline simulated stage by stage, micro-batch by
// micro-batch, against the analytical pipeline model; in its own process (SystemC elaborates once).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/cli/cli.h"
#include "trace_check.h"

namespace {

nlohmann::json run(std::vector<const char*> argv) {
  std::ostringstream out, err;
  REQUIRE(einsim::run_cli(static_cast<int>(argv.size()), argv.data(), out, err) == 0);
  return nlohmann::json::parse(out.str());
}

}  // namespace

TEST_CASE("run --engine systemc --pp: micro-batches through the stages, hop arrows between them", "[engine][cli]") {
  const std::string trace = (std::filesystem::temp_directory_path() / "einsim-pipeline-trace.json").string();
  // The analytical pipeline, then the simulated one (one simulation per process).
  const auto an = run({"einsim", "run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "prefill", "--batch", "4", "--prompt", "512", "--layers", "4",
                       "--tp", "2", "--pp", "2", "--microbatches", "4", "--format", "json"});
  const auto sc = run({"einsim", "run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "prefill", "--batch", "4", "--prompt", "512", "--layers", "4",
                       "--tp", "2", "--pp", "2", "--microbatches", "4", "--engine", "systemc", "--tiles", "64", "--trace", trace.c_str(), "--format", "json"});
  const double a = an["totals"]["step_s"], s = sc["totals"]["step_s"];
  // The analytical model's fill + (M - 1) x slowest interval against the simulated stages.
  CHECK(s == Approx(a).epsilon(0.03));
  CHECK(sc["pipeline"]["time_s"].get<double>() == Approx(s - sc["totals"]["host_s"].get<double>()));
  std::ifstream f(trace);
  REQUIRE(f);
  const auto t = nlohmann::json::parse(f);
  CHECK(einsim::test::trace_problem(t) == "");
  std::set<std::string> processes;
  int sends = 0, hop_flows = 0, microbatch_spans = 0, tiles = 0;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "process_name") processes.insert(e["args"]["name"].get<std::string>());
    if (e["ph"] == "X" && e["cat"] == "send") ++sends;
    if (e["ph"] == "X" && e["cat"] == "micro-batch") ++microbatch_spans;
    if (e["ph"] == "X" && e["tid"] != 1) ++tiles;
    if (e["ph"] == "s" && e["name"].get<std::string>().rfind("micro-batch", 0) == 0) ++hop_flows;
  }
  CHECK(processes == std::set<std::string>{"gpu0 (stage 0, rank 0)", "gpu1 (stage 0, rank 1)", "gpu2 (stage 1, rank 0)", "gpu3 (stage 1, rank 1)"});
  CHECK(sends == 2 * 4);            // stage 0's two ranks, four micro-batches each
  CHECK(hop_flows == 2 * 4);
  CHECK(microbatch_spans == 4 * 4);  // every device, every micro-batch
  CHECK(tiles > 0);                  // --tiles asks for them
}
