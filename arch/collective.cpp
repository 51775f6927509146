#include "arch/collective.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace einsim {

std::string_view collective_name(Collective c) {
  static constexpr std::array<std::string_view, 5> n = {"all-reduce", "all-gather", "reduce-scatter", "all-to-all", "send-recv"};
  return n[static_cast<size_t>(c)];
}

namespace {

// `share`: the fraction of the link's bandwidth the group reaches (a torus's ports in the
// dimensions it spans); `hops`: the links each byte crosses.
CollectiveCost cost(const Link& l, CollectiveAlgo algo, double steps, double bytes, double base_scale, double share = 1, double hops = 1) {
  const AlgoCost& ac = l.collective[static_cast<size_t>(algo)];
  return {ac.base * base_scale + steps * l.latency + bytes * hops / (ac.efficiency * l.bandwidth * share), bytes * hops, algo};
}

// Mean distance from one device to the others of a bidirectional ring of `a`.
double mean_ring_distance(int64_t a) {
  double sum = 0;
  for (int64_t d = 1; d < a; ++d) sum += static_cast<double>(std::min(d, a - d));
  return a > 1 ? sum / static_cast<double>(a - 1) : 0;
}

}  // namespace

CollectiveCost collective_cost(const Link& l, Collective op, int64_t devices, double s, double base_scale) {
  if (devices <= 1) return {0, 0, CollectiveAlgo::Ring};
  const double n = static_cast<double>(devices);
  if (!l.torus.empty()) {
    // A torus: rings along each dimension the group spans, one after the other (reduce-scatter
    // along the first, the next on its shard..., all-gather back), each over that dimension's
    // two ports; the bytes per device are the flat ring's, the steps the dimensions' sum, and
    // the bandwidth the spanned dimensions' share of the device's ports. An all-to-all's bytes
    // cross the mean ring distance of each dimension.
    const std::vector<int64_t> shape = l.group_shape(devices);
    double spanned = 0, steps = 0, hops = 0;
    for (int64_t a : shape)
      if (a > 1) spanned += 1, steps += static_cast<double>(a - 1), hops += mean_ring_distance(a);
    const double share = spanned / static_cast<double>(l.torus.size());
    switch (op) {
      case Collective::AllReduce: return cost(l, CollectiveAlgo::Ring, 2 * steps, 2 * (n - 1) / n * s, base_scale, share);
      case Collective::AllGather:
      case Collective::ReduceScatter: return cost(l, CollectiveAlgo::Ring, steps, (n - 1) / n * s, base_scale, share);
      case Collective::AllToAll: return cost(l, CollectiveAlgo::P2P, steps, (n - 1) / n * s, base_scale, share, hops);
      case Collective::SendRecv: return cost(l, CollectiveAlgo::P2P, 1, s, base_scale, 1.0 / (2.0 * static_cast<double>(l.torus.size())));
    }
  }
  switch (op) {
    case Collective::AllReduce: {
      CollectiveCost best = cost(l, CollectiveAlgo::Ring, 2 * (n - 1), 2 * (n - 1) / n * s, base_scale);
      const AlgoCost& tree = l.collective[static_cast<size_t>(CollectiveAlgo::Tree)];
      if (tree.configured) {
        const CollectiveCost t = cost(l, CollectiveAlgo::Tree, 2 * std::ceil(std::log2(n)), 2 * s, base_scale);
        if (t.time < best.time) best = t;
      }
      if (l.sharp) {
        const CollectiveCost t = cost(l, CollectiveAlgo::Sharp, 2, s, base_scale);
        if (t.time < best.time) best = t;
      }
      return best;
    }
    case Collective::AllGather:
    case Collective::ReduceScatter: return cost(l, CollectiveAlgo::Ring, n - 1, (n - 1) / n * s, base_scale);
    case Collective::AllToAll: return cost(l, CollectiveAlgo::P2P, n - 1, (n - 1) / n * s, base_scale);
    case Collective::SendRecv: return cost(l, CollectiveAlgo::P2P, 1, s, base_scale);
  }
  return {};
}

Fabric fabric(const ArchSpec& a) { return {peer_link(a), network_link(a)}; }

std::string Fabric::unusable(int64_t n) const {
  if (n <= 1) return "";
  if (!up && !out) return "no link joins its devices (to = \"peer\" or \"network\")";
  const int64_t d = domain();
  if (n <= d && up && !up->torus.empty() && up->group_shape(n).empty())
    return fmt::format("{} devices do not form a sub-torus of '{}' (torus = [{}]): use a product of factors that fit its dimensions", n,
                       up->name, fmt::join(up->torus, ", "));
  if (n <= d) return "";
  if (!out)
    return fmt::format("{} devices span scale-up domains of {} ('{}', domain = {}) and no network link (to = \"network\") joins them", n, d,
                       up->name, d);
  if (n % d != 0) return fmt::format("{} devices span scale-up domains of {} unevenly (use a multiple of {})", n, d, d);
  return "";
}

std::string Fabric::links(int64_t n) const {
  if (n <= domain()) return up ? up->name : "";
  return domain() > 1 ? fmt::format("{} + {}", up->name, out->name) : out->name;
}

CollectiveCost collective_cost(const Fabric& f, Collective op, int64_t n, double s, double base_scale) {
  if (n <= 1) return {0, 0, CollectiveAlgo::Ring};
  const int64_t d = std::min(f.domain(), n);
  if (d == n) return collective_cost(*f.up, op, n, s, base_scale);
  const int64_t m = n / d;
  const double per = s / static_cast<double>(d);  // the shard each device takes across domains
  // The phases run as one collective (one kernel, as NCCL's multi-node rings and trees do): each
  // phase's steps and bytes, and one base, the larger of the two links' for the algorithm.
  CollectiveCost up, out;
  switch (op) {
    case Collective::AllReduce: {
      const CollectiveCost rs = d > 1 ? collective_cost(*f.up, Collective::ReduceScatter, d, s, 0) : CollectiveCost{};
      const CollectiveCost ag = d > 1 ? collective_cost(*f.up, Collective::AllGather, d, s, 0) : CollectiveCost{};
      up = {rs.time + ag.time, rs.bytes + ag.bytes, rs.algo};
      out = collective_cost(*f.out, Collective::AllReduce, m, per, 0);
      break;
    }
    case Collective::AllGather:
    case Collective::ReduceScatter:
      if (d > 1) up = collective_cost(*f.up, op, d, s, 0);
      out = collective_cost(*f.out, op, m, per, 0);
      break;
    case Collective::AllToAll: {
      // The sends within and across domains proceed at once: the slower part sets the time.
      const double nn = static_cast<double>(n), dd = static_cast<double>(d);
      auto part = [](const Link& l, double steps, double bytes, double share) {
        const AlgoCost& ac = l.collective[static_cast<size_t>(CollectiveAlgo::P2P)];
        return CollectiveCost{steps * l.latency + bytes / (ac.efficiency * l.bandwidth * share), bytes, CollectiveAlgo::P2P};
      };
      if (d > 1) up = part(*f.up, dd - 1, (dd - 1) / nn * s, 1);
      // Between domains the pairs cross the spine (rails do not align them).
      out = part(*f.out, nn - dd, (nn - dd) / nn * s, 1 / f.out->oversubscription);
      const double base = std::max(d > 1 ? f.up->collective[static_cast<size_t>(CollectiveAlgo::P2P)].base : 0.0,
                                   f.out->collective[static_cast<size_t>(CollectiveAlgo::P2P)].base);
      return {base * base_scale + std::max(up.time, out.time), up.bytes, CollectiveAlgo::P2P, out.bytes, m};
    }
    case Collective::SendRecv: {
      const CollectiveCost c = collective_cost(*f.out, op, 2, s, base_scale);
      return {c.time, 0, c.algo, c.bytes, m};
    }
  }
  const double base = std::max(d > 1 ? f.up->collective[static_cast<size_t>(up.algo)].base : 0.0, f.out->collective[static_cast<size_t>(out.algo)].base);
  return {base * base_scale + up.time + out.time, up.bytes, d > 1 ? up.algo : out.algo, out.bytes, m};
}

TensorParallelComm tensor_parallel_allreduces(const Fabric& f, int64_t tp, double count, double message, double base_scale) {
  TensorParallelComm t;
  if (tp <= 1) return t;
  t.count = count;
  const CollectiveCost one = collective_cost(f, Collective::AllReduce, tp, message, base_scale);
  t.time = t.count * one.time;
  t.bytes = t.count * one.bytes;
  t.out_bytes = t.count * one.out_bytes;
  t.domains = one.domains;
  t.algo = one.algo;
  return t;
}

const Link* peer_link(const ArchSpec& a) {
  for (const Link& l : a.links)
    if (l.to == "peer") return &l;
  return nullptr;
}

const Link* network_link(const ArchSpec& a) {
  for (const Link& l : a.links)
    if (l.to == "network") return &l;
  return nullptr;
}

}  // namespace einsim
