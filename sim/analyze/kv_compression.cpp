#include "sim/analyze/kv_compression.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <nlohmann/json.hpp>

#include "sim/cost/cost_model.h"
#include "sim/analyze/scenario.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

namespace {

KvPolicy read_policy(const ConfigTable& t, const std::string& name) {
  KvPolicy p;
  p.name = name;
  p.loc = t.loc();
  p.evict_budget = scenario_count(t, "evict_budget", 1, int64_t{1} << 24);
  if (auto r = t.opt_number("evict_ratio", 0, 0.999)) p.evict_ratio = *r;
  if (auto r = t.opt_number("prune_keys", 0, 0.999)) p.prune_keys = *r;
  if (auto b = t.opt_int("bits", 1, 16)) {
    if (*b != 16 && *b != 8 && *b != 4 && *b != 2) throw UserError(t.loc("bits"), fmt::format("'{}.bits' must be 16, 8, 4 or 2", t.path()));
    p.bits = *b;
  }
  p.group = t.opt_int("group", 1, int64_t{1} << 20).value_or(p.group);
  p.window = scenario_count(t, "window", 1, int64_t{1} << 24);
  if (auto f = t.opt_int("feature_dim", 1, 1024)) p.feature_dim = *f;
  p.linear_window = scenario_count(t, "linear_window", 0, int64_t{1} << 24).value_or(p.linear_window);
  p.linear_layers = t.opt_number("linear_layers", 0, 1).value_or(p.linear_layers);
  p.window_layers = t.opt_number("window_layers", 0, 1).value_or(p.window_layers);
  p.conv_kernel = t.opt_int("conv_kernel", 1, 1024).value_or(p.conv_kernel);
  if (p.linear_layers + p.window_layers > 1 + 1e-9)
    throw UserError(t.loc("window_layers"), fmt::format("policy '{}': linear_layers + window_layers is {}, more than every layer", name, p.linear_layers + p.window_layers));
  if (!p.feature_dim)
    for (const char* k : {"linear_layers", "window_layers", "conv_kernel"})
      if (t.contains(k)) throw UserError(t.loc(k), fmt::format("policy '{}': '{}' describes BASED's layer mix: it needs feature_dim", name, k));
  if (!p.evict_budget && !p.evict_ratio && !p.prune_keys && !p.bits && !p.window && !p.feature_dim)
    throw UserError(t.loc(), fmt::format("policy '{}' applies no transform (evict_budget, evict_ratio, prune_keys, bits, window, feature_dim)", name));
  if (p.feature_dim && (p.evict_budget || p.evict_ratio || p.prune_keys || p.window))
    throw UserError(t.loc("feature_dim"), fmt::format("policy '{}': linear attention keeps a fixed state, with no cache to evict, prune or window", name));
  return p;
}

}  // namespace

KvCompressionScenario read_kv_compression(const ConfigTable& t) {
  KvCompressionScenario s;
  s.loc = t.loc();
  s.model = t.opt_string("model").value_or(s.model);
  s.arch = t.opt_string("arch").value_or(s.arch);
  s.devices = t.opt_int("devices", 1, 1024).value_or(s.devices);
  s.context = scenario_count(t, "context", 1, int64_t{1} << 24).value_or(s.context);
  s.batch = t.opt_int("batch", 1, 1 << 20).value_or(s.batch);
  s.activation_reserve = t.opt_quantity("activation_reserve", Dim::Bytes).value_or(0);
  if (auto ps = t.opt_table("policies")) {
    for (const std::string& name : ps->keys()) s.policies.push_back(read_policy(ps->get_table(name), name));
    // In the order the file lists them.
    std::stable_sort(s.policies.begin(), s.policies.end(), [](const KvPolicy& x, const KvPolicy& y) {
      return std::tie(x.loc.file, x.loc.line) < std::tie(y.loc.file, y.loc.line);
    });
  }
  if (s.policies.empty()) throw UserError(t.loc(), "the scenario lists no policies ([scenario.policies.NAME] tables)");
  s.emulate = t.opt_bool("emulate").value_or(false);
  return s;
}

KvCompressionScenario load_kv_compression(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "kv-compression", read_kv_compression);
}

KvCompressionReport analyze_kv_compression(const KvCompressionScenario& s) {
  const ModelConfig m = scenario_model(s.model, s.loc);
  const ArchSpec a = scenario_arch(s.arch);
  KvCompressionReport r;
  r.scenario = s;
  r.model = m.name;
  r.arch = a.name;
  const MemoryTier& hbm = *a.tier(storage_path(a, 0)[0]);
  const double n = static_cast<double>(s.devices), eb = dtype_bytes(m.dtype);
  r.weights = count_params(m).total_bytes;
  const double active_params = count_params(m).active;
  double peak = 0;  // the fastest array's dense peak at the model's type
  for (const ComputeArray& arr : a.arrays) peak = std::max(peak, arr.peak_flops(m.dtype));
  if (s.activation_reserve >= hbm.capacity) throw UserError(s.loc, "the activation reserve leaves no memory");
  r.kv_free = MemoryFit{n, hbm.capacity, r.weights, s.activation_reserve}.kv_room();
  const double L = static_cast<double>(m.num_hidden_layers), G = static_cast<double>(m.kv_heads()), H = static_cast<double>(m.num_attention_heads),
               dh = static_cast<double>(m.head_dim), B = static_cast<double>(s.batch);

  std::vector<KvPolicy> policies = s.policies;
  KvPolicy none;
  none.name = "none (baseline)";
  policies.insert(policies.begin(), none);
  MapCache cache;
  for (const KvPolicy& p : policies) {
    KvResult x;
    x.policy = p;
    double T = static_cast<double>(m.kv_tokens(s.context));  // the model's own sliding window, if any
    if (p.evict_budget) T = std::min(T, static_cast<double>(*p.evict_budget));
    if (p.evict_ratio) T = std::ceil(T * (1 - *p.evict_ratio));
    if (p.window) T = std::min(T, static_cast<double>(*p.window));
    // Elements at `bits` carry one fp16 scale per group (asymmetric schemes add a zero point;
    // not counted).
    const double b = p.bits ? static_cast<double>(*p.bits) / 8 + (*p.bits < 16 ? 2.0 / static_cast<double>(p.group) : 0.0) : eb;
    x.bytes_per_element_k = x.bytes_per_element_v = b;
    // Kept key channels: whole pairs, as RoPE rotates channels in pairs (half per rotary half).
    x.key_channels = p.prune_keys ? 2 * std::round(dh * (1 - *p.prune_keys) / 2) : dh;
    if (p.feature_dim) {
      // BASED mixes its layers: linear attention on some (a Taylor feature map of size
      // 1 + d + d^2; the state holds, per KV head, that many rows of a head_dim numerator and
      // a denominator), exact attention over a short window on others (their own KV), and
      // gated convolutions on the rest (the last kernel - 1 inputs of the hidden width).
      const double fd = static_cast<double>(*p.feature_dim), F = 1 + fd + fd * fd;
      const double w = std::min(static_cast<double>(p.linear_window), static_cast<double>(s.context));
      x.layers_linear = std::llround(p.linear_layers * L);
      x.layers_window = std::min<int64_t>(std::llround(p.window_layers * L), m.num_hidden_layers - x.layers_linear);
      x.layers_conv = m.num_hidden_layers - x.layers_linear - x.layers_window;
      const double Ll = static_cast<double>(x.layers_linear), Lw = static_cast<double>(x.layers_window), Lc = static_cast<double>(x.layers_conv);
      x.tokens_kept = w;
      const double state = Ll * G * (F * dh + F) * b;
      const double window_kv = Lw * G * w * 2 * dh * b;
      const double conv = Lc * static_cast<double>(p.conv_kernel - 1) * static_cast<double>(m.hidden_size) * b;
      x.kv_per_request = state + window_kv + conv;
      // Per step and request: on linear layers every query head's features against the state
      // (numerator and denominator) and each KV head's state update; on window layers the
      // window's attention; the convolutions' few FLOPs are left out.
      x.attention_flops = B * (Ll * (H * (2 * F * dh + 2 * F) + G * (2 * F * dh + 2 * F)) + Lw * H * 4 * w * dh);
      x.attention_bytes = B * (2 * state + window_kv + 2 * conv);  // states and the conv inputs are read and written back
    } else {
      x.tokens_kept = T;
      x.kv_per_request = L * G * T * (x.key_channels * x.bytes_per_element_k + dh * x.bytes_per_element_v);
      x.attention_flops = B * L * H * T * (2 * x.key_channels + 2 * dh);
      x.attention_bytes = B * x.kv_per_request;
    }
    x.max_requests = static_cast<int64_t>(std::floor(r.kv_free / x.kv_per_request));
    x.step_formula = (r.weights + x.attention_bytes) / (n * hbm.read_bandwidth);
    if (x.max_requests > 0) {
      // A roofline at that batch: the weights and every request's cache or state read once,
      // against the weights' 2 FLOPs per active parameter per token and the attention's.
      const double M = static_cast<double>(x.max_requests);
      const double t_mem = (r.weights + M * x.attention_bytes / B) / (n * hbm.read_bandwidth);
      const double t_flops = (2 * active_params * M + M * x.attention_flops / B) / (n * peak);
      x.throughput_formula = M / std::max(t_mem, t_flops);
      x.throughput_bound = t_flops > t_mem ? "FLOPs" : "HBM bandwidth";
    }
    x.bound = "HBM bandwidth";
    // Mapped: the decode step of the transformed workload, where the cascade expresses it
    // (fewer tokens; a cache stored at 8 or 4 bits).
    if (x.mapped_note.empty() && p.bits && *p.bits == 2) x.mapped_note = "einsim has no 2-bit element type";
    if (x.mapped_note.empty()) {
      RunOptions ro;
      ro.tp = s.devices;
      ro.runtime = s.runtime.get();
      set_emulation(ro, s.emulate, s.loc);
      ro.phase.kind = PhaseKind::Decode;
      ro.phase.batch = s.batch;
      ro.phase.context = static_cast<int64_t>(x.tokens_kept);
      if (p.bits && *p.bits == 8) ro.phase.kv_dtype = DType::INT8;
      if (p.bits && *p.bits == 4) ro.phase.kv_dtype = DType::INT4;
      if (p.prune_keys) ro.phase.key_channels = static_cast<int64_t>(x.key_channels);
      try {
        if (p.feature_dim) {
          // BASED's mix, layer by layer: the step without attention, then each layer kind's
          // attention blocks at its share of the layers (a run of the model with every layer
          // of that kind, scaled): linear attention over a one-token window, window attention
          // over the window; the convolutions' cost is left out.
          const double Lf = static_cast<double>(m.num_hidden_layers);
          auto attention_time = [](const RunReport& rr, bool attention) {
            double tm = 0;
            for (const BlockRun& blk : rr.blocks)
              if (block_is_attention(rr, blk) == attention) tm += blk.time;
            return tm;
          };
          RunOptions lin = ro;
          lin.phase.linear_features = *p.feature_dim;
          lin.phase.context = 1;
          const RunReport rl = run_model(m, a, lin, &cache);
          const RunReport rw = run_model(m, a, ro, &cache);  // exact attention over the window
          x.step_mapped = attention_time(rl, false) + (rl.step_time - rl.compute_time) +
                          static_cast<double>(x.layers_linear) / Lf * attention_time(rl, true) +
                          static_cast<double>(x.layers_window) / Lf * attention_time(rw, true);
          x.bound = "HBM bandwidth";
          x.mapped_note = fmt::format("layer mix {} linear, {} window, {} convolution (the convolutions' projections taken as the model's attention projections)",
                                      x.layers_linear, x.layers_window, x.layers_conv);
          r.results.push_back(std::move(x));
          continue;
        }
        const RunReport rep = run_model(m, a, ro, &cache);
        x.step_mapped = rep.step_time;
        double hbm_time = 0, other = 0;
        for (const BlockRun& blk : rep.blocks) (blk.bottleneck == hbm.name + " bandwidth" ? hbm_time : other) += blk.time;
        x.bound = hbm_time >= other ? "HBM bandwidth" : "FLOPs or launches";
        if (p.bits && *p.bits < 16) x.mapped_note = fmt::format("mapped without the quantization scales ({:.3g} bytes per element)", 2.0 / static_cast<double>(p.group));
      } catch (const UserError& e) {
        x.mapped_note = e.message();  // the reason, not the location: the cell stands for its run
      }
    }
    r.results.push_back(std::move(x));
  }
  return r;
}

namespace {

std::string ms(double s) { return fmt::format("{:.4g} ms", s * 1e3); }

std::string transforms(const KvPolicy& p) {
  std::vector<std::string> t;
  if (p.evict_budget) t.push_back(fmt::format("keep {} tokens", *p.evict_budget));
  if (p.evict_ratio) t.push_back(fmt::format("evict {:.0f}%", 100 * *p.evict_ratio));
  if (p.prune_keys) t.push_back(fmt::format("prune {:.0f}% of key channels", 100 * *p.prune_keys));
  if (p.bits) t.push_back(fmt::format("KV at {} bits (group {})", *p.bits, p.group));
  if (p.window) t.push_back(fmt::format("window {}", *p.window));
  if (p.feature_dim)
    t.push_back(fmt::format("BASED: linear attention (feature dim {}) on {:.3g}% of layers, window {} on {:.3g}%, convolutions (kernel {}) on the rest", *p.feature_dim,
                            100 * p.linear_layers, p.linear_window, 100 * p.window_layers, p.conv_kernel));
  return t.empty() ? "-" : fmt::format("{}", fmt::join(t, ", "));
}

}  // namespace

std::string format_kv_compression(const KvCompressionReport& r, Format f) {
  const KvCompressionScenario& s = r.scenario;
  const KvResult& base = r.results.front();
  const std::string caveat =
      "einsim models cost, not quality: the accuracy each policy gives up is not modelled (see the policies' papers).";
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "analyze-kv-compression";
    j["model"] = r.model;
    j["arch"] = r.arch;
    j["devices"] = s.devices;
    j["context"] = s.context;
    j["batch"] = s.batch;
    j["weights_bytes"] = r.weights;
    j["kv_free_bytes"] = r.kv_free;
    j["caveat"] = caveat;
    j["policies"] = nlohmann::json::array();
    for (const KvResult& x : r.results)
      j["policies"].push_back({{"name", x.policy.name}, {"transforms", transforms(x.policy)}, {"tokens_kept", x.tokens_kept},
                               {"key_channels", x.key_channels}, {"bytes_per_element", x.bytes_per_element_k},
                               {"kv_bytes_per_request", x.kv_per_request}, {"kv_ratio", x.kv_per_request / base.kv_per_request},
                               {"max_requests", x.max_requests}, {"attention_flops_per_step", x.attention_flops},
                               {"attention_bytes_per_step", x.attention_bytes}, {"step_formula_s", x.step_formula},
                               {"throughput_at_max_batch_formula", x.throughput_formula}, {"throughput_bound", x.throughput_bound},
                               {"layers", {{"linear", x.layers_linear}, {"window", x.layers_window}, {"convolution", x.layers_conv}}},
                               {"step_einsim_s", x.step_mapped ? nlohmann::json(*x.step_mapped) : nlohmann::json(nullptr)},
                               {"bound", x.bound}, {"note", x.mapped_note}});
    return j.dump(2) + "\n";
  }
  TextTable t({"policy", "transforms", "KV tokens", "key channels", "bytes/elem", "KV per request", "vs baseline", "max requests",
               "attn GFLOP/step", "attn bytes/step", "step formula", "step einsim", "bound", "tokens/s at max batch", "vs baseline"});
  for (const KvResult& x : r.results)
    t.row({x.policy.name, transforms(x.policy), fmt::format("{:.0f}", x.tokens_kept), fmt::format("{:.0f}", x.key_channels),
           fmt::format("{:.3g} B", x.bytes_per_element_k), fmt_bytes(x.kv_per_request), fmt::format("{:.3f}x", x.kv_per_request / base.kv_per_request),
           std::to_string(x.max_requests), fmt::format("{:.4g}", x.attention_flops / 1e9), fmt_bytes(x.attention_bytes), ms(x.step_formula),
           x.step_mapped ? ms(*x.step_mapped) : "-", x.bound,
           x.throughput_formula > 0 ? fmt::format("{:.4g} ({})", x.throughput_formula, x.throughput_bound == "FLOPs" ? "FLOPs" : "HBM") : "-",
           x.throughput_formula > 0 && base.throughput_formula > 0 ? fmt::format("{:.3g}x", x.throughput_formula / base.throughput_formula) : "-"});
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format(
      "KV-cache policies: {} on {} x {}, context {} tokens, decode batch {}; weights {}, {} of HBM left for KV.\n"
      "Step formula: (weights + KV read per step) / (N x HBM bandwidth); einsim: the decode step of the transformed workload mapped. Tokens/s at "
      "max batch: the largest batch that fits, by the formula (HBM-bound).\n"
      "{}\n\n",
      r.model, s.devices, r.arch, s.context, s.batch, fmt_bytes(r.weights), fmt_bytes(r.kv_free), caveat);
  out += t.aligned();
  bool any = false;
  for (const KvResult& x : r.results)
    if (!x.mapped_note.empty()) {
      if (!any) out += "\nnotes:\n";
      any = true;
      out += fmt::format("  {}: {}\n", x.policy.name, x.mapped_note);
    }
  return out;
}

std::string plot_kv_compression_svg(const KvCompressionReport& r) {
  std::vector<PlotPanel> panels(2);
  panels[0].title = "KV bytes per request";
  panels[0].ylabel = "bytes";
  panels[1].title = "Decode step (light: formula)";
  panels[1].ylabel = "seconds";
  std::vector<std::string> names;
  for (const KvResult& x : r.results) names.push_back(x.policy.name);
  for (PlotPanel& p : panels) {
    p.log_x = false;
    p.log_y = true;
    p.xlabel = "policy";
    p.categories = names;
  }
  PlotSeries kv{"KV per request", {}, false, "KV per request"}, formula{"step (formula)", {}, true, "step"}, mapped{"step (einsim)", {}, false, "step"};
  for (size_t i = 0; i < r.results.size(); ++i) {
    const KvResult& x = r.results[i];
    kv.points.emplace_back(static_cast<double>(i), x.kv_per_request);
    formula.points.emplace_back(static_cast<double>(i), x.step_formula);
    if (x.step_mapped) mapped.points.emplace_back(static_cast<double>(i), *x.step_mapped);
  }
  panels[0].series.push_back(std::move(kv));
  panels[1].series.push_back(std::move(mapped));
  panels[1].series.push_back(std::move(formula));
  std::vector<std::string> notes;
  for (size_t i = 0; i < names.size(); ++i) notes.push_back(fmt::format("{}: {}", names[i], transforms(r.results[i].policy)));
  return svg_plot(panels, notes);
}

}  // namespace einsim
