#include <catch2/catch.hpp>

#include <tuple>

#include "../workloads/helpers.h"
#include "arch/arch.h"
#include "arch/collective.h"

using namespace einsim;
using einsim::test::error_of;

namespace {
ArchSpec arch_from(const std::string& body) {
  auto d = ConfigDoc::parse("version = 1\n" + body, "a.toml");
  ArchSpec a = read_arch(d->root().get_table("arch"));
  d->finish();
  return a;
}
const std::string kTier = "[arch.tiers.hbm]\nkind = \"hbm\"\ncapacity = \"1 GiB\"\nread_bandwidth = \"1 TB/s\"\nwrite_bandwidth = \"1 TB/s\"\n";
const std::string kArray = "[arch.arrays.pe]\nshape = [4, 4]\nclock = \"1 GHz\"\nlevel = \"hbm\"\nops_per_cycle = { mac = { fp16 = 1 } }\n";
const std::string kHead = "[arch]\nname = \"t\"\nkind = \"accelerator\"\n";
}  // namespace

TEST_CASE("derived peaks equal the datasheet peaks within 1%", "[arch]") {
  struct Peak {
    const char* preset;
    const char* array;
    DType type;
    double flops;
  };
  // docs/REFERENCES.md datasheet table; non-tensor peaks from the NVIDIA whitepapers.
  const std::vector<Peak> peaks = {
      {"a100", "tensor", DType::BF16, 312e12},    {"a100", "vector", DType::FP32, 19.5e12},
      {"a100", "vector", DType::FP16, 78e12},     {"h100", "tensor", DType::BF16, 989.4e12},
      {"h100", "tensor", DType::FP8, 1978.9e12},  {"h100", "vector", DType::FP32, 66.9e12},
      {"h100", "vector", DType::BF16, 133.8e12},  {"h200", "tensor", DType::BF16, 989.4e12},
      {"h200", "tensor", DType::FP8, 1978.9e12},  {"h20", "tensor", DType::BF16, 148e12},
      // H20 (both types) and L40S BF16 take their per-core rates from these very peaks (no clock
      // or per-core figure is published), so those rows only check the presets' arithmetic.
      {"h20", "tensor", DType::FP8, 296e12},      {"l40s", "tensor", DType::BF16, 362e12},
      {"l40s", "tensor", DType::FP8, 733e12},
      // B200 (docs/REFERENCES.md, Blackwell B200): dense BF16 2250 and FP8 4500 TFLOPS, 75 TFLOPS FP32
      // and 150 TFLOPS BF16 without tensor cores.
      {"b200", "tensor", DType::BF16, 2250e12},   {"b200", "tensor", DType::FP8, 4500e12},
      {"b200", "tensor", DType::INT8, 4500e12},   {"b200", "vector", DType::FP32, 75.0e12},
      {"b200", "vector", DType::BF16, 150.0e12},
      // GB200 NVL72 (docs/REFERENCES.md): 2.5 PFLOPS BF16 and 5 PFLOPS FP8 dense per GPU.
      {"gb200", "tensor", DType::BF16, 2.5e15},   {"gb200", "tensor", DType::FP8, 5.0e15},
      // MI300X (docs/REFERENCES.md, AMD Instinct MI300X): dense BF16 1307.4 and FP8 2614.9 TFLOPS,
      // derived FP32 vector 81.7 TFLOPS.
      {"mi300x", "tensor", DType::BF16, 1307.4e12}, {"mi300x", "tensor", DType::FP8, 2614.9e12},
      {"mi300x", "vector", DType::FP32, 81.7e12}, {"mi325x", "tensor", DType::BF16, 1307.4e12},
      {"mi325x", "tensor", DType::FP8, 2614.9e12},  {"mi355x", "tensor", DType::FP8, 5.0e15},
      {"mi355x", "tensor", DType::BF16, 2.5e15},
      // RTX 4090 (docs/REFERENCES.md): dense FP32-accumulate tensor peaks and 82.6 TFLOPS FP32.
      {"rtx4090", "tensor", DType::BF16, 165.2e12}, {"rtx4090", "tensor", DType::FP8, 330.3e12},
      {"rtx4090", "tensor", DType::INT8, 660.6e12}, {"rtx4090", "vector", DType::FP32, 82.6e12},
      // RTX 5090 (docs/REFERENCES.md): half the sparse FP16-accumulate peaks, halved again for
      // FP32 accumulation; 104.8 TFLOPS FP32.
      {"rtx5090", "tensor", DType::BF16, 209.6e12}, {"rtx5090", "tensor", DType::FP8, 419.2e12},
      {"rtx5090", "tensor", DType::INT8, 838.4e12}, {"rtx5090", "vector", DType::FP32, 104.8e12},
      // TPU v5e (docs/REFERENCES.md): 197 TFLOPS bf16, 393 TOPS int8 from four 128 x 128 MXUs.
      {"tpu-v5e", "mxu", DType::BF16, 197e12},      {"tpu-v5e", "mxu", DType::INT8, 393e12},
      // Gaudi 3 (docs/REFERENCES.md, Intel at Hot Chips 2024): 1835 TFLOPS BF16 and FP8 matrix,
      // 28.7 TFLOPS BF16 vector.
      {"gaudi3", "mme", DType::BF16, 1835e12},      {"gaudi3", "mme", DType::FP8, 1835e12},
      {"gaudi3", "tpc", DType::BF16, 28.7e12},
      // TPU v5p (docs/REFERENCES.md): 459 TFLOPS bf16 and fp8 from eight 128 x 128 MXUs.
      {"tpu-v5p", "mxu", DType::BF16, 459e12},      {"tpu-v5p", "mxu", DType::FP8, 459e12},
      // Block-scaled formats (docs/REFERENCES.md): B200 FP8/FP6 4.5 and FP4 9 PFLOPS dense; GB200
      // FP4 10; MI355X MXFP4/MXFP6 10 (half the 20.1 with sparsity), MXFP8 at FP8's 5; RTX 5090
      // FP4 1676 TOPS dense.
      {"b200", "tensor", DType::MXFP8, 4500e12},    {"b200", "tensor", DType::MXFP6, 4500e12},
      {"b200", "tensor", DType::NVFP4, 9000e12},    {"b200", "tensor", DType::MXFP4, 9000e12},
      {"gb200", "tensor", DType::NVFP4, 10e15},     {"mi355x", "tensor", DType::MXFP4, 10.05e15},
      {"mi355x", "tensor", DType::MXFP6, 10.05e15}, {"mi355x", "tensor", DType::MXFP8, 5.0e15},
      {"rtx5090", "tensor", DType::NVFP4, 1676e12}, {"rtx5090", "tensor", DType::MXFP8, 419.2e12},
      // B300 (HGX B300 table): BF16 2250, FP8/FP6 4500, FP4 13125 TFLOPS dense.
      {"b300", "tensor", DType::BF16, 2250e12},     {"b300", "tensor", DType::FP8, 4500e12},
      {"b300", "tensor", DType::MXFP6, 4500e12},    {"b300", "tensor", DType::NVFP4, 13125e12},
      {"b300", "tensor", DType::MXFP4, 13125e12},
      // TPU v6e (docs/REFERENCES.md): 918 TFLOPS bf16, 1836 TOPS int8 from two 256 x 256 MXUs.
      {"tpu-v6e", "mxu", DType::BF16, 918e12},      {"tpu-v6e", "mxu", DType::INT8, 1836e12},
      // FuseMax: 256 x 256 MACs at 940 MHz.
      {"fusemax", "pe2d", DType::FP16, 2.0 * 65536 * 940e6}, {"flat", "pe1d", DType::FP16, 2.0 * 256 * 940e6},
  };
  for (const Peak& p : peaks) {
    const ArchSpec a = load_arch(p.preset);
    INFO(p.preset << " " << p.array << " " << dtype_name(p.type));
    REQUIRE(a.array(p.array) != nullptr);
    CHECK(a.array(p.array)->peak_flops(p.type) == Approx(p.flops).epsilon(0.01));
  }
  // Memory, power, core counts and links carried through from the datasheets
  // (docs/REFERENCES.md); 0 where a row does not check that figure.
  struct Memory {
    const char* preset;
    const char* tier;
    double bandwidth, capacity, tdp;
  };
  const std::vector<Memory> memories = {
      {"h200", "hbm", 4.8e12, 141e9, 0},        {"h20", "hbm", 0, 96e9, 0},
      {"b200", "hbm", 8e12, 180e9, 1000},       {"mi300x", "hbm", 5.3e12, 192e9, 750},
      {"mi325x", "hbm", 6e12, 256e9, 1000},     {"mi355x", "hbm", 8e12, 288e9, 1400},
      {"rtx4090", "gddr", 1008e9, 24e9, 450},   {"gh200", "hbm", 4e12, 96e9, 0},
      {"gh200", "lpddr5x", 0, 480e9, 0},        {"tpu-v5e", "hbm", 819e9, 16e9, 0},
      {"gb200", "hbm", 8e12, 186e9, 1200},      {"gb200", "lpddr5x", 256e9, 240e9, 0},
      {"rtx5090", "gddr", 1792e9, 32e9, 575},   {"gaudi3", "hbm", 3.67e12, 128e9, 900},
      {"tpu-v5p", "hbm", 2765e9, 95e9, 0},      {"b300", "hbm", 8e12, 288e9, 1400},
      {"tpu-v6e", "hbm", 1638e9, 32e9, 0},
  };
  for (const Memory& m : memories) {
    const ArchSpec a = load_arch(m.preset);
    INFO(m.preset << " " << m.tier);
    REQUIRE(a.tier(m.tier) != nullptr);
    if (m.bandwidth > 0) CHECK(a.tier(m.tier)->read_bandwidth == Approx(m.bandwidth));
    CHECK(a.tier(m.tier)->capacity == Approx(m.capacity));
    if (m.tdp > 0) CHECK(a.power.tdp == Approx(m.tdp));
  }
  struct Cores {
    const char* preset;
    const char* array;
    int instances;
  };
  for (const Cores& c : std::vector<Cores>{{"h200", "tensor", 132}, {"b200", "tensor", 148}, {"mi300x", "tensor", 304},
                                           {"mi355x", "tensor", 256}, {"tpu-v5e", "mxu", 4}}) {
    INFO(c.preset);
    CHECK(load_arch(c.preset).array(c.array)->instances == c.instances);
  }
  struct Peer {
    const char* preset;
    const char* link;
    const char* kind;
    double bandwidth;  ///< per direction
  };
  // MI300X peers over Infinity Fabric, not NVLink; the RTX 4090 has no NVLink (peers over PCIe).
  for (const Peer& p : std::vector<Peer>{{"b200", "nvlink", "nvlink", 900e9}, {"gb200", "nvlink", "nvlink", 900e9},
                                         {"gb200", "c2c", "nvlink-c2c", 225e9}, {"mi300x", "xgmi", "xgmi", 0},
                                         {"gaudi3", "roce-scale-up", "roce", 525e9}, {"gaudi3", "roce-scale-out", "roce", 75e9},
                                         {"tpu-v5p", "ici", "ici", 600e9}, {"tpu-v6e", "ici", "ici", 400e9},
                                         {"b300", "nic", "infiniband", 100e9},
                                         {"rtx4090", "pcie-peer", "pcie", 0}, {"tpu-v5e", "ici", "ici", 200e9}}) {
    INFO(p.preset << " " << p.link);
    const ArchSpec a = load_arch(p.preset);
    REQUIRE(a.link(p.link) != nullptr);
    CHECK(link_kind_name(a.link(p.link)->kind) == p.kind);
    if (p.bandwidth > 0) CHECK(a.link(p.link)->bandwidth == Approx(p.bandwidth));
  }
  CHECK(load_arch("mi355x").level("lds")->capacity == 160.0 * 1024);
  // Link energy (docs/REFERENCES.md): 5.5 pJ/bit per SerDes link on the path, NVLink-C2C 1.3.
  for (const auto& [preset, link, pj] : std::vector<std::tuple<const char*, const char*, double>>{
           {"h100", "nvlink", 11}, {"h100", "pcie", 5.5}, {"h100", "nic", 22}, {"gh200", "c2c", 1.3}, {"mi300x", "xgmi", 5.5},
           {"l40s", "pcie-peer", 11}, {"gaudi3", "roce-scale-out", 11}, {"b300", "nvlink", 11}}) {
    INFO(preset << " " << link);
    CHECK(load_arch(preset).link(link)->energy == Approx(pj * 1e-12 * 8));  // J/B
  }
  CHECK(load_arch("tpu-v5e").link("ici")->energy == 0);  // no power figures: no energy reported
  // Scale-up domains (docs/REFERENCES.md): HGX/DGX boards of 8, the NVL72 rack, a v5e pod.
  for (const auto& [preset, devices] : std::vector<std::pair<const char*, int64_t>>{
           {"a100", 8}, {"h100", 8}, {"b200", 8}, {"gb200", 72}, {"gh200", 256}, {"mi300x", 8}, {"tpu-v5e", 256}, {"tpu-v5p", 6144}, {"tpu-v6e", 256},
           {"gaudi3", 8}, {"b300", 8}}) {
    INFO(preset);
    CHECK(fabric(load_arch(preset)).domain() == devices);
  }
  CHECK(load_arch("rtx4090").level("l2")->capacity == Approx(72e6));
  // GH200: the H100's compute, and Grace's LPDDR5X behind NVLink-C2C as the only host path
  // (no PCIe host link left over from the H100).
  const ArchSpec gh200 = load_arch("gh200");
  CHECK(gh200.array("tensor")->peak_flops(DType::BF16) == load_arch("h100").array("tensor")->peak_flops(DType::BF16));
  int host_links = 0;
  for (const Link& l : gh200.links)
    if (l.to == "host") {
      ++host_links;
      CHECK(link_kind_name(l.kind) == "nvlink-c2c");
      CHECK(l.bandwidth == Approx(450e9));
    }
  CHECK(host_links == 1);
  CHECK(load_arch("fusemax").tier("dram")->read_bandwidth == Approx(400.0 * 1073741824.0));
  CHECK(load_arch("fusemax").tier("dram")->energy == Approx(3.9e-12 * 8));
  CHECK(load_arch("flat").level("gbuf")->capacity == 32.0 * 1048576);
  CHECK(load_arch("flat").array("pe2d")->peak_ops(OpClass::Exp, DType::FP16) == 0);
  CHECK(load_arch("h100").cost.rate.value() == Approx(11.06 / 3600));
}

TEST_CASE("GPU presets' per-operation energies follow their stated formula", "[arch]") {
  // The presets' headers: no per-operation energies are published for these GPUs; a unit at
  // its achievable rate draws the TDP, so energy per operation = (TDP - active) / (MAC
  // efficiency x peak operations/s), the vector array's exp and unary at FuseMax's exp / MAC
  // ratio and its divide at divide / MAC (docs/REFERENCES.md: 94.65, 36.25 and 17.16 pJ).
  // Checked here so that a recalibration of efficiency or power cannot leave them stale; the
  // values are written to four digits.
  const double exp_ratio = 94.65 / 17.16, div_ratio = 36.25 / 17.16;
  for (const char* preset : {"a100", "h100", "h200", "l40s", "b200", "b300", "gb200", "mi300x", "mi325x", "mi355x", "rtx4090", "rtx5090"}) {
    INFO(preset);
    const ArchSpec a = load_arch(preset);
    const double budget = a.power.tdp - a.power.active, eff = a.gpu->efficiency.at(OpClass::Mac);
    const ComputeArray& tensor = *a.array("tensor");
    const ComputeArray& vector = *a.array("vector");
    CHECK(tensor.energy.at(OpClass::Mac) == Approx(budget / (eff * tensor.peak_ops(OpClass::Mac, DType::BF16))).epsilon(0.003));
    const double fma = budget / (eff * vector.peak_ops(OpClass::Mac, DType::BF16));
    for (OpClass c : {OpClass::Mac, OpClass::Mul, OpClass::Add, OpClass::Max}) CHECK(vector.energy.at(c) == Approx(fma).epsilon(0.003));
    CHECK(vector.energy.at(OpClass::Exp) == Approx(fma * exp_ratio).epsilon(0.003));
    CHECK(vector.energy.at(OpClass::Unary) == Approx(fma * exp_ratio).epsilon(0.003));
    CHECK(vector.energy.at(OpClass::Div) == Approx(fma * div_ratio).epsilon(0.003));
  }
  // The H20 states another rule: the H100's energies (the same die and HBM3).
  const ArchSpec h20 = load_arch("h20"), h100 = load_arch("h100");
  for (const char* array : {"tensor", "vector"}) CHECK(h20.array(array)->energy == h100.array(array)->energy);
  CHECK(h20.tier("hbm")->energy == h100.tier("hbm")->energy);
}

TEST_CASE("a minimal accelerator reads", "[arch]") {
  const ArchSpec a = arch_from(kHead + kTier + kArray);
  CHECK(a.arrays[0].pes() == 16);
  CHECK(a.peak_flops(DType::FP16) == Approx(32e9));
}

TEST_CASE("flash read bandwidth interpolates in request size at the measured queue depth", "[arch]") {
  const ArchSpec a = arch_from(kHead + kArray +
                               "[arch.tiers.hbm]\nkind = \"flash\"\ncapacity = \"1 TB\"\nread_bandwidth = \"6 GB/s\"\n"
                               "write_bandwidth = \"3 GB/s\"\nread_table = [\n"
                               "  { request = \"4 KiB\", queue_depth = 1, bandwidth = \"0.1 GB/s\" },\n"
                               "  { request = \"64 KiB\", queue_depth = 1, bandwidth = \"0.9 GB/s\" },\n"
                               "  { request = \"4 KiB\", queue_depth = 32, bandwidth = \"1 GB/s\" },\n"
                               "  { request = \"1 MiB\", queue_depth = 32, bandwidth = \"6 GB/s\" },\n]\n");
  const MemoryTier& f = a.tiers[0];
  CHECK(f.read_bandwidth_at(4096, 1) == Approx(0.1e9));
  CHECK(f.read_bandwidth_at(16384, 1) == Approx(0.5e9));  // halfway in log2 between 4 and 64 KiB
  CHECK(f.read_bandwidth_at(1 << 20, 1) == Approx(0.9e9));
  CHECK(f.read_bandwidth_at(1 << 20, 64) == Approx(6e9));
  CHECK(f.read_bandwidth_at(2048, 32) == Approx(0.5e9));   // below the table: latency-bound, linear
}

TEST_CASE("torus domains: sub-tori as square as the dimensions allow, rings per dimension", "[arch][collective]") {
  const ArchSpec v5e = load_arch("tpu-v5e");
  const Link& ici = *peer_link(v5e);
  // Google's v5e slice shapes: 2x2, 2x4, 4x4, 4x8, 8x8, 8x16, 16x16.
  CHECK(ici.group_shape(4) == std::vector<int64_t>{2, 2});
  CHECK(ici.group_shape(8) == std::vector<int64_t>{2, 4});
  CHECK(ici.group_shape(32) == std::vector<int64_t>{4, 8});
  CHECK(ici.group_shape(256) == std::vector<int64_t>{16, 16});
  CHECK(ici.group_shape(12) == std::vector<int64_t>{3, 4});
  CHECK(ici.group_shape(17).empty());  // a prime above both dimensions
  CHECK(load_arch("tpu-v5p").link("ici")->group_shape(6144) == std::vector<int64_t>{16, 16, 24});
  CHECK(load_arch("h100").link("nvlink")->group_shape(8) == std::vector<int64_t>{8});  // switched
  // The whole pod's all-reduce reaches the link's bandwidth per chip (Google's all-reduce
  // bandwidth per pod: 51.2 TB/s = 256 x 200 GB/s), with 2 x (15 + 15) steps, not 2 x 255.
  const double s = 1e9;
  Link plain = ici;
  plain.torus.clear();
  const CollectiveCost pod = collective_cost(ici, Collective::AllReduce, 256, s);
  CHECK(pod.time == Approx(2 * 30 * ici.latency + 2.0 * 255 / 256 * s / ici.bandwidth));
  CHECK(pod.bytes == Approx(2.0 * 255 / 256 * s));
  // Two chips span one dimension: half the ports, so half the bandwidth of a switched pair.
  const CollectiveCost two = collective_cost(ici, Collective::AllReduce, 2, s), two_switched = collective_cost(plain, Collective::AllReduce, 2, s);
  CHECK(two.time - 2 * ici.latency == Approx(2 * (two_switched.time - 2 * plain.latency)));
  // 2x2 spans both: the switched figure.
  CHECK(collective_cost(ici, Collective::AllReduce, 4, s).time == Approx(collective_cost(plain, Collective::AllReduce, 4, s).time));
  // An all-to-all of 4x4 crosses each dimension's mean ring distance (4/3 on a ring of 4).
  const CollectiveCost a2a = collective_cost(ici, Collective::AllToAll, 16, s);
  CHECK(a2a.bytes == Approx(15.0 / 16 * s * 8 / 3));
  CHECK(a2a.time == Approx(6 * ici.latency + 15.0 / 16 * s * 8 / 3 / ici.bandwidth));
  // Send/recv over one port of four.
  CHECK(collective_cost(ici, Collective::SendRecv, 2, s).time == Approx(ici.latency + s / (ici.bandwidth / 4)));
  // A 2:1 oversubscribed network slows an all-to-all's traffic between domains, not the
  // rail-aligned all-reduce.
  ArchSpec h100 = load_arch("h100");
  const CollectiveCost a2a_flat = collective_cost(fabric(h100), Collective::AllToAll, 16, s);
  const CollectiveCost ar_flat = collective_cost(fabric(h100), Collective::AllReduce, 16, s);
  for (Link& l : h100.links)
    if (l.to == "network") l.oversubscription = 2;
  const Link& nic = *network_link(h100);
  const double out_bytes = 8.0 / 16 * s, eff = nic.collective[static_cast<size_t>(CollectiveAlgo::P2P)].efficiency;
  CHECK(collective_cost(fabric(h100), Collective::AllToAll, 16, s).time - a2a_flat.time == Approx(out_bytes / (eff * nic.bandwidth)));
  CHECK(collective_cost(fabric(h100), Collective::AllReduce, 16, s).time == ar_flat.time);
  // A group that no sub-torus holds is refused where it is formed.
  CHECK_THAT(fabric(v5e).unusable(17), Catch::Contains("17 devices do not form a sub-torus of 'ici' (torus = [16, 16])"));
  CHECK(fabric(v5e).unusable(16).empty());
}

TEST_CASE("architecture errors are located", "[arch][errors]") {
  CHECK_THAT(error_of([] { load_arch("h10"); }), Catch::Contains("h10: error: no such file, and no shipped architecture of that name (closest: h100"));
  CHECK(error_of([&] { arch_from(kHead + kArray); }) == "a.toml:2:1: error: missing required table [arch.tiers]");
  CHECK(error_of([&] { arch_from(kHead + kTier); }) == "a.toml:2:1: error: a GPU or accelerator needs at least one compute array");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.levels.l2]\nparent = \"hmb\"\ncapacity = \"1 MiB\"\nbandwidth = \"1 TB/s\"\n" + kArray); }) ==
        "a.toml:10:1: error: level 'l2' has parent 'hmb', which is neither a tier nor a level");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.levels.a]\nparent = \"b\"\ncapacity = \"1 MiB\"\nbandwidth = \"1 TB/s\"\n"
                                 "[arch.levels.b]\nparent = \"a\"\ncapacity = \"1 MiB\"\nbandwidth = \"1 TB/s\"\n" + kArray); }) ==
        "a.toml:10:1: error: levels above 'a' form a cycle");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [4, 4]\nclock = \"1 GHz\"\nlevel = \"gbuf\"\nops_per_cycle = { mac = { fp16 = 1 } }\n"); }) ==
        "a.toml:10:1: error: array 'pe' is fed by 'gbuf', which is neither a level nor a tier");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [4, 4, 4]\n"); }) ==
        "a.toml:11:9: error: 'shape' must be [rows, cols] (2D array) or [pes] (1D array)");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [0]\n"); }) ==
        "a.toml:11:9: error: 'shape' entries must be integers in [1, 2^20]");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [4]\nclock = \"1 GHz\"\nlevel = \"hbm\"\nops_per_cycle = { fma = { fp16 = 1 } }\n"); }) ==
        "a.toml:14:19: error: unknown operation class 'fma' (known: mac, mul, add, max, exp, div, unary)");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [4]\nclock = \"1 GHz\"\nlevel = \"hbm\"\nops_per_cycle = { mac = { fp12 = 1 } }\n"); }) ==
        "a.toml:14:27: error: unknown element type 'fp12' (known: fp32, fp16, bf16, fp8, int8, int4, int32, mxfp8, mxfp6, mxfp4, nvfp4)");
  CHECK(error_of([&] { arch_from(kHead + kTier + "[arch.arrays.pe]\nshape = [4]\nclock = \"1 GB\"\n"); }) ==
        "a.toml:12:9: error: 'arch.arrays.pe.clock' is size but must be a frequency (e.g. \"1.83 GHz\")");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.links.x]\nkind = \"pcie\"\nfrom = \"hbm\"\nto = \"hots\"\nbandwidth = \"1 GB/s\"\n"); }) ==
        "a.toml:15:1: error: link 'x' joins 'hots', which is neither a tier nor one of host, peer, network");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.links.hbm]\nkind = \"pcie\"\nfrom = \"hbm\"\nto = \"host\"\nbandwidth = \"1 GB/s\"\n"); }) ==
        "a.toml:15:1: error: 'hbm' names two parts of this architecture");
  const std::string peer = "[arch.links.nv]\nkind = \"nvlink\"\nfrom = \"hbm\"\nto = \"peer\"\nbandwidth = \"1 GB/s\"\n";
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "collective = { butterfly = { base = \"1 us\" } }\n"); }) ==
        "a.toml:20:16: error: unknown collective algorithm 'butterfly' (known: ring, tree, sharp, p2p)");
  CHECK(arch_from(kHead + kTier + kArray + peer + "domain = 72\n").links[0].domain == 72);
  CHECK(arch_from(kHead + kTier + kArray + peer).links[0].domain == 8);  // the documented default
  CHECK_THAT(error_of([&] { arch_from(kHead + kTier + kArray + peer + "domain = 0\n"); }), Catch::StartsWith("a.toml:20:10: error:"));
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray +
                                 "[arch.links.nic]\nkind = \"infiniband\"\nfrom = \"hbm\"\nto = \"network\"\nbandwidth = \"1 GB/s\"\ndomain = 8\n"); }) ==
        "a.toml:20:10: error: 'domain' (devices per scale-up domain) is for links to = \"peer\"");
  // A torus domain: its dimensions give the domain; they must agree with one given.
  CHECK(arch_from(kHead + kTier + kArray + peer + "torus = [4, 4]\n").links[0].domain == 16);
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "domain = 8\ntorus = [4, 4]\n"); }) ==
        "a.toml:21:9: error: the torus holds 16 devices but 'domain' is 8: they must agree");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "torus = [4, 0]\n"); }) ==
        "a.toml:20:9: error: 'torus' dimensions must be integers in [1, 65536]");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "torus = 4\n"); }) ==
        "a.toml:20:9: error: 'torus' must be a list of 1 to 4 dimensions ([16, 16])");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray +
                                 "[arch.links.nic]\nkind = \"infiniband\"\nfrom = \"hbm\"\nto = \"network\"\nbandwidth = \"1 GB/s\"\ntorus = [2, 2]\n"); }) ==
        "a.toml:20:9: error: 'torus' (the scale-up domain's dimensions) is for links to = \"peer\"");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "oversubscription = 2\n"); }) ==
        "a.toml:20:20: error: 'oversubscription' (the scale-out fabric's) is for links to = \"network\"");
  CHECK_THAT(error_of([&] { arch_from(kHead + kTier + kArray +
                                      "[arch.links.nic]\nkind = \"infiniband\"\nfrom = \"hbm\"\nto = \"network\"\nbandwidth = \"1 GB/s\"\noversubscription = 0.5\n"); }),
             Catch::StartsWith("a.toml:20:20: error:"));
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "collective = { ring = { efficiency = 1.5 } }\n"); }).find("efficiency") !=
        std::string::npos);
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "collective = { ring = { efficiency = 0 } }\n"); }).find("above 0") !=
        std::string::npos);
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "collective = { ring = { base = \"1 GB\" } }\n"); }).find("time") !=
        std::string::npos);
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + peer + "collective = { ring = { bse = \"1 us\" } }\n"); }).find("bse") !=
        std::string::npos);
  // Links are named by what they are: AMD's Infinity Fabric is xgmi, not nvlink.
  for (const char* kind : {"nvlink-c2c", "xgmi", "ici", "roce", "infiniband"}) {
    const ArchSpec a = arch_from(kHead + kTier + kArray + "[arch.links.l]\nkind = \"" + kind + "\"\nfrom = \"hbm\"\nto = \"peer\"\nbandwidth = \"1 GB/s\"\n");
    CHECK(link_kind_name(a.links.at(0).kind) == kind);
  }
  CHECK_THAT(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.links.l]\nkind = \"infinity-fabric\"\nfrom = \"hbm\"\nto = \"peer\"\nbandwidth = \"1 GB/s\"\n"); }),
             Catch::Contains("a.toml:16:8: error:") && Catch::Contains("xgmi") && Catch::Contains("nvlink-c2c") && Catch::Contains("roce"));
  {
    const ArchSpec a = arch_from(kHead + kTier + kArray + peer + "latency = \"1 us\"\nsharp = true\ncollective = { ring = { base = \"5 us\", efficiency = 0.5 } }\n");
    REQUIRE(a.links.size() == 1);
    CHECK(a.links[0].sharp);
    CHECK(a.links[0].collective[0].base == Approx(5e-6));
    CHECK(a.links[0].collective[0].efficiency == Approx(0.5));
    CHECK(a.links[0].collective[0].configured);
    CHECK_FALSE(a.links[0].collective[1].configured);
  }
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.power]\nidle = \"800 W\"\ntdp = \"700 W\"\n"); }) ==
        "a.toml:16:8: error: idle power exceeds TDP");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.power]\nidle = \"80 W\"\ntdp = \"700 W\"\ndvfs = [\"fast\"]\n"); }) ==
        "a.toml:18:8: error: 'dvfs' lists clocks such as \"1.98 GHz\"; 'fast' is not one");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.power]\nidle = \"80 W\"\nactive = \"60 W\"\ntdp = \"700 W\"\n"); }) ==
        "a.toml:17:10: error: active power lies between idle power and TDP");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.power]\nidle = \"80 W\"\ntdp = \"700 W\"\nenergy_exponent = 4\n"); }).find("energy_exponent") !=
        std::string::npos);
  CHECK(error_of([&] { arch_from("[arch]\nname = \"g\"\nkind = \"gpu\"\n" + kTier + kArray); }) ==
        "a.toml:2:1: error: a GPU needs [arch.gpu] (wave_quantization, efficiency, memory_efficiency)");
  CHECK(error_of([&] { arch_from(kHead + kTier + kArray + "[arch.gpu]\nlaunch_overhead = \"5 us\"\n"); }) ==
        "a.toml:15:1: error: [arch.gpu] is for kind = \"gpu\"");
  CHECK(error_of([&] { arch_from(kHead + kTier + "read_table = []\n" + kArray); }) ==
        "a.toml:10:14: error: 'read_table' is for flash and ssd tiers only");
  const std::string flash = "[arch.tiers.f]\nkind = \"flash\"\ncapacity = \"1 TB\"\nread_bandwidth = \"6 GB/s\"\nwrite_bandwidth = \"3 GB/s\"\n";
  CHECK(error_of([&] { arch_from(kHead + kArray + flash + "read_table = [{ request = \"4 KiB\", queue_depth = 0, bandwidth = \"1 GB/s\" }]\n"); }) ==
        "a.toml:15:50: error: read_table row 1 needs 'queue_depth', an integer >= 1");
  CHECK(error_of([&] { arch_from(kHead + kArray + flash + "read_table = [{ request = \"4 KiB\", queue_depth = 1, bandwidth = \"1 GB\" }]\n"); }) ==
        "a.toml:15:65: error: read_table 'bandwidth' must be a bandwidth (e.g. \"3.35 TB/s\", \"400 Gb/s\", \"400 GiB/s\")");
  CHECK(error_of([&] { arch_from(kHead + kArray + flash + "read_table = [{ size = \"4 KiB\" }]\n"); }) ==
        "a.toml:15:24: error: unknown key 'size' in a read_table row (request, queue_depth, bandwidth)");
  CHECK(error_of([&] { arch_from(kHead + kArray + flash + "read_table = [3]\n"); }) ==
        "a.toml:15:15: error: 'read_table' rows are tables: { request = \"4 KiB\", queue_depth = 1, bandwidth = \"...\" }");
  // A flash or SSD tier may leave its writes unmodelled, unless it feeds on-chip storage or arrays.
  const std::string ro_flash = "[arch.tiers.f]\nkind = \"ssd\"\ncapacity = \"1 TB\"\nread_bandwidth = \"6 GB/s\"\n";
  CHECK(arch_from(kHead + kTier + kArray + ro_flash).tier("f")->write_bandwidth == 0);
  CHECK(error_of([&] { arch_from(kHead + ro_flash + "[arch.arrays.pe]\nshape = [4]\nclock = \"1 GHz\"\nlevel = \"f\"\nops_per_cycle = { mac = { fp16 = 1 } }\n"); }) ==
        "a.toml:9:1: error: array 'pe' is fed by tier 'f', which then needs 'write_bandwidth' (results are written back to it)");
  CHECK(error_of([&] { arch_from(kHead + kTier + ro_flash + "[arch.levels.l2]\nparent = \"f\"\ncapacity = \"1 MiB\"\nbandwidth = \"1 TB/s\"\n" + kArray); }) ==
        "a.toml:14:1: error: level 'l2' is fed by tier 'f', which then needs 'write_bandwidth' (results are written back to it)");
  CHECK(error_of([&] { arch_from(kHead + "[arch.tiers.hbm]\nkind = \"hbm\"\ncapacity = \"1 GiB\"\nread_bandwidth = \"1 TB/s\"\n" + kArray); }) ==
        "a.toml:5:1: error: missing required key 'arch.tiers.hbm.write_bandwidth' (a bandwidth (e.g. \"3.35 TB/s\", \"400 Gb/s\", \"400 GiB/s\"))");
}
