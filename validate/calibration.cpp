#include "validate/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "validate/validate.h"
#include "workloads/cascade.h"

namespace einsim {
std::vector<GemmSample> llmcompass_gemms(const std::string& file) {
  std::vector<GemmSample> out;
  for (const GemmMeasurement& g : read_llmcompass_matmul(file))
    out.push_back({"llmcompass", fmt::format("matmul {}x{}x{}", g.m, g.n, g.k), g.m, g.n, g.k, g.seconds, g.loc});
  return out;
}

std::vector<GemmSample> vidur_gemms(const std::string& file, int64_t tp) {
  std::vector<GemmSample> out;
  for (const VidurRow& r : read_vidur_mlp(file)) {
    if (r.tensor_parallel != tp) continue;
    const int64_t d = r.n_embd, head = r.n_embd / r.n_head, ff = r.n_expanded_embd / tp;
    const int64_t qkv = (r.n_head + 2 * r.n_kv_head) * head / tp;
    const struct {
      const char* op;
      int64_t n, k;
    } ops[] = {{"attn_pre_proj", qkv, d}, {"attn_post_proj", d, d / tp}, {"mlp_up_proj", r.gated_mlp ? 2 * ff : ff, d},
               {"mlp_down_proj", d, ff}};
    for (const auto& o : ops) {
      auto it = r.median_seconds.find(o.op);
      if (it == r.median_seconds.end()) continue;
      out.push_back({"vidur", fmt::format("{} tokens={}", o.op, r.num_tokens), r.num_tokens, o.n, o.k, it->second, r.loc});
    }
  }
  return out;
}

std::vector<Predicted> predict_gemms(const ArchSpec& a, const std::vector<GemmSample>& samples, DType dt) {
  std::vector<Predicted> out;
  for (const GemmSample& s : samples) {
    const Cascade c = gemm_cascade(s.m, s.n, s.k);
    const MapResult r = map_einsum(c, c.einsums[0], a, dt);
    out.push_back({s, r.cost.time, r.cost.bottleneck});
  }
  return out;
}

double mape(const std::vector<Predicted>& p, const std::string& set) {
  double sum = 0;
  int n = 0;
  for (const Predicted& x : p)
    if (set.empty() || x.sample.set == set) sum += std::fabs(x.predicted - x.sample.measured) / x.sample.measured, ++n;
  return n ? sum / n : 0;
}

GpuFit fit_gpu(const ArchSpec& a, const std::vector<GemmSample>& samples, DType dt, std::optional<double> fixed_overhead) {
  if (!a.gpu) throw UserError(a.loc, fmt::format("'{}' is not a GPU; only GPU presets are calibrated", a.name));
  std::vector<std::string> sets;
  for (const GemmSample& s : samples)
    if (std::find(sets.begin(), sets.end(), s.set) == sets.end()) sets.push_back(s.set);
  // Map once with the preset's values; re-cost the fixed mappings while fitting.
  std::vector<Cascade> cascades;
  std::vector<Mapping> maps;
  for (const GemmSample& s : samples) {
    cascades.push_back(gemm_cascade(s.m, s.n, s.k));
    maps.push_back(map_einsum(cascades.back(), cascades.back().einsums[0], a, dt).mapping);
  }
  ArchSpec x = a;
  x.gpu->launch_overhead = 0;
  GpuFit best;
  double best_err = std::numeric_limits<double>::infinity();
  std::vector<double> base(samples.size());
  for (int ei = 50; ei <= 100; ++ei)
    for (int mi = 50; mi <= 100; ++mi) {
      x.gpu->efficiency[OpClass::Mac] = ei / 100.0;
      x.gpu->memory_efficiency = mi / 100.0;
      for (size_t i = 0; i < samples.size(); ++i) base[i] = evaluate(cascades[i], cascades[i].einsums[0], x, maps[i], dt).time;
      auto err = [&](double overhead) {
        double total = 0;
        for (const std::string& set : sets) {
          double sum = 0;
          int n = 0;
          for (size_t i = 0; i < samples.size(); ++i)
            if (samples[i].set == set) sum += std::fabs(base[i] + overhead - samples[i].measured) / samples[i].measured, ++n;
          total += sum / n;
        }
        return total / static_cast<double>(sets.size());
      };
      // The error is convex in the overhead: ternary search over [0, 100 us].
      double lo = fixed_overhead.value_or(0), hi = fixed_overhead.value_or(100e-6);
      for (int it = 0; it < 60; ++it) {
        const double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
        if (err(m1) < err(m2)) hi = m2;
        else lo = m1;
      }
      const double o = (lo + hi) / 2, e = err(o);
      if (e < best_err) best_err = e, best = GpuFit{ei / 100.0, mi / 100.0, o, {}};
    }
  x.gpu->efficiency[OpClass::Mac] = best.mac_efficiency;
  x.gpu->memory_efficiency = best.memory_efficiency;
  x.gpu->launch_overhead = best.launch_overhead;
  std::vector<Predicted> p;
  for (size_t i = 0; i < samples.size(); ++i)
    p.push_back({samples[i], evaluate(cascades[i], cascades[i].einsums[0], x, maps[i], dt).time, ""});
  for (const std::string& set : sets) best.mape.push_back({set, mape(p, set)});
  return best;
}

std::vector<LayerRow> compare_llmcompass_layer(const ArchSpec& a, const ModelConfig& gpt3, const std::vector<LayerOpMeasurement>& measured,
                                               bool prefill, int64_t context) {
  RunOptions o;
  o.phase.kind = prefill ? PhaseKind::Prefill : PhaseKind::Decode;
  o.phase.batch = 8;
  o.phase.prompt = 2048;
  o.phase.context = prefill ? 0 : context;
  o.phase.layers = 1;
  o.phase.attention = AttentionKind::ThreePass;
  o.tp = 4;
  o.dtype = DType::FP16;
  o.fusion = Fusion::Eager;  // LLMCompass times PyTorch's kernels one by one
  const Runtime eager = load_runtime("pytorch-eager");  // its harness
  o.runtime = &eager;
  const RunReport r = run_model(gpt3, a, o);
  // Parts, the measured operators each covers, and the Einsums (by written tensor) that start them.
  struct Part {
    std::string name;
    std::vector<std::string> ops, first;
  };
  const std::vector<Part> parts = {
      {"layer norm 1", {"layernorm1"}, {"N1S1", "N1S2", "N1SS", "N1RS", "XN"}},
      {"QKV projection", {"qkv"}, {"Q", "K", "V", "QB", "KB", "VB"}},
      {"attention (QK, softmax, AV)", {"qk", "softmax", "av"}, {"QK", "GM", "SN", "SD", "A", "AV"}},
      // Eager fusion puts the (unmeasured) residual add and layer norm 2 in one kernel.
      {"out projection, add, norm 2", {"out_proj", "layernorm2"}, {"O", "OB", "XA", "N2S1", "N2S2", "N2SS", "N2RS", "XN2"}},
      {"FFN1 and GELU", {"ffn1", "gelu"}, {"UP", "UPB", "H"}},
      {"FFN2", {"ffn2"}, {"DN", "DNB"}},
  };
  std::vector<LayerRow> rows;
  double pred_total = 0, meas_total = 0;
  for (const Part& p : parts) {
    LayerRow row{p.name, 0, 0};
    for (const LayerOpMeasurement& m : measured)
      if (std::find(p.ops.begin(), p.ops.end(), m.op) != p.ops.end()) row.measured += m.seconds;
    for (const BlockRun& b : r.blocks) {
      const EinsumRun& first = r.einsums[static_cast<size_t>(b.einsums.front())];
      if (first.component == "residual" && first.name == "X" && b.einsums.size() == 1) continue;
      if (std::find(p.first.begin(), p.first.end(), first.name) != p.first.end()) row.predicted += b.time;
    }
    pred_total += row.predicted;
    meas_total += row.measured;
    rows.push_back(row);
  }
  LayerRow ar{"all-reduces (2)", 0, r.allreduce_time};
  for (const LayerOpMeasurement& m : measured)
    if (m.op.starts_with("allreduce")) ar.measured += m.seconds;
  rows.push_back(ar);
  rows.push_back({"layer", meas_total + ar.measured, pred_total + ar.predicted});
  return rows;
}

std::pair<double, double> fit_kind_quality(const Runtime& base, KernelKind kind, double lowest, const std::function<double(const Runtime&)>& error) {
  std::pair<double, double> best{1, std::numeric_limits<double>::infinity()};
  for (int i = static_cast<int>(std::lround(lowest * 100)); i <= 100; ++i) {
    Runtime rt = base;
    rt.efficiency[static_cast<size_t>(kind)] = i / 100.0;
    const double e = error(rt);
    if (e < best.second) best = {i / 100.0, e};
  }
  return best;
}

namespace {

// MAPE of `samples` on `a` with the MAC and memory efficiencies and per-kernel overhead given.
double gemm_mape(const ArchSpec& a, const std::vector<GemmSample>& samples, DType dt, double mac, double memory, double overhead) {
  if (samples.empty()) return 0;
  ArchSpec x = a;
  x.gpu->efficiency[OpClass::Mac] = mac;
  x.gpu->memory_efficiency = memory;
  x.gpu->launch_overhead = overhead;
  return mape(predict_gemms(x, samples, dt));
}

}  // namespace

Calibration calibrate_gpu(const ArchSpec& a, const std::string& arch_ref, const std::vector<std::string>& files, const Runtime* runtime,
                          std::optional<DType> dtype, const std::string& command, const std::string& date) {
  if (!a.gpu) throw UserError(a.loc, fmt::format("'{}' is not a GPU; only GPU presets are calibrated", a.name));
  if (files.empty()) throw UserError(SourceLoc{"calibrate"}, "give one or more measurement files");
  std::vector<KernelSample> rows;
  for (const std::string& f : files) {
    std::vector<KernelSample> v = load_kernel_samples(f);
    rows.insert(rows.end(), v.begin(), v.end());
  }
  Calibration c;
  c.arch = a.name;
  if (dtype) {
    c.dtype = *dtype;
  } else {  // the type most GEMM rows have; of equals, the first in the files
    std::vector<std::pair<DType, int64_t>> count;
    for (const KernelSample& s : rows)
      if (s.kind == "gemm") {
        auto it = std::find_if(count.begin(), count.end(), [&](const auto& x) { return x.first == s.dtype; });
        if (it == count.end()) count.emplace_back(s.dtype, 1);
        else ++it->second;
      }
    if (count.empty()) throw UserError(SourceLoc{files.front()}, "no GEMM rows to calibrate on (kind = gemm)");
    c.dtype = std::max_element(count.begin(), count.end(), [](const auto& x, const auto& y) { return x.second < y.second; })->first;
  }
  std::vector<GemmSample> fit, held;
  for (const KernelSample& s : rows) {
    if (s.kind != "gemm" || s.dtype != c.dtype || s.batch > 1) {
      ++c.skipped;
      continue;
    }
    GemmSample g{"measured", s.shape(), s.m, s.n, s.k, s.measured, s.loc};
    ((fit.size() + held.size()) % 2 == 0 ? fit : held).push_back(std::move(g));
  }
  if (fit.size() < 4)
    throw UserError(SourceLoc{files.front()}, fmt::format("{} {} GEMM rows: the fit needs 8 or more (half of them are held out)", fit.size() + held.size(),
                                                         dtype_name(c.dtype)));
  c.fitted = static_cast<int64_t>(fit.size());
  c.held_out = static_cast<int64_t>(held.size());
  c.overhead_fixed = runtime != nullptr;
  c.fit = fit_gpu(a, fit, c.dtype, runtime ? std::optional<double>(runtime->kernel_launch) : std::nullopt);
  c.preset_mac = a.gpu->efficiency.count(OpClass::Mac) ? a.gpu->efficiency.at(OpClass::Mac) : 1.0;
  c.preset_memory = a.gpu->memory_efficiency;
  const double o = c.fit.launch_overhead;
  c.before_fitted = gemm_mape(a, fit, c.dtype, c.preset_mac, c.preset_memory, o);
  c.before_held_out = gemm_mape(a, held, c.dtype, c.preset_mac, c.preset_memory, o);
  c.after_fitted = gemm_mape(a, fit, c.dtype, c.fit.mac_efficiency, c.fit.memory_efficiency, o);
  c.after_held_out = gemm_mape(a, held, c.dtype, c.fit.mac_efficiency, c.fit.memory_efficiency, o);
  std::string files_list;
  for (const std::string& f : files) files_list += (files_list.empty() ? "" : ", ") + f;
  c.toml = fmt::format(
      "# {} calibrated on {} ({}): `{}`, {}.\n"
      "# Method (docs/CALIBRATION.md): MAC and memory efficiency on a 0.01 grid and one per-kernel overhead\n"
      "# minimising the mean absolute percentage error of {} {} GEMMs (every other GEMM row); {} held out.\n"
      "# Per-kernel overhead {:.2f} us: {}.\n"
      "# MAPE in-sample {:.1f}% (the preset's values: {:.1f}%), held out {:.1f}% (the preset's values: {:.1f}%).\n"
      "version = 1\n"
      "inherits = \"{}\"\n\n"
      "[arch]\n"
      "name = \"{} (calibrated)\"\n\n"
      "[arch.gpu]\n"
      "efficiency = {{ mac = {:.2f} }}       # the preset: {:.2f}\n"
      "memory_efficiency = {:.2f}           # the preset: {:.2f}\n",
      a.name, files_list, date, command, runtime ? fmt::format("measured under runtime '{}'", runtime->name) : "no runtime given", c.fitted,
      dtype_name(c.dtype), c.held_out, o * 1e6,
      runtime ? fmt::format("runtime '{}''s kernel launch, held fixed", runtime->name)
              : "fitted; it is the measuring harness's, a runtime's kernel_launch (configs/runtimes), and is not written here",
      100 * c.after_fitted, 100 * c.before_fitted, 100 * c.after_held_out, 100 * c.before_held_out, arch_ref, a.name, c.fit.mac_efficiency,
      c.preset_mac, c.fit.memory_efficiency, c.preset_memory);
  return c;
}

}  // namespace einsim
