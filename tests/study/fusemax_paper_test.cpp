// The FuseMax study against the paper (Nayak et al., MICRO 2024): its headlines
// (docs/REFERENCES.md) and, per point, the latencies its artifact publishes
// (FPSG-UIUC/micro24-fusemax-artifact, data/pregenerated/attn-flat.csv, attn-proposal.csv,
// end2end-proposal.csv). Slow under sanitizers: its own executable, label `paper`.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "common/paths.h"
#include "sim/study/fusemax.h"

using namespace einsim;

namespace {

const FmStudy& whole_study() {
  static const FmStudy s = run_fusemax_study(FmOptions{});
  return s;
}

const FmStudy& artifact_study() {
  static const FmStudy s = [] {
    FmOptions o;
    o.reading = "artifact";
    return run_fusemax_study(o);
  }();
  return s;
}

const FmPoint& point(const std::string& model, int64_t seq) {
  for (const FmPoint& p : whole_study().points)
    if (p.model.name == model && p.seq == seq) return p;
  FAIL("no point " << model << " " << seq);
  return whole_study().points.front();
}

double at(const FmPoint& p, FmConfig c) { return p.attention[static_cast<size_t>(c)].latency; }

// One row of one of the artifact's per-point CSVs (data/published/fusemax-artifact): einsim's
// model name, the sequence length, and the row's fields (model, seq_len, traffic, latency, ...).
struct ArtifactRow {
  std::string model;
  int64_t seq = 0;
  std::vector<std::string> f;
  double num(size_t i) const { return std::stod(f.at(i)); }
};
std::vector<ArtifactRow> artifact_rows(const std::string& file) {
  const std::map<std::string, std::string> names = {{"BERT", "bert-base"}, {"TrXL", "trxl-wt103"}, {"T5", "t5-small-encoder"}, {"XLM", "xlm"}};
  const std::map<std::string, int64_t> seqs = {{"1K", 1 << 10}, {"4K", 1 << 12}, {"16K", 1 << 14}, {"64K", 1 << 16}, {"256K", 1 << 18}, {"1M", 1 << 20}};
  std::ifstream in(data_path("published/fusemax-artifact/" + file));
  REQUIRE(in);
  std::string line;
  std::getline(in, line);  // the header
  std::vector<ArtifactRow> out;
  while (std::getline(in, line)) {
    ArtifactRow r;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) r.f.push_back(x);
    if (names.count(r.f.at(0))) {  // per-point files; pareto.csv rows start with the design instead
      r.model = names.at(r.f.at(0));
      r.seq = seqs.at(r.f.at(1));
    }
    out.push_back(std::move(r));
  }
  return out;
}

const FmPoint& point_of(const FmStudy& s, const ArtifactRow& r) {
  for (const FmPoint& p : s.points)
    if (p.model.name == r.model && p.seq == r.seq) return p;
  FAIL("no point " << r.model << " " << r.seq);
  return s.points.front();
}

}  // namespace

TEST_CASE("where FLAT is compute-bound, FLAT and FuseMax latencies agree with the artifact within 2%", "[paper]") {
  // Seconds for one layer's attention, batch 64, all heads (the artifact's CSVs).
  struct Ref {
    const char* model;
    int64_t seq;
    double flat, fusemax;
  };
  const Ref refs[] = {
      {"bert-base", 1 << 10, 0.013386076595744681, 0.002013140425531915},
      {"bert-base", 1 << 14, 3.4268356085106384, 0.46516616170212766},
      {"bert-base", 1 << 16, 54.829369736170214, 7.402500357446808},
      {"xlm", 1 << 10, 0.017848102127659575, 0.005194076595744681},
      {"xlm", 1 << 14, 4.569114144680851, 1.1958228425531914},
  };
  for (const Ref& r : refs) {
    INFO(r.model << " at " << r.seq);
    const FmPoint& p = point(r.model, r.seq);
    CHECK(at(p, FmConfig::Flat) == Approx(r.flat).epsilon(0.02));
    CHECK(at(p, FmConfig::Binding) == Approx(r.fusemax).epsilon(0.02));
  }
  // The linear layers of one BERT-Base layer at 1K: 7.53 ms in the artifact.
  const FmPoint& b = point("bert-base", 1 << 10);
  const FmCost& e2e = b.end_to_end[static_cast<size_t>(FmConfig::Binding)];
  CHECK(e2e.latency / static_cast<double>(b.model.layers) - at(b, FmConfig::Binding) == Approx(0.0075296680851063835).epsilon(0.02));
}

TEST_CASE("FuseMax headlines: the gaps are the ones docs/STUDIES.md explains", "[paper]") {
  // The paper's four headlines, arithmetic means over the 24 points, against einsim's. Every
  // gap is bounded on both sides around today's figure (2026-12-04: +14.8%, -18.0%, +18.1%,
  // -12.5%; the tile tie-break toward fewer DRAM bytes moved the speedups 0.3-0.4 points, the
  // global buffer's access energy turned the energy gaps from +20.8% and +15.5% to -13.2% and
  // -8.7%, the chips' leakage (16.4 W and 16.6 W, which the artifact does not charge) moved
  // them to -18.0% and -12.5%): a change
  // that widens a gap fails, and so does one that narrows it, whose author then moves the
  // bounds and says in docs/STUDIES.md which gap closed and why.
  const std::vector<FmHeadline>& h = whole_study().headlines;
  REQUIRE(h.size() == 4);
  const double today[] = {0.148, -0.180, 0.181, -0.125};
  for (size_t i = 0; i < h.size(); ++i) {
    INFO(fmt::format("{}: paper {:.2f}, einsim {:.3f} ({:+.1f}%)", h[i].what, h[i].paper, h[i].einsim, 100 * h[i].error()));
    CHECK(h[i].error() == Approx(today[i]).margin(0.02));
  }
  // Speedups: above the paper (FLAT spills its 1M fibers through DRAM in einsim), by less
  // than a quarter.
  CHECK(h[0].error() > 0);
  CHECK(h[0].error() < 0.25);
  CHECK(h[2].error() > 0);
  CHECK(h[2].error() < 0.25);
  // Energy: FuseMax saves more than the paper says: einsim charges FLAT's softmax passes over
  // its on-chip fibers at every buffer access, its operand streams through the buffer, and the
  // leakage of FLAT's six-times-longer run (the artifact charges none of the three as einsim does).
  CHECK(h[1].einsim < 1);
  CHECK(h[1].error() < 0);
  CHECK(h[3].einsim < 1);
}

TEST_CASE("FuseMax's DRAM traffic against the artifact's: exact to 16K, its buffer used beyond", "[paper]") {
  // The tile search breaks latency ties toward the fewest DRAM bytes (the buffer holds more
  // queries), as FuseMax's design intends. Up to 16K einsim's traffic is the artifact's; from
  // 64K the artifact keeps twice the queries on chip (its per-query state is smaller than
  // einsim's buffer accounting), so einsim reads K and V twice as often: +67% to +94% today
  // (before the tie-break: 40-60x). Bounds sit just above today's figures.
  int checked = 0;
  for (const ArtifactRow& r : artifact_rows("attn-proposal.csv")) {
    INFO(r.model << " at " << r.seq);
    const double ours = point_of(whole_study(), r).attention[static_cast<size_t>(FmConfig::Binding)].dram_bytes, theirs = r.num(2);
    if (r.seq <= (1 << 14)) CHECK(ours == Approx(theirs).epsilon(0.01));
    else CHECK(ours / theirs < 2.0);
    CHECK(ours >= theirs * 0.99);
    ++checked;
  }
  CHECK(checked == 24);
}

TEST_CASE("FuseMax's per-Einsum 2D activity (Fig. 7) against the artifact's", "[paper]") {
  // attn-proposal.csv's QK, LM, SLN, SLD, SLNV: each Einsum's share of the latency on the 2D
  // array. einsim's agree within 3% (QK, SLNV, LM, SLD; its own scaling of Q, QS, is extra),
  // and SLN is 8/7 of the artifact's: einsim counts exp(x - max) as a subtract and the 7-cycle
  // exp, the artifact as 7 cycles (docs/STUDIES.md).
  int checked = 0;
  for (const ArtifactRow& row : artifact_rows("attn-proposal.csv")) {
    REQUIRE(row.f.size() == 12);
    INFO(row.f[0] << " " << row.f[1]);
    const FmCost& c = point_of(whole_study(), row).attention[static_cast<size_t>(FmConfig::Binding)];
    auto share = [&](const char* e) {
      for (const FmCost::Activity& x : c.activity)
        if (x.einsum == e) {
          CHECK(x.array == "2D");
          return x.share;
        }
      FAIL(e);
      return 0.0;
    };
    CHECK(share("BQK") == Approx(row.num(7)).epsilon(0.03));
    CHECK(share("LM") == Approx(row.num(8)).epsilon(0.03));
    CHECK(share("SLN") == Approx(row.num(9) * 8 / 7).epsilon(0.03));
    CHECK(share("SLD") == Approx(row.num(10)).epsilon(0.03));
    CHECK(share("SLNV") == Approx(row.num(11)).epsilon(0.03));
    ++checked;
  }
  CHECK(checked == 24);
}

TEST_CASE("the artifact's reading of the study: all four headlines within 10% of the paper", "[paper]") {
  // The reading applies the artifact's definitions (docs/STUDIES.md, "Two readings"): FLAT's
  // dataflow from FLAT's own table, Unfused's one-phase softmax, +Cascade's exp and subtract in
  // turn, the 1-pass phases and query tile, no pipeline fill, bypassed operands off the buffer.
  // Today: -0.3%, -4.8%, -1.0%, -1.7%; each bounded within 10% and pinned 2 points around today.
  const FmStudy& s = artifact_study();
  REQUIRE(s.headlines.size() == 4);
  const double today[4] = {-0.003, -0.048, -0.010, -0.017};
  for (size_t i = 0; i < 4; ++i) {
    INFO(s.headlines[i].what);
    CHECK(std::abs(s.headlines[i].error()) < 0.10);
    CHECK(s.headlines[i].error() == Approx(today[i]).margin(0.02));
  }
  // FuseMax's latency hardly moves between the readings (the artifact's phases against the
  // busier array, no fill): within 0.5%.
  for (size_t k = 0; k < s.points.size(); ++k)
    CHECK(s.points[k].attention[static_cast<size_t>(FmConfig::Binding)].latency ==
          Approx(whole_study().points[k].attention[static_cast<size_t>(FmConfig::Binding)].latency).epsilon(0.005));
  FmOptions bad;
  bad.reading = "paper";
  CHECK_THROWS_WITH(run_fusemax_study(bad), Catch::Contains("'paper' is not a reading: einsim or artifact"));
  FmOptions other;
  other.reading = "artifact";
  other.models = {"bert-base"};
  other.seqs = {1 << 21};
  CHECK_THROWS_WITH(run_fusemax_study(other), Catch::Contains("no row for bert-base at 2M"));
}

TEST_CASE("the artifact's reading, point by point: latency within 2% and DRAM traffic within 3% of the artifact's CSVs for all five configurations", "[paper]") {
  // Against attn-unfused, attn-flat, attn-cascade, attn-stall_proposal (+Architecture) and
  // attn-proposal (+Binding), 24 points each. Today: latency -0.2% to +1.6%, traffic -2.1% to
  // +2.2%. Energy (the artifact's Accelergy totals): FuseMax within 3%, FLAT +0.1% to +10.8%,
  // +Cascade up to +15.1%, Unfused +22% to +63% (einsim charges each DRAM word's buffer write and
  // read, and every pass of the softmax over an on-chip fiber; the artifact's per-action counts
  // come from Timeloop runs it does not publish per point); bounded just above.
  const FmStudy& s = artifact_study();
  struct File {
    const char* name;
    FmConfig cfg;
    double traffic, energy_lo, energy_hi;
  };
  int checked = 0;
  for (const File& f : {File{"attn-unfused.csv", FmConfig::Unfused, 0.03, 0.15, 0.66}, File{"attn-flat.csv", FmConfig::Flat, 0.03, 0.0, 0.12},
                        File{"attn-cascade.csv", FmConfig::Cascade, 0.01, 0.0, 0.17}, File{"attn-stall_proposal.csv", FmConfig::Architecture, 0.01, -0.03, 0.03},
                        File{"attn-proposal.csv", FmConfig::Binding, 0.01, -0.03, 0.03}}) {
    for (const ArtifactRow& row : artifact_rows(f.name)) {
      INFO(f.name << " " << row.f[0] << " " << row.f[1]);
      const FmCost& c = point_of(s, row).attention[static_cast<size_t>(f.cfg)];
      CHECK(c.latency == Approx(row.num(3)).epsilon(0.02));
      CHECK(c.dram_bytes == Approx(row.num(2)).epsilon(f.traffic));
      const double energy = c.energy / (row.num(4) * 1e-12) - 1;  // the CSVs give pJ
      CHECK(energy >= f.energy_lo);
      CHECK(energy < f.energy_hi);
      if (f.cfg == FmConfig::Architecture || f.cfg == FmConfig::Binding) {
        // Fig. 7: the matrix products' shares of the 2D array's time (QK, SLNV columns).
        for (const auto& [name, col] : {std::pair{"BQK", size_t{7}}, std::pair{"SLNV", size_t{11}}}) {
          auto it = std::find_if(c.activity.begin(), c.activity.end(), [&](const FmCost::Activity& x) { return x.einsum == name; });
          REQUIRE(it != c.activity.end());
          CHECK(it->share == Approx(row.num(col)).epsilon(0.03));
        }
      }
      ++checked;
    }
  }
  CHECK(checked == 120);
}

TEST_CASE("area: the artifact's table per component, and the Fig. 12 sweep against its pareto.csv", "[paper]") {
  // Per PE: FuseMax a MAC (1,545 um^2), a max unit (49.29) and 133 um^2 per register word; its
  // 1D PEs add a divider (23,740); the buffer at 2.807 um^2 per byte (94.18 mm^2 for 32 MiB).
  const FmArea a = fm_area(true, 256, 16.0 * (1 << 20), 32, 32);
  CHECK(a.array_2d == Approx(65536 * (1545 + 49.29 + 4256.0)));
  CHECK(a.array_1d == Approx(256 * (1545 + 49.29 + 23740 + 4256.0)));
  CHECK(a.buffer == Approx(9.418e7 / 2));
  const FmArea f = fm_area(false, 256, 32.0 * (1 << 20), 16, 16);
  CHECK(f.array_2d == Approx(65536 * (1545 + 1838.0)));
  CHECK(f.buffer == Approx(9.418e7));
  CHECK_THROWS_AS(fm_area(true, 0, 1, 1, 1), InternalError);
  // The sweep under the artifact's reading against the artifact's pareto.csv (24 designs):
  // latency +0.4% to +0.8% (einsim's subtract in exp(x - max)), DRAM traffic exact, the 2D
  // array's area -0.8% to 0 and the total -2.1% to -1.0% (its buffer's CACTI area is not linear
  // in bytes). Bounds just above.
  FmOptions o;
  o.reading = "artifact";
  o.seqs = {1 << 10};
  o.pareto = true;
  const FmStudy s = run_fusemax_study(o);
  REQUIRE(s.pareto.size() == 24);
  int checked = 0;
  for (const ArtifactRow& row : artifact_rows("pareto.csv")) {
    // pareto.csv: accel, model, PE_dim, traffic, mem_lat, comp_2d_lat, comp_1d_lat, latency, array_2d_area, area
    const std::map<std::string, std::string> names = {{"BERT", "bert-base"}, {"TrXL", "trxl-wt103"}, {"T5", "t5-small-encoder"}, {"XLM", "xlm"}};
    const int64_t dim = std::stoll(row.f.at(2));
    INFO(row.f[1] << " " << dim);
    auto it = std::find_if(s.pareto.begin(), s.pareto.end(), [&](const FmParetoPoint& p) { return p.model == names.at(row.f[1]) && p.pe_dim == dim; });
    REQUIRE(it != s.pareto.end());
    CHECK(!it->memory_bound);
    CHECK(it->latency == Approx(row.num(7)).epsilon(0.01));
    CHECK(it->dram_bytes == Approx(row.num(3)).epsilon(0.002));
    CHECK(it->area.array_2d == Approx(row.num(8)).epsilon(0.01));
    CHECK(it->area.total() == Approx(row.num(9)).epsilon(0.025));
    ++checked;
  }
  CHECK(checked == 24);
  FmOptions bad = o;
  bad.pe_dims = {48};
  CHECK_THROWS_WITH(run_fusemax_study(bad), Catch::Contains("array side 48 must be a power of two"));
}
