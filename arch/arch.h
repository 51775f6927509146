#pragma once
// Hardware description: one vocabulary for spatial accelerators and GPUs. Off-chip memory
// tiers feed on-chip storage levels, which feed compute arrays; links join tiers and devices.
// All quantities are SI (bytes, B/s, s, Hz, J, W, $).
#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/paths.h"  // presets are found through it (and a package build registers its folder)
#include "common/toml_reader.h"
#include "workloads/cascade.h"

namespace einsim {

enum class TierKind { HBM, DDR, LPDDR, GDDR, CXL, Flash, SSD };
std::string_view tier_kind_name(TierKind k);

/// Read bandwidth of a flash or SSD tier at one request size and queue depth (measured).
struct FlashPoint {
  double request = 0;   ///< bytes per read request
  int64_t queue_depth = 1;
  double bandwidth = 0; ///< B/s
};

/// Off-chip memory: HBM, DDR, flash...
struct MemoryTier {
  std::string name;
  TierKind kind = TierKind::HBM;
  double capacity = 0;        ///< bytes
  double read_bandwidth = 0;  ///< B/s
  double write_bandwidth = 0; ///< B/s
  double latency = 0;         ///< s, first byte of a request
  double energy = 0;          ///< J/B moved
  std::vector<FlashPoint> read_table;  ///< flash/ssd only; sorted by (queue depth, request size)
  /// Devices sharing this tier (a host socket's DDR5 behind 4 GPUs): each device gets this
  /// share of its capacity and bandwidth, and of its own links' (`run --kv-tier`).
  int64_t shared_by = 1;
  SourceLoc loc;
  /// Read bandwidth for requests of `request` bytes at `queue_depth` outstanding requests:
  /// log-linear interpolation in request size at the nearest measured queue depth not above
  /// it; the streaming bandwidth when there is no table.
  double read_bandwidth_at(double request, int64_t queue_depth) const;
};

/// On-chip storage: L2 / global buffer, SMEM / PE buffers, register files.
struct StorageLevel {
  std::string name;
  std::string parent;      ///< the tier or level that fills it
  double capacity = 0;     ///< bytes per instance
  int64_t instances = 1;   ///< fan-out (e.g. one SMEM per SM)
  double bandwidth = 0;    ///< B/s, all instances together
  double read_energy = 0;  ///< J/B
  double write_energy = 0; ///< J/B
  SourceLoc loc;
};

/// A compute array: a 2D grid or 1D row of PEs, replicated `instances` times (SMs on a GPU).
struct ComputeArray {
  std::string name;
  std::vector<int64_t> shape;  ///< {rows, cols} (2D) or {pes} (1D), per instance
  int64_t instances = 1;
  double clock = 0;            ///< Hz
  std::string level;           ///< the storage level that feeds it
  /// Operations per cycle per PE, by operation class and element type.
  std::map<OpClass, std::map<DType, double>> ops_per_cycle;
  /// Energy per operation by class, J (absent: not modelled).
  std::map<OpClass, double> energy;
  /// Classes with a dedicated, pipelined unit in every PE (FLAT's exp unit): their operations
  /// overlap those of the PE's shared datapath instead of queueing behind them.
  std::set<OpClass> own_unit;
  SourceLoc loc;

  int64_t pes() const;
  /// Peak operations per second of one class at one element type (0 when unsupported).
  double peak_ops(OpClass c, DType t) const;
  /// Peak FLOP/s with MACs counted as two (dense).
  double peak_flops(DType t) const { return 2.0 * peak_ops(OpClass::Mac, t); }
};

enum class LinkKind { PCIe, NVLink, CXL, NVMe, Ethernet, InfiniBand, OnPackage, NVLinkC2C, XGMI, ICI, RoCE };
std::string_view link_kind_name(LinkKind k);

/// How a collective moves its data over a peer link (arch/collective.h).
enum class CollectiveAlgo { Ring, Tree, Sharp, P2P };
inline constexpr size_t kCollectiveAlgos = 4;
std::string_view collective_algo_name(CollectiveAlgo a);

/// What one algorithm costs on a link beyond its bytes: a fixed time per collective (the
/// kernel's start and the ranks' synchronisation) and the fraction of the link's bandwidth it
/// reaches. Fitted per link (docs/CALIBRATION.md).
struct AlgoCost {
  double base = 0;        ///< s per collective
  double efficiency = 1;  ///< of `bandwidth`
  bool configured = false;  ///< the link's file sets it (a tree is a candidate only then)
};

/// A link between two tiers or devices; bandwidth is per direction.
struct Link {
  std::string name;
  LinkKind kind = LinkKind::PCIe;
  std::string from, to;   ///< tiers of this arch, or "host", "peer", "network"
  double bandwidth = 0;   ///< B/s per direction
  double latency = 0;     ///< s: a transfer's first byte; per step (hop) of a collective
  double energy = 0;      ///< J/B
  /// The switch reduces in the network (NVLink SHARP): all-reduce moves each byte once.
  bool sharp = false;
  /// Peer links (`to = "peer"`): the devices one scale-up domain joins (an HGX board's 8, an
  /// NVL72 rack's 72, a TPU pod slice's 256). A group larger than this spans domains, joined
  /// by the `to = "network"` link (arch/collective.h prices it hierarchically).
  int64_t domain = 8;
  /// A peer link whose domain is a torus of these dimensions (a TPU pod: [16, 16]; their
  /// product is `domain`), each device with two ports per dimension sharing `bandwidth`
  /// equally; empty: a switched domain (NVSwitch), every device at full bandwidth to any other.
  std::vector<int64_t> torus;
  /// Network links (`to = "network"`): the fabric's oversubscription above the leaf switches
  /// (2: a 2:1 fat tree). Rail-optimized rings, trees and send/recv between the same local
  /// ranks stay on their rail at full bandwidth; an all-to-all's traffic between domains
  /// crosses the spine at bandwidth / oversubscription. 1: non-blocking (the HGX and DGX
  /// reference fabrics).
  double oversubscription = 1;
  /// The sub-torus a group of `n` devices of this domain occupies (one factor per dimension,
  /// as square as they allow: 8 chips of a [16, 16] torus are 2 x 4), or empty when
  /// `n` cannot form one. For a switched domain, {n}.
  std::vector<int64_t> group_shape(int64_t n) const;
  std::array<AlgoCost, kCollectiveAlgos> collective{};  ///< by CollectiveAlgo
  SourceLoc loc;
};

struct DvfsPoint {
  double clock = 0;  ///< Hz
  double power = 0;  ///< W at full load, if known (0: unknown)
};

struct PowerSpec {
  double idle = 0;    ///< W with no work
  double active = 0;  ///< W while kernels run, before their dynamic energy (clocks ungated, leakage at the operating voltage)
  double tdp = 0;     ///< W
  std::vector<DvfsPoint> dvfs;  ///< allowed clocks, highest first
  /// Energy per operation scales as (clock / nominal clock)^energy_exponent when the clock is
  /// lowered: 2 when the supply voltage falls in proportion to the clock (dynamic energy is
  /// C V^2 per switch), 0 when the voltage stays fixed.
  double energy_exponent = 2;
};

struct CostSpec {
  std::optional<double> price;  ///< $ to buy
  std::optional<double> rate;   ///< $/s to rent
};

/// What GPUs need to be predicted well; each value is documented in the preset.
struct GpuRealism {
  /// s per kernel: the runtime's (arch/runtime.h, with_runtime()), never a preset's; 0 until
  /// a runtime is applied.
  double launch_overhead = 0;
  bool wave_quantization = true;  ///< work is issued to SMs in whole waves of thread blocks
  /// Achievable fraction of peak per operation class (calibrated, see docs).
  std::map<OpClass, double> efficiency;
  double memory_efficiency = 1;  ///< achievable fraction of tier bandwidth
  /// The runtime's kernel quality per KernelKind (arch/runtime.h), set with the launch cost.
  std::array<double, 9> kind_efficiency{1, 1, 1, 1, 1, 1, 1, 1, 1};
};

enum class ArchKind { GPU, Accelerator, Host };

struct ArchSpec {
  std::string name;
  ArchKind kind = ArchKind::GPU;
  std::vector<MemoryTier> tiers;
  std::vector<StorageLevel> levels;
  std::vector<ComputeArray> arrays;
  std::vector<Link> links;
  PowerSpec power;
  CostSpec cost;
  std::optional<GpuRealism> gpu;
  SourceLoc loc;

  const MemoryTier* tier(std::string_view name) const;
  const StorageLevel* level(std::string_view name) const;
  const ComputeArray* array(std::string_view name) const;
  const Link* link(std::string_view name) const;
  /// Peak dense FLOP/s over all arrays at `t`.
  double peak_flops(DType t) const;
};

/// How one device reaches a tier other than the one feeding its arrays (host memory, a CXL
/// expander, an SSD): over a link joining the two tiers directly, or over the tier's own links
/// (a CXL or NVMe link into the host) and then the device's host link (`to = "host"`). Each
/// bandwidth is this device's share: the tier's and its own links' divided by `shared_by`.
struct TierPath {
  double read_bandwidth = 0, write_bandwidth = 0;  ///< B/s per device, the narrowest stage
  double energy = 0;                                ///< J/B: the tier's and every link's
  std::vector<std::string> links;                   ///< the links crossed, tier side first
  double capacity = 0;                              ///< bytes per device
};
/// The path from `tier` of `a` to its device tier `device`; nullopt (with `why`) when none.
std::optional<TierPath> tier_path(const ArchSpec& a, const std::string& tier, const std::string& device, std::string* why = nullptr);
/// `host` (kind = "host": a socket's DDR5, a CXL expander, an SSD) attached to `a`: its tiers
/// and its links into the host (to or from "host") join `a`'s; a name both use is an error at
/// `at`.
ArchSpec attach(ArchSpec a, const ArchSpec& host, const SourceLoc& at);

/// Reads `[arch]` of a document (does not call finish()). Throws located UserErrors.
ArchSpec read_arch(const ConfigTable& arch);
/// Loads an architecture file (with `inherits` and `--set` overrides) or a shipped preset name.
ArchSpec load_arch(const std::string& file_or_preset, const std::vector<std::string>& overrides = {});

}  // namespace einsim
