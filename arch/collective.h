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
#include <cstdint>
#include <string_view>

#include "arch/arch.h"

namespace einsim {

enum class Collective { AllReduce, AllGather, ReduceScatter, AllToAll, SendRecv };
std::string_view collective_name(Collective c);

struct CollectiveCost {
  double time = 0;   ///< s
  double bytes = 0;  ///< B each device sends over the link
  CollectiveAlgo algo = CollectiveAlgo::Ring;
};

/// One collective of `bytes` over `n` devices joined by `link`. n = 1 costs nothing.
/// `base_scale` scales the algorithms' bases (Runtime::collective_base).
CollectiveCost collective_cost(const Link& link, Collective op, int64_t n, double bytes, double base_scale = 1);

/// The `count` all-reduces of one tensor-parallel forward: the hidden state after each
/// attention and each MLP (Megatron-LM; ModelConfig::sublayers() counts them). `message`: the
/// hidden state's bytes (tokens x hidden x element size).
/// `base_scale` scales the link's fitted bases (Runtime::collective_base).
struct TensorParallelComm {
  double count = 0;  ///< all-reduces
  double time = 0;   ///< s, not overlapped with compute
  double bytes = 0;  ///< B each device sends
  CollectiveAlgo algo = CollectiveAlgo::Ring;
};
TensorParallelComm tensor_parallel_allreduces(const Link& link, int64_t tp, double count, double message, double base_scale = 1);

/// The architecture's link to its peers (`to = "peer"`), or nullptr.
const Link* peer_link(const ArchSpec& a);

}  // namespace einsim
