#include "sim/analyze/power.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sim/analyze/scenario.h"
#include "sim/report/plot.h"
#include "sim/report/table.h"
#include "sim/serve/serve.h"

namespace einsim {

namespace {

double clock_at(const ConfigTable& t, const std::string& key) {
  const auto v = t.opt_quantity(key, Dim::Frequency);
  if (v && *v <= 0) throw UserError(t.loc(key), fmt::format("'{}' must be a positive clock", key));
  return v.value_or(0);
}

PowerPolicy read_policy(const ConfigTable& t, const std::string& name) {
  PowerPolicy p;
  p.name = name;
  p.loc = t.loc();
  p.t1 = t.opt_number("t1", 0.05, 2).value_or(p.t1);
  p.t2 = t.opt_number("t2", 0.05, 2).value_or(p.t2);
  p.margin = t.opt_number("margin", 0, 1).value_or(p.margin);
  if (p.t2 < p.t1) throw UserError(t.loc("t2"), fmt::format("t2 ({}) is below t1 ({}): the high-priority threshold is the higher one", p.t2, p.t1));
  p.low_clock = clock_at(t, "low_clock");
  p.high_clock = clock_at(t, "high_clock");
  if (p.low_clock > 0 && p.high_clock > 0 && p.high_clock < p.low_clock)
    throw UserError(t.loc("high_clock"), "high_clock is below low_clock: high priority is locked at the higher clock");
  return p;
}

PowerClass read_class(const ConfigTable& t, const std::string& name) {
  PowerClass c;
  c.name = name;
  c.loc = t.loc();
  c.trace = t.opt_string("trace").value_or(c.trace);
  c.high = t.get_choice("priority", {"high", "low"}) == "high";
  c.share = t.get_number("share", 1e-6, 1);
  c.rate_per_server = t.get_number("rate_per_server", 1e-6, 1e6);
  return c;
}

// Servers of each class among n: shares rounded, every class with a share at least one server,
// the remainder to the largest share.
std::vector<int64_t> split(const std::vector<PowerClass>& cs, int64_t n) {
  std::vector<int64_t> k(cs.size());
  int64_t used = 0;
  size_t largest = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    k[i] = std::max<int64_t>(cs[i].share > 0 ? 1 : 0, std::llround(cs[i].share * static_cast<double>(n)));
    used += k[i];
    if (cs[i].share > cs[largest].share) largest = i;
  }
  k[largest] = std::max<int64_t>(1, k[largest] + n - used);
  return k;
}

struct Domain {
  std::string name;
  std::vector<size_t> servers;
  double budget = 0;
};

// Power of each server over bin b, W: its GPUs and its other power.
double server_power(const PowerTimeline& pt, size_t server, int64_t per_server, size_t b, double other) {
  double w = other;
  for (int64_t j = 0; j < per_server; ++j) w += pt.device_power(server * static_cast<size_t>(per_server) + static_cast<size_t>(j), b) * static_cast<double>(pt.devices_per_instance);
  return w;
}

// POLCA's controller over a set of domains.
class Controller {
 public:
  Controller(const PowerScenario& s, const PowerPolicy& p, const std::vector<Domain>& d, const std::vector<bool>& high, double low_clock, double high_clock,
             double brake_clock)
      : s_(s), p_(p), d_(d), high_(high), low_clock_(low_clock), high_clock_(high_clock), brake_clock_(brake_clock), st_(d.size()) {}

  /// Called every bin: decides on a new telemetry reading once per interval, and applies each
  /// decision once its actuation latency has passed.
  void act(double now, const PowerTimeline& pt, std::vector<Operating>& ops) {
    const bool reading = now + 1e-9 >= next_reading_;
    if (reading) next_reading_ = now + s_.telemetry_interval;
    // Telemetry: each domain's mean power over the last interval, `delay` ago.
    const double t1 = now - s_.telemetry_delay, t0 = t1 - s_.telemetry_interval;
    const double bins_per = std::max(1.0, std::round(s_.telemetry_interval / pt.bin));
    for (size_t i = 0; i < d_.size(); ++i) {
      State& x = st_[i];
      if (reading && t0 >= pt.start) {
        const auto b0 = static_cast<size_t>(std::llround((t0 - pt.start) / pt.bin));
        double seen = 0;
        for (size_t b = b0; b < b0 + static_cast<size_t>(bins_per); ++b)
          for (size_t sv : d_[i].servers) seen += server_power(pt, sv, s_.instances_per_server, b, s_.other_power);
        seen /= bins_per * d_[i].budget;
        // Decisions, each effective after its actuation latency.
        auto want = [&](bool& target, double& when, bool on, double latency) {
          if (target != on) target = on, when = now + latency;
        };
        if (seen > p_.t1) want(x.low_target, x.low_when, true, s_.lock_latency);
        else if (seen < p_.t1 - p_.margin) want(x.low_target, x.low_when, false, s_.lock_latency);
        if (seen > p_.t2) want(x.high_target, x.high_when, true, s_.lock_latency);
        else if (seen < p_.t2 - p_.margin) want(x.high_target, x.high_when, false, s_.lock_latency);
        if (seen > 1.0) want(x.brake_target, x.brake_when, true, s_.brake_latency);
        else if (seen < p_.t2 - p_.margin) want(x.brake_target, x.brake_when, false, s_.lock_latency);
      }
      auto apply = [&](bool& cur, bool target, double when, int64_t& events) {
        if (cur != target && now + 1e-9 >= when) {
          cur = target;
          if (cur) ++events;
        }
      };
      apply(x.low, x.low_target, x.low_when, cap_events);
      apply(x.high, x.high_target, x.high_when, cap_events);
      apply(x.brake, x.brake_target, x.brake_when, brake_events);
    }
    // Each server at the most restrictive point of its domains.
    const size_t n = ops.size() / static_cast<size_t>(s_.instances_per_server);
    std::vector<double> lock(n, 0);
    bool any_low = false, any_high = false, any_brake = false;
    for (size_t i = 0; i < d_.size(); ++i) {
      const State& x = st_[i];
      any_low |= x.low || x.high || x.brake, any_high |= x.high || x.brake, any_brake |= x.brake;
      for (size_t sv : d_[i].servers) {
        double f = 0;
        if (x.brake) f = brake_clock_;
        else if (!high_[sv] && (x.low || x.high)) f = low_clock_;
        else if (high_[sv] && x.high) f = high_clock_;
        if (f > 0) lock[sv] = lock[sv] > 0 ? std::min(lock[sv], f) : f;
      }
    }
    for (size_t k = 0; k < ops.size(); ++k) ops[k].lock = lock[k / static_cast<size_t>(s_.instances_per_server)];
    const double dt = pt.bin;
    low_time += any_low ? dt : 0;
    high_time += any_high ? dt : 0;
    brake_time += any_brake ? dt : 0;
  }

  int64_t cap_events = 0, brake_events = 0;
  double low_time = 0, high_time = 0, brake_time = 0;

 private:
  struct State {
    bool low = false, high = false, brake = false;
    bool low_target = false, high_target = false, brake_target = false;
    double low_when = 0, high_when = 0, brake_when = 0;
  };
  const PowerScenario& s_;
  const PowerPolicy& p_;
  const std::vector<Domain>& d_;
  const std::vector<bool>& high_;
  double low_clock_, high_clock_, brake_clock_;
  std::vector<State> st_;
  double next_reading_ = -1e300;
};

// The domain's power per bin over [start, end), W.
std::vector<double> domain_series(const Domain& d, const PowerTimeline& pt, const PowerScenario& s, double end) {
  const size_t bins = static_cast<size_t>(std::ceil((end - pt.start) / pt.bin - 1e-9));
  std::vector<double> w(bins, 0.0);
  for (size_t b = 0; b < bins; ++b)
    for (size_t sv : d.servers) w[b] += server_power(pt, sv, s.instances_per_server, b, s.other_power);
  return w;
}

// Means over every window of `n` bins (sliding by one bin).
std::vector<double> window_means(const std::vector<double>& w, size_t n) {
  n = std::max<size_t>(1, n);
  if (w.size() < n) return {};
  std::vector<double> out;
  double sum = 0;
  for (size_t b = 0; b < w.size(); ++b) {
    sum += w[b];
    if (b >= n) sum -= w[b - n];
    if (b + 1 >= n) out.push_back(sum / static_cast<double>(n));
  }
  return out;
}

// Peak: the highest mean over a telemetry interval. Over budget: time and the longest stretch
// with the interval mean above the budget. A violation: a stretch in which the mean over the
// breaker's tolerance exceeds the budget (the UPS cannot carry it).
DomainRecord record(const Domain& d, const PowerTimeline& pt, const PowerScenario& s, double end) {
  DomainRecord r;
  r.name = d.name;
  r.budget = d.budget;
  const std::vector<double> w = domain_series(d, pt, s, end);
  double sum = 0;
  for (double x : w) sum += x;
  r.mean = w.empty() ? 0 : sum / static_cast<double>(w.size());
  const std::vector<double> tel = window_means(w, static_cast<size_t>(std::llround(s.telemetry_interval / pt.bin)));
  double run = 0;
  for (double x : tel.empty() ? w : tel) {
    r.peak = std::max(r.peak, x);
    if (d.budget > 0 && x > d.budget * (1 + 1e-12)) {
      run += pt.bin;
      r.over_time += pt.bin;
      r.longest_over = std::max(r.longest_over, run);
    } else {
      run = 0;
    }
  }
  bool over = false;
  for (double x : window_means(w, static_cast<size_t>(std::llround(s.tolerance / pt.bin)))) {
    const bool now = d.budget > 0 && x > d.budget * (1 + 1e-12);
    if (now && !over) ++r.violations;
    if (now) r.violation_time += pt.bin;
    over = now;
  }
  return r;
}

}  // namespace

PowerScenario read_power(const ConfigTable& t) {
  PowerScenario s;
  s.loc = t.loc();
  s.model = t.opt_string("model").value_or(s.model);
  s.arch = t.opt_string("arch").value_or(s.arch);
  s.tp = t.opt_int("tp", 1, 1024).value_or(s.tp);
  s.instances_per_server = t.opt_int("instances_per_server", 1, 1024).value_or(s.instances_per_server);
  s.servers = t.opt_int("servers", 1, 10000).value_or(s.servers);
  s.servers_per_pdu = t.opt_int("servers_per_pdu", 1, 10000).value_or(s.servers_per_pdu);
  s.other_power = t.opt_quantity("other_power", Dim::Power).value_or(0);
  s.provisioning = t.opt_choice("provisioning", {"peak", "nameplate"}).value_or(s.provisioning);
  s.duration = t.opt_quantity("duration", Dim::Time).value_or(s.duration);
  if (s.duration <= 0) throw UserError(t.loc("duration"), "the duration must be positive");
  if (t.contains("oversubscription")) {
    s.oversubscription.clear();
    const toml::array* a = t.node("oversubscription")->as_array();
    if (!a || a->empty()) throw UserError(t.loc("oversubscription"), "'oversubscription' is a non-empty list of fractions (0.3: 30% more servers)");
    for (const toml::node& n : *a) {
      const auto v = n.value<double>();
      if (!v || *v < 0 || *v > 10) throw UserError(t.loc("oversubscription"), "'oversubscription' lists fractions from 0 to 10 (0.3: 30% more servers)");
      s.oversubscription.push_back(*v);
    }
    std::sort(s.oversubscription.begin(), s.oversubscription.end());
  }
  auto time = [&](const char* key, double& v, double min) {
    v = t.opt_quantity(key, Dim::Time).value_or(v);
    if (v < min) throw UserError(t.loc(key), fmt::format("'{}' must be at least {} s", key, min));
  };
  time("bin", s.bin, 1e-3);
  time("telemetry_delay", s.telemetry_delay, 0);
  time("telemetry_interval", s.telemetry_interval, s.bin);
  time("lock_latency", s.lock_latency, 0);
  time("brake_latency", s.brake_latency, 0);
  time("tolerance", s.tolerance, 0);
  s.brake_clock = clock_at(t, "brake_clock");
  s.max_p99_loss = t.opt_number("max_p99_loss", 0, 100).value_or(s.max_p99_loss);
  s.max_p99_loss_low = t.opt_number("max_p99_loss_low", 0, 100).value_or(s.max_p99_loss_low);
  if (auto cs = t.opt_table("classes"))
    for (const std::string& name : cs->keys()) s.classes.push_back(read_class(cs->get_table(name), name));
  if (s.classes.empty()) throw UserError(t.loc(), "the scenario lists no traffic classes ([scenario.classes.NAME] tables)");
  double share = 0;
  for (const PowerClass& c : s.classes) share += c.share;
  if (std::abs(share - 1) > 1e-6) throw UserError(s.classes.front().loc, fmt::format("the classes' shares add up to {}, not 1", share));
  if (s.servers < static_cast<int64_t>(s.classes.size()))
    throw UserError(t.loc("servers"), fmt::format("{} servers cannot serve {} classes: each class needs one at least", s.servers, s.classes.size()));
  if (auto ps = t.opt_table("policies"))
    for (const std::string& name : ps->keys()) s.policies.push_back(read_policy(ps->get_table(name), name));
  if (s.policies.empty()) throw UserError(t.loc(), "the scenario lists no policies ([scenario.policies.NAME] tables)");
  s.emulate = t.opt_bool("emulate").value_or(false);
  return s;
}

PowerScenario load_power(const std::string& file_or_name, const std::vector<std::string>& overrides) {
  return load_scenario(file_or_name, overrides, "power", read_power);
}

PowerReport analyze_power(const PowerScenario& s) {
  const ModelConfig m = scenario_model(s.model, s.loc);
  const ArchSpec a = scenario_arch(s.arch);
  if (a.power.tdp <= 0) throw UserError(a.loc, fmt::format("'{}' gives no TDP ([arch.power]) to provision power for", a.name));
  if (a.power.dvfs.size() < 2) throw UserError(a.loc, fmt::format("'{}' lists fewer than two DVFS clocks ([arch.power] dvfs) to lock GPUs at", a.name));
  PowerReport rep;
  rep.scenario = s;
  rep.model = m.name;
  rep.arch = a.name;
  rep.gpu_tdp = a.power.tdp;
  rep.gpus_per_server = s.tp * s.instances_per_server;
  const std::vector<DvfsPoint>& dv = a.power.dvfs;
  const double lowest = dv.back().clock, middle = dv[dv.size() / 2].clock;
  const double brake_clock = s.brake_clock > 0 ? s.brake_clock : lowest;
  std::vector<Trace> base_traces;
  for (const PowerClass& c : s.classes) base_traces.push_back(load_trace(c.trace));
  StepTimer timer(m, a, s.tp, s.runtime, std::nullopt, 1, s.emulate);

  ServeConfig base;
  base.tp = s.tp;
  base.instances_per_server = s.instances_per_server;
  base.power_bin = s.bin;

  // The row at one size: servers interleaved over the classes (so every PDU carries each
  // class), PDUs filled in turn; the traffic of each class scaled to its servers.
  struct Row {
    int64_t servers = 0;
    std::vector<bool> high;
    std::vector<std::vector<size_t>> pdus;
    Trace trace;
    ServeConfig config;
  };
  const int64_t n_pdus = (s.servers + s.servers_per_pdu - 1) / s.servers_per_pdu;
  auto make_row = [&](int64_t n) {
    Row r;
    r.servers = n;
    const std::vector<int64_t> per_class = split(s.classes, n);
    std::vector<int> cls;
    std::vector<int64_t> left = per_class;
    while (static_cast<int64_t>(cls.size()) < n)
      for (size_t c = 0; c < left.size(); ++c)
        if (left[c] > 0) --left[c], cls.push_back(static_cast<int>(c));
    r.pdus.resize(static_cast<size_t>(n_pdus));
    r.config = base;
    r.config.servers = n;
    for (int64_t i = 0; i < n; ++i) {
      r.high.push_back(s.classes[static_cast<size_t>(cls[static_cast<size_t>(i)])].high);
      r.pdus[static_cast<size_t>(i % n_pdus)].push_back(static_cast<size_t>(i));
      for (int64_t j = 0; j < s.instances_per_server; ++j) r.config.instance_class.push_back(cls[static_cast<size_t>(i)]);
    }
    std::vector<Trace> ts;
    for (size_t c = 0; c < s.classes.size(); ++c)
      ts.push_back(tile_to_duration(base_traces[c], s.classes[c].rate_per_server * static_cast<double>(per_class[c]), s.duration));
    r.trace = merge_classes(ts);
    return r;
  };
  auto domains_of = [&](const Row& r, const std::vector<double>& budgets) {
    std::vector<Domain> d;
    Domain row{"row", {}, budgets[0]};
    for (int64_t i = 0; i < r.servers; ++i) row.servers.push_back(static_cast<size_t>(i));
    d.push_back(row);
    for (size_t p = 0; p < r.pdus.size(); ++p) d.push_back({fmt::format("pdu{}", p), r.pdus[p], budgets[p + 1]});
    return d;
  };

  // Budgets: provisioned for the row as deployed.
  const Row row0 = make_row(s.servers);
  std::vector<double> budgets(1 + static_cast<size_t>(n_pdus));
  const double nameplate = static_cast<double>(rep.gpus_per_server) * a.power.tdp + s.other_power;
  if (s.provisioning == "nameplate") {
    budgets[0] = nameplate * static_cast<double>(s.servers);
    for (size_t p = 0; p < row0.pdus.size(); ++p) budgets[p + 1] = nameplate * static_cast<double>(row0.pdus[p].size());
  } else {
    const ServeResult r0 = simulate_serving(row0.trace, row0.config, timer, a);
    const std::vector<Domain> doms = domains_of(row0, budgets);  // the row, then the PDUs: budgets' order
    for (size_t i = 0; i < doms.size(); ++i) budgets[i] = record(doms[i], r0.power, s, r0.power.start + r0.makespan).peak;
  }
  rep.row_budget = budgets[0];
  rep.pdu_budgets.assign(budgets.begin() + 1, budgets.end());

  std::vector<PowerPolicy> policies = s.policies;
  PowerPolicy none;
  none.name = "none";
  none.control = false;
  policies.insert(policies.begin(), none);
  // Each level's row and its uncontrolled run, shared by every policy.
  std::vector<Row> rows;
  std::vector<ServeResult> free_runs;
  for (double x : s.oversubscription) {
    rows.push_back(make_row(std::max<int64_t>(1, std::llround(static_cast<double>(s.servers) * (1 + x)))));
    free_runs.push_back(simulate_serving(rows.back().trace, rows.back().config, timer, a));
  }
  for (const PowerPolicy& p : policies) {
    bool ok_so_far = true;
    double largest = -1;
    for (size_t li = 0; li < s.oversubscription.size(); ++li) {
      const double x = s.oversubscription[li];
      const Row& row = rows[li];
      const int64_t n = row.servers;
      const std::vector<Domain> doms = domains_of(row, budgets);
      const ServeResult& free = free_runs[li];
      ServeConfig c = row.config;
      Controller ctl(s, p, doms, row.high, p.low_clock > 0 ? p.low_clock : lowest, p.high_clock > 0 ? p.high_clock : middle, brake_clock);
      if (p.control) {
        c.control.period = s.bin;
        c.control.act = [&](double now, const PowerTimeline& pt, std::vector<Operating>& ops) { ctl.act(now, pt, ops); };
      }
      const ServeResult controlled = p.control ? simulate_serving(row.trace, c, timer, a) : ServeResult{};
      const ServeResult& res = p.control ? controlled : free;
      PowerRow out;
      out.policy = p.name;
      out.oversubscription = x;
      out.servers = n;
      out.extra = n - s.servers;
      const double end = res.power.start + res.makespan;
      for (const Domain& d : doms) {
        out.domains.push_back(record(d, res.power, s, end));
        out.violations += out.domains.back().violations;
        out.violation_time += out.domains.back().violation_time;
        out.longest_over = std::max(out.longest_over, out.domains.back().longest_over);
      }
      out.row_peak = out.domains[0].peak / budgets[0];
      out.row_mean = out.domains[0].mean / budgets[0];
      out.energy = res.energy + s.other_power * static_cast<double>(n) * res.makespan;
      const double span = std::max(res.makespan, 1e-9);
      out.low_capped = ctl.low_time / span;
      out.high_capped = ctl.high_time / span;
      out.braked = ctl.brake_time / span;
      out.cap_events = ctl.cap_events;
      out.brake_events = ctl.brake_events;
      bool within = true;
      for (size_t ci = 0; ci < s.classes.size(); ++ci) {
        auto lat = [&](const ServeResult& r, bool ttft, double q) {
          std::vector<double> v;
          for (size_t i = 0; i < r.requests.size(); ++i) {
            if (row.trace.requests[i].priority != static_cast<int>(ci)) continue;
            const RequestOutcome& o = r.requests[i];
            if (ttft) v.push_back(o.ttft());
            else if (o.output > 1) v.push_back(o.tpot());
          }
          return percentile(v, q);
        };
        ClassLatency cl;
        cl.name = s.classes[ci].name;
        cl.ttft50 = lat(res, true, 50), cl.ttft99 = lat(res, true, 99), cl.tpot50 = lat(res, false, 50), cl.tpot99 = lat(res, false, 99);
        auto rel = [](double v, double ref) { return ref > 0 ? v / ref - 1 : 0; };
        cl.d_ttft50 = rel(cl.ttft50, lat(free, true, 50));
        cl.d_ttft99 = rel(cl.ttft99, lat(free, true, 99));
        cl.d_tpot50 = rel(cl.tpot50, lat(free, false, 50));
        cl.d_tpot99 = rel(cl.tpot99, lat(free, false, 99));
        const double limit = s.classes[ci].high ? s.max_p99_loss : s.max_p99_loss_low;
        within = within && cl.d_ttft99 <= limit + 1e-12 && cl.d_tpot99 <= limit + 1e-12;
        out.classes.push_back(cl);
      }
      out.safe = out.violations == 0;
      out.within_loss = within;
      ok_so_far = ok_so_far && out.safe && out.within_loss;
      if (ok_so_far) largest = x;
      rep.rows.push_back(std::move(out));
    }
    rep.largest_safe.emplace_back(p.name, largest);
  }
  return rep;
}

namespace {

std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }
std::string change(double x) { return fmt::format("{:+.1f}%", 100 * x); }

}  // namespace

std::string format_power(const PowerReport& r, Format f) {
  const PowerScenario& s = r.scenario;
  if (f == Format::Json) {
    nlohmann::json j;
    j["kind"] = "analyze-power";
    j["model"] = r.model;
    j["arch"] = r.arch;
    j["row"] = {{"servers", s.servers}, {"gpus_per_server", r.gpus_per_server}, {"servers_per_pdu", s.servers_per_pdu}, {"provisioning", s.provisioning},
                {"budget_w", r.row_budget}, {"pdu_budgets_w", r.pdu_budgets}, {"other_power_w", s.other_power}};
    j["control"] = {{"telemetry_delay_s", s.telemetry_delay}, {"telemetry_interval_s", s.telemetry_interval}, {"lock_latency_s", s.lock_latency},
                    {"brake_latency_s", s.brake_latency}, {"tolerance_s", s.tolerance}};
    j["policies"] = nlohmann::json::array();
    for (const PowerPolicy& p : s.policies)
      j["policies"].push_back({{"name", p.name}, {"t1", p.t1}, {"t2", p.t2}, {"margin", p.margin}, {"low_clock_hz", p.low_clock}, {"high_clock_hz", p.high_clock}});
    j["rows"] = nlohmann::json::array();
    for (const PowerRow& x : r.rows) {
      nlohmann::json row = {{"policy", x.policy}, {"oversubscription", x.oversubscription}, {"servers", x.servers}, {"extra_servers", x.extra},
                            {"row_peak", x.row_peak}, {"row_mean", x.row_mean}, {"low_capped", x.low_capped}, {"high_capped", x.high_capped},
                            {"braked", x.braked}, {"cap_events", x.cap_events}, {"brake_events", x.brake_events}, {"violations", x.violations},
                            {"violation_s", x.violation_time}, {"longest_over_s", x.longest_over}, {"energy_j", x.energy}, {"safe", x.safe}, {"within_loss", x.within_loss}};
      row["classes"] = nlohmann::json::array();
      for (const ClassLatency& c : x.classes)
        row["classes"].push_back({{"name", c.name}, {"ttft_p50_s", c.ttft50}, {"ttft_p99_s", c.ttft99}, {"tpot_p50_s", c.tpot50}, {"tpot_p99_s", c.tpot99},
                                  {"ttft_p50_change", c.d_ttft50}, {"ttft_p99_change", c.d_ttft99}, {"tpot_p50_change", c.d_tpot50},
                                  {"tpot_p99_change", c.d_tpot99}});
      row["domains"] = nlohmann::json::array();
      for (const DomainRecord& d : x.domains)
        row["domains"].push_back({{"name", d.name}, {"budget_w", d.budget}, {"peak_w", d.peak}, {"mean_w", d.mean}, {"over_s", d.over_time},
                                  {"longest_over_s", d.longest_over}, {"violations", d.violations},
                                  {"violation_s", d.violation_time}});
      j["rows"].push_back(row);
    }
    j["largest_safe"] = nlohmann::json::object();
    for (const auto& [p, x] : r.largest_safe) j["largest_safe"][p] = x < 0 ? nlohmann::json(nullptr) : nlohmann::json(x);
    return j.dump(2) + "\n";
  }
  std::vector<std::string> head = {"policy", "over", "servers", "peak", "mean", "low capped", "high capped", "braked", "caps", "brakes", "violations"};
  for (const PowerClass& c : s.classes)
    for (const char* m : {"p50 TTFT", "p99 TTFT", "p50 TPOT", "p99 TPOT"}) head.push_back(fmt::format("{} {}", c.name, m));
  head.push_back("safe");
  TextTable t(head);
  for (const PowerRow& x : r.rows) {
    std::vector<std::string> cells = {x.policy,
                                      pct(x.oversubscription),
                                      fmt::format("{} (+{})", x.servers, x.extra),
                                      pct(x.row_peak),
                                      pct(x.row_mean),
                                      pct(x.low_capped),
                                      pct(x.high_capped),
                                      pct(x.braked),
                                      std::to_string(x.cap_events),
                                      std::to_string(x.brake_events),
                                      x.violations ? fmt::format("{} ({:.0f} s)", x.violations, x.violation_time) : "0"};
    for (const ClassLatency& c : x.classes)
      for (double d : {c.d_ttft50, c.d_ttft99, c.d_tpot50, c.d_tpot99}) cells.push_back(change(d));
    cells.push_back(x.safe ? (x.within_loss ? "yes" : "yes, loss over limit") : "no");
    t.row(cells);
  }
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format(
      "{} on a row of {} servers ({} x {} each, TP {}), {} PDUs of up to {} servers; provisioned at {}: row {:.1f} kW{}\n"
      "telemetry {:.3g} s late, every {:.3g} s; frequency lock after {:.3g} s, power brake after {:.3g} s; breaker tolerates {:.3g} s over budget\n",
      r.model, s.servers, r.gpus_per_server, r.arch, s.tp, r.pdu_budgets.size(), s.servers_per_pdu,
      s.provisioning == "peak" ? "each domain's peak power without oversubscription" : "nameplate (GPUs x TDP + other)", r.row_budget / 1e3,
      s.other_power > 0 ? fmt::format(" ({:.0f} W per server beyond the GPUs)", s.other_power) : "", s.telemetry_delay, s.telemetry_interval,
      s.lock_latency, s.brake_latency, s.tolerance);
  for (const PowerClass& c : s.classes)
    out += fmt::format("class {}: {} priority, {:.0f}% of servers, {} at {:.3g} requests/s per server\n", c.name, c.high ? "high" : "low", 100 * c.share,
                       c.trace, c.rate_per_server);
  for (const PowerPolicy& p : s.policies)
    out += fmt::format("policy {}: lock low priority above {:.0f}%, high priority too above {:.0f}%, release {:.0f} points lower\n", p.name, 100 * p.t1,
                       100 * p.t2, 100 * p.margin);
  out += "\nPeak and mean: the row's power against its budget. Latency columns: change against the same row with no controller.\n";
  out += t.aligned();
  out += fmt::format("\nlargest safe oversubscription (no breaker violation at the row or any PDU; p99 TTFT and TPOT loss at most {:.0f}% high priority, "
                     "{:.0f}% low):\n",
                     100 * s.max_p99_loss, 100 * s.max_p99_loss_low);
  for (const auto& [p, x] : r.largest_safe) out += fmt::format("  {}: {}\n", p, x < 0 ? "none" : fmt::format("{:.0f}% more servers", 100 * x));
  return out;
}

std::string plot_power_svg(const PowerReport& r) {
  PlotPanel peak, loss, capped;
  peak.title = "Row peak power (share of budget)";
  loss.title = "High-priority p99 TTFT change";
  capped.title = "Time with any server locked";
  for (PlotPanel* p : {&peak, &loss, &capped}) {
    p->xlabel = "oversubscription (%)";
    p->log_x = false;
  }
  peak.ylabel = "%";
  loss.ylabel = "%";
  capped.ylabel = "%";
  std::string last;
  for (const PowerRow& x : r.rows) {
    if (x.policy != last) {
      for (PlotPanel* p : {&peak, &loss, &capped}) p->series.push_back(PlotSeries{x.policy, {}, false, x.policy});
      last = x.policy;
    }
    const double ox = 100 * x.oversubscription;
    peak.series.back().points.emplace_back(ox, 100 * x.row_peak);
    double d = 0;
    for (size_t i = 0; i < x.classes.size(); ++i)
      if (r.scenario.classes[i].high) d = std::max(d, x.classes[i].d_ttft99);
    loss.series.back().points.emplace_back(ox, 100 * d);
    capped.series.back().points.emplace_back(ox, 100 * std::max(x.low_capped, x.high_capped));
  }
  if (!r.rows.empty())
    peak.series.push_back(PlotSeries{"budget", {{0, 100}, {100 * r.scenario.oversubscription.back(), 100}}, true, "budget"});
  return svg_plot({peak, loss, capped}, {fmt::format("{} on {}: power oversubscription under POLCA's controller", r.model, r.arch)});
}

}  // namespace einsim
