// Serving sweeps (mode = "serve") and `einsim plan`; the serve command's new options' errors.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../cli/run_einsim.h"
#include "../workloads/helpers.h"
#include "sim/serve/deploy.h"
#include "sim/serve/serve_report.h"
#include "sim/sweep/plan.h"
#include "sim/sweep/spec.h"
#include "sim/sweep/store.h"

using namespace einsim;
using einsim::test::error_of;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("einsim-serve-sweep-{}-{}", getpid(), name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string spec_file(const std::string& dir, const std::string& body) {
  const std::string path = dir + "/s.toml";
  std::ofstream(path) << "version = 1\n" << body;
  return path;
}

const auto cli = einsim::test::run_einsim;

// Two minutes of the conversation trace at 8 requests/s; Llama-3-8B on H100s.
const char* kServe =
    "[sweep]\nmode = \"serve\"\narch = \"h100\"\nmodel = \"llama-3-8b\"\ntrace = \"conv\"\nrequest_rate = 8\nduration = \"120 s\"\n"
    "ttft_slo = \"500 ms\"\ntpot_slo = \"20 ms\"\nzip = [[\"prefill_instances\", \"decode_instances\"]]\n"
    "[parameters]\ntp = [1, 2]\ninstances = [1, 2]\nprefill_instances = [0, 1]\ndecode_instances = [0, 1]\n";

}  // namespace

TEST_CASE("serving sweeps: each point is the serving simulation of its configuration", "[sweep][serve]") {
  const std::string dir = scratch("points");
  const std::string spec = spec_file(dir, kServe), db = dir + "/s.db";
  const auto r = cli({"sweep", spec, "--db", db, "--jobs", "2"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("8 points, 0 already stored, 8 evaluated") && Catch::Contains("serve mode"));
  // Resumable: nothing left to do.
  CHECK_THAT(cli({"sweep", spec, "--db", db}).out, Catch::Contains("8 already stored, 0 evaluated"));
  // The point tp 2, 2 co-located instances against the same run made directly.
  Deployment d{load_model("llama-3-8b"), load_arch("h100"), nullptr, std::nullopt, false, {}, std::nullopt, 0, std::nullopt};
  d.config.tp = 2;
  d.config.instances_per_server = 2;
  d.config.ttft_slo = 0.5;
  d.config.tpot_slo = 0.02;
  Trace t = scale_to_rate(load_trace("conv"), 8);
  keep_first(t, 120);
  const ServeRig rig(d);
  const ServeResult direct = rig.run(t);
  const ServeSummary s = summarize(t, direct, d.config, "", "", 0);
  SweepDb store(db, false, true);
  int64_t seen = 0;
  const auto cols = store.columns();
  auto at = [&](const char* name) {
    for (size_t i = 0; i < cols.size(); ++i)
      if (cols[i].name == name) return i;
    FAIL(name);
    return size_t{0};
  };
  store.scan("ok", [&](const std::vector<Cell>& row) {
    if (row[at("tp")].i == 2 && row[at("instances")].i == 2 && row[at("prefill_instances")].i == 0) {
      ++seen;
      CHECK(row[at("slo_attainment")].d == Approx(s.slo_attainment));
      CHECK(row[at("ttft_p99")].d == Approx(s.ttft.p99));
      CHECK(row[at("tpot_p50")].d == Approx(s.tpot.p50));
      CHECK(row[at("goodput")].d == Approx(s.goodput));
      CHECK(row[at("devices")].d == 4);
      CHECK(row[at("cost_per_mtok")].d == Approx(11.06 / 3600 * 4 / s.tokens_per_s * 1e6));
    }
    // A disaggregated point counts both pools' devices (instances is co-located serving's).
    if (row[at("prefill_instances")].i == 1) CHECK(row[at("devices")].d == 2 * static_cast<double>(row[at("tp")].i));
  });
  CHECK(seen == 1);
  CHECK(store.count("status = 'ok'") == 8);
}

TEST_CASE("einsim plan: the cheapest configuration meeting the SLOs, then the runner-ups", "[sweep][serve][plan]") {
  const std::string dir = scratch("plan");
  const std::string spec = spec_file(dir, kServe), db = dir + "/s.db";
  const auto r = cli({"plan", spec, "--db", db, "--attainment", "0.9", "--format", "json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["points"] == 8);
  REQUIRE(j["choices"].size() >= 2);
  double last = 0;
  for (const auto& c : j["choices"]) {
    CHECK(c["slo_attainment"].get<double>() >= 0.9);
    CHECK(c["rate_per_hour"].get<double>() >= last);
    last = c["rate_per_hour"];
  }
  // The table names the cheapest; a target nobody meets lists the closest instead.
  const auto t = cli({"plan", "--db", db, "--attainment", "0.9"});
  CHECK_THAT(t.out, Catch::Contains("cheapest: tp ") && Catch::Contains("the runner-ups follow it"));
  // SLOs no configuration can meet (a 1 us TTFT): the closest points, most requests within first.
  fs::create_directories(dir + "/none");
  std::string tight = kServe;
  tight.replace(tight.find("ttft_slo = \"500 ms\""), std::string("ttft_slo = \"500 ms\"").size(), "ttft_slo = \"1 us\"");
  const auto none = cli({"plan", spec_file(dir + "/none", tight), "--db", dir + "/none.db", "--top", "3"});
  REQUIRE(none.code == 0);
  CHECK_THAT(none.out, Catch::Contains("0 with at least 99% of requests within both SLOs") &&
                           Catch::Contains("no configuration meets the target; the closest"));
  const ServePlan p = plan_from_db(dir + "/none.db", 0.99, 3);
  CHECK(p.choices.empty());
  REQUIRE(p.closest.size() == 3);
  CHECK(p.closest[0].slo_attainment >= p.closest[1].slo_attainment);
  CHECK(p.closest[1].slo_attainment >= p.closest[2].slo_attainment);
  // Errors: a target outside (0, 1], a database of another mode, a spec of another mode.
  CHECK(cli({"plan", "--db", db, "--attainment", "1.5"}).err == "--attainment: error: the share of requests within the SLOs is in (0, 1], not 1.5\n");
  const std::string step = spec_file(dir + "/step", "");
  fs::create_directories(dir + "/step");
  std::ofstream(dir + "/step/s.toml") << "version = 1\n[sweep]\nmode = \"roofline\"\narch = \"h100\"\nmodel = \"llama-3-8b\"\nphase = \"decode\"\n[parameters]\nbatch = [1, 2]\n";
  REQUIRE(cli({"sweep", dir + "/step/s.toml", "--db", dir + "/step.db"}).code == 0);
  CHECK(cli({"plan", "--db", dir + "/step.db"}).err == dir + "/step.db: error: holds a roofline sweep; a plan needs a serving sweep (mode = \"serve\")\n");
  CHECK(cli({"plan", dir + "/step/s.toml", "--db", dir + "/x.db"}).err == dir + "/step/s.toml: error: a plan needs a serving sweep: mode = \"serve\" in [sweep]\n");
  CHECK_THAT(cli({"plan", "--db", dir + "/missing.db"}).err, Catch::Contains("missing.db"));
}

TEST_CASE("serving sweeps: keys of the wrong mode and bad values are located errors", "[sweep][serve][errors]") {
  const std::string dir = scratch("errors");
  auto err = [&](const std::string& body) { return error_of([&] { load_sweep(spec_file(dir, body)); }); };
  const std::string f = dir + "/s.toml";
  const std::string head = "[sweep]\nmode = \"serve\"\narch = \"h100\"\nmodel = \"llama-3-8b\"\n";
  CHECK(err(head + "[parameters]\nbatch = [1, 2]\n") == f + ":7:9: error: 'batch' sets one step; a serving sweep (mode = \"serve\") runs a request trace instead");
  CHECK(err("[sweep]\nmode = \"mapped\"\narch = \"h100\"\nmodel = \"llama-3-8b\"\nphase = \"decode\"\n[parameters]\ninstances = [1, 2]\n") ==
        f + ":8:13: error: 'instances' is a serving key: it needs mode = \"serve\"");
  CHECK(err(head + "spec_k = 2\n[parameters]\nspec_accept = [0.5, 1.5]\n") == f + ":8:15: error: 'spec_accept': an acceptance rate is in [0, 1], not 1.5");
  CHECK(err(head + "[parameters]\nprefix_caching = [\"on\", \"maybe\"]\n") == f + ":7:18: error: 'prefix_caching': 'maybe' is not on or off");
  CHECK(err(head + "[parameters]\nbatching = [\"eager\"]\n") == f + ":7:12: error: 'batching': 'eager' is not prefill-first or chunked");
  CHECK_THAT(err(head + "[parameters]\ntrace = [\"conv\", \"/no/such.csv\"]\n"), Catch::StartsWith(f + ":7:9: error: trace '/no/such.csv': "));
  CHECK_THAT(err(head + "[parameters]\nkv_link = [\"fast\"]\n"), Catch::StartsWith(f + ":7:11: error: kv_link 'fast': 'fast' is not a link"));
  CHECK_THAT(err(head + "[parameters]\ndraft = [\"mtp\", \"no-such-model\"]\n"), Catch::StartsWith(f + ":7:9: error: draft 'no-such-model': "));
  CHECK_THAT(err(head + "[parameters]\nrequest_rate = [0, 1]\n"), Catch::Contains("'request_rate': must be positive"));
  // Contradictions within a point are that point's error row, not the sweep's.
  const std::string db = dir + "/e.db";
  REQUIRE(cli({"sweep", spec_file(dir, head + "duration = \"30 s\"\n[parameters]\nprefill_instances = [1]\nrouting = [\"cache-aware\"]\n"), "--db", db}).code == 0);
  SweepDb store(db, false, true);
  std::vector<std::string> errors;
  store.scan("error", [&](const std::vector<Cell>& row) { errors.push_back(row[3].s); });
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::Contains("disaggregated serving needs both pools: prefill_instances 1 and decode_instances 0"));
}

TEST_CASE("einsim serve: the serving options' errors are located", "[serve][cli][errors]") {
  const std::vector<std::string> base = {"serve", "--model", "llama-3-8b", "--arch", "h100", "--duration", "10"};
  auto err = [&](std::vector<std::string> more) {
    std::vector<std::string> a = base;
    a.insert(a.end(), more.begin(), more.end());
    const auto r = cli(a);
    CHECK(r.code == 1);
    return r.err;
  };
  CHECK(err({"--spec-accept", "0.5"}) == "--spec-accept: error: speculative decoding needs --spec-k, the tokens drafted per step\n");
  CHECK(err({"--spec-k", "3"}) == "--spec-k: error: speculative decoding needs --spec-accept, the acceptance rate per drafted token\n");
  CHECK(err({"--spec-k", "3", "--spec-accept", "1.5"}) == "--spec-accept: error: the acceptance rate is a probability in [0, 1], not 1.5\n");
  CHECK(err({"--spec-k", "3", "--spec-accept", "0.5", "--draft", "llama-2-7b"}) ==
        "--draft: error: 'Llama-2-7B' has a vocabulary of 32000 tokens and 'Llama-3-8B' 128256: a drafter proposes the target's tokens\n");
  CHECK(err({"--prefill-instances", "1"}) == "--prefill-instances: error: disaggregated serving needs both --prefill-instances and --decode-instances\n");
  CHECK(err({"--layerwise"}) == "--layerwise: error: --layerwise is for disaggregated serving: give --prefill-instances and --decode-instances\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--servers", "2"}) ==
        "--servers: error: --servers sizes co-located serving; disaggregated pools are sized by --prefill-instances and --decode-instances\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--pp", "2"}) == "--pp: error: disaggregated pools run tensor parallelism only (no --pp or --ep)\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--kv-link", "fast"}) ==
        "--kv-link: error: 'fast' is not a link: network, peer, inf, or a bandwidth such as \"50 GB/s\"\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--kv-link", "peer", "--prefill-arch", "h200"}) ==
        "--kv-link: error: 'H200-SXM-141GB' and 'H100-SXM5-80GB' share no scale-up domain: their pools meet over the network\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--kv-link-latency", "soon"}) ==
        "--kv-link-latency: error: 'soon' is not a time such as \"10 us\"\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--compare-colocated", "--prefill-arch", "h200"}) ==
        "--compare-colocated: error: the pools' devices make no whole number of co-located instances of one arch and --tp\n");
  CHECK(err({"--prefill-instances", "1", "--decode-instances", "1", "--prefill-tp", "3"}) == "--prefill-tp: error: --prefill-tp 3 does not divide the 32 attention heads of 'Llama-3-8B'\n");
  CHECK(err({"--shared-prefix", "512"}) == "--shared-prefix: error: a shared prefix changes nothing without --prefix-caching\n");
  CHECK(err({"--prefix-share", "0.5"}) == "--prefix-share: error: --prefix-share is the share of requests with --shared-prefix: give it\n");
  CHECK(err({"--prefix-caching", "--shared-prefix", "512", "--prefix-share", "2"}) ==
        "--prefix-share: error: the share of requests with the prefix is in [0, 1], not 2\n");
  CHECK(err({"--routing", "cache-aware"}) == "--routing: error: cache-aware routing needs --prefix-caching\n");
  CHECK(err({"--offload-policy", "evicted"}) == "--offload-policy: error: --offload-policy says what --kv-offload's tier takes: give --kv-offload\n");
  CHECK(err({"--attach", "ddr5-socket", "--kv-offload", "ddr5", "--offload-policy", "evicted"}) ==
        "--offload-policy: error: evicted blocks come from the prefix cache: give --prefix-caching\n");
  CHECK(err({"--perfetto", "/tmp/x.json", "--perfetto-window", "5:2"}) == "--perfetto-window: error: '5:2' is not a window START:END in seconds (0 <= START < END)\n");
  const std::string dir = scratch("cli");
  std::ofstream(dir + "/t.jsonl") << "{\"timestamp\": 5, \"input_length\": 10, \"output_length\": 3}\n{\"timestamp\": 1, \"input_length\": 10, \"output_length\": 3}\n";
  CHECK(err({"--trace", dir + "/t.jsonl"}) == dir + "/t.jsonl:2:2: error: timestamps must not decrease (the trace is sorted by arrival)\n");
}

TEST_CASE("einsim serve: disaggregation, prefix caching, speculation and Perfetto on the command line", "[serve][cli]") {
  const std::string dir = scratch("run");
  const auto r = cli({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "conv", "--duration", "60", "--prefill-instances", "1",
                      "--decode-instances", "2", "--compare-colocated", "--perfetto", dir + "/p.json", "--prefix-caching", "--shared-prefix", "1024",
                      "--spec-k", "3", "--spec-accept", "0.7"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("1 prefill instance x 1 H100-SXM5-80GB (TP 1) + 2 decode instances") && Catch::Contains("KV transfers: ") &&
                        Catch::Contains("prefix cache: ") && Catch::Contains("speculative decoding: Llama-3-8B MTP head drafts 3 tokens") &&
                        Catch::Contains("co-located on the same 3 devices:") && Catch::Contains("1 server x 3 instances"));
  const auto j = nlohmann::json::parse(std::ifstream(dir + "/p.json"));
  CHECK(j["traceEvents"].size() > 100);
  const auto js = cli({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "conv", "--duration", "60", "--prefill-instances", "1",
                       "--decode-instances", "1", "--format", "json"});
  REQUIRE(js.code == 0);
  const auto k = nlohmann::json::parse(js.out);
  CHECK(k["disaggregated"]["transfers"].get<int64_t>() > 0);
  CHECK(k["devices"] == 2);
}
