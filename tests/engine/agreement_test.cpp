// SystemC elaborates once per process: this executable simulates every case of the matrix as
// its own system in one elaboration (tests/CMakeLists.txt registers it with a timeout).
#include <catch2/catch.hpp>

#include "common/paths.h"
#include "sim/engine/schedule.h"
#include "sim/engine/systemc_engine.h"
#include "sim/run/run.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

using namespace einsim;

namespace {

struct Case {
  std::string name;
  RunReport run;
  ArchSpec arch;
};
}  // namespace

TEST_CASE("engine: SystemC and analytical totals agree within 2% on contention-free cases", "[engine]") {
  std::vector<Case> cases;
  auto model_case = [&](const std::string& name, const std::string& arch, const std::string& model, PhaseKind kind, int64_t batch, int64_t len) {
    const ArchSpec a = load_arch(arch);
    RunOptions o;
    o.phase.kind = kind;
    o.phase.batch = batch;
    (kind == PhaseKind::Decode ? o.phase.context : o.phase.prompt) = len;
    o.phase.layers = 2;
    cases.push_back({name, run_model(load_model(model), a, o), a});
  };
  // Compute-bound GEMMs: prefill of 4K tokens (projections and MLP dominate).
  model_case("compute-bound prefill, H100", "h100", "llama-3-8b", PhaseKind::Prefill, 1, 4096);
  model_case("compute-bound prefill, A100", "a100", "llama-2-7b", PhaseKind::Prefill, 4, 2048);
  // Bandwidth-bound GEMVs: decode at batch 1 (every weight read once per token).
  model_case("bandwidth-bound decode, H100", "h100", "llama-3-8b", PhaseKind::Decode, 1, 4096);
  model_case("bandwidth-bound decode, laptop", "laptop-m1max", "opt-6.7b", PhaseKind::Decode, 1, 512);
  // The FuseMax attention tile loop: the 1-pass cascade on the FuseMax arrays.
  {
    const ArchSpec a = load_arch("fusemax");
    const Cascade c = load_cascade(config_path("workloads/attention-1pass.toml"),
                                   {"cascade.params.batch=1", "cascade.params.heads=4", "cascade.params.kv_len=16384", "cascade.params.q_len=16384",
                                    "cascade.params.head_dim=64", "cascade.params.block=256"});
    MapperOptions mo;
    cases.push_back({"FuseMax 1-pass attention tile loop", run_cascade(c, a, DType::FP16, Fusion::Greedy, mo), a});
  }
  std::vector<Schedule> schedules;
  for (const Case& c : cases) schedules.push_back(build_schedule(c.run, c.arch));
  const std::vector<EngineResult> res = simulate_systemc(schedules);
  REQUIRE(res.size() == cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].name << ": engine " << res[i].total << " s, analytical " << cases[i].run.step_time << " s");
    WARN(cases[i].name << ": engine " << res[i].total * 1e3 << " ms, analytical " << cases[i].run.step_time * 1e3 << " ms, "
                       << 100 * (res[i].total / cases[i].run.step_time - 1) << "%");
    CHECK(res[i].total == Approx(cases[i].run.step_time).epsilon(0.02));
    CHECK(res[i].total >= cases[i].run.step_time * (1 - 1e-9));  // the pipeline only adds its start-up
    CHECK(res[i].transactions > 0);
    for (size_t b = 0; b < cases[i].run.blocks.size(); ++b) {
      INFO("block " << b);
      CHECK(res[i].block_time[b] == Approx(cases[i].run.blocks[b].time).epsilon(0.02));
    }
    // Every resource did the work the cost model assigned it: busy time is conserved.
    const Schedule& s = schedules[i];
    std::vector<double> want(s.resources.size(), 0);
    for (const ScheduleBlock& b : s.blocks) {
      const double n = static_cast<double>(b.instances * b.tiles);
      for (const StageWork& w : b.loads) {
        const Resource& r = s.resources[static_cast<size_t>(w.resource)];
        want[static_cast<size_t>(w.resource)] += n * (w.read_bytes / r.read_bandwidth + w.write_bytes / r.write_bandwidth);
      }
      for (const StageWork& w : b.compute) want[static_cast<size_t>(w.resource)] += n * w.seconds;
    }
    for (size_t r = 0; r < s.resources.size(); ++r)
      if (s.resources[r].kind != ResourceKind::Dma) CHECK(res[i].busy[r] == Approx(want[r]).epsilon(1e-6).margin(1e-12));
  }
}
