#include "validate/network.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <map>

#include "arch/collective.h"
#include "common/least_squares.h"

namespace einsim {

std::vector<CollectiveSample> vidur_collectives(const std::string& file) {
  std::vector<CollectiveSample> out;
  std::map<std::string, int64_t> seen;  // rows so far per (collective, workers)
  for (const CollectiveMeasurement& m : read_vidur_network(file)) {
    if (m.devices_per_node != m.workers) continue;
    CollectiveSample s{m, false};
    const int64_t i = seen[fmt::format("{} {}", m.collective, m.workers)]++;
    s.held_out = m.collective == "all_reduce" ? m.workers != 2 && m.workers != 8 : i % 2 == 1;
    out.push_back(std::move(s));
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no rows within one node (devices_per_node = num_workers)");
  return out;
}

namespace {

Collective op_of(const CollectiveMeasurement& m) {
  static const std::map<std::string, Collective> ops = {{"all_reduce", Collective::AllReduce},
                                                        {"send_recv", Collective::SendRecv},
                                                        {"all_gather", Collective::AllGather},
                                                        {"reduce_scatter", Collective::ReduceScatter},
                                                        {"all_to_all", Collective::AllToAll}};
  return ops.at(m.collective);
}

// Mean absolute relative error of `predict` per group of rows (collective, workers, nodes).
template <typename F>
std::vector<LinkFit::Error> errors_by_group(const std::vector<CollectiveSample>& samples, F&& predict) {
  std::map<std::string, LinkFit::Error> by;
  for (const CollectiveSample& s : samples) {
    const std::string nodes = s.m.devices_per_node < s.m.workers ? fmt::format(" x{}", s.m.devices_per_node) : "";
    LinkFit::Error& e = by[fmt::format("{} n{}{} ({})", s.m.collective, s.m.workers, nodes, s.held_out ? "held out" : "fitted")];
    e.count++;
    e.mape += std::fabs(predict(s.m) - s.m.seconds) / s.m.seconds;
  }
  std::vector<LinkFit::Error> out;
  for (auto& [g, e] : by) {
    e.group = g;
    e.mape /= static_cast<double>(e.count);
    out.push_back(e);
  }
  return out;
}

}  // namespace

double predict_collective(const Link& link, const CollectiveMeasurement& m) {
  return collective_cost(link, op_of(m), m.workers, m.bytes).time;
}

std::vector<LinkFit::Error> collective_errors(const Link& link, const std::vector<CollectiveSample>& samples) {
  return errors_by_group(samples, [&](const CollectiveMeasurement& m) { return predict_collective(link, m); });
}

std::vector<CollectiveSample> vidur_cross_node(const std::string& file) {
  std::vector<CollectiveSample> out;
  int64_t p2p = 0;
  for (const CollectiveMeasurement& m : read_vidur_network(file)) {
    if (m.devices_per_node >= m.workers) continue;
    if (m.workers % m.devices_per_node != 0)
      throw UserError(m.loc, fmt::format("{} workers do not fill nodes of {} evenly", m.workers, m.devices_per_node));
    CollectiveSample s{m, false};
    s.held_out = m.collective == "send_recv" ? p2p++ % 2 == 1 : m.devices_per_node > 1;
    out.push_back(std::move(s));
  }
  return out;
}

double predict_collective(const Link& peer, const Link& network, const CollectiveMeasurement& m) {
  Link node = peer;
  node.domain = m.devices_per_node;
  const Fabric f{&node, &network};
  return collective_cost(f, op_of(m), m.workers, m.bytes).time;
}

std::vector<LinkFit::Error> collective_errors(const Link& peer, const Link& network, const std::vector<CollectiveSample>& samples) {
  return errors_by_group(samples, [&](const CollectiveMeasurement& m) { return predict_collective(peer, network, m); });
}

LinkFit fit_network_link(const Link& network, const Link& peer, const std::vector<CollectiveSample>& samples) {
  // Over the network alone (one GPU per node): a ring all-reduce over 2 is c + 2a + S / (e B),
  // a send/recv c + a + S / (e B); with a kept, (c, 1 / (e B)) by relative least squares.
  auto fit = [&](const char* collective, double steps) -> AlgoCost {
    std::vector<std::array<double, 2>> f;
    std::vector<double> t;
    for (const CollectiveSample& s : samples)
      if (!s.held_out && s.m.collective == collective && s.m.devices_per_node == 1 && s.m.workers == 2) {
        f.push_back({1, s.m.bytes});
        t.push_back(s.m.seconds - steps * network.latency);
      }
    if (f.size() < 2) return network.collective[static_cast<size_t>(std::string(collective) == "send_recv" ? CollectiveAlgo::P2P : CollectiveAlgo::Ring)];
    const auto r = relative_least_squares<2>(f, t);
    return {r[0], 1 / (r[1] * network.bandwidth), true};
  };
  LinkFit out;
  out.latency = network.latency;
  out.ring = fit("all_reduce", 2);
  out.p2p = fit("send_recv", 1);
  Link fitted = network;
  fitted.collective[static_cast<size_t>(CollectiveAlgo::Ring)] = out.ring;
  fitted.collective[static_cast<size_t>(CollectiveAlgo::P2P)] = out.p2p;
  out.errors = collective_errors(peer, fitted, samples);
  return out;
}

LinkFit fit_peer_link(const Link& link, const std::vector<CollectiveSample>& samples) {
  std::vector<std::array<double, 3>> ring_f;
  std::vector<double> ring_t;
  for (const CollectiveSample& s : samples)
    if (!s.held_out && s.m.collective == "all_reduce") {
      const double n = static_cast<double>(s.m.workers);
      ring_f.push_back({1, 2 * (n - 1), 2 * (n - 1) / n * s.m.bytes});
      ring_t.push_back(s.m.seconds);
    }
  if (ring_f.size() < 3) throw UserError(SourceLoc{}, "the collective fit needs all-reduce rows at two or more GPU counts");
  const auto r = relative_least_squares<3>(ring_f, ring_t);
  LinkFit fit;
  fit.latency = r[1];
  fit.ring = {r[0], 1 / (r[2] * link.bandwidth), true};
  std::vector<std::array<double, 2>> p2p_f;
  std::vector<double> p2p_t;
  for (const CollectiveSample& s : samples)
    if (!s.held_out && s.m.collective == "send_recv") {
      p2p_f.push_back({1, s.m.bytes});
      p2p_t.push_back(s.m.seconds - fit.latency);
    }
  if (p2p_f.size() >= 2) {
    const auto p = relative_least_squares<2>(p2p_f, p2p_t);
    fit.p2p = {p[0], 1 / (p[1] * link.bandwidth), true};
  }
  Link fitted = link;
  fitted.latency = fit.latency;
  fitted.collective[static_cast<size_t>(CollectiveAlgo::Ring)] = fit.ring;
  if (fit.p2p.configured) fitted.collective[static_cast<size_t>(CollectiveAlgo::P2P)] = fit.p2p;
  fit.errors = collective_errors(fitted, samples);
  return fit;
}

}  // namespace einsim
