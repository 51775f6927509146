#include <catch2/catch.hpp>

#include "../workloads/helpers.h"
#include "arch/collective.h"
#include "sim/analyze/offload.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

OffloadScenario scenario_from(const std::string& body) { return test::scenario_from("kind = \"offload\"\n", body, read_offload); }

}  // namespace

TEST_CASE("offload: closed-form traffic, link, cost and the pipelined throughput", "[analyze]") {
  const OffloadReport r = analyze_offload(scenario_from("batches = [16, 128]\ncontexts = [\"4K\"]\nactivation_reserve = \"2 GiB\"\n"));
  REQUIRE(r.rows.size() == 2);
  // 400 Gb/s NICs: 4 H100s against 8 H20s, the smaller side bounds: 4 x 50 GB/s.
  CHECK(r.rows[0].link == 4 * 50e9);
  CHECK(r.compute_rate == Approx(11.06 / 3600));
  CHECK(r.memory_rate == Approx(4.63 / 3600));
  for (const OffloadRow& x : r.rows) {
    INFO("batch " << x.batch);
    REQUIRE(x.note.empty());
    // LLaMA3-70B: per layer (2 + 2/8) x 2 bytes x 8192 x batch, 80 layers.
    CHECK(x.net_bytes == Approx(2.25 * 2 * 8192 * static_cast<double>(x.batch) * 80));
    CHECK(x.bw_min == Approx(x.net_bytes / (0.2 * (x.mtime + x.atime))));
    CHECK(x.cost_rate == Approx((4 * 11.06 + 8 * 4.63) / 3600));
    const double b = static_cast<double>(x.batch);
    // Two batches in flight, both caches on the memory pool.
    CHECK(x.kv_bytes == Approx(2 * b * 4097 * r.kv_per_token));
    // The link: busy for the bytes over 200 GB/s; each batch's 160 transfers per step (out and
    // back, 80 layers) pay the NIC's point-to-point base and latency over 4 NICs in parallel.
    CHECK(x.net_busy == Approx(x.net_bytes / 200e9));
    // (The default runtime replays graphs: NCCL's fitted base scaled by its collective_base.)
    const ArchSpec h100 = load_arch("h100");
    const Link& nic = *network_link(h100);
    const double base = default_runtime().collective_base;
    CHECK(x.net_latency == Approx(160 * collective_cost(nic, Collective::SendRecv, 2, 0, base).time));
    CHECK(x.net_latency >= 160 * nic.latency);
    CHECK(x.net_time == Approx(80 * (collective_cost(nic, Collective::SendRecv, 2, 1.25 * 2 * 8192 * b / 4, base).time +
                                     collective_cost(nic, Collective::SendRecv, 2, 2 * 8192 * b / 4, base).time)));
    CHECK(x.net_time > x.net_latency);
    CHECK(x.cycle == Approx(x.mtime + x.atime + x.net_time));
    CHECK(x.tokens_per_s == Approx(std::min({b / x.mtime, b / x.atime, b / x.net_busy, 2 * b / x.cycle})));
    // BW_min per device: the four compute devices' NICs carry it (the smaller side).
    CHECK(x.bw_min_device == Approx(x.bw_min / 4));
    CHECK(x.link_device == 50e9);
    // First-order floors: a compute replica reads all the weights each step, the memory pool
    // the whole cache.
    CHECK(x.mtime >= r.weights / (4 * 3.35e12));
    CHECK(x.atime >= b * 4097 * r.kv_per_token / (8 * 4.0e12));
    CHECK(x.advantage == Approx((x.tokens_per_s / x.cost_rate) / (x.base_tokens_per_s / x.base_cost_rate)));
  }
  // The homogeneous deployment runs out of HBM first: 126 requests of 4K beside the weights.
  CHECK(r.rows[1].base_batch == 126);
  CHECK(r.rows[1].advantage > r.rows[0].advantage);
}

TEST_CASE("offload: the report names the crossover and where the link binds", "[analyze]") {
  const std::string out = format_offload(analyze_offload(scenario_from("batches = [16, 256]\ncontexts = [\"4K\"]\nalpha = 0.001\n")), Format::Table);
  CHECK_THAT(out, Catch::Contains("context 4K: offloading wins per dollar from batch 256"));
  CHECK_THAT(out, Catch::Contains("the link binds (or needs more than it has at alpha 0.001) from batch 16"));
  const OffloadReport big = analyze_offload(scenario_from("batches = [4096]\ncontexts = [\"16K\"]\n"));
  CHECK_FALSE(big.rows[0].fits);
  CHECK_THAT(big.rows[0].note, Catch::Contains("do not fit 8 x H20"));
  // The shipped row at 4K and batch 512: one batch's cache (640 GiB) would fit 8 H20s (768 GB),
  // the two batches in flight (1.37 TB) do not.
  const OffloadReport shipped = analyze_offload(scenario_from("batches = [512]\ncontexts = [\"4K\"]\nactivation_reserve = \"2 GiB\"\n"));
  CHECK(shipped.rows[0].kv_bytes == Approx(1.374e12).epsilon(0.001));
  CHECK_FALSE(shipped.rows[0].fits);
}

TEST_CASE("offload: bad scenarios are located errors", "[analyze][errors]") {
  CHECK_THAT(error_of([] { scenario_from("batches = [0]\n"); }), Catch::Contains("s.toml:4:12: error: 'scenario.batches' entries must be in [1, 1048576]"));
  CHECK_THAT(error_of([] { scenario_from("alpha = 0\n"); }), Catch::Contains("s.toml:4:9: error:"));
  CHECK_THAT(error_of([] { scenario_from("replica = 2\n"); }), Catch::Contains("unknown key 'replica'") && Catch::Contains("did you mean 'replicas'"));
  CHECK_THAT(error_of([] { analyze_offload(scenario_from("compute_devices = 1\n")); }), Catch::Contains("do not fit 1 x H100"));
  CHECK_THAT(error_of([] { analyze_offload(scenario_from("memory = \"mi300x\"\n")); }), Catch::Contains("has no network link"));
  CHECK_THAT(error_of([] { analyze_offload(scenario_from("compute = \"fusemax\"\n")); }), Catch::Contains("FuseMax"));
  CHECK_THAT(error_of([] { analyze_offload(scenario_from("model = \"bert-base\"\n")); }), Catch::Contains("is an encoder"));
}
