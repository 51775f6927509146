#pragma once
// The software that runs a model on the hardware: what it adds per kernel, per iteration and
// per request, and how close its kernels come to the hardware's calibrated rates per kernel
// kind. A GPU preset (configs/arch) holds hardware only; a runtime preset (configs/runtimes)
// holds this, so an A100-against-H100 comparison compares GPUs, not harnesses.
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "arch/arch.h"
#include "common/error.h"
#include "workloads/transformer.h"

namespace einsim {

/// What a GPU kernel does, as far as its software quality goes. kernel_kind() in
/// sim/run/run.h is the one place that classifies a fused block.
/// GemmFp8: fp8 or block-scaled (MXFP8/6/4, NVFP4) inputs with scales, a bf16 output: no
/// measurement of a block-scaled GEMM is in the project, so they share the fp8 kernels' quality.
/// GemmW8A16 and GemmW4A16: weight-only quantized weights (int8 or MXFP8; int4, MXFP6, MXFP4 or
/// NVFP4) dequantized in the GEMM's prologue (grouped or not: the dequantization is the
/// kernel's character).
enum class KernelKind { Gemm, GemmFp8, GemmW8A16, GemmW4A16, GroupedGemm, AttentionPrefill, AttentionDecode, Rowwise, Elementwise };
inline constexpr size_t kKernelKinds = 9;
static_assert(kKernelKinds == std::tuple_size_v<decltype(GpuRealism::kind_efficiency)>);
std::string_view kernel_kind_name(KernelKind k);

/// Which phases replay captured CUDA graphs (one launch per step; per kernel, the graph's
/// node cost instead of a launch).
enum class GraphMode { None, Decode, All };

struct Runtime {
  std::string name;
  double kernel_launch = 0;  ///< s per kernel outside a graph: host dispatch and launch
  double graph_node = 0;     ///< s per kernel replayed from a graph
  GraphMode graphs = GraphMode::None;
  double iteration = 0;      ///< s of host time per forward step (scheduling, sampling), not overlapped
  double request = 0;        ///< s per request admitted (tokenisation, set-up), on the step that admits it
  /// Scales the links' fitted collective bases (measured under PyTorch eager, where ranks
  /// reach a collective apart): 1 there, less where ranks run in lockstep (graphs).
  double collective_base = 1;
  /// Achieved fraction of the calibrated rates (compute and bandwidth) per kernel kind (1: as
  /// the GEMM calibration).
  std::array<double, kKernelKinds> efficiency{1, 1, 1, 1, 1, 1, 1, 1, 1};
  SourceLoc loc;

  /// Whether graphs replay the steps of `phase`.
  bool graphed(PhaseKind phase) const { return graphs == GraphMode::All || (graphs == GraphMode::Decode && phase == PhaseKind::Decode); }
  /// The per-kernel cost in a phase (a graph's node cost where graphs run it).
  double per_kernel(PhaseKind phase) const { return graphed(phase) ? graph_node : kernel_launch; }
  double kernel_efficiency(KernelKind k) const { return efficiency[static_cast<size_t>(k)]; }
};

/// The runtime's name and every value, as text: two runtimes with the same key cost alike.
std::string runtime_key(const Runtime& r);

/// Loads a runtime file (with `inherits` and `runtime.KEY=V` overrides) or a shipped preset
/// name (configs/runtimes).
Runtime load_runtime(const std::string& file_or_preset, const std::vector<std::string>& overrides = {});

/// `a` as `rt` runs it in `phase`: the per-kernel cost the cost model charges.
ArchSpec with_runtime(const ArchSpec& a, const Runtime& rt, PhaseKind phase);

/// The runtime a run gets when it names none: an inference engine (CUDA graphs in decode).
inline constexpr const char* kDefaultRuntime = "inference-engine";
/// kDefaultRuntime, loaded once.
const Runtime& default_runtime();

}  // namespace einsim
