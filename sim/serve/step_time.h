#pragma once
// The serving simulation's step times, from einsim's cost model (`run_model`), memoised on a
// grid and interpolated: a serving run asks for millions of iterations but only a few hundred
// distinct shapes.
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "sim/power/power.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

/// One iteration of continuous batching: `prefill_tokens` prompt tokens (whole prompts or
/// chunks) and `decode` requests generating one token each over `context` cached tokens on
/// average.
struct Iteration {
  int64_t prefill_tokens = 0;
  int64_t decode = 0;
  int64_t context = 0;
};

/// How a device may run: a frequency lock and a power cap (0: none; the TDP always holds).
struct Operating {
  double lock = 0;  ///< Hz
  double cap = 0;   ///< W per device
  bool operator==(const Operating&) const = default;
};

class StepTimer {
 public:
  /// `rt`: the software (nullptr: default_runtime()).
  StepTimer(ModelConfig m, ArchSpec a, int64_t tp, std::shared_ptr<const Runtime> rt = nullptr);
  const Runtime& runtime() const { return rt_ ? *rt_ : default_runtime(); }

  /// Seconds for one iteration. Prefill and decode parts run as separate passes (as inference
  /// engines without fused mixed batches do): their times add. Each part is einsim's mapped
  /// step at the grid points around the asked shape, interpolated linearly (prefill tokens and
  /// decode batch on a grid of 4 points per octave, context on 2 per octave).
  double time(const Iteration& it);
  /// The iteration under `op`: each part (prefill, decode) at the fastest allowed clock that
  /// keeps the device within the limit (`under_cap`); time, dynamic energy per device, power
  /// and clock of the two parts together.
  PoweredWork cost(const Iteration& it, const Operating& op);
  /// einsim's mapped step at one exact shape (no interpolation), for checks.
  double prefill_exact(int64_t tokens);
  double decode_exact(int64_t batch, int64_t context);
  const ArchSpec& arch() const { return a_; }

  /// Bytes of KV cache per token on one device of the tensor-parallel group.
  double kv_bytes_per_token() const { return kv_per_token_; }
  /// Bytes free for the KV cache per device: the first tier less the weights' share.
  double kv_capacity() const { return kv_capacity_; }
  int64_t runs() const { return runs_; }  ///< run_model calls made so far

 private:
  ClockedWork exact(size_t level, const Phase& p);
  ClockedWork prefill_at(size_t level, int64_t tokens);
  ClockedWork decode_at(size_t level, int64_t batch, int64_t context);
  /// One part (prefill tokens only, or decode only) at one clock level, interpolated.
  ClockedWork part(size_t level, const Iteration& it);
  ModelConfig m_;
  ArchSpec a_;
  int64_t tp_;
  std::shared_ptr<const Runtime> rt_;
  double kv_per_token_ = 0, kv_capacity_ = 0;
  std::vector<double> clocks_;   ///< DVFS clocks, highest first ({0}: nominal only)
  std::vector<ArchSpec> archs_;  ///< the architecture at each clock
  std::vector<ClockedWork> points_;  ///< cost()'s scratch
  std::map<std::pair<size_t, int64_t>, ClockedWork> prefill_;
  std::map<std::tuple<size_t, int64_t, int64_t>, ClockedWork> decode_;
  MapCache cache_;
  int64_t runs_ = 0;
};

/// The grid point at or below `n` (4 per octave when `fine`, else 2), and the next one up.
std::pair<int64_t, int64_t> grid_bracket(int64_t n, bool fine);

}  // namespace einsim
