// SystemC elaborates once per process, so Google Benchmark cannot repeat a simulation: this
// command times one simulation per run and `make bench` runs it several times and takes the
// median. Usage: einsim_engine_bench decode|layered|trace-tp4|transactions
//   decode: the blocks one after another; layered: the same step layer by layer (LayerPlan);
//   trace-tp4: layer by layer on all four ranks of TP 4, recorded and written as a trace.
#include <chrono>
#include <cstdio>
#include <string>

#include "sim/engine/schedule.h"
#include "sim/engine/systemc_engine.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

using namespace einsim;

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "decode";
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const ArchSpec a = load_arch("h100");
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 4096;
  const bool traced = what == "trace-tp4";
  if (traced) o.tp = 4;
  const RunReport r = run_model(load_model("llama-3-8b"), a, o);
  ScheduleOptions so;
  so.tiles = what == "transactions" ? 1024 : 64;
  so.layered = what == "layered" || traced;
  so.every_rank = traced;
  const Schedule s = build_schedule(r, a, so);
  const auto t1 = clock::now();
  EngineOptions eo;
  eo.trace = traced;
  eo.tile_names = false;  // as `run --trace` without --tiles
  std::vector<EngineResult> results = simulate_systemc({s}, eo);
  const EngineResult e = std::move(results.front());
  const auto ts = clock::now();
  size_t trace_bytes = 0;
  if (traced) trace_bytes = chrome_trace(s, e, TraceOptions{false, 400}).size();
  const auto t2 = clock::now();
  const double write_s = std::chrono::duration<double>(t2 - ts).count();
  const double map_s = std::chrono::duration<double>(t1 - t0).count(), sim_s = std::chrono::duration<double>(t2 - t1).count();
  if (traced)
    std::printf("%.3f s: engine, a Llama-3-8B TP 4 decode step on all four ranks, traced (simulation and trace %.3f s, of which writing the trace %.3f s; mapping %.3f s); "
                "%lld transactions, %zu trace bytes; simulated %.4f ms vs analytical %.4f ms\n",
                map_s + sim_s, sim_s, write_s, map_s, static_cast<long long>(e.transactions), trace_bytes, e.total * 1e3, r.step_time * 1e3);
  else if (what == "transactions")
    std::printf("%.3g transactions/s: engine, %lld TLM transactions in %.3f s (Llama-3-8B decode, H100, %lld tiles per block instance)\n",
                static_cast<double>(e.transactions) / sim_s, static_cast<long long>(e.transactions), sim_s, static_cast<long long>(so.tiles));
  else
    std::printf("%.3f s: engine, one Llama-3-8B decode step (batch 1, context 4096) on H100 at %lld tiles per block instance, mapped and "
                "simulated (simulation %.3f s, mapping %.3f s); %lld transactions; simulated %.4f ms vs analytical %.4f ms\n",
                map_s + sim_s, static_cast<long long>(so.tiles), sim_s, map_s, static_cast<long long>(e.transactions), e.total * 1e3, r.step_time * 1e3);
  return 0;
}
