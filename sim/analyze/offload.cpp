#include "sim/analyze/offload.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "arch/collective.h"
#include "sim/cost/cost_model.h"
#include "sim/analyze/scenario.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

namespace {

// Seconds of the blocks of a step that do (or do not) hold attention proper.
double block_time(const RunReport& r, bool attention) {
  double t = 0;
  for (const BlockRun& b : r.blocks) {
    bool core = false;
    for (int i : b.einsums) core |= is_attention_core(r.einsums[static_cast<size_t>(i)].name);
    if (core == attention) t += b.time;
  }
  return t;
}

}  // namespace

OffloadScenario read_offload(const ConfigTable& t) {
  OffloadScenario s;
  s.loc = t.loc();
  s.model = t.opt_string("model").value_or(s.model);
  s.compute = t.opt_string("compute").value_or(s.compute);
  s.memory = t.opt_string("memory").value_or(s.memory);
  s.compute_devices = t.opt_int("compute_devices", 1, 1024).value_or(s.compute_devices);
  s.memory_devices = t.opt_int("memory_devices", 1, 1024).value_or(s.memory_devices);
  s.replicas = t.opt_int("replicas", 1, 64).value_or(s.replicas);
  s.alpha = t.opt_number("alpha", 1e-3, 10).value_or(s.alpha);
  if (auto v = scenario_counts(t, "batches", 1, 1 << 20); !v.empty()) s.batches = v;
  if (auto v = scenario_counts(t, "contexts", 1, int64_t{1} << 24); !v.empty()) s.contexts = v;
  s.activation_reserve = t.opt_quantity("activation_reserve", Dim::Bytes).value_or(0);
  s.emulate = t.opt_bool("emulate").value_or(false);
  return s;
}

OffloadScenario load_offload(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "offload", read_offload);
}

OffloadReport analyze_offload(const OffloadScenario& s) {
  const ModelConfig m = scenario_model(s.model, s.loc);
  const ArchSpec ac = scenario_arch(s.compute), am = scenario_arch(s.memory);
  for (const ArchSpec* a : {&ac, &am}) {
    if (!network_link(*a)) throw UserError(a->loc, fmt::format("'{}' has no network link (a link with to = \"network\") to join the pools", a->name));
    if (!a->cost.rate) throw UserError(a->loc, fmt::format("'{}' has no rental rate ([arch.cost] rate) to price the deployment", a->name));
  }
  OffloadReport r;
  r.scenario = s;
  r.model = m.name;
  r.compute = ac.name;
  r.memory = am.name;
  const double e = dtype_bytes(m.dtype);  // activations on the network
  r.weights = count_params(m).total_bytes;
  r.kv_per_token = m.kv_bytes_per_token(m.dtype);
  r.compute_rate = *ac.cost.rate;
  r.memory_rate = *am.cost.rate;
  const MemoryTier& hc = *ac.tier(storage_path(ac, 0)[0]);
  const MemoryTier& hm = *am.tier(storage_path(am, 0)[0]);
  const double nc = static_cast<double>(s.compute_devices), nm = static_cast<double>(s.memory_devices), reps = static_cast<double>(s.replicas);
  if (!MemoryFit{nc, hc.capacity, r.weights, s.activation_reserve}.holds())
    throw UserError(s.loc, fmt::format("the weights ({:.1f} GiB) do not fit {} x {} ({:.1f} GiB each); raise compute_devices", r.weights / (1ull << 30),
                                       s.compute_devices, ac.name, hc.capacity / (1ull << 30)));
  const double L = static_cast<double>(m.num_hidden_layers), G = static_cast<double>(m.group()), d = static_cast<double>(m.hidden_size);
  const double link = std::min(reps * nc * network_link(ac)->bandwidth, nm * network_link(am)->bandwidth);
  // One batch's transfers run between its replica's nc NICs and the pool's nm: as many
  // parallel links as the smaller side has devices.
  const double lanes = std::min(nc, nm);
  const Link& nic = network_link(ac)->bandwidth <= network_link(am)->bandwidth ? *network_link(ac) : *network_link(am);
  const double base_scale = s.runtime ? s.runtime->collective_base : default_runtime().collective_base;
  const double in_flight = reps + 1;  // staggered pipelining: n = replicas + 1 batches
  MapCache cache;
  for (int64_t C : s.contexts)
    for (int64_t B : s.batches) {
      OffloadRow x;
      x.batch = B;
      x.context = C;
      x.link = link;
      const double b = static_cast<double>(B), kv = b * static_cast<double>(m.kv_tokens(C + 1)) * r.kv_per_token;
      // Every batch in flight keeps its requests' caches on the memory pool.
      x.kv_bytes = in_flight * kv;
      x.fits = MemoryFit{nm, hm.capacity, 0, s.activation_reserve}.holds(x.kv_bytes);
      RunOptions ro;
      ro.phase.kind = PhaseKind::Decode;
      ro.runtime = s.runtime.get();
      set_emulation(ro, s.emulate, s.loc);
      ro.phase.batch = B;
      ro.phase.context = C;
      ro.check_memory = false;  // weights on one pool, the cache on the other: checked here
      if (!x.fits) {
        x.note = fmt::format("the KV caches of {} batches in flight ({:.1f} GiB) do not fit {} x {}", s.replicas + 1, x.kv_bytes / (1ull << 30),
                             s.memory_devices, am.name);
      } else {
        try {
          ro.tp = s.compute_devices;
          const RunReport rc = run_model(m, ac, ro, &cache);
          x.mtime = block_time(rc, false) + rc.allreduce_time;
          ro.tp = s.memory_devices;
          const RunReport rm = run_model(m, am, ro, &cache);
          x.atime = block_time(rm, true);
        } catch (const UserError& err) {
          x.note = err.message();  // the reason, not the location: the cell stands for its run
        }
      }
      // Per layer: q (d) and the new k and v (d / G each) to the memory pool, the attention
      // output (d) back (docs/REFERENCES.md: (2 + 2/G) e d B per layer round trip).
      x.net_bytes = (2 + 2 / G) * e * d * b * L;
      x.link_device = nic.bandwidth;
      x.net_busy = x.net_bytes / link;
      // Each layer sends q, k, v out and the attention output back: two point-to-point
      // transfers in turn, each its share over the parallel NICs (the link's fitted base and
      // latency, arch/collective.h).
      const CollectiveCost out = collective_cost(nic, Collective::SendRecv, 2, (1 + 2 / G) * e * d * b / lanes, base_scale);
      const CollectiveCost back = collective_cost(nic, Collective::SendRecv, 2, e * d * b / lanes, base_scale);
      const CollectiveCost none = collective_cost(nic, Collective::SendRecv, 2, 0, base_scale);
      x.net_time = L * (out.time + back.time);
      x.net_latency = 2 * L * none.time;
      if (x.note.empty()) {
        x.bw_min = x.net_bytes / (s.alpha * (x.mtime + x.atime));
        x.bw_min_device = x.bw_min / lanes;
        x.cycle = x.mtime + x.atime + x.net_time;
        // Staggered pipelining: n = replicas + 1 batches in flight, so the compute replicas,
        // the memory pool and the network all work at once; the slowest bounds, and so does
        // each batch's own step (compute, attention and transfers in turn) over the n.
        const double by_compute = reps * b / x.mtime, by_memory = b / x.atime, by_net = b / x.net_busy, by_cycle = in_flight * b / x.cycle;
        x.tokens_per_s = std::min({by_compute, by_memory, by_net, by_cycle});
        x.bottleneck = x.tokens_per_s == by_net ? "network" : x.tokens_per_s == by_cycle ? "latency" : x.tokens_per_s == by_memory ? "memory pool" : "compute pool";
        x.cost_rate = reps * nc * r.compute_rate + nm * r.memory_rate;
      }
      // Homogeneous: the compute devices alone, tensor parallel, weights and cache together,
      // at the largest batch up to B that fits.
      const double free = MemoryFit{nc, hc.capacity, r.weights, s.activation_reserve}.kv_room();
      x.base_batch = std::min<int64_t>(B, static_cast<int64_t>(std::floor(free / (static_cast<double>(m.kv_tokens(C + 1)) * r.kv_per_token))));
      x.base_cost_rate = nc * r.compute_rate;
      if (x.base_batch < 1) {
        x.base_note = "no request fits beside the weights";
      } else {
        ro.tp = s.compute_devices;
        ro.phase.batch = x.base_batch;
        ro.check_memory = true;
        try {
          const RunReport rb = run_model(m, ac, ro, &cache);
          x.base_tokens_per_s = static_cast<double>(x.base_batch) / rb.step_time;
        } catch (const UserError& err) {
          x.base_note = err.message();  // the reason, not the location: the cell stands for its run
        }
      }
      if (x.tokens_per_s > 0 && x.base_tokens_per_s > 0)
        x.advantage = (x.tokens_per_s / x.cost_rate) / (x.base_tokens_per_s / x.base_cost_rate);
      r.rows.push_back(std::move(x));
    }
  return r;
}

namespace {

std::string ms(double s) { return s > 0 ? fmt::format("{:.4g} ms", s * 1e3) : "-"; }
std::string gbs(double bps) { return fmt::format("{:.4g} GB/s", bps / 1e9); }
std::string per_dollar(double tps, double rate) { return tps > 0 && rate > 0 ? fmt::format("{:.4g}", tps / rate) : "-"; }

}  // namespace

std::string format_offload(const OffloadReport& r, Format f) {
  const OffloadScenario& s = r.scenario;
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "analyze-offload";
    j["model"] = r.model;
    j["compute"] = {{"arch", r.compute}, {"devices", s.compute_devices}, {"replicas", s.replicas}, {"rate_per_s", r.compute_rate}};
    j["memory"] = {{"arch", r.memory}, {"devices", s.memory_devices}, {"rate_per_s", r.memory_rate}};
    j["alpha"] = s.alpha;
    j["weights_bytes"] = r.weights;
    j["kv_bytes_per_token"] = r.kv_per_token;
    j["rows"] = nlohmann::json::array();
    for (const OffloadRow& x : r.rows)
      j["rows"].push_back({{"batch", x.batch}, {"context", x.context}, {"kv_fits", x.fits}, {"note", x.note}, {"mtime_s", x.mtime}, {"atime_s", x.atime},
                           {"kv_bytes_in_flight", x.kv_bytes}, {"net_bytes", x.net_bytes}, {"net_time_s", x.net_time}, {"net_latency_s", x.net_latency},
                           {"net_busy_s", x.net_busy}, {"cycle_s", x.cycle}, {"bw_min_bytes_per_s", x.bw_min},
                           {"bw_min_per_device_bytes_per_s", x.bw_min_device}, {"link_bytes_per_s", x.link}, {"link_per_device_bytes_per_s", x.link_device},
                           {"bottleneck", x.bottleneck}, {"tokens_per_s", x.tokens_per_s}, {"cost_per_s", x.cost_rate},
                           {"baseline", {{"batch", x.base_batch}, {"tokens_per_s", x.base_tokens_per_s}, {"cost_per_s", x.base_cost_rate}, {"note", x.base_note}}},
                           {"advantage", x.advantage}});
    return j.dump(2) + "\n";
  }
  TextTable t({"context", "batch", "KV in flight", "MTIME", "ATIME", "network", "of it latency", "BW_min/device", "bound", "tokens/s", "tokens per $",
               "homog. batch", "homog. tokens/s", "homog. tokens per $", "advantage"});
  for (const OffloadRow& x : r.rows)
    t.row({token_words(static_cast<double>(x.context)), std::to_string(x.batch), fmt::format("{:.4g} GiB", x.kv_bytes / (1ull << 30)), ms(x.mtime),
           ms(x.atime), ms(x.net_time), ms(x.net_latency), x.bw_min_device > 0 ? gbs(x.bw_min_device) : "-", x.note.empty() ? x.bottleneck : "does not fit", x.tokens_per_s > 0 ? fmt::format("{:.4g}", x.tokens_per_s) : "-",
           per_dollar(x.tokens_per_s, x.cost_rate), std::to_string(x.base_batch), x.base_tokens_per_s > 0 ? fmt::format("{:.4g}", x.base_tokens_per_s) : "-",
           per_dollar(x.base_tokens_per_s, x.base_cost_rate), x.advantage > 0 ? fmt::format("{:.2f}x", x.advantage) : "-"});
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format(
      "Attention offloading (Lamina): {}; compute pool {} x {} x {} (${:.2f}/h each) holds the weights, memory pool {} x {} (${:.2f}/h each) the KV "
      "cache; link between the pools {} ({} x {} and {} x {} NICs).\n"
      "MTIME: the step's non-attention blocks on one compute replica (with its all-reduces); ATIME: attention's blocks on the memory pool; "
      "network: one batch's 2L transfers per step ((2 + 2/G) e d B L bytes, each transfer the NIC's point-to-point base and latency, then its "
      "bytes over min(replica, pool) NICs). Staggered pipelining ({} batches in flight over {} replica{}, every batch's KV on the memory pool): "
      "tokens/s = min(replicas x B / MTIME, B / ATIME, B / link busy, n x B / (MTIME + ATIME + network)). BW_min = bytes / (alpha x (MTIME + "
      "ATIME)), alpha = {}, per device of the smaller side (link per device {}). Homogeneous: {} x {} alone, the largest batch that fits. "
      "Tokens per $ at the rental rates.\n\n",
      r.model, s.replicas, s.compute_devices, r.compute, r.compute_rate * 3600, s.memory_devices, r.memory, r.memory_rate * 3600,
      r.rows.empty() ? "-" : gbs(r.rows[0].link), s.replicas * s.compute_devices, r.compute, s.memory_devices, r.memory, s.replicas + 1, s.replicas,
      s.replicas == 1 ? "" : "s", s.alpha, r.rows.empty() ? "-" : gbs(r.rows[0].link_device), s.compute_devices, r.compute);
  out += t.aligned();
  // Where offloading wins, and where the link binds.
  out += "\n";
  for (int64_t C : s.contexts) {
    int64_t wins = 0, link_binds = 0;
    for (const OffloadRow& x : r.rows) {
      if (x.context != C) continue;
      if (!wins && x.advantage > 1) wins = x.batch;
      if (!link_binds && x.note.empty() && (x.bottleneck == "network" || x.bw_min_device > x.link_device)) link_binds = x.batch;
    }
    out += fmt::format("context {}: offloading {}; the link {}\n", token_words(static_cast<double>(C)),
                       wins ? fmt::format("wins per dollar from batch {}", wins) : "does not win per dollar in this range",
                       link_binds ? fmt::format("binds (or needs more than it has at alpha {}) from batch {}", s.alpha, link_binds) : "never binds in this range");
  }
  std::vector<std::string> notes;
  for (const OffloadRow& x : r.rows) notes.insert(notes.end(), {x.note, x.base_note});
  return out + note_list("notes", notes);
}

std::string plot_offload_svg(const OffloadReport& r) {
  std::vector<PlotPanel> panels(2);
  panels[0].title = "Tokens per $ (dashed: homogeneous)";
  panels[0].ylabel = "tokens per $";
  panels[1].title = "Network per device: needed (BW_min) vs NIC";
  panels[1].ylabel = "GB/s";
  for (PlotPanel& p : panels) p.xlabel = "batch", p.log_y = true;
  for (int64_t C : r.scenario.contexts) {
    const std::string key = fmt::format("context {}", token_words(static_cast<double>(C)));
    PlotSeries off{key + " offloaded", {}, false, key}, base{key + " homogeneous", {}, true, key}, need{key + " BW_min", {}, false, key};
    for (const OffloadRow& x : r.rows) {
      if (x.context != C) continue;
      const double b = static_cast<double>(x.batch);
      if (x.tokens_per_s > 0) off.points.emplace_back(b, x.tokens_per_s / x.cost_rate);
      if (x.base_tokens_per_s > 0) base.points.emplace_back(b, x.base_tokens_per_s / x.base_cost_rate);
      if (x.bw_min_device > 0) need.points.emplace_back(b, x.bw_min_device / 1e9);
    }
    panels[0].series.push_back(std::move(off));
    panels[0].series.push_back(std::move(base));
    panels[1].series.push_back(std::move(need));
  }
  PlotSeries link{"link", {}, true, "link"};
  for (const OffloadRow& x : r.rows)
    if (x.context == r.scenario.contexts.front()) link.points.emplace_back(static_cast<double>(x.batch), x.link_device / 1e9);
  panels[1].series.push_back(std::move(link));
  return svg_plot(panels);
}

}  // namespace einsim
