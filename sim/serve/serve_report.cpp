#include "sim/serve/serve_report.h"

#include <fmt/format.h>

#include <algorithm>
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
  const auto devices = static_cast<double>(pt.energy.size() * static_cast<size_t>(pt.devices_per_instance));
  const size_t per_server = static_cast<size_t>(c.instances_per_server * c.pp);
  for (size_t b = 0; b < bins; ++b)
    for (size_t k = 0; k < pt.energy.size(); k += per_server) {
      double server = 0;
      for (size_t j = k; j < k + per_server; ++j) {
        const double w = pt.device_power(j, b);
        s.gpu_power_peak = std::max(s.gpu_power_peak, w);
        server += w * static_cast<double>(pt.devices_per_instance);
      }
      s.server_power_peak = std::max(s.server_power_peak, server);
    }
  const double span = r.makespan + (r.requests.empty() ? 0 : r.requests.front().arrival - pt.start);
  s.energy = r.energy;
  s.gpu_power_mean = span > 0 && devices > 0 ? r.energy / span / devices : 0;
  s.energy_per_token = r.tokens_generated > 0 ? r.energy / r.tokens_generated : 0;
  s.power_bin = pt.bin;
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
                                        {"routing", c.routing == Routing::RoundRobin ? "round-robin" : "least-loaded"}}},
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
                        {"step_time_runs", s.step_runs}};
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
  std::string out = fmt::format(
      "{} on {} server{} x {} instance{} x {} {} ({}); {}, token budget {}, at most {} running; preemption by {}; {} routing\n"
      "trace {}: {} requests over {:.4g} s\n\n",
      s.model, c.servers, c.servers == 1 ? "" : "s", c.instances_per_server, c.instances_per_server == 1 ? "" : "s", c.devices(), s.arch,
      (c.ep > 1 ? fmt::format("EP {}: experts split {} ways, TP {} x {} data-parallel groups", c.ep, c.ep, c.tp, c.ep / c.tp) : fmt::format("TP {}", c.tp)) +
          (c.pp > 1 ? fmt::format(", PP {}: {} stages, {} batches in flight", c.pp, c.pp, c.pp) : ""),
      batching_name(c.batching), c.token_budget, c.max_batch, c.preemption == Preemption::Swap ? "swap" : "recompute",
      c.routing == Routing::RoundRobin ? "round-robin" : "least-loaded", s.trace, s.requests, s.makespan);
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
  const auto per_server = static_cast<size_t>(c.instances_per_server * c.pp);
  const auto tp = static_cast<size_t>(pt.devices_per_instance);
  for (size_t b = 0; b < pt.bins(); ++b)
    for (size_t k = 0; k < pt.energy.size(); ++k) {
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

CapacityPlan plan_capacity(const Trace& t, ServeConfig c, StepTimer& timer, const ArchSpec& a, double target, int64_t limit) {
  CapacityPlan plan;
  auto meets = [&](int64_t n) {
    c.servers = n;
    const double att = attainment(simulate_serving(t, c, timer, a), c);
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
