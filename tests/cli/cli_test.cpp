#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <unistd.h>
#include <sys/wait.h>
#include <cstdlib>
#include <sstream>

#include "../workloads/helpers.h"
#include "run_einsim.h"
#include "common/paths.h"

using einsim::test::error_of;
using einsim::test::shipped;

using Run = einsim::test::CliRun;
const auto run = einsim::test::run_einsim;

TEST_CASE("check accepts the shipped configs", "[cli]") {
  const Run r = run({"check", shipped("workloads/attention-1pass.toml"), shipped("models/llama-3-70b.toml")});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("ok: cascade 'attention-1pass'") && Catch::Contains("ok: model 'Llama-3-70B'"));
}

TEST_CASE("check reports each bad file with its location and exits 1", "[cli][errors]") {
  const Run r = run({"check", shipped("models/llama-2-7b.toml"), "/nonexistent.toml", "--set", "model.hiden_size=3"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--set model.hiden_size=3: error: unknown key 'hiden_size' in [model] (did you mean 'hidden_size'?)"));
  CHECK_THAT(r.err, Catch::Contains("/nonexistent.toml: error: cannot open file"));
  CHECK_THAT(r.err, Catch::Contains("2 of 2 files failed"));
}

TEST_CASE("describe prints tables, JSON and CSV", "[cli]") {
  const Run t = run({"describe", shipped("workloads/attention-3pass.toml")});
  CHECK(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("passes over M: 3"));
  const Run j = run({"describe", shipped("workloads/attention-1pass.toml"), "--format", "json", "--set", "cascade.params.block=128"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["ranks"]["M1"] == 8);
  CHECK(doc["passes"][1]["rank"] == "M");
  CHECK(doc["passes"][1]["passes"] == 1);
  const Run c = run({"describe", shipped("workloads/attention-3pass.toml"), "--format", "csv"});
  CHECK_THAT(c.out, Catch::StartsWith("#,einsum,after,iteration space"));
  const Run m = run({"describe", "llama-3-70b", "--phase", "decode", "--batch", "8", "--context", "4k", "--format", "json"});
  REQUIRE(m.code == 0);
  const auto md = nlohmann::json::parse(m.out);
  CHECK(md["kv_bytes_per_token"] == 327680.0);
  CHECK(md["phase"]["context"] == 4096);
  const Run mt = run({"describe", "mixtral-8x7b"});
  CHECK_THAT(mt.out, Catch::Contains("active per token"));
  const Run mc = run({"describe", "llama-2-7b", "--phase", "prefill", "--prompt", "128", "--layers", "1", "--format", "csv"});
  CHECK_THAT(mc.out, Catch::StartsWith("component,mac"));
  // A model of several layer kinds is broken down per kind: layers, parameters, KV and FLOPs.
  const Run k = run({"describe", "mixtral-8x7b", "--set", "model.first_k_dense_replace=2", "--set", "model.sliding_window=4096", "--set",
                     "model.sliding_window_pattern=2", "--phase", "decode", "--context", "16k"});
  REQUIRE(k.code == 0);
  CHECK_THAT(k.out, Catch::Contains("layer kind") && Catch::Contains("window 4096 + dense") && Catch::Contains("attention + dense") &&
                        Catch::Contains("window 4096 + moe") && Catch::Contains("attention + moe"));
  const Run kj = run({"describe", "mixtral-8x7b", "--set", "model.first_k_dense_replace=2", "--phase", "decode", "--format", "json"});
  REQUIRE(kj.code == 0);
  const auto kd = nlohmann::json::parse(kj.out);
  REQUIRE(kd["layers"].size() == 2);
  CHECK(kd["layers"][0]["kind"] == "attention + dense");
  CHECK(kd["layers"][0]["layers"] == 2);
  CHECK(kd["layers"][1]["layers"] == 30);
  CHECK(kd["layers"][0]["parameters"].get<double>() + kd["layers"][1]["parameters"].get<double>() ==
        Approx(kd["parameters"]["total"].get<double>() - kd["parameters"]["embedding"].get<double>() - kd["parameters"]["final_norm"].get<double>()));
  CHECK(kd["layers"][1]["flops"].get<double>() > 10 * kd["layers"][0]["flops"].get<double>());
}

TEST_CASE("usage errors exit 1, help exits 0", "[cli][errors]") {
  CHECK(run({"--help"}).code == 0);
  CHECK(run({"describe", "--help"}).code == 0);
  CHECK(run({}).code == 1);
  CHECK(run({"frobnicate"}).code == 1);
  CHECK(run({"describe", "llama-2-7b", "--format", "xml"}).code == 1);
  const Run p = run({"describe", "llama-2-7b", "--phase", "decode", "--context", "lots"});
  CHECK(p.code == 1);
  CHECK_THAT(p.err, Catch::Contains("--context: error: 'lots' is not a token count"));
  const Run q = run({"describe", shipped("workloads/attention-3pass.toml"), "--phase", "decode"});
  CHECK(q.code == 1);
  CHECK_THAT(q.err, Catch::Contains("apply to models, not cascades"));
  const Run e = run({"describe", "bert-base", "--phase", "decode"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("is an encoder"));
  const Run n = run({"describe", "no-such-model"});
  CHECK(n.code == 1);
  CHECK_THAT(n.err, Catch::Contains("no-such-model: error: no such file, and no shipped preset of that name (closest:"));
}

TEST_CASE("run prints blocks, Einsums and totals as a table, JSON and CSV", "[cli][run]") {
  const std::vector<std::string> base = {"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--batch", "4", "--context", "2k", "--layers", "2"};
  const Run t = run(base);
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Llama-2-7B on H100-SXM5-80GB: decode step, batch 4, context 2048, fp16, fusion kernels"));
  CHECK_THAT(t.out, Catch::Contains("decode step (TPOT):") && Catch::Contains("tokens/s") && Catch::Contains("per layer:"));
  CHECK_THAT(t.out, Catch::Contains("memory per device (hbm): weights"));

  std::vector<std::string> args = base;
  args.insert(args.end(), {"--format", "json", "--tp", "2"});
  const Run j = run(args);
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "run");
  CHECK(doc["tp"] == 2);
  CHECK(doc["phase"]["kind"] == "decode");
  CHECK(doc["totals"]["tpot_s"].get<double>() == doc["totals"]["step_s"].get<double>());
  CHECK(doc["totals"]["ttft_s"].is_null());
  CHECK(doc["totals"]["allreduce_s"].get<double>() > 0);
  CHECK(doc["memory"][0]["tier"] == "hbm");
  CHECK(doc["blocks"].size() > 5);
  CHECK(doc["einsums"][0].contains("mapping"));
  CHECK(doc["einsums"][0]["traffic"][0]["level"] == "hbm");

  args = base;
  args.insert(args.end(), {"--format", "csv"});
  const Run c = run(args);
  REQUIRE(c.code == 0);
  CHECK_THAT(c.out, Catch::StartsWith("einsum,component,block,repeats,flops,compute_ms"));
}

TEST_CASE("run rejects bad options with located errors and exit 1", "[cli][run][errors]") {
  const std::vector<std::string> base = {"run", "--arch", "h100", "--model", "llama-2-7b", "--layers", "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  Run r = with({"--phase", "decode", "--prompt", "512"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--prompt: error: --prompt applies to prefill"));
  // Prefill takes --context as the tokens cached before its prompt (a chunk): accepted.
  r = with({"--phase", "prefill", "--context", "512", "--prompt", "512"});
  CHECK(r.code == 0);
  r = with({"--phase", "prefill", "--context", "-3"});
  CHECK(r.code == 1);
  r = with({"--phase", "decode", "--set", "hidden_size=8"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--set: error: 'hidden_size=8': run overrides start with arch., model. or runtime."));
  r = with({"--phase", "decode", "--set", "arch.tiers.hbm.capacity=100 MB"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("error: the deployment does not fit"));
  r = with({"--phase", "decode", "--set", "model.hiden_size=8"});
  CHECK_THAT(r.err, Catch::Contains("unknown key 'hiden_size'"));
  r = with({"--phase", "decode", "--batch", "lots"});
  CHECK_THAT(r.err, Catch::Contains("--batch: error: 'lots' is not a token count"));
  r = with({"--phase", "decode", "--tp", "5"});
  CHECK_THAT(r.err, Catch::Contains("--tp: error: --tp 5 does not divide the 32 attention heads"));
  r = run({"run", "--arch", "no-such-gpu", "--model", "llama-2-7b", "--phase", "decode"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("no-such-gpu"));
  r = with({"--phase", "sideways"});
  CHECK(r.code == 1);
  r = with({"--phase", "decode", "--kv-dtype", "int3"});
  CHECK(r.code == 1);
  r = with({"--phase", "decode", "--quant", "int4-g0"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--quant: error: 'int4-g0': the group size must be a positive integer"));
  r = with({"--phase", "decode", "--set", "model.quantization=\"q4\""});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("unknown quantization 'q4'"));
}

TEST_CASE("run and serve --quant store the linear layers quantized", "[cli][run][quant]") {
  const Run r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--quant", "int4", "--format", "json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["quantization"] == "int4");
  const Run t = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--quant", "fp8"});
  CHECK_THAT(t.out, Catch::Contains("fp16 (linear layers fp8)"));
  const Run s = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--arrivals", "poisson", "--rate", "2", "--requests", "20", "--quant", "fp4"});
  CHECK(s.code == 1);
  CHECK_THAT(s.err, Catch::Contains("--quant: error: unknown quantization 'fp4'"));
}

TEST_CASE("run on a TPU: emulated fp16 products and unreported energy are said, not shown as zeros", "[cli][run]") {
  // Emulation is the user's explicit choice: without --emulate the run is a located error.
  const Run refused = run({"run", "--arch", "tpu-v5e", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1"});
  CHECK(refused.code == 1);
  CHECK_THAT(refused.err, Catch::Contains("llama-2-7b.toml:") &&
                              Catch::Contains("error: fp16 matrix products computed at bf16: no array of TPU-v5e runs them at fp16; --emulate computes them at the wider type"));
  const Run dtype = run({"run", "--arch", "a100", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--dtype", "fp8"});
  CHECK(dtype.code == 1);
  CHECK_THAT(dtype.err, Catch::StartsWith("--dtype: error: fp8 matrix products computed at bf16"));
  // serve asks the same, and says what it emulates.
  const Run sv = run({"serve", "--model", "llama-3-8b", "--arch", "a100", "--requests", "10", "--dtype", "fp8"});
  CHECK(sv.code == 1);
  CHECK_THAT(sv.err, Catch::Contains("error: fp8 matrix products computed at bf16: no array of A100-SXM4-80GB runs them at fp8"));
  const Run sv2 = run({"serve", "--model", "llama-3-8b", "--arch", "a100", "--requests", "10", "--dtype", "fp8", "--emulate"});
  CHECK(sv2.code == 0);
  CHECK_THAT(sv2.err, Catch::Contains("note: emulated: fp8 matrix products computed at bf16"));
  const Run r = run({"run", "--arch", "tpu-v5e", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--emulate"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("emulated: fp16 matrix products computed at bf16: no array of TPU-v5e runs them at fp16"));
  CHECK_THAT(r.out, Catch::Contains("energy and power: not reported (the architecture gives no energy or power figures)"));
  CHECK_THAT(r.out, !Catch::Contains("power per device: 0 W"));
  const Run j = run({"run", "--arch", "tpu-v5e", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--format", "json", "--emulate"});
  REQUIRE(j.code == 0);
  CHECK(nlohmann::json::parse(j.out)["emulated"].size() == 1);
}

TEST_CASE("run --kv-dtype quantizes the cache alone", "[cli][run]") {
  const Run r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--layers", "1", "--batch", "4", "--context", "4096",
                     "--kv-dtype", "int8", "--format", "json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["memory"][0]["kv_cache_bytes"].get<double>() == Approx(1.0 * 4 * 4097 * 2 * 4096 * 1));
}

TEST_CASE("study fusemax: table, JSON, CSV and an SVG plot", "[cli][study]") {
  const std::vector<std::string> base = {"study", "fusemax", "--models", "t5-small-encoder", "--seq", "1K,4K"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  Run t = with({});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Attention") && Catch::Contains("End to end") && Catch::Contains("+Binding") &&
                        Catch::Contains("Pass analysis") && Catch::Contains("attention speedup, FuseMax over FLAT (x)    6.70"));
  Run j = with({"--format", "json"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "study-fusemax");
  CHECK(doc["batch"] == 64);
  REQUIRE(doc["points"].size() == 2);
  CHECK(doc["points"][1]["seq"] == 4096);
  const auto& fm = doc["points"][0]["attention"]["+Binding"];
  const auto& flat = doc["points"][0]["attention"]["FLAT"];
  CHECK(fm["latency_s"].get<double>() < flat["latency_s"].get<double>());
  CHECK(doc["headlines"].size() == 4);
  CHECK(doc["passes"][0]["passes_3pass"] == 3);
  Run c = with({"--format", "csv"});
  REQUIRE(c.code == 0);
  CHECK_THAT(c.out, Catch::StartsWith("scope,model,seq,config,latency ms"));
  CHECK(std::count(c.out.begin(), c.out.end(), '\n') == 1 + 2 * 2 * 5);  // header, 2 scopes x 2 lengths x 5 configs
  const std::string plot = (std::filesystem::temp_directory_path() / "einsim-fusemax-test.svg").string();
  Run p = with({"--plot", plot});
  REQUIRE(p.code == 0);
  std::ifstream f(plot);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::StartsWith("<?xml") && Catch::Contains("<svg") && Catch::Contains("t5-small-encoder") && Catch::Contains("<path") && Catch::Contains("</svg>"));
}

TEST_CASE("study fusemax rejects bad options with clear errors and exit 1", "[cli][study][errors]") {
  Run r = run({"study", "fusemax", "--models", "bert-base,no-such-model", "--seq", "1K"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("no-such-model"));
  r = run({"study", "fusemax", "--seq", "1000"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--seq: error: sequence length 1000 must be a power of two of at least 256"));
  r = run({"study", "fusemax", "--seq", "4K,lots"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--seq: error: 'lots' is not a token count"));
  r = run({"study", "fusemax", "--seq", "1K", "--batch", "0"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--batch: error: --batch must be at least 1"));
  r = run({"study", "fusemax", "--models", "bert-base", "--seq", "1K", "--plot", "/no/such/dir/plot.svg"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("/no/such/dir/plot.svg: error: cannot write the plot"));
  r = run({"study"});
  CHECK(r.code == 1);
  r = run({"study", "fusemax", "--format", "xml"});
  CHECK(r.code == 1);
  r = run({"study", "fusemax", "--models", "bert-base", "--seq", "1K", "--pe-dims", "16"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--pe-dims: error: --pe-dims applies to --pareto"));
  r = run({"study", "fusemax", "--models", "bert-base", "--seq", "1K", "--pareto-seq", "4K"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--pareto-seq: error: --pareto-seq applies to --pareto"));
  r = run({"study", "fusemax", "--models", "bert-base", "--seq", "1K", "--pareto", "--pe-dims", "24"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--pe-dims: error: array side 24 must be a power of two no larger than the sequence length 262144"));
  r = run({"study", "fusemax", "--models", "bert-base", "--seq", "1K", "--pareto", "--pe-dims", "16,x"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--pe-dims: error: 'x' is not a token count"));
}

TEST_CASE("study fusemax --pareto: the area-latency sweep in the table and the JSON", "[cli][study]") {
  const std::vector<std::string> base = {"study", "fusemax", "--models", "t5-small-encoder", "--seq", "1K", "--pareto", "--pe-dims", "16,32", "--pareto-seq", "4K"};
  Run t = run(base);
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Area (the artifact's 45 nm area table)") && Catch::Contains("Area against latency (the paper's Fig. 12)"));
  std::vector<std::string> js = base;
  js.insert(js.end(), {"--format", "json"});
  Run j = run(js);
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  REQUIRE(doc["pareto"].size() == 2);
  CHECK(doc["pareto"][0]["pe_dim"] == 16);
  CHECK(doc["pareto"][1]["pe_dim"] == 32);
  // A 4x wider array at the same length: about 4x faster, and far larger.
  CHECK(doc["pareto"][0]["latency_s"].get<double>() > 3 * doc["pareto"][1]["latency_s"].get<double>());
  CHECK(doc["pareto"][1]["area"]["total_um2"].get<double>() > 2 * doc["pareto"][0]["area"]["total_um2"].get<double>());
  CHECK(doc["area"]["FuseMax"]["total_um2"].get<double>() > doc["area"]["FLAT"]["total_um2"].get<double>());
}

TEST_CASE("analyze long-context: the shipped scenario in every format, with overrides and a plot", "[cli][analyze]") {
  Run t = run({"analyze", "long-context", "--set", "scenario.devices=[2]", "--set", "scenario.contexts=[50000]"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Yi-34B-200K on A100-SXM4-80GB") && Catch::Contains("HBM bandwidth") && Catch::Contains("11.44 GiB"));
  Run j = run({"analyze", "long-context", shipped("analyses/long-context.toml"), "--format", "json", "--set", "scenario.contexts=[\"4K\", \"1M\"]"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "analyze-long-context");
  CHECK(doc["kv_bytes_per_token"] == 245760);
  REQUIRE(doc["rows"].size() == 8);
  CHECK(doc["rows"][0]["context"] == 4096);
  CHECK(doc["rows"][0]["max_requests_bound"] == "HBM capacity");
  CHECK(doc["rows"][4]["decode_step_s"]["einsim"]["value"].is_null());  // 1M on one device: nothing fits
  CHECK(doc["rows"][0]["decode_step_s"]["einsim"]["bound"] == "HBM bandwidth");
  Run c = run({"analyze", "long-context", "--format", "csv", "--set", "scenario.devices=[1]"});
  REQUIRE(c.code == 0);
  CHECK_THAT(c.out, Catch::StartsWith("context,devices,KV per request"));
  const std::string plot = (std::filesystem::temp_directory_path() / "einsim-long-context-test.svg").string();
  REQUIRE(run({"analyze", "long-context", "--plot", plot, "--set", "scenario.devices=[1]"}).code == 0);
  std::ifstream f(plot);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::StartsWith("<?xml") && Catch::Contains("<svg") && Catch::Contains("stroke-dasharray"));
  CHECK(run({"check", shipped("analyses/long-context.toml")}).code == 0);
}

TEST_CASE("analyze long-context rejects bad scenarios with located errors and exit 1", "[cli][analyze][errors]") {
  Run r = run({"analyze", "long-context", "no-such-scenario.toml"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("no-such-scenario.toml"));
  r = run({"analyze", "long-context", "--set", "scenario.devices=[0]"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--set scenario.devices=[0]: error: 'scenario.devices' entries must be in [1, 1024]"));
  r = run({"analyze", "long-context", "--set", "scenario.bandwidth=0"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("unknown key 'bandwidth'"));
  r = run({"describe", shipped("analyses/long-context.toml")});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("a [scenario] file is run by `einsim analyze`"));
  r = run({"analyze"});
  CHECK(r.code == 1);
}

TEST_CASE("analyze kv-compression: the shipped scenario, formats, plot and errors", "[cli][analyze]") {
  Run t = run({"analyze", "kv-compression"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("einsim models cost, not quality") && Catch::Contains("scissorhands") && Catch::Contains("none (baseline)"));
  Run j = run({"analyze", "kv-compression", "--format", "json", "--set", "scenario.batch=2"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "analyze-kv-compression");
  CHECK(doc["batch"] == 2);
  CHECK(doc["policies"][0]["kv_ratio"] == 1.0);
  CHECK(doc["policies"].size() == 9);
  CHECK_THAT(run({"analyze", "kv-compression", "--format", "csv"}).out, Catch::StartsWith("policy,transforms,KV tokens"));
  const std::string plot = (std::filesystem::temp_directory_path() / "einsim-kv-test.svg").string();
  REQUIRE(run({"analyze", "kv-compression", "--plot", plot}).code == 0);
  CHECK(run({"check", shipped("analyses/kv-compression.toml")}).code == 0);
  Run e = run({"analyze", "kv-compression", "--set", "scenario.policies.int8.bits=5"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("--set scenario.policies.int8.bits=5: error: 'scenario.policies.int8.bits' must be 16, 8, 4 or 2"));
  e = run({"analyze", "kv-compression", shipped("analyses/long-context.toml")});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("is not one of: kv-compression"));
}

TEST_CASE("analyze offload: the shipped scenario, formats, plot and errors", "[cli][analyze]") {
  Run t = run({"analyze", "offload", "--set", "scenario.batches=[64, 256]"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Attention offloading (Lamina)") && Catch::Contains("offloading wins per dollar"));
  Run j = run({"analyze", "offload", "--format", "json", "--set", "scenario.contexts=[4096]"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "analyze-offload");
  CHECK(doc["memory"]["devices"] == 8);
  CHECK(doc["rows"].size() == 5);
  CHECK_THAT(run({"analyze", "offload", "--format", "csv"}).out, Catch::StartsWith("context,batch,KV in flight [bytes],MTIME"));
  const std::string plot = (std::filesystem::temp_directory_path() / "einsim-offload-test.svg").string();
  REQUIRE(run({"analyze", "offload", "--plot", plot}).code == 0);
  CHECK(run({"check", shipped("analyses/offload.toml")}).code == 0);
  Run e = run({"analyze", "offload", "--set", "scenario.memory_devices=0"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("--set scenario.memory_devices=0: error:"));
}

TEST_CASE("analyze flash: the shipped scenario, formats, plot and errors", "[cli][analyze]") {
  Run t = run({"analyze", "flash", "--set", "scenario.models=[\"opt-6.7b\"]"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("LLM in a flash") && Catch::Contains("+preallocation") && Catch::Contains("Largest model at 2 tokens/s"));
  Run j = run({"analyze", "flash", "--format", "json", "--set", "scenario.hosts=[\"laptop-m1max\"]"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "analyze-flash");
  CHECK(doc["cases"].size() == 2);
  CHECK(doc["cases"][0]["steps"].size() == 6);
  CHECK(doc["largest"].size() == 4);
  CHECK_THAT(run({"analyze", "flash", "--format", "csv"}).out, Catch::StartsWith("host,model,step"));
  const std::string plot = (std::filesystem::temp_directory_path() / "einsim-flash-test.svg").string();
  REQUIRE(run({"analyze", "flash", "--plot", plot}).code == 0);
  CHECK(run({"check", shipped("analyses/flash.toml"), shipped("arch/laptop-m1max.toml"), shipped("arch/h200-host.toml")}).code == 0);
  Run e = run({"analyze", "flash", "--set", "scenario.dram=\"half\""});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("--set scenario.dram=\"half\": error:"));
  e = run({"analyze", "flash", "--set", "scenario.hosts=[\"a100\"]"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("a100.toml") && Catch::Contains("has no flash or ssd tier"));
}

TEST_CASE("run: --ffn-active and --predictor-rank", "[cli]") {
  Run r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--context", "512", "--layers", "1", "--ffn-active", "1000",
               "--predictor-rank", "64"});
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("PS ") && Catch::Contains("PL "));
  r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "prefill", "--ffn-active", "1000"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--ffn-active: error: --ffn-active and --predictor-rank apply to decode"));
}

TEST_CASE("calibrate: the summary, the file, and its errors", "[cli]") {
  const std::string csv = (einsim::data_dir() / "measured" / "h100-2026-11-27" / "torch_bench.csv").string();
  const std::string out = (std::filesystem::temp_directory_path() / fmt::format("einsim-cal-{}.toml", getpid())).string();
  Run r = run({"calibrate", csv, "--arch", "h100", "--runtime", "torch-bench", "-o", out});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("H100-SXM5-80GB: 27 bf16 GEMMs fitted, 26 held out") && Catch::Contains("held out") &&
                        Catch::Contains("(inherits h100)"));
  r = run({"run", "--arch", out, "--model", "llama-3-8b", "--phase", "decode", "--layers", "1"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("H100-SXM5-80GB (calibrated)"));
  std::filesystem::remove(out);
  r = run({"calibrate", "/no/such.csv", "--arch", "h100", "-o", out});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("/no/such.csv"));
  r = run({"calibrate", csv, "--arch", "fusemax", "-o", out});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("is not a GPU"));
}

TEST_CASE("place: the splits, best first, and its errors", "[cli]") {
  Run r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--batch", "8", "--context", "4096", "--max-devices", "8"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("Llama-3-70B on H100-SXM5-80GB: decode, batch 8, context 4096; splits of up to 8 devices") &&
                        Catch::Contains("best: --tp ") && Catch::Contains("$/M tokens"));
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--max-devices", "4", "--format", "json"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"status\": \"does not fit\"") && Catch::Contains("\"status\": \"ok\""));
  // Data parallelism: a split of 2 devices fits twice on 4, its throughput doubled.
  for (const auto& p : nlohmann::json::parse(r.out)) {
    if (p["status"] != "ok") continue;
    CHECK(p["replicas"] == 4 / p["devices"].get<int64_t>());
    CHECK(p["replicas_tokens_per_s"].get<double>() == Approx(p["tokens_per_s"].get<double>() * p["replicas"].get<double>()));
  }
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--slo", "5 GB"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--slo"));
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--max-devices", "2", "--slo", "1 us"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("no split holds the model within the SLO"));
  // Formats: fp8 weights halve the memory, so one H100 holds Llama-3-70B's where bf16 needs two;
  // a format no array runs makes every split invalid unless emulated.
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--batch", "1", "--context", "1024", "--max-devices", "1",
           "--quant", "fp8", "--format", "json"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"status\": \"ok\""));
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--max-devices", "2", "--quant", "nvfp4", "--format", "json"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("nvfp4 matrix products computed at fp8") && !Catch::Contains("\"status\": \"ok\""));
  r = run({"place", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--max-devices", "2", "--quant", "nvfp4", "--emulate", "--format", "json"});
  CHECK_THAT(r.out, Catch::Contains("\"status\": \"ok\""));
}

TEST_CASE("run: engine options are checked before anything is simulated", "[cli][errors]") {
  Run r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--trace", "t.json"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--trace: error: --trace needs --engine systemc"));
  r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--batch", "4", "--tp", "2", "--pp", "2", "--format", "json"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"pipeline\"") && Catch::Contains("\"bubble\"") && Catch::Contains("\"microbatches\": 2"));
  r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--engine", "verilog"});
  CHECK(r.code == 1);
  r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--engine", "systemc", "--tiles", "0"});
  CHECK(r.code == 1);
  r = run({"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--engine", "systemc", "--quantum", "-1"});
  CHECK(r.code == 1);
}

TEST_CASE("simulate: bad scenarios fail before anything is simulated", "[cli][errors]") {
  Run r = run({"simulate", "no-such-scenario.toml"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("no-such-scenario.toml: error:"));
  r = run({"simulate", shipped("analyses/flash.toml")});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("is not one of: contention"));
  r = run({"simulate", "kv-host", "--set", "scenario.host_fraction=2"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--set scenario.host_fraction=2: error:"));
  r = run({"simulate"});
  CHECK(r.code == 1);
  CHECK(run({"check", shipped("scenarios/kv-host.toml"), shipped("scenarios/context-switch.toml"), shipped("scenarios/flash-stream.toml"),
             shipped("scenarios/offload-pools.toml")}).code == 0);
}

TEST_CASE("serve: a trace on simulated servers, in every format, with a timeline and a capacity plan", "[cli][serve]") {
  Run t = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "code", "--duration", "120"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("TTFT") && Catch::Contains("goodput:") && Catch::Contains("KV cache:"));
  Run j = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--arrivals", "gamma", "--cv", "3", "--rate", "4", "--requests", "200",
               "--batching", "chunked", "--token-budget", "1024", "--routing", "round-robin", "--instances", "2", "--format", "json"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "serve");
  CHECK(doc["requests"] == 200);
  CHECK(doc["deployment"]["batching"] == "chunked prefill");
  CHECK(doc["ttft"]["p99_s"].get<double>() >= doc["ttft"]["p50_s"].get<double>());
  CHECK_THAT(run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "code", "--duration", "60", "--format", "csv"}).out,
             Catch::StartsWith("metric,p50 [s],p90 [s],p99 [s],mean [s]"));
  const std::string tl = (std::filesystem::temp_directory_path() / "einsim-serve-timeline.csv").string();
  const std::string svg = (std::filesystem::temp_directory_path() / "einsim-serve.svg").string();
  REQUIRE(run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "code", "--duration", "30", "--timeline", tl, "--plot", svg}).code == 0);
  std::ifstream sf(svg);
  const std::string svg_text((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  CHECK_THAT(svg_text, Catch::StartsWith("<?xml") && Catch::Contains("<svg") && Catch::Contains("Latency distribution") && Catch::Contains("KV cache in use"));
  std::ifstream f(tl);
  std::string header;
  std::getline(f, header);
  CHECK(header == "time_s,instance,duration_s,iterations,running,waiting,prefill_tokens,decode,kv_used");
  Run p = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "conv", "--rate", "40", "--duration", "60", "--plan", "0.99",
               "--tpot-slo", "0.05", "--ttft-slo", "0.5"});
  REQUIRE(p.code == 0);
  CHECK_THAT(p.out, Catch::Contains("capacity plan:") && Catch::Contains("tried:"));
}

TEST_CASE("serve --ep: an expert-parallel instance on the command line", "[cli][serve][ep]") {
  const std::string qwen = std::string(EINSIM_TEST_DATA) + "/configs/Qwen--Qwen3-30B-A3B.json";
  Run j = run({"serve", "--model", qwen, "--arch", "h100", "--ep", "4", "--arrivals", "poisson", "--rate", "4", "--requests", "40", "--format", "json"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["deployment"]["ep"] == 4);
  CHECK(doc["requests"] == 40);
  Run t = run({"serve", "--model", qwen, "--arch", "h100", "--ep", "4", "--arrivals", "poisson", "--rate", "4", "--requests", "40"});
  CHECK_THAT(t.out, Catch::Contains("x 4 H100-SXM5-80GB (EP 4: experts split 4 ways, TP 1 x 4 data-parallel groups)"));
  Run bad = run({"serve", "--model", qwen, "--arch", "h100", "--tp", "2", "--ep", "3", "--requests", "5"});
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("--ep: error: --ep 3 is not a multiple of --tp 2"));
}

TEST_CASE("serve: bad options and inputs are clear errors", "[cli][serve][errors]") {
  Run r = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "/no/such.csv"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("/no/such.csv: error: cannot open the trace"));
  r = run({"serve", "--model", "llama-3-70b", "--arch", "h100"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("does not fit 1 x H100"));
  r = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--batching", "eager"});
  CHECK(r.code == 1);
  r = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--plan", "1.5"});
  CHECK(r.code == 1);
  r = run({"serve", "--model", "llama-3-8b", "--arch", "laptop-m1max", "--preemption", "swap"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("has no link to the host to swap KV pages over"));
  r = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--power-cap", "490 GB"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--power-cap: error: '490 GB' is not a power such as \"490 W\""));
  r = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--clock", "fast"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--clock: error: 'fast' is not a frequency"));
}

TEST_CASE("serve: per-GPU power over time as CSV and in the plot, and a clock lock lowers power and slows prefill", "[cli][serve][power]") {
  const std::string pw = (std::filesystem::temp_directory_path() / "einsim-serve-power.csv").string();
  const std::string svg = (std::filesystem::temp_directory_path() / "einsim-serve-power.svg").string();
  Run t = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "conv", "--duration", "20", "--instances", "2", "--power", pw,
               "--power-bin", "0.5", "--plot", svg, "--format", "json"});
  REQUIRE(t.code == 0);
  const auto doc = nlohmann::json::parse(t.out);
  const double mean = doc["power"]["gpu_mean_w"].get<double>(), peak = doc["power"]["gpu_peak_w"].get<double>();
  CHECK(mean > 77);
  CHECK(peak >= mean);
  CHECK(peak <= 700);
  CHECK(doc["power"]["server_peak_w"].get<double>() <= 2 * peak + 1e-6);
  std::ifstream f(pw);
  std::string line;
  std::getline(f, line);
  CHECK(line == "time_s,server,gpu,power_w,clock_ghz");
  int rows = 0;
  double sum = 0;
  while (std::getline(f, line)) {
    ++rows;
    sum += std::stod(line.substr(line.find(',', line.find(',', line.find(',') + 1) + 1) + 1));
  }
  CHECK(rows % 2 == 0);  // both GPUs in every bin
  CHECK(rows >= 2 * 30);
  std::ifstream sf(svg);
  const std::string svg_text((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  CHECK_THAT(svg_text, Catch::Contains("GPU power"));
  Run locked = run({"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "conv", "--duration", "20", "--instances", "2", "--clock", "1.0 GHz",
                    "--format", "json"});
  REQUIRE(locked.code == 0);
  const auto ld = nlohmann::json::parse(locked.out);
  CHECK(ld["power"]["gpu_peak_w"].get<double>() < peak);
  CHECK(ld["ttft"]["p50_s"].get<double>() > doc["ttft"]["p50_s"].get<double>());
}

TEST_CASE("run: power per device, a power cap and a clock lock", "[cli][power]") {
  Run t = run({"run", "--model", "llama-2-70b", "--arch", "h100", "--tp", "8", "--phase", "prefill", "--prompt", "8192", "--format", "json"});
  REQUIRE(t.code == 0);
  const auto doc = nlohmann::json::parse(t.out);
  const double w = doc["totals"]["power_per_device_w"].get<double>();
  CHECK(w > 143);
  CHECK(w <= 700);
  Run c = run({"run", "--model", "llama-2-70b", "--arch", "h100", "--tp", "8", "--phase", "prefill", "--prompt", "8192", "--power-cap", "400 W"});
  REQUIRE(c.code == 0);
  CHECK_THAT(c.out, Catch::Contains("power per device: 400 W") && Catch::Contains("throttled to the power limit"));
  Run e = run({"run", "--model", "llama-2-70b", "--arch", "h100", "--tp", "8", "--phase", "prefill", "--engine", "systemc", "--clock", "1.4 GHz"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("--clock and --power-cap apply to the analytical engine"));
}

TEST_CASE("analyze power: a scenario in every format, with a plot, and errors exit 1", "[cli][analyze][power]") {
  const std::string small = std::string(EINSIM_TEST_DATA) + "/power-small.toml";
  Run t = run({"analyze", "power", small});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("largest safe oversubscription") && Catch::Contains("policy polca"));
  const std::string svg = (std::filesystem::temp_directory_path() / "einsim-power.svg").string();
  Run j = run({"analyze", "power", small, "--format", "json", "--plot", svg});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "analyze-power");
  CHECK(doc["rows"].size() == 2 * 2);
  CHECK(doc["rows"][0]["policy"] == "none");
  std::ifstream sf(svg);
  const std::string svg_text((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  CHECK_THAT(svg_text, Catch::StartsWith("<?xml") && Catch::Contains("<svg") && Catch::Contains("Row peak power"));
  CHECK_THAT(run({"analyze", "power", small, "--format", "csv", "--set", "scenario.oversubscription=[0.0]"}).out,
             Catch::StartsWith("policy,over [%],servers,peak [%],mean [%]"));
  Run e = run({"analyze", "power", "--set", "scenario.policies.polca.t2=0.5"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("error: t2 (0.5) is below t1 (0.8)"));
  // The shipped scenario reads (not run here: docs/POWER.md and make bench run it).
  CHECK_THAT(run({"check", shipped("analyses/power.toml")}).out, Catch::Contains("ok: scenario 'power'"));
}

TEST_CASE("validate: measured kernels in every format, with rows and a plot, and errors exit 1", "[cli][validate]") {
  const std::string fixture = std::string(EINSIM_TEST_DATA) + "/kernels-small.csv";
  Run t = run({"validate", fixture, "--arch", "h100"});
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("8 measurements predicted on H100-SXM5-80GB") && Catch::Contains("gemm-bf16") &&
                        Catch::Contains("kernels-small.csv under torch-bench"));
  // A launch cost in an architecture file is refused (it is the runtime's), located.
  Run old = run({"validate", fixture, "--arch", "h100", "--set", "arch.gpu.launch_overhead=\"23.5 us\""});
  CHECK(old.code == 1);
  CHECK_THAT(old.err, Catch::Contains("error: 'launch_overhead' is the software's, not the GPU's"));
  Run rt = run({"validate", fixture, "--arch", "h100", "--runtime", "pytorch-eager", "--set", "runtime.kernel_launch=\"1 us\""});
  REQUIRE(rt.code == 0);
  CHECK_THAT(rt.out, Catch::Contains("under pytorch-eager"));
  Run j = run({"validate", fixture, "--arch", "h100", "--format", "json"});
  REQUIRE(j.code == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["kind"] == "validate");
  CHECK(doc["rows"].size() == 8);
  CHECK_THAT(run({"validate", fixture, "--arch", "h100", "--format", "csv"}).out, Catch::StartsWith("class,count,MAPE [%],bias [%]"));
  const std::string rows = (std::filesystem::temp_directory_path() / "einsim-validate-rows.csv").string();
  const std::string svg = (std::filesystem::temp_directory_path() / "einsim-validate.svg").string();
  REQUIRE(run({"validate", fixture, "--arch", "h100", "--rows", rows, "--plot", svg}).code == 0);
  std::ifstream rf(rows);
  std::string header;
  std::getline(rf, header);
  CHECK(header == "set,class,op,shape,measured_s,predicted_s,error,bottleneck,location");
  std::ifstream sf(svg);
  const std::string svg_text((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  CHECK_THAT(svg_text, Catch::StartsWith("<?xml") && Catch::Contains("<svg") && Catch::Contains("Predicted against measured"));
  Run e = run({"validate", "/no/such.csv", "--arch", "h100"});
  CHECK(e.code == 1);
  CHECK_THAT(e.err, Catch::Contains("/no/such.csv: error: cannot open file"));
  e = run({"validate", fixture});
  CHECK(e.code == 1);
}

TEST_CASE("list shows the shipped presets by kind, and an unknown kind or command names the choices", "[cli]") {
  const Run all = run({"list"});
  REQUIRE(all.code == 0);
  CHECK_THAT(all.out, Catch::Contains("archs") && Catch::Contains("h100") && Catch::Contains("NVIDIA H100-SXM5-80GB") && Catch::Contains("configs/arch/h100.toml"));
  const Run models = run({"list", "models", "--format", "json"});
  REQUIRE(models.code == 0);
  const auto j = nlohmann::json::parse(models.out);
  REQUIRE(j.size() > 10);
  for (const auto& row : j) {
    CHECK(row["kind"] == "models");
    CHECK(std::filesystem::is_regular_file(row["file"].get<std::string>()));
  }
  CHECK(run({"list", "gpus"}).code == 1);
  const Run bogus = run({"bogus"});
  CHECK(bogus.code == 1);
  CHECK_THAT(bogus.err, Catch::Contains("bogus: error: not an einsim command (closest:"));
  CHECK_THAT(run({"rnu"}).err, Catch::Contains("(closest: run,"));
}

TEST_CASE("with --format json an error is also a JSON object on stdout", "[cli][errors]") {
  const Run r = run({"run", "--arch", "h10", "--model", "llama-3-8b", "--phase", "decode", "--format", "json"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("h10: error: no such file, and no shipped architecture"));
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["error"]["file"] == "h10");
  CHECK_THAT(j["error"]["message"].get<std::string>(), Catch::StartsWith("no such file"));
  const Run located = run({"describe", "llama-2-7b", "--set", "model.hiden_size=1", "--format", "json"});
  const auto k = nlohmann::json::parse(located.out);
  CHECK(k["error"]["file"] == "--set model.hiden_size=1");
  const Run parse = run({"run", "--arch", "h100", "--format", "json"});
  CHECK(parse.code == 1);
  CHECK(nlohmann::json::parse(parse.out).contains("error"));
  // Without --format json, stdout stays empty.
  CHECK(run({"run", "--arch", "h10", "--model", "x", "--phase", "decode"}).out.empty());
}

TEST_CASE("CSV output is numeric: units live in the column names", "[cli]") {
  // A number followed by a unit ("25.66 ms", "1.50 GiB", "+2.6%") is what a CSV must not hold.
  const std::regex with_unit(R"(^[-+]?[0-9.]+([eE][-+]?[0-9]+)?\s*(ns|us|ms|s|%|x|B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|W|kW|J|mJ|kJ|Hz|MHz|GHz|[A-Za-z]+/s)$)");
  const std::string fixture = std::string(EINSIM_TEST_DATA) + "/kernels-small.csv";
  const std::vector<std::vector<std::string>> commands = {
      {"describe", "llama-3-8b", "--phase", "decode", "--context", "4k"},
      {"describe", "h100"},
      {"describe", shipped("workloads/attention-1pass.toml")},
      {"run", "--arch", "h100", "--model", "llama-2-7b", "--phase", "decode", "--layers", "2"},
      {"validate", fixture, "--arch", "h100"},
      {"serve", "--arch", "h100", "--model", "llama-3-8b", "--arrivals", "poisson", "--requests", "50", "--rate", "2"},
      {"study", "fusemax", "--models", "bert-base", "--seq", "1K"},
      {"analyze", "long-context"},
      {"analyze", "kv-compression"},
      {"analyze", "offload"},
      {"analyze", "flash"},
      {"analyze", "power", std::string(EINSIM_TEST_DATA) + "/power-small.toml", "--set", "scenario.oversubscription=[0.0]"},
      {"list"},
  };
  for (const auto& args : commands) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--format", "csv"});
    const Run r = run(a);
    INFO(a[0] << " " << a[1]);
    REQUIRE(r.code == 0);
    std::istringstream lines(r.out);
    std::string line;
    std::getline(lines, line);  // the header names the units
    while (std::getline(lines, line)) {
      std::string cell;
      bool quoted = false;
      for (size_t i = 0; i <= line.size(); ++i) {
        if (i == line.size() || (line[i] == ',' && !quoted)) {
          INFO("cell '" << cell << "' in: " << line);
          CHECK_FALSE(std::regex_match(cell, with_unit));
          cell.clear();
        } else if (line[i] == '"') {
          quoted = !quoted;
        } else {
          cell += line[i];
        }
      }
    }
  }
}

TEST_CASE("check and describe follow inherits in a user file as run does", "[cli]") {
  const std::string dir = std::filesystem::temp_directory_path() / ("einsim-inherits-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/my-h100.toml";
  std::ofstream(file) << "version = 1\ninherits = \"h100\"\n[arch.power]\ntdp = \"600 W\"\n";
  const Run c = run({"check", file});
  CHECK(c.code == 0);
  CHECK_THAT(c.out, Catch::Contains("ok: arch 'H100-SXM5-80GB'"));
  const Run d = run({"describe", file, "--format", "json"});
  CHECK(d.code == 0);
  CHECK(run({"run", "--arch", file, "--model", "llama-2-7b", "--phase", "decode", "--layers", "1"}).code == 0);
  std::ofstream(file) << "version = 1\ninherits = \"h1000\"\n";
  CHECK_THAT(run({"check", file}).err, Catch::Contains(file + ":2:12: error: cannot find preset 'h1000'"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("output that cannot be written is an error", "[cli][errors]") {
  // /dev/full accepts the open and refuses every write: each command must notice.
  for (const char* args : {"list", "run --arch h100 --model llama-2-7b --phase decode --layers 1 --format json", "describe h100"}) {
    INFO(args);
    const int status = std::system((std::string(EINSIM_BINARY) + " " + args + " > /dev/full 2>/dev/null").c_str());
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
  }
}

TEST_CASE("no output holds a non-finite number: such inputs are located errors", "[cli][errors]") {
  // A clock so low that the step's energy overflows.
  const Run slow = run({"run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "prefill", "--prompt", "8k", "--set", "arch.arrays.tensor.clock=1e-299 Hz",
                        "--set", "arch.arrays.vector.clock=1e-299 Hz"});
  CHECK(slow.code == 1);
  CHECK_THAT(slow.err, Catch::Contains("configs/arch/h100.toml:") && Catch::Contains("gives a non-finite energy for Llama-3-8B"));
  const Run bw = run({"run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "decode", "--set", "arch.tiers.hbm.read_bandwidth=1e-320 TB/s"});
  CHECK(bw.code == 1);
  CHECK_THAT(bw.err, Catch::Contains("overflows or underflows in SI units"));
  const Run cv = run({"serve", "--arch", "h100", "--model", "llama-3-8b", "--arrivals", "gamma", "--cv", "1e300"});
  CHECK(cv.code == 1);
  CHECK_THAT(cv.err, Catch::Contains("--cv: error: the coefficient of variation must be in (0, 100]"));
}

TEST_CASE("synthetic arrivals are drawn only up to --duration", "[cli]") {
  // 10^8 requests asked for, 1 ms of them kept: only those are drawn (was 100 s and 5 GB).
  const Run r = run({"serve", "--arch", "h100", "--model", "llama-3-8b", "--arrivals", "poisson", "--requests", "100000000", "--duration", "0.001",
                     "--rate", "1e6", "--format", "json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["requests"].get<int64_t>() > 500);
  CHECK(j["requests"].get<int64_t>() < 2000);
}

TEST_CASE("errors name their own cause: extreme --batch, --limit 0, devices that do not split a model", "[cli][errors]") {
  const Run big = run({"run", "--arch", "h100", "--model", "llama-3-70b", "--phase", "decode", "--batch", "9223372036854775807"});
  CHECK(big.code == 1);
  CHECK_THAT(big.err, Catch::StartsWith("--batch: error: --batch 9223372036854775807 must be in [1, 1048576]"));
  CHECK_THAT(run({"run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "prefill", "--prompt", "4G"}).err, Catch::StartsWith("--prompt: error:"));
  const Run lim = run({"sweep", std::string(EINSIM_TEST_DATA) + "/sweep-small.toml", "--db", "/tmp/einsim-limit0.sqlite", "--limit", "0"});
  CHECK(lim.code == 1);
  CHECK_THAT(lim.err, Catch::Contains("--limit"));
  CHECK_FALSE(std::filesystem::exists("/tmp/einsim-limit0.sqlite"));
  const Run lc = run({"analyze", "long-context", "--set", "scenario.devices=[3]", "--set", "scenario.contexts=[\"4K\"]"});
  CHECK(lc.code == 0);
  CHECK_THAT(lc.out, Catch::Contains("3 devices: einsim splits heads and FFN columns evenly, and Yi-34B-200K has 56 heads (8 KV heads)"));
  CHECK_THAT(lc.out, !Catch::Contains("--tp 3") && !Catch::Contains("does not fit"));
}

TEST_CASE("a trace request that cannot be served is located at its line", "[cli][errors]") {
  const std::string file = std::filesystem::temp_directory_path() / ("einsim-huge-" + std::to_string(::getpid()) + ".csv");
  std::ofstream(file) << "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,100,10\n2023-11-16 18:17:04,90000000,10\n";
  const Run r = run({"serve", "--arch", "h100", "--model", "llama-3-8b", "--trace", file});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::StartsWith(file + ":3:1: error: request 1 (90000000 + 10 tokens) needs"));
  std::filesystem::remove(file);
}

TEST_CASE("the data folder: EINSIM_DATA_DIR overrides, a wrong one is an error", "[cli][errors]") {
  // In a child process: the folder is found once per process.
  const std::string out = std::filesystem::temp_directory_path() / ("einsim-datadir-" + std::to_string(::getpid()) + ".txt");
  const int bad = std::system(("EINSIM_DATA_DIR=/nonexistent " + std::string(EINSIM_BINARY) + " list > /dev/null 2> " + out).c_str());
  REQUIRE(WIFEXITED(bad));
  CHECK(WEXITSTATUS(bad) == 1);
  std::ifstream in(out);
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(err == "EINSIM_DATA_DIR: error: '/nonexistent' has no configs/ folder (it should name einsim's share/einsim)\n");
  const int good = std::system(("EINSIM_DATA_DIR=" + einsim::data_dir().string() + " " + std::string(EINSIM_BINARY) + " list archs > /dev/null").c_str());
  CHECK(WEXITSTATUS(good) == 0);
  std::filesystem::remove(out);
  CHECK_THAT(error_of([] { einsim::set_data_dir("/nonexistent"); }), Catch::Contains("/nonexistent: error: not an einsim data folder (no configs/ inside)"));
  // The build tree is laid out as an installed copy: share/einsim beside the binaries.
  CHECK(std::filesystem::is_directory(einsim::data_dir() / "configs" / "arch"));
  CHECK(std::filesystem::is_regular_file(einsim::data_path("traces/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv")));
  CHECK(std::filesystem::is_directory(einsim::data_dir() / "measured"));
}

TEST_CASE("run --attach --kv-tier --weights-tier and serve --kv-offload: tiers off the device, errors at their flags", "[cli][tiers]") {
  const std::vector<std::string> base = {"run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "decode", "--layers", "2"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  const Run ok = with({"--attach", "ddr5-socket", "--kv-tier", "ddr5:0.25", "--format", "json"});
  REQUIRE(ok.code == 0);
  const auto j = nlohmann::json::parse(ok.out);
  CHECK(j["offload"]["placements"][0]["tier"] == "ddr5");
  CHECK(j["offload"]["placements"][0]["fraction"] == 0.25);
  CHECK(j["memory"][1]["tier"] == "ddr5");
  const Run text = with({"--attach", "ddr5-socket", "--kv-tier", "ddr5:0.25"});
  CHECK_THAT(text.out, Catch::Contains("offloaded: 25.0% of the KV cache on ddr5 (over pcie at 63 GB/s per device)"));
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--kv-tier", "ddr5"}, "--kv-tier: error: 'H100-SXM5-80GB' has no tier 'ddr5'"},
           {{"--attach", "ddr5-socket", "--kv-tier", "ddr5:0"}, "--kv-tier: error: 'ddr5:0': the fraction after ':' must be a number in (0, 1]"},
           {{"--attach", "ddr5-socket", "--kv-tier", "ddr5:x"}, "--kv-tier: error: 'ddr5:x': the fraction after ':' must be a number in (0, 1]"},
           {{"--attach", "ddr5-socket", "--weights-tier", ":0.5"}, "--weights-tier: error: ':0.5': name a tier"},
           {{"--attach", "h100"}, "--attach: error: 'H100-SXM5-80GB' is not a host"},
           {{"--attach", "nope"}, "nope: error: no such file, and no shipped architecture of that name"},
           {{"--attach", "ddr5-socket", "--kv-tier", "ddr5", "--engine", "systemc"}, "--kv-tier: error: offloaded shares are priced by the analytical engine"}}) {
    INFO(message);
    const Run r = with(args);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::StartsWith(message));
  }
  const std::vector<std::string> serve = {"serve", "--model", "llama-3-8b", "--arch", "h100", "--requests", "20"};
  auto serve_with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = serve;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  const Run sv = serve_with({"--attach", "cxl-expander", "--kv-offload", "cxl"});
  REQUIRE(sv.code == 0);
  CHECK_THAT(sv.out, Catch::Contains("preemption by swap") && Catch::Contains("KV swap to cxl at 31.5 GB/s per device"));
  CHECK(serve_with({"--kv-offload", "cxl"}).err.starts_with("--kv-offload: error: 'H100-SXM5-80GB' has no tier 'cxl'"));
  CHECK(serve_with({"--attach", "nvme-gen5", "--kv-offload", "nvme"}).err.starts_with("--kv-offload: error: tier 'nvme' gives no write bandwidth"));
  CHECK(serve_with({"--attach", "cxl-expander", "--kv-offload", "cxl", "--preemption", "recompute"}).err.starts_with("--kv-offload: error: --kv-offload swaps"));
  // Pipeline stages in serve: the deployment says them, JSON carries pp.
  const Run pp = serve_with({"--tp", "4", "--pp", "2", "--format", "json"});
  REQUIRE(pp.code == 0);
  CHECK(nlohmann::json::parse(pp.out)["deployment"]["pp"] == 2);
  CHECK_THAT(serve_with({"--tp", "4", "--pp", "2"}).out, Catch::Contains("PP 2: 2 stages, 2 batches in flight") && Catch::Contains("per lane (2 lanes"));
  // A format the GPU does not run natively: refused at --quant in serve as in run.
  CHECK_THAT(serve_with({"--quant", "nvfp4"}).err, Catch::Contains("error: nvfp4 matrix products computed at fp8: no array of H100-SXM5-80GB runs them at nvfp4"));
}

TEST_CASE("completion and man: generated from the commands, valid bash and valid man(7)", "[cli]") {
  const Run c = run({"completion", "bash"});
  REQUIRE(c.code == 0);
  CHECK_THAT(c.out, Catch::Contains("complete -o filenames -F _einsim einsim") && Catch::Contains("--prefix-caching") && Catch::Contains("h100"));
  const auto dir = std::filesystem::temp_directory_path() / "einsim-completion-test";
  std::filesystem::create_directories(dir);
  const std::string script = (dir / "einsim.bash").string(), result = (dir / "out.txt").string();
  std::ofstream(script) << c.out;
  REQUIRE(std::system(("bash -n '" + script + "'").c_str()) == 0);
  // What bash would offer: flags of a command, preset names after --arch, analyses after analyze.
  auto complete = [&](const std::string& words, int cword) {
    const std::string cmd = "bash -c 'source \"" + script + "\"; COMP_WORDS=(" + words + "); COMP_CWORD=" + std::to_string(cword) +
                            "; _einsim; echo \"${COMPREPLY[*]}\"' > '" + result + "'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream f(result);
    std::string line;
    std::getline(f, line);
    return line;
  };
  CHECK(complete("einsim run --ar", 2) == "--arch");
  CHECK_THAT(complete("einsim run --arch h2", 3), Catch::Contains("h200") && Catch::Contains("h20"));
  CHECK(complete("einsim analyze p", 2) == "power");
  CHECK_THAT(complete("einsim se", 1), Catch::Contains("serve"));
  const Run m = run({"man"});
  REQUIRE(m.code == 0);
  CHECK_THAT(m.out, Catch::StartsWith(".TH EINSIM 1") && Catch::Contains(".SS \"analyze power\"") && Catch::Contains("\\-\\-prefix\\-caching"));
  if (std::system("command -v man > /dev/null 2>&1") == 0) {
    const std::string page = (dir / "einsim.1").string(), warnings = (dir / "warnings.txt").string();
    std::ofstream(page) << m.out;
    REQUIRE(std::system(("MANWIDTH=80 man --warnings -l '" + page + "' > /dev/null 2> '" + warnings + "'").c_str()) == 0);
    std::ifstream w(warnings);
    const std::string text((std::istreambuf_iterator<char>(w)), std::istreambuf_iterator<char>());
    CHECK(text.empty());
  }
  CHECK(run({"completion", "zsh"}).code == 1);
}

TEST_CASE("schema: a config kind's JSON Schema from its loader, and unknown kinds are errors", "[cli][errors]") {
  Run r = run({"schema", "config", "arch"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["$schema"] == "https://json-schema.org/draft/2020-12/schema");
  const auto& tier = j["properties"]["arch"]["properties"]["tiers"]["additionalProperties"]["properties"];
  CHECK(tier["read_bandwidth"]["type"] == "string");
  CHECK(tier["shared_by"]["type"] == "integer");
  // Only the file's own keys: the model presets a sweep loads are not in the sweep's schema.
  r = run({"schema", "config", "sweep"});
  REQUIRE(r.code == 0);
  CHECK_FALSE(nlohmann::json::parse(r.out)["properties"].contains("model"));
  r = run({"schema", "config", "nope"});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("kind: nope not in"));
}
