#include "sim/cli/run_report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/units.h"
#include "sim/report/table.h"

namespace einsim {
namespace {

using nlohmann::json;

std::string ms(double s) { return fmt::format("{:.4g}", s * 1e3); }
std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }

double tier_bytes(const std::vector<LevelTraffic>& t) { return t.empty() ? 0 : t[0].read_bytes + t[0].write_bytes; }

json traffic_json(const std::vector<LevelTraffic>& traffic) {
  json j = json::array();
  for (const LevelTraffic& t : traffic) j.push_back({{"level", t.name}, {"read_bytes", t.read_bytes}, {"write_bytes", t.write_bytes}, {"busy_s", t.busy}});
  return j;
}

std::string block_name(const RunReport& r, const BlockRun& b) {
  const std::string& first = r.einsums[static_cast<size_t>(b.einsums.front())].name;
  if (b.einsums.size() == 1) return first;
  return fmt::format("{}..{} ({})", first, r.einsums[static_cast<size_t>(b.einsums.back())].name, b.einsums.size());
}

std::string phase_words(const RunReport& r) {
  const Phase& p = r.phase;
  if (p.kind == PhaseKind::Decode) return fmt::format("decode step, batch {}, context {}", p.batch, p.context);
  return fmt::format("prefill, batch {}, prompt {}", p.batch, p.prompt);
}

}  // namespace

std::string format_run(const RunReport& r, Format f) {
  const bool decode = r.phase.kind == PhaseKind::Decode;
  if (f == Format::Json) {
    json j;
    j["kind"] = "run";
    j["model"] = r.model;
    j["arch"] = r.arch;
    j["phase"] = {{"kind", decode ? "decode" : "prefill"}, {"batch", r.phase.batch}, {"prompt", r.phase.prompt}, {"context", r.phase.context},
                  {"attention", r.phase.attention == AttentionKind::OnePass ? "1-pass" : "3-pass"}, {"block", r.phase.block}};
    j["tp"] = r.tp;
    j["ep"] = r.ep;
    if (r.ep > 1) j["expert_imbalance"] = r.expert_imbalance;
    j["runtime"] = r.runtime;
    j["dtype"] = dtype_name(r.dtype);
    j["quantization"] = r.quantization;
    j["fusion"] = fusion_name(r.fusion);
    j["layers"] = r.layers;
    j["totals"] = {{"step_s", r.step_time},
                   {"ttft_s", decode ? json(nullptr) : json(r.step_time)},
                   {"tpot_s", decode ? json(r.step_time) : json(nullptr)},
                   {"compute_s", r.compute_time},
                   {"layer_s", r.layer_time},
                   {"allreduce_s", r.allreduce_time},
                   {"host_s", r.host_time},
                   {"allreduce_bytes", r.allreduce_bytes},
                   {"alltoall_s", r.alltoall_time},
                   {"alltoall_bytes", r.alltoall_bytes},
                   {"tokens", r.tokens},
                   {"tokens_per_s", r.tokens_per_s},
                   {"energy_j", r.energy},
                   {"energy_per_token_j", r.energy_per_token},
                   {"power_per_device_w", r.power},
                   {"compute_energy_per_device_j", r.compute_energy},
                   {"memory_energy_per_device_j", r.memory_energy},
                   {"clock_hz", r.clock},
                   {"throttled", r.throttled},
                   {"over_power_limit", r.over_limit},
                   {"flops_per_device", r.flops},
                   {"mappings_evaluated", r.mappings_evaluated},
                   {"cache_hits", r.cache_hits}};
    if (r.tp > 1)
      j["allreduce"] = {{"link", r.allreduce_link},
                        {"algorithm", r.allreduce_algo},
                        {"count", r.allreduces},
                        {"domains", r.allreduce_domains},
                        {"network_bytes", r.allreduce_network_bytes}};
    if (r.pp > 1) {
      json stages = json::array();
      for (const RunReport::Stage& s : r.stages) stages.push_back({{"first_layer", s.first_layer}, {"layers", s.layers}, {"time_s", s.time}});
      j["pipeline"] = {{"stages", r.pp},
                       {"microbatches", r.microbatches},
                       {"time_s", r.pipeline_time},
                       {"send_s", r.pipeline_send_time},
                       {"send_bytes", r.pipeline_send_bytes},
                       {"link", r.pipeline_link},
                       {"bubble", r.bubble},
                       {"interval_s", r.pipeline_interval + r.host_time},
                       {"per_stage", stages}};
    }
    if (!r.offloads.empty()) {
      json o = json::array();
      for (const OffloadRun& x : r.offloads)
        o.push_back({{"tier", x.tier}, {"what", x.what}, {"fraction", x.fraction}, {"links", x.links}, {"read_bytes", x.read_bytes},
                     {"write_bytes", x.write_bytes}, {"bandwidth", x.bandwidth}, {"time_s", x.time}});
      j["offload"] = {{"placements", o}, {"stream_s", r.offload_time}, {"stall_s", r.offload_stall}};
    }
    if (r.alltoalls > 0) j["alltoall"] = {{"link", r.alltoall_link}, {"count", r.alltoalls}, {"network_bytes", r.alltoall_network_bytes}};
    j["emulated"] = r.emulated;
    j["engine"] = {{"name", r.engine}};
    if (r.engine != "analytical")
      j["engine"].update({{"analytical_step_s", r.analytical_step}, {"transactions", r.transactions}, {"quantum_s", r.quantum}, {"tiles", r.tiles}});
    json mem = json::array();
    for (const TierMemory& m : r.memory)
      mem.push_back({{"tier", m.tier}, {"capacity_bytes", m.capacity}, {"weights_bytes", m.weights}, {"kv_cache_bytes", m.kv_cache},
                     {"activations_bytes", m.activations}, {"total_bytes", m.total()}});
    j["memory"] = mem;
    json blocks = json::array();
    for (const BlockRun& b : r.blocks) {
      json e = json::array();
      for (int i : b.einsums) e.push_back(r.einsums[static_cast<size_t>(i)].name);
      blocks.push_back({{"einsums", e}, {"resident", b.resident}, {"shared", b.shared}, {"repeats", b.repeats}, {"time_s", b.time}, {"compute_s", b.compute},
                        {"overhead_s", b.overhead}, {"flops", b.flops}, {"energy_j", b.energy}, {"utilization", b.utilization},
                        {"traffic", traffic_json(b.traffic)},
                        {"bottleneck", b.bottleneck}});
    }
    j["blocks"] = blocks;
    json es = json::array();
    for (const EinsumRun& e : r.einsums)
      es.push_back({{"name", e.name}, {"component", e.component}, {"block", e.block}, {"repeats", e.repeats}, {"flops", e.flops},
                    {"compute_s", e.compute}, {"time_alone_s", e.time_alone}, {"energy_j", e.energy}, {"utilization", e.utilization},
                    {"traffic", traffic_json(e.traffic)}, {"bottleneck", e.bottleneck}, {"mapping", e.mapping}});
    j["einsums"] = es;
    return j.dump(2) + "\n";
  }
  const std::string tier = r.memory.empty() ? (r.einsums.empty() || r.einsums[0].traffic.empty() ? "tier" : r.einsums[0].traffic[0].name) : r.memory[0].tier;
  if (f == Format::Csv) {
    TextTable t({"einsum", "component", "block", "repeats", "flops", "compute_ms", "time_alone_ms", "block_ms", "tier_bytes", "utilization",
                 "bottleneck", "mapping"});
    for (const EinsumRun& e : r.einsums)
      t.row({e.name, e.component, std::to_string(e.block), fmt::format("{}", e.repeats), fmt::format("{}", e.flops), ms(e.compute),
             ms(e.time_alone), ms(r.blocks[static_cast<size_t>(e.block)].time), fmt::format("{}", tier_bytes(e.traffic)),
             fmt::format("{:.4f}", e.utilization), e.bottleneck, e.mapping});
    return t.csv();
  }

  std::string out = fmt::format("{} on {}{}{}: {}, {}{}, fusion {}{}\n\n", r.model, r.devices() > 1 ? fmt::format("{} x ", r.devices()) : "", r.arch,
                                r.ep > 1 ? fmt::format(" (experts split {} ways, attention TP {} x {} data-parallel{})", r.ep, r.tp, r.ep / r.tp,
                                                       r.expert_imbalance > 1 ? fmt::format("; the busiest device routed {:.2f}x the mean", r.expert_imbalance) : "")
                                         : "",
                                phase_words(r), dtype_name(r.dtype), r.quantization == "none" ? "" : fmt::format(" (linear layers {})", r.quantization),
                                fusion_name(r.fusion), r.runtime.empty() ? "" : ", runtime " + r.runtime);
  TextTable bt({"block", "einsums", "x", "time (ms)", "share", tier, "util", "bottleneck"});
  for (size_t i = 0; i < r.blocks.size(); ++i) {
    const BlockRun& b = r.blocks[i];
    bt.row({std::to_string(i), block_name(r, b), fmt::format("{}", b.repeats), ms(b.time), pct(b.time / r.step_time),
            fmt_bytes(tier_bytes(b.traffic)), pct(b.utilization), b.bottleneck});
  }
  out += "blocks (fused Einsums; x: sequential instances, one launch each on a GPU)\n" + bt.aligned() + "\n";
  TextTable et({"einsum", "component", "block", "FLOPs", tier, "alone (ms)", "util", "bottleneck", "mapping (one instance)"});
  for (const EinsumRun& e : r.einsums)
    et.row({e.name, e.component, std::to_string(e.block), fmt_count(e.flops), fmt_bytes(tier_bytes(e.traffic)), ms(e.time_alone),
            pct(e.utilization), e.bottleneck, e.mapping});
  out += "Einsums (all instances; alone: as a block of its own)\n" + et.aligned() + "\n";
  if (r.layers > 0) out += fmt::format("per layer: {} ms x {} layers\n", ms(r.layer_time), r.layers);
  if (r.tp > 1)
    out += fmt::format("all-reduce over {} ({}, {:g} per step{}): {} ms ({} per device{})\n", r.allreduce_link, r.allreduce_algo, r.allreduces,
                       r.allreduce_domains > 1 ? fmt::format("; {} scale-up domains, hierarchical", r.allreduce_domains) : "",
                       ms(r.allreduce_time), fmt_bytes(r.allreduce_bytes),
                       r.allreduce_network_bytes > 0 ? fmt::format(", {} over the network", fmt_bytes(r.allreduce_network_bytes)) : "");
  if (r.alltoalls > 0)
    out += fmt::format("expert all-to-all over {} devices, {} ({:g} per step, dispatch and combine): {} ms ({} per device{})\n", r.ep,
                       r.alltoall_link, r.alltoalls, ms(r.alltoall_time), fmt_bytes(r.alltoall_bytes),
                       r.alltoall_network_bytes > 0 ? fmt::format(", {} over the network", fmt_bytes(r.alltoall_network_bytes)) : "");
  if (r.pp > 1) {
    std::vector<std::string> st;
    for (const RunReport::Stage& s : r.stages) st.push_back(fmt::format("{} layers {} ms", s.layers, ms(s.time)));
    out += fmt::format("pipeline: {} stages of {} device{} ({}), {} micro-batch{} of {} requests; activations over {}: {} ms per micro-batch through "
                       "every hop ({} per sending device per step); {} ms with a {} bubble; steps back to back: one every {} ms "
                       "({:.4g} tokens/s)\n",
                       r.pp, r.devices() / r.pp, r.devices() / r.pp == 1 ? "" : "s", fmt::join(st, ", "), r.microbatches, r.microbatches == 1 ? "" : "es",
                       r.phase.batch / r.microbatches, r.pipeline_link, ms(r.pipeline_send_time), fmt_bytes(r.pipeline_send_bytes), ms(r.pipeline_time),
                       pct(r.bubble), ms(r.pipeline_interval + r.host_time), r.tokens / (r.pipeline_interval + r.host_time));
  }
  for (const OffloadRun& o : r.offloads)
    out += fmt::format("offloaded: {} of the {} on {} (over {} at {} per device): {} read{} per device, {} ms\n", pct(o.fraction), o.what, o.tier, o.links,
                       format_quantity(o.bandwidth, Dim::Bandwidth), fmt_bytes(o.read_bytes),
                       o.write_bytes > 0 ? fmt::format(" and {} written", fmt_bytes(o.write_bytes)) : "", ms(o.time));
  if (!r.offloads.empty())
    out += fmt::format("streams: {} ms per step, layer by layer ahead of use; they add {} ms to the step ({})\n", ms(r.offload_time), ms(r.offload_stall),
                       r.offload_time > r.step_time - r.host_time - r.offload_stall ? "the streams bound it" : "hidden but for the first layer's");
  if (r.host_time > 0) out += fmt::format("host time per step ({}): {} ms\n", r.runtime, ms(r.host_time));
  out += fmt::format("{}: {} ms; {:.4g} tokens/s{}\n", decode ? "decode step (TPOT)" : "prefill (TTFT)", ms(r.step_time), r.tokens_per_s,
                     r.devices() > 1 ? fmt::format(" over {} devices", r.devices()) : "");
  const bool no_energy = r.energy == 0 && r.power == 0;
  if (no_energy) {
    out += "energy and power: not reported (the architecture gives no energy or power figures)\n";
  } else {
    out += fmt::format("energy: {:.4g} J per step, {:.4g} mJ per token\n", r.energy, r.energy_per_token * 1e3);
  }
  if (r.step_time > 0 && !no_energy)
    out += fmt::format("power per device: {:.0f} W (baseline {:.0f} W, operations {:.0f} W, data movement {:.0f} W){}{}\n", r.power,
                       r.power - (r.compute_energy + r.memory_energy) / r.step_time, r.compute_energy / r.step_time, r.memory_energy / r.step_time,
                       r.clock > 0 ? fmt::format(", clock {:.3g} GHz", r.clock / 1e9) : "", r.over_limit  ? " (over the power limit even at the lowest clock)"
                       : r.throttled ? " (throttled to the power limit)"
                                     : "");
  for (const TierMemory& m : r.memory)
    out += fmt::format("memory per device ({}{}): weights {}, KV cache {}, activations {}; {} of {} ({})\n", m.tier,
                       m.stage >= 0 ? fmt::format(", stage {}, the fullest", m.stage) : "", fmt_bytes(m.weights),
                       fmt_bytes(m.kv_cache), fmt_bytes(m.activations), fmt_bytes(m.total()), fmt_bytes(m.capacity), pct(m.total() / m.capacity));
  for (const std::string& e : r.emulated) out += fmt::format("emulated: {}\n", e);
  out += fmt::format("mapper: {} mappings costed, {} Einsums from the cache\n", r.mappings_evaluated, r.cache_hits);
  if (r.engine != "analytical")
    out += fmt::format("engine: {} (TLM-2.0, loosely timed, quantum {} us), {} tiles per block instance, double buffered, {} transactions; "
                       "analytical step {} ms ({:+.2f}%)\n",
                       r.engine, r.quantum * 1e6, r.tiles, r.transactions, ms(r.analytical_step), 100 * (r.step_time / r.analytical_step - 1));
  return out;
}

std::string format_placements(const std::vector<PlacementPoint>& points, const std::string& model, const ArchSpec& a, const Phase& phase,
                              const PlacementOptions& opt, const std::string& format, size_t top) {
  const bool decode = phase.kind == PhaseKind::Decode;
  auto status = [](const PlacementPoint& p) -> std::string {
    if (!p.invalid.empty()) return "cannot be formed";
    if (!p.fits) return "does not fit";
    return p.meets_slo ? "ok" : "misses the SLO";
  };
  if (format == "json") {
    json j = json::array();
    for (const PlacementPoint& p : points) {
      json x = {{"tp", p.at.tp}, {"pp", p.at.pp}, {"ep", p.at.ep}, {"devices", p.at.devices()}, {"status", status(p)}};
      if (p.invalid.empty())
        x.update({{"memory_bytes", p.memory},
                  {"capacity_bytes", p.capacity},
                  {"step_s", p.step},
                  {"interval_s", p.interval},
                  {"tokens_per_s", p.tokens_per_s},
                  {"replicas", p.replicas},
                  {"replicas_tokens_per_s", p.tokens_per_s * static_cast<double>(p.replicas)},
                  {"cost_per_mtok", a.cost.rate ? json(p.cost_per_mtok) : json(nullptr)}});
      else
        x["why"] = p.invalid;
      j.push_back(std::move(x));
    }
    return j.dump(2) + "\n";
  }
  TextTable t({"placement", "devices", "status", "memory/device", "of", decode ? "TPOT (ms)" : "TTFT (ms)", "interval (ms)", "tokens/s", "DP",
               fmt::format("tokens/s on {}", opt.max_devices), "$/M tokens"});
  size_t shown = 0, formed = 0, fitting = 0;
  for (const PlacementPoint& p : points) {
    formed += p.invalid.empty();
    fitting += p.invalid.empty() && p.fits && p.meets_slo;
    if (!p.invalid.empty() || (format == "table" && shown >= top)) continue;
    ++shown;
    t.row({p.at.flags(), std::to_string(p.at.devices()), status(p), fmt_bytes(p.memory), fmt_bytes(p.capacity), ms(p.step), ms(p.interval),
           fmt::format("{:.4g}", p.tokens_per_s), std::to_string(p.replicas), fmt::format("{:.4g}", p.tokens_per_s * static_cast<double>(p.replicas)),
           a.cost.rate ? fmt::format("{:.3g}", p.cost_per_mtok) : "-"});
  }
  if (format == "csv") return t.csv();
  std::string out = fmt::format("{} on {}: {}, batch {}, {} {}; splits of up to {} devices{}\n", model, a.name, decode ? "decode" : "prefill", phase.batch,
                                decode ? "context" : "prompt", decode ? phase.context : phase.prompt, opt.max_devices,
                                opt.slo > 0 ? fmt::format(", {} at most {} ms", decode ? "TPOT" : "TTFT", ms(opt.slo)) : "");
  out += fmt::format("{} splits searched, {} formed, {} fit{}; {} first ({}), interval: steps back to back; DP: data-parallel replicas of the "
                     "split on the {} devices\n",
                     points.size(), formed, fitting,
                     opt.slo > 0 ? " within the SLO" : "", a.cost.rate ? "cheapest per token" : "fewest device-seconds per token",
                     a.cost.rate ? "at the architecture's rental rate" : "no rental rate given", opt.max_devices);
  out += t.aligned();
  if (fitting > 0) {
    const PlacementPoint& best = points.front();
    out += fmt::format("\nbest: {} ({} devices): {} ms a step, {:.4g} tokens/s{}\n", best.at.flags(), best.at.devices(), ms(best.step), best.tokens_per_s,
                       a.cost.rate ? fmt::format(", ${:.3g} per million tokens", best.cost_per_mtok) : "");
  } else {
    out += "\nno split holds the model" + std::string(opt.slo > 0 ? " within the SLO" : "") + "\n";
  }
  return out;
}

}  // namespace einsim
