// `einsim simulate` end to end, in its own process (SystemC elaborates once).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/cli/cli.h"

TEST_CASE("simulate: a shipped scenario as JSON, with its trace", "[engine][cli]") {
  const std::string trace = (std::filesystem::temp_directory_path() / "einsim-simulate-trace.json").string();
  std::vector<const char*> argv = {"einsim", "simulate", "kv-host", "--set", "scenario.host_fraction=0.5", "--format", "json", "--trace", trace.c_str()};
  std::ostringstream out, err;
  REQUIRE(einsim::run_cli(static_cast<int>(argv.size()), argv.data(), out, err) == 0);
  const auto j = nlohmann::json::parse(out.str());
  CHECK(j["kind"] == "simulate-contention");
  CHECK(j["case"] == "kv-host");
  REQUIRE(j["figures"].size() == 3);
  for (const auto& f : j["figures"]) CHECK(f["engine"].get<double>() == Approx(f["hand"].get<double>()).epsilon(0.02));
  CHECK_THAT(j["title"].get<std::string>(), Catch::Contains("50% of the KV cache"));
  std::ifstream f(trace);
  REQUIRE(f);
  const auto t = nlohmann::json::parse(f);
  bool pcie = false;
  for (const auto& ev : t["traceEvents"])
    if (ev["ph"] == "X" && ev["tid"] != nullptr && ev["cat"] == "link") pcie = true;
  CHECK(pcie);
}
