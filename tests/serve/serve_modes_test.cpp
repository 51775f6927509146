// Serving as engines run it: prefix caching, speculative decoding, disaggregated prefill and
// decode pools, KV offload of evicted cache blocks, the Perfetto timeline.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../workloads/helpers.h"
#include "sim/serve/deploy.h"
#include "serve_helpers.h"
#include "sim/serve/serve_report.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

using Setup = test::ServeSetup;
using test::check_invariants;
using test::poisson;

double mean(const ServeResult& r, double (RequestOutcome::*f)() const) {
  double s = 0;
  int n = 0;
  for (const RequestOutcome& o : r.requests)
    if (o.output > 1) s += (o.*f)(), ++n;
  return s / n;
}

std::string write(const std::string& name, const std::string& body) {
  const auto dir = std::filesystem::temp_directory_path() / "einsim-serve-modes-test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << body;
  return path;
}

}  // namespace

TEST_CASE("serve modes: prefix caching with nothing shared reproduces plain serving", "[serve][prefix]") {
  Setup s({"arch.tiers.hbm.capacity=\"19 GB\""});  // a small cache: blocks are evicted
  StepTimer timer(s.model, s.arch, 1);
  Trace t = poisson(3, 300, 3);
  ServeConfig c;
  const ServeResult plain = simulate_serving(t, c, timer, s.arch);
  // Every request its own blocks: nothing hits, so nothing changes.
  add_shared_prefix(t, 1, 0.0, 16);
  int64_t id = 0;
  for (Request& r : t.requests)
    for (int64_t k = 0; k < r.prompt / 16; ++k) r.hashes.push_back(id++);
  c.prefix_caching = true;
  const ServeResult cached = simulate_serving(t, c, timer, s.arch);
  check_invariants(t, cached);
  CHECK(cached.cached_tokens == 0);
  CHECK(cached.evicted_blocks > 0);
  CHECK(plain.preemptions == 0);  // a preempted request would find its own blocks again when it returns
  CHECK(cached.preemptions == 0);
  for (size_t i = 0; i < t.requests.size(); ++i) {
    REQUIRE(cached.requests[i].first_token == plain.requests[i].first_token);
    REQUIRE(cached.requests[i].finish == plain.requests[i].finish);
  }
}

TEST_CASE("serve modes: a shared system prompt is prefilled once per instance", "[serve][prefix]") {
  Setup s;
  StepTimer timer(s.model, s.arch, 1);
  Trace t = poisson(8, 400);
  add_shared_prefix(t, 2048, 0.9, 16);
  ServeConfig c;
  c.servers = 2;
  const ServeResult plain = simulate_serving(t, c, timer, s.arch);
  c.prefix_caching = true;
  const ServeResult cached = simulate_serving(t, c, timer, s.arch);
  check_invariants(t, cached);
  // Each instance computes the prefix once; later requests find min(2048, prompt - 1) cached.
  double expect = 0, prompts = 0;
  for (const Request& r : t.requests) {
    prompts += static_cast<double>(r.prompt);
    if (!r.hashes.empty() && r.hashes.front() == (int64_t{1} << 62) - 1) expect += static_cast<double>(std::min<int64_t>(2048, r.prompt - 1) / 16 * 16);
  }
  CHECK(cached.prompt_tokens == prompts);
  CHECK(cached.cached_tokens > 0.9 * expect);  // all but each instance's first few
  CHECK(cached.cached_tokens <= expect);
  double ttft_plain = 0, ttft_cached = 0;
  for (size_t i = 0; i < t.requests.size(); ++i) ttft_plain += plain.requests[i].ttft(), ttft_cached += cached.requests[i].ttft();
  CHECK(ttft_cached < 0.8 * ttft_plain);
  // Cache-aware routing sends requests where their prefix is: at least as many hits.
  c.routing = Routing::CacheAware;
  const ServeResult routed = simulate_serving(t, c, timer, s.arch);
  check_invariants(t, routed);
  CHECK(routed.cached_tokens >= cached.cached_tokens);
}

TEST_CASE("serve modes: multi-turn sessions reuse the conversation so far", "[serve][prefix][jsonl]") {
  // Two conversations of three turns; each turn resends the conversation so far.
  std::string body;
  int64_t ts = 0;
  for (int turn = 0; turn < 3; ++turn)
    for (const char* sess : {"a", "b"}) {
      body += fmt::format(R"({{"timestamp": {}, "input_length": {}, "output_length": 64, "session_id": "{}"}})", ts, 1024 + 1100 * turn, sess) + "\n";
      ts += 5000;
    }
  const Trace t = read_jsonl_trace(write("sessions.jsonl", body), 512);
  REQUIRE(t.requests.size() == 6);
  CHECK(t.hash_block == 512);
  CHECK(t.requests[2].hashes.size() == 4);  // 2124 tokens: four whole blocks
  CHECK(t.requests[2].hashes[1] == t.requests[0].hashes[1]);
  CHECK(t.requests[2].hashes[0] != t.requests[1].hashes[0]);
  Setup s;
  StepTimer timer(s.model, s.arch, 1);
  ServeConfig c;
  c.prefix_caching = true;
  const ServeResult r = simulate_serving(t, c, timer, s.arch);
  check_invariants(t, r);
  // Turn two finds turn one's two blocks, turn three turn two's four.
  CHECK(r.requests[0].cached == 0);
  CHECK(r.requests[2].cached == 1024);
  CHECK(r.requests[4].cached == 2048);
}

TEST_CASE("serve modes: speculative decoding's cost and yield bracket plain decoding", "[serve][spec]") {
  Setup s;
  StepTimer timer(s.model, s.arch, 1);
  StepTimer head(mtp_head(s.model), s.arch, 1);
  const Trace t = poisson(4, 200);
  ServeConfig c;
  const ServeResult plain = simulate_serving(t, c, timer, s.arch);
  ServePools p;
  p.draft = &head;
  p.draft_weights = timer.weight_bytes() / 32;
  c.spec.k = 4;
  CHECK(c.spec.tokens_per_step() == 1);
  // Acceptance 0: every step drafts and verifies for one token: dearer than plain decoding.
  const ServeResult none = simulate_serving(t, c, timer, s.arch, p);
  check_invariants(t, none);
  CHECK(none.verified_tokens / static_cast<double>(none.verify_steps) == Approx(1));
  CHECK(mean(none, &RequestOutcome::tpot) > 1.2 * mean(plain, &RequestOutcome::tpot));
  // Acceptance 1: k + 1 tokens per verify step (fewer only on each request's last step).
  c.spec.acceptance = 1;
  CHECK(c.spec.tokens_per_step() == 5);
  const ServeResult all = simulate_serving(t, c, timer, s.arch, p);
  check_invariants(t, all);
  CHECK(all.verified_tokens / static_cast<double>(all.verify_steps) > 4.5);
  CHECK(mean(all, &RequestOutcome::tpot) < 0.5 * mean(plain, &RequestOutcome::tpot));
  // In between, the mean of Leviathan et al.'s truncated geometric.
  c.spec.acceptance = 0.7;
  CHECK(c.spec.tokens_per_step() == Approx((1 - std::pow(0.7, 5)) / 0.3));
  const ServeResult some = simulate_serving(t, c, timer, s.arch, p);
  check_invariants(t, some);
  CHECK(some.verified_tokens / static_cast<double>(some.verify_steps) == Approx(c.spec.tokens_per_step()).epsilon(0.03));
  // The drafter's weights and cache take pages from the target's.
  CHECK(some.kv_blocks < plain.kv_blocks);
  // An idealised free drafter (none given) is faster than the MTP head at the same acceptance.
  const ServeResult free_draft = simulate_serving(t, c, timer, s.arch);
  CHECK(mean(free_draft, &RequestOutcome::tpot) < mean(some, &RequestOutcome::tpot));
  c.spec.acceptance = 1.5;
  CHECK_THAT(error_of([&] { simulate_serving(t, c, timer, s.arch, p); }), Catch::Contains("--spec-accept: error: the acceptance rate is a probability in [0, 1], not 1.5"));
}

TEST_CASE("serve modes: disaggregation with a free link and idle pools reduces to co-located serving", "[serve][disagg]") {
  Setup s;
  StepTimer timer(s.model, s.arch, 1);
  Trace t = poisson(1, 40);
  for (size_t i = 0; i < t.requests.size(); ++i) t.requests[i].arrival = 100.0 * static_cast<double>(i);  // one request at a time
  ServeConfig co;
  const ServeResult a = simulate_serving(t, co, timer, s.arch);
  ServeConfig d;
  d.disagg.prefill = 2;
  d.disagg.decode = 2;
  d.disagg.bandwidth = std::numeric_limits<double>::infinity();
  const ServeResult b = simulate_serving(t, d, timer, s.arch);
  check_invariants(t, b);
  int64_t sent = 0;
  for (size_t i = 0; i < t.requests.size(); ++i) {
    REQUIRE(b.requests[i].first_token == Approx(a.requests[i].first_token).epsilon(1e-12));
    REQUIRE(b.requests[i].finish == Approx(a.requests[i].finish).epsilon(1e-12));
    sent += t.requests[i].output > 1;
  }
  CHECK(b.transfers == sent);
  CHECK(b.instances == 4);
  // A real link: each transfer moves the prompt's cache (128 KiB per token for Llama-3-8B at
  // bf16) at 50 GB/s, and the time between the first and second token grows by it.
  d.disagg.bandwidth = 50e9;
  d.disagg.latency = 10e-6;
  const ServeResult c = simulate_serving(t, d, timer, s.arch);
  check_invariants(t, c);
  double bytes = 0;
  for (const Request& r : t.requests)
    if (r.output > 1) bytes += static_cast<double>(r.prompt) * timer.kv_bytes_per_token();
  CHECK(c.transfer_bytes == Approx(bytes));
  CHECK(c.transfer_time == Approx(bytes / 50e9 + static_cast<double>(sent) * 10e-6));
  for (size_t i = 0; i < t.requests.size(); ++i)
    if (t.requests[i].output > 1)
      REQUIRE(c.requests[i].finish - b.requests[i].finish == Approx(static_cast<double>(t.requests[i].prompt) * timer.kv_bytes_per_token() / 50e9 + 10e-6).epsilon(1e-6));
  // Layer-wise streaming hides all but the last layer's share behind the prefill.
  d.disagg.layerwise = true;
  const ServeResult l = simulate_serving(t, d, timer, s.arch);
  check_invariants(t, l);
  CHECK(mean(l, &RequestOutcome::e2e) < mean(c, &RequestOutcome::e2e));
  CHECK(mean(l, &RequestOutcome::e2e) > mean(b, &RequestOutcome::e2e));
}

TEST_CASE("serve modes: disaggregated pools conserve under load and back up when decode is full", "[serve][disagg]") {
  Setup s({"arch.tiers.hbm.capacity=\"19 GB\""});
  StepTimer timer(s.model, s.arch, 1);
  const Trace t = poisson(12, 300, 5);
  ServeConfig d;
  d.disagg.prefill = 1;
  d.disagg.decode = 2;
  d.disagg.bandwidth = 25e9;
  const ServeResult r = simulate_serving(t, d, timer, s.arch);
  check_invariants(t, r);
  CHECK(r.transfer_wait > 0);  // transfers queue for the link or for decode pages
  for (const RequestOutcome& o : r.requests)
    if (o.transfer_start >= 0) {
      REQUIRE(o.prefill_instance == 0);
      REQUIRE(o.instance >= 1);
    }
  // A prompt no prefill instance can hold is a located error.
  Trace big;
  big.name = "big.jsonl";
  big.file = "big.jsonl";
  Request q;
  q.prompt = 30000;
  q.output = 2;
  q.line = 3;
  big.requests.push_back(q);
  Setup roomy;
  StepTimer large(roomy.model, roomy.arch, 1);
  ServePools p;
  p.prefill = &timer;
  CHECK_THAT(error_of([&] { simulate_serving(big, d, large, s.arch, p); }), Catch::Contains("big.jsonl:3:1: error: request 0's prompt of 30000 tokens needs"));
  StepTimer& small = timer;
  CHECK_THAT(error_of([&] { simulate_serving(big, d, small, s.arch); }), Catch::Contains("big.jsonl:3:1: error: request 0 (30000 + 2 tokens) needs"));
}

TEST_CASE("serve modes: evicted prefix blocks kept on a host tier are loaded back, not recomputed", "[serve][prefix][tiers]") {
  Setup s({"arch.tiers.hbm.capacity=\"19 GB\""});
  const ArchSpec a = attach(s.arch, load_arch("ddr5-socket"), SourceLoc{"--attach"});
  StepTimer timer(s.model, a, 1);
  // 40 distinct 4K-token documents asked about again and again: more than device memory holds.
  Trace t = poisson(6, 300, 11);
  for (size_t i = 0; i < t.requests.size(); ++i) {
    Request& r = t.requests[i];
    r.prompt = 4096 + 200;
    r.output = std::min<int64_t>(r.output, 200);
    r.hashes.clear();
    for (int64_t k = 0; k < 4096 / 16; ++k) r.hashes.push_back(static_cast<int64_t>(i % 40) * 1000 + k);
  }
  t.hash_block = 16;
  ServeConfig c;
  c.prefix_caching = true;
  const ServeResult hbm = simulate_serving(t, c, timer, a);
  check_invariants(t, hbm);
  CHECK(hbm.evicted_blocks > 0);
  c.offload_policy = OffloadPolicy::Evicted;
  c.swap_tier = "ddr5";
  c.swap_bandwidth = 50e9;
  const ServeResult tiered = simulate_serving(t, c, timer, a);
  check_invariants(t, tiered);
  CHECK(tiered.offloaded_blocks > 0);
  CHECK(tiered.offload_hit_tokens > 0);
  CHECK(tiered.cached_tokens > hbm.cached_tokens);
  CHECK(mean(tiered, &RequestOutcome::ttft) < mean(hbm, &RequestOutcome::ttft));
  // A tier too small for one block keeps nothing.
  c.swap_capacity = 1000;
  const ServeResult none = simulate_serving(t, c, timer, a);
  CHECK(none.offloaded_blocks == 0);
  CHECK(none.cached_tokens == hbm.cached_tokens);
}

TEST_CASE("serve modes: the Perfetto trace holds requests, iterations and counters, bounded", "[serve][perfetto]") {
  Setup s;
  StepTimer timer(s.model, s.arch, 1);
  const Trace t = poisson(4, 100);
  ServeConfig c;
  c.disagg.prefill = 1;
  c.disagg.decode = 1;
  c.disagg.bandwidth = 50e9;
  c.record_samples = true;
  const ServeResult r = simulate_serving(t, c, timer, s.arch);
  const nlohmann::json j = nlohmann::json::parse(perfetto_json(t, r, c));
  int64_t begins = 0, ends = 0, slices = 0, counters = 0, transfers = 0;
  for (const auto& e : j["traceEvents"]) {
    const std::string ph = e["ph"];
    begins += ph == "b";
    ends += ph == "e";
    slices += ph == "X";
    counters += ph == "C";
    transfers += ph == "b" && e["name"] == "transfer";
  }
  CHECK(begins == ends);
  CHECK(slices == static_cast<int64_t>(r.samples.size()));
  CHECK(counters == 3 * slices);
  CHECK(transfers == r.transfers);
  PerfettoOptions o;
  o.max_requests = 10;
  o.max_iterations = 50;
  const nlohmann::json k = nlohmann::json::parse(perfetto_json(t, r, c, o));
  slices = 0;
  for (const auto& e : k["traceEvents"]) slices += e["ph"] == "X";
  CHECK(slices == 50);
  CHECK(k["otherData"]["requests_shown"] == 10);
  CHECK(k["otherData"]["window_to_s"].get<double>() < r.makespan);
}
