#include "sim/cli/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/toml_reader.h"
#include "common/version.h"
#include "sim/cli/completion.h"
#include "sim/cli/schema.h"
#include "sim/cli/describe.h"
#include "sim/cost/cost_model.h"
#include "sim/cli/run_report.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/analyze/flash.h"
#include "sim/analyze/power.h"
#include "sim/engine/contention.h"
#include "sim/power/power.h"
#include "validate/calibration.h"
#include "validate/validate.h"
#include "sim/serve/serve_report.h"
#include "sim/sweep/plan.h"
#include "sim/engine/schedule.h"
#include "sim/engine/systemc_engine.h"
#include "sim/analyze/kv_compression.h"
#include "sim/analyze/long_context.h"
#include "sim/analyze/offload.h"
#include "sim/study/fusemax.h"
#include "sim/sweep/pareto.h"
#include "sim/sweep/store.h"
#include "sim/sweep/sweep.h"
#include "workloads/cascade_loader.h"

namespace einsim {
namespace {

const std::map<std::string, Format> kFormats = {{"table", Format::Table}, {"json", Format::Json}, {"csv", Format::Csv}};

/// `--quant`'s scheme applied to `m` (none given: the model's own).
// What reading a model's config assumed or left out, on stderr (the output stays the report).
void print_notes(const ModelConfig& m) {
  for (const std::string& n : m.notes) fmt::print(stderr, "{}: note: {}\n", m.loc.file, n);
}

void apply_quant(ModelConfig& m, const std::string& scheme) {
  if (scheme.empty()) return;
  std::string why;
  const auto q = parse_quantization(scheme, &why);
  if (!q) throw UserError(SourceLoc{"--quant"}, why);
  m.quant = *q;
  m.quant.loc = SourceLoc{"--quant"};
}

constexpr const char* kQuantHelp =
    "How the linear layers' weights are stored: int8 (weight-only, per channel), int4 or int4-gN (weight-only, groups of N, "
    "default 128), fp8 (W8A8, block scales), mxfp4 (the MoE experts only, 4-bit with a scale per 32), mxfp8, mxfp6, mxfp4-w4a4 "
    "(OCP MX, weights and activations), nvfp4 (W4A4, a scale per 16), none (default: the model's)";

/// A flag's quantity ("1.4 GHz", "490 W"): positive and of dimension `dim`; 0 when not given.
double flag_quantity(const std::string& text, const char* flag, Dim dim, const char* example) {
  if (text.empty()) return 0.0;
  std::string why;
  const auto q = parse_quantity(text, &why);
  if (!q || q->dim != dim || q->value <= 0) throw UserError(SourceLoc{flag}, fmt::format("'{}' is not a {} such as \"{}\"", text, dim_name(dim), example));
  return q->value;
}

// Reads "32k", "1M", "4096": token counts in the units architects write them.
int64_t parse_tokens(const std::string& s, const std::string& option) {
  const std::optional<int64_t> v = parse_token_count(s);
  if (!v) throw UserError(SourceLoc{option}, fmt::format("'{}' is not a token count (use 4096, 32k or 1M)", s));
  return *v;
}

// "START:END" in seconds, START < END.
std::pair<double, double> parse_window(const std::string& s, const char* option) {
  const size_t colon = s.find(':');
  auto num = [&](const std::string& x, double& v) {
    size_t used = 0;
    try {
      v = std::stod(x, &used);
    } catch (const std::exception&) {
      return false;
    }
    return used == x.size() && std::isfinite(v);
  };
  double a = 0, b = 0;
  if (colon == std::string::npos || !num(s.substr(0, colon), a) || !num(s.substr(colon + 1), b) || a < 0 || b <= a)
    throw UserError(SourceLoc{option}, fmt::format("'{}' is not a window START:END in seconds (0 <= START < END)", s));
  return {a, b};
}

// Set by SIGINT/SIGTERM during a sweep: it commits what it has and returns. A second signal
// takes the default action.
std::atomic<bool> g_sweep_stop{false};
extern "C" void on_sweep_signal(int sig) {
  g_sweep_stop.store(true);
  std::signal(sig, SIG_DFL);
}

void write_text(const std::string& path, const std::string& text, const std::string& what = "plot") {
  std::ofstream f(path, std::ios::binary);
  if (!(f << text)) throw UserError(SourceLoc{path}, fmt::format("cannot write the {}", what));
}

// A figure drawn as the file's extension asks (".png": PNG, otherwise SVG) and written there.
template <class Make>
void write_plot(const std::string& path, Make&& make) {
  std::string drawn;
  {
    PlotFormatScope format(path);
    drawn = make();
  }
  write_text(path, drawn, "plot");
}

// `--set` values of run and serve: arch.KEY=VALUE to the architecture, model.KEY=VALUE to the model.
// The runtime.KEY=VALUE overrides among `sets`, taken out of it.
std::vector<std::string> take_runtime_sets(std::vector<std::string>& sets) {
  std::vector<std::string> out;
  std::erase_if(sets, [&](const std::string& o) {
    if (!o.starts_with("runtime.")) return false;
    out.push_back(o);
    return true;
  });
  return out;
}

// The runtime --runtime names (or the default one) with its overrides; nullptr when neither is
// given (the default runtime, loaded once).
std::shared_ptr<const Runtime> cli_runtime(const std::string& name, const std::vector<std::string>& sets) {
  if (name.empty() && sets.empty()) return nullptr;
  return std::make_shared<const Runtime>(load_runtime(name.empty() ? kDefaultRuntime : name, sets));
}

std::pair<std::vector<std::string>, std::vector<std::string>> split_sets(const std::vector<std::string>& sets, const char* command) {
  std::vector<std::string> arch_sets, model_sets;
  for (const std::string& o : sets) {
    if (o.starts_with("arch.")) arch_sets.push_back(o);
    else if (o.starts_with("model.")) model_sets.push_back(o);
    else if (!o.starts_with("runtime."))
      throw UserError(SourceLoc{"--set"}, fmt::format("'{}': {} overrides start with arch., model. or runtime.", o, command));
  }
  return {arch_sets, model_sets};
}

// {"error": {"file", "line", "column", "message"}}: the located message as a JSON object.
std::string error_json(const SourceLoc& loc, const std::string& message) {
  nlohmann::json j = {{"error", {{"file", loc.file}, {"line", loc.line}, {"column", loc.col}, {"message", message}}}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// The options that describe one step of inference, shared by `describe` and `run`.
struct PhaseArgs {
  std::string phase, batch = "1", prompt, context, attention = "1pass";
  bool no_causal = false;
  int64_t block = 256, layers = 0;
};

void add_phase_options(CLI::App* cmd, PhaseArgs& p) {
  cmd->add_option("--batch", p.batch, "Requests per step");
  cmd->add_option("--prompt", p.prompt, "Prefill: tokens per request (e.g. 2048, 32k)");
  cmd->add_option("--context", p.context, "Tokens already in the KV cache (e.g. 32k): decode's context; prefill: before this prompt chunk (default 0)");
  cmd->add_flag("--no-causal", p.no_causal, "Prefill: attend to every key (a bidirectional model's attention; decoders are causal)");
  cmd->add_option("--attention", p.attention, "Attention cascade")->check(CLI::IsMember({"1pass", "3pass"}));
  cmd->add_option("--block", p.block, "1-pass attention: keys per block (M0)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--layers", p.layers, "Build only the first N layers")->check(CLI::Range(int64_t{0}, int64_t{4096}));
}

// A model's step on an architecture (`run`, `place`): --arch, --model, --phase and the step's shape.
void add_step_options(CLI::App* cmd, std::string& arch, std::string& model, PhaseArgs& p) {
  cmd->add_option("--arch", arch, "Architecture preset (h100, a100, fusemax, ...) or file")->required();
  cmd->add_option("--model", model, "Model preset (llama-3-70b, ...), TOML file or HF config.json")->required();
  cmd->add_option("--phase", p.phase, "Inference phase")->required()->check(CLI::IsMember({"prefill", "decode"}));
  add_phase_options(cmd, p);
}

/// The architecture of a run or serve: the preset or file, with each `--attach` host's tiers.
ArchSpec arch_with(const std::string& name, const std::vector<std::string>& sets, const std::vector<std::string>& hosts) {
  ArchSpec a = load_arch(name, sets);
  for (const std::string& h : hosts) a = attach(std::move(a), load_arch(h), SourceLoc{"--attach"});
  return a;
}

/// `TIER[:FRACTION]` of --weights-tier / --kv-tier.
TierPlacement parse_placement(const std::string& spec, Offloaded what, const char* flag) {
  TierPlacement p;
  p.what = what;
  p.loc = SourceLoc{flag};
  const size_t colon = spec.find(':');
  p.tier = spec.substr(0, colon);
  if (p.tier.empty()) throw UserError(p.loc, fmt::format("'{}': name a tier (TIER or TIER:FRACTION, cxl:0.5)", spec));
  if (colon != std::string::npos) {
    const std::string f = spec.substr(colon + 1);
    char* end = nullptr;
    p.fraction = std::strtod(f.c_str(), &end);
    if (f.empty() || end != f.c_str() + f.size() || !(p.fraction > 0 && p.fraction <= 1))
      throw UserError(p.loc, fmt::format("'{}': the fraction after ':' must be a number in (0, 1]", spec));
  }
  return p;
}

Phase make_phase(const PhaseArgs& a) {
  Phase p;
  p.kind = a.phase == "decode" ? PhaseKind::Decode : PhaseKind::Prefill;
  if (p.kind == PhaseKind::Decode && !a.prompt.empty()) throw UserError(SourceLoc{"--prompt"}, "--prompt applies to prefill; decode takes --context");
  p.batch = parse_tokens(a.batch, "--batch");
  p.prompt = a.prompt.empty() ? 2048 : parse_tokens(a.prompt, "--prompt");
  // Prefill: tokens cached before this prompt (a chunk of a longer one); decode: the context.
  p.context = a.context.empty() ? (p.kind == PhaseKind::Decode ? 2048 : 0) : parse_tokens(a.context, "--context");
  // Bounds that keep every product of extents (batch x tokens x width) representable.
  if (p.batch < 1 || p.batch > (int64_t{1} << 20)) throw UserError(SourceLoc{"--batch"}, fmt::format("--batch {} must be in [1, 1048576]", p.batch));
  if (p.prompt < 1 || p.prompt > (int64_t{1} << 30)) throw UserError(SourceLoc{"--prompt"}, fmt::format("--prompt {} must be in [1, 1G] tokens", p.prompt));
  if (p.context < 0 || p.context > (int64_t{1} << 30))
    throw UserError(SourceLoc{"--context"}, fmt::format("--context {} must be in [0, 1G] tokens", p.context));
  p.attention = a.attention == "3pass" ? AttentionKind::ThreePass : AttentionKind::OnePass;
  p.block = a.block;
  p.layers = a.layers;
  p.causal = !a.no_causal;
  return p;
}

int run_commands(int argc, const char* const* argv, std::ostream& out, std::ostream& err, bool json_errors) {
  CLI::App app{"einsim: hardware-level simulator and accelerator model for LLM inference"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("einsim ") + version());

  std::vector<std::string> files, overrides;
  std::string format = "table";
  auto* check = app.add_subcommand("check", "Validate config files (cascades, models); exit 1 on the first error of each");
  check->add_option("files", files, "Config files (TOML, or a HuggingFace config.json)")->required();
  check->add_option("--set", overrides, "Override a config value: dotted.key=value (checked like file values)");

  std::string list_kind, list_format = "table";
  auto* list = app.add_subcommand("list", "List the shipped presets: name, what it is, file");
  list->add_option("kind", list_kind, "archs, models, workloads, analyses, scenarios, sweeps or runtimes (default: all)")
      ->check(CLI::IsMember(list_kinds()));
  list->add_option("--format", list_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));

  std::string file;
  PhaseArgs pa;  // only one subcommand runs: describe and run share these
  auto* describe = app.add_subcommand("describe", "Summarise a cascade or a model");
  describe->add_option("file", file, "A cascade or model config (or a shipped model name, e.g. llama-3-70b)")->required();
  describe->add_option("--format", format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  describe->add_option("--set", overrides, "Override a config value: dotted.key=value");
  describe->add_option("--phase", pa.phase, "Model: build the cascade of one step")->check(CLI::IsMember({"prefill", "decode"}));
  add_phase_options(describe, pa);

  std::string arch_name, model_name, run_dtype, run_fusion, objective = "latency";
  int64_t tp = 1, ep = 1, pp = 1, microbatches = 0;
  std::vector<std::string> run_sets;
  std::string run_format = "table";
  auto* run = app.add_subcommand("run", "Map a model's prefill or decode step onto an architecture: time, traffic, energy, memory");
  add_step_options(run, arch_name, model_name, pa);
  run->add_option("--tp", tp, "Tensor-parallel devices")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  run->add_option("--ep", ep, "Expert-parallel devices, a multiple of --tp: experts split over them, attention tensor-parallel over --tp within "
                              "ep/tp data-parallel groups, all-to-all dispatch and combine")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  run->add_option("--pp", pp, "Pipeline stages: the layers split into contiguous stages, each on its own max(tp, ep) devices")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  run->add_option("--microbatches", microbatches, "With --pp: micro-batches the batch is split into (default: the largest divisor of the batch not above --pp)")
      ->check(CLI::Range(int64_t{1}, int64_t{1048576}));
  run->add_option("--dtype", run_dtype, "Weights, activations and KV cache (default: the model's)")->check(CLI::IsMember(dtype_names()));
  bool run_emulate = false;
  run->add_flag("--emulate", run_emulate, "Compute matrix products no array runs at their type (fp8 on an A100) at a wider one, and say so; without it such a run is an error");
  std::string kv_dtype, run_quant;
  std::vector<std::string> run_attach, weights_tier, kv_tier;
  run->add_option("--attach", run_attach, "Attach a host's memory tiers (ddr5-socket, cxl-expander, nvme-gen5, nvme-gen5-mixed, host-ddr5, or a file of kind host)");
  run->add_option("--weights-tier", weights_tier, "TIER[:FRACTION]: hold the weights (or that share) on another tier, streamed in every step");
  run->add_option("--kv-tier", kv_tier, "TIER[:FRACTION]: hold the KV cache (or that share) on another tier, streamed in every step");
  run->add_option("--quant", run_quant, kQuantHelp);
  run->add_option("--kv-dtype", kv_dtype, "KV cache element type when it differs (a quantized cache: int8, fp8, int4)")->check(CLI::IsMember(dtype_names()));
  std::string engine = "analytical", trace_file;
  int64_t engine_tiles = 64;
  int64_t run_jobs = 0;
  double quantum_us = 1;
  run->add_option("--engine", engine, "Timing engine: analytical (default) or systemc (discrete events, contention)")
      ->check(CLI::IsMember({"analytical", "systemc"}));
  run->add_option("--trace", trace_file, "With --engine systemc: write a Chrome-trace/Perfetto JSON timeline");
  run->add_option("--jobs", run_jobs, "Threads the mapper searches on (default: every core; the result does not depend on it)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  auto* tiles_opt = run->add_option("--tiles", engine_tiles, "With --engine systemc: tiles per block instance (default 64); with --trace, also draw each tile")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  run->add_option("--quantum", quantum_us, "With --engine systemc: temporal-decoupling quantum in microseconds (default 1)")
      ->check(CLI::PositiveNumber);
  int64_t ffn_active = 0, predictor_rank = 0;
  run->add_option("--ffn-active", ffn_active, "Decode: FFN neurons computed per layer (activation sparsity; default all)")->check(CLI::NonNegativeNumber);
  run->add_option("--predictor-rank", predictor_rank, "Decode: rank of a low-rank predictor of the active FFN neurons (default none)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--fusion", run_fusion, "Fusion policy (default: kernels on GPUs, greedy elsewhere)")
      ->check(CLI::IsMember({"none", "eager", "kernels", "greedy"}));
  run->add_option("--objective", objective, "Mapper objective")->check(CLI::IsMember({"latency", "energy", "edp"}));
  run->add_option("--set", run_sets, "Override a value: arch.KEY=VALUE, model.KEY=VALUE or runtime.KEY=VALUE (checked like file values)");
  std::string runtime_name;
  const char* runtime_help = "Software runtime preset (inference-engine, cuda-graphs, pytorch-eager, torch-bench) or file (default: inference-engine)";
  run->add_option("--runtime", runtime_name, runtime_help);
  std::string run_clock, run_cap;
  run->add_option("--clock", run_clock, "Lock the arrays' clock at or below this DVFS point (e.g. \"1.4 GHz\")");
  run->add_option("--power-cap", run_cap, "Cap each device's power (e.g. \"490 W\"; default: the TDP)");
  run->add_option("--format", run_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));

  std::string place_slo, place_format = "table";
  int64_t place_max = 64, place_top = 12;
  std::vector<std::string> place_sets;
  auto* place = app.add_subcommand("place", "Search the TP x PP x EP splits of a model over an architecture's devices: memory, step, $ per million tokens");
  add_step_options(place, arch_name, model_name, pa);
  place->add_option("--max-devices", place_max, "Devices at most (default 64)")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  place->add_option("--slo", place_slo, "The step (TTFT or TPOT) at most this (e.g. \"50 ms\")");
  place->add_option("--top", place_top, "Rows shown (default 12; every split with --format json or csv)")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  std::string place_dtype, place_quant, place_kv_dtype;
  bool place_emulate = false;
  place->add_option("--dtype", place_dtype, "Weights, activations and KV cache (default: the model's)")->check(CLI::IsMember(dtype_names()));
  place->add_option("--quant", place_quant, kQuantHelp);
  place->add_option("--kv-dtype", place_kv_dtype, "KV cache element type when it differs")->check(CLI::IsMember(dtype_names()));
  place->add_flag("--emulate", place_emulate, "Compute matrix products no array runs at their type at a wider one; without it such splits are invalid");
  place->add_option("--runtime", runtime_name, runtime_help);
  place->add_option("--set", place_sets, "Override a value: arch.KEY=VALUE, model.KEY=VALUE or runtime.KEY=VALUE");
  place->add_option("--format", place_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));

  auto* study = app.add_subcommand("study", "Reproduce a paper's evaluation from first principles");
  study->require_subcommand(1);
  std::string fm_models, fm_seqs, fm_plot, fm_format = "table", fm_batch = "64";
  auto* fusemax = study->add_subcommand("fusemax", "FuseMax (MICRO 2024): five configurations of attention on FLAT and FuseMax hardware");
  fusemax->add_option("--models", fm_models, "Comma-separated models (default: bert-base,trxl-wt103,t5-small-encoder,xlm)");
  fusemax->add_option("--seq", fm_seqs, "Comma-separated sequence lengths (default: 1K,4K,16K,64K,256K,1M)");
  fusemax->add_option("--batch", fm_batch, "Batch size (default 64)");
  fusemax->add_option("--format", fm_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  fusemax->add_option("--plot", fm_plot, "Write an SVG plot of speedup against sequence length");
  std::vector<std::string> fm_sets;
  fusemax->add_option("--set", fm_sets, "Override an architecture value: fusemax.KEY=VALUE, flat.KEY=VALUE or arch.KEY=VALUE (both)");
  std::string fm_reading = "einsim";
  fusemax->add_option("--reading", fm_reading, "einsim (its physical model) or artifact (the paper artifact's definitions where they differ)")
      ->check(CLI::IsMember({"einsim", "artifact"}));
  bool fm_pareto = false;
  std::string fm_pe_dims, fm_pareto_seq;
  fusemax->add_flag("--pareto", fm_pareto, "Also sweep the area-latency trade-off (the paper's Fig. 12): FuseMax at --pe-dims array sides");
  fusemax->add_option("--pe-dims", fm_pe_dims, "Comma-separated 2D array sides for --pareto (default: 16,32,64,128,256,512)");
  fusemax->add_option("--pareto-seq", fm_pareto_seq, "Sequence length of the --pareto sweep (default 256K)");

  auto* analyze = app.add_subcommand("analyze", "Deployment analyses driven by a TOML scenario");
  analyze->require_subcommand(1);
  std::string scenario_file, an_format = "table", an_plot;
  std::vector<std::string> an_sets;
  auto analysis = [&](const char* name, const char* what, const char* example) {
    auto* cmd = analyze->add_subcommand(name, what);
    cmd->add_option("scenario", scenario_file, fmt::format("Scenario file or shipped name (default: {}, {})", name, example));
    cmd->add_option("--set", an_sets, "Override a value: scenario.KEY=VALUE or runtime.KEY=VALUE");
    cmd->add_option("--runtime", runtime_name, runtime_help);
    cmd->add_option("--format", an_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
    cmd->add_option("--plot", an_plot, "Write an SVG plot");
    return cmd;
  };
  auto* long_context = analysis("long-context", "KV cache, concurrency, prefill, decode and context switching over context length and devices (Fu 2024)",
                                "Yi-34B-200K on A100");
  auto* kv_comp = analysis("kv-compression", "KV-cache policies (eviction, key pruning, quantization, windows, linear attention) as workload transforms",
                           "Llama-3-8B on H100 at 32K");
  auto* offload = analysis("offload", "Attention offloading: weights on a compute pool, KV cache and attention on a memory pool (Lamina)",
                           "LLaMA3-70B on H100 + H20");
  auto* serve = app.add_subcommand("serve", "Serve a request trace on simulated servers: latency percentiles, throughput, goodput, KV use");
  struct ServeArgs {
    std::string model, arch, trace = "conv", batching = "prefill-first", preemption = "recompute", routing = "least-loaded", format = "table", timeline;
    int64_t tp = 1, ep = 1, pp = 1, instances = 1, servers = 1, budget = 8192, max_batch = 256, requests = 1000, plan_limit = 256;
    double rate = 0, cv = 1, ttft_slo = 2, tpot_slo = 0.2, duration = 0, plan = 0;
    std::string arrivals, clock, cap, power;
    double power_bin = 1;
    uint64_t seed = 1;
  } sv;
  serve->add_option("--clock", sv.clock, "Lock every GPU's clock at or below this DVFS point (e.g. \"1.4 GHz\")");
  serve->add_option("--power-cap", sv.cap, "Cap every GPU's power (e.g. \"490 W\"; default: the TDP)");
  serve->add_option("--power", sv.power, "Write per-GPU power over time as CSV (time, server, GPU, W, GHz)");
  serve->add_option("--power-bin", sv.power_bin, "Seconds per power sample (default 1)")->check(CLI::Range(1e-3, 3600.0));
  serve->add_option("--model", sv.model, "Model preset or file")->required();
  serve->add_option("--arch", sv.arch, "Architecture preset or file")->required();
  serve->add_option("--tp", sv.tp, "Devices per model instance (tensor parallel)")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  serve->add_option("--ep", sv.ep, "Expert-parallel devices per instance, a multiple of --tp: experts split over them, attention tensor-parallel over "
                                   "--tp within ep / tp data-parallel groups that share the instance's requests")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  serve->add_option("--pp", sv.pp, "Pipeline stages per instance, each of max(tp, ep) devices; pp batches in flight (lanes)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  serve->add_option("--instances", sv.instances, "Model instances per server")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  serve->add_option("--servers", sv.servers, "Servers behind the router")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  serve->add_option("--trace", sv.trace, "conv, code (the Azure 2023 traces) or a trace CSV file");
  serve->add_option("--arrivals", sv.arrivals, "Synthetic arrivals instead of a trace: poisson or gamma (sizes drawn from --trace)")
      ->check(CLI::IsMember({"poisson", "gamma"}));
  serve->add_option("--requests", sv.requests, "Synthetic: number of requests")->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  serve->add_option("--cv", sv.cv, "Gamma arrivals: coefficient of variation of the gaps")->check(CLI::PositiveNumber);
  serve->add_option("--seed", sv.seed, "Synthetic: random seed");
  serve->add_option("--rate", sv.rate, "Requests per second (a trace's gaps are scaled to it)")->check(CLI::PositiveNumber);
  serve->add_option("--duration", sv.duration, "Keep the requests arriving in the first SECONDS")->check(CLI::PositiveNumber);
  serve->add_option("--batching", sv.batching, "prefill-first or chunked")->check(CLI::IsMember({"prefill-first", "chunked"}));
  serve->add_option("--token-budget", sv.budget, "Tokens per iteration")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  serve->add_option("--max-batch", sv.max_batch, "Requests running at once per instance")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  serve->add_option("--preemption", sv.preemption, "recompute or swap")->check(CLI::IsMember({"recompute", "swap"}));
  serve->add_option("--routing", sv.routing, "round-robin, least-loaded, or cache-aware (fewest prompt tokens to compute; with --prefix-caching)")
      ->check(CLI::IsMember({"round-robin", "least-loaded", "cache-aware"}));
  serve->add_option("--ttft-slo", sv.ttft_slo, "TTFT objective, seconds")->check(CLI::PositiveNumber);
  serve->add_option("--tpot-slo", sv.tpot_slo, "TPOT objective, seconds")->check(CLI::PositiveNumber);
  serve->add_option("--plan", sv.plan, "Capacity planning: the fewest servers with at least this share of requests meeting both SLOs (e.g. 0.99)")
      ->check(CLI::Range(0.0, 1.0));
  serve->add_option("--plan-limit", sv.plan_limit, "Capacity planning: most servers tried")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  serve->add_option("--format", sv.format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  std::vector<std::string> serve_sets;
  serve->add_option("--set", serve_sets, "Override a value: arch.KEY=VALUE, model.KEY=VALUE or runtime.KEY=VALUE (checked like file values)");
  serve->add_option("--runtime", runtime_name, runtime_help);
  std::string serve_dtype, serve_kv_dtype, serve_quant;
  serve->add_option("--quant", serve_quant, kQuantHelp);
  std::vector<std::string> serve_attach;
  std::string serve_kv_offload;
  serve->add_option("--attach", serve_attach, "Attach a host's memory tiers (ddr5-socket, cxl-expander, nvme-gen5, nvme-gen5-mixed, host-ddr5, or a file of kind host)");
  serve->add_option("--kv-offload", serve_kv_offload, "TIER: preempted requests' KV pages swap to this tier (its path's bandwidth, its capacity per device; "
                                                       "past it they recompute)");
  serve->add_option("--dtype", serve_dtype, "Weights, activations and KV cache (default: the model's; fp8 where the GPU has it)")->check(CLI::IsMember(dtype_names()));
  serve->add_option("--kv-dtype", serve_kv_dtype, "KV cache element type when it differs (a quantized cache: int8, fp8, int4)")->check(CLI::IsMember(dtype_names()));
  bool serve_emulate = false;
  serve->add_flag("--emulate", serve_emulate, "Compute matrix products no array runs at their type at a wider one; without it such a deployment is an error");
  serve->add_option("--timeline", sv.timeline, "Write one CSV row per iteration (time, instance, batch, KV use)");
  std::string serve_plot;
  serve->add_option("--plot", serve_plot, "Write an SVG: latency distributions, requests and KV use over time");
  struct ServeMore {
    int64_t hash_block = kMooncakeHashBlock, shared_prefix = 0, spec_k = 0, prefill_instances = 0, decode_instances = 0, prefill_tp = 0;
    int64_t perfetto_requests = 2000;
    double prefix_share = 1, spec_accept = -1;
    bool prefix_caching = false, layerwise = false, compare = false;
    std::string draft, prefill_arch, kv_link = "network", kv_link_latency, offload_policy, perfetto, perfetto_window;
  } sm;
  serve->add_option("--hash-block", sm.hash_block, "Tokens per hash id of a JSONL trace's hash_ids (default 512, Mooncake's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  serve->add_flag("--prefix-caching", sm.prefix_caching, "Keep prompts' KV pages in a per-instance prefix cache (LRU in pages); prefill only the uncached tokens");
  serve->add_option("--shared-prefix", sm.shared_prefix, "Give requests a common prefix of this many tokens (a system prompt), hashed in --hash-block blocks")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  serve->add_option("--prefix-share", sm.prefix_share, "Share of requests with the --shared-prefix (default 1)");
  serve->add_option("--spec-k", sm.spec_k, "Speculative decoding: tokens drafted per step")->check(CLI::Range(int64_t{1}, int64_t{64}));
  serve->add_option("--spec-accept", sm.spec_accept, "Speculative decoding: acceptance rate per drafted token, in [0, 1]");
  serve->add_option("--draft", sm.draft, "Speculative decoding's draft model (a model preset or file; default: the target's MTP head)");
  serve->add_option("--prefill-instances", sm.prefill_instances, "Disaggregated serving: prefill instances (with --decode-instances)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  serve->add_option("--decode-instances", sm.decode_instances, "Disaggregated serving: decode instances (of --tp devices on --arch)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  serve->add_option("--prefill-arch", sm.prefill_arch, "Disaggregated serving: the prefill pool's architecture (default: --arch)");
  serve->add_option("--prefill-tp", sm.prefill_tp, "Disaggregated serving: devices per prefill instance (default: --tp)")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  serve->add_option("--kv-link", sm.kv_link, "Disaggregated serving: the link KV caches cross: network (default), peer, inf, or a bandwidth per device (\"50 GB/s\")");
  serve->add_option("--kv-link-latency", sm.kv_link_latency, "Disaggregated serving: latency per transfer (default: the link's)");
  serve->add_flag("--layerwise", sm.layerwise, "Disaggregated serving: stream the KV cache layer by layer during the prefill");
  serve->add_flag("--compare-colocated", sm.compare, "Disaggregated serving: also serve the trace co-located on the same devices and print both");
  serve->add_option("--offload-policy", sm.offload_policy, "What --kv-offload's tier takes: preempted (default), evicted (prefix-cache blocks), both")
      ->check(CLI::IsMember({"preempted", "evicted", "both"}));
  serve->add_option("--perfetto", sm.perfetto, "Write a Perfetto / Chrome trace (JSON): requests, iterations, batch, KV use and power");
  serve->add_option("--perfetto-window", sm.perfetto_window, "Perfetto: only this window of simulated time, START:END in seconds");
  serve->add_option("--perfetto-requests", sm.perfetto_requests, "Perfetto: at most this many requests, evenly sampled (default 2000)")
      ->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  auto* validate = app.add_subcommand("validate", "Predict measured GPU kernels and report the error per kernel class (docs/VALIDATION.md)");
  std::vector<std::string> val_files, val_sets;
  std::string val_arch, val_format = "table", val_rows, val_plot;
  validate->add_option("measurements", val_files, "Kernel CSVs (validate/kbench, torch_bench) or the published A100 sets (LLMCompass, Vidur)")->required();
  validate->add_option("--arch", val_arch, "GPU preset or file the measurements are predicted on")->required();
  validate->add_option("--set", val_sets, "Override a value: arch.KEY=VALUE or runtime.KEY=VALUE");
  validate->add_option("--runtime", runtime_name, "Runtime for every file (default: each data set's harness: pytorch-eager for the published A100 sets, torch-bench for the project's kernel CSVs)");
  validate->add_option("--format", val_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  validate->add_option("--rows", val_rows, "Write every measurement with its prediction as CSV");
  validate->add_option("--plot", val_plot, "Write an SVG of predicted against measured time");
  auto* calibrate = app.add_subcommand("calibrate", "Fit a GPU preset's efficiencies to your measured GEMMs; write an architecture file that inherits it");
  std::vector<std::string> cal_files;
  std::string cal_arch, cal_out, cal_dtype;
  calibrate->add_option("measurements", cal_files, "Kernel CSVs (einsim's format: kind,op,dtype,m,n,k,...,median_s; validate/gpu/torch_bench.py writes it)")->required();
  calibrate->add_option("--arch", cal_arch, "The GPU preset or file to calibrate")->required();
  calibrate->add_option("--runtime", runtime_name, "The runtime the measurements ran under: its per-kernel launch is held fixed (default: fitted)");
  calibrate->add_option("--dtype", cal_dtype, "The GEMMs' element type to fit on (default: the one most GEMM rows have)")->check(CLI::IsMember(dtype_names()));
  calibrate->add_option("-o,--output", cal_out, "The architecture file to write")->required();
  auto* simulate = app.add_subcommand("simulate", "Run a contention scenario (configs/scenarios) on the SystemC engine, beside its hand calculation");
  std::string sim_file, sim_format = "table", sim_trace;
  std::vector<std::string> sim_sets;
  simulate->add_option("scenario", sim_file, "Scenario file or shipped name (configs/scenarios)")->required();
  simulate->add_option("--set", sim_sets, "Override a value: scenario.KEY=VALUE or runtime.KEY=VALUE");
  simulate->add_option("--runtime", runtime_name, runtime_help);
  simulate->add_option("--format", sim_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  simulate->add_option("--trace", sim_trace, "Write the contended run's Chrome-trace/Perfetto JSON timeline");
  double sim_quantum_us = 1;
  simulate->add_option("--quantum", sim_quantum_us, "Temporal-decoupling quantum in microseconds (default 1)")->check(CLI::PositiveNumber);
  auto* power = analysis("power", "Power oversubscription: a row of servers under POLCA's two-threshold controller, over an oversubscription sweep",
                         "Llama-2-70B on DGX-H100 servers serving conversation (high priority) and code (low) traffic");
  auto* sweep = app.add_subcommand("sweep", "Evaluate a design-space sweep into a SQLite database (resumable; docs/SWEEPS.md)");
  struct SweepArgs {
    std::string spec, db, shard = "0/1";
    std::vector<std::string> sets;
    int64_t jobs = 0, limit = 0;
    bool mpi = false;
  } sw;
  sweep->add_option("spec", sw.spec, "Sweep spec (configs/sweeps/*.toml) or a shipped name (gpu-deployment, fusemax-accelerator, tiering)")->required();
  sweep->add_option("--db", sw.db, "SQLite database to write (created, or continued)")->required();
  sweep->add_option("--jobs", sw.jobs, "Worker threads (default: every core)")->check(CLI::Range(int64_t{0}, int64_t{1024}));
  sweep->add_option("--shard", sw.shard, "Evaluate shard i of N (points with idx % N == i), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT");
  sweep->add_option("--limit", sw.limit, "Evaluate at most this many new points (at least 1)")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  sweep->add_option("--set", sw.sets, "Override a value: sweep.KEY=VALUE or runtime.KEY=VALUE");
  sweep->add_option("--runtime", runtime_name, runtime_help);
  sweep->add_flag("--mpi", sw.mpi, "Spread points over MPI ranks (mpirun -np K einsim sweep ... --mpi); rank 0 writes the database");
  auto* plan_cmd = app.add_subcommand("plan", "Capacity planning: the cheapest configuration of a serving sweep that meets its SLOs, and the runner-ups");
  struct PlanArgs {
    std::string spec, db, format = "table";
    double attainment = 0.99;
    int64_t top = 5, jobs = 0;
  } pl;
  plan_cmd->add_option("spec", pl.spec, "A serving sweep spec (mode = \"serve\") to evaluate first (resumable); omit to answer from --db as it is");
  plan_cmd->add_option("--db", pl.db, "The serving sweep's database")->required();
  plan_cmd->add_option("--attainment", pl.attainment, "Share of requests that must meet both SLOs (default 0.99)");
  plan_cmd->add_option("--top", pl.top, "Configurations shown (default 5)")->check(CLI::Range(int64_t{1}, int64_t{10000}));
  plan_cmd->add_option("--jobs", pl.jobs, "Worker threads for the sweep (default: every core)")->check(CLI::Range(int64_t{0}, int64_t{1024}));
  plan_cmd->add_option("--format", pl.format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  plan_cmd->add_option("--runtime", runtime_name, runtime_help);
  auto* pareto = app.add_subcommand("pareto", "The Pareto front of a sweep database");
  std::string pa_db, pa_objectives, pa_format = "table", pa_plot;
  pareto->add_option("--db", pa_db, "Sweep database")->required();
  pareto->add_option("--objectives", pa_objectives, "Comma-separated: latency, throughput, energy, cost, power, ... (min:/max: and any column); default: the sweep's");
  pareto->add_option("--format", pa_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  pareto->add_option("--plot", pa_plot, "Write an SVG of the first two objectives");
  std::string pa_color;
  pareto->add_option("--color-by", pa_color, "With --plot: colour the points by this column's value (e.g. arch)");
  auto* exporter = app.add_subcommand("export", "Write a sweep database's points as CSV or JSON");
  std::string ex_db, ex_format = "csv", ex_out, ex_status;
  exporter->add_option("--db", ex_db, "Sweep database")->required();
  exporter->add_option("--format", ex_format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  exporter->add_option("--status", ex_status, "Only points of this status")->check(CLI::IsMember({"ok", "pruned", "infeasible", "error"}));
  exporter->add_option("-o,--output", ex_out, "Write to this file (default: standard output)");
  auto* merge = app.add_subcommand("merge", "Merge sweep databases (shards) into one; idempotent");
  std::vector<std::string> mg_inputs;
  std::string mg_out;
  merge->add_option("databases", mg_inputs, "Shard databases")->required();
  merge->add_option("-o,--output", mg_out, "Merged database (created or extended)")->required();
  std::string mg_format = "table";
  merge->add_option("--format", mg_format, "Output format")->check(CLI::IsMember({"table", "json", "csv"}));
  auto* completion = app.add_subcommand("completion", "Print a shell completion script (bash) generated from the commands and flags");
  std::string completion_shell;
  completion->add_option("shell", completion_shell, "The shell (bash)")->required()->check(CLI::IsMember({"bash"}));
  auto* manual = app.add_subcommand("man", "Print einsim's manual page (man(7)), generated from the --help texts");
  auto* schema = app.add_subcommand("schema", "Print the JSON Schema of a config kind, generated from its loader (the outputs' schemas ship in share/einsim/schemas)");
  std::string schema_what, schema_kind;
  schema->add_option("what", schema_what, "config")->required()->check(CLI::IsMember({"config"}));
  schema->add_option("kind", schema_kind, "The config kind: " + fmt::format("{}", fmt::join(config_schema_kinds(), ", ")))
      ->required()
      ->check(CLI::IsMember(config_schema_kinds()));
  auto* flash = analysis("flash", "Weights on flash with a DRAM budget: the LLM-in-a-flash ablation and the largest model at a token rate",
                         "OPT-6.7B and Falcon-7B on an M1 Max laptop and an H200 host");

  if (argc > 1 && argv[1][0] != '-') {
    // An unknown command: name the closest ones rather than CLI11's "a subcommand is required".
    std::vector<std::string> names;
    for (const CLI::App* c : app.get_subcommands({})) names.push_back(c->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      names = closest_names(argv[1], names, 2);
      const std::string shown = std::string(argv[1]).substr(0, 80);
      const UserError e(SourceLoc{shown}, fmt::format("not an einsim command (closest: {}, {}; `einsim --help` lists them all)", names[0], names[1]));
      err << e.what() << "\n";
      if (json_errors) out << error_json(e.loc(), e.message());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (json_errors && e.get_exit_code() != 0) out << error_json(SourceLoc{"einsim"}, e.what());
    if (dynamic_cast<const CLI::CallForHelp*>(&e) == nullptr && dynamic_cast<const CLI::CallForAllHelp*>(&e) == nullptr &&
        dynamic_cast<const CLI::CallForVersion*>(&e) == nullptr && app.get_subcommands().empty() && e.get_exit_code() != 0)
      err << "einsim: " << e.what() << "\nRun `einsim --help` for the commands, `einsim COMMAND --help` for one.\n";
    else
      app.exit(e, out, err);
    return e.get_exit_code() == 0 ? 0 : 1;
  }

  try {
    if (*check) {
      int failed = 0;
      for (const std::string& f : files) {
        try {
          out << check_file(f, overrides) << "\n";
        } catch (const UserError& e) {
          err << e.what() << "\n";
          ++failed;
        }
      }
      if (failed) err << fmt::format("{} of {} file{} failed\n", failed, files.size(), files.size() == 1 ? "" : "s");
      return failed ? 1 : 0;
    }
    if (*list) {
      out << list_presets(list_kind, kFormats.at(list_format));
      return 0;
    }
    if (*place) {
      const auto [arch_sets, model_sets] = split_sets(place_sets, "place");
      const ArchSpec a = load_arch(arch_name, arch_sets);
      ModelConfig m = load_model(model_name, model_sets);
      print_notes(m);
      apply_quant(m, place_quant);
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(place_sets));
      RunOptions ro;
      ro.runtime = rt.get();
      ro.phase = make_phase(pa);
      if (!place_dtype.empty()) ro.dtype = parse_dtype(place_dtype);
      if (!place_kv_dtype.empty()) ro.phase.kv_dtype = parse_dtype(place_kv_dtype);
      ro.emulate = place_emulate;
      PlacementOptions po;
      po.max_devices = place_max;
      po.slo = flag_quantity(place_slo, "--slo", Dim::Time, "50 ms");
      const std::vector<PlacementPoint> points = search_placements(m, a, ro, po);
      out << format_placements(points, m.name, a, ro.phase, po, place_format, static_cast<size_t>(place_top));
      return 0;
    }
    if (*run) {
      const auto [arch_sets, model_sets] = split_sets(run_sets, "run");
      const ArchSpec a = arch_with(arch_name, arch_sets, run_attach);
      ModelConfig m = load_model(model_name, model_sets);
      print_notes(m);
      apply_quant(m, run_quant);
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(run_sets));
      RunOptions ro;
      ro.runtime = rt.get();
      ro.phase = make_phase(pa);
      if (!kv_dtype.empty()) ro.phase.kv_dtype = parse_dtype(kv_dtype);
      if ((ffn_active || predictor_rank) && ro.phase.kind != PhaseKind::Decode)
        throw UserError(SourceLoc{ffn_active ? "--ffn-active" : "--predictor-rank"}, "--ffn-active and --predictor-rank apply to decode");
      ro.phase.ffn_active = ffn_active;
      ro.phase.predictor_rank = predictor_rank;
      ro.tp = tp;
      ro.ep = ep;
      ro.pp = pp;
      ro.microbatches = microbatches;
      ro.emulate = run_emulate;
      for (const std::string& s : weights_tier) ro.offload.push_back(parse_placement(s, Offloaded::Weights, "--weights-tier"));
      for (const std::string& s : kv_tier) ro.offload.push_back(parse_placement(s, Offloaded::KvCache, "--kv-tier"));
      if (engine == "systemc" && !ro.offload.empty())
        throw UserError(ro.offload.front().loc, "offloaded shares are priced by the analytical engine; the systemc engine simulates the device alone");
      if (!run_dtype.empty()) ro.dtype = parse_dtype(run_dtype);
      if (!run_fusion.empty()) ro.fusion = parse_fusion(run_fusion);
      ro.mapper.objective = objective == "energy" ? Objective::Energy : objective == "edp" ? Objective::EDP : Objective::Latency;
      ro.mapper.threads = run_jobs > 0 ? static_cast<int>(run_jobs) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      if (engine != "systemc" && !trace_file.empty()) throw UserError(SourceLoc{"--trace"}, "--trace needs --engine systemc");
      const double lock = flag_quantity(run_clock, "--clock", Dim::Frequency, "1.4 GHz");
      const double cap = flag_quantity(run_cap, "--power-cap", Dim::Power, "490 W");
      if (engine == "systemc" && (lock > 0 || cap > 0)) throw UserError(SourceLoc{"--engine"}, "--clock and --power-cap apply to the analytical engine");
      RunReport rep = engine == "systemc" ? run_model(m, a, ro) : run_powered(m, a, ro, lock, cap);
      if (engine == "systemc") {
        ScheduleOptions so;
        so.tiles = engine_tiles;
        so.layered = true;
        so.every_rank = !trace_file.empty();  // the ranks run alike: simulated all only to be drawn
        const Schedule sched = build_schedule(rep, a, so);
        EngineOptions eo;
        eo.quantum = quantum_us * 1e-6;
        eo.trace = !trace_file.empty();
        eo.tile_names = tiles_opt->count() > 0;  // the tiles are drawn only when --tiles asks
        std::vector<EngineResult> results = simulate_systemc({sched}, eo);
        const EngineResult res = std::move(results.front());  // a trace's events are large: moved, not copied
        apply_engine(rep, a, sched, res, "systemc");
        if (!trace_file.empty()) {
          TraceOptions to;
          to.tiles = tiles_opt->count() > 0;
          write_text(trace_file, chrome_trace(sched, res, to), "trace");
        }
      }
      out << format_run(rep, kFormats.at(run_format));
      return 0;
    }
    if (*calibrate) {
      const ArchSpec a = load_arch(cal_arch);
      const auto rt = runtime_name.empty() ? nullptr : cli_runtime(runtime_name, {});
      std::string command = "einsim calibrate";
      for (const std::string& f : cal_files) command += " " + f;
      command += " --arch " + cal_arch + (runtime_name.empty() ? "" : " --runtime " + runtime_name) + (cal_dtype.empty() ? "" : " --dtype " + cal_dtype) +
                 " -o " + cal_out;
      const std::time_t now = std::time(nullptr);
      char day[16];
      std::strftime(day, sizeof day, "%Y-%m-%d", std::gmtime(&now));
      // A preset is inherited by name; a file by its absolute path, so the output works anywhere.
      const std::string ref = std::filesystem::exists(cal_arch) ? std::filesystem::absolute(cal_arch).string() : cal_arch;
      const Calibration c = calibrate_gpu(a, ref, cal_files, rt.get(), cal_dtype.empty() ? std::nullopt : parse_dtype(cal_dtype), command, day);
      write_text(cal_out, c.toml, "output");
      out << fmt::format("{}: {} {} GEMMs fitted, {} held out ({} other rows skipped)\n", c.arch, c.fitted, dtype_name(c.dtype), c.held_out, c.skipped);
      out << fmt::format("MAC efficiency {:.2f} (the preset: {:.2f}), memory efficiency {:.2f} (the preset: {:.2f}), per-kernel overhead {:.2f} us ({})\n",
                         c.fit.mac_efficiency, c.preset_mac, c.fit.memory_efficiency, c.preset_memory, c.fit.launch_overhead * 1e6,
                         c.overhead_fixed ? "the runtime's, held" : "fitted: the harness's, not written");
      out << fmt::format("MAPE in-sample {:.1f}% (preset {:.1f}%), held out {:.1f}% (preset {:.1f}%)\nwrote {} (inherits {})\n", 100 * c.after_fitted,
                         100 * c.before_fitted, 100 * c.after_held_out, 100 * c.before_held_out, cal_out, ref);
      return 0;
    }
    if (*validate) {
      // --set runtime.KEY applies to --runtime, or, without one, to each file's harness runtime.
      const std::vector<std::string> rt_sets = take_runtime_sets(val_sets);
      const auto rt = runtime_name.empty() ? nullptr : cli_runtime(runtime_name, rt_sets);
      const ValidationReport rep = validate_measurements(load_arch(val_arch, val_sets), val_files, rt.get(), rt_sets);
      if (!val_rows.empty()) write_text(val_rows, validation_rows_csv(rep), "rows");
      if (!val_plot.empty()) write_plot(val_plot, [&] { return plot_validation_svg(rep); });
      out << format_validation(rep, kFormats.at(val_format));
      return 0;
    }
    // An analysis: its scenario (the shipped one by default), its report, its plot.
    auto report = [&](const char* name, auto load, auto analyze_fn, auto format_fn, auto plot) {
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(an_sets));
      auto sc = load(scenario_file.empty() ? name : scenario_file, an_sets);
      if (rt) sc.runtime = rt;
      const auto rep = analyze_fn(sc);
      if (!an_plot.empty()) write_plot(an_plot, [&] { return plot(rep); });
      out << format_fn(rep, kFormats.at(an_format));
      return 0;
    };
    if (*long_context) return report("long-context", load_long_context, analyze_long_context, format_long_context, plot_long_context_svg);
    if (*offload) return report("offload", load_offload, analyze_offload, format_offload, plot_offload_svg);
    if (*serve) {
      const auto [arch_sets, model_sets] = split_sets(serve_sets, "serve");
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(serve_sets));
      const ArchSpec a = arch_with(sv.arch, arch_sets, serve_attach);
      ModelConfig m = load_model(sv.model, model_sets);
      print_notes(m);
      if (!serve_dtype.empty()) m.dtype = *parse_dtype(serve_dtype);
      apply_quant(m, serve_quant);
      Trace trace = load_trace(sv.trace, sm.hash_block);
      if (!sv.arrivals.empty()) {
        SyntheticTrace st;
        st.arrivals = sv.arrivals == "gamma" ? Arrivals::Gamma : Arrivals::Poisson;
        st.rate = sv.rate > 0 ? sv.rate : trace.rate();
        st.cv = sv.cv;
        st.count = sv.requests;
        st.until = sv.duration;
        st.seed = sv.seed;
        st.sizes = &trace;
        trace = synthetic_trace(st);
      } else if (sv.rate > 0) {
        trace = scale_to_rate(trace, sv.rate);
      }
      keep_first(trace, sv.duration);
      if (serve->count("--prefix-share") && !sm.shared_prefix) throw UserError(SourceLoc{"--prefix-share"}, "--prefix-share is the share of requests with --shared-prefix: give it");
      if (sm.shared_prefix) add_shared_prefix(trace, sm.shared_prefix, sm.prefix_share, sm.hash_block, sv.seed);
      if (sm.shared_prefix && !sm.prefix_caching)
        throw UserError(SourceLoc{"--shared-prefix"}, "a shared prefix changes nothing without --prefix-caching");
      ServeConfig c;
      c.tp = sv.tp;
      c.ep = sv.ep;
      c.pp = sv.pp;
      c.instances_per_server = sv.instances;
      c.servers = sv.servers;
      c.batching = sv.batching == "chunked" ? Batching::Chunked : Batching::PrefillFirst;
      c.token_budget = sv.budget;
      c.max_batch = sv.max_batch;
      c.preemption = sv.preemption == "swap" ? Preemption::Swap : Preemption::Recompute;
      if (!serve_kv_offload.empty()) {
        // The tier preempted requests' pages swap to: its path's bandwidth and capacity.
        if (sv.preemption == "recompute" && serve->count("--preemption"))
          throw UserError(SourceLoc{"--kv-offload"}, "--kv-offload swaps preempted requests' pages to its tier: it needs --preemption swap, not recompute");
        std::string why;
        const auto path = tier_path(a, serve_kv_offload, storage_path(a, 0)[0], &why);  // from the tier feeding the arrays, as run
        if (!path) throw UserError(SourceLoc{"--kv-offload"}, why);
        if (path->write_bandwidth <= 0)
          throw UserError(SourceLoc{"--kv-offload"}, fmt::format("tier '{}' gives no write bandwidth: swapped pages are written to it", serve_kv_offload));
        c.preemption = Preemption::Swap;
        c.swap_tier = serve_kv_offload;
        c.swap_bandwidth = std::min(path->read_bandwidth, path->write_bandwidth);
        c.swap_capacity = path->capacity;
      }
      c.routing = sv.routing == "round-robin" ? Routing::RoundRobin : sv.routing == "cache-aware" ? Routing::CacheAware : Routing::LeastLoaded;
      if (c.routing == Routing::CacheAware && !sm.prefix_caching) throw UserError(SourceLoc{"--routing"}, "cache-aware routing needs --prefix-caching");
      c.prefix_caching = sm.prefix_caching;
      if (!sm.offload_policy.empty()) {
        if (serve_kv_offload.empty()) throw UserError(SourceLoc{"--offload-policy"}, "--offload-policy says what --kv-offload's tier takes: give --kv-offload");
        c.offload_policy = sm.offload_policy == "evicted" ? OffloadPolicy::Evicted : sm.offload_policy == "both" ? OffloadPolicy::Both : OffloadPolicy::Preempted;
        if (c.offload_policy != OffloadPolicy::Preempted && !sm.prefix_caching)
          throw UserError(SourceLoc{"--offload-policy"}, "evicted blocks come from the prefix cache: give --prefix-caching");
        if (c.offload_policy == OffloadPolicy::Evicted && !serve->count("--preemption")) c.preemption = Preemption::Recompute;
      }
      if (sm.spec_k || sm.spec_accept >= 0 || !sm.draft.empty()) {
        if (!sm.spec_k) throw UserError(SourceLoc{sm.spec_accept >= 0 ? "--spec-accept" : "--draft"}, "speculative decoding needs --spec-k, the tokens drafted per step");
        if (sm.spec_accept < 0 && !serve->count("--spec-accept")) throw UserError(SourceLoc{"--spec-k"}, "speculative decoding needs --spec-accept, the acceptance rate per drafted token");
        if (!(sm.spec_accept >= 0 && sm.spec_accept <= 1))
          throw UserError(SourceLoc{"--spec-accept"}, fmt::format("the acceptance rate is a probability in [0, 1], not {}", sm.spec_accept));
        c.spec.k = sm.spec_k;
        c.spec.acceptance = sm.spec_accept;
      }
      const bool disagg = sm.prefill_instances || sm.decode_instances;
      if (!disagg)
        for (const char* f : {"--prefill-arch", "--prefill-tp", "--kv-link", "--kv-link-latency", "--layerwise", "--compare-colocated"})
          if (serve->count(f)) throw UserError(SourceLoc{f}, fmt::format("{} is for disaggregated serving: give --prefill-instances and --decode-instances", f));
      std::optional<ArchSpec> prefill_arch;
      if (disagg) {
        if (!sm.prefill_instances || !sm.decode_instances)
          throw UserError(SourceLoc{sm.prefill_instances ? "--prefill-instances" : "--decode-instances"}, "disaggregated serving needs both --prefill-instances and --decode-instances");
        for (const char* f : {"--servers", "--instances", "--plan"})
          if (serve->count(f)) throw UserError(SourceLoc{f}, fmt::format("{} sizes co-located serving; disaggregated pools are sized by --prefill-instances and --decode-instances", f));
        if (sv.pp > 1 || sv.ep > 1) throw UserError(SourceLoc{sv.pp > 1 ? "--pp" : "--ep"}, "disaggregated pools run tensor parallelism only (no --pp or --ep)");
        if (!sm.prefill_arch.empty()) prefill_arch = arch_with(sm.prefill_arch, arch_sets, serve_attach);
        c.disagg.prefill = sm.prefill_instances;
        c.disagg.decode = sm.decode_instances;
        const ArchSpec& parch = prefill_arch ? *prefill_arch : a;
        c.disagg.bandwidth = kv_link_bandwidth(parch, a, sm.kv_link);
        c.disagg.latency = sm.kv_link_latency.empty() ? kv_link_latency(parch, sm.kv_link) : flag_quantity(sm.kv_link_latency, "--kv-link-latency", Dim::Time, "10 us");
        c.disagg.layerwise = sm.layerwise;
      }
      c.ttft_slo = sv.ttft_slo;
      c.tpot_slo = sv.tpot_slo;
      c.record_samples = !sv.timeline.empty() || !serve_plot.empty();
      c.operating.lock = flag_quantity(sv.clock, "--clock", Dim::Frequency, "1.4 GHz");
      c.operating.cap = flag_quantity(sv.cap, "--power-cap", Dim::Power, "490 W");
      c.power_bin = sv.power_bin;
      Deployment dep{m, a, rt, serve_kv_dtype.empty() ? std::nullopt : parse_dtype(serve_kv_dtype), serve_emulate, c, prefill_arch, sm.prefill_tp, std::nullopt};
      if (!sm.draft.empty()) {
        dep.draft = load_model(sm.draft, {});
        print_notes(*dep.draft);
        if (dep.draft->vocab_size != m.vocab_size)
          throw UserError(SourceLoc{"--draft"}, fmt::format("'{}' has a vocabulary of {} tokens and '{}' {}: a drafter proposes the target's tokens", dep.draft->name,
                                                            dep.draft->vocab_size, m.name, m.vocab_size));
        if (!serve_dtype.empty()) dep.draft->dtype = *parse_dtype(serve_dtype);
      }
      const ServeRig rig(dep);
      for (const std::string& e : rig.emulated()) err << "note: emulated: " << e << "\n";
      if (sv.plan > 0) {
        const CapacityPlan plan = plan_capacity(trace, c, rig, sv.plan, sv.plan_limit);
        std::string tried;
        for (const auto& [n, att] : plan.tried) tried += fmt::format("{}{} server{}: {:.1f}%", tried.empty() ? "" : "; ", n, n == 1 ? "" : "s", 100 * att);
        if (!plan.servers) {
          out << fmt::format("no deployment of up to {} servers meets the SLOs for {:.1f}% of requests ({})\n", sv.plan_limit, 100 * sv.plan, tried);
          return 0;
        }
        out << fmt::format("capacity plan: {} server{} ({} x {} instance{} of {} each) meet TTFT <= {:.4g} s and TPOT <= {:.4g} s for {:.1f}% of "
                           "requests\ntried: {}\n\n",
                           plan.servers, plan.servers == 1 ? "" : "s", plan.servers, sv.instances, sv.instances == 1 ? "" : "s",
                           (sv.ep > 1 ? fmt::format("EP {} (TP {})", sv.ep, sv.tp) : fmt::format("TP {}", sv.tp)) +
                               (sv.pp > 1 ? fmt::format(" x PP {}", sv.pp) : ""),
                           sv.ttft_slo,
                           sv.tpot_slo, 100 * sv.plan, tried);
        c.servers = plan.servers;
      }
      c.record_samples = c.record_samples || !sm.perfetto.empty();
      const ServeResult res = rig.run(trace, c);
      if (!sv.timeline.empty()) write_text(sv.timeline, timeline_csv(res), "timeline");
      if (!sv.power.empty()) write_text(sv.power, power_csv(res, c), "power");
      if (!sm.perfetto.empty()) {
        PerfettoOptions po;
        po.max_requests = sm.perfetto_requests;
        if (!sm.perfetto_window.empty()) std::tie(po.from, po.to) = parse_window(sm.perfetto_window, "--perfetto-window");
        write_text(sm.perfetto, perfetto_json(trace, res, c, po), "trace");
      }
      const ServeSummary sum = summarize(trace, res, rig, c);
      if (!serve_plot.empty()) write_plot(serve_plot, [&] { return plot_serve_svg(res, sum); });
      out << format_serve(sum, kFormats.at(sv.format));
      if (sm.compare) {
        // The same devices co-located: as many instances of --tp devices as the pools have.
        ServeConfig co = c;
        co.disagg = {};
        const int64_t n = rig.devices(c) / c.devices();
        if (rig.devices(c) % c.devices() != 0 || (prefill_arch && prefill_arch->name != a.name))
          throw UserError(SourceLoc{"--compare-colocated"}, "the pools' devices make no whole number of co-located instances of one arch and --tp");
        co.servers = 1;
        co.instances_per_server = n;
        Deployment cd = dep;
        cd.config = co;
        const ServeRig crig(cd);
        const ServeResult cres = crig.run(trace, co);
        const ServeSummary cs = summarize(trace, cres, crig, co);
        out << "\nco-located on the same " << cs.devices << " devices:\n" << format_serve(cs, kFormats.at(sv.format));
      }
      return 0;
    }
    if (*simulate) {
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(sim_sets));
      ContentionScenario sc = load_contention(sim_file, sim_sets);
      if (rt) sc.runtime = rt;
      EngineOptions eo;
      eo.trace = !sim_trace.empty();
      eo.quantum = sim_quantum_us * 1e-6;
      std::vector<std::string> traces;
      const ContentionReport rep = simulate_contention({sc}, eo, &traces).front();
      if (!sim_trace.empty()) write_text(sim_trace, traces.front(), "trace");
      out << format_contention(rep, kFormats.at(sim_format));
      return 0;
    }
    if (*sweep) {
      const auto rt = cli_runtime(runtime_name, take_runtime_sets(sw.sets));
      std::vector<std::string> sets;
      for (const std::string& o : sw.sets) {
        if (!o.starts_with("sweep.")) throw UserError(SourceLoc{"--set"}, fmt::format("'{}': sweep overrides start with sweep.", o));
        sets.push_back(o);
      }
      SweepSpec spec = load_sweep(resolve_model_path(sw.spec, "sweeps"), sets);
      if (rt) spec.runtime = rt;
      check_sweep(spec);
      SweepOptions so;
      so.db = sw.db;
      so.jobs = sw.jobs > 0 ? static_cast<int>(sw.jobs) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      std::tie(so.shard, so.shards) = parse_shard(sw.shard);
      so.limit = sw.limit;
      so.progress = &err == &std::cerr && isatty(STDERR_FILENO);
      g_sweep_stop.store(false);
      so.stop = &g_sweep_stop;
      auto old_int = std::signal(SIGINT, on_sweep_signal);
      auto old_term = std::signal(SIGTERM, on_sweep_signal);
      SweepOutcome res;
      int rank = 0;
      try {
        res = sw.mpi ? run_sweep_mpi(spec, so, err, &rank) : run_sweep(spec, so, err);
      } catch (...) {
        std::signal(SIGINT, old_int);
        std::signal(SIGTERM, old_term);
        throw;
      }
      std::signal(SIGINT, old_int);
      std::signal(SIGTERM, old_term);
      if (rank == 0) out << format_outcome(spec, so, res);
      return res.interrupted ? 130 : 0;
    }
    if (*plan_cmd) {
      if (!(pl.attainment > 0 && pl.attainment <= 1))
        throw UserError(SourceLoc{"--attainment"}, fmt::format("the share of requests within the SLOs is in (0, 1], not {}", pl.attainment));
      if (!pl.spec.empty()) {
        SweepSpec spec = load_sweep(resolve_model_path(pl.spec, "sweeps"), {});
        if (spec.mode != SweepMode::Serve) throw UserError(SourceLoc{spec.file}, "a plan needs a serving sweep: mode = \"serve\" in [sweep]");
        if (const auto rt = cli_runtime(runtime_name, {})) spec.runtime = rt;
        check_sweep(spec);
        SweepOptions so;
        so.db = pl.db;
        so.jobs = pl.jobs > 0 ? static_cast<int>(pl.jobs) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        so.progress = &err == &std::cerr && isatty(STDERR_FILENO);
        const SweepOutcome res = run_sweep(spec, so, err);
        err << format_outcome(spec, so, res);
      }
      out << format_plan(plan_from_db(pl.db, pl.attainment, static_cast<size_t>(pl.top)), kFormats.at(pl.format));
      return 0;
    }
    if (*pareto) {
      const ParetoResult r = pareto_front(pa_db, pa_objectives, pa_color);
      if (!pa_plot.empty()) write_plot(pa_plot, [&] { return plot_pareto_svg(r); });
      out << format_pareto(r, kFormats.at(pa_format));
      return 0;
    }
    if (*exporter) {
      if (ex_out.empty()) {
        export_db(ex_db, ex_format, ex_status, out);
        return 0;
      }
      std::ofstream f(ex_out);
      if (!f) throw UserError(SourceLoc{ex_out}, "cannot write the export");
      export_db(ex_db, ex_format, ex_status, f);
      if (!f) throw UserError(SourceLoc{ex_out}, "cannot write the export");
      return 0;
    }
    if (*merge) {
      const int64_t added = merge_dbs(mg_inputs, mg_out);
      SweepDb db(mg_out, false);
      const Format mf = kFormats.at(mg_format);
      if (mf == Format::Json)
        out << nlohmann::json{{"output", mg_out}, {"inputs", mg_inputs.size()}, {"new_points", added}, {"points", db.count()}}.dump(
                   2, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n";
      else if (mf == Format::Csv)
        out << fmt::format("output,inputs,new_points,points\n{},{},{},{}\n", csv_field(mg_out), mg_inputs.size(), added, db.count());
      else
        out << fmt::format("merged {} database{} into {}: {} new points, {} in all\n", mg_inputs.size(), mg_inputs.size() == 1 ? "" : "s", mg_out, added,
                           db.count());
      return 0;
    }
    if (*completion) {
      out << bash_completion(app);
      return 0;
    }
    if (*manual) {
      out << man_page(app, version());
      return 0;
    }
    if (*schema) {
      out << config_schema(schema_kind);
      return 0;
    }
    if (*flash) return report("flash", load_flash, analyze_flash, format_flash, plot_flash_svg);
    if (*power) return report("power", load_power, analyze_power, format_power, plot_power_svg);
    if (*kv_comp) return report("kv-compression", load_kv_compression, analyze_kv_compression, format_kv_compression, plot_kv_compression_svg);
    if (*fusemax) {
      FmOptions fo;
      fo.reading = fm_reading;
      auto split = [](const std::string& text) {
        std::vector<std::string> items;
        size_t pos = 0;
        while (pos <= text.size()) {
          const size_t end = std::min(text.find(',', pos), text.size());
          items.push_back(text.substr(pos, end - pos));
          pos = end + 1;
        }
        return items;
      };
      if (!fm_models.empty()) fo.models = split(fm_models);
      if (!fm_seqs.empty()) {
        fo.seqs.clear();
        for (const std::string& q : split(fm_seqs)) fo.seqs.push_back(parse_tokens(q, "--seq"));
      }
      fo.batch = parse_tokens(fm_batch, "--batch");
      fo.pareto = fm_pareto;
      if (!fm_pe_dims.empty()) {
        if (!fm_pareto) throw UserError(SourceLoc{"--pe-dims"}, "--pe-dims applies to --pareto");
        fo.pe_dims.clear();
        for (const std::string& q : split(fm_pe_dims)) fo.pe_dims.push_back(parse_tokens(q, "--pe-dims"));
      }
      if (!fm_pareto_seq.empty()) {
        if (!fm_pareto) throw UserError(SourceLoc{"--pareto-seq"}, "--pareto-seq applies to --pareto");
        fo.pareto_seq = parse_tokens(fm_pareto_seq, "--pareto-seq");
      }
      for (const std::string& o : fm_sets) {
        if (o.starts_with("arch.")) {
          fo.fusemax_sets.push_back(o);
          fo.flat_sets.push_back(o);
        } else if (o.starts_with("fusemax.") || o.starts_with("flat.")) {
          const size_t dot = o.find('.');
          (o.starts_with("flat.") ? fo.flat_sets : fo.fusemax_sets).push_back("arch." + o.substr(dot + 1));
        } else {
          throw UserError(SourceLoc{"--set"}, fmt::format("'{}': study overrides start with fusemax., flat. or arch. (both)", o));
        }
      }
      const FmStudy st = run_fusemax_study(fo);
      if (!fm_plot.empty()) write_plot(fm_plot, [&] { return plot_fusemax_svg(st); });
      out << format_fusemax(st, kFormats.at(fm_format));
      return 0;
    }
    if (*describe) {
      const Format fmt_ = kFormats.at(format);
      const std::string path = resolve_model_path(file);
      if (config_kind(path) == ConfigKind::Arch) {
        if (!pa.phase.empty()) throw UserError(SourceLoc{"--phase"}, "--phase applies to models, not architectures");
        out << describe_arch(load_arch(path, overrides), fmt_);
        return 0;
      }
      if (config_kind(path) == ConfigKind::Scenario)
        throw UserError(SourceLoc{path, 1, 1}, "a [scenario] file is run by `einsim analyze`, not described");
      if (config_kind(path) == ConfigKind::Sweep) throw UserError(SourceLoc{path, 1, 1}, "a [sweep] file is run by `einsim sweep`, not described");
      if (config_kind(path) == ConfigKind::Runtime)
        throw UserError(SourceLoc{path, 1, 1}, "a [runtime] file is given to --runtime (einsim check validates it), not described");
      if (config_kind(path) == ConfigKind::Cascade) {
        if (!pa.phase.empty() || !pa.prompt.empty() || !pa.context.empty())
          throw UserError(SourceLoc{"--phase"}, "--phase, --prompt and --context apply to models, not cascades");
        out << describe_cascade(load_cascade(path, overrides), fmt_);
        return 0;
      }
      const ModelConfig m = load_model(path, overrides);
      print_notes(m);
      std::optional<Phase> ph;
      if (!pa.phase.empty()) {
        ph = make_phase(pa);
      } else if (!pa.prompt.empty() || !pa.context.empty()) {
        throw UserError(SourceLoc{"--prompt"}, "--prompt and --context need --phase prefill|decode");
      }
      out << describe_model(m, ph, fmt_);
      return 0;
    }
  } catch (const UserError& e) {
    err << e.what() << "\n";
    if (json_errors) out << error_json(e.loc(), e.message());
    return 1;
  } catch (const std::exception& e) {
    err << "einsim: internal error: " << e.what() << "\n";
    if (json_errors) out << error_json(SourceLoc{"einsim"}, std::string("internal error: ") + e.what());
    return 2;
  }
  return 0;
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  // `--format json` asks for JSON errors too: scanned here, so a parse error gets one as well.
  bool json_errors = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--format=json" || (a == "--format" && i + 1 < argc && std::string(argv[i + 1]) == "json")) json_errors = true;
  }
  const int code = run_commands(argc, argv, out, err, json_errors);
  // Output that could not be written (a full disk, a closed pipe) is an error, not a success.
  out.flush();
  if (!out) {
    err << "einsim: error: cannot write the output (disk full or pipe closed)\n";
    return code == 0 ? 1 : code;
  }
  return code;
}

}  // namespace einsim
