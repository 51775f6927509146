#include <catch2/catch.hpp>

#include "../workloads/helpers.h"
#include "sim/analyze/kv_compression.h"
#include "workloads/model_config.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

KvCompressionScenario scenario_from(const std::string& body) {
  return test::scenario_from("kind = \"kv-compression\"\nmodel = \"llama-3-8b\"\narch = \"h100\"\ncontext = \"32K\"\nbatch = 4\n", body,
                             read_kv_compression);
}

const KvResult& result(const KvCompressionReport& r, const std::string& name) {
  for (const KvResult& x : r.results)
    if (x.policy.name == name) return x;
  FAIL("no policy " << name);
  return r.results.front();
}

}  // namespace

TEST_CASE("kv-compression: closed-form KV bytes, concurrency and FLOPs for Llama-3-8B", "[analyze]") {
  const KvCompressionReport r = analyze_kv_compression(scenario_from(R"(
[scenario.policies.budget]
evict_budget = 4096
[scenario.policies.ratio]
evict_ratio = 0.75
[scenario.policies.think]
prune_keys = 0.4
[scenario.policies.int4]
bits = 4
group = 64
[scenario.policies.based]
feature_dim = 16
linear_window = 64
[scenario.policies.both]
evict_budget = 4096
bits = 8
)"));
  REQUIRE(r.results.size() == 7);
  CHECK(r.results[0].policy.name == "none (baseline)");
  CHECK(r.results[1].policy.name == "budget");  // file order
  // Baseline: 32 layers x 8 KV heads x 32768 tokens x (128 + 128) channels x 2 bytes = 4 GiB.
  const KvResult& base = r.results[0];
  CHECK(base.kv_per_request == 32.0 * 8 * 32768 * 256 * 2);
  CHECK(base.max_requests == static_cast<int64_t>(std::floor(r.kv_free / base.kv_per_request)));
  // Decode attention FLOPs per step: batch x layers x heads x tokens x (2 x 128 + 2 x 128).
  CHECK(base.attention_flops == 4.0 * 32 * 32 * 32768 * 512);
  CHECK(result(r, "budget").kv_per_request == base.kv_per_request / 8);
  CHECK(result(r, "ratio").tokens_kept == 8192);
  // ThinK: 128 x 0.6 = 76.8 key channels, rounded to whole rotary pairs: 76; values untouched.
  CHECK(result(r, "think").key_channels == 76);
  CHECK(result(r, "think").kv_per_request == Approx(base.kv_per_request * (76.0 + 128) / 256));
  // 4 bits plus one fp16 scale per 64 elements: 0.5 + 2/64 bytes.
  CHECK(result(r, "int4").bytes_per_element_k == 0.5 + 2.0 / 64);
  CHECK(result(r, "int4").kv_per_request == Approx(base.kv_per_request * (0.5 + 2.0 / 64) / 2));
  // BASED's layer mix over Llama-3-8B's 32 layers: 7/36 linear (6 layers: per KV head
  // (1 + 16 + 256) feature rows of 128 values plus a denominator), 7/36 a 64-token window of KV
  // (6 layers), the other 20 gated convolutions keeping 2 inputs of the 4096-wide hidden state.
  const KvResult& b = result(r, "based");
  CHECK(b.layers_linear == 6);
  CHECK(b.layers_window == 6);
  CHECK(b.layers_conv == 20);
  const double state = 6.0 * 8 * (273 * 128 + 273) * 2, window = 6.0 * 8 * 64 * 256 * 2, conv = 20.0 * 2 * 4096 * 2;
  CHECK(b.kv_per_request == Approx(state + window + conv));
  // Every layer with both a state and a window (the old reading) would hold 5x as much.
  CHECK(b.kv_per_request < 0.25 * (32.0 * 8 * (273 * 128 + 273) * 2 + 32.0 * 8 * 64 * 256 * 2));
  // Throughput at the largest batch that fits: a roofline, compute-bound for BASED's tiny state.
  CHECK(b.throughput_bound == "FLOPs");
  CHECK(base.throughput_bound == "HBM bandwidth");
  CHECK(b.throughput_formula > 10 * base.throughput_formula);
  CHECK(result(r, "both").kv_per_request == Approx(base.kv_per_request / 8 * (1 + 2.0 / 128) / 2));
  // Every policy here is mapped: linear attention too, on a cascade with its state.
  REQUIRE(result(r, "based").step_mapped);
  CHECK(*result(r, "based").step_mapped >= result(r, "based").step_formula);
  for (const KvResult& x : r.results) CHECK(x.max_requests == static_cast<int64_t>(std::floor(r.kv_free / x.kv_per_request)));
}

TEST_CASE("kv-compression: mapped steps respect the bandwidth bound and follow the KV saved", "[analyze]") {
  const KvCompressionReport r = analyze_kv_compression(scenario_from(R"(
[scenario.policies.half]
evict_ratio = 0.5
[scenario.policies.int8]
bits = 8
[scenario.policies.think]
prune_keys = 0.5
)"));
  const KvResult& base = r.results[0];
  REQUIRE(base.step_mapped);
  for (const KvResult& x : r.results) {
    INFO(x.policy.name);
    CHECK(x.step_formula <= base.step_formula);
    if (x.step_mapped) CHECK(*x.step_mapped >= x.step_formula);
  }
  REQUIRE(result(r, "half").step_mapped);
  CHECK(*result(r, "half").step_mapped < *base.step_mapped);
  CHECK(*result(r, "int8").step_mapped < *base.step_mapped);
  CHECK_THAT(result(r, "int8").mapped_note, Catch::Contains("without the quantization scales"));
  // Pruned key channels: the cache and QK shrink; the step falls, less than the half-KV one.
  REQUIRE(result(r, "think").step_mapped);
  CHECK(*result(r, "think").step_mapped < *base.step_mapped);
  CHECK(*result(r, "think").step_mapped > *result(r, "half").step_mapped);
}

TEST_CASE("kv-compression: bad scenarios are located errors", "[analyze][errors]") {
  CHECK_THAT(error_of([] { scenario_from(""); }), Catch::Contains("the scenario lists no policies"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\ngroup = 64\n"); }), Catch::Contains("s.toml:8:1: error: policy 'x' applies no transform"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nfeature_dim = 16\nlinear_layers = 0.6\nwindow_layers = 0.6\n"); }),
             Catch::Contains("s.toml:11:") && Catch::Contains("linear_layers + window_layers is 1.2, more than every layer"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nwindow = 64\nlinear_layers = 0.5\n"); }),
             Catch::Contains("s.toml:10:") && Catch::Contains("'linear_layers' describes BASED's layer mix: it needs feature_dim"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nbits = 3\n"); }), Catch::Contains("s.toml:9:8: error: 'scenario.policies.x.bits' must be 16, 8, 4 or 2"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nevict_ratio = 1.5\n"); }), Catch::Contains("s.toml:9:15: error:"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nfeature_dim = 16\nwindow = 64\n"); }),
             Catch::Contains("linear attention keeps a fixed state"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nwindow = \"lots\"\n"); }), Catch::Contains("'lots' is not a token count"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nbits = 8\nevict_budgt = 10\n"); }),
             Catch::Contains("unknown key 'evict_budgt'") && Catch::Contains("did you mean 'evict_budget'"));
  CHECK_THAT(error_of([] { scenario_from("[scenario.policies.x]\nevict_budget = 0\n"); }), Catch::Contains("s.toml:9:16: error: 'scenario.policies.x.evict_budget' must be in [1,"));
  KvCompressionScenario enc = scenario_from("[scenario.policies.x]\nbits = 8\n");
  enc.model = "bert-base";
  CHECK_THAT(error_of([&] { analyze_kv_compression(enc); }), Catch::Contains("is an encoder"));
}
