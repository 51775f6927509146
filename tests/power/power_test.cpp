#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "../workloads/helpers.h"
#include "sim/power/power.h"
#include "sim/serve/serve.h"

using namespace einsim;

namespace {

PowerSpec spec(double idle, double active, double tdp) {
  PowerSpec p;
  p.idle = idle;
  p.active = active;
  p.tdp = tdp;
  return p;
}

RunReport step(const char* arch, PhaseKind kind, int64_t tokens, int64_t batch = 1, double lock = 0, double cap = 0) {
  static MapCache cache;
  RunOptions o;
  o.phase.kind = kind;
  o.phase.batch = batch;
  if (kind == PhaseKind::Prefill) o.phase.prompt = tokens;
  else o.phase.context = tokens;
  o.tp = 8;
  return run_powered(load_model("llama-2-70b"), load_arch(arch), o, lock, cap, &cache);
}

double rel(double model, double published) { return model / published - 1; }

}  // namespace

TEST_CASE("under_cap: the fastest point that fits, a mix that meets the cap exactly, or the slowest flagged over") {
  const PowerSpec p = spec(50, 100, 700);
  // 600 J dynamic in 1 s at the top clock: 700 W; 300 J in 1.25 s at the next: 340 W.
  const std::vector<ClockedWork> pts = {{2e9, 1.0, 550, 50}, {1.6e9, 1.25, 250, 50}};
  const PoweredWork free = under_cap(p, pts, 0);
  CHECK(free.time == Approx(1.0));
  CHECK(free.power == Approx(700));
  CHECK_FALSE(free.throttled);
  const PoweredWork capped = under_cap(p, pts, 500);
  CHECK(capped.throttled);
  CHECK(capped.power == Approx(500));
  CHECK(capped.time > 1.0);
  CHECK(capped.time < 1.25);
  CHECK(capped.clock < 2e9);
  CHECK(capped.clock > 1.6e9);
  const PoweredWork over = under_cap(p, pts, 300);
  CHECK(over.over);
  CHECK(over.time == Approx(1.25));
  // A cap above the TDP is the TDP.
  CHECK(power_limit(p, 900) == 700);
  CHECK(power_limit(p, 0) == 700);
}

TEST_CASE("at_clock slows only the arrays above the clock and scales their energy per operation") {
  const ArchSpec a = load_arch("h100");
  const ArchSpec slow = at_clock(a, 1.4e9);
  for (size_t i = 0; i < a.arrays.size(); ++i) {
    CHECK(slow.arrays[i].clock == Approx(1.4e9));
    const double s = 1.4e9 / a.arrays[i].clock;
    CHECK(slow.arrays[i].energy.at(OpClass::Mac) == Approx(a.arrays[i].energy.at(OpClass::Mac) * s * s));
  }
  CHECK(slow.tiers[0].read_bandwidth == a.tiers[0].read_bandwidth);
  CHECK(slow.tiers[0].energy == a.tiers[0].energy);
  const ArchSpec same = at_clock(a, 1.98e9);  // above the tensor clock: the tensor array keeps its 1.83 GHz
  CHECK(same.array("tensor")->clock == Approx(1.83e9));
  CHECK(dvfs_clocks(a, 1.5e9).front() == Approx(1.4e9));
  CHECK(dvfs_clocks(a, 0.5e9) == std::vector<double>{1.0e9});
}

TEST_CASE("Per-phase power against Splitwise's published values (docs/REFERENCES.md), Llama-2-70B on 8 GPUs") {
  // Splitwise: A100 idle 63 W, prefill 400 W, decode 250 W; H100 75, 700, 380 W. einsim's
  // energies come from the TDP over the achievable rate, measured baselines and FuseMax's DRAM
  // energy, not from these values; docs/POWER.md explains the gap (measured 2026-12-04: prefill -24% A100,
  // -32% H100; decode -39% A100, -43% H100: the all-reduces take their NCCL-fitted time,
  // charged at the active baseline only, under the default inference-engine runtime). The test pins the shape the published values have
  // and bounds the error a little above today's, so that a change making it worse fails.
  struct Published {
    const char* arch;
    double idle, prefill, decode;
  };
  for (const Published& pub : {Published{"h100", 75, 700, 380}, Published{"a100", 63, 400, 250}}) {
    const ArchSpec a = load_arch(pub.arch);
    const RunReport pre = step(pub.arch, PhaseKind::Prefill, 1500);
    const RunReport dec = step(pub.arch, PhaseKind::Decode, 1500, 32);
    const double e_idle = rel(a.power.idle, pub.idle), e_pre = rel(pre.power, pub.prefill), e_dec = rel(dec.power, pub.decode);
    WARN(fmt::format("{}: idle {:.0f} W ({:+.1f}%), prefill 1500 tokens {:.0f} W ({:+.1f}%), decode batch 32 {:.0f} W ({:+.1f}%)", pub.arch, a.power.idle,
                     100 * e_idle, pre.power, 100 * e_pre, dec.power, 100 * e_dec));
    // The H100's idle power is measured (its preset); the A100's is Splitwise's own 63 W,
    // an input, so comparing it with the published value would check nothing.
    if (std::string(pub.arch) == "h100") CHECK(std::abs(e_idle) < 0.05);
    CHECK(std::abs(e_pre) < 0.34);
    CHECK(std::abs(e_dec) < 0.44);
    // The shape: prefill well above decode, growing with prompt tokens, within the TDP;
    // decode nearly flat in context.
    CHECK(pre.power > 1.5 * dec.power);
    CHECK(step(pub.arch, PhaseKind::Prefill, 8192).power > pre.power);
    CHECK(step(pub.arch, PhaseKind::Prefill, 256).power < pre.power);
    CHECK(pre.power <= a.power.tdp);
    CHECK(step(pub.arch, PhaseKind::Decode, 3000, 32).power == Approx(dec.power).epsilon(0.10));
  }
}

TEST_CASE("A power cap or a clock lock slows compute-bound prefill and leaves memory-bound decode nearly unchanged") {
  const RunReport pre = step("h100", PhaseKind::Prefill, 8192), dec = step("h100", PhaseKind::Decode, 1500, 32);
  // A cap below the uncapped prefill power binds and is met.
  const double cap = pre.power - 100;
  const RunReport pre_cap = step("h100", PhaseKind::Prefill, 8192, 1, 0, cap);
  CHECK(pre_cap.throttled);
  CHECK(pre_cap.power == Approx(cap).epsilon(1e-6));
  CHECK(pre_cap.step_time > pre.step_time * 1.03);
  CHECK(pre_cap.clock < 1.83e9);
  const RunReport dec_cap = step("h100", PhaseKind::Decode, 1500, 32, 0, cap);
  CHECK_FALSE(dec_cap.throttled);
  CHECK(dec_cap.step_time == Approx(dec.step_time));
  // Locked at 1.4 GHz: prefill about the clock ratio slower (1.83 / 1.4 = 1.31), decode within 5%.
  const RunReport pre_lock = step("h100", PhaseKind::Prefill, 8192, 1, 1.4e9), dec_lock = step("h100", PhaseKind::Decode, 1500, 32, 1.4e9);
  CHECK(pre_lock.step_time / pre.step_time > 1.15);
  CHECK(pre_lock.step_time / pre.step_time < 1.31 + 1e-9);
  CHECK(pre_lock.power < pre.power - 100);
  CHECK(dec_lock.step_time / dec.step_time < 1.05);
}

TEST_CASE("Serving: the power timeline holds every iteration's energy, and each GPU draws between idle and TDP") {
  const ModelConfig m = load_model("llama-3-8b");
  const ArchSpec a = load_arch("h100");
  StepTimer timer(m, a, 1);
  SyntheticTrace s;
  s.rate = 8;
  s.count = 300;
  s.seed = 3;
  const Trace t = synthetic_trace(s);
  ServeConfig c;
  c.servers = 2;
  c.record_samples = true;
  c.power_bin = 0.5;
  const ServeResult r = simulate_serving(t, c, timer, a);
  double sampled = 0, binned = 0, busy = 0;
  for (const InstanceSample& x : r.samples) sampled += x.energy, busy += x.duration;
  double binned_busy = 0;
  for (size_t k = 0; k < r.power.energy.size(); ++k)
    for (size_t b = 0; b < r.power.energy[k].size(); ++b) {
      binned += r.power.energy[k][b];
      binned_busy += r.power.busy[k][b];
      const double w = r.power.device_power(k, b);
      CHECK(w >= a.power.idle - 1e-9);
      CHECK(w <= a.power.tdp + 1e-9);
    }
  CHECK(binned == Approx(sampled).epsilon(1e-9));
  CHECK(binned_busy == Approx(busy).epsilon(1e-9));
  CHECK(r.energy > 0);

  // A cap below the peak lowers the peak and costs prefill time; a controller that locks the
  // clock is obeyed.
  double peak = 0;
  for (size_t k = 0; k < r.power.energy.size(); ++k)
    for (size_t b = 0; b < r.power.energy[k].size(); ++b) peak = std::max(peak, r.power.device_power(k, b));
  ServeConfig locked = c;
  int calls = 0;
  locked.control.period = 1;
  locked.control.act = [&](double, const PowerTimeline&, std::vector<Operating>& ops) {
    ++calls;
    for (Operating& o : ops) o.lock = 1.0e9;
  };
  const ServeResult rl = simulate_serving(t, locked, timer, a);
  CHECK(calls > 10);
  double peak_locked = 0;
  for (size_t k = 0; k < rl.power.energy.size(); ++k)
    for (size_t b = 2; b < rl.power.energy[k].size(); ++b) peak_locked = std::max(peak_locked, rl.power.device_power(k, b));
  CHECK(peak_locked < peak);
  for (const InstanceSample& x : rl.samples)
    if (x.time > 1.5) CHECK(x.clock <= 1.0e9 + 1);
}
