// The collective model against Vidur's NCCL profiles (data/published/vidur-network): the presets
// carry the values the documented fit produces, and the held-out rows stay within their bounds.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "arch/collective.h"
#include "common/paths.h"
#include "validate/network.h"
#include "validate/validate.h"

using namespace einsim;

namespace {

std::vector<CollectiveSample> system_rows(const std::string& system) {
  std::vector<CollectiveSample> s;
  for (const char* f : {"all_reduce.csv", "send_recv.csv"}) {
    auto v = vidur_collectives(data_path("published") + "/vidur-network/" + system + "/" + f);
    s.insert(s.end(), v.begin(), v.end());
  }
  return s;
}

double error_of(const std::vector<LinkFit::Error>& e, const std::string& group) {
  for (const auto& x : e)
    if (x.group == group) return x.mape;
  FAIL("no group " << group);
  return 0;
}

}  // namespace

TEST_CASE("collective fit: the presets carry what the fit gives, held-out rows within bounds", "[network]") {
  struct Case {
    const char* arch;
    const char* system;
    double ar4, p2p;  // held-out MAPE bounds: just above today's figures
  };
  for (const Case& c : {Case{"a100", "a100_dgx", 0.150, 0.110}, Case{"h100", "h100_dgx", 0.130, 0.035}}) {
    const ArchSpec a = load_arch(c.arch);
    const Link* peer = peer_link(a);
    REQUIRE(peer != nullptr);
    const auto rows = system_rows(c.system);
    const LinkFit fit = fit_peer_link(*peer, rows);
    fmt::print("{} fit: latency {:.3g} us, ring base {:.3g} us efficiency {:.3f}, p2p base {:.3g} us efficiency {:.3f}\n", c.arch,
               fit.latency * 1e6, fit.ring.base * 1e6, fit.ring.efficiency, fit.p2p.base * 1e6, fit.p2p.efficiency);
    for (const auto& e : fit.errors) fmt::print("  {:<28} {:4} rows  MAPE {:.1f}%\n", e.group, e.count, 100 * e.mape);
    // The preset holds the fit to three significant figures.
    auto same = [](double preset, double fitted) { return std::fabs(preset - fitted) <= 0.005 * std::fabs(fitted); };
    CHECK(same(peer->latency, fit.latency));
    const AlgoCost& ring = peer->collective[static_cast<size_t>(CollectiveAlgo::Ring)];
    const AlgoCost& p2p = peer->collective[static_cast<size_t>(CollectiveAlgo::P2P)];
    CHECK(same(ring.base, fit.ring.base));
    CHECK(same(ring.efficiency, fit.ring.efficiency));
    CHECK(same(p2p.base, fit.p2p.base));
    CHECK(same(p2p.efficiency, fit.p2p.efficiency));
    // Held out, with the preset's values [heldout].
    const auto preset = collective_errors(*peer, rows);
    CHECK(error_of(preset, "all_reduce n4 (held out)") <= c.ar4);
    CHECK(error_of(preset, "send_recv n2 (held out)") <= c.p2p);
    CHECK_FALSE(peer->sharp);
  }
}

TEST_CASE("scale-out fit: the network links carry what the fit gives, hierarchical rows held out", "[network]") {
  struct Case {
    const char* arch;
    const char* system;
  };
  for (const Case& c : {Case{"a100", "a100_dgx"}, Case{"h100", "h100_dgx"}}) {
    const ArchSpec a = load_arch(c.arch);
    const Fabric f = fabric(a);
    REQUIRE(f.up != nullptr);
    REQUIRE(f.out != nullptr);
    std::vector<CollectiveSample> rows;
    for (const char* file : {"all_reduce.csv", "send_recv.csv"}) {
      auto v = vidur_cross_node(data_path("published") + "/vidur-network/" + c.system + "/" + file);
      rows.insert(rows.end(), v.begin(), v.end());
    }
    const LinkFit fit = fit_network_link(*f.out, *f.up, rows);
    fmt::print("{} network fit (latency {:.3g} us kept): ring base {:.3g} us efficiency {:.3f}, p2p base {:.3g} us efficiency {:.3f}\n", c.arch,
               fit.latency * 1e6, fit.ring.base * 1e6, fit.ring.efficiency, fit.p2p.base * 1e6, fit.p2p.efficiency);
    for (const auto& e : fit.errors) fmt::print("  {:<28} {:4} rows  MAPE {:.1f}%\n", e.group, e.count, 100 * e.mape);
    auto same = [](double preset, double fitted) { return std::fabs(preset - fitted) <= 0.005 * std::fabs(fitted); };
    const AlgoCost& p2p = f.out->collective[static_cast<size_t>(CollectiveAlgo::P2P)];
    CHECK(same(p2p.base, fit.p2p.base));
    CHECK(same(p2p.efficiency, fit.p2p.efficiency));
    const auto preset = collective_errors(*f.up, *f.out, rows);
    // Held out [heldout]: bounds just above today's figures (docs/CALIBRATION.md, "Scale-out").
    CHECK(error_of(preset, "send_recv n2 x1 (held out)") <= (c.arch == std::string("a100") ? 0.020 : 0.050));
    if (c.arch == std::string("a100")) {
      const AlgoCost& ring = f.out->collective[static_cast<size_t>(CollectiveAlgo::Ring)];
      CHECK(same(ring.base, fit.ring.base));
      CHECK(same(ring.efficiency, fit.ring.efficiency));
      // Held out: hierarchical all-reduces (two nodes of 2, 4 and 8 GPUs), priced with one NIC
      // per GPU as the DGX A100 has. All come out fast: the profiled cluster moved about 13 GB/s
      // per node with 4 GPUs in it and 10 with 8 (5.8 with 1), not 8 NICs' worth; its NIC
      // layout is not published with the profiles. The bounds hold today's errors.
      CHECK(error_of(preset, "all_reduce n4 x2 (held out)") <= 0.52);
      CHECK(error_of(preset, "all_reduce n8 x4 (held out)") <= 0.46);
      CHECK(error_of(preset, "all_reduce n16 x8 (held out)") <= 0.76);
    }
  }
}

TEST_CASE("collective algorithms: ring steps and bytes, SHARP and tree where the link has them", "[network]") {
  Link l;
  l.bandwidth = 100e9;
  l.latency = 1e-6;
  l.collective[static_cast<size_t>(CollectiveAlgo::Ring)] = {10e-6, 0.5, true};
  // Ring all-reduce over 4: 2(n-1) = 6 steps, 2(n-1)/n S = 1.5 S sent.
  const CollectiveCost r = collective_cost(l, Collective::AllReduce, 4, 1e6);
  CHECK(r.algo == CollectiveAlgo::Ring);
  CHECK(r.bytes == Approx(1.5e6));
  CHECK(r.time == Approx(10e-6 + 6e-6 + 1.5e6 / 50e9));
  CHECK(collective_cost(l, Collective::AllReduce, 1, 1e6).time == 0);
  // SHARP moves each byte once: chosen for large buffers.
  l.sharp = true;
  l.collective[static_cast<size_t>(CollectiveAlgo::Sharp)] = {10e-6, 0.5, true};
  const CollectiveCost s = collective_cost(l, Collective::AllReduce, 8, 1e9);
  CHECK(s.algo == CollectiveAlgo::Sharp);
  CHECK(s.time == Approx(10e-6 + 2e-6 + 1e9 / 50e9));
  // A tree (log steps) wins small messages at many devices where a ring's steps dominate.
  l.sharp = false;
  l.collective[static_cast<size_t>(CollectiveAlgo::Tree)] = {10e-6, 0.5, true};
  CHECK(collective_cost(l, Collective::AllReduce, 64, 1e3).algo == CollectiveAlgo::Tree);
  CHECK(collective_cost(l, Collective::AllReduce, 64, 1e9).algo == CollectiveAlgo::Ring);
  // All-gather and reduce-scatter: half a ring all-reduce's steps and bytes.
  const CollectiveCost g = collective_cost(l, Collective::AllGather, 4, 1e6);
  CHECK(g.bytes == Approx(0.75e6));
  CHECK(g.time == Approx(10e-6 + 3e-6 + 0.75e6 / 50e9));
  CHECK(collective_cost(l, Collective::ReduceScatter, 4, 1e6).time == Approx(g.time));
  // Send/recv and all-to-all over the point-to-point path (unconfigured: no base, full rate).
  CHECK(collective_cost(l, Collective::SendRecv, 2, 1e6).time == Approx(1e-6 + 1e6 / 100e9));
  CHECK(collective_cost(l, Collective::AllToAll, 8, 8e6).time == Approx(7e-6 + 7e6 / 100e9));
}

TEST_CASE("collectives across scale-up domains: hierarchical phases, one base", "[network]") {
  Link up, out;
  up.name = "nvlink", up.to = "peer", up.bandwidth = 100e9, up.latency = 1e-6, up.domain = 4;
  up.collective[static_cast<size_t>(CollectiveAlgo::Ring)] = {10e-6, 0.5, true};
  up.collective[static_cast<size_t>(CollectiveAlgo::P2P)] = {5e-6, 1, true};
  out.name = "nic", out.to = "network", out.bandwidth = 10e9, out.latency = 5e-6;
  out.collective[static_cast<size_t>(CollectiveAlgo::Ring)] = {20e-6, 0.5, true};
  out.collective[static_cast<size_t>(CollectiveAlgo::P2P)] = {15e-6, 1, true};
  const Fabric f{&up, &out};
  const double S = 8e6;
  // Within one domain: the peer link alone.
  CHECK(collective_cost(f, Collective::AllReduce, 4, S).time == Approx(collective_cost(up, Collective::AllReduce, 4, S).time));
  CHECK(collective_cost(f, Collective::AllReduce, 4, S).domains == 1);
  // 8 devices = 2 domains of 4. All-reduce: reduce-scatter and all-gather within (3 steps and
  // 3/4 S each), an all-reduce of S/4 over the 2 domains (2 steps, S/4 sent), one base (20 us).
  const CollectiveCost ar = collective_cost(f, Collective::AllReduce, 8, S);
  CHECK(ar.domains == 2);
  CHECK(ar.bytes == Approx(1.5 * S));
  CHECK(ar.out_bytes == Approx(S / 4));
  CHECK(ar.time == Approx(20e-6 + 6 * 1e-6 + 1.5 * S / 50e9 + 2 * 5e-6 + S / 4 / 5e9));
  // All-gather: the S/4 shard gathered across domains, then S within.
  const CollectiveCost ag = collective_cost(f, Collective::AllGather, 8, S);
  CHECK(ag.time == Approx(20e-6 + 3 * 1e-6 + 0.75 * S / 50e9 + 5e-6 + S / 8 / 5e9));
  CHECK(collective_cost(f, Collective::ReduceScatter, 8, S).time == Approx(ag.time));
  // All-to-all: 3/8 of the buffer within the domain, 4/8 across, at once; the larger base.
  const CollectiveCost a2a = collective_cost(f, Collective::AllToAll, 8, S);
  CHECK(a2a.bytes == Approx(3.0 / 8 * S));
  CHECK(a2a.out_bytes == Approx(4.0 / 8 * S));
  CHECK(a2a.time == Approx(15e-6 + std::max(3 * 1e-6 + 3.0 / 8 * S / 100e9, 4 * 5e-6 + 4.0 / 8 * S / 10e9)));
  // Send/recv between domains: the network link.
  const CollectiveCost sr = collective_cost(f, Collective::SendRecv, 8, S);
  CHECK(sr.out_bytes == Approx(S));
  CHECK(sr.time == Approx(15e-6 + 5e-6 + S / 10e9));
  // A network alone (no peer link): every device its own domain.
  const Fabric net{nullptr, &out};
  CHECK(collective_cost(net, Collective::AllReduce, 4, S).time == Approx(collective_cost(out, Collective::AllReduce, 4, S).time));
  CHECK(net.links(4) == "nic");
  CHECK(f.links(4) == "nvlink");
  CHECK(f.links(8) == "nvlink + nic");
  // Groups that cannot be formed say why.
  CHECK(f.unusable(8).empty());
  CHECK(f.unusable(6) == "6 devices span scale-up domains of 4 unevenly (use a multiple of 4)");
  const Fabric lone{&up, nullptr};
  CHECK_THAT(lone.unusable(8), Catch::Contains("and no network link (to = \"network\") joins them"));
  const Fabric none;
  CHECK_THAT(none.unusable(2), Catch::Contains("no link joins its devices"));
  CHECK(none.unusable(1).empty());
  // Energy: each link's bytes at its own energy.
  up.energy = 1e-12, out.energy = 10e-12;
  CHECK(f.energy(ar) == Approx(1.5 * S * 1e-12 + S / 4 * 10e-12));
}

TEST_CASE("Vidur network files: located errors", "[network]") {
  const std::string dir = std::filesystem::temp_directory_path() / "einsim-network-test";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& text) {
    const std::string f = dir + "/all_reduce.csv";
    std::ofstream(f) << text;
    return f;
  };
  const std::string head = ",time_stats.all_reduce.median,num_workers,size,collective,devices_per_node\n";
  CHECK_THROWS_WITH(read_vidur_network(write(",num_workers,size,collective,devices_per_node\n0,2,2048,all_reduce,2\n")),
                    Catch::Contains("no time_stats.<collective>.median column"));
  CHECK_THROWS_WITH(read_vidur_network(write(head + "0,0.1,2,2048,broadcast,2\n")), Catch::Contains("all_reduce.csv:2:") && Catch::Contains("unknown collective 'broadcast'"));
  CHECK_THROWS_WITH(read_vidur_network(write(head + "0,0.1,2,2048,all_reduce,4\n")), Catch::Contains("4 per node"));
  CHECK_THROWS_WITH(read_vidur_network(write(head + "0,0,2,2048,all_reduce,2\n")), Catch::Contains("median time must be positive"));
  CHECK_THROWS_WITH(read_vidur_network(write(head + "0,0.1,2,2048,all_reduce\n")), Catch::Contains("expected 6 fields, found 5"));
  CHECK_THROWS_WITH(vidur_collectives(write(head + "0,0.1,4,2048,all_reduce,2\n")), Catch::Contains("no rows within one node"));
  CHECK_THROWS_WITH(read_vidur_network(write(head)), Catch::Contains("no measurements"));
}
