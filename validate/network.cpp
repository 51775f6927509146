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

double predict_collective(const Link& link, const CollectiveMeasurement& m) {
  static const std::map<std::string, Collective> ops = {{"all_reduce", Collective::AllReduce},
                                                        {"send_recv", Collective::SendRecv},
                                                        {"all_gather", Collective::AllGather},
                                                        {"reduce_scatter", Collective::ReduceScatter},
                                                        {"all_to_all", Collective::AllToAll}};
  return collective_cost(link, ops.at(m.collective), m.workers, m.bytes).time;
}

std::vector<LinkFit::Error> collective_errors(const Link& link, const std::vector<CollectiveSample>& samples) {
  std::map<std::string, LinkFit::Error> by;
  for (const CollectiveSample& s : samples) {
    LinkFit::Error& e = by[fmt::format("{} n{} ({})", s.m.collective, s.m.workers, s.held_out ? "held out" : "fitted")];
    e.count++;
    e.mape += std::fabs(predict_collective(link, s.m) - s.m.seconds) / s.m.seconds;
  }
  std::vector<LinkFit::Error> out;
  for (auto& [g, e] : by) {
    e.group = g;
    e.mape /= static_cast<double>(e.count);
    out.push_back(e);
  }
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
