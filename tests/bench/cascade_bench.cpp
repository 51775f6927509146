// Benchmarks of the workload layer. Run with `make bench`.
#include <benchmark/benchmark.h>

#include "common/paths.h"
#include "sim/analyze/power.h"
#include "sim/serve/deploy.h"
#include "sim/serve/serve.h"

#include "arch/arch.h"
#include "sim/cost/mapper.h"
#include "sim/run/placement.h"
#include "sim/run/run.h"
#include "sim/study/fusemax.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

namespace {

using namespace einsim;

const ModelConfig& llama3_70b() {
  static const ModelConfig m = load_model(config_path("models/llama-3-70b.toml"));
  return m;
}

// Parse (generate the Einsum text and parse it), check (bind: shapes, DAG, schedule) and count
// (operation and byte totals) the Llama-3-70B decode cascade, all 80 layers.
void BM_Llama3_70B_Decode_ParseCheckCount(benchmark::State& state) {
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.batch = 16;
  ph.context = 32768;
  ph.attention = state.range(0) ? AttentionKind::OnePass : AttentionKind::ThreePass;
  size_t einsums = 0;
  for (auto _ : state) {
    const Cascade c = bind_cascade(transformer_cascade(llama3_70b(), ph));
    const CascadeStats s = analyze(c);
    benchmark::DoNotOptimize(s.ops.flops());
    einsums = c.einsums.size();
  }
  state.counters["einsums"] = static_cast<double>(einsums);
}
BENCHMARK(BM_Llama3_70B_Decode_ParseCheckCount)->Arg(1)->Arg(0)->ArgName("onepass")->Unit(benchmark::kMillisecond);

// The parse step alone, for the same cascade.
void BM_Llama3_70B_Decode_Parse(benchmark::State& state) {
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.batch = 16;
  ph.context = 32768;
  for (auto _ : state) benchmark::DoNotOptimize(transformer_cascade(llama3_70b(), ph).einsums.size());
}
BENCHMARK(BM_Llama3_70B_Decode_Parse)->Unit(benchmark::kMillisecond);

// Loading, checking and counting the 1-pass attention cascade file.
void BM_Attention1Pass_File(benchmark::State& state) {
  const std::string file = config_path("workloads/attention-1pass.toml");
  for (auto _ : state) benchmark::DoNotOptimize(analyze(load_cascade(file)).ops.flops());
}
BENCHMARK(BM_Attention1Pass_File)->Unit(benchmark::kMicrosecond);

// The mapper alone on a 4096^3 GEMM (branch and bound over the documented space).
void BM_Mapper_GEMM4096(benchmark::State& state, const char* arch, DType dt) {
  const Cascade c = gemm_cascade(4096, 4096, 4096);
  const ArchSpec a = load_arch(arch);
  int64_t evaluated = 0;
  for (auto _ : state) {
    const MapResult r = map_einsum(c, c.einsums[0], a, dt);
    evaluated = r.evaluated;
    benchmark::DoNotOptimize(r.cost.time);
  }
  state.counters["mappings"] = static_cast<double>(evaluated);
}
BENCHMARK_CAPTURE(BM_Mapper_GEMM4096, fusemax, "fusemax", DType::FP16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Mapper_GEMM4096, h100, "h100", DType::BF16)->Unit(benchmark::kMillisecond);

// One model step, cold (an empty cache each time) or warm (state.range(0) != 0: the cache of
// an earlier run of the same design point, its mappings, bound cascade and grouping memoised;
// the report is redone).
void run_step(benchmark::State& state, const ModelConfig& m, const ArchSpec& a, const RunOptions& opt) {
  const bool warm = state.range(0) != 0;
  MapCache cache;
  if (warm) run_model(m, a, opt, &cache);
  int64_t evaluated = 0;
  for (auto _ : state) {
    MapCache cold;
    const RunReport r = run_model(m, a, opt, warm ? &cache : &cold);
    evaluated = r.mappings_evaluated;
    benchmark::DoNotOptimize(r.step_time);
  }
  state.counters["mappings"] = static_cast<double>(evaluated);
}

// A full Llama-3-70B decode step (batch 16, context 32K, 80 layers, TP 4 so it fits) on the
// H100 preset: build the cascade, fuse, map every Einsum, add up.
void BM_Run_Llama3_70B_Decode_H100(benchmark::State& state) {
  RunOptions opt;
  opt.phase.kind = PhaseKind::Decode;
  opt.phase.batch = 16;
  opt.phase.context = 32768;
  opt.tp = 4;
  run_step(state, llama3_70b(), load_arch("h100"), opt);
}
BENCHMARK(BM_Run_Llama3_70B_Decode_H100)->Arg(0)->Arg(1)->ArgName("warm")->Unit(benchmark::kMillisecond);

// A DeepSeek-V3 decode step (batch 64, context 8K, fp8 weights, EP 8 with data-parallel
// attention on 8 H200s): latent attention, two layer kinds, grouped routing, dispatched
// experts (target: under 5 ms cold, 1 ms warm). The second argument: the mapper's threads
// (`einsim run` uses every core).
void BM_Run_DeepSeekV3_Decode_EP8_H200(benchmark::State& state) {
  static const ModelConfig m = load_model("deepseek-v3");
  RunOptions opt;
  opt.phase.kind = PhaseKind::Decode;
  opt.phase.batch = 64;
  opt.phase.context = 8192;
  opt.ep = 8;
  opt.mapper.threads = static_cast<int>(state.range(1));
  run_step(state, m, load_arch("h200"), opt);
}
BENCHMARK(BM_Run_DeepSeekV3_Decode_EP8_H200)->ArgsProduct({{0, 1}, {1, 2}})->ArgNames({"warm", "threads"})->Unit(benchmark::kMillisecond);

// What the mapper's tile cap per level gives up on whole models: the predicted step time
// (counter step_ms) and the search cost against max_tiles, for a memory-bound decode step and
// a compute-bound prefill.
void BM_Run_TileCap(benchmark::State& state, const char* model, bool prefill) {
  const ArchSpec a = load_arch("h100");
  const ModelConfig m = load_model(config_path(std::string("models/") + model + ".toml"));
  RunOptions opt;
  opt.phase.kind = prefill ? PhaseKind::Prefill : PhaseKind::Decode;
  opt.phase.batch = 16;
  opt.phase.context = 32768;
  opt.phase.prompt = 2048;
  opt.tp = prefill ? 1 : 4;
  opt.mapper.max_tiles = state.range(0);
  double step = 0;
  for (auto _ : state) step = run_model(m, a, opt).step_time;
  state.counters["step_ms"] = step * 1e3;
}
BENCHMARK_CAPTURE(BM_Run_TileCap, llama3_70b_decode, "llama-3-70b", false)->Arg(64)->Arg(128)->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Run_TileCap, llama3_8b_prefill, "llama-3-8b", true)->Arg(64)->Arg(128)->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond)->Iterations(1);

// The whole FuseMax study: 4 models x 6 sequence lengths x 5 configurations, attention and
// end to end, from a cold start (no mapping memoised between iterations).
void BM_FuseMaxStudy(benchmark::State& state) {
  int64_t mappings = 0;
  for (auto _ : state) {
    const FmStudy s = run_fusemax_study(FmOptions{});
    mappings = s.mappings;
    benchmark::DoNotOptimize(s.headlines.data());
  }
  state.counters["mapper_searches"] = static_cast<double>(mappings);
}
BENCHMARK(BM_FuseMaxStudy)->Unit(benchmark::kMillisecond)->Iterations(1);

// The serving simulation (einsim serve): the one-hour conversation trace (19,366 requests) on
// one 8-GPU server (Llama-3-8B, TP 1, 8 instances on H100), and one hour of Poisson arrivals
// at 40 times the trace's rate (221 requests/s, 795,600 requests, sizes from the trace) on 40
// such servers. Step times memoised from cold each iteration (the StepTimer is rebuilt).
void BM_Serve(benchmark::State& state) {
  const int64_t servers = state.range(0);
  const ArchSpec a = load_arch("h100");
  const ModelConfig m = load_model(config_path("models/llama-3-8b.toml"));
  const Trace conv = load_trace("conv");
  Trace t = conv;
  if (servers > 1) {
    SyntheticTrace st;
    st.rate = 5.525 * static_cast<double>(servers);
    st.count = static_cast<int64_t>(st.rate * 3600);
    st.seed = 1;
    st.sizes = &conv;
    t = synthetic_trace(st);
  }
  ServeConfig c;
  c.instances_per_server = 8;
  c.servers = servers;
  int64_t iterations = 0;
  for (auto _ : state) {
    StepTimer timer(m, a, 1);
    const ServeResult r = simulate_serving(t, c, timer, a);
    iterations = r.iterations;
  }
  state.counters["requests"] = static_cast<double>(t.requests.size());
  state.counters["iterations"] = static_cast<double>(iterations);
}
BENCHMARK(BM_Serve)->Arg(1)->Arg(40)->ArgName("servers")->Unit(benchmark::kMillisecond)->Iterations(1);

// Serving as engines run it, on the one-hour conversation trace, timers built from cold each
// iteration: Llama-3-70B on 16 H100s as a 3:1 disaggregated deployment (TP 4 instances, KV
// caches over 400 Gb/s NICs); Llama-3-8B on 8 instances with prefix caching (a 1024-token
// system prompt on 80% of requests); and with speculative decoding (an MTP head, k 3,
// acceptance 0.7).
void BM_ServeModes(benchmark::State& state) {
  const int64_t mode = state.range(0);
  const Trace conv = load_trace("conv");
  Trace t = conv;
  Deployment d{load_model(config_path(mode == 0 ? "models/llama-3-70b.toml" : "models/llama-3-8b.toml")), load_arch("h100"), nullptr, std::nullopt, true,
               {}, std::nullopt, 0, std::nullopt};
  if (mode == 0) {
    d.config.tp = 4;
    d.config.disagg.prefill = 3;
    d.config.disagg.decode = 1;
    d.config.disagg.bandwidth = 50e9;
    d.config.disagg.latency = 9.6e-6;
  } else {
    d.config.instances_per_server = 8;
  }
  if (mode == 1) {
    add_shared_prefix(t, 1024, 0.8, 16);
    d.config.prefix_caching = true;
  }
  if (mode == 2) {
    d.config.spec.k = 3;
    d.config.spec.acceptance = 0.7;
  }
  int64_t iterations = 0;
  for (auto _ : state) {
    const ServeRig rig(d);
    iterations = rig.run(t).iterations;
  }
  state.counters["requests"] = static_cast<double>(t.requests.size());
  state.counters["iterations"] = static_cast<double>(iterations);
}
BENCHMARK(BM_ServeModes)->Arg(0)->Arg(1)->Arg(2)->ArgName("disagg0_prefix1_spec2")->Unit(benchmark::kMillisecond)->Iterations(1);

// einsim analyze power on its shipped scenario (configs/analyses/power.toml): 20-30 DGX-H100
// servers for 10 minutes, 2 policies and the uncontrolled row x 6 oversubscription levels, each
// controlled run beside its level's uncontrolled one: 19 serving simulations.
void BM_PowerAnalysis(benchmark::State& state) {
  const PowerScenario s = load_power("power");
  size_t rows = 0;
  for (auto _ : state) {
    const PowerReport r = analyze_power(s);
    rows = r.rows.size();
    benchmark::DoNotOptimize(r.rows.data());
  }
  state.counters["rows"] = static_cast<double>(rows);
}
BENCHMARK(BM_PowerAnalysis)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

// The placement search of `einsim place` over one model and every shipped GPU preset:
// Qwen3-235B-A22B decode (batch 64, context 4K), every TP x PP x EP split of up to 64 devices
// that shard_model() accepts, each mapped cold (a fresh cache per preset). Target: seconds
// for all presets. Counter splits: the splits searched over all presets.
void BM_PlacementSearch_AllPresets(benchmark::State& state) {
  static const ModelConfig m = load_model("qwen3-235b-a22b");
  static const std::vector<ArchSpec> archs = [] {
    std::vector<ArchSpec> v;
    for (const char* p : {"a100", "h100", "h200", "h20", "l40s", "b200", "b300", "gb200", "gh200", "mi300x", "mi325x", "mi355x", "rtx4090", "rtx5090", "tpu-v5e", "tpu-v5p", "tpu-v6e", "gaudi3"})
      v.push_back(load_arch(p));
    return v;
  }();
  RunOptions opt;
  opt.phase.kind = PhaseKind::Decode;
  opt.phase.batch = 64;
  opt.phase.context = 4096;
  opt.mapper.threads = 1;
  PlacementOptions po;
  po.max_devices = 64;
  size_t splits = 0;
  for (auto _ : state) {
    splits = 0;
    for (const ArchSpec& a : archs) {
      MapCache cache;
      splits += search_placements(m, a, opt, po, &cache).size();
    }
  }
  state.counters["splits"] = static_cast<double>(splits);
}
BENCHMARK(BM_PlacementSearch_AllPresets)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK_MAIN();
