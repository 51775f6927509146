#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "../workloads/helpers.h"
#include "../cli/run_einsim.h"
#include "sim/sweep/pareto.h"
#include "sim/sweep/store.h"
#include "arch/runtime.h"
#include "sim/run/run.h"
#include "sim/sweep/sweep.h"

using namespace einsim;
using einsim::test::error_of;
namespace fs = std::filesystem;

extern char** environ;

namespace {

std::string data(const std::string& name) { return std::string(EINSIM_TEST_DATA) + "/" + name; }

// A fresh directory per test case.
std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("einsim-sweep-{}-{}", getpid(), name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// Writes a spec: "version = 1" and `body`.
std::string spec_file(const std::string& dir, const std::string& body) {
  fs::create_directories(dir);
  const std::string path = dir + "/s.toml";
  std::ofstream(path) << "version = 1\n" << body;
  return path;
}

const char* kHead = "[sweep]\narch = \"h100\"\nmodel = \"llama-3-8b\"\nphase = \"decode\"\nmode = \"roofline\"\n";

using Run = einsim::test::CliRun;
const auto cli = einsim::test::run_einsim;

std::string exported(const std::string& db) {
  std::ostringstream os;
  export_db(db, "csv", "", os);
  return os.str();
}

// The index of the result column `name`.
size_t column(const std::vector<SweepColumn>& cols, const std::string& name) {
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i].name == name) return i;
  FAIL("no column " << name);
  return 0;
}

}  // namespace

TEST_CASE("sweep formulas: arithmetic, units, functions, comparisons", "[sweep]") {
  const auto resolve = [](const std::string& n) -> std::optional<int> {
    if (n == "x") return 0;
    if (n == "arch.tiers.hbm.read_bandwidth") return 1;
    return std::nullopt;
  };
  const double slots[] = {3, 2e12};
  auto eval = [&](const std::string& t) { return Formula::parse(t, SourceLoc{"f", 1, 1}, resolve).eval(slots); };
  CHECK(eval("1 + 2 * x ^ 2") == Approx(19));
  CHECK(eval("-x + 10 / 4") == Approx(-0.5));
  CHECK(eval("16 MiB / 1 KiB") == Approx(16384));
  CHECK(eval("arch.tiers.hbm.read_bandwidth / 1 TB/s") == Approx(2));
  CHECK(eval("min(x, 2, 5) + max(x, 7) + ceil(2.1) + log2(8) + sqrt(16)") == Approx(2 + 7 + 3 + 3 + 4));
  CHECK(eval("x <= 3") == 1);
  CHECK(eval("x > 3") == 0);
  CHECK(eval("700 W >= 0.7 kW") == 1);
  CHECK(eval("1e-3 * 1000") == Approx(1));
  CHECK(Formula::parse("x < 4", SourceLoc{}, resolve).is_comparison());
  // Errors point at the offending character.
  CHECK(error_of([&] { eval("x + y"); }) == "f:1:5: error: in expression \"x + y\": unknown name 'y' (a parameter, variable, derived value or output defined before it)");
  CHECK_THAT(error_of([&] { eval("x + (2"); }), Catch::StartsWith("f:1:7: error:") && Catch::Contains("expected ')'"));
  CHECK_THAT(error_of([&] { eval("frob(x)"); }), Catch::Contains("unknown function 'frob'"));
  CHECK_THAT(error_of([&] { eval("3 parsecs"); }), Catch::Contains("unknown unit"));
  CHECK_THAT(error_of([&] { eval("x $ 2"); }), Catch::StartsWith("f:1:3: error:"));
  // Deep or long input is a located error, not a stack overflow (parse or evaluation).
  std::string parens = std::string(30000, '(') + "x" + std::string(30000, ')');
  std::string chain = "x", powers = "x";
  for (int i = 0; i < 200000; ++i) chain += "+x", powers += "^x";
  for (const std::string& t : {parens, chain, powers, std::string(30000, '-') + "x"})
    CHECK_THAT(error_of([&] { eval(t); }), Catch::StartsWith("f:1:") && Catch::Contains("nested too deeply or too long"));
  std::string ok = "x";
  for (int i = 0; i < 200; ++i) ok += "+x";
  CHECK(eval(ok) == Approx(3 * 201));
  // Dimensions: sums, comparisons, min and max need one dimension (plain numbers go with any).
  const auto dims = [](int slot) -> std::optional<Dim> { return slot == 1 ? std::optional<Dim>(Dim::Bandwidth) : std::nullopt; };
  auto checked = [&](const std::string& t) { return Formula::parse(t, SourceLoc{"f", 1, 1}, resolve, dims).eval(slots); };
  CHECK_THAT(error_of([&] { checked("arch.tiers.hbm.read_bandwidth <= 600 GB"); }),
             Catch::StartsWith("f:1:31: error:") && Catch::Contains("compares a bandwidth with a size"));
  CHECK_THAT(error_of([&] { checked("700 W + 1 s"); }), Catch::Contains("adds or subtracts a power with a time"));
  CHECK_THAT(error_of([&] { checked("max(1 W, 2 GB)"); }), Catch::Contains("takes the min or max of a power with a size"));
  CHECK(checked("arch.tiers.hbm.read_bandwidth / 1 TB/s <= 4") == 1);
  CHECK(checked("2 * arch.tiers.hbm.read_bandwidth >= 3 TB/s") == 1);
  CHECK(checked("x * 1 GB <= 4 GB") == 1);
}

TEST_CASE("sweep specs expand grids, zips, ranges and samples deterministically", "[sweep]") {
  const std::string dir = scratch("expand");
  SECTION("a grid: lists and log ranges, the last parameter fastest") {
    const SweepSpec s = load_sweep(data("sweep-small.toml"));
    CHECK(s.total == 48);
    REQUIRE(s.params.size() == 3);
    CHECK(s.params[0].key == "batch");
    CHECK(s.params[0].size() == 6);
    PointEvaluator ev(s);
    std::vector<SweepValue> v;
    SampleTable t;
    point_values(s, t, 0, v);
    CHECK((v[0].number == 1 && v[1].number == 1024 && v[2].number == 1));
    point_values(s, t, 1, v);
    CHECK((v[0].number == 1 && v[1].number == 1024 && v[2].number == 2));
    point_values(s, t, 47, v);
    CHECK((v[0].number == 32 && v[1].number == 131072 && v[2].number == 2));
  }
  SECTION("linear steps, zips, and quantities") {
    const SweepSpec s = load_sweep(spec_file(dir, std::string(kHead) +
                                                      "zip = [[\"batch\", \"arch.tiers.hbm.read_bandwidth\"]]\n[parameters]\n"
                                                      "batch = { linear = [8, 32], step = 8 }\n"
                                                      "\"arch.tiers.hbm.read_bandwidth\" = [\"2 TB/s\", \"3 TB/s\", \"4 TB/s\", \"5 TB/s\"]\n"
                                                      "context = [1024, 2048]\n"));
    CHECK(s.total == 8);  // the zip is one group of 4
    std::vector<SweepValue> v;
    point_values(s, {}, 5, v);
    CHECK(v[0].number == 24);
    CHECK(v[1].number == 4e12);
    CHECK(v[2].number == 2048);
  }
  SECTION("Latin hypercube: each of N strata of every parameter once; random: reproducible") {
    const SweepSpec s = load_sweep(spec_file(dir, std::string(kHead) +
                                                      "design = \"lhs\"\nsamples = 50\nseed = 7\n[parameters]\n"
                                                      "batch = { linear = [1, 1000] }\ncontext = { log = [1024, 1048576] }\n"));
    CHECK(s.total == 50);
    const SampleTable t = make_samples(s);
    std::set<int> batch_strata, ctx_strata;
    std::vector<SweepValue> v;
    for (int64_t i = 0; i < 50; ++i) {
      point_values(s, t, i, v);
      batch_strata.insert(static_cast<int>((v[0].number - 1) / 999.0 * 50 - 1e-9));
      ctx_strata.insert(static_cast<int>(std::log(v[1].number / 1024) / std::log(1024.0) * 50 - 1e-9));
      CHECK(v[0].number == std::round(v[0].number));  // batch is an integer key
    }
    CHECK(batch_strata.size() >= 48);  // rounding to integers may move a point across a boundary
    CHECK(ctx_strata.size() == 50);
    const SweepSpec r = load_sweep(spec_file(dir, std::string(kHead) +
                                                      "design = \"random\"\nsamples = 10\nseed = 3\n[parameters]\n"
                                                      "batch = [1, 2, 4]\ncontext = { log = [1024, 65536] }\n"));
    std::vector<SweepValue> a, b;
    point_values(r, {}, 4, a);
    point_values(r, {}, 4, b);
    CHECK(a[1].number == b[1].number);
    CHECK((a[1].number >= 1024 && a[1].number <= 65536));
  }
}

TEST_CASE("sweep specs: unknown keys and impossible ranges get located errors", "[sweep][errors]") {
  const std::string dir = scratch("errors");
  auto err = [&](const std::string& body) { return error_of([&] { load_sweep(spec_file(dir, body)); }); };
  const std::string f = dir + "/s.toml";
  CHECK(err(std::string(kHead) + "[parameters]\nbacth = [1, 2]\n") ==
        f + ":8:1: error: unknown parameter 'bacth' (did you mean 'batch'?): a parameter is a deployment key (arch, model, phase, batch, context, "
            "prompt, tp, block, dtype, kv_dtype, fusion, attention, clock, power_cap; in a serving sweep instances, prefill_instances, ... as "
        "docs/SWEEPS.md lists) or a dotted arch./model. key; free names go in [variables]");
  CHECK_THAT(err(std::string(kHead) + "[parameters]\n\"arch.tiers.hbm.bandwith\" = [\"1 TB/s\"]\n"),
             Catch::StartsWith(f + ":8:29: error: arch 'h100' with arch.tiers.hbm.bandwith = 1 TB/s: unknown key 'bandwith'"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\n\"arch.tiers.hbm.read_bandwidth\" = [\"-1 TB/s\"]\n"), Catch::StartsWith(f + ":8:35: error: arch 'h100' with arch.tiers.hbm.read_bandwidth = -1 TB/s: 'arch.tiers.hbm.read_bandwidth' must not be negative"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { log = [64, 8], points = 4 }\n"), Catch::Contains("runs backwards"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { log = [0, 8], points = 4 }\n"), Catch::Contains("needs lo > 0"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { log = [1, 4], points = 9 }\n"), Catch::Contains("rounds to the same integer twice"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { linear = [1, 4] }\n"), Catch::Contains("needs points, step or factor in a grid"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { linear = [1, 4], step = 1, points = 4 }\n"), Catch::Contains("give one of points, step or factor"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = { linear = [1, 4], factor = 2 }\n"), Catch::Contains("'factor' applies to log ranges"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\n\"arch.tiers.hbm.read_bandwidth\" = { linear = [\"1 TB/s\", 2], points = 2 }\n"),
             Catch::Contains("every value must be of one kind"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = [0, 1]\n"), Catch::StartsWith(f + ":8:9: error: 'batch': must be at least 1"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ndtype = [\"bf16\", \"fp7\"]\n"), Catch::Contains("'fp7' is not an element type"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\nbatch = []\n"), Catch::Contains("'batch' has no values"));
  CHECK_THAT(err(std::string(kHead) + "zip = [[\"batch\", \"tp\"]]\n[parameters]\nbatch = [1, 2]\ntp = [1, 2, 4]\n"),
             Catch::Contains("zipped parameters must have as many values"));
  CHECK_THAT(err(std::string(kHead) + "zip = [[\"batch\", \"tpp\"]]\n[parameters]\nbatch = [1, 2]\n"), Catch::Contains("'tpp' is not a parameter"));
  CHECK_THAT(err(std::string(kHead) + "batch = 4\n[parameters]\nbatch = [1, 2]\n"), Catch::Contains("'batch' is already fixed in [sweep]: give it in one place"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[derived]\nlatency = \"tp\"\n"), Catch::Contains("'latency' is already a built-in output"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[derived]\nx = \"tp\"\n[outputs]\nx = \"tp\"\n"), Catch::Contains("'x' is already derived"));
  // Names are database columns: the fixed ones are taken, and case does not tell names apart.
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[outputs]\nhash = \"tp\"\n"), Catch::Contains("'hash' is already a column every sweep database has"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[outputs]\nStatus = \"tp\"\n"), Catch::Contains("'Status' is already a column"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[derived]\nX = \"tp\"\n[outputs]\nx = \"tp\"\n"), Catch::Contains("'x' is already derived"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[derived]\nx = \"tp * y\"\n"), Catch::StartsWith(f + ":10:11: error: in expression"));
  CHECK_THAT(err(std::string(kHead) + "constraints = [\"latency <= \"]\n[parameters]\ntp = [1]\n"), Catch::StartsWith(f + ":7:28: error: in expression \"latency <= \": expected a number"));
  CHECK_THAT(err(std::string(kHead) + "objectives = [\"latency\", \"speed\"]\n[parameters]\ntp = [1]\n"), Catch::Contains("objective 'speed' is not an output"));
  CHECK_THAT(err(std::string(kHead) + "objectives = [\"latency\", \"memory_fit\"]\n[parameters]\ntp = [1]\n"), Catch::Contains("has no direction"));
  CHECK_THAT(err(std::string(kHead) + "power_cap = \"400 W\"\n[parameters]\ntp = [1]\n"), Catch::Contains("power_cap needs mode = \"mapped\""));
  CHECK_THAT(err(std::string(kHead) + "samples = 5\n[parameters]\ntp = [1]\n"), Catch::Contains("apply to design = \"random\" or \"lhs\""));
  CHECK_THAT(err("[sweep]\nmodel = \"llama-3-8b\"\nphase = \"decode\"\n[parameters]\ntp = [1]\n"), Catch::Contains("the sweep sets no 'arch'"));
  CHECK_THAT(err("[sweep]\narch = \"h100\"\nphase = \"decode\"\n[parameters]\nmodel = [\"llama-3-8b\", \"no-such-model\"]\n"),
             Catch::StartsWith(f + ":6:9: error: model 'no-such-model': no such file, and no shipped model of that name"));
  CHECK_THAT(err(std::string(kHead) + "[parameters]\ntp = [1]\n[variables]\n\"arch.x\" = [1]\n"), Catch::Contains("must be a plain name"));
  CHECK_THAT(err(std::string(kHead) + "frobnicate = 1\n[parameters]\ntp = [1]\n"), Catch::Contains("unknown key 'frobnicate'"));
}

TEST_CASE("sweep evaluation: roofline and mapped agree in shape, constraints prune before mapping", "[sweep]") {
  const std::string dir = scratch("eval");
  const std::string body = "[parameters]\nbatch = [1, 64]\ncontext = [2048]\ntp = [1, 2]\n";
  const SweepSpec roof = load_sweep(spec_file(dir, std::string(kHead) + body));
  std::string mapped_head = kHead;
  mapped_head.replace(mapped_head.find("roofline"), 8, "mapped");
  const SweepSpec map = load_sweep(spec_file(dir + "/mapped", mapped_head + body));
  PointEvaluator re(roof), me(map);
  std::vector<Cell> r, m;
  const auto cols = sweep_columns(roof);
  auto col = [&](const std::string& name) { return column(cols, name); };
  for (int64_t i = 0; i < roof.total; ++i) {
    re.run(i, r);
    me.run(i, m);
    REQUIRE(r[kStatusColumn].s == "ok");
    REQUIRE(m[kStatusColumn].s == "ok");
    CHECK(r[kHashColumn].i != m[kHashColumn].i);  // another mode is another point
    const double rl = r[col("latency")].d, ml = m[col("latency")].d;
    // The roofline leaves out launches, fusion and activations: a lower bound within 2x here.
    CHECK(rl <= ml * 1.01);
    CHECK(rl >= ml * 0.5);
    CHECK(r[col("weights")].d == Approx(m[col("weights")].d).epsilon(0.02));
    CHECK(r[col("kv_cache")].d == Approx(m[col("kv_cache")].d).epsilon(0.02));
  }
  // Pruned before any mapping: an 8B model does not fit a 10 GB device.
  const SweepSpec small = load_sweep(spec_file(dir, std::string(kHead) + "constraints = [\"memory_fit\", \"capacity >= 20 GB\"]\n" + body), {});
  PointEvaluator pe(small);
  pe.run(0, r);
  CHECK(r[kStatusColumn].s == "ok");
  const SweepSpec tiny = load_sweep(spec_file(dir, std::string(kHead) + "constraints = [\"memory_fit\"]\n[parameters]\n\"arch.tiers.hbm.capacity\" = [\"10 GB\"]\n"));
  PointEvaluator te(tiny);
  te.run(0, r);
  CHECK(r[kStatusColumn].s == "pruned");
  CHECK(r[kErrorColumn].s == "memory_fit");
  CHECK(te.mappings() == 0);
  // A constraint on an output marks the point infeasible after evaluation.
  const SweepSpec slow = load_sweep(spec_file(dir, std::string(kHead) + "constraints = [\"latency <= 1 us\"]\n" + body));
  PointEvaluator se(slow);
  se.run(0, r);
  CHECK(r[kStatusColumn].s == "infeasible");
  // A TP that does not divide the model is an error row, not an abort.
  const SweepSpec bad = load_sweep(spec_file(dir, std::string(kHead) + "[parameters]\ntp = [3]\n"));
  PointEvaluator be(bad);
  be.run(0, r);
  CHECK(r[kStatusColumn].s == "error");
  CHECK_THAT(r[kErrorColumn].s, Catch::Contains("does not divide"));
  // A derived value or an output that is not finite makes an error row (not NULL with ok).
  const SweepSpec div0 = load_sweep(spec_file(dir, std::string(kHead) + "[parameters]\nbatch = [1]\n[derived]\nx = \"batch / 0\"\n"));
  PointEvaluator de(div0);
  de.run(0, r);
  CHECK(r[kStatusColumn].s == "error");
  CHECK_THAT(r[kErrorColumn].s, Catch::Contains("derived 'x' = inf is not a finite number (batch / 0)"));
  const SweepSpec out0 = load_sweep(spec_file(dir, std::string(kHead) + "[parameters]\nbatch = [1]\n[outputs]\ny = \"latency / 0\"\n"));
  PointEvaluator oe(out0);
  oe.run(0, r);
  CHECK(r[kStatusColumn].s == "error");
  CHECK_THAT(r[kErrorColumn].s, Catch::Contains("output 'y' is infinite"));
}

TEST_CASE("sweep evaluation: expert parallelism in both modes", "[sweep][ep]") {
  // Qwen3-30B-A3B decode on H100s, experts split 1, 4 and 8 ways (one device per group).
  const std::string dir = scratch("ep");
  const std::string head = fmt::format("[sweep]\narch = \"h100\"\nmodel = \"{}\"\nphase = \"decode\"\n", data("configs/Qwen--Qwen3-30B-A3B.json"));
  const std::string body = "[parameters]\nbatch = [64]\ncontext = [4096]\nep = [1, 4, 8]\n";
  const SweepSpec roof = load_sweep(spec_file(dir, head + "mode = \"roofline\"\n" + body));
  const SweepSpec map = load_sweep(spec_file(dir + "/mapped", head + "mode = \"mapped\"\n" + body));
  PointEvaluator re(roof), me(map);
  const auto cols = sweep_columns(roof);
  auto col = [&](const std::string& name) { return column(cols, name); };
  std::vector<Cell> r, m;
  double weights1 = 0;
  for (int64_t i = 0; i < roof.total; ++i) {
    re.run(i, r);
    me.run(i, m);
    REQUIRE(r[kStatusColumn].s == "ok");
    REQUIRE(m[kStatusColumn].s == "ok");
    const double ep = i == 0 ? 1 : i == 1 ? 4 : 8;
    CHECK(r[col("devices")].d == ep);
    CHECK(m[col("devices")].d == ep);
    // Each device holds its share of the experts; both modes agree on the bytes.
    CHECK(r[col("weights")].d == Approx(m[col("weights")].d).epsilon(0.02));
    CHECK(r[col("kv_cache")].d == Approx(m[col("kv_cache")].d).epsilon(0.02));
    if (i == 0) weights1 = m[col("weights")].d;
    else CHECK(m[col("weights")].d < weights1 / ep * 1.5 + 2e9);
    // The roofline stays a lower bound of the mapped step, all-to-alls included.
    CHECK(r[col("latency")].d <= m[col("latency")].d * 1.01);
    CHECK(r[col("latency")].d >= m[col("latency")].d * 0.4);
    CHECK(r[col("throughput")].d == Approx(64 / r[col("latency")].d));
  }
  // TP within the groups: the experts stay whole, so a device's expert work is its share of
  // every group's pairs; the roofline stays a lower bound within 2.5x.
  const std::string tp2 = "[parameters]\nbatch = [64]\ncontext = [4096]\ntp = [2]\nep = [8]\n";
  const SweepSpec roof2 = load_sweep(spec_file(dir, head + "mode = \"roofline\"\n" + tp2));
  const SweepSpec map2 = load_sweep(spec_file(dir + "/mapped", head + "mode = \"mapped\"\n" + tp2));
  PointEvaluator r2(roof2), m2(map2);
  r2.run(0, r);
  m2.run(0, m);
  REQUIRE(r[kStatusColumn].s == "ok");
  REQUIRE(m[kStatusColumn].s == "ok");
  CHECK(r[col("latency")].d <= m[col("latency")].d * 1.01);
  CHECK(r[col("latency")].d >= m[col("latency")].d * 0.4);
  // Expert parallelism needs experts, a split of them and a multiple of tp: error rows.
  for (const auto& [extra, message] : std::vector<std::pair<std::string, std::string>>{
           {"ep = [3]\n", "ep 3 does not divide the 128 experts"}, {"ep = [4]\ntp = [8]\n", "ep 4 is not a multiple of tp 8"}}) {
    const SweepSpec bad = load_sweep(spec_file(dir, head + "mode = \"roofline\"\n[parameters]\n" + extra));
    PointEvaluator be(bad);
    be.run(0, r);
    CHECK(r[kStatusColumn].s == "error");
    CHECK_THAT(r[kErrorColumn].s, Catch::Contains(message));
  }
  const SweepSpec dense = load_sweep(spec_file(dir, std::string(kHead) + "[parameters]\nep = [2]\n"));
  PointEvaluator de(dense);
  de.run(0, r);
  CHECK_THAT(r[kErrorColumn].s, Catch::Contains("has no experts to split"));
}

TEST_CASE("sweep evaluation: emulated matrix products are an error unless the sweep asks for them", "[sweep][emulate]") {
  const std::string dir = scratch("emulate");
  const std::string head = "[sweep]\narch = \"a100\"\nmodel = \"llama-3-8b\"\nphase = \"decode\"\nmode = \"mapped\"\ndtype = \"fp8\"\n";
  const std::string body = "[parameters]\nbatch = [1]\ncontext = [1024]\n";
  std::vector<Cell> row;
  const SweepSpec plain = load_sweep(spec_file(dir, head + body)), emulating = load_sweep(spec_file(dir + "/asked", head + "emulate = true\n" + body));
  PointEvaluator refused(plain);  // (an evaluator keeps a reference to its spec)
  refused.run(0, row);
  CHECK(row[kStatusColumn].s == "error");
  CHECK_THAT(row[kErrorColumn].s, Catch::Contains("fp8 matrix products computed at bf16: no array of A100-SXM4-80GB runs them at fp8"));
  PointEvaluator asked(emulating);
  asked.run(0, row);
  CHECK(row[kStatusColumn].s == "ok");
  CHECK_THAT(error_of([&] { load_sweep(spec_file(dir + "/bad", head + "emulate = 2\n" + body)); }), Catch::Contains("emulate"));
}

TEST_CASE("sweep evaluation: pipeline stages in mapped points, refused by the roofline", "[sweep][pp]") {
  const std::string dir = scratch("pp");
  const std::string head = "[sweep]\narch = \"h100\"\nmodel = \"llama-3-70b\"\nphase = \"decode\"\n";
  const std::string body = "[parameters]\nbatch = [8]\ncontext = [4096]\ntp = [4]\npp = [2]\n";
  const SweepSpec mapped = load_sweep(spec_file(dir, head + "mode = \"mapped\"\n" + body)), roof = load_sweep(spec_file(dir + "/roof", head + "mode = \"roofline\"\n" + body));
  const auto cols = sweep_columns(mapped);
  std::vector<Cell> row;
  PointEvaluator me(mapped), re(roof);
  me.run(0, row);
  REQUIRE(row[kStatusColumn].s == "ok");
  CHECK(row[column(cols, "devices")].d == 8);
  // As run prices it.
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 8;
  o.phase.context = 4096;
  o.tp = 4;
  o.pp = 2;
  o.check_memory = false;
  o.mapper.max_tiles = mapped.max_tiles;
  const RunReport r = run_model(load_model("llama-3-70b"), with_runtime(load_arch("h100"), default_runtime(), PhaseKind::Decode), o);
  CHECK(row[column(cols, "latency")].d == Approx(r.step_time).epsilon(1e-9));
  CHECK(row[column(cols, "weights")].d == Approx(r.memory.front().weights).epsilon(1e-9));
  re.run(0, row);
  CHECK(row[kStatusColumn].s == "error");
  CHECK_THAT(row[kErrorColumn].s, Catch::Contains("pp > 1 needs mode = \"mapped\""));
  CHECK_THAT(error_of([&] { load_sweep(spec_file(dir + "/bad", head + "[parameters]\npp = [0]\n")); }), Catch::Contains("must be at least 1"));
}

TEST_CASE("sweep evaluation: a derived arch key changes the hardware", "[sweep]") {
  const SweepSpec s = load_sweep(data("sweep-mapped.toml"));
  CHECK(s.total == 9);
  PointEvaluator ev(s);
  std::vector<Cell> slow, fast;
  ev.run(0, slow);  // batch 1, 2 TB/s
  ev.run(2, fast);  // batch 1, 5 TB/s
  const auto cols = sweep_columns(s);
  size_t lat = 0, bw = 0;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i].name == "latency") lat = i;
    if (cols[i].name == "arch.tiers.hbm.read_bandwidth") bw = i;
  }
  CHECK(slow[bw].d == 2e12);
  CHECK(fast[bw].d == 5e12);
  // Decode at batch 1 is bound by HBM, but kernel launches do not speed up: 2.5x the
  // bandwidth is between 1.8x and 2.5x faster.
  CHECK(slow[lat].d / fast[lat].d > 1.8);
  CHECK(slow[lat].d / fast[lat].d < 2.5);
}

TEST_CASE("sweep store: resume, shards, merge and export", "[sweep]") {
  const std::string dir = scratch("store");
  const SweepSpec s = load_sweep(data("sweep-small.toml"));
  std::ostringstream progress;
  SweepOptions o;
  o.jobs = 2;
  o.db = dir + "/all.sqlite";
  const SweepOutcome full = run_sweep(s, o, progress);
  CHECK(full.evaluated == 48);
  CHECK(full.rows == 48);
  CHECK(full.ok + full.pruned + full.infeasible + full.errors == 48);
  CHECK(full.pruned > 0);      // 128K tokens x 32 requests does not fit one H100
  CHECK(full.infeasible > 0);  // the latency bound
  CHECK(progress.str().empty());  // quiet unless asked (a terminal)
  // Resuming a finished sweep evaluates nothing.
  const SweepOutcome again = run_sweep(s, o, progress);
  CHECK(again.evaluated == 0);
  CHECK(again.stored == 48);
  // A sweep stopped part way continues where it stopped.
  SweepOptions part = o;
  part.db = dir + "/part.sqlite";
  part.limit = 20;
  CHECK(run_sweep(s, part, progress).evaluated == 20);
  part.limit = 0;
  const SweepOutcome rest = run_sweep(s, part, progress);
  CHECK(rest.evaluated == 28);
  CHECK(rest.stored == 20);
  CHECK(exported(part.db) == exported(o.db));
  // Shards partition the points; merging them (twice) gives the full sweep.
  std::vector<std::string> shards;
  for (int i = 0; i < 3; ++i) {
    SweepOptions sh = o;
    sh.db = dir + fmt::format("/shard{}.sqlite", i);
    sh.shard = i;
    sh.shards = 3;
    CHECK(run_sweep(s, sh, progress).evaluated == 16);
    shards.push_back(sh.db);
  }
  // On a terminal: a progress line with the rate and the ETA.
  SweepOptions shown = o;
  shown.db = dir + "/shown.sqlite";
  shown.progress = true;
  std::ostringstream line;
  run_sweep(s, shown, line);
  CHECK_THAT(line.str(), Catch::Contains("48 / 48 points (100.0%)") && Catch::Contains("points/s  ETA"));
  CHECK(merge_dbs(shards, dir + "/merged.sqlite") == 48);
  CHECK(merge_dbs(shards, dir + "/merged.sqlite") == 0);
  CHECK(exported(dir + "/merged.sqlite") == exported(o.db));
  // Export: CSV with a header and 48 rows; JSON an array of 48 objects.
  const std::string csv = exported(o.db);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 49);
  CHECK_THAT(csv, Catch::StartsWith("hash,idx,status,error,batch,context,tp,devices,"));
  std::ostringstream js;
  export_db(o.db, "json", "ok", js);
  const auto doc = nlohmann::json::parse(js.str());
  CHECK(static_cast<int64_t>(doc.size()) == full.ok);
  CHECK(doc[0]["status"] == "ok");
  CHECK(doc[0]["hash"].get<std::string>().size() == 16);
  // Another sweep's database is refused, as is merging it.
  const SweepSpec other = load_sweep(data("sweep-mapped.toml"));
  CHECK_THAT(error_of([&] { run_sweep(other, o, progress); }), Catch::Contains("the database holds another sweep"));
  SweepOptions od = o;
  od.db = dir + "/other.sqlite";
  od.limit = 1;
  run_sweep(other, od, progress);
  CHECK_THAT(error_of([&] { merge_dbs({o.db, od.db}, dir + "/bad.sqlite"); }), Catch::Contains("holds another sweep"));
}

TEST_CASE("a database that fails mid-sweep is a located error, not a crash", "[sweep][errors]") {
  const std::string dir = scratch("dbfail");
  const SweepSpec s = load_sweep(data("sweep-small.toml"));
  // The sweep's own table, with a trigger that refuses feasible points: inserts fail while
  // the workers run.
  const std::string db = dir + "/x.sqlite";
  {
    SweepDb d(db, true);
    d.prepare(sweep_columns(s), sweep_meta(s));
    d.exec("CREATE TRIGGER refuse BEFORE INSERT ON points WHEN NEW.status = 'ok' BEGIN SELECT RAISE(ABORT, 'refused'); END");
  }
  SweepOptions o;
  o.db = db;
  o.jobs = 2;
  std::ostringstream progress;
  CHECK_THAT(error_of([&] { run_sweep(s, o, progress); }), Catch::StartsWith(db + ": error: database error") && Catch::Contains("refused"));
}

TEST_CASE("Pareto fronts: non-dominated points in two and three objectives", "[sweep]") {
  const std::vector<std::vector<double>> two = {{1, 5}, {2, 3}, {3, 4}, {4, 1}, {2, 3}, {5, 0.5}, {0.5, 9}};
  auto front = non_dominated(two);
  std::set<size_t> f(front.begin(), front.end());
  CHECK(f == std::set<size_t>{0, 1, 3, 5, 6});  // {3,4} is dominated by {2,3}; the duplicate {2,3} once
  // Three objectives against brute force on a pseudo-random cloud.
  std::vector<std::vector<double>> three;
  uint64_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    std::vector<double> p;
    for (int d = 0; d < 3; ++d) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      p.push_back(static_cast<double>(x >> 40));
    }
    three.push_back(p);
  }
  front = non_dominated(three);
  std::set<size_t> brute;
  for (size_t i = 0; i < three.size(); ++i) {
    bool dom = false;
    for (size_t j = 0; j < three.size() && !dom; ++j)
      dom = j != i && three[j][0] <= three[i][0] && three[j][1] <= three[i][1] && three[j][2] <= three[i][2] && three[j] != three[i];
    if (!dom) brute.insert(i);
  }
  CHECK(std::set<size_t>(front.begin(), front.end()) == brute);
}

TEST_CASE("einsim sweep, pareto, export and merge on the command line", "[sweep][cli]") {
  const std::string dir = scratch("cli");
  const std::string db = dir + "/s.sqlite";
  const Run s = cli({"sweep", data("sweep-small.toml"), "--db", db, "--jobs", "2"});
  REQUIRE(s.code == 0);
  CHECK_THAT(s.out, Catch::Contains("sweep 'small': 48 points, 0 already stored, 48 evaluated"));
  const Run p = cli({"pareto", "--db", db, "--objectives", "latency,energy", "--plot", dir + "/p.svg"});
  REQUIRE(p.code == 0);
  CHECK_THAT(p.out, Catch::Contains("Pareto front of 'small'") && Catch::Contains("latency (min)") && Catch::Contains("energy_per_token (min)"));
  CHECK(fs::file_size(dir + "/p.svg") > 1000);
  const Run pj = cli({"pareto", "--db", db, "--format", "json"});
  REQUIRE(pj.code == 0);
  const auto doc = nlohmann::json::parse(pj.out);
  CHECK(doc["objectives"][0]["column"] == "latency");
  CHECK(doc["front"].size() >= 2);
  const Run pmax = cli({"pareto", "--db", db, "--objectives", "max:throughput,min:tokens_per_joule,power", "--format", "csv"});
  CHECK(pmax.code == 0);
  const Run e = cli({"export", "--db", db, "--format", "csv", "-o", dir + "/s.csv"});
  CHECK(e.code == 0);
  CHECK(fs::file_size(dir + "/s.csv") > 1000);
  const Run m = cli({"merge", db, "-o", dir + "/m.sqlite"});
  CHECK(m.code == 0);
  CHECK_THAT(m.out, Catch::Contains("48 new points, 48 in all"));
  // Errors: located, exit 1.
  CHECK(cli({"pareto", "--db", db, "--objectives", "latency,speed"}).err ==
        "--objectives: error: 'speed' is not an objective of this database (e.g. devices, weights, kv_cache, tdp, price, rate, latency, throughput, "
        "throughput_per_device, energy_per_token, power, cost_per_mtok, activations, memory, utilization, compute_time, allreduce_time, goodput, "
        "slo_attainment, ttft_p50, ttft_p99, tpot_p50, tpot_p99, prefix_hit_rate, or min:/max: and a column)\n");
  CHECK(cli({"pareto", "--db", db, "--objectives", "latency"}).code == 1);
  CHECK(cli({"pareto", "--db", db, "--plot", dir + "/c.svg", "--color-by", "gpu"}).err == "--color-by: error: 'gpu' is not a column of this database\n");
  CHECK(cli({"pareto", "--db", dir + "/none.sqlite"}).err == dir + "/none.sqlite: error: no such database\n");
  const Run not_db = cli({"export", "--db", dir + "/s.csv"});
  CHECK(not_db.code == 1);
  CHECK_THAT(not_db.err, Catch::StartsWith(dir + "/s.csv: error: cannot read the database (") && Catch::Contains("is it a sweep database"));
  // A database (and folder) the reader may not write: export and pareto read it all the same.
  const std::string ro = dir + "/ro";
  fs::create_directories(ro);
  fs::copy_file(dir + "/m.sqlite", ro + "/m.sqlite");
  fs::permissions(ro + "/m.sqlite", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  const Run roe = cli({"export", "--db", ro + "/m.sqlite", "--format", "json"});
  CHECK(roe.code == 0);
  CHECK(nlohmann::json::parse(roe.out).size() == 48);
  CHECK(cli({"pareto", "--db", ro + "/m.sqlite"}).code == 0);
  fs::permissions(ro, fs::perms::owner_all);
  CHECK(cli({"sweep", data("sweep-small.toml"), "--db", db, "--shard", "3/3"}).err ==
        "--shard: error: '3/3' is not a shard i/N with 0 <= i < N (e.g. 0/4)\n");
  CHECK(cli({"sweep", data("sweep-small.toml"), "--db", db, "--set", "sweep.mode=fast"}).code == 1);
  CHECK(cli({"sweep", data("sweep-small.toml"), "--db", dir}).code == 1);  // a directory is no database
  CHECK(cli({"merge", db, "-o", db}).code == 1);
  CHECK(cli({"check", data("sweep-small.toml")}).out == data("sweep-small.toml") + ": ok: sweep 'small', 3 parameters, 48 points (roofline)\n");
}

TEST_CASE("the shipped GPU comparison: one price source, TPOT bound, front coloured by GPU", "[sweep][cli]") {
  const std::string dir = scratch("gpus");
  const std::string db = dir + "/g.sqlite";
  const Run s = cli({"sweep", "gpu-comparison", "--db", db, "--jobs", "2"});
  REQUIRE(s.code == 0);
  CHECK_THAT(s.out, Catch::Contains("sweep 'gpu-comparison': 252 points"));
  const Run p = cli({"pareto", "--db", db, "--plot", dir + "/g.svg", "--color-by", "arch"});
  REQUIRE(p.code == 0);
  CHECK_THAT(p.out, Catch::Contains("latency (min)") && Catch::Contains("cost_per_mtok (min)"));
  std::ifstream in(dir + "/g.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* gpu : {"a100", "l40s", "rtx4090", "rtx5090", "h100", "h200", "b200"}) CHECK_THAT(svg, Catch::Contains(std::string("arch = ") + gpu));
  // Every point on the front meets the 50 ms TPOT and holds the model.
  const Run j = cli({"pareto", "--db", db, "--format", "json"});
  const auto doc = nlohmann::json::parse(j.out);
  REQUIRE(doc["front"].size() >= 2);
  for (const auto& row : doc["front"]) CHECK(row["latency"].get<double>() <= 0.050);
}

namespace {
// Runs einsim in a child process; returns its pid. Output goes to `log`.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (log + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> all = {EINSIM_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, EINSIM_BINARY, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

// Waits until the database holds at least one committed point (or the child has exited).
int64_t wait_for_rows(const std::string& db, pid_t pid) {
  for (int i = 0; i < 6000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::error_code ec;
    if (!fs::exists(db, ec)) continue;
    try {
      SweepDb d(db, false);
      if (d.has_points_table())
        if (const int64_t n = d.count(); n > 0) return n;
    } catch (const UserError&) {
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return -1;
  }
  return 0;
}
}  // namespace

TEST_CASE("a killed sweep loses no committed point, duplicates none, and resumes", "[sweep][kill]") {
  const std::string dir = scratch("kill");
  const std::string spec = data("sweep-kill.toml");
  const SweepSpec s = load_sweep(spec);
  for (const int sig : {SIGKILL, SIGINT, SIGTERM}) {
    const std::string db = dir + fmt::format("/k{}.sqlite", sig);
    const pid_t pid = spawn({"sweep", spec, "--db", db, "--jobs", "2"}, dir + "/log");
    const int64_t seen = wait_for_rows(db, pid);
    REQUIRE(seen > 0);  // committed while running: the kill lands mid-sweep
    kill(pid, sig);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    int64_t kept = 0;
    {
      SweepDb d(db, false);
      kept = d.count();
      CHECK(kept >= seen);
      CHECK(kept < s.total);
      // No point twice: as many distinct hashes as rows.
      CHECK(static_cast<int64_t>(d.hashes().size()) == kept);
    }
    if (sig == SIGKILL) {
      CHECK(WIFSIGNALED(status));
    } else {
      // A polite signal: the sweep commits what it has and says how to continue.
      REQUIRE(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 130);
      std::ifstream log(dir + "/log");
      std::stringstream text;
      text << log.rdbuf();
      CHECK_THAT(text.str(), Catch::Contains("interrupted: every committed point is kept"));
    }
    // The same command again finishes the sweep; every point once.
    const pid_t again = spawn({"sweep", spec, "--db", db, "--jobs", "2"}, dir + "/log2");
    REQUIRE(waitpid(again, &status, 0) == again);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    SweepDb d(db, false);
    CHECK(d.count() == s.total);
    CHECK(static_cast<int64_t>(d.hashes().size()) == s.total);
    CHECK(d.count("status IS NULL OR latency IS NULL AND status = 'ok'") == 0);
  }
}
