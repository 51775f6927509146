#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <random>

#include "../workloads/helpers.h"
#include "arch/arch.h"
#include "sim/cost/mapper.h"

using namespace einsim;
using einsim::test::cascade_from;

namespace {

// A FuseMax-like accelerator with the given DRAM bandwidth and buffer capacity.
ArchSpec accel(double dram_gbps, double buffer_kib, int64_t rows = 16, int64_t cols = 16) {
  const std::string text = fmt::format(R"(version = 1
[arch]
name = "acc"
kind = "accelerator"
[arch.tiers.dram]
kind = "hbm"
capacity = "1 TiB"
read_bandwidth = "{0} GB/s"
write_bandwidth = "{0} GB/s"
energy = "3.9 pJ/bit"
[arch.levels.gbuf]
parent = "dram"
capacity = "{1} KiB"
bandwidth = "1000 GB/s"
read_energy = "1 pJ/B"
write_energy = "1 pJ/B"
[arch.arrays.pe]
shape = [{2}, {3}]
clock = "1 GHz"
level = "gbuf"
ops_per_cycle = {{ mac = {{ fp16 = 1 }}, add = {{ fp16 = 1 }}, mul = {{ fp16 = 1 }}, max = {{ fp16 = 1 }}, exp = {{ fp16 = 0.25 }}, div = {{ fp16 = 0.5 }} }}
energy = {{ mac = "1 pJ", add = "0.5 pJ", mul = "1 pJ", max = "0.1 pJ", exp = "4 pJ", div = "2 pJ" }}
)",
                                       dram_gbps, buffer_kib, rows, cols);
  auto d = ConfigDoc::parse(text, "acc.toml");
  ArchSpec a = read_arch(d->root().get_table("arch"));
  d->finish();
  return a;
}

// Random small Einsums of the kinds cascades contain.
Cascade random_einsum(std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 3), ext(0, 5);
  auto e = [&] { return int64_t{1} << ext(rng); };
  const std::string ranks = fmt::format("M = {}\nN = {}\nK = {}\n", e(), e(), e());
  const char* einsums[] = {"\"Z[m,n] = A[m,k] * B[k,n]\"", "\"Z[m,n] = exp(A[m,n] - B[n,m]) / 2\"",
                           "\"Z[n] = max[m] A[m,n] * B[m,n]\"", "\"Z[m,n,k] = A[m,k] + B[k,n]\""};
  return cascade_from("version = 1\n[cascade]\nname = \"r\"\ninputs = [\"A\", \"B\"]\neinsums = [" + std::string(einsums[kind(rng)]) +
                      "]\n[cascade.ranks]\n" + ranks);
}

// Maps `trials` random Einsums on `a` with branch and bound and with plain exhaustive search:
// both must find the same cost, and the bound must have saved work somewhere. When both visit
// mappings in the same order (one on-chip level), ties resolve alike, so the mappings match too.
void check_pruning_is_exact(const ArchSpec& a, uint32_t seed, int trials, bool same_order) {
  std::mt19937 rng(seed);
  MapperOptions plain;
  plain.prune = false;
  int64_t saved = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const Cascade c = random_einsum(rng);
    const MapResult pruned = map_einsum(c, c.einsums[0], a, DType::FP16);
    const MapResult all = map_einsum(c, c.einsums[0], a, DType::FP16, plain);
    INFO(c.einsums[0].text);
    CHECK(pruned.cost.time == all.cost.time);
    if (same_order) CHECK(describe_mapping(c.einsums[0], a, pruned.mapping) == describe_mapping(c.einsums[0], a, all.mapping));
    saved += all.evaluated - pruned.evaluated;
  }
  CHECK(saved > 0);
}

}  // namespace

TEST_CASE("predicted time and energy respect the compute and traffic bounds", "[cost]") {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> bw(1, 1000), buf(1, 64);
  for (int trial = 0; trial < 60; ++trial) {
    const Cascade c = random_einsum(rng);
    const Einsum& e = c.einsums[0];
    const ArchSpec a = accel(bw(rng), buf(rng));
    MapResult r;
    try {
      r = map_einsum(c, e, a, DType::FP16);
    } catch (const UserError&) {
      continue;  // nothing fits the buffer: a located error, not a wrong answer
    }
    INFO(e.text << " on " << a.tiers[0].read_bandwidth << " B/s, " << a.levels[0].capacity << " B buffer");
    const ComputeArray& arr = a.arrays[0];
    CHECK(r.cost.time >= compute_bound(e, arr, DType::FP16) * (1 - 1e-12));
    const double compulsory = compulsory_bytes(c, e);
    CHECK(r.cost.time >= compulsory / a.tiers[0].read_bandwidth * (1 - 1e-9) - 1e-15);
    CHECK(r.cost.traffic[0].read_bytes + r.cost.traffic[0].write_bytes >= compulsory * (1 - 1e-9));
    double op_energy = 0;
    for (const auto& [cl, j] : arr.energy) op_energy += e.ops[cl] * j;
    CHECK(r.cost.energy >= op_energy + compulsory * a.tiers[0].energy * (1 - 1e-9));
    CHECK(r.cost.utilization <= 1 + 1e-9);
  }
}

TEST_CASE("more bandwidth or a bigger buffer never makes the best mapping worse", "[cost]") {
  std::mt19937 rng(777);
  for (int trial = 0; trial < 25; ++trial) {
    const Cascade c = random_einsum(rng);
    const Einsum& e = c.einsums[0];
    double prev = std::numeric_limits<double>::infinity();
    for (double gbps : {5.0, 50.0, 500.0}) {
      const double t = map_einsum(c, e, accel(gbps, 16), DType::FP16).cost.time;
      CHECK(t <= prev * (1 + 1e-12));
      prev = t;
    }
    prev = std::numeric_limits<double>::infinity();
    for (double kib : {4.0, 16.0, 64.0}) {
      const double t = map_einsum(c, e, accel(50, kib), DType::FP16).cost.time;
      CHECK(t <= prev * (1 + 1e-12));
      prev = t;
    }
  }
}

TEST_CASE("branch and bound finds what exhaustive search finds", "[cost]") { check_pruning_is_exact(accel(20, 8), 99, 25, true); }

TEST_CASE("inner-first branch and bound over two on-chip levels finds what exhaustive search finds", "[cost]") {
  // A GPU-like hierarchy: DRAM, a shared L2, and four SMEM-like buffers feeding four arrays.
  auto d = ConfigDoc::parse(R"(version = 1
[arch]
name = "two-level"
kind = "accelerator"
[arch.tiers.dram]
kind = "hbm"
capacity = "1 TiB"
read_bandwidth = "20 GB/s"
write_bandwidth = "20 GB/s"
[arch.levels.l2]
parent = "dram"
capacity = "64 KiB"
bandwidth = "80 GB/s"
[arch.levels.smem]
parent = "l2"
capacity = "4 KiB"
instances = 4
bandwidth = "400 GB/s"
[arch.arrays.pe]
shape = [4]
instances = 4
clock = "1 GHz"
level = "smem"
ops_per_cycle = { mac = { fp16 = 1 }, add = { fp16 = 1 }, mul = { fp16 = 1 }, max = { fp16 = 1 }, exp = { fp16 = 0.25 }, div = { fp16 = 0.5 } }
)", "two.toml");
  const ArchSpec a = read_arch(d->root().get_table("arch"));
  d->finish();
  check_pruning_is_exact(a, 4242, 15, false);
}

TEST_CASE("on a GPU, costing a tile's loop orders only when its order-free bound comes up finds what costing them all finds", "[cost]") {
  const ArchSpec a = load_arch("h100");
  check_pruning_is_exact(a, 2718, 20, false);  // against plain exhaustive search
  MapperOptions eager;
  eager.lazy_orders = false;
  std::mt19937 rng(31415);
  std::vector<Cascade> cs;
  for (int trial = 0; trial < 30; ++trial) cs.push_back(random_einsum(rng));
  cs.push_back(gemm_cascade(64, 7168, 2048));  // decode-shaped and prefill-shaped GEMMs
  cs.push_back(gemm_cascade(4096, 4096, 4096));
  for (const Cascade& c : cs) {
    const MapResult lazy = map_einsum(c, c.einsums[0], a, DType::BF16);
    const MapResult all = map_einsum(c, c.einsums[0], a, DType::BF16, eager);
    INFO(c.einsums[0].text);
    // The same candidates completed in the same order: the same mapping, bit for bit.
    CHECK(lazy.cost.time == all.cost.time);
    CHECK(lazy.evaluated == all.evaluated);
    CHECK(describe_mapping(c.einsums[0], a, lazy.mapping) == describe_mapping(c.einsums[0], a, all.mapping));
  }
}

TEST_CASE("a large GEMM on the FuseMax preset is compute-bound at full utilization", "[cost]") {
  const Cascade c = gemm_cascade(2048, 2048, 2048);
  const ArchSpec a = load_arch("fusemax");
  const MapResult r = map_einsum(c, c.einsums[0], a, DType::FP16);
  CHECK(r.cost.bottleneck == "compute (pe2d)");
  CHECK(r.cost.utilization > 0.95);
  // 2048^3 MACs on 65536 PEs at 940 MHz.
  CHECK(r.cost.compute == Approx(2048.0 * 2048 * 2048 / 65536 / 940e6).epsilon(0.01));
  CHECK_THAT(describe_mapping(c.einsums[0], a, r.mapping), Catch::StartsWith("on pe2d (1 x 256x256 PEs); gbuf tile"));
}

TEST_CASE("a tile narrower than a spatial array leaves its PEs idle", "[cost]") {
  // 16 rows on a 256x256 array: each step holds a 16x256 tile, so 1/16 of the PEs work.
  // 16 x 4096 x 64 MACs in steps of 16 x 256 points: 16 x 64 = 1024 steps of one cycle.
  const Cascade c = gemm_cascade(16, 4096, 64);
  const ArchSpec a = load_arch("fusemax");
  const MapResult r = map_einsum(c, c.einsums[0], a, DType::FP16);
  CHECK(r.cost.compute == Approx(1024 / 940e6).epsilon(1e-9));
  CHECK(r.cost.utilization < 1.0 / 16);
  // Bound to the 1D array by the caller: 256 PEs, 16 x 4096 x 64 / 256 = 16384 cycles.
  MapperOptions on1d;
  on1d.array = static_cast<int>(a.array("pe1d") - a.arrays.data());
  const MapResult d = map_einsum(c, c.einsums[0], a, DType::FP16, on1d);
  CHECK(a.arrays[static_cast<size_t>(d.mapping.array)].name == "pe1d");
  CHECK(d.cost.compute == Approx(16384 / 940e6).epsilon(1e-9));
}

TEST_CASE("binding an Einsum to an array that cannot run it is a located error", "[cost][errors]") {
  const Cascade c = cascade_from("version = 1\n[cascade]\nname = \"x\"\ninputs = [\"A\"]\neinsums = [\"Z[m] = exp(A[m])\"]\n[cascade.ranks]\nM = 4\n");
  MapperOptions on2d;
  const ArchSpec flat = load_arch("flat");
  on2d.array = static_cast<int>(flat.array("pe2d") - flat.arrays.data());  // FLAT's 2D array has no exp
  CHECK_THAT(einsim::test::error_of([&] { map_einsum(c, c.einsums[0], load_arch("flat"), DType::FP16, on2d); }),
             Catch::Contains("c.toml:5:13: error: array 'pe2d' of 'FLAT' cannot run every operation of this Einsum at fp16"));
  on2d.array = 7;
  CHECK_THAT(einsim::test::error_of([&] { map_einsum(c, c.einsums[0], load_arch("flat"), DType::FP16, on2d); }),
             Catch::Contains("array '7' of 'FLAT' cannot run"));
}

TEST_CASE("an Einsum no array can run is a located error", "[cost][errors]") {
  const Cascade c = cascade_from("version = 1\n[cascade]\nname = \"x\"\ninputs = [\"A\"]\neinsums = [\"Z[m] = exp(A[m])\"]\n[cascade.ranks]\nM = 4\n");
  CHECK_THAT(einsim::test::error_of([&] { map_einsum(c, c.einsums[0], load_arch("flat"), DType::BF16); }),
             Catch::Contains("c.toml:5:13: error: no array of 'FLAT' runs all of exp at bf16"));
  CHECK_THAT(einsim::test::error_of([&] { map_einsum(c, c.einsums[0], accel(10, 0.001), DType::FP16); }),
             Catch::Contains("no mapping of this Einsum fits the buffers of 'acc'"));
}

TEST_CASE("on a 4096^3 GEMM the default space is within 5% of a much larger one", "[cost]") {
  const Cascade c = gemm_cascade(4096, 4096, 4096);
  // Multiples of 256 as well as powers of two: 12x (FuseMax) to 20x (H100) more mappings.
  // (Multiples of 64, 350x and 840x more, also find the same optimum; too slow for a test.)
  MapperOptions dense;
  dense.granule = 256;
  dense.max_tiles = 0;  // every combination
  for (const auto& [preset, dt] : {std::pair{"fusemax", DType::FP16}, std::pair{"h100", DType::BF16}}) {
    const ArchSpec a = load_arch(preset);
    const MapResult fast = map_einsum(c, c.einsums[0], a, dt);
    const MapResult slow = map_einsum(c, c.einsums[0], a, dt, dense);
    INFO(preset);
    CHECK(slow.evaluated > 10 * fast.evaluated);
    CHECK(fast.cost.time <= 1.05 * slow.cost.time);
  }
}
