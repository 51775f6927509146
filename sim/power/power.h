#pragma once
// Device power: the active baseline (idle power when there is no work) plus the dynamic energy the cost model predicts (energy per
// operation and per byte) over the step time, within the TDP or a lower cap. Lowering the
// clock (a DVFS point) slows the arrays in proportion and scales their energy per operation by
// (clock ratio)^energy_exponent; memory time and energy do not change. So compute-bound work
// slows with the clock and saves power, memory-bound work barely notices.
#include <vector>

#include "arch/arch.h"
#include "sim/run/run.h"

namespace einsim {

/// The architecture with its arrays' clocks limited to `clock` (Hz) and their energy per
/// operation scaled by (new clock / old clock)^energy_exponent.
ArchSpec at_clock(const ArchSpec& a, double clock);

/// The clocks a device may run at under a frequency lock of `lock` Hz (0: unlocked): the
/// architecture's DVFS points at or below it, highest first (the lowest point when the lock
/// is below them all); without DVFS points, the nominal clock only (returned as 0).
std::vector<double> dvfs_clocks(const ArchSpec& a, double lock);

/// One piece of work (a step, or part of one) at one clock, per device.
struct ClockedWork {
  double clock = 0;           ///< Hz (0: nominal)
  double time = 0;            ///< s
  double compute_energy = 0;  ///< J
  double memory_energy = 0;   ///< J
  double dynamic() const { return compute_energy + memory_energy; }
};

/// The limit a device keeps to: `cap` W (0: none) and the TDP, whichever is lower (0: none).
double power_limit(const PowerSpec& p, double cap);

/// Power of one device doing `w`: the active baseline + dynamic energy over the time (idle when it takes no time).
double work_power(const PowerSpec& p, const ClockedWork& w);

/// Work under a power limit.
struct PoweredWork {
  double time = 0;       ///< s
  double energy = 0;     ///< J dynamic, per device
  double compute_energy = 0;  ///< J of `energy` in the arrays' operations
  double power = 0;      ///< W per device, average
  double clock = 0;      ///< Hz, time-weighted (0: nominal)
  bool throttled = false;  ///< ran below the fastest allowed point to keep within the limit
  bool over = false;       ///< even the slowest point exceeds the limit
};

/// `points` (highest clock first) under a limit of `cap` W per device: the fastest point whose
/// power fits; when the fastest does not, the mix of the two points around the limit that
/// meets it exactly (a share of the work at each: firmware moves the clock in steps much finer
/// than the lockable points); the slowest point, flagged `over`, when none fits.
PoweredWork under_cap(const PowerSpec& p, const std::vector<ClockedWork>& points, double cap);

/// einsim's run of one step under power management: the step at each allowed clock (up to
/// `lock` Hz; 0: unlocked) until one keeps within `cap` W per device (0: the TDP), lower
/// clocks running the mappings chosen at the fastest (the same kernels, slower). The report
/// is the run at the fastest point used, with the step time, energy and power of the mix.
RunReport run_powered(const ModelConfig& m, const ArchSpec& a, const RunOptions& o, double lock, double cap, MapCache* cache = nullptr);

}  // namespace einsim
