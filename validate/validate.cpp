#include "validate/validate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "arch/collective.h"
#include "common/paths.h"
#include "common/toml_reader.h"
#include "sim/cost/mapper.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "validate/calibration.h"
#include "validate/gpt_fast.h"
#include "validate/network.h"
#include "workloads/cascade_loader.h"
#include "workloads/executor.h"

namespace einsim {

std::string KernelSample::kernel_class() const {
  if (kind == "gemm") return fmt::format("gemm-{}", dtype_name(dtype));
  if (kind == "attention") return "attention-" + op;
  if (kind == "collective") return fmt::format("{}-n{} ({})", op, batch, held_out ? "held out" : "fitted");
  if (kind == "decode-step" && (dtype == DType::INT8 || dtype == DType::INT4))
    return fmt::format("decode-step {} ({})", dtype_name(dtype), held_out ? "held out" : "fitted");
  if (kind == "decode-step") return fmt::format("decode-step tp{}", batch);
  return kind;
}

std::string KernelSample::shape() const {
  if (kind == "gemm") return fmt::format("{}x{}x{}", m, n, k);
  if (kind == "attention") return fmt::format("b{} h{} q{} kv{} d{}", batch, heads, seq, kv, k);
  if (kind == "rowwise") return fmt::format("{}x{}", m, n);
  if (kind == "collective") return fmt::format("n{} {:.0f} B", batch, bytes);
  if (kind == "decode-step")
    return fmt::format("tp{} batch 1 context {}{}", batch, kv, dtype == DType::INT8 || dtype == DType::INT4 ? fmt::format(" {} weights", dtype_name(dtype)) : "");
  return fmt::format("{} elements", m);
}

namespace {

DType dtype_of(const std::string& text, const SourceLoc& at) {
  if (text == "u8") return DType::INT8;  // host copies: bytes
  if (auto t = parse_dtype(text)) return *t;
  throw UserError(at, fmt::format("unknown element type '{}'", text));
}

// A kernel's cascade from TOML text, at element type `t`, bound to `params`.
Cascade kernel_cascade(const std::string& text, DType t, const std::map<std::string, int64_t>& params) {
  auto doc = ConfigDoc::parse("version = 1\n" + text, "kernel");
  CascadeSpec spec = read_cascade(doc->root().get_table("cascade"));
  doc->finish();
  spec.dtype = t;
  return bind_cascade(spec, params);
}

// One fused kernel per cascade: copy, triad, softmax, layer norm and GELU as PyTorch runs them
// (one kernel each), attention as FlashAttention does (FuseMax Cascade 5 in one kernel).
const char* kCopy = R"toml([cascade]
name = "copy"
inputs = ["A"]
dtype = "fp32"
einsums = ["Z[i] = A[i]"]
ranks = { I = "n" }
)toml";
const char* kTriad = R"toml([cascade]
name = "triad"
inputs = ["A", "B"]
dtype = "fp32"
einsums = ["Z[i] = A[i] + B[i] * 2"]
ranks = { I = "n" }
)toml";
const char* kSoftmax = R"toml([cascade]
name = "softmax"
inputs = ["X"]
dtype = "bf16"
einsums = ["MX[m] = max[n] X[m,n]", "E[m,n] = exp(X[m,n] - MX[m])", "S[m] = E[m,n]", "Y[m,n] = E[m,n] / S[m]"]
ranks = { M = "rows", N = "cols" }
)toml";
const char* kLayerNorm = R"toml([cascade]
name = "layernorm"
inputs = ["X", "W", "B"]
dtype = "bf16"
einsums = ["S1[m] = X[m,n]", "S2[m] = X[m,n] * X[m,n]", "RS[m] = rsqrt(S2[m] / N - (S1[m] / N) * (S1[m] / N) + 0.00001)",
           "Y[m,n] = (X[m,n] - S1[m] / N) * RS[m] * W[n] + B[n]"]
ranks = { M = "rows", N = "cols" }
)toml";
const char* kGelu = R"toml([cascade]
name = "gelu"
inputs = ["X"]
dtype = "fp16"
einsums = ["Y[i] = gelu(X[i])"]
ranks = { I = "n" }
)toml";

// A shipped attention cascade at one shape: the 1-pass one (keys in blocks of at most 256) or
// the 3-pass one.
Cascade attention_cascade(const KernelSample& s, bool three_pass = false) {
  auto doc = ConfigDoc::load(config_path(three_pass ? "workloads/attention-3pass.toml" : "workloads/attention-1pass.toml"));
  CascadeSpec c = read_cascade(doc->root().get_table("cascade"));
  doc->finish();
  const int64_t kv = std::max<int64_t>(1, s.kv), block = std::min<int64_t>(256, kv);
  if (!three_pass && kv % block) throw UserError(s.loc, fmt::format("attention over {} keys: einsim's cascade needs a multiple of {} keys", kv, block));
  c.dtype = s.dtype;
  std::map<std::string, int64_t> params = {{"batch", std::max<int64_t>(1, s.batch)}, {"heads", std::max<int64_t>(1, s.heads)}, {"kv_len", kv},
                                           {"q_len", std::max<int64_t>(1, s.seq)}, {"head_dim", std::max<int64_t>(1, s.k)}};
  if (!three_pass) params["block"] = block;
  return bind_cascade(c, params);
}

double run_time(const Cascade& c, const ArchSpec& a, DType dt, std::string* bottleneck, Fusion fusion = Fusion::Greedy, MapCache* cache = nullptr,
                double* energy = nullptr) {
  MapperOptions mo;
  const RunReport r = run_cascade(c, a, dt, fusion, mo, cache);
  if (energy)
    for (const BlockRun& b : r.blocks) *energy += b.energy;
  if (bottleneck) {
    double worst = -1;
    for (const BlockRun& b : r.blocks)
      if (b.time > worst) worst = b.time, *bottleneck = b.bottleneck;
  }
  return r.step_time;
}

}  // namespace

std::vector<KernelSample> load_kernel_samples(const std::string& file) {
  const std::string name = std::filesystem::path(file).filename().string();
  std::vector<KernelSample> out;
  auto llmcompass = [&](const char* prefix) { return name.starts_with(prefix); };
  if (llmcompass("matmul_")) {
    for (const GemmMeasurement& g : read_llmcompass_matmul(file)) {
      KernelSample s;
      s.set = name, s.kind = "gemm", s.op = "matmul", s.dtype = DType::FP16, s.m = g.m, s.n = g.n, s.k = g.k, s.measured = g.seconds, s.loc = g.loc;
      const double m = static_cast<double>(g.m), n = static_cast<double>(g.n), k = static_cast<double>(g.k);
      s.bytes = 2.0 * (m * k + k * n + m * n);
      out.push_back(s);
    }
  } else if (llmcompass("softmax_") || llmcompass("layernorm_") || llmcompass("gelu_")) {
    const std::string op = name.substr(0, name.find('_'));
    for (const ElementwiseMeasurement& e : read_llmcompass_elementwise(file)) {
      KernelSample s;
      s.set = name, s.kind = op == "gelu" ? "elementwise" : "rowwise", s.op = op, s.dtype = DType::FP16, s.m = e.m, s.n = e.n;
      s.measured = e.seconds(), s.loc = e.loc;
      s.bytes = 2.0 * 2 * static_cast<double>(e.m) * static_cast<double>(e.n);
      if (op == "gelu" && e.n != 1) throw UserError(e.loc, "a GELU row has two fields: M, Gelem/s");
      out.push_back(s);
    }
  } else if (name == "all_reduce.csv" || name == "send_recv.csv") {
    // Vidur's NCCL profiles (one node; rows across nodes are outside the presets).
    const std::string system = std::filesystem::path(file).parent_path().filename().string();
    const std::string set = system.empty() ? name : fmt::format("{}/{}", system, name);
    for (const CollectiveSample& c : vidur_collectives(file)) {
      KernelSample s;
      s.set = set;
      s.kind = "collective", s.op = c.m.collective, s.batch = c.m.workers, s.bytes = c.m.bytes, s.measured = c.m.seconds, s.loc = c.m.loc;
      s.held_out = c.held_out;
      out.push_back(s);
    }
  } else if (name.ends_with("_mlp.csv")) {
    for (int64_t tp : {1, 2, 4, 8})
      for (const GemmSample& g : vidur_gemms(file, tp)) {
        KernelSample s;
        s.set = name, s.kind = "gemm", s.op = fmt::format("{} tp{}", g.label.substr(0, g.label.find(' ')), tp), s.dtype = DType::FP16;
        s.m = g.m, s.n = g.n, s.k = g.k, s.measured = g.measured, s.loc = g.loc;
        out.push_back(s);
      }
  } else {
    for (const KernelMeasurement& k : read_kernel_csv(file)) {
      KernelSample s;
      s.set = name, s.kind = k.kind, s.op = k.op, s.dtype = dtype_of(k.dtype, k.loc), s.m = k.m, s.n = k.n, s.k = k.k;
      s.batch = k.batch, s.heads = k.heads, s.seq = k.seq, s.kv = k.kv, s.bytes = k.bytes, s.measured = k.seconds, s.power = k.power, s.loc = k.loc;
      out.push_back(s);
    }
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

KernelPrediction predict_kernel(const ArchSpec& a, const KernelSample& s, MapCache* cache) {
  KernelPrediction p;
  p.sample = s;
  auto positive = [&](int64_t v, const char* what) {
    if (v < 1) throw UserError(s.loc, fmt::format("a {} {} measurement needs a positive {}", s.kind, s.op, what));
    return v;
  };
  if (s.kind == "gemm") {
    // A scaled fp8 GEMM (torch._scaled_mm, cuBLASLt) writes bf16: its output moves two bytes
    // an element. (Its per-tensor scales are two numbers.)
    const std::optional<DType> out = s.op == "scaled_mm" ? std::optional(DType::BF16) : std::nullopt;
    const Cascade c = gemm_cascade(positive(s.m, "m"), positive(s.n, "n"), positive(s.k, "k"), s.dtype, out);
    const MapResult r = map_einsum(c, c.einsums[0], a, s.dtype);
    p.predicted = r.cost.time;
    p.energy = r.cost.energy;
    p.bottleneck = r.cost.bottleneck;
  } else if (s.kind == "attention") {
    positive(s.k, "head size k");
    // kbench's naive attention: the scores to memory, a softmax kernel, the weighted values
    // (each product its own kernel); every other attention row is one fused kernel.
    const bool three = s.op == "prefill-3pass";
    p.predicted = run_time(attention_cascade(s, three), a, s.dtype, &p.bottleneck, three ? Fusion::Eager : Fusion::Greedy, cache, &p.energy);
  } else if (s.kind == "memory") {
    const bool triad = s.op == "triad";
    if (!triad && s.op != "copy") throw UserError(s.loc, fmt::format("unknown memory kernel '{}' (known: copy, triad)", s.op));
    const Cascade c = kernel_cascade(triad ? kTriad : kCopy, s.dtype, {{"n", positive(s.m, "m")}});
    p.predicted = run_time(c, a, s.dtype, &p.bottleneck, Fusion::Greedy, nullptr, &p.energy);
  } else if (s.kind == "rowwise") {
    if (s.op != "softmax" && s.op != "layernorm") throw UserError(s.loc, fmt::format("unknown row-wise kernel '{}' (known: softmax, layernorm)", s.op));
    const Cascade c =
        kernel_cascade(s.op == "softmax" ? kSoftmax : kLayerNorm, s.dtype, {{"rows", positive(s.m, "m")}, {"cols", positive(s.n, "n")}});
    p.predicted = run_time(c, a, s.dtype, &p.bottleneck);
  } else if (s.kind == "elementwise") {
    const Cascade c = kernel_cascade(kGelu, s.dtype, {{"n", positive(s.m, "m")}});
    p.predicted = run_time(c, a, s.dtype, &p.bottleneck);
  } else if (s.kind == "collective") {
    const Link* peer = peer_link(a);
    if (!peer) throw UserError(a.loc, fmt::format("'{}' has no link to a peer device to predict {} over", a.name, s.op));
    CollectiveMeasurement m;
    m.collective = s.op, m.workers = positive(s.batch, "worker count"), m.bytes = s.bytes;
    p.predicted = predict_collective(*peer, m);
    p.bottleneck = peer->name;
  } else if (s.kind == "pcie") {
    const Link* host = nullptr;
    for (const Link& l : a.links)
      if (l.to == "host") host = &l;
    if (!host) throw UserError(a.loc, fmt::format("'{}' has no link to the host to predict {} copies over", a.name, s.op));
    const double bytes = s.bytes > 0 ? s.bytes : static_cast<double>(positive(s.m, "m"));
    p.predicted = bytes / host->bandwidth + host->latency + (a.gpu ? a.gpu->launch_overhead : 0);
    p.energy = bytes * host->energy;
    p.bottleneck = host->name + " bandwidth";
  } else {
    throw UserError(s.loc, fmt::format("no prediction for kernels of kind '{}'", s.kind));
  }
  p.active = a.power.active;
  return p;
}

std::vector<ClassError> class_errors(const std::vector<KernelPrediction>& rows) {
  std::map<std::string, std::vector<size_t>> by;
  for (size_t i = 0; i < rows.size(); ++i) by[rows[i].sample.kernel_class()].push_back(i);
  std::vector<size_t> all(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) all[i] = i;
  std::vector<ClassError> out;
  auto gather = [&](const std::string& name, std::vector<size_t> idx) {
    ClassError c;
    c.name = name;
    c.count = static_cast<int64_t>(idx.size());
    for (size_t i : idx) c.mape += std::fabs(rows[i].error()), c.bias += rows[i].error();
    if (!idx.empty()) c.mape /= static_cast<double>(idx.size()), c.bias /= static_cast<double>(idx.size());
    for (size_t i : idx)
      if (rows[i].has_power()) ++c.power_count, c.power_mape += std::fabs(rows[i].power_error()), c.power_bias += rows[i].power_error();
    if (c.power_count > 0) c.power_mape /= static_cast<double>(c.power_count), c.power_bias /= static_cast<double>(c.power_count);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return std::fabs(rows[x].error()) > std::fabs(rows[y].error()); });
    idx.resize(std::min<size_t>(3, idx.size()));
    c.worst = idx;
    out.push_back(std::move(c));
  };
  for (const auto& [name, idx] : by) gather(name, idx);
  if (by.size() > 1) gather("all", all);
  return out;
}

std::pair<double, double> fit_kind_efficiency(const ArchSpec& a, const std::vector<std::string>& files, const Runtime& base, KernelKind kind,
                                              const std::string& cls) {
  std::vector<KernelSample> rows;
  for (const std::string& f : files)
    for (const KernelSample& s : load_kernel_samples(f))
      if (s.kernel_class() == cls) rows.push_back(s);
  if (rows.empty()) throw UserError(SourceLoc{files.empty() ? "" : files.front()}, fmt::format("no rows of class '{}' to fit", cls));
  MapCache cache;  // the quality scales rates after mapping: one mapping per row serves the grid
  return fit_kind_quality(base, kind, 0.5, [&](const Runtime& rt) {
    const ArchSpec x = with_runtime(a, rt, PhaseKind::Prefill);
    double mape = 0;
    for (const KernelSample& s : rows) mape += std::fabs(predict_kernel(x, s, &cache).error());
    return mape / static_cast<double>(rows.size());
  });
}

std::string harness_runtime(const std::string& file) {
  const std::string name = std::filesystem::path(file).filename().string();
  for (const char* p : {"matmul_", "softmax_", "layernorm_", "gelu_"})
    if (name.starts_with(p)) return "pytorch-eager";
  if (name.ends_with("_mlp.csv") || name == "all_reduce.csv" || name == "send_recv.csv") return "pytorch-eager";
  if (name.starts_with("gpt-fast")) return "cuda-graphs";
  // kbench times each kernel from C++ (CUDA events around one launch, no Python): of the
  // shipped runtimes, the engine's C++ launch path is the closest (inference-engine, 6 us).
  if (name.starts_with("kbench")) return "inference-engine";
  return "torch-bench";
}

ValidationReport validate_measurements(const ArchSpec& hardware, const std::vector<std::string>& files, const Runtime* runtime,
                                       const std::vector<std::string>& runtime_sets) {
  if (!hardware.gpu) throw UserError(hardware.loc, fmt::format("'{}' is not a GPU: measured GPU kernels are predicted on GPU presets", hardware.name));
  ValidationReport r;
  r.arch = hardware.name;
  r.files = files;
  std::map<std::string, Runtime> harnesses;
  for (const std::string& f : files) {
    const Runtime* rt = runtime;
    if (!rt) {
      const std::string h = harness_runtime(f);
      auto it = harnesses.find(h);
      if (it == harnesses.end()) it = harnesses.emplace(h, load_runtime(h, runtime_sets)).first;
      rt = &it->second;
    }
    r.runtimes.push_back(rt->name);
    if (std::filesystem::path(f).filename().string().starts_with("gpt-fast")) {
      // Whole decode steps (seconds per generated token), predicted as the runtime runs them;
      // quantized rows as gpt-fast stores them (gpt_fast_quantization), their kernels' quality
      // fitted on one row per type (gpt_fast_fit_row), the rest held out.
      MapCache cache;
      for (const DecodeThroughput& row : read_gpt_fast(f)) {
        const DecodePrediction d = predict_gpt_fast(hardware, *rt, row, &cache);
        KernelPrediction p;
        p.sample.set = std::filesystem::path(f).filename().string();
        p.sample.kind = "decode-step", p.sample.op = row.model, p.sample.batch = row.tp, p.sample.kv = row.prompt + row.new_tokens / 2;
        p.sample.dtype = row.weights == "int8" ? DType::INT8 : row.weights == "int4" ? DType::INT4 : DType::BF16;
        p.sample.held_out = row.weights != "bf16" && !gpt_fast_fit_row(row);
        p.sample.measured = 1 / row.tokens_per_s, p.sample.loc = row.loc;
        p.predicted = 1 / d.tokens_per_s;
        const auto slowest = std::max_element(d.decode.blocks.begin(), d.decode.blocks.end(), [](const BlockRun& x, const BlockRun& y) { return x.time < y.time; });
        p.bottleneck = slowest == d.decode.blocks.end() ? "-" : slowest->bottleneck;
        r.rows.push_back(std::move(p));
      }
      continue;
    }
    // Each kernel is timed alone: a launch outside any graph.
    const ArchSpec a = with_runtime(hardware, *rt, PhaseKind::Prefill);
    for (const KernelSample& s : load_kernel_samples(f)) r.rows.push_back(predict_kernel(a, s));
  }
  r.classes = class_errors(r.rows);
  return r;
}

namespace {

std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }
std::string signed_pct(double x) { return fmt::format("{:+.1f}%", 100 * x); }
std::string us(double s) { return fmt::format("{:.4g}", s * 1e6); }

}  // namespace

std::string validation_rows_csv(const ValidationReport& r) {
  std::string out = "set,class,op,shape,measured_s,predicted_s,error,bottleneck,location\n";
  for (const KernelPrediction& p : r.rows)
    out += fmt::format("{},{},{},{},{:.6g},{:.6g},{:.4f},{},{}\n", p.sample.set, p.sample.kernel_class(), p.sample.op, p.sample.shape(), p.sample.measured,
                       p.predicted, p.error(), p.bottleneck, p.sample.loc.str());
  return out;
}

std::string format_validation(const ValidationReport& r, Format f) {
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "validate";
    j["arch"] = r.arch;
    j["files"] = r.files;
    j["runtimes"] = r.runtimes;
    j["classes"] = nlohmann::json::array();
    for (const ClassError& c : r.classes) {
      nlohmann::json worst = nlohmann::json::array();
      for (size_t i : c.worst) {
        const KernelPrediction& p = r.rows[i];
        worst.push_back({{"op", p.sample.op}, {"shape", p.sample.shape()}, {"measured_s", p.sample.measured}, {"predicted_s", p.predicted},
                         {"error", p.error()}, {"location", p.sample.loc.str()}});
      }
      nlohmann::json cls = {{"class", c.name}, {"count", c.count}, {"mape", c.mape}, {"bias", c.bias}, {"worst", worst}};
      if (c.power_count > 0) cls["power"] = {{"count", c.power_count}, {"mape", c.power_mape}, {"bias", c.power_bias}};
      j["classes"].push_back(std::move(cls));
    }
    j["rows"] = nlohmann::json::array();
    for (const KernelPrediction& p : r.rows)
      j["rows"].push_back({{"set", p.sample.set}, {"class", p.sample.kernel_class()}, {"op", p.sample.op}, {"shape", p.sample.shape()},
                           {"measured_s", p.sample.measured}, {"predicted_s", p.predicted}, {"error", p.error()}, {"bottleneck", p.bottleneck},
                           {"measured_w", p.has_power() ? nlohmann::json(p.sample.power) : nlohmann::json()},
                           {"predicted_w", p.has_power() ? nlohmann::json(p.predicted_power()) : nlohmann::json()}});
    return j.dump(2) + "\n";
  }
  TextTable t({"class", "count", "MAPE", "bias", "worst rows (measured -> predicted us, error)"});
  for (const ClassError& c : r.classes) {
    std::string worst;
    for (size_t i : c.worst) {
      const KernelPrediction& p = r.rows[i];
      worst += fmt::format("{}{} {} {} -> {} ({})", worst.empty() ? "" : "; ", p.sample.op, p.sample.shape(), us(p.sample.measured), us(p.predicted),
                           signed_pct(p.error()));
    }
    t.row({c.name, std::to_string(c.count), pct(c.mape), signed_pct(c.bias), c.name == "all" ? "" : worst});
  }
  if (f == Format::Csv) return t.csv();
  std::string files;
  for (size_t i = 0; i < r.files.size(); ++i)
    files += fmt::format("{}{}{}", files.empty() ? "" : ", ", r.files[i], i < r.runtimes.size() ? " under " + r.runtimes[i] : "");
  std::string out = fmt::format("{} measurements predicted on {} ({})\nbias > 0: einsim predicts slower than measured\n\n", r.rows.size(), r.arch, files) +
                    t.aligned();
  // Power, where the file measured it: the arch's power model at the measured rate.
  TextTable pw({"class", "rows", "power MAPE", "bias", "worst rows (measured -> predicted W)"});
  for (const ClassError& c : r.classes) {
    if (c.power_count == 0) continue;
    std::vector<size_t> idx;
    for (size_t i = 0; i < r.rows.size(); ++i)
      if (r.rows[i].has_power() && (c.name == "all" || r.rows[i].sample.kernel_class() == c.name)) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return std::fabs(r.rows[x].power_error()) > std::fabs(r.rows[y].power_error()); });
    std::string worst;
    for (size_t k = 0; k < idx.size() && k < 2 && c.name != "all"; ++k) {
      const KernelPrediction& p = r.rows[idx[k]];
      worst += fmt::format("{}{} {} {:.0f} -> {:.0f} ({})", worst.empty() ? "" : "; ", p.sample.op, p.sample.shape(), p.sample.power, p.predicted_power(),
                           signed_pct(p.power_error()));
    }
    pw.row({c.name, std::to_string(c.power_count), pct(c.power_mape), signed_pct(c.power_bias), worst});
  }
  if (!pw.empty())
    out += "\npower while each kernel runs back to back: active + the model's energy per call / the measured time (bias < 0: einsim draws less)\n\n" +
           pw.aligned();
  return out;
}

std::string plot_validation_svg(const ValidationReport& r) {
  PlotPanel p;
  p.title = "Predicted against measured kernel time";
  p.xlabel = "measured (us)";
  p.ylabel = "predicted (us)";
  p.log_y = true;
  std::map<std::string, PlotSeries> by;
  double lo = 1e300, hi = 0;
  for (const KernelPrediction& k : r.rows) {
    PlotSeries& s = by[k.sample.kernel_class()];
    s.name = s.key = k.sample.kernel_class();
    s.points.emplace_back(k.sample.measured * 1e6, k.predicted * 1e6);
    lo = std::min({lo, k.sample.measured * 1e6, k.predicted * 1e6});
    hi = std::max({hi, k.sample.measured * 1e6, k.predicted * 1e6});
  }
  for (auto& [name, s] : by) {
    std::sort(s.points.begin(), s.points.end());
    s.points_only = true;
    p.series.push_back(s);
  }
  if (hi > 0) p.series.push_back(PlotSeries{"no error", {{lo, lo}, {hi, hi}}, true, "no error"});
  return svg_plot({p}, {fmt::format("{}: {} kernels", r.arch, r.rows.size())});
}

AttentionDump read_attention_dump(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(SourceLoc{file}, "cannot open file");
  std::string head;
  std::getline(in, head);
  AttentionDump d;
  if (std::sscanf(head.c_str(), "%lld %lld %lld %lld", reinterpret_cast<long long*>(&d.batch), reinterpret_cast<long long*>(&d.heads),
                  reinterpret_cast<long long*>(&d.rows), reinterpret_cast<long long*>(&d.head_dim)) != 4 ||
      d.batch < 1 || d.heads < 1 || d.rows < 1 || d.head_dim < 1)
    throw UserError(SourceLoc{file, 1, 1}, fmt::format("expected 'batch heads rows head_dim' (positive integers), found '{}'", head));
  const int64_t n = d.batch * d.heads * d.rows * d.head_dim;
  if (n > (int64_t{1} << 28)) throw UserError(SourceLoc{file, 1, 1}, "the dump is larger than a check needs");
  d.values.resize(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(d.values.data()), static_cast<std::streamsize>(n * 4));
  if (in.gcount() != n * 4) throw UserError(SourceLoc{file, 2, 1}, fmt::format("expected {} float32 values after the header, found {} bytes", n, in.gcount()));
  return d;
}

void write_attention_dump(const std::string& file, const AttentionDump& d) {
  std::ofstream out(file, std::ios::binary);
  if (!out) throw UserError(SourceLoc{file}, "cannot write file");
  out << d.batch << " " << d.heads << " " << d.rows << " " << d.head_dim << "\n";
  out.write(reinterpret_cast<const char*>(d.values.data()), static_cast<std::streamsize>(d.values.size() * 4));
}

std::vector<AttentionCheck> check_attention_dump(const std::string& dir, double tolerance) {
  const AttentionDump q = read_attention_dump(dir + "/attention-q.bin"), k = read_attention_dump(dir + "/attention-k.bin"),
                      v = read_attention_dump(dir + "/attention-v.bin");
  if (k.batch != q.batch || k.heads != q.heads || k.head_dim != q.head_dim || v.batch != k.batch || v.heads != k.heads || v.rows != k.rows ||
      v.head_dim != k.head_dim)
    throw UserError(SourceLoc{dir + "/attention-k.bin", 1, 1}, "Q, K and V dumps disagree on batch, heads or head size");
  // The cascade's layout: Q[b,h,e,p], K[b,h,e,m], V[b,h,f,m]; the dumps' [b,h,rows,d].
  KernelSample shape;
  shape.batch = q.batch, shape.heads = q.heads, shape.seq = q.rows, shape.kv = k.rows, shape.k = q.head_dim, shape.dtype = DType::FP32;
  shape.loc = SourceLoc{dir};
  const Cascade c = attention_cascade(shape);
  auto transposed = [](const AttentionDump& d) {
    Eigen::VectorXd x(static_cast<Eigen::Index>(d.values.size()));
    for (int64_t bh = 0; bh < d.batch * d.heads; ++bh)
      for (int64_t r = 0; r < d.rows; ++r)
        for (int64_t e = 0; e < d.head_dim; ++e)
          x[static_cast<Eigen::Index>((bh * d.head_dim + e) * d.rows + r)] = d.values[static_cast<size_t>((bh * d.rows + r) * d.head_dim + e)];
    return x;
  };
  const TensorValues ref = execute(c, {{"Q", transposed(q)}, {"K", transposed(k)}, {"V", transposed(v)}});
  const Eigen::VectorXd& av = ref.at("AV");  // [b,h,f,p]
  std::vector<AttentionCheck> out;
  for (const char* kernel : {"1pass", "3pass"}) {
    const std::string file = dir + "/attention-out-" + kernel + ".bin";
    const AttentionDump o = read_attention_dump(file);
    if (o.batch != q.batch || o.heads != q.heads || o.rows != q.rows || o.head_dim != q.head_dim)
      throw UserError(SourceLoc{file, 1, 1}, "the output's shape is not the query's");
    const Eigen::VectorXd got = transposed(o);
    AttentionCheck x;
    x.kernel = kernel;
    x.max_abs_error = (got - av).cwiseAbs().maxCoeff();
    x.max_reference = av.cwiseAbs().maxCoeff();
    x.ok = x.max_abs_error <= tolerance * x.max_reference;
    out.push_back(x);
  }
  return out;
}

}  // namespace einsim
