#include "arch/collective.h"

#include <array>
#include <cmath>

namespace einsim {

std::string_view collective_name(Collective c) {
  static constexpr std::array<std::string_view, 5> n = {"all-reduce", "all-gather", "reduce-scatter", "all-to-all", "send-recv"};
  return n[static_cast<size_t>(c)];
}

namespace {

CollectiveCost cost(const Link& l, CollectiveAlgo algo, double steps, double bytes, double base_scale) {
  const AlgoCost& ac = l.collective[static_cast<size_t>(algo)];
  return {ac.base * base_scale + steps * l.latency + bytes / (ac.efficiency * l.bandwidth), bytes, algo};
}

}  // namespace

CollectiveCost collective_cost(const Link& l, Collective op, int64_t devices, double s, double base_scale) {
  if (devices <= 1) return {0, 0, CollectiveAlgo::Ring};
  const double n = static_cast<double>(devices);
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

TensorParallelComm tensor_parallel_allreduces(const Link& link, int64_t tp, double count, double message, double base_scale) {
  TensorParallelComm t;
  if (tp <= 1) return t;
  t.count = count;
  const CollectiveCost one = collective_cost(link, Collective::AllReduce, tp, message, base_scale);
  t.time = t.count * one.time;
  t.bytes = t.count * one.bytes;
  t.algo = one.algo;
  return t;
}

const Link* peer_link(const ArchSpec& a) {
  for (const Link& l : a.links)
    if (l.to == "peer") return &l;
  return nullptr;
}

}  // namespace einsim
