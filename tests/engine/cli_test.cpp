// `einsim run --engine systemc` end to end, in its own process (SystemC elaborates once).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/cli/cli.h"

TEST_CASE("run --engine systemc: the same report, the simulated step, and a Perfetto trace", "[engine][cli]") {
  const std::string trace = (std::filesystem::temp_directory_path() / "einsim-engine-trace.json").string();
  std::vector<const char*> argv = {"einsim", "run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "decode", "--context", "2048",
                                   "--layers", "2", "--engine", "systemc", "--tiles", "8", "--trace", trace.c_str(), "--format", "json"};
  std::ostringstream out, err;
  REQUIRE(einsim::run_cli(static_cast<int>(argv.size()), argv.data(), out, err) == 0);
  const auto j = nlohmann::json::parse(out.str());
  CHECK(j["engine"]["name"] == "systemc");
  CHECK(j["engine"]["tiles"] == 8);
  CHECK(j["engine"]["transactions"].get<int64_t>() > 0);
  const double step = j["totals"]["step_s"], analytical = j["engine"]["analytical_step_s"];
  CHECK(step == Approx(analytical).epsilon(0.02));
  double blocks = 0;
  for (const auto& b : j["blocks"]) blocks += b["time_s"].get<double>();
  CHECK(blocks == Approx(step));
  std::ifstream f(trace);
  REQUIRE(f);
  const auto t = nlohmann::json::parse(f);
  bool hbm_track = false, tile_slice = false;
  for (const auto& ev : t["traceEvents"]) {
    if (ev["ph"] == "M" && ev["name"] == "thread_name" && ev["args"]["name"] == "system.gpu0.hbm") hbm_track = true;
    if (ev["ph"] == "X" && ev["name"].get<std::string>().find(" tile 7") != std::string::npos) tile_slice = true;
  }
  CHECK(hbm_track);
  CHECK(tile_slice);
}
