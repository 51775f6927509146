#pragma once
// The serving simulation's step times, from einsim's cost model (`run_model`), memoised on a
// grid and interpolated: a serving run asks for millions of iterations but only a few hundred
// distinct shapes.
//
// An iteration is one forward, as inference engines run a mixed batch: the weights are read
// once for all its tokens (prefill chunks and decodes alike), the all-reduces carry all its
// tokens, and attention is costed per sequence: each prompt chunk its own causal square over
// its cached prefix, each decode its own context. The parts come from mapped runs:
//   linear(T)         a prefill of T tokens without its attention and LM head
//   lm(S)             the LM head over S sampled rows (decodes and prompts that finish)
//   prefill_attn(n,c) one prompt chunk of n tokens after c cached ones: its attention
//   decode_attn(b,x)  b decodes at x tokens of context: their attention
// plus, once per iteration, one launch per kernel (graph nodes where the runtime replays the
// iteration from a graph) and the runtime's host time per step and per admitted request.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "sim/power/power.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

/// One prompt chunk of an iteration: `tokens` of a request after `prefix` of it are cached.
struct Chunk {
  int64_t tokens = 0;
  int64_t prefix = 0;
};

/// One iteration of continuous batching: prompt chunks (`chunks`; when empty, one chunk of
/// `prefill_tokens` with nothing cached) and `decode` requests generating one token each over
/// `context` cached tokens on average.
struct Iteration {
  int64_t prefill_tokens = 0;
  int64_t decode = 0;
  int64_t context = 0;
  std::vector<Chunk> chunks;
  /// Tokens each decode processes: 1, or k + 1 when speculative decoding verifies k drafted
  /// tokens (each decode then a (k + 1)-token chunk over its context).
  int64_t verify = 1;
  int64_t sampled = -1;  ///< rows the LM head computes (-1: every decode's tokens and one per chunk)
  int64_t admitted = 0;  ///< requests this iteration admits (the runtime's per-request cost)
};

/// How a device may run: a frequency lock and a power cap (0: none; the TDP always holds).
struct Operating {
  double lock = 0;  ///< Hz
  double cap = 0;   ///< W per device
  bool operator==(const Operating&) const = default;
};

/// The parts of one mapped run (clock, time without kernel launches, energies) and the kernels
/// each holds.
struct StepParts {
  ClockedWork linear, attention, lm;  ///< everything else; attention proper; the LM head
  double linear_kernels = 0, attention_kernels = 0, lm_kernels = 0, allreduces = 0;
};

class StepTimer {
 public:
  /// `rt`: the software (nullptr: default_runtime()); `kv_dtype`: the KV cache's element type
  /// when it differs from the model's (a quantized cache).
  /// `ep` > 1: an expert-parallel instance of ep devices (a multiple of tp): ep / tp
  /// data-parallel groups of tp devices share the experts (RunOptions::ep), each group running
  /// its share of the iteration's requests.
  /// `emulate` false: matrix products no array runs at their type are a located error
  /// (RunOptions::emulate; `serve` without --emulate).
  /// `pp` > 1: the layers split into pp pipeline stages of max(tp, ep) devices each
  /// (RunOptions::pp): an iteration passes through every stage in turn, its activations sent
  /// between them (pp - 1 hops of its tokens' hidden states, each device its 1/tp share, over
  /// the peer link, or the network link when the instance spans scale-up domains); a device
  /// holds its stage's weights and its stage's layers' caches.
  StepTimer(ModelConfig m, ArchSpec a, int64_t tp, std::shared_ptr<const Runtime> rt = nullptr, std::optional<DType> kv_dtype = std::nullopt,
            int64_t ep = 1, bool emulate = true, int64_t pp = 1);
  const Runtime& runtime() const { return rt_ ? *rt_ : default_runtime(); }

  /// Seconds for one iteration (at the fastest clock), the parts above interpolated linearly
  /// between grid points (tokens and batch 4 per octave, context and prefix 2 per octave).
  double time(const Iteration& it);
  /// The iteration under `op`: the fastest allowed clock that keeps the device within the
  /// limit (`under_cap`); time, dynamic energy per device, power and clock.
  PoweredWork cost(const Iteration& it, const Operating& op);
  /// einsim's mapped step at one exact shape, a phase on its own (no interpolation), for checks.
  double prefill_exact(int64_t tokens);
  double decode_exact(int64_t batch, int64_t context);
  const ArchSpec& arch() const { return a_; }

  /// Bytes of KV cache per token on one device of the tensor-parallel group.
  double kv_bytes_per_token() const { return kv_per_token_; }
  /// Tokens a request's cache holds after `tokens`, over its attention layers
  /// (ModelConfig::kv_tokens: windows and chunks cap some).
  double kv_tokens(int64_t tokens) const { return m_.kv_tokens(tokens); }
  /// Bytes free for the KV cache per device: the first tier less the weights' share (with
  /// expert parallelism, every group's: the instance's requests spread over its groups).
  double kv_capacity() const { return kv_capacity_; }
  /// Data-parallel groups of the instance (ep / tp; 1 without expert parallelism).
  int64_t groups() const { return ep_ > 1 ? ep_ / tp_ : 1; }
  int64_t stages() const { return pp_; }
  int64_t tp() const { return tp_; }
  /// Devices of one model instance: max(tp, ep) per stage, pp stages.
  int64_t devices() const { return std::max(tp_, ep_) * pp_; }
  /// Bytes of weights on the fullest device.
  double weight_bytes() const { return weight_bytes_; }
  const ModelConfig& model() const { return m_; }
  int64_t runs() const { return runs_; }  ///< run_model calls made so far
  /// Matrix products computed at a wider type than their operands' (RunReport::emulated).
  const std::vector<std::string>& emulated() const { return emulated_; }

 private:
  /// einsim's run of one phase at one clock level (counted in runs()).
  RunReport run_at(size_t level, const Phase& p);
  StepParts exact(size_t level, const Phase& p);
  const StepParts& forward_at(size_t level, int64_t tokens);
  const StepParts& lm_at(size_t level, int64_t rows);
  const StepParts& prefill_at(size_t level, int64_t tokens, int64_t prefix);
  const StepParts& decode_at(size_t level, int64_t batch, int64_t context);
  /// The iteration at one clock level, through every pipeline stage.
  ClockedWork iteration(size_t level, const Iteration& it);
  /// The same without the hops between stages.
  ClockedWork forward(size_t level, const Iteration& it);
  ModelConfig m_;
  ArchSpec a_;
  int64_t tp_, ep_, pp_ = 1;
  Fabric fabric_;  ///< the links between stages (pp > 1)
  std::vector<std::string> emulated_;
  std::shared_ptr<const Runtime> rt_;
  std::optional<DType> kv_dtype_;
  double kv_per_token_ = 0, kv_capacity_ = 0, weight_bytes_ = 0;
  std::vector<double> clocks_;   ///< DVFS clocks, highest first ({0}: nominal only)
  std::vector<ArchSpec> archs_;  ///< the architecture at each clock
  std::vector<ClockedWork> points_;  ///< cost()'s scratch
  std::map<std::pair<size_t, int64_t>, StepParts> forward_, lm_;
  std::map<std::tuple<size_t, int64_t, int64_t>, StepParts> prefill_, decode_;
  /// Decode-only iterations composed at grid points (batch, context): the common case, one
  /// bilinear lookup (the parts are linear, so composing first changes nothing).
  std::map<std::tuple<size_t, int64_t, int64_t>, ClockedWork> decode_only_;
  ClockedWork decode_only_at(size_t level, int64_t batch, int64_t context);
  MapCache cache_;
  int64_t runs_ = 0;
};

/// The grid point at or below `n` (4 per octave when `fine`, else 2), and the next one up.
std::pair<int64_t, int64_t> grid_bracket(int64_t n, bool fine);

}  // namespace einsim
