// Runtimes (arch/runtime.h): the presets, their errors, and what they change in a run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "../cli/run_einsim.h"
#include "../workloads/helpers.h"
#include "arch/runtime.h"
#include "common/paths.h"
#include "sim/run/run.h"
#include "sim/sweep/spec.h"
#include "sim/sweep/evaluate.h"
#include "sim/sweep/store.h"
#include "sim/sweep/sweep.h"

using namespace einsim;
using einsim::test::error_of;

namespace {
std::string write_runtime(const std::string& body) {
  const std::string f = (std::filesystem::temp_directory_path() / "einsim-runtime-test.toml").string();
  std::ofstream(f) << "version = 1\n[runtime]\n" << body;
  return f;
}
RunReport decode(const std::string& model, const std::string& arch, const Runtime* rt, int64_t tp = 1) {
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 1024;
  o.tp = tp;
  o.runtime = rt;
  return run_model(load_model(model), load_arch(arch), o);
}
}  // namespace

TEST_CASE("runtime presets: the default is an inference engine with graphs in decode", "[runtime]") {
  const Runtime& d = default_runtime();
  CHECK(d.name == "inference-engine");
  CHECK(d.graphs == GraphMode::Decode);
  CHECK(d.graphed(PhaseKind::Decode));
  CHECK_FALSE(d.graphed(PhaseKind::Prefill));
  const Runtime eager = load_runtime("pytorch-eager");
  CHECK(eager.per_kernel(PhaseKind::Decode) == Approx(28.5e-6));
  CHECK(eager.graphs == GraphMode::None);
  const Runtime bench = load_runtime("torch-bench");  // inherits pytorch-eager
  CHECK(bench.kernel_launch == Approx(23.5e-6));
  CHECK(bench.graphs == GraphMode::None);
  const Runtime graphs = load_runtime("cuda-graphs");
  CHECK(graphs.per_kernel(PhaseKind::Prefill) == Approx(graphs.graph_node));
  // Overrides, checked like file values.
  CHECK(load_runtime("pytorch-eager", {"runtime.iteration=\"2 ms\""}).iteration == Approx(2e-3));
  CHECK(runtime_key(eager) != runtime_key(bench));
}

TEST_CASE("runtime errors are located", "[runtime][errors]") {
  CHECK(error_of([] { load_runtime("pytorch-eagre"); }).find("pytorch-eager") != std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\ngraphs = \"decode\"\n")); }).find(":4:10: error: graphs = \"decode\" needs 'graph_node'") !=
        std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\nefficiency = { matmul = 0.5 }\n")); })
            .find(":4:16: error: unknown kernel kind 'matmul' (known: gemm, gemm_fp8, gemm_w8a16, gemm_w4a16, grouped_gemm, attention_prefill, attention_decode, rowwise, elementwise)") !=
        std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\nefficiency = { gemm = 0 }\n")); }).find("'gemm' must be above 0") !=
        std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\nefficiency = { gemm = 1.5 }\n")); }).find("gemm") != std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 GB\"\n")); }).find("time") != std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\ngraphs = \"sometimes\"\n")); }).find("sometimes") != std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_lanch = \"5 us\"\n")); }).find("kernel_launch") != std::string::npos);
  CHECK(error_of([] { load_runtime(write_runtime("kernel_launch = \"5 us\"\ncollective_base = -1\n")); }).find("collective_base") != std::string::npos);
  CHECK(error_of([] { load_runtime("pytorch-eager", {"runtime.kernel_launch=fast"}); }).find("--set") != std::string::npos);
}

TEST_CASE("runtimes change a run by their costs and nothing else", "[runtime]") {
  const Runtime engine = load_runtime("inference-engine");
  const Runtime eager = load_runtime("pytorch-eager");
  const RunReport g = decode("llama-2-7b", "a100", &engine);
  const RunReport e = decode("llama-2-7b", "a100", &eager);
  CHECK(g.runtime == "inference-engine");
  CHECK(e.runtime == "pytorch-eager");
  // The same kernels; eager pays a dispatch per kernel where the graph pays a node.
  double kernels = 0;
  for (const BlockRun& b : g.blocks) kernels += b.repeats;
  CHECK(e.step_time - g.step_time == Approx(kernels * (eager.kernel_launch - engine.graph_node)).epsilon(0.01));
  CHECK(e.flops == Approx(g.flops));
  // Host time per step adds once, as it is.
  const Runtime slow = load_runtime("inference-engine", {"runtime.iteration=\"1 ms\""});
  const RunReport s = decode("llama-2-7b", "a100", &slow);
  CHECK(s.host_time == Approx(1e-3));
  CHECK(s.step_time - g.step_time == Approx(1e-3).epsilon(1e-6));
  // Collectives: under graphs a node each and the bases scaled (to 0 by the fit); eager keeps
  // the link's fitted bases.
  const RunReport g8 = decode("llama-2-7b", "a100", &engine, 8);
  const RunReport e8 = decode("llama-2-7b", "a100", &eager, 8);
  CHECK(g8.allreduces == 64);
  CHECK(e8.allreduce_time - g8.allreduce_time == Approx(64 * (34.5e-6 - engine.graph_node)).epsilon(0.02));
  CHECK(g8.allreduce_algo == "ring");
}

TEST_CASE("runtime flag and runtime.KEY overrides on every command that runs a model", "[runtime][cli]") {
  const auto run = einsim::test::run_einsim;
  auto r = run({"run", "--model", "llama-2-7b", "--arch", "a100", "--phase", "decode", "--context", "1k", "--format", "json"});
  REQUIRE(r.code == 0);
  auto e = run({"run", "--model", "llama-2-7b", "--arch", "a100", "--phase", "decode", "--context", "1k", "--format", "json", "--runtime", "pytorch-eager"});
  REQUIRE(e.code == 0);
  CHECK(nlohmann::json::parse(e.out)["totals"]["step_s"].get<double>() > nlohmann::json::parse(r.out)["totals"]["step_s"].get<double>() * 1.5);
  CHECK(nlohmann::json::parse(e.out)["runtime"] == "pytorch-eager");
  auto bad = run({"run", "--model", "llama-2-7b", "--arch", "a100", "--phase", "decode", "--runtime", "cuda-graph"});
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("cuda-graphs"));
  auto badset = run({"run", "--model", "llama-2-7b", "--arch", "a100", "--phase", "decode", "--set", "runtime.kernel_lunch=\"1 us\""});
  CHECK(badset.code == 1);
  CHECK_THAT(badset.err, Catch::Contains("kernel_lunch"));
  CHECK(run({"serve", "--model", "llama-2-7b", "--arch", "a100", "--requests", "20", "--arrivals", "poisson", "--rate", "2", "--runtime", "pytorch-eager"}).code == 0);
  // serve takes the weights' and the KV cache's element types; fp8 weights serve faster.
  auto bf16 = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--requests", "50", "--arrivals", "poisson", "--rate", "4", "--format", "json"});
  auto fp8 = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--requests", "50", "--arrivals", "poisson", "--rate", "4", "--format", "json", "--dtype", "fp8",
                  "--kv-dtype", "fp8"});
  REQUIRE(bf16.code == 0);
  REQUIRE(fp8.code == 0);
  CHECK(nlohmann::json::parse(fp8.out)["ttft"]["mean_s"].get<double>() < nlohmann::json::parse(bf16.out)["ttft"]["mean_s"].get<double>());
  // ... and a quantized checkpoint: int4 weights (groups of 128) decode faster than bf16.
  auto int4 = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--requests", "50", "--arrivals", "poisson", "--rate", "4", "--format", "json", "--quant", "int4"});
  REQUIRE(int4.code == 0);
  CHECK(nlohmann::json::parse(int4.out)["tpot"]["mean_s"].get<double>() < 0.8 * nlohmann::json::parse(bf16.out)["tpot"]["mean_s"].get<double>());
  CHECK(run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--dtype", "fp7"}).code != 0);
  CHECK(run({"analyze", "long-context", "--runtime", "cuda-graphs", "--set", "runtime.iteration=\"1 ms\""}).code == 0);
  CHECK(run({"analyze", "long-context", "--set", "runtime.nope=1"}).code == 1);
  // validate reads gpt-fast's table under its harness's runtime (CUDA graphs), whole decode
  // steps; its int8 and int4 rows as gpt-fast stores them, one row of each fitted, the rest
  // held out.
  auto gf = run({"validate", einsim::data_path("published/gpt-fast/gpt-fast-a100.csv"), "--arch", "a100"});
  REQUIRE(gf.code == 0);
  CHECK_THAT(gf.out, Catch::Contains("30 measurements") && Catch::Contains("under cuda-graphs") && Catch::Contains("decode-step tp8") &&
                         Catch::Contains("decode-step int8 (held out)") && Catch::Contains("decode-step int4 (fitted)"));
  // sweep reads --runtime before it starts (a wrong name is refused with the closest ones);
  // the database records it (the in-process test below).
  auto sw = run({"sweep", std::string(EINSIM_TEST_DATA) + "/sweep-small.toml", "--db", "/nonexistent/x.db", "--runtime", "pytorch-eagr"});
  CHECK(sw.code == 1);
  CHECK_THAT(sw.err, Catch::Contains("pytorch-eager"));
  CHECK(run({"check", einsim::test::shipped("runtimes/inference-engine.toml")}).out.find("ok: runtime 'inference-engine'") != std::string::npos);
  // Last: the SystemC engine leaves the process in a state where a later thrown error trips a
  // sanitizer false positive (its coroutine stacks).
  CHECK(run({"simulate", "kv-host", "--runtime", "pytorch-eager"}).code == 0);
}

TEST_CASE("kernel kinds: one classification, each kind's quality applied to its blocks only", "[runtime]") {
  RunOptions o;
  o.phase.kind = PhaseKind::Prefill;
  o.phase.prompt = 8192;
  o.phase.layers = 1;
  const ModelConfig m = load_model("llama-3-8b");
  const ArchSpec a = load_arch("h100");
  Runtime full = load_runtime("inference-engine");
  full.efficiency.fill(1);
  Runtime slow = full;
  slow.efficiency[static_cast<size_t>(KernelKind::AttentionPrefill)] = 0.5;
  o.runtime = &full;
  const RunReport f = run_model(m, a, o);
  o.runtime = &slow;
  const RunReport s = run_model(m, a, o);
  REQUIRE(f.blocks.size() == s.blocks.size());
  int attention = 0, gemm = 0;
  for (size_t i = 0; i < f.blocks.size(); ++i) {
    const BlockRun& b = f.blocks[i];
    if (b.kind == KernelKind::AttentionPrefill) {
      ++attention;
      CHECK(s.blocks[i].compute == Approx(2 * b.compute));
    } else {
      CHECK(s.blocks[i].time == Approx(b.time));
    }
    gemm += b.kind == KernelKind::Gemm;
  }
  CHECK(attention == 1);
  CHECK(gemm >= 4);
  // Decode attention; MoE experts are grouped GEMMs; the 3-pass cascade's products are GEMMs
  // and its softmax a row-wise kernel.
  o.runtime = nullptr;
  o.phase.kind = PhaseKind::Decode;
  o.phase.context = 1024;
  bool decode_attention = false, grouped = false;
  for (const BlockRun& b : run_model(m, a, o).blocks) decode_attention |= b.kind == KernelKind::AttentionDecode;
  for (const BlockRun& b : run_model(load_model("mixtral-8x7b"), a, o).blocks) grouped |= b.kind == KernelKind::GroupedGemm;
  CHECK(decode_attention);
  CHECK(grouped);
  o.phase.kind = PhaseKind::Prefill;
  o.phase.prompt = 1024;
  o.phase.attention = AttentionKind::ThreePass;
  o.fusion = Fusion::Eager;
  bool fused = false, rowwise = false;
  for (const BlockRun& b : run_model(m, a, o).blocks) fused |= b.kind == KernelKind::AttentionPrefill, rowwise |= b.kind == KernelKind::Rowwise;
  CHECK_FALSE(fused);
  CHECK(rowwise);
}

TEST_CASE("sweep databases record their runtime and refuse another", "[runtime][sweep]") {
  const std::string db = (std::filesystem::temp_directory_path() / "einsim-runtime-sweep2.db").string();
  std::filesystem::remove(db);
  SweepSpec spec = load_sweep(std::string(EINSIM_TEST_DATA) + "/sweep-small.toml");
  spec.runtime = std::make_shared<const Runtime>(load_runtime("pytorch-eager"));
  CHECK_THAT(sweep_meta(spec).at("runtime"), Catch::StartsWith("pytorch-eager (kernel_launch 2.85e-05 s"));
  SweepSpec other = spec;
  other.runtime = nullptr;  // the default
  CHECK_THAT(sweep_meta(other).at("runtime"), Catch::StartsWith("inference-engine"));
  {
    SweepDb d(db, true);
    d.prepare(sweep_columns(spec), sweep_meta(spec));
  }
  {
    SweepDb d(db, false);
    d.prepare(sweep_columns(spec), sweep_meta(spec));  // the same runtime resumes
  }
  SweepDb d(db, false);
  CHECK_THAT(error_of([&] { d.prepare(sweep_columns(other), sweep_meta(other)); }), Catch::Contains("ran under runtime pytorch-eager"));
  std::filesystem::remove(db);
}
