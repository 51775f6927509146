#pragma once
// Collectives over a peer link: one latency-bandwidth model per algorithm, the algorithm
// chosen per call as NCCL's tuner does (the one its model says is fastest). `run`, `serve`,
// `sweep` and the analyses all cost tensor-parallel communication here.
//
// Per algorithm, with n devices, S the buffer each device holds, B the link's bandwidth per
// direction, a = the link's `latency` (one step) and c, e the algorithm's fitted base and
// efficiency (Link::collective):
//   all-reduce  ring   c + 2(n-1) a + 2(n-1)/n S / (e B)
//               tree   c + 2 ceil(log2 n) a + 2 S / (e B)      (where the link configures it)
//               sharp  c + 2 a + S / (e B)                     (the switch reduces: `sharp = true`)
//   all-gather, reduce-scatter: ring  c + (n-1) a + (n-1)/n S / (e B)
//   all-to-all: p2p    c + (n-1) a + (n-1)/n S / (e B)         (pairwise exchanges through the switch)
//   send/recv:  p2p    c + a + S / (e B)
// S is the all-reduced tensor, the gathered (output) tensor, the reduce-scatter's input, one
// device's whole all-to-all send buffer, the message sent.
//
// A torus domain (Link::torus, TPU pods) runs rings along each dimension the group's sub-torus
// (Link::group_shape) spans, one dimension after the other: the bytes above, sum(a_i - 1) steps
// in place of n - 1, and B scaled by the spanned dimensions over all of them (each dimension's
// two ports carry its ring; a group spanning every dimension reaches the whole B, Google's
// "all-reduce bandwidth per pod" of chips x B). All-to-all bytes cross each dimension's mean
// ring distance; send/recv uses one port (B / 2 per dimension).
//
// A group larger than the peer link's scale-up domain (Link::domain) spans d = domain devices
// in each of m = n / d domains, joined by the scale-out network (the `to = "network"` link,
// each device's own NIC, as on HGX and DGX nodes), and is priced hierarchically, as NCCL's
// rings and trees cross node boundaries once per channel with one NIC per channel, in phases
// (each its steps x its link's latency and its bytes over its link's fitted bandwidth):
//   all-reduce      RS_up(S, d) + AR_out(S/d, m) + AG_up(S, d)
//   all-gather      AG_out(S/d, m) + AG_up(S, d)
//   reduce-scatter  RS_up(S, d) + RS_out(S/d, m)
//   all-to-all      max(up: (d-1) a + (d-1)/n S / (e B),  out: (n-d) a + (n-d)/n S / (e B / o))
//                   (the sends within and across domains proceed at once; o: the network's
//                   oversubscription, which rail-aligned rings and send/recv do not see)
//   send/recv       over the network link
// plus one base, the larger of the two links' for the algorithm: the phases are one kernel.
// _up over the peer link, _out over the network link.
#include <cstdint>
#include <string>
#include <string_view>

#include "arch/arch.h"

namespace einsim {

enum class Collective { AllReduce, AllGather, ReduceScatter, AllToAll, SendRecv };
std::string_view collective_name(Collective c);

struct CollectiveCost {
  double time = 0;   ///< s
  double bytes = 0;  ///< B each device sends over the link (the peer link, across domains)
  CollectiveAlgo algo = CollectiveAlgo::Ring;
  double out_bytes = 0;  ///< across domains: B each device sends over the network link
  int64_t domains = 1;   ///< scale-up domains the group spans
};

/// One collective of `bytes` over `n` devices joined by `link`. n = 1 costs nothing.
/// `base_scale` scales the algorithms' bases (Runtime::collective_base).
CollectiveCost collective_cost(const Link& link, Collective op, int64_t n, double bytes, double base_scale = 1);

/// What joins an architecture's devices: the peer link of a scale-up domain (`up`, whose
/// `domain` devices it joins) and the scale-out network between domains (`out`); either may
/// be missing.
struct Fabric {
  const Link* up = nullptr;
  const Link* out = nullptr;
  /// The devices of one domain (1 without a peer link).
  int64_t domain() const { return up ? up->domain : 1; }
  /// Why `n` devices cannot form one group ("" when they can): no link joins them, or they
  /// span domains unevenly.
  std::string unusable(int64_t n) const;
  /// J each device spends sending `bytes` over the peer link and `out_bytes` over the network.
  double energy(double bytes, double out_bytes) const { return (up ? bytes * up->energy : 0) + (out ? out_bytes * out->energy : 0); }
  double energy(const CollectiveCost& c) const { return energy(c.bytes, c.out_bytes); }
  /// The name of the links a collective over `n` devices uses ("nvlink", "nvlink + nic").
  std::string links(int64_t n) const;
};
Fabric fabric(const ArchSpec& a);

/// One collective over `n` devices of `f`, packed into as few domains as hold them: over the
/// peer link within one domain, hierarchically across domains (above). `n` must be usable
/// (Fabric::unusable() empty).
CollectiveCost collective_cost(const Fabric& f, Collective op, int64_t n, double bytes, double base_scale = 1);

/// The `count` all-reduces of one tensor-parallel forward: the hidden state after each
/// attention and each MLP (Megatron-LM; ModelConfig::sublayers() counts them). `message`: the
/// hidden state's bytes (tokens x hidden x element size).
/// `base_scale` scales the link's fitted bases (Runtime::collective_base).
struct TensorParallelComm {
  double count = 0;  ///< all-reduces
  double time = 0;   ///< s, not overlapped with compute
  double bytes = 0;  ///< B each device sends over the peer link
  CollectiveAlgo algo = CollectiveAlgo::Ring;
  double out_bytes = 0;  ///< B each device sends over the network link (tp spans domains)
  int64_t domains = 1;
};
TensorParallelComm tensor_parallel_allreduces(const Fabric& f, int64_t tp, double count, double message, double base_scale = 1);

/// The architecture's link to its peers (`to = "peer"`), or nullptr.
const Link* peer_link(const ArchSpec& a);
/// The architecture's link to the scale-out network (`to = "network"`), or nullptr.
const Link* network_link(const ArchSpec& a);

}  // namespace einsim
