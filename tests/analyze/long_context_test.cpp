#include <catch2/catch.hpp>

#include <cmath>

#include <fmt/format.h>

#include "../workloads/helpers.h"
#include "sim/analyze/long_context.h"
#include "workloads/model_config.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

LongContextScenario scenario_from(const std::string& body) { return test::scenario_from("kind = \"long-context\"\n", body, read_long_context); }

}  // namespace

TEST_CASE("long-context: closed-form figures for Yi-34B-200K on A100-80GB", "[analyze]") {
  const LongContextScenario s = scenario_from("devices = [1, 2, 8]\ncontexts = [\"4K\", 50000]\nactivation_reserve = \"2 GiB\"\n");
  const LongContextReport r = analyze_long_context(s);
  // KV per token: 2 (K and V) x 60 layers x 8 KV heads x 128 x 2 bytes (bf16).
  CHECK(r.kv_per_token == 2.0 * 60 * 8 * 128 * 2);
  const ModelConfig m = load_model("yi-34b-200k");
  CHECK(r.weights == count_params(m).total * 2);
  REQUIRE(r.rows.size() == 6);
  for (const LcRow& x : r.rows) {
    INFO(x.context << " tokens on " << x.devices);
    const double n = static_cast<double>(x.devices), c = static_cast<double>(x.context);
    CHECK(x.kv_per_request == c * 245760);
    const double free = n * (80e9 - 2.0 * (1 << 30)) - r.weights;
    CHECK(x.kv_free == Approx(std::max(0.0, free)));
    CHECK(x.max_requests == static_cast<int64_t>(std::floor(std::max(0.0, free) / (c * 245760))));
    // Context switch over PCIe Gen4 x16 (31.5 GB/s): both requests one after the other.
    CHECK(x.switch_formula.value == Approx(2 * c * 245760 / 31.5e9));
    // Prefill at 312 TFLOP/s... the preset's dense peak (108 SMs x 4 tensor cores x 256 MACs x 2 x 1.41 GHz).
    // Causal: of the 128 x 128 (query, key) tiles, the lower triangle with its diagonal.
    const double tiles = std::ceil(c / 128), causal = (tiles + 1) / (2 * tiles);
    const double flops = 2 * count_params(m).active * c + 4 * 60 * c * c * 56 * 128 * causal;
    CHECK(x.prefill_formula.value == Approx(flops / (n * 108 * 4 * 256 * 2 * 1.41e9)));
    // Fu 2024's convention: 2 x parameters x tokens and half the dense QK and AV.
    const double fu = 2 * count_params(m).total * c + 2 * 60 * c * c * 56 * 128;
    CHECK(x.prefill_fu.value == Approx(fu / (n * 108 * 4 * 256 * 2 * 1.41e9)));
    if (x.max_requests > 0)
      CHECK(x.decode_formula.value == Approx((r.weights + static_cast<double>(x.max_requests) * c * 245760) / (n * 2.039e12)));
  }
  // The running example: 50K tokens need 11.4 GiB of KV; one A100 holds the weights and
  // 8.5 GiB more, so no request fits; two hold seven.
  CHECK(r.rows[3].context == 50000);
  CHECK(r.rows[3].max_requests == 0);
  CHECK_FALSE(r.rows[3].decode_mapped.ok());
  CHECK(r.rows[3].decode_mapped.bound == "HBM capacity");
  CHECK(r.rows[4].max_requests == 7);
}

TEST_CASE("long-context: mapped predictions respect the first-order bounds", "[analyze]") {
  const LongContextReport r = analyze_long_context(scenario_from("devices = [1, 4]\ncontexts = [\"4K\", \"16K\", \"128K\"]\n"));
  int checked = 0;
  for (const LcRow& x : r.rows) {
    INFO(x.context << " tokens on " << x.devices);
    // Peak FLOPs and peak bandwidth are lower bounds on time.
    if (x.prefill_mapped.ok()) {
      CHECK(x.prefill_mapped.value >= x.prefill_formula.value);
      CHECK(x.prefill_mapped.bound == "FLOPs");
      ++checked;
    }
    if (x.decode_mapped.ok()) {
      CHECK(x.decode_mapped.value >= x.decode_formula.value);
      CHECK(x.decode_mapped.bound == "HBM bandwidth");
      CHECK(x.generate_mapped.value == Approx(1000 * x.decode_mapped.value));
      ++checked;
    }
    // The shard of each device moves over its own link, out and in at once.
    CHECK(x.switch_mapped.value <= x.switch_formula.value);
  }
  CHECK(checked >= 8);
}

TEST_CASE("long-context: bad scenarios are located errors", "[analyze][errors]") {
  CHECK_THAT(error_of([] { scenario_from("devices = [0]\n"); }), Catch::Contains("s.toml:4:12: error: 'scenario.devices' entries must be in [1, 1024]"));
  CHECK_THAT(error_of([] { scenario_from("contexts = [\"lots\"]\n"); }), Catch::Contains("s.toml:4:13: error: 'scenario.contexts': 'lots' is not a token count"));
  CHECK_THAT(error_of([] { scenario_from("contexts = []\n"); }), Catch::Contains("'scenario.contexts' must be a non-empty array"));
  CHECK_THAT(error_of([] { scenario_from("activation_reserve = \"-1 GiB\"\n"); }), Catch::Contains("s.toml:4:"));
  CHECK_THAT(error_of([] { scenario_from("output_tokens = 0\n"); }), Catch::Contains("s.toml:4:17: error: 'scenario.output_tokens' must be in [1, 16777216]"));
  CHECK_THAT(error_of([] { scenario_from("contxts = [4096]\n"); }), Catch::Contains("unknown key 'contxts'") && Catch::Contains("did you mean 'contexts'"));
  CHECK_THAT(error_of([] { analyze_long_context(scenario_from("activation_reserve = \"100 GB\"\n")); }),
             Catch::Contains("the activation reserve (93.13 GiB) leaves nothing"));
  CHECK_THAT(error_of([] { analyze_long_context(scenario_from("model = \"bert-base\"\n")); }), Catch::Contains("'BERT-Base' is an encoder"));
  CHECK_THAT(error_of([] { analyze_long_context(scenario_from("arch = \"host-ddr5\"\n")); }), Catch::Contains("has no compute arrays"));
  CHECK_THAT(error_of([] { load_long_context("long-context", {"scenario.kind=flash"}); }), Catch::Contains("--set scenario.kind=flash: error: 'scenario.kind' = \"flash\" is not one of: long-context"));
  CHECK_THAT(error_of([] { analyze_long_context(scenario_from("model = \"no-such-model\"\n")); }), Catch::Contains("no-such-model"));
}

TEST_CASE("long-context: an architecture without a host link has no context-switch figure", "[analyze]") {
  const LongContextReport r = analyze_long_context(scenario_from("arch = \"fusemax\"\nmodel = \"llama-2-7b\"\ndevices = [1]\ncontexts = [4096]\n"));
  REQUIRE(r.rows.size() == 1);
  CHECK_FALSE(r.rows[0].switch_formula.ok());
  CHECK_THAT(r.rows[0].switch_mapped.note, Catch::Contains("'FuseMax' has no link to the host"));
}

TEST_CASE("long-context: an int8 KV cache doubles the requests that fit", "[analyze]") {
  const LongContextReport bf = analyze_long_context(scenario_from("devices = [4]\ncontexts = [50000]\n"));
  const LongContextReport q = analyze_long_context(scenario_from("devices = [4]\ncontexts = [50000]\nkv_dtype = \"int8\"\n"));
  CHECK(q.kv_per_token == bf.kv_per_token / 2);
  CHECK(q.rows[0].max_requests == static_cast<int64_t>(std::floor(q.rows[0].kv_free / q.rows[0].kv_per_request)));
  CHECK(q.rows[0].max_requests >= 2 * bf.rows[0].max_requests);
  REQUIRE(q.rows[0].decode_mapped.ok());
  CHECK(q.dtype == "bf16 (KV cache int8)");
}

TEST_CASE("long-context: with communication the all-reduces join the mapped steps", "[analyze]") {
  const LongContextReport off = analyze_long_context(scenario_from("devices = [4]\ncontexts = [\"16K\"]\n"));
  const LongContextReport on = analyze_long_context(scenario_from("devices = [4]\ncontexts = [\"16K\"]\ncommunication = true\n"));
  REQUIRE(off.rows[0].decode_mapped.ok());
  REQUIRE(on.rows[0].decode_mapped.ok());
  CHECK(on.rows[0].decode_mapped.value > off.rows[0].decode_mapped.value);
  CHECK(on.rows[0].prefill_mapped.value > off.rows[0].prefill_mapped.value);
  // The first-order formulas leave communication out either way (Fu 2024).
  CHECK(on.rows[0].decode_formula.value == off.rows[0].decode_formula.value);
}

TEST_CASE("long-context: emulated matrix products are refused in their cells unless the scenario asks", "[analyze][emulate]") {
  // Yi-34B-200K is bf16; fp8 on an A100 has no array to run it.
  const std::string body = "arch = \"a100\"\ndtype = \"fp8\"\ndevices = [8]\ncontexts = [\"4K\"]\n";
  const LongContextReport refused = analyze_long_context(scenario_from(body));
  REQUIRE(refused.rows.size() == 1);
  CHECK_FALSE(refused.rows[0].prefill_mapped.ok());
  CHECK_THAT(refused.rows[0].prefill_mapped.note,
             Catch::Contains("fp8 matrix products computed at bf16") && Catch::Contains("emulate = true in [scenario] computes them"));
  const LongContextReport asked = analyze_long_context(scenario_from(body + "emulate = true\n"));
  CHECK(asked.rows[0].prefill_mapped.ok());
  CHECK(asked.rows[0].prefill_mapped.value > 0);
}

TEST_CASE("long-context: Fu 2024's convention and the session throughput", "[analyze]") {
  // The paper's reading: the A100's 80 GB as 80 GiB, so one request of 50K fits one device
  // (the paper's concurrency of 1); einsim's reading (74.5 GiB) fits none.
  const LongContextReport paper = analyze_long_context(scenario_from("devices = [1]\ncontexts = [\"4K\", 50000]\nconvention = \"fu2024\"\n"));
  const LongContextReport ours = analyze_long_context(scenario_from("devices = [1]\ncontexts = [\"4K\", 50000]\n"));
  CHECK(paper.hbm_capacity == 80.0 * (1ull << 30));
  CHECK(ours.hbm_capacity == 80e9);
  CHECK(paper.rows[1].max_requests == 1);
  CHECK(ours.rows[1].max_requests == 0);
  CHECK(paper.rows[1].kv_free == Approx(80.0 * (1ull << 30) - paper.weights));
  // The formula's prefill in the paper's FLOP convention; the mapped run sees the same memory.
  CHECK(paper.rows[1].prefill_formula.value == paper.rows[1].prefill_fu.value);
  CHECK(paper.rows[1].decode_mapped.ok());
  // Session throughput: users x tokens over (users x prefill + the tokens' steps + users x switch).
  for (const LongContextReport* r : {&paper, &ours})
    for (const LcRow& x : r->rows) {
      INFO(x.context);
      if (x.max_requests < 1) {
        CHECK(x.session_formula.value == 0);
        CHECK(x.session_formula.bound == "HBM capacity");
        continue;
      }
      const double u = static_cast<double>(x.max_requests);
      CHECK(x.session_formula.value == Approx(u * 1000 / (u * x.prefill_formula.value + x.generate_formula.value + u * x.switch_formula.value)));
      CHECK(x.session_mapped.value == Approx(u * 1000 / (u * x.prefill_mapped.value + x.generate_mapped.value + u * x.switch_mapped.value)));
    }
  CHECK_THAT(error_of([] { scenario_from("convention = \"paper\"\n"); }), Catch::Contains("s.toml:4:") && Catch::Contains("einsim, fu2024"));
}
