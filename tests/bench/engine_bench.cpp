// SystemC elaborates once per process, so Google Benchmark cannot repeat a simulation: this
// command times one simulation per run and `make bench` runs it several times and takes the
// median. Usage: einsim_engine_bench decode|transactions
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
  const RunReport r = run_model(load_model("llama-3-8b"), a, o);
  ScheduleOptions so;
  so.tiles = what == "transactions" ? 1024 : 64;
  const Schedule s = build_schedule(r, a, so);
  const auto t1 = clock::now();
  const EngineResult e = simulate_systemc({s}).front();
  const auto t2 = clock::now();
  const double map_s = std::chrono::duration<double>(t1 - t0).count(), sim_s = std::chrono::duration<double>(t2 - t1).count();
  if (what == "transactions")
    std::printf("%.3g transactions/s: engine, %lld TLM transactions in %.3f s (Llama-3-8B decode, H100, %lld tiles per block instance)\n",
                static_cast<double>(e.transactions) / sim_s, static_cast<long long>(e.transactions), sim_s, static_cast<long long>(so.tiles));
  else
    std::printf("%.3f s: engine, one Llama-3-8B decode step (batch 1, context 4096) on H100 at %lld tiles per block instance, mapped and "
                "simulated (simulation %.3f s, mapping %.3f s); %lld transactions; simulated %.4f ms vs analytical %.4f ms\n",
                map_s + sim_s, static_cast<long long>(so.tiles), sim_s, map_s, static_cast<long long>(e.transactions), e.total * 1e3, r.step_time * 1e3);
  return 0;
}
