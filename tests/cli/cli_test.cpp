#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>

#include "../workloads/helpers.h"
#include "sim/cli/cli.h"

using einsim::test::shipped;

namespace {
struct Run {
  int code;
  std::string out, err;
};
Run run(std::vector<std::string> args) {
  args.insert(args.begin(), "einsim");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  const int code = einsim::run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}
}  // namespace

TEST_CASE("check accepts the shipped configs", "[cli]") {
  const Run r = run({"check", shipped("workloads/attention-1pass.toml"), shipped("models/llama-3-70b.toml")});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("ok: cascade 'attention-1pass'") && Catch::Contains("ok: model 'Llama-3-70B'"));
}

TEST_CASE("check reports each bad file with its location and exits 1", "[cli][errors]") {
  const Run r = run({"check", shipped("models/llama-2-7b.toml"), "/nonexistent.toml", "--set", "model.hiden_size=3"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--set model.hiden_size=3: error: unknown key 'hiden_size' in [model] (did you mean 'hidden_size'?)"));
  CHECK_THAT(r.err, Catch::Contains("/nonexistent.toml: error: cannot open file"));
  CHECK_THAT(r.err, Catch::Contains("2 of 2 files failed"));
}

TEST_CASE("describe prints tables, JSON and CSV", "[cli]") {
  const Run t = run({"describe", shipped("workloads/attention-3pass.toml")});
  CHECK(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("passes over M: 3"));
  const Run j = run({"describe", shipped("workloads/attention-1pass.toml"), "--format", "json", "--set", "cascade.params.block=128"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["ranks"]["M1"] == 8);
  CHECK(doc["passes"][1]["rank"] == "M");
  CHECK(doc["passes"][1]["passes"] == 1);
  const Run c = run({"describe", shipped("workloads/attention-3pass.toml"), "--format", "csv"});
  CHECK_THAT(c.out, Catch::StartsWith("#,einsum,after,iteration space"));
  const Run m = run({"describe", "llama-3-70b", "--phase", "decode", "--batch", "8", "--context", "4k", "--format", "json"});
  REQUIRE(m.code == 0);
  const auto md = nlohmann::json::parse(m.out);
  CHECK(md["kv_bytes_per_token"] == 327680.0);
  CHECK(md["phase"]["context"] == 4096);
  const Run mt = run({"describe", "mixtral-8x7b"});
  CHECK_THAT(mt.out, Catch::Contains("active per token"));
  const Run mc = run({"describe", "llama-2-7b", "--phase", "prefill", "--prompt", "128", "--layers", "1", "--format", "csv"});
  CHECK_THAT(mc.out, Catch::StartsWith("component,mac"));
}

TEST_CASE("usage errors exit 1, help exits 0", "[cli][errors]") {
  CHECK(run({"--help"}).code == 0);
  CHECK(run({"describe", "--help"}).code == 0);
  CHECK(run({}).code == 1);
  CHECK(run({"frobnicate"}).code == 1);
  CHECK(run({"describe", "llama-2-7b", "--format", "xml"}).code == 1);
  const Run p = run({"describe", "llama-2-7b", "--phase", "decode", "--context", "lots"});
  CHECK(p.code == 1);
  CHECK_THAT(p.err, Catch::Contains("--context: error: 'lots' is not a token count"));
  const Run q = run({"describe", shipped("workloads/attention-3pass.toml"), "--phase", "decode"});
  CHECK(q.code == 1);
  CHECK_THAT(q.err, Catch::Contains("apply to models, not cascades"));
  const Run e = run({"describe", "bert-base", "--phase", "decode"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("is an encoder"));
  const Run n = run({"describe", "no-such-model"});
  CHECK(n.code == 1);
  CHECK_THAT(n.err, Catch::Contains("no-such-model: error: cannot open file"));
}
