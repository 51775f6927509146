#include "sim/analyze/long_context.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "sim/cost/cost_model.h"
#include "sim/analyze/scenario.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

namespace {

// The resource that bounds a mapped step: the bottleneck of the blocks holding most time.
std::string mapped_bound(const RunReport& r, const std::string& tier, bool communication) {
  std::map<std::string, double> by;
  for (const BlockRun& b : r.blocks) {
    std::string k = b.bottleneck;
    if (k.starts_with("compute")) k = "FLOPs";
    else if (k == tier + " bandwidth") k = "HBM bandwidth";
    else if (k == "kernel launch") k = "kernel launches";
    by[k] += b.time;
  }
  std::string best;
  double t = -1;
  for (const auto& [k, v] : by)
    if (v > t) t = v, best = k;
  if (communication && r.allreduce_time > t) best = "all-reduce (" + r.allreduce_link + ")";
  return best;
}

}  // namespace

LongContextScenario read_long_context(const ConfigTable& t) {
  LongContextScenario s;
  s.loc = t.loc();
  s.model = t.opt_string("model").value_or(s.model);
  s.arch = t.opt_string("arch").value_or(s.arch);
  if (auto d = t.opt_choice("dtype", dtype_names())) s.dtype = parse_dtype(*d);
  if (auto d = t.opt_choice("kv_dtype", dtype_names())) s.kv_dtype = parse_dtype(*d);
  if (auto v = scenario_counts(t, "devices", 1, 1024); !v.empty()) s.devices = v;
  s.contexts = scenario_counts(t, "contexts", 1, int64_t{1} << 24);
  if (s.contexts.empty()) s.contexts = {4096, 16384, 50000, 131072, 200000, 524288, 1048576};
  s.output_tokens = scenario_count(t, "output_tokens", 1, int64_t{1} << 24).value_or(s.output_tokens);
  s.activation_reserve = t.opt_quantity("activation_reserve", Dim::Bytes).value_or(0);
  s.communication = t.opt_bool("communication").value_or(false);
  s.emulate = t.opt_bool("emulate").value_or(false);
  s.convention = t.opt_choice("convention", {"einsim", "fu2024"}).value_or(s.convention);
  return s;
}

LongContextScenario load_long_context(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "long-context", read_long_context);
}

LongContextReport analyze_long_context(const LongContextScenario& s) {
  const ModelConfig m = scenario_model(s.model, s.loc);
  ArchSpec a = scenario_arch(s.arch);
  LongContextReport r;
  r.scenario = s;
  r.model = m.name;
  r.arch = a.name;
  const DType dt = s.dtype.value_or(m.dtype);
  r.dtype = std::string(dtype_name(dt));
  if (s.kv_dtype) r.dtype += fmt::format(" (KV cache {})", dtype_name(*s.kv_dtype));
  const bool fu = s.convention == "fu2024";
  // Fu 2024 reads a datasheet's "80 GB" as 80 GiB: the mapped runs' memory checks see the same.
  if (fu)
    for (MemoryTier& t : a.tiers)
      if (t.name == storage_path(a, 0)[0]) t.capacity = t.capacity / 1e9 * static_cast<double>(1ull << 30);
  const MemoryTier& hbm = *a.tier(storage_path(a, 0)[0]);
  r.hbm_tier = hbm.name;
  const double capacity = hbm.capacity;
  r.hbm_capacity = capacity;
  r.hbm_bandwidth = hbm.read_bandwidth;
  // The fastest array's dense peak (the datasheet's 312 TFLOP/s on the A100): a GPU's
  // vector lanes do not add to its tensor cores on matrix work.
  for (const ComputeArray& arr : a.arrays) r.peak_flops = std::max(r.peak_flops, arr.peak_flops(dt));
  const Link* host = nullptr;
  for (const Link& l : a.links)
    if (l.to == "host") {
      host = &l;
      break;
    }
  r.host_link = host ? host->name : "";
  r.host_bandwidth = host ? host->bandwidth : 0;
  ModelConfig stored = m;
  stored.dtype = dt;
  const ParamCounts pc = count_params(stored);
  r.weights = pc.total_bytes;
  r.kv_per_token = m.kv_bytes_per_token(s.kv_dtype.value_or(dt));
  if (s.activation_reserve >= capacity)
    throw UserError(s.loc, fmt::format("the activation reserve ({:.2f} GiB) leaves nothing of {}'s {:.2f} GiB", s.activation_reserve / (1ull << 30), a.name,
                                       hbm.capacity / (1ull << 30)));

  MapCache cache;
  const double L = static_cast<double>(m.num_hidden_layers), attn_width = static_cast<double>(m.num_attention_heads * m.head_dim);
  for (int64_t C : s.contexts)
    for (int64_t N : s.devices) {
      LcRow row;
      row.context = C;
      row.devices = N;
      const double n = static_cast<double>(N), c = static_cast<double>(C);
      row.kv_per_request = static_cast<double>(m.kv_tokens(C)) * r.kv_per_token;
      row.kv_free = MemoryFit{n, capacity, r.weights, s.activation_reserve}.kv_room();
      row.max_requests = static_cast<int64_t>(std::floor(row.kv_free / row.kv_per_request));
      RunOptions ro;
      ro.tp = N;
      ro.runtime = s.runtime.get();
      ro.dtype = dt;
      set_emulation(ro, s.emulate, s.loc);
      auto mapped = [&](const Phase& ph, LcFigure& f) {
        ro.phase = ph;
        ro.phase.kv_dtype = s.kv_dtype;
        try {
          const RunReport rep = run_model(m, a, ro, &cache);
          f.value = s.communication ? rep.step_time : rep.compute_time;
          f.bound = mapped_bound(rep, hbm.name, s.communication);
        } catch (const UserError& e) {
          // The reason, not the location: the cell stands for its run. The scenario's device
          // count is not a --tp flag: a split the model refuses is said in its own words.
          f.note = e.loc().file == "--tp"
                       ? fmt::format("{} devices: einsim splits heads and FFN columns evenly, and {} has {} heads ({} KV heads) and an FFN of {}", N,
                                     m.name, m.num_attention_heads, m.num_key_value_heads, m.intermediate_size)
                       : e.message();
        }
      };
      // Prefill of one request: FLOPs over the devices' peak. einsim's convention: the
      // weights' 2 FLOPs per active parameter per token, and attention's QK and AV over the
      // (query tile, key block) pairs a causal prefill computes (diagonal tiles whole), as its
      // cascade does. Fu 2024's: 2 x parameters x tokens and exactly half the dense QK and AV.
      const double flops = 2 * pc.active * c + 4 * L * c * c * attn_width * causal_attention_work(0, C);
      row.prefill_fu = {(2 * pc.total * c + 2 * L * c * c * attn_width) / (n * r.peak_flops), "FLOPs", ""};
      row.prefill_formula = fu ? row.prefill_fu : LcFigure{flops / (n * r.peak_flops), "FLOPs", ""};
      Phase pre;
      pre.kind = PhaseKind::Prefill;
      pre.batch = 1;
      pre.prompt = C;
      mapped(pre, row.prefill_mapped);
      // Decode at the largest batch that fits: every step reads the weights and every
      // request's KV cache once, over the devices' HBM bandwidth.
      row.decode_batch = row.max_requests;
      if (row.max_requests < 1) {
        const std::string why = fmt::format("no request fits: {:.1f} GiB of KV per request, {:.1f} GiB free", row.kv_per_request / (1ull << 30),
                                            row.kv_free / (1ull << 30));
        for (LcFigure* f : {&row.decode_formula, &row.decode_mapped, &row.generate_formula, &row.generate_mapped})
          f->note = why, f->bound = "HBM capacity";
      } else {
        const double bytes = r.weights + static_cast<double>(row.decode_batch) * row.kv_per_request;
        row.decode_formula = {bytes / (n * hbm.read_bandwidth), "HBM bandwidth", ""};
        Phase dec;
        dec.kind = PhaseKind::Decode;
        dec.batch = row.decode_batch;
        dec.context = C;
        mapped(dec, row.decode_mapped);
        const double steps = static_cast<double>(s.output_tokens);
        row.generate_formula = {steps * row.decode_formula.value, row.decode_formula.bound, ""};
        row.generate_mapped = row.decode_mapped;
        row.generate_mapped.value *= steps;
      }
      // Context switch: one request's KV out to host memory and another's in. The paper's
      // formula moves both one after the other over one PCIe link; mapped, each device moves
      // its shard over its own link, out and in at once (the link is full duplex), plus the
      // link's latency.
      if (!host) {
        row.switch_formula.note = row.switch_mapped.note = fmt::format("'{}' has no link to the host", a.name);
      } else {
        row.switch_formula = {2 * row.kv_per_request / host->bandwidth, "PCIe bandwidth", ""};
        row.switch_mapped = {row.kv_per_request / n / host->bandwidth + host->latency, "PCIe bandwidth", ""};
      }
      // Session throughput: rounds of max_requests users, each prefilled in turn, decoded
      // together, then swapped for the next.
      auto session = [&](const LcFigure& pf, const LcFigure& gen, const LcFigure& sw, LcFigure& out) {
        if (row.max_requests < 1) {
          out = {0, "HBM capacity", "no request fits"};
          return;
        }
        if (!pf.ok() || !gen.ok() || !sw.ok()) {
          out.note = !pf.ok() ? pf.note : !gen.ok() ? gen.note : sw.note;
          return;
        }
        const double users = static_cast<double>(row.max_requests);
        const double parts[3] = {users * pf.value, gen.value, users * sw.value};
        const double round = parts[0] + parts[1] + parts[2];
        out.value = users * static_cast<double>(s.output_tokens) / round;
        out.bound = parts[0] >= parts[1] && parts[0] >= parts[2] ? "prefill" : parts[1] >= parts[2] ? "decode" : "context switch";
      };
      session(row.prefill_formula, row.generate_formula, row.switch_formula, row.session_formula);
      session(row.prefill_mapped, row.generate_mapped, row.switch_mapped, row.session_mapped);
      r.rows.push_back(std::move(row));
    }
  return r;
}

namespace {

std::string seconds(const LcFigure& f) {
  if (!f.ok()) return "-";
  const double v = f.value;
  if (v >= 1) return fmt::format("{:.3g} s", v);
  if (v >= 1e-3) return fmt::format("{:.3g} ms", v * 1e3);
  return fmt::format("{:.3g} us", v * 1e6);
}

nlohmann::json fig_json(const LcFigure& f) {
  nlohmann::json j = {{"bound", f.bound}};
  j["value"] = f.ok() ? nlohmann::json(f.value) : nlohmann::json(nullptr);
  if (!f.ok()) j["note"] = f.note;
  return j;
}

}  // namespace

std::string format_long_context(const LongContextReport& r, Format f) {
  const LongContextScenario& s = r.scenario;
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "analyze-long-context";
    j["model"] = r.model;
    j["arch"] = r.arch;
    j["dtype"] = r.dtype;
    j["output_tokens"] = s.output_tokens;
    j["communication"] = s.communication;
    j["activation_reserve_bytes"] = s.activation_reserve;
    j["convention"] = s.convention;
    j["weights_bytes"] = r.weights;
    j["kv_bytes_per_token"] = r.kv_per_token;
    j["device"] = {{"peak_flops", r.peak_flops}, {"hbm_bandwidth_bytes_per_s", r.hbm_bandwidth}, {"hbm_capacity_bytes", r.hbm_capacity},
                   {"host_link", r.host_link}, {"host_bandwidth_bytes_per_s", r.host_bandwidth}};
    j["rows"] = nlohmann::json::array();
    for (const LcRow& x : r.rows)
      j["rows"].push_back({{"context", x.context}, {"devices", x.devices}, {"kv_bytes_per_request", x.kv_per_request},
                           {"kv_free_bytes", x.kv_free}, {"max_requests", x.max_requests}, {"max_requests_bound", "HBM capacity"},
                           {"prefill_s", {{"formula", fig_json(x.prefill_formula)}, {"formula_fu2024", fig_json(x.prefill_fu)}, {"einsim", fig_json(x.prefill_mapped)}}},
                           {"decode_batch", x.decode_batch},
                           {"decode_step_s", {{"formula", fig_json(x.decode_formula)}, {"einsim", fig_json(x.decode_mapped)}}},
                           {"generate_s", {{"formula", fig_json(x.generate_formula)}, {"einsim", fig_json(x.generate_mapped)}}},
                           {"context_switch_s", {{"formula", fig_json(x.switch_formula)}, {"einsim", fig_json(x.switch_mapped)}}},
                           {"session_tokens_per_s", {{"formula", fig_json(x.session_formula)}, {"einsim", fig_json(x.session_mapped)}}}});
    return j.dump(2) + "\n";
  }
  TextTable t({"context", "devices", "KV per request", "max requests", "prefill formula", "prefill Fu 2024", "prefill einsim", "prefill bound", "decode batch",
               "step formula", "step einsim", "step bound", fmt::format("{} tokens einsim", s.output_tokens), "switch formula", "switch einsim",
               "session tok/s formula", "session tok/s einsim", "session bound"});
  auto rate = [](const LcFigure& x) { return x.ok() ? fmt::format("{:.4g}", x.value) : "-"; };
  for (const LcRow& x : r.rows)
    t.row({f == Format::Csv ? std::to_string(x.context) : token_words(static_cast<double>(x.context)), std::to_string(x.devices), fmt_bytes(x.kv_per_request), std::to_string(x.max_requests),
           seconds(x.prefill_formula), seconds(x.prefill_fu), x.prefill_mapped.ok() ? seconds(x.prefill_mapped) : "-", x.prefill_mapped.ok() ? x.prefill_mapped.bound : "-",
           std::to_string(x.decode_batch), seconds(x.decode_formula), x.decode_mapped.ok() ? seconds(x.decode_mapped) : "-",
           x.decode_mapped.ok() || !x.decode_mapped.bound.empty() ? x.decode_mapped.bound : "-", seconds(x.generate_mapped), seconds(x.switch_formula), seconds(x.switch_mapped),
           rate(x.session_formula), rate(x.session_mapped), x.session_mapped.ok() ? x.session_mapped.bound : x.session_formula.bound});
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format(
      "Long-context serving (Fu 2024): {} on {} x N, {}; weights {}, KV cache {} per token.\n"
      "Per device: {:.4g} TFLOP/s peak, {:.4g} TB/s and {} of {}, host link {} at {:.4g} GB/s.\n"
      "Convention: {}. Max requests: (N x HBM - weights - N x reserve {}) / KV per request, bound by HBM capacity (sizes in binary units: GiB). "
      "Formula: prefill = FLOPs / (N x peak), FLOPs as einsim counts them (2 per active parameter per token; QK and AV over the "
      "tiles causal attention computes, 128 x 128, diagonal tiles whole) and as Fu 2024 does (2 x parameters x tokens, half "
      "the dense QK and AV); decode step = (weights + batch x KV) / (N x HBM bandwidth); context switch = 2 x KV per request / PCIe "
      "bandwidth. einsim: the step's cascade mapped onto the devices{}; the switch moves each device's shard out and in at once. Session "
      "throughput: rounds of max-requests users, each prompt prefilled in turn, {} decode steps of the batch, a context switch per user.\n\n",
      r.model, r.arch, r.dtype, fmt_bytes(r.weights), fmt_bytes(r.kv_per_token), r.peak_flops / 1e12, r.hbm_bandwidth / 1e12, fmt_bytes(r.hbm_capacity),
      r.hbm_tier, r.host_link.empty() ? "none" : r.host_link, r.host_bandwidth / 1e9,
      s.convention == "fu2024" ? "Fu 2024's (the datasheet's GB read as GiB; the formula's prefill in its FLOP convention)"
                               : "einsim's (sizes in bytes as datasheets give them; causal tiles)",
      fmt_bytes(s.activation_reserve), s.communication ? " with all-reduces" : " (all-reduces not counted, as in the paper)", s.output_tokens);
  out += t.aligned();
  std::vector<std::string> notes;
  for (const LcRow& x : r.rows) notes.insert(notes.end(), {x.prefill_mapped.note, x.decode_mapped.note});
  return out + note_list("where einsim has no figure", notes);
}

std::string plot_long_context_svg(const LongContextReport& r) {
  std::vector<PlotPanel> panels(2);
  panels[0].title = "Decode step, largest batch that fits (dashed: formula)";
  panels[0].ylabel = "seconds";
  panels[0].log_y = true;
  panels[1].title = "Concurrent requests (HBM capacity)";
  panels[1].ylabel = "requests";
  panels[1].log_y = true;
  for (PlotPanel& p : panels) p.xlabel = "context (tokens)", p.xtick = token_words;
  for (int64_t N : r.scenario.devices) {
    const std::string key = fmt::format("{} x {}", N, r.arch);
    PlotSeries mapped{key + " (einsim)", {}, false, key}, formula{key + " (formula)", {}, true, key};
    PlotSeries req{key, {}, false, key};
    for (const LcRow& x : r.rows) {
      if (x.devices != N) continue;
      const double c = static_cast<double>(x.context);
      if (x.decode_mapped.ok()) mapped.points.emplace_back(c, x.decode_mapped.value);
      if (x.decode_formula.ok()) formula.points.emplace_back(c, x.decode_formula.value);
      req.points.emplace_back(c, static_cast<double>(x.max_requests));
    }
    panels[0].series.push_back(std::move(mapped));
    panels[0].series.push_back(std::move(formula));
    panels[1].series.push_back(std::move(req));
  }
  return svg_plot(panels);
}

}  // namespace einsim
