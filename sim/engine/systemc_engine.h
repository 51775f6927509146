#pragma once
// The SystemC/TLM-2.0 timing engine: executes Schedules (sim/engine/schedule.h) on TLM
// modules. SystemC is confined to systemc_engine.cpp; this header is plain C++.
//
// Modules, named after the architecture (system.gpu0.hbm, system.gpu0.l2, system.gpu0.pcie,
// system.gpu0.tensor, system.gpu0.dma0, ...):
// - every tier, level, link and array is a TLM target with a multi-initiator socket; a
//   transaction occupies it for bytes / bandwidth (reads and writes at their own bandwidths)
//   or, on an array, for the compute seconds it carries; transactions queue first come first
//   served, so concurrent initiators share a resource's bandwidth in the order they reach it;
// - the executor (an initiator) runs the blocks in order, instance by instance, tile by tile,
//   double buffered: the loads of tile i+1 (one transaction per level and link, issued
//   together) overlap the compute of tile i (one per array); a launch and a fill/drain open
//   each instance;
// - a DMA engine per background transfer streams its bytes in chunks over its path.
// Loosely timed with temporal decoupling: initiators run ahead of SystemC time by at most the
// global quantum (EngineOptions::quantum) before they yield; ordering between initiators is
// exact to within one quantum.
#include <vector>

#include "sim/engine/schedule.h"

namespace einsim {

struct EngineOptions {
  double quantum = 1e-6;  ///< s
  bool trace = false;     ///< record every transaction as a TraceEvent
  bool tile_names = true; ///< with trace: name each transaction by its block, instance and tile (else only its bytes and times are kept, for counters)
};

/// Simulates every schedule as its own independent system (system0, system1, ... in one
/// elaboration) and returns one result each. SystemC elaborates once per process: a second
/// call throws InternalError.
std::vector<EngineResult> simulate_systemc(const std::vector<Schedule>& schedules, const EngineOptions& o = {});

}  // namespace einsim
