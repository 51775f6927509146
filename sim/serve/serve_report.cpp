#include "sim/serve/serve_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "sim/report/plot.h"
#include "sim/report/table.h"

namespace einsim {

namespace {

Percentiles stats(const std::vector<double>& v) {
  Percentiles p;
  if (v.empty()) return p;
  p.p50 = percentile(v, 50);
  p.p90 = percentile(v, 90);
  p.p99 = percentile(v, 99);
  double s = 0;
  for (double x : v) s += x;
  p.mean = s / static_cast<double>(v.size());
  return p;
}

double attainment(const ServeResult& r, const ServeConfig& c) {
  int64_t ok = 0;
  for (const RequestOutcome& o : r.requests)
    if (o.ttft() <= c.ttft_slo && o.tpot() <= c.tpot_slo) ++ok;
  return r.requests.empty() ? 0 : static_cast<double>(ok) / static_cast<double>(r.requests.size());
}

std::string_view batching_name(Batching b) { return b == Batching::Chunked ? "chunked prefill" : "prefill first"; }
std::string_view routing_name(Routing r) { return r == Routing::RoundRobin ? "round-robin" : r == Routing::CacheAware ? "cache-aware" : "least-loaded"; }
std::string_view policy_name(OffloadPolicy p) { return p == OffloadPolicy::Evicted ? "evicted" : p == OffloadPolicy::Both ? "both" : "preempted"; }
nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

}  // namespace

ServeSummary summarize(const Trace& t, const ServeResult& r, const ServeConfig& c, const std::string& model, const std::string& arch,
                       int64_t step_runs) {
  ServeSummary s;
  s.model = model;
  s.arch = arch;
  s.trace = t.name;
  s.config = c;
  s.requests = static_cast<int64_t>(r.requests.size());
  s.iterations = r.iterations;
  s.preemptions = r.preemptions;
  s.swaps = r.swaps;
  s.swap_peak = r.swap_peak;
  s.step_runs = step_runs;
  s.kv_blocks = r.kv_blocks;
  s.makespan = r.makespan;
  s.tokens_per_s = r.makespan > 0 ? r.tokens_generated / r.makespan : 0;
  s.requests_per_s = r.makespan > 0 ? static_cast<double>(s.requests) / r.makespan : 0;
  s.slo_attainment = attainment(r, c);
  s.goodput = s.requests_per_s * s.slo_attainment;
  std::vector<double> ttft, tpot, e2e, queue;
  for (const RequestOutcome& o : r.requests) {
    ttft.push_back(o.ttft());
    if (o.output > 1) tpot.push_back(o.tpot());
    e2e.push_back(o.e2e());
    queue.push_back(o.admitted - o.arrival);
  }
  s.ttft = stats(ttft);
  s.tpot = stats(tpot);
  s.e2e = stats(e2e);
  s.queueing = stats(queue);
  s.kv_mean = r.busy_time > 0 ? r.kv_area / r.busy_time : 0;
  s.kv_peak = r.kv_peak;
  const PowerTimeline& pt = r.power;
  const size_t bins = pt.bins();
  double devices = 0;
  for (size_t k = 0; k < pt.energy.size(); ++k) devices += static_cast<double>(pt.devices_of(k));
  // A server: instances_per_server instances (a pool's instance each when disaggregated).
  const size_t per_server = c.disagg.on() ? 1 : static_cast<size_t>(c.instances_per_server * c.pp);
  for (size_t b = 0; b < bins; ++b)
    for (size_t k = 0; k < pt.energy.size(); k += per_server) {
      double server = 0;
      for (size_t j = k; j < k + per_server; ++j) {
        const double w = pt.device_power(j, b);
        s.gpu_power_peak = std::max(s.gpu_power_peak, w);
        server += w * static_cast<double>(pt.devices_of(j));
      }
      s.server_power_peak = std::max(s.server_power_peak, server);
    }
  const double span = r.makespan + (r.requests.empty() ? 0 : r.requests.front().arrival - pt.start);
  s.energy = r.energy;
  s.gpu_power_mean = span > 0 && devices > 0 ? r.energy / span / devices : 0;
  s.energy_per_token = r.tokens_generated > 0 ? r.energy / r.tokens_generated : 0;
  s.power_bin = pt.bin;
  s.prefill_kv_blocks = r.prefill_kv_blocks;
  s.prefix_hit_rate = r.prompt_tokens > 0 ? r.cached_tokens / r.prompt_tokens : 0;
  s.offload_hit_rate = r.prompt_tokens > 0 ? r.offload_hit_tokens / r.prompt_tokens : 0;
  s.evicted_blocks = r.evicted_blocks;
  s.offloaded_blocks = r.offloaded_blocks;
  s.tokens_per_verify = r.verify_steps > 0 ? r.verified_tokens / static_cast<double>(r.verify_steps) : 0;
  s.transfers = r.transfers;
  s.transfer_bytes = r.transfer_bytes;
  s.transfer_time_mean = r.transfers > 0 ? r.transfer_time / static_cast<double>(r.transfers) : 0;
  s.transfer_wait_mean = r.transfers > 0 ? r.transfer_wait / static_cast<double>(r.transfers) : 0;
  return s;
}

ServeSummary summarize(const Trace& t, const ServeResult& r, const ServeRig& rig, const ServeConfig& c) {
  const Deployment& d = rig.deployment();
  ServeSummary s = summarize(t, r, c, d.model.name, d.arch.name, rig.step_runs());
  s.prefill_arch = d.prefill_arch ? d.prefill_arch->name : d.arch.name;
  s.prefill_tp = d.prefill_tp > 0 ? d.prefill_tp : c.tp;
  s.draft = c.spec.on() ? (d.draft ? d.draft->name : d.model.name + " MTP head") : "";
  s.cost_rate = rig.rate(c);
  s.devices = rig.devices(c);
  s.cost_per_mtok = std::isfinite(s.cost_rate) && s.tokens_per_s > 0 ? s.cost_rate / s.tokens_per_s * 1e6 : std::numeric_limits<double>::quiet_NaN();
  return s;
}

std::string format_serve(const ServeSummary& s, Format f) {
  const ServeConfig& c = s.config;
  if (f == Format::Json) {
    auto pj = [](const Percentiles& p) { return nlohmann::json{{"p50_s", p.p50}, {"p90_s", p.p90}, {"p99_s", p.p99}, {"mean_s", p.mean}}; };
    nlohmann::json j = {{"kind", "serve"},
                        {"model", s.model},
                        {"arch", s.arch},
                        {"trace", s.trace},
                        {"deployment", {{"servers", c.servers}, {"instances_per_server", c.instances_per_server}, {"tp", c.tp}, {"ep", c.ep}, {"pp", c.pp},
                                        {"batching", batching_name(c.batching)}, {"token_budget", c.token_budget}, {"max_batch", c.max_batch},
                                        {"preemption", c.preemption == Preemption::Swap ? "swap" : "recompute"},
                                        {"routing", routing_name(c.routing)}}},
                        {"slo", {{"ttft_s", c.ttft_slo}, {"tpot_s", c.tpot_slo}}},
                        {"requests", s.requests},
                        {"makespan_s", s.makespan},
                        {"tokens_per_s", s.tokens_per_s},
                        {"requests_per_s", s.requests_per_s},
                        {"slo_attainment", s.slo_attainment},
                        {"goodput_requests_per_s", s.goodput},
                        {"ttft", pj(s.ttft)},
                        {"tpot", pj(s.tpot)},
                        {"e2e", pj(s.e2e)},
                        {"queueing", pj(s.queueing)},
                        {"kv", {{"pages_per_instance", s.kv_blocks}, {"mean_used", s.kv_mean}, {"peak_used", s.kv_peak}}},
                        {"power", {{"gpu_mean_w", s.gpu_power_mean}, {"gpu_peak_w", s.gpu_power_peak}, {"server_peak_w", s.server_power_peak},
                                   {"bin_s", s.power_bin}, {"energy_j", s.energy}, {"energy_per_token_j", s.energy_per_token}}},
                        {"iterations", s.iterations},
                        {"preemptions", s.preemptions},
                        {"swap", {{"tier", c.swap_tier.empty() ? "host" : c.swap_tier}, {"swaps", s.swaps}, {"peak_bytes_per_device", s.swap_peak},
                                  {"capacity_bytes_per_device", c.swap_capacity}, {"bandwidth", c.swap_bandwidth}}},
                        {"step_time_runs", s.step_runs},
                        {"devices", s.devices},
                        {"cost_per_mtok", number_or_null(s.cost_per_mtok)}};
    if (c.disagg.on())
      j["disaggregated"] = {{"prefill_instances", c.disagg.prefill}, {"decode_instances", c.disagg.decode}, {"prefill_arch", s.prefill_arch},
                            {"prefill_tp", s.prefill_tp}, {"prefill_pages_per_instance", s.prefill_kv_blocks},
                            {"link_bandwidth_per_device", number_or_null(c.disagg.bandwidth)}, {"link_latency_s", c.disagg.latency},
                            {"layerwise", c.disagg.layerwise}, {"transfers", s.transfers}, {"transfer_bytes", s.transfer_bytes},
                            {"transfer_time_mean_s", s.transfer_time_mean}, {"transfer_wait_mean_s", s.transfer_wait_mean}};
    if (c.prefix_caching)
      j["prefix_cache"] = {{"hit_rate", s.prefix_hit_rate}, {"offload_hit_rate", s.offload_hit_rate}, {"evicted_blocks", s.evicted_blocks},
                           {"offloaded_blocks", s.offloaded_blocks}, {"offload_policy", policy_name(c.offload_policy)}};
    if (c.spec.on())
      j["speculation"] = {{"draft", s.draft}, {"k", c.spec.k}, {"acceptance", c.spec.acceptance}, {"expected_tokens_per_step", c.spec.tokens_per_step()},
                          {"tokens_per_verify", s.tokens_per_verify}};
    return j.dump(2) + "\n";
  }
  TextTable t({"metric", "p50", "p90", "p99", "mean"});
  auto row = [&](const char* name, const Percentiles& p) {
    auto ms = [](double x) { return fmt::format("{:.4g} ms", x * 1e3); };
    t.row({name, ms(p.p50), ms(p.p90), ms(p.p99), ms(p.mean)});
  };
  row("TTFT", s.ttft);
  row("TPOT", s.tpot);
  row("end to end", s.e2e);
  row("queueing", s.queueing);
  if (f == Format::Csv) return t.csv();
  const std::string where =
      c.disagg.on()
          ? fmt::format("{} prefill instance{} x {} {} (TP {}) + {} decode instance{} x {} {} (TP {})", c.disagg.prefill, c.disagg.prefill == 1 ? "" : "s",
                        s.prefill_tp, s.prefill_arch, s.prefill_tp, c.disagg.decode, c.disagg.decode == 1 ? "" : "s", c.devices(), s.arch, c.tp)
          : fmt::format("{} server{} x {} instance{} x {} {} ({})", c.servers, c.servers == 1 ? "" : "s", c.instances_per_server,
                        c.instances_per_server == 1 ? "" : "s", c.devices(), s.arch,
                        (c.ep > 1 ? fmt::format("EP {}: experts split {} ways, TP {} x {} data-parallel groups", c.ep, c.ep, c.tp, c.ep / c.tp)
                                  : fmt::format("TP {}", c.tp)) +
                            (c.pp > 1 ? fmt::format(", PP {}: {} stages, {} batches in flight", c.pp, c.pp, c.pp) : ""));
  std::string out = fmt::format(
      "{} on {}; {}, token budget {}, at most {} running; preemption by {}; {} routing\n"
      "trace {}: {} requests over {:.4g} s\n\n",
      s.model, where, batching_name(c.batching), c.token_budget, c.max_batch, c.preemption == Preemption::Swap ? "swap" : "recompute",
      routing_name(c.routing), s.trace, s.requests, s.makespan);
  out += t.aligned();
  out += fmt::format("\nthroughput: {:.4g} tokens/s, {:.4g} requests/s\n", s.tokens_per_s, s.requests_per_s);
  out += fmt::format("goodput: {:.4g} requests/s ({:.1f}% meet TTFT <= {:.4g} s and TPOT <= {:.4g} s)\n", s.goodput, 100 * s.slo_attainment, c.ttft_slo,
                     c.tpot_slo);
  out += fmt::format("KV cache: {} pages of {} tokens per {}; {:.1f}% used on average while busy, {:.1f}% at peak; {} preemptions\n", s.kv_blocks,
                     c.block, c.pp > 1 ? fmt::format("lane ({} lanes per instance, one per stage)", c.pp) : "instance", 100 * s.kv_mean, 100 * s.kv_peak,
                     s.preemptions);
  if (c.preemption == Preemption::Swap)
    out += fmt::format("KV swap to {}{}: {} of the preemptions swapped out, {} per device at peak{}\n", c.swap_tier.empty() ? "host memory" : c.swap_tier,
                       c.swap_bandwidth > 0 ? fmt::format(" at {} per device", format_quantity(c.swap_bandwidth, Dim::Bandwidth)) : "", s.swaps,
                       fmt_bytes(s.swap_peak), c.swap_capacity > 0 ? fmt::format(" of {} (past it, preempted requests recompute)", fmt_bytes(c.swap_capacity)) : "");
  out += fmt::format("power per GPU: {:.0f} W mean, {:.0f} W peak ({:.3g} s bins); {:.0f} W peak per server; {:.4g} MJ, {:.3g} J per token{}\n",
                     s.gpu_power_mean, s.gpu_power_peak, s.power_bin, s.server_power_peak, s.energy / 1e6, s.energy_per_token,
                     (c.operating.lock > 0 ? fmt::format("; clock locked at {:.3g} GHz", c.operating.lock / 1e9) : "") +
                         (c.operating.cap > 0 ? fmt::format("; capped at {:.0f} W", c.operating.cap) : ""));
  if (c.prefix_caching)
    out += fmt::format("prefix cache: {:.1f}% of prompt tokens found cached{}; {} blocks evicted{}\n", 100 * s.prefix_hit_rate,
                       s.offload_hit_rate > 0 ? fmt::format(" ({:.1f}% loaded back from {})", 100 * s.offload_hit_rate, c.swap_tier.empty() ? "host memory" : c.swap_tier) : "",
                       s.evicted_blocks, c.offload_policy != OffloadPolicy::Preempted ? fmt::format(", {} kept on the offload tier", s.offloaded_blocks) : "");
  if (c.spec.on())
    out += fmt::format("speculative decoding: {} drafts {} tokens per step at {:.3g} acceptance; {:.3g} tokens per verify step ({:.3g} expected)\n", s.draft,
                       c.spec.k, c.spec.acceptance, s.tokens_per_verify, c.spec.tokens_per_step());
  if (c.disagg.on())
    out += fmt::format("KV transfers: {} over {} per device{}, {:.4g} GB in all; {:.4g} ms each on average, {:.4g} ms waiting for a decode instance or the link{}\n",
                       s.transfers, std::isinf(c.disagg.bandwidth) ? "an unlimited link" : format_quantity(c.disagg.bandwidth, Dim::Bandwidth),
                       c.disagg.latency > 0 ? fmt::format(" + {:.3g} us", c.disagg.latency * 1e6) : "", s.transfer_bytes / 1e9, s.transfer_time_mean * 1e3,
                       s.transfer_wait_mean * 1e3, c.disagg.layerwise ? "; streamed layer by layer" : "");
  if (s.devices > 0)
    out += fmt::format("cost: {} devices, {}\n", s.devices,
                       std::isfinite(s.cost_per_mtok) ? fmt::format("${:.4g} per million tokens", s.cost_per_mtok) : "no rental rate for the arch");
  out += fmt::format("{} iterations, step times from {} einsim runs\n", s.iterations, s.step_runs);
  return out;
}

std::string timeline_csv(const ServeResult& r) {
  std::string out = "time_s,instance,duration_s,iterations,running,waiting,prefill_tokens,decode,kv_used\n";
  for (const InstanceSample& x : r.samples)
    out += fmt::format("{:.6f},{},{:.6g},{},{},{},{},{},{:.4f}\n", x.time, x.instance, x.duration, x.iterations, x.running, x.waiting, x.prefill_tokens,
                       x.decode, x.kv_used);
  return out;
}

std::string power_csv(const ServeResult& r, const ServeConfig& c) {
  const PowerTimeline& pt = r.power;
  std::string out = "time_s,server,gpu,power_w,clock_ghz\n";
  const auto per_server = c.disagg.on() ? size_t{1} : static_cast<size_t>(c.instances_per_server * c.pp);  // a pool's instance per server
  for (size_t b = 0; b < pt.bins(); ++b)
    for (size_t k = 0; k < pt.energy.size(); ++k) {
      const auto tp = static_cast<size_t>(pt.devices_of(k));
      const double w = pt.device_power(k, b), ghz = pt.device_clock(k, b) / 1e9;
      for (size_t g = 0; g < tp; ++g)
        out += fmt::format("{:.6g},{},{},{:.2f},{:.4g}\n", pt.start + static_cast<double>(b) * pt.bin, k / per_server, (k % per_server) * tp + g, w, ghz);
    }
  return out;
}

std::string plot_serve_svg(const ServeResult& r, const ServeSummary& s) {
  std::vector<PlotPanel> panels(1);
  PlotPanel& cdf = panels[0];
  cdf.title = "Latency distribution (dashed: SLO)";
  cdf.xlabel = "ms";
  cdf.ylabel = "share of requests at or below";
  auto series = [&](const char* name, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    PlotSeries x{name, {}, false, name};
    const size_t step = std::max<size_t>(1, v.size() / 400);
    for (size_t i = 0; i < v.size(); i += step) x.points.emplace_back(std::max(v[i] * 1e3, 1e-3), static_cast<double>(i + 1) / static_cast<double>(v.size()));
    if (!v.empty()) x.points.emplace_back(std::max(v.back() * 1e3, 1e-3), 1.0);
    cdf.series.push_back(std::move(x));
  };
  std::vector<double> ttft, tpot, e2e;
  for (const RequestOutcome& o : r.requests) {
    ttft.push_back(o.ttft());
    if (o.output > 1) tpot.push_back(o.tpot());
    e2e.push_back(o.e2e());
  }
  series("TTFT", ttft);
  series("TPOT", tpot);
  series("end to end", e2e);
  cdf.series.push_back(PlotSeries{"TTFT SLO", {{s.config.ttft_slo * 1e3, 0.0}, {s.config.ttft_slo * 1e3, 1.0}}, true, "TTFT"});
  cdf.series.push_back(PlotSeries{"TPOT SLO", {{s.config.tpot_slo * 1e3, 0.0}, {s.config.tpot_slo * 1e3, 1.0}}, true, "TPOT"});
  if (!r.samples.empty()) {
    // Totals over instances, each instance's state held from one of its samples to the next.
    std::vector<InstanceSample> v = r.samples;
    std::sort(v.begin(), v.end(), [](const InstanceSample& a, const InstanceSample& b) { return a.time < b.time; });
    std::map<int, InstanceSample> last;
    PlotSeries run{"running", {}, false, "running"}, wait{"waiting", {}, false, "waiting"}, kv{"KV pages in use (%)", {}, false, "KV"};
    const size_t step = std::max<size_t>(1, v.size() / 2000);
    for (size_t i = 0; i < v.size(); ++i) {
      last[v[i].instance] = v[i];
      if (i % step) continue;
      double running = 0, waiting = 0, used = 0;
      for (const auto& [k, x] : last) running += static_cast<double>(x.running), waiting += static_cast<double>(x.waiting), used += x.kv_used;
      run.points.emplace_back(v[i].time, running);
      wait.points.emplace_back(v[i].time, waiting);
      kv.points.emplace_back(v[i].time, 100 * used / static_cast<double>(last.size()));
    }
    PlotPanel load;
    load.title = "Requests over time (all instances)";
    load.xlabel = "s";
    load.ylabel = "requests";
    load.log_x = false;
    load.series = {run, wait};
    PlotPanel mem;
    mem.title = "KV cache in use (mean over instances)";
    mem.xlabel = "s";
    mem.ylabel = "%";
    mem.log_x = false;
    mem.series = {kv};
    panels.push_back(std::move(load));
    panels.push_back(std::move(mem));
  }
  const PowerTimeline& pt = r.power;
  if (pt.bins() > 0) {
    PlotSeries mean{"mean over GPUs", {}, false, "mean"}, high{"highest GPU", {}, false, "highest"};
    const size_t step = std::max<size_t>(1, pt.bins() / 2000);
    for (size_t b = 0; b < pt.bins(); b += step) {
      double sum = 0, top = 0;
      for (size_t k = 0; k < pt.energy.size(); ++k) {
        const double w = pt.device_power(k, b);
        sum += w;
        top = std::max(top, w);
      }
      const double t = pt.start + (static_cast<double>(b) + 0.5) * pt.bin;
      mean.points.emplace_back(t, sum / static_cast<double>(pt.energy.size()));
      high.points.emplace_back(t, top);
    }
    PlotPanel power;
    power.title = fmt::format("GPU power ({:.3g} s bins; dashed: TDP)", pt.bin);
    power.xlabel = "s";
    power.ylabel = "W";
    power.log_x = false;
    power.series = {mean, high};
    if (pt.power.tdp > 0 && !mean.points.empty())
      power.series.push_back(PlotSeries{"TDP", {{mean.points.front().first, pt.power.tdp}, {mean.points.back().first, pt.power.tdp}}, true, "TDP"});
    panels.push_back(std::move(power));
  }
  return svg_plot(panels, {fmt::format("{} on {}; {} requests; goodput {:.4g} requests/s ({:.1f}% within SLOs)", s.model, s.arch, s.requests,
                                       s.goodput, 100 * s.slo_attainment)});
}

std::string perfetto_json(const Trace& t, const ServeResult& r, const ServeConfig& c, const PerfettoOptions& o) {
  using nlohmann::json;
  json ev = json::array();
  auto us = [](double s) { return s * 1e6; };
  const bool dis = c.disagg.on();
  // The iterations in time order; the window closes at the one past the budget.
  std::vector<const InstanceSample*> its;
  for (const InstanceSample& x : r.samples) its.push_back(&x);
  std::stable_sort(its.begin(), its.end(), [](const InstanceSample* a, const InstanceSample* b) { return a->time - a->duration < b->time - b->duration; });
  double to = o.to;
  int64_t kept = 0;
  for (const InstanceSample* x : its)
    if (x->time >= o.from && x->time - x->duration <= to && ++kept > o.max_iterations) {
      to = x->time - x->duration;
      break;
    }
  auto inside = [&](double a, double b) { return b >= o.from && a < to; };
  // Process 1: the instances, a thread each; process 2: the requests.
  ev.push_back({{"ph", "M"}, {"pid", 1}, {"name", "process_name"}, {"args", {{"name", "instances"}}}});
  ev.push_back({{"ph", "M"}, {"pid", 2}, {"name", "process_name"}, {"args", {{"name", "requests"}}}});
  for (int k = 0; k < r.instances; ++k) {
    const std::string name = dis ? fmt::format("{} {}", k < c.disagg.prefill ? "prefill" : "decode", k < c.disagg.prefill ? k : k - c.disagg.prefill)
                                 : fmt::format("instance {}", k);
    ev.push_back({{"ph", "M"}, {"pid", 1}, {"tid", k}, {"name", "thread_name"}, {"args", {{"name", name}}}});
  }
  for (const InstanceSample* xp : its) {
    const InstanceSample& x = *xp;
    const double b = x.time - x.duration;
    if (!inside(b, x.time)) continue;
    const std::string name = x.prefill_tokens > 0 ? (x.decode > 0 ? "mixed" : "prefill") : x.iterations > 1 ? fmt::format("decode x{}", x.iterations) : "decode";
    ev.push_back({{"ph", "X"}, {"pid", 1}, {"tid", x.instance}, {"name", name}, {"ts", us(b)}, {"dur", us(x.duration)},
                  {"args", {{"prefill_tokens", x.prefill_tokens}, {"decodes", x.decode}, {"iterations", x.iterations}, {"running", x.running},
                            {"waiting", x.waiting}, {"kv_used", x.kv_used}}}});
    const std::string track = fmt::format("instance {}", x.instance);
    ev.push_back({{"ph", "C"}, {"pid", 1}, {"name", track + " batch"}, {"ts", us(b)}, {"args", {{"running", x.running}, {"waiting", x.waiting}}}});
    ev.push_back({{"ph", "C"}, {"pid", 1}, {"name", track + " KV used %"}, {"ts", us(b)}, {"args", {{"kv", 100 * x.kv_used}}}});
    ev.push_back({{"ph", "C"}, {"pid", 1}, {"name", track + " power W"}, {"ts", us(b)}, {"args", {{"per_device", x.power}}}});
  }
  // Requests: evenly sampled among those inside the window.
  std::vector<size_t> keep;
  for (size_t i = 0; i < r.requests.size(); ++i)
    if (inside(r.requests[i].arrival, r.requests[i].finish)) keep.push_back(i);
  const size_t n = std::min(keep.size(), static_cast<size_t>(std::max<int64_t>(0, o.max_requests)));
  for (size_t j = 0; j < n; ++j) {
    const RequestOutcome& q = r.requests[keep[j * keep.size() / n]];
    auto slice = [&](const char* name, double a, double b) {
      if (!(b > a)) return;
      const json args = {{"prompt", q.prompt}, {"output", q.output}, {"cached", q.cached}, {"preemptions", q.preemptions}};
      ev.push_back({{"ph", "b"}, {"cat", "request"}, {"pid", 2}, {"id", q.id}, {"name", name}, {"ts", us(a)}, {"args", args}});
      ev.push_back({{"ph", "e"}, {"cat", "request"}, {"pid", 2}, {"id", q.id}, {"name", name}, {"ts", us(b)}});
    };
    slice("queued", q.arrival, q.admitted);
    slice("prefill", q.admitted, q.first_token);
    if (q.transfer_start >= 0) {
      slice("waiting for decode", q.first_token, q.transfer_start);
      slice("transfer", q.transfer_start, q.transfer_end);
      slice("decode", q.transfer_end, q.finish);
    } else {
      slice("decode", q.first_token, q.finish);
    }
  }
  json out = {{"traceEvents", ev}, {"displayTimeUnit", "ms"}, {"otherData", {{"trace", t.name}, {"requests", r.requests.size()}, {"requests_shown", n}, {"window_from_s", o.from},
                                {"window_to_s", std::isfinite(to) ? json(to) : json(nullptr)}}}};
  return out.dump() + "\n";
}

CapacityPlan plan_capacity(const Trace& t, ServeConfig c, const ServeRig& rig, double target, int64_t limit) {
  CapacityPlan plan;
  auto meets = [&](int64_t n) {
    c.servers = n;
    const double att = attainment(rig.run(t, c), c);
    plan.tried.emplace_back(n, att);
    return att >= target;
  };
  int64_t lo = 0, hi = 1;  // lo fails (or is 0), hi is being tried
  while (hi <= limit && !meets(hi)) lo = hi, hi *= 2;
  if (hi > limit) {
    if (lo < limit && meets(limit)) hi = limit;
    else return plan;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (meets(mid) ? hi : lo) = mid;
  }
  plan.servers = hi;
  std::sort(plan.tried.begin(), plan.tried.end());
  return plan;
}

}  // namespace einsim
