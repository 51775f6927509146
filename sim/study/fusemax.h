#pragma once
// The FuseMax study (Nayak et al., MICRO 2024; docs/REFERENCES.md): attention and end-to-end
// encoder inference under the paper's five configurations, reproduced with einsim's own
// cascades (configs/workloads/attention-*.toml), presets (fusemax, flat), mapper and cost
// model. Nothing here is a formula for a result: every busy time, byte and joule comes from
// map_einsum() on an Einsum of the cascade; the study decides only what the paper's
// configurations decide (which cascade, which hardware, which Einsums fuse, which array runs
// each Einsum, and whether the two arrays overlap).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "sim/report/format.h"

namespace einsim {

/// The paper's ablation, in its order.
enum class FmConfig {
  Unfused,       ///< 3-pass cascade on FLAT hardware, every Einsum alone (each tensor round-trips DRAM)
  Flat,          ///< 3-pass cascade fused over a tile of queries (whole key fibers on chip), softmax on the 1D array
  Cascade,       ///< 1-pass cascade, fused, on FLAT hardware
  Architecture,  ///< 1-pass on FuseMax hardware (exp on the 2D array), one tile at a time: the arrays take turns
  Binding,       ///< full FuseMax: the paper's 2D/1D binding, software-pipelined so both arrays work at once
};
constexpr int kFmConfigs = 5;
std::string_view fm_config_name(FmConfig c);

/// One model's attention and linear-layer shapes (from its config file).
struct FmModel {
  std::string name;     ///< as the user names it: bert-base, trxl-wt103, t5-small-encoder, xlm
  std::string display;  ///< the config's name
  int64_t d_model = 0, heads = 0, head_dim = 0, ffn = 0, layers = 0;
};
FmModel load_fm_model(const std::string& name);

/// One configuration at one point.
struct FmCost {
  double latency = 0;      ///< s
  double energy = 0;       ///< J (dynamic: operations and DRAM, the 45 nm table)
  double dram_bytes = 0;   ///< read + written
  double buffer_bytes = 0; ///< global-buffer bytes the schedule keeps live at its peak
  double busy_2d = 0, busy_1d = 0, busy_dram = 0;  ///< s each resource works
  double util_2d = 0, util_1d = 0;                 ///< peak-rate work of the array / latency
  int64_t rows = 0;        ///< queries per fused tile (0: unfused)
  bool kv_read_once = false; ///< K and V come from DRAM once per head (held on chip across query tiles, or one tile)
  double spilled = 0;      ///< share of the live intermediates kept in DRAM (FLAT's long fibers)
  std::string bottleneck;  ///< "2D array", "1D array", "2D + 1D arrays (in turn)", "DRAM bandwidth"
  /// Per Einsum (fused configurations): the array it runs on ("2D", "1D") and its share of the
  /// latency that array spends on it, the paper's Fig. 7 (its artifact's per-Einsum shares).
  struct Activity {
    std::string einsum, array;
    double share = 0;
  };
  std::vector<Activity> activity;
};

struct FmPoint {
  FmModel model;
  int64_t seq = 0;
  std::array<FmCost, kFmConfigs> attention;   ///< one layer's attention, all heads and the batch
  std::array<FmCost, kFmConfigs> end_to_end;  ///< every layer: attention + Q/K/V/Z projections + FFN
};

/// The pass analysis at one sequence length: what each cascade must hold to avoid spilling.
struct FmPassRow {
  std::string model;
  int64_t seq = 0;
  int passes_3 = 0, passes_1 = 0;     ///< passes over M (pass_analysis)
  double buffer_3 = 0, buffer_1 = 0;  ///< live bytes for one tile of 256 queries
  int64_t flat_rows = 0;              ///< FLAT's chosen query tile
  bool flat_kv_read_once = false;
  double flat_spilled = 0;            ///< share of FLAT's live score fibers in DRAM
  double flat_dram_share = 0;         ///< FLAT: DRAM busy / latency
  std::string flat_bottleneck;
};

struct FmHeadline {
  std::string what;
  double paper = 0;
  double einsim = 0;
  double error() const { return einsim / paper - 1; }
};

/// Area of one design, per component (um^2), from the FuseMax artifact's Accelergy area table
/// (45 nm; docs/REFERENCES.md): each PE's MAC (its adder counted in it), max unit, exp unit and
/// divider where it has them, and its register file at the table's area per 16-bit word; the
/// global buffer at the table's area per byte (its 32 MiB CACTI point, scaled linearly).
struct FmArea {
  double array_2d = 0;  ///< the 2D array's PEs
  double array_1d = 0;  ///< the 1D array's PEs
  double buffer = 0;    ///< the global buffer
  double total() const { return array_2d + array_1d + buffer; }
};
/// The area of FuseMax's (`fusemax`) or FLAT's design with an n x n 2D array, n 1D PEs,
/// `buffer_bytes` of global buffer and register files of the given 16-bit words per PE.
FmArea fm_area(bool fusemax, int64_t n, double buffer_bytes, double rf_words_2d, double rf_words_1d);

/// One design of the paper's area-latency trade-off (Fig. 12): FuseMax with an n x n 2D array
/// and n 1D PEs, its buffer doubled from the artifact's minimum until attention is no longer
/// bound by DRAM at the sweep's sequence length.
struct FmParetoPoint {
  std::string model;
  int64_t pe_dim = 0;
  double buffer_bytes = 0;
  double latency = 0;     ///< s, one layer's attention (batch, all heads)
  double dram_bytes = 0;
  bool memory_bound = false;  ///< still DRAM-bound at the largest buffer tried (1 GiB)
  FmArea area;
};

struct FmStudy {
  int64_t batch = 64;
  std::vector<FmPoint> points;
  std::vector<FmPassRow> passes;
  std::vector<FmHeadline> headlines;  ///< arithmetic means of per-point ratios, FuseMax vs FLAT
  int64_t mappings = 0;               ///< mapper searches run (after memoisation)
  FmArea area_fusemax, area_flat;     ///< the two presets' designs
  std::vector<FmParetoPoint> pareto;  ///< with FmOptions::pareto
};

struct FmOptions {
  std::vector<std::string> models = {"bert-base", "trxl-wt103", "t5-small-encoder", "xlm"};
  std::vector<int64_t> seqs = {1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20};
  int64_t batch = 64;
  /// Overrides of the two architectures ("arch.KEY=VALUE", checked like file values).
  std::vector<std::string> fusemax_sets, flat_sets;
  /// "einsim" (default): einsim's physical model. "artifact": the paper artifact's definitions
  /// where they differ (so far: FLAT's live score fibers are not charged against its buffer,
  /// so nothing spills; docs/STUDIES.md lists what this reading covers).
  std::string reading = "einsim";
  /// The area-latency sweep (Fig. 12): these 2D array sides (and 1D widths), at this length.
  bool pareto = false;
  std::vector<int64_t> pe_dims = {16, 32, 64, 128, 256, 512};
  int64_t pareto_seq = 1 << 18;
};

/// Runs the whole study. Throws UserError for unknown models or bad sequence lengths.
FmStudy run_fusemax_study(const FmOptions& opt);

/// Busy cycles of each array for one 256x256 (M0 x P0) tile of the 1-pass loop body under
/// the FuseMax binding, from the mapper.
struct FmTileCycles {
  double cycles_2d = 0, cycles_1d = 0;
};
FmTileCycles fusemax_tile_cycles(int64_t head_dim);

/// Table (every point and configuration, the pass analysis, the headlines), JSON or CSV.
std::string format_fusemax(const FmStudy& s, Format f);
/// SVG: attention and end-to-end speedup of FuseMax over FLAT against sequence length, per model.
std::string plot_fusemax_svg(const FmStudy& s);

}  // namespace einsim
