#include "sim/engine/contention.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "arch/collective.h"
#include "sim/analyze/flash.h"
#include "sim/analyze/scenario.h"
#include "sim/cost/cost_model.h"
#include "sim/report/table.h"
#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim {

ContentionScenario read_contention(const ConfigTable& t) {
  ContentionScenario s;
  s.loc = t.loc();
  s.kind = t.get_choice("case", {"kv-host", "context-switch", "flash-stream", "offload"});
  s.model = t.opt_string("model").value_or(s.model);
  s.arch = t.opt_string("arch").value_or(s.arch);
  s.link = t.opt_string("link").value_or(s.link);
  s.batch = scenario_count(t, "batch", 1, 1 << 20).value_or(s.batch);
  s.context = scenario_count(t, "context", 0, int64_t{1} << 24).value_or(s.context);
  s.host_fraction = t.opt_number("host_fraction", 0, 1).value_or(s.host_fraction);
  s.swap_context = scenario_count(t, "swap_context", 1, int64_t{1} << 24).value_or(s.swap_context);
  s.steps = t.opt_int("steps", 1, 10000).value_or(s.steps);
  s.compute = t.opt_string("compute").value_or(s.compute);
  s.memory = t.opt_string("memory").value_or(s.memory);
  s.compute_devices = t.opt_int("compute_devices", 1, 1024).value_or(s.compute_devices);
  s.memory_devices = t.opt_int("memory_devices", 1, 1024).value_or(s.memory_devices);
  s.batches = t.opt_int("batches", 2, 64).value_or(s.batches);
  s.tiles = t.opt_int("tiles", 1, 4096).value_or(s.tiles);
  s.flash_scenario = t.opt_string("flash_scenario").value_or(s.flash_scenario);
  return s;
}

ContentionScenario load_contention(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "contention", read_contention);
}

namespace {

// A prepared scenario: the schedules to simulate and how to read their results.
struct Prepared {
  std::vector<Schedule> schedules;
  std::function<ContentionReport(const std::vector<EngineResult>&)> report;
};

RunOptions decode_options(const ContentionScenario& sc, int64_t batch, int64_t context, int64_t tp = 1) {
  RunOptions o;
  o.runtime = sc.runtime.get();
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = batch;
  o.phase.context = context;
  o.tp = tp;
  return o;
}

int need_link(const Schedule& s, const ArchSpec& a, const std::string& link, const SourceLoc& loc) {
  const int i = s.resource(link);
  if (i < 0 || s.resources[static_cast<size_t>(i)].kind != ResourceKind::Link)
    throw UserError(loc, fmt::format("'{}' has no link '{}' to carry the transfers", a.name, link));
  return i;
}

double block_busiest(const std::vector<double>& busy) { return busy.empty() ? 0 : *std::max_element(busy.begin(), busy.end()); }

// Analytical busy times of one block (all instances), per resource of the schedule.
std::vector<double> block_busy(const Schedule& s, const ScheduleBlock& b) {
  std::vector<double> busy(s.resources.size(), 0);
  const double n = static_cast<double>(b.instances * b.tiles);
  for (const StageWork& w : b.loads) {
    const Resource& r = s.resources[static_cast<size_t>(w.resource)];
    busy[static_cast<size_t>(w.resource)] += n * (w.read_bytes / r.read_bandwidth + (w.write_bytes > 0 ? w.write_bytes / r.write_bandwidth : 0));
  }
  for (const StageWork& w : b.compute) busy[static_cast<size_t>(w.resource)] += n * w.seconds;
  return busy;
}

double overhead(const ScheduleBlock& b) { return static_cast<double>(b.instances) * (b.launch + b.fill); }

// The scenario's decode step on its architecture, its schedule, and the link and first tier
// the transfers use (kv-host, context-switch).
struct DecodeSetup {
  ArchSpec a;
  ModelConfig m;
  RunReport r;
  Schedule base;
  int link = -1, tier = -1;
};

DecodeSetup decode_setup(const ContentionScenario& sc, MapCache& cache) {
  DecodeSetup d{scenario_arch(sc.arch), scenario_model(sc.model, sc.loc), {}, {}, -1, -1};
  d.r = run_model(d.m, d.a, decode_options(sc, sc.batch, sc.context), &cache);
  ScheduleOptions so;
  so.tiles = sc.tiles;
  d.base = build_schedule(d.r, d.a, so);
  d.link = need_link(d.base, d.a, sc.link, sc.loc);
  d.tier = d.base.resource(d.a.tiers[0].name);
  return d;
}

// --- kv-host ---------------------------------------------------------------------------------
Prepared kv_host(const ContentionScenario& sc, MapCache& cache) {
  const DecodeSetup d = decode_setup(sc, cache);
  const ArchSpec& a = d.a;
  const ModelConfig& m = d.m;
  const RunReport& r = d.r;
  const Schedule& base = d.base;
  Schedule cont = base;
  const int link = d.link, tier = d.tier;
  const double kv = r.memory.empty() ? 0 : r.memory[0].kv_cache;
  double attn_read = 0;
  for (size_t i = 0; i < r.blocks.size(); ++i)
    if (block_is_attention(r, r.blocks[i]))
      for (const LevelTraffic& t : r.blocks[i].traffic)
        if (t.name == a.tiers[0].name) attn_read += t.read_bytes;
  const double ratio = attn_read > 0 ? std::min(1.0, kv / attn_read) : 0;
  double hand = cont.tail, moved = 0;
  for (size_t i = 0; i < cont.blocks.size(); ++i) {
    ScheduleBlock& b = cont.blocks[i];
    if (block_is_attention(r, r.blocks[i]))
      for (StageWork& w : b.loads)
        if (w.resource == tier) {
          const double m_tile = sc.host_fraction * ratio * w.read_bytes;
          w.read_bytes -= m_tile;
          b.loads.push_back(StageWork{link, m_tile, 0, 0});
          moved += m_tile * static_cast<double>(b.instances * b.tiles);
          break;
        }
    hand += block_busiest(block_busy(cont, b)) + overhead(b);
  }
  const Resource& lk = cont.resources[static_cast<size_t>(link)];
  Prepared p;
  p.schedules = {base, cont};
  p.report = [=](const std::vector<EngineResult>& e) {
    ContentionReport rep;
    rep.title = fmt::format("{} decode on {}, batch {}, context {}: {:.0f}% of the KV cache ({}) in host memory over {}", m.name, a.name, sc.batch,
                            sc.context, sc.host_fraction * 100, fmt_bytes(kv * sc.host_fraction), sc.link);
    rep.figures.push_back({"decode step, KV all in HBM", "ms", e[0].total * 1e3, r.step_time * 1e3, "analytical step"});
    rep.figures.push_back({"decode step, KV split", "ms", e[1].total * 1e3, hand * 1e3,
                           "per block: max(HBM less the moved bytes, moved bytes over the link, other levels, compute) + launch and fill"});
    rep.figures.push_back({"KV over the link", "ms", e[1].busy[static_cast<size_t>(link)] * 1e3, moved / lk.read_bandwidth * 1e3, "moved bytes / link bandwidth"});
    rep.effect = fmt::format("the step slows {:.2f}x: the link ({}) carries {} while HBM reads the rest, and binds the attention blocks", e[1].total / e[0].total,
                             fmt::format("{:.4g} GB/s", lk.read_bandwidth / 1e9), fmt_bytes(moved));
    return rep;
  };
  return p;
}

// --- context-switch --------------------------------------------------------------------------
Prepared context_switch(const ContentionScenario& sc, MapCache& cache) {
  DecodeSetup d = decode_setup(sc, cache);
  const ArchSpec& a = d.a;
  const ModelConfig& m = d.m;
  const RunReport& r = d.r;
  Schedule& base = d.base;
  base.steps = sc.steps;
  Schedule cont = base;
  const int link = d.link, tier = d.tier;
  const double kv = m.kv_bytes_per_token(m.dtype) * static_cast<double>(sc.swap_context);
  cont.background.push_back(BackgroundTransfer{"swap out", 0, kv, {tier, link}, {0, 0}, double(1 << 20), 0});
  cont.background.push_back(BackgroundTransfer{"swap in", 0, kv, {link, tier}, {0, 1}, double(1 << 20), 0});
  const Resource& lk = cont.resources[static_cast<size_t>(link)];
  const Resource& hbm = cont.resources[static_cast<size_t>(tier)];
  const double swap = 2 * kv / lk.read_bandwidth;                              // Fu 2024: (KV1 + KV2) / PCIe
  const double hbm_busy = kv / hbm.read_bandwidth + kv / hbm.write_bandwidth;  // what the swap takes from HBM
  Prepared p;
  p.schedules = {base, cont};
  p.report = [=](const std::vector<EngineResult>& e) {
    ContentionReport rep;
    rep.title = fmt::format("{} on {}: a batch of {} at context {} decodes {} steps while one request's KV ({}) leaves over {} and another's arrives",
                            m.name, a.name, sc.batch, sc.context, sc.steps, fmt_bytes(kv), sc.link);
    const double done = std::max(e[1].background_done[0], e[1].background_done[1]);
    rep.figures.push_back({"context switch (both transfers)", "ms", done * 1e3, swap * 1e3, "(KV out + KV in) / link bandwidth (Fu 2024)"});
    rep.figures.push_back({fmt::format("{} decode steps, alone", sc.steps), "ms", e[0].total * 1e3, static_cast<double>(sc.steps) * r.step_time * 1e3,
                           "steps x analytical step"});
    rep.figures.push_back({fmt::format("{} decode steps, during the switch", sc.steps), "ms", e[1].total * 1e3,
                           (static_cast<double>(sc.steps) * r.step_time + hbm_busy) * 1e3,
                           "alone + the HBM time the swap takes (KV / HBM read + KV / HBM write): decode is HBM-bound"});
    rep.effect = fmt::format("the switch takes {:.4g} ms on the link; decoding beside it slows {:.2f}% (the swap's share of HBM)", done * 1e3,
                             100 * (e[1].total / e[0].total - 1));
    return rep;
  };
  return p;
}

// --- flash-stream ----------------------------------------------------------------------------
Prepared flash_stream(const ContentionScenario& sc, MapCache& cache) {
  FlashScenario fs = load_flash(sc.flash_scenario);
  fs.models = {sc.model};
  fs.hosts = {sc.arch};
  fs.dram_sizes.clear();
  fs.runtime = sc.runtime;
  const FlashReport fr = analyze_flash(fs);
  const FlashCase& c = fr.cases.front();
  const FlashStep& all = c.steps.back();
  const ArchSpec a = scenario_arch(sc.arch);
  const ModelConfig m = scenario_model(sc.model, sc.loc);
  RunOptions ro = decode_options(sc, 1, fs.context);
  ro.dtype = fs.dtype.value_or(m.dtype);
  ro.check_memory = false;
  ro.phase.ffn_active = c.active;
  ro.phase.predictor_rank = fs.sparsity.predictor_rank;
  const RunReport r = run_model(m, a, ro, &cache);
  ScheduleOptions so;
  so.tiles = sc.tiles;
  Schedule base = build_schedule(r, a, so);
  Schedule cont = base;
  const int flash = cont.resource(c.flash_tier);
  const int dram = cont.resource(storage_path(a, 0)[0]);
  // One transaction per round of parallel reads: `threads` requests at the table's bandwidth.
  cont.background.push_back(
      BackgroundTransfer{"flash reads", 0, all.flash_bytes, {flash, dram}, {0, 1}, all.request * static_cast<double>(fs.threads), all.throughput});
  const Resource& dr = cont.resources[static_cast<size_t>(dram)];
  const double serial = all.io + all.compute;
  const double overlapped = std::max(all.io, all.compute + all.flash_bytes / dr.write_bandwidth);
  Prepared p;
  p.schedules = {base, cont};
  p.report = [=](const std::vector<EngineResult>& e) {
    ContentionReport rep;
    rep.title = fmt::format("{} on {}: each token's new FFN neurons ({}, {} reads at {:.3g} GB/s) stream from flash while the token computes",
                            c.model, c.host, fmt_bytes(all.flash_bytes), fmt_bytes(all.request), all.throughput / 1e9);
    const double token = std::max(e[1].total, e[1].background_done[0]);
    rep.figures.push_back({"compute alone", "ms", e[0].total * 1e3, r.step_time * 1e3, "analytical step"});
    rep.figures.push_back({"flash reads", "ms", e[1].background_done[0] * 1e3, all.io * 1e3, "bytes / read bandwidth at the request size"});
    rep.figures.push_back({"token, loads overlapping compute", "ms", token * 1e3, overlapped * 1e3,
                           "max(I/O, compute + the loads' DRAM writes)"});
    rep.figures.push_back({"token, loads then compute (the paper's sum, not simulated)", "ms", serial * 1e3, serial * 1e3, "I/O + compute, as analyze flash adds them"});
    rep.effect = fmt::format("overlapping the loads with compute saves {:.1f}% of the token ({:.4g} ms of {:.4g} ms): the flash reads bound it",
                             100 * (1 - token / serial), (serial - token) * 1e3, serial * 1e3);
    return rep;
  };
  return p;
}

// --- offload ---------------------------------------------------------------------------------
Prepared offload(const ContentionScenario& sc, MapCache& cache) {
  const ArchSpec ac = scenario_arch(sc.compute), am = scenario_arch(sc.memory);
  const ModelConfig m = scenario_model(sc.model, sc.loc);
  for (const ArchSpec* a : {&ac, &am})
    if (!network_link(*a)) throw UserError(a->loc, fmt::format("'{}' has no network link (a link with to = \"network\") to join the pools", a->name));
  RunOptions ro = decode_options(sc, sc.batch, sc.context, sc.compute_devices);
  ro.check_memory = false;
  const RunReport rc = run_model(m, ac, ro, &cache);
  ro.tp = sc.memory_devices;
  const RunReport rm = run_model(m, am, ro, &cache);
  if (rc.blocks.size() != rm.blocks.size()) throw InternalError("the two pools group the step into different blocks");
  ScheduleOptions so;
  so.tiles = sc.tiles;
  so.device = "compute";
  Schedule sched = build_schedule(rc, ac, so);
  so.device = "memory";
  const Schedule sm = build_schedule(rm, am, so);
  const int off = sched.merge_resources(sm);
  const double link_bw = std::min(static_cast<double>(sc.compute_devices) * network_link(ac)->bandwidth, static_cast<double>(sc.memory_devices) * network_link(am)->bandwidth);
  sched.resources.push_back(Resource{"system.network.link", "link", "network", ResourceKind::Link, link_bw, link_bw, 0});
  const int netres = static_cast<int>(sched.resources.size()) - 1;
  for (size_t k = 1; k < static_cast<size_t>(sc.batches); ++k)
    sched.resources.push_back(Resource{fmt::format("system.compute.dma{}", k), fmt::format("dma{}", k), "compute", ResourceKind::Dma, 0, 0, 0});

  // The chain of one batch, layer by layer: the compute pool's blocks, q/k/v over the
  // network, attention on the memory pool, its output back.
  const int64_t L = m.num_hidden_layers;
  const double e = dtype_bytes(m.dtype), d = static_cast<double>(m.hidden_size), G = static_cast<double>(m.group()), B = static_cast<double>(sc.batch);
  auto transfer = [&](const std::string& name, double bytes) {
    ScheduleBlock x;
    x.name = name;
    x.tiles = 4;
    x.loads.push_back(StageWork{netres, bytes / 4, 0, 0});
    return x;
  };
  auto remap = [&](ScheduleBlock b) {
    for (StageWork& w : b.loads) w.resource += off;
    for (StageWork& w : b.compute) w.resource += off;
    return b;
  };
  std::vector<ScheduleBlock> chain, pre, post;
  size_t first_layer = rc.blocks.size(), last_layer = 0;
  for (size_t i = 0; i < rc.blocks.size(); ++i)
    if (sched.blocks[i].instances == L) first_layer = std::min(first_layer, i), last_layer = std::max(last_layer, i);
  double mtime = rc.allreduce_time, atime = 0;
  for (size_t i = 0; i < rc.blocks.size(); ++i) {
    if (block_is_attention(rm, rm.blocks[i])) atime += rm.blocks[i].time;
    else mtime += rc.blocks[i].time;
  }
  for (size_t i = 0; i < first_layer && i < rc.blocks.size(); ++i) chain.push_back(sched.blocks[i]);
  for (int64_t l = 0; l < L; ++l) {
    bool in_attention = false;
    for (size_t i = first_layer; i <= last_layer && i < rc.blocks.size(); ++i) {
      const bool attn = block_is_attention(rm, rm.blocks[i]);
      if (attn && !in_attention) chain.push_back(transfer(fmt::format("q, k, v to the memory pool (layer {})", l), (1 + 2 / G) * e * d * B));
      if (!attn && in_attention) chain.push_back(transfer(fmt::format("attention output back (layer {})", l), e * d * B));
      in_attention = attn;
      ScheduleBlock b = attn ? remap(sm.blocks[i]) : sched.blocks[i];
      b.instances = 1;  // this layer's instance
      chain.push_back(std::move(b));
    }
  }
  for (size_t i = last_layer + 1; i < rc.blocks.size(); ++i) chain.push_back(sched.blocks[i]);
  if (rc.allreduce_time > 0) {
    ScheduleBlock ar;
    ar.name = "all-reduces";
    ar.tiles = 1;
    ar.fill = rc.allreduce_time;
    // NCCL's all-reduce kernels occupy the compute pool's SMs: the block holds its arrays.
    ar.compute.push_back(StageWork{sched.resource(ac.arrays.front().name, "compute"), 0, 0, 0});
    chain.push_back(ar);
  }
  const double net_time = (2 + 2 / G) * e * d * B * static_cast<double>(L) / link_bw;
  Schedule single = sched;
  single.blocks = chain;
  single.tail = 0;
  Schedule piped = single;
  // Staggered: batch k starts k layer-segments of compute later, so that one batch computes
  // while another is in attention (Lamina's staggered pipelining).
  for (int64_t k = 1; k < sc.batches; ++k)
    piped.streams.push_back(Stream{fmt::format("batch {}", k + 1), chain, static_cast<double>(k) * mtime / static_cast<double>(L)});
  Prepared p;
  p.schedules = {single, piped};
  p.report = [=](const std::vector<EngineResult>& res) {
    ContentionReport rep;
    rep.title = fmt::format("{}: weights on {} x {}, KV cache and attention on {} x {}, {:.4g} GB/s between them; batch {} at context {}", m.name,
                            sc.compute_devices, ac.name, sc.memory_devices, am.name, link_bw / 1e9, sc.batch, sc.context);
    double end = res[1].total;
    for (double t : res[1].stream_done) end = std::max(end, t);
    const double one = B / res[0].total, many = static_cast<double>(sc.batches) * B / end;
    rep.figures.push_back({"one batch: tokens/s", "tokens/s", one, B / (mtime + atime + net_time), "B / (MTIME + ATIME + network), nothing overlaps"});
    rep.figures.push_back({fmt::format("{} batches in flight: tokens/s", sc.batches), "tokens/s", many,
                           std::min({B / mtime, B / atime, B / net_time}),  // one compute replica is simulated
                           "Lamina, one compute replica: min(B / MTIME, B / ATIME, B / network)"});
    rep.figures.push_back({"network busy per step", "ms", res[0].busy[static_cast<size_t>(netres)] * 1e3, net_time * 1e3, "(2 + 2/G) e d B L / link"});
    rep.effect = fmt::format("staggering {} batches lifts throughput {:.2f}x over one batch at a time (MTIME {:.4g} ms, ATIME {:.4g} ms)", sc.batches,
                             many / one, mtime * 1e3, atime * 1e3);
    return rep;
  };
  return p;
}

}  // namespace

std::vector<ContentionReport> simulate_contention(const std::vector<ContentionScenario>& scenarios, const EngineOptions& o,
                                                  std::vector<std::string>* traces) {
  MapCache cache;
  std::vector<Prepared> prepared;
  std::vector<Schedule> all;
  for (const ContentionScenario& s : scenarios) {
    if (s.kind == "kv-host") prepared.push_back(kv_host(s, cache));
    else if (s.kind == "context-switch") prepared.push_back(context_switch(s, cache));
    else if (s.kind == "flash-stream") prepared.push_back(flash_stream(s, cache));
    else prepared.push_back(offload(s, cache));
    all.insert(all.end(), prepared.back().schedules.begin(), prepared.back().schedules.end());
  }
  const std::vector<EngineResult> res = simulate_systemc(all, o);
  std::vector<ContentionReport> out;
  size_t at = 0;
  for (size_t i = 0; i < prepared.size(); ++i) {
    const size_t n = prepared[i].schedules.size();
    const std::vector<EngineResult> mine(res.begin() + static_cast<long>(at), res.begin() + static_cast<long>(at + n));
    out.push_back(prepared[i].report(mine));
    out.back().scenario = scenarios[i];
    for (const EngineResult& e : mine) out.back().transactions += e.transactions;
    if (traces) traces->push_back(chrome_trace(prepared[i].schedules.back(), mine.back()));
    at += n;
  }
  return out;
}

std::string format_contention(const ContentionReport& r, Format f) {
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "simulate-contention";
    j["case"] = r.scenario.kind;
    j["title"] = r.title;
    j["effect"] = r.effect;
    j["transactions"] = r.transactions;
    j["figures"] = nlohmann::json::array();
    for (const ContentionFigure& x : r.figures)
      j["figures"].push_back({{"name", x.name}, {"unit", x.unit}, {"engine", x.engine}, {"hand", x.hand}, {"how", x.how}});
    return j.dump(2) + "\n";
  }
  TextTable t({"figure", "SystemC engine", "hand calculation", "difference", "hand calculation is"});
  for (const ContentionFigure& x : r.figures)
    t.row({x.name, fmt::format("{:.4g} {}", x.engine, x.unit), fmt::format("{:.4g} {}", x.hand, x.unit),
           x.hand != 0 ? fmt::format("{:+.2f}%", 100 * (x.engine / x.hand - 1)) : "-", x.how});
  if (f == Format::Csv) return t.csv();
  return fmt::format("{} ({})\n\n{}\neffect: {}\nengine: SystemC/TLM-2.0, {} tiles per block instance, {} transactions\n", r.title, r.scenario.kind,
                     t.aligned(), r.effect, r.scenario.tiles, r.transactions);
}

}  // namespace einsim
