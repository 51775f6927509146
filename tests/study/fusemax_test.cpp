#include <catch2/catch.hpp>

#include <cmath>

#include "sim/study/fusemax.h"

using namespace einsim;

TEST_CASE("FuseMax binding: 2D and 1D busy cycles per 256x256 tile, by hand", "[study]") {
  // One key block (M0 = 256) against one tile of 256 queries (P0), 16-bit words.
  // 2D array (256 x 256 PEs, one (m0, p0) score per PE):
  //   BQK  = QS . BK over E:       E MACs per PE                    -> E cycles
  //   LM   = max over m0 of BQK:   255 max per query, 65536 PEs      -> 255/256 cycle
  //   SLN  = exp(BQK - RM):        1 subtract + exp at 1/7 per cycle -> 1 + 7 = 8 cycles
  //   SLD  = sum over m0 of SLN:   255 adds per query                -> 255/256 cycle
  //   SLNV = SLN . BV over m0:     F MACs per PE (m0 reduced across the array) -> F cycles
  //   total: 2E + 8 + 2 x 255/256 = 137.99 (E = 64), 265.99 (E = 128)
  // 1D array (256 PEs, one query each):
  //   RM max 1, PRM = exp(RM - RM') 1 + 7, SPD mul 1, RD add 1, SPNV F muls, RNV F adds
  //   total: 2F + 11 = 139 (F = 64), 267 (F = 128)
  // The exp rate in the preset is 0.142857 per cycle (1/7 to six digits): 7.000007 cycles.
  const double exp_cycles = 1 / 0.142857;
  for (int64_t e : {64, 128}) {
    INFO("E = F = " << e);
    const FmTileCycles t = fusemax_tile_cycles(e);
    CHECK(t.cycles_2d == Approx(2.0 * static_cast<double>(e) + 1 + exp_cycles + 2 * 255.0 / 256).epsilon(1e-9));
    CHECK(t.cycles_1d == Approx(2.0 * static_cast<double>(e) + 1 + 1 + exp_cycles + 1 + 1).epsilon(1e-9));
    // The binding balances the arrays: neither idles more than 1% of the tile.
    CHECK(t.cycles_2d / t.cycles_1d > 0.99);
  }
}

TEST_CASE("the pass analysis in action: 3-pass buffer grows with length, 1-pass stays flat, FLAT turns memory-bound", "[study]") {
  FmOptions o;
  o.models = {"bert-base"};
  o.seqs = {1 << 10, 1 << 16, 1 << 20};
  const FmStudy s = run_fusemax_study(o);
  REQUIRE(s.passes.size() == 3);
  for (const FmPassRow& r : s.passes) {
    CHECK(r.passes_3 == 3);
    CHECK(r.passes_1 == 1);
  }
  // One 256-query tile of the 3-pass cascade holds its whole score fibers: 256 x M x 2 bytes
  // (rewritten in place by the softmax) beside the tile's 256 x 64 queries while the scores
  // are made, and beside its 256 x 64 outputs while they accumulate. The per-query max and
  // sum (256 x 2 bytes each) peak lower: the queries are dead once the scores exist, and the
  // sum once the normalised scores are.
  for (const FmPassRow& r : s.passes) CHECK(r.buffer_3 == Approx(256.0 * static_cast<double>(r.seq) * 2 + 256 * 64 * 2).epsilon(1e-6));
  CHECK(s.passes[0].buffer_1 == s.passes[2].buffer_1);
  CHECK(s.passes[0].buffer_1 < 256 * 1024);
  // FLAT: at 1K K and V stay on chip, nothing spills and the 1D array bounds it; at 1M a
  // row's fiber alone is 2 MiB: either K and V stream once per handful of rows or the fibers
  // spill, and DRAM bounds it either way.
  CHECK(s.passes[0].flat_bottleneck == "1D array");
  CHECK(s.passes[0].flat_kv_read_once);
  CHECK(s.passes[0].flat_spilled == 0);
  CHECK(s.passes[2].flat_bottleneck == "DRAM bandwidth");
  CHECK_FALSE(s.passes[2].flat_kv_read_once);
  CHECK(s.passes[2].flat_dram_share == Approx(1));
  // FuseMax needs no more buffer at 1M than at 1K (the 1-pass tile above); given the choice
  // between equally fast tiles it takes the one that moves the fewest DRAM bytes, so at 64K
  // and 1M it fills most of its 16 MiB with queries' state to read K and V fewer times, and at
  // 1K (where K and V are read once anyway) it stays small. FLAT's grows with the score fibers
  // until the buffer is full.
  const auto binding = static_cast<size_t>(FmConfig::Binding), flat = static_cast<size_t>(FmConfig::Flat);
  const auto& p0 = s.points[0].attention, &p1 = s.points[1].attention, &p2 = s.points[2].attention;
  const double buffer = 16.0 * (1 << 20);
  for (const auto* p : {&p1, &p2}) {
    CHECK((*p)[binding].buffer_bytes <= buffer);
    CHECK((*p)[binding].buffer_bytes > 0.5 * buffer);
  }
  CHECK(p0[binding].buffer_bytes < 0.1 * buffer);
  CHECK(p2[binding].dram_bytes / p2[binding].latency <= p0[binding].dram_bytes / p0[binding].latency * 1.01);
  CHECK(p1[flat].buffer_bytes > 50 * p0[flat].buffer_bytes);
  CHECK(p2[binding].util_2d > 0.98);
  // The ablation's order at every point: each step is no slower than the one before it from
  // +Cascade on (FLAT to +Cascade removes the spill, +Architecture moves exp to the 2D array,
  // +Binding overlaps the arrays).
  for (const FmPoint& p : s.points) {
    const auto& a = p.attention;
    CHECK(a[static_cast<size_t>(FmConfig::Cascade)].latency <= a[static_cast<size_t>(FmConfig::Flat)].latency * 1.001);
    CHECK(a[static_cast<size_t>(FmConfig::Architecture)].latency < a[static_cast<size_t>(FmConfig::Cascade)].latency);
    CHECK(a[static_cast<size_t>(FmConfig::Binding)].latency < a[static_cast<size_t>(FmConfig::Architecture)].latency);
  }
}

TEST_CASE("FuseMax study: bad requests are clear errors", "[study][errors]") {
  FmOptions o;
  o.models = {"no-such-model"};
  o.seqs = {1024};
  CHECK_THROWS_AS(run_fusemax_study(o), UserError);
  o.models = {"bert-base"};
  o.seqs = {1000};
  CHECK_THROWS_WITH(run_fusemax_study(o), Catch::Contains("sequence length 1000 must be a power of two of at least 256"));
  o.seqs = {};
  CHECK_THROWS_WITH(run_fusemax_study(o), Catch::Contains("no sequence lengths"));
}

TEST_CASE("FuseMax study under the artifact reading: FuseMax's buffer sizes its query tile and FLAT's table is not overridden", "[study]") {
  // 64K BERT: the artifact's 16 MiB holds 32K queries' state (260 B each), two passes over K
  // and V; 8 MiB holds 16K, four passes.
  FmOptions o;
  o.reading = "artifact";
  o.models = {"bert-base"};
  o.seqs = {1 << 16};
  const FmCost full = run_fusemax_study(o).points[0].attention[static_cast<size_t>(FmConfig::Binding)];
  o.fusemax_sets = {"arch.levels.gbuf.capacity=\"8 MiB\""};
  const FmCost half = run_fusemax_study(o).points[0].attention[static_cast<size_t>(FmConfig::Binding)];
  CHECK(full.rows == 32768);
  CHECK(half.rows == 16384);
  const double head = 768.0, pass = 2.0 * 65536 * 64 * 2;  // per (batch, head): K and V once
  CHECK(half.dram_bytes - full.dram_bytes == Approx(2 * pass * head));
  o.fusemax_sets.clear();
  o.flat_sets = {"arch.levels.gbuf.capacity=\"64 MiB\""};
  CHECK_THROWS_WITH(run_fusemax_study(o), Catch::Contains("--set: error:") && Catch::Contains("the artifact reading takes FLAT's dataflow from its table"));
  o.flat_sets = {"arch.arrays.pe2d.shape=[128, 128]"};
  CHECK_THROWS_AS(run_fusemax_study(o), UserError);
}
