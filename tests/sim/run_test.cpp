// Whole-cascade evaluation (`einsim run`): fusion, loop ranks, TP, memory and the cache.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <set>

#include "../workloads/helpers.h"
#include "arch/collective.h"
#include "arch/runtime.h"
#include "sim/run/placement.h"
#include "sim/run/run.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

using namespace einsim;
using einsim::test::error_of;
using einsim::test::shipped;

namespace {

const ModelConfig& llama2_7b() {
  static const ModelConfig m = load_model(shipped("models/llama-2-7b.toml"));
  return m;
}

// A decode step at `tokens` of context or a prefill of `tokens` per request, first `layers` layers.
RunOptions step(PhaseKind kind, int64_t batch, int64_t tokens, int64_t layers) {
  RunOptions o;
  o.phase.kind = kind;
  o.phase.batch = batch;
  (kind == PhaseKind::Decode ? o.phase.context : o.phase.prompt) = tokens;
  o.phase.layers = layers;
  return o;
}
RunOptions decode(int64_t batch, int64_t context, int64_t layers = 2) { return step(PhaseKind::Decode, batch, context, layers); }
RunOptions prefill(int64_t batch, int64_t prompt, int64_t layers = 2) { return step(PhaseKind::Prefill, batch, prompt, layers); }

double tier_bytes(const RunReport& r) {
  double b = 0;
  for (const BlockRun& x : r.blocks) b += x.traffic[0].read_bytes + x.traffic[0].write_bytes;
  return b;
}

const BlockRun* block_with(const RunReport& r, const std::string& einsum) {
  for (const BlockRun& b : r.blocks)
    for (int i : b.einsums)
      if (r.einsums[static_cast<size_t>(i)].name == einsum) return &b;
  return nullptr;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST_CASE("run: blocks partition the Einsums and add up to the step", "[run]") {
  const ArchSpec a = load_arch("h100");
  for (const RunOptions& o : {decode(4, 1000), prefill(2, 512)}) {
    const RunReport r = run_model(llama2_7b(), a, o);
    const Cascade c = bind_cascade(transformer_cascade(llama2_7b(), o.phase));
    std::set<int> seen;
    double sum = 0;
    for (const BlockRun& b : r.blocks) {
      sum += b.time;
      for (int i : b.einsums) CHECK(seen.insert(r.einsums[static_cast<size_t>(i)].einsum).second);
    }
    CHECK(seen.size() == c.einsums.size());
    CHECK(r.step_time == Approx(sum));
    CHECK(r.layers == 2);
    // The per-layer Einsums run once per layer: their FLOPs are the whole cascade's.
    CHECK(r.flops == Approx(analyze(c).ops.flops()));
  }
}

TEST_CASE("run: mapping on several threads gives the one-thread report exactly", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions one = decode(8, 4096), four = decode(8, 4096);
  one.mapper.threads = 1;
  four.mapper.threads = 4;
  const ModelConfig m = load_model("mixtral-8x7b");
  one.tp = four.tp = 2;
  const RunReport r1 = run_model(m, a, one), r4 = run_model(m, a, four);
  CHECK(r1.step_time == r4.step_time);
  CHECK(r1.energy == r4.energy);
  CHECK(r1.mappings_evaluated == r4.mappings_evaluated);
  CHECK(r1.cache_hits == r4.cache_hits);
  REQUIRE(r1.einsums.size() == r4.einsums.size());
  for (size_t i = 0; i < r1.einsums.size(); ++i) {
    CHECK(r1.einsums[i].mapping == r4.einsums[i].mapping);
    CHECK(r1.einsums[i].time_alone == r4.einsums[i].time_alone);
  }
  // An Einsum nothing can map fails the same way on any number of threads.
  const ArchSpec tiny = [&] {
    ArchSpec t = a;
    for (StorageLevel& l : t.levels) l.capacity = 8;
    return t;
  }();
  const std::string e1 = error_of([&] { run_model(m, tiny, one); });
  CHECK_THAT(e1, Catch::Contains("no mapping of this Einsum fits"));
  CHECK(error_of([&] { run_model(m, tiny, four); }) == e1);
}

TEST_CASE("run: the step is no faster than its compute and its compulsory traffic", "[run]") {
  for (const char* preset : {"a100", "h100", "h200"}) {
    const ArchSpec a = load_arch(preset);
    for (const RunOptions& o : {decode(8, 4096), decode(64, 512), prefill(4, 1024)}) {
      const RunReport r = run_model(llama2_7b(), a, o);
      const Cascade c = bind_cascade(transformer_cascade(llama2_7b(), o.phase));
      const MemoryTier& hbm = a.tiers[0];
      INFO(preset << " " << (o.phase.kind == PhaseKind::Decode ? "decode" : "prefill"));
      CHECK(r.step_time >= analyze(c).compulsory_bytes / hbm.read_bandwidth);
      CHECK(r.step_time >= r.flops / a.peak_flops(DType::FP16));
      CHECK(tier_bytes(r) >= 0.999 * analyze(c).compulsory_bytes);
    }
  }
}

TEST_CASE("run: decode grows with context, prefill with the prompt, both with layers", "[run]") {
  const ArchSpec a = load_arch("h100");
  CHECK(run_model(llama2_7b(), a, decode(8, 8192)).step_time > run_model(llama2_7b(), a, decode(8, 1024)).step_time);
  CHECK(run_model(llama2_7b(), a, prefill(1, 4096)).step_time > run_model(llama2_7b(), a, prefill(1, 1024)).step_time);
  // One layer: the schedule has no layer loop, the layer is still reported.
  const RunReport one = run_model(llama2_7b(), a, decode(8, 2048, 1));
  CHECK(one.layers == 1);
  CHECK(one.layer_time > 0);
  const RunReport two = run_model(llama2_7b(), a, decode(8, 2048, 2));
  CHECK(two.layer_time == Approx(one.layer_time).epsilon(1e-9));
  const RunReport four = run_model(llama2_7b(), a, decode(8, 2048, 4));
  // Layers are identical: one layer costs the same, and four cost twice two.
  CHECK(four.layer_time == Approx(two.layer_time).epsilon(1e-9));
  CHECK(four.layer_time * 4 == Approx(four.compute_time - (two.compute_time - two.layer_time * 2)).epsilon(1e-9));
}

TEST_CASE("run: GPU kernels fuse prologues, epilogues and attention, and fusion never costs traffic", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(8, 4096);
  const RunReport kernels = run_model(llama2_7b(), a, o);
  CHECK(kernels.fusion == Fusion::Kernels);
  o.fusion = Fusion::None;
  const RunReport none = run_model(llama2_7b(), a, o);
  CHECK(none.blocks.size() == none.einsums.size());
  CHECK(kernels.blocks.size() < none.blocks.size());
  CHECK(tier_bytes(kernels) < tier_bytes(none));
  CHECK(kernels.step_time < none.step_time);
  // One GEMM per kernel: every block holds at most one contraction with a weight.
  const Cascade c = bind_cascade(transformer_cascade(llama2_7b(), o.phase));
  for (const BlockRun& b : kernels.blocks) {
    int gemms = 0;
    for (int i : b.einsums) {
      const Einsum& e = c.einsums[static_cast<size_t>(kernels.einsums[static_cast<size_t>(i)].einsum)];
      bool weight = false;
      for (const Access& acc : e.reads) weight |= c.tensors[static_cast<size_t>(acc.tensor)].role == TensorRole::Weight;
      gemms += e.ops[OpClass::Mac] > 0 && weight;
    }
    CHECK(gemms <= 1);
  }
  // The 1-pass attention is one kernel per layer (FlashAttention), its tiles on chip.
  const BlockRun* attn = block_with(kernels, "SLNV");
  REQUIRE(attn);
  CHECK(attn == block_with(kernels, "BQK"));
  CHECK(attn == block_with(kernels, "AV"));
  CHECK(attn->repeats == 2);  // once per layer
  CHECK(has(attn->resident, "BQK"));
  CHECK(has(attn->resident, "SLN"));
  // The norm's two reductions and its scaling are one kernel, reading the row once.
  const BlockRun* norm = block_with(kernels, "XN");
  CHECK(block_with(kernels, "N1SS") == norm);
  CHECK(has(norm->shared, "X"));
  const double x_bytes = 8.0 * 4096 * 2;  // one layer's rows of X (batch 8, d_model 4096, fp16)
  const double w_bytes = 4096.0 * 2;  // the norm's weight
  CHECK(norm->traffic[0].read_bytes == Approx(2 * (x_bytes + w_bytes)).epsilon(0.01));  // two layers, each read once
}

TEST_CASE("run: the pass analysis decides which attention intermediates stay on chip", "[run]") {
  // FuseMax with a small global buffer: the 3-pass cascade must hold whole M fibers of three
  // intermediates per query, the 1-pass cascade streams M in blocks (FuseMax §III).
  const ArchSpec a = load_arch("fusemax", {"arch.levels.gbuf.capacity=256 KiB"});
  MapperOptions mo;
  mo.max_tiles = 256;
  auto run = [&](const char* file, int64_t kv) {
    const Cascade c = load_cascade(shipped(file), {"cascade.params.kv_len=" + std::to_string(kv)});
    return run_cascade(c, a, DType::FP16, Fusion::Greedy, mo);
  };
  // 4K keys: 3 x 4K x 2 B per query fit; the whole 3-pass cascade is one block.
  const RunReport short3 = run("workloads/attention-3pass.toml", 4096);
  CHECK(short3.blocks.size() == 1);
  CHECK(has(short3.blocks[0].resident, "SN"));
  // 64K keys: 3 x 128 KiB do not fit in 256 KiB; SN spills to DRAM.
  const RunReport long3 = run("workloads/attention-3pass.toml", 65536);
  CHECK(long3.blocks.size() > 1);
  for (const BlockRun& b : long3.blocks) CHECK_FALSE(has(b.resident, "SN"));
  // The 1-pass cascade keeps its intermediates on chip at any length.
  for (int64_t kv : {4096, 65536}) {
    const RunReport one = run("workloads/attention-1pass.toml", kv);
    const BlockRun* attn = block_with(one, "SLN");
    REQUIRE(attn);
    CHECK(attn == block_with(one, "AV"));
    CHECK(has(attn->resident, "SLN"));
    CHECK(has(attn->resident, "BQK"));
  }
  // Same work, far less DRAM traffic once the 3-pass cascade spills.
  const RunReport long1 = run("workloads/attention-1pass.toml", 65536);
  CHECK(tier_bytes(long1) < 0.5 * tier_bytes(long3));
}

TEST_CASE("run: prefill does not fuse the key projection into attention along the query rank", "[run]") {
  // Greedy fusion walks the block along the ranks every member produces (here P). Attention
  // reads the keys along M, so the keys of later queries would be needed before they exist.
  const ArchSpec a = load_arch("h100");
  RunOptions o = prefill(1, 1024);
  o.fusion = Fusion::Greedy;
  const RunReport r = run_model(llama2_7b(), a, o);
  for (const BlockRun& b : r.blocks) CHECK_FALSE(has(b.resident, "KR"));
  CHECK(block_with(r, "KR") != block_with(r, "BQK"));
}

TEST_CASE("run: tensor parallelism splits the model and adds the all-reduce", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(16, 4096);
  const RunReport one = run_model(llama2_7b(), a, o);
  o.tp = 4;
  const RunReport four = run_model(llama2_7b(), a, o);
  CHECK(one.allreduce_time == 0);
  CHECK(four.allreduce_time > 0);
  CHECK(four.allreduce_link == "nvlink");
  CHECK(four.memory[0].weights < 0.3 * one.memory[0].weights);
  CHECK(four.memory[0].kv_cache == Approx(one.memory[0].kv_cache / 4));
  CHECK(four.compute_time < one.compute_time);
  // Ring all-reduce: 2 per layer, each sending 2(n-1)/n of batch x d_model x 2 B.
  const double msg = 16.0 * 4096 * 2;
  CHECK(four.allreduce_bytes == Approx(2 * 2 * 2 * 3.0 / 4 * msg));
  CHECK(four.step_time == Approx(four.compute_time + four.allreduce_time));
  o.tp = 3;
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), a, o); }), Catch::Contains("--tp: error: --tp 3 does not divide the 32 attention heads"));
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), load_arch("host-ddr5"), decode(1, 16)); }),
             Catch::Contains("error: 'host-ddr5-2s' has no compute arrays"));
  o.tp = 2;
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), load_arch("fusemax"), o); }),
             Catch::Contains("cannot run --tp 2: no link joins its devices (to = \"peer\" or \"network\")"));
}

TEST_CASE("run: tensor parallelism past the scale-up domain crosses the network, hierarchically", "[run]") {
  const ModelConfig m = load_model(shipped("models/llama-3-70b.toml"));
  RunOptions o = decode(32, 8192);
  o.tp = 8;
  const RunReport h8 = run_model(m, load_arch("h100"), o);
  o.tp = 16;
  const RunReport h16 = run_model(m, load_arch("h100"), o);
  // Two HGX nodes: the all-reduce spans 2 domains over NVLink and the NIC.
  CHECK(h8.allreduce_domains == 1);
  CHECK(h8.allreduce_network_bytes == 0);
  CHECK(h16.allreduce_domains == 2);
  CHECK(h16.allreduce_link == "nvlink + nic");
  // Each device all-reduces its 1/8 shard across the 2 domains: 2 (m-1)/m S / 8 = S / 8 each.
  const double message = 32.0 * 8192 * 2;  // batch x hidden x bf16
  CHECK(h16.allreduce_network_bytes == Approx(h16.allreduces * message / 8));
  CHECK(h16.allreduce_time > h8.allreduce_time);
  // The NVL72 rack keeps TP 16 inside one NVLink domain.
  const RunReport g16 = run_model(m, load_arch("gb200"), o);
  CHECK(g16.allreduce_domains == 1);
  CHECK(g16.allreduce_link == "nvlink");
  CHECK(g16.allreduce_time < h16.allreduce_time);
  // Groups that cannot be formed are located errors.
  o.tp = 12;  // divides GPT-3's 96 heads, but not into 8-GPU domains
  CHECK_THAT(error_of([&] { run_model(load_model(shipped("models/gpt-3-175b.toml")), load_arch("h100"), o); }),
             Catch::Contains("cannot run --tp 12: 12 devices span scale-up domains of 8 unevenly (use a multiple of 8)"));
  o.tp = 16;
  CHECK_THAT(error_of([&] { run_model(m, load_arch("mi300x"), o); }),
             Catch::Contains("'MI300X") && Catch::Contains("cannot run --tp 16: 16 devices span scale-up domains of 8 ('xgmi', domain = 8) and no network link"));
}

TEST_CASE("run: pipeline stages split the layers, price the hops and the bubble", "[run]") {
  // Llama-3.1-405B on H100s at TP 8 x PP 2: two HGX nodes, the activations cross the network.
  const ModelConfig m = load_model(shipped("models/llama-3.1-405b.toml"));
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(32, 8192, 0);
  o.tp = 8;
  o.pp = 2;
  const RunReport r = run_model(m, a, o);
  CHECK(r.devices() == 16);
  CHECK(r.microbatches == 2);  // the default: the largest divisor of the batch not above pp
  REQUIRE(r.stages.size() == 2);
  CHECK(r.stages[0].layers == 63);
  CHECK(r.stages[1].first_layer == 63);
  CHECK(r.pipeline_link == "nic");
  // Each device sends its 1/tp share of a micro-batch's hidden states: 16 x 16384 x 2 B / 8.
  CHECK(r.pipeline_send_bytes == Approx(2 * 16.0 * 16384 * 2 / 8));
  const Link& nic = *a.link("nic");
  CHECK(r.pipeline_send_time == Approx(collective_cost(nic, Collective::SendRecv, 2, 16.0 * 16384 * 2 / 8, default_runtime().collective_base).time));
  // The first micro-batch through both stages and the hop, then the slower stage once more.
  const double slow = std::max(r.stages[0].time, r.stages[1].time);
  CHECK(r.pipeline_time == Approx(r.stages[0].time + r.stages[1].time + r.pipeline_send_time + slow));
  CHECK(r.step_time == Approx(r.pipeline_time + r.host_time));
  CHECK(r.bubble == Approx(1 - 2 * (r.stages[0].time + r.stages[1].time) / (2 * r.pipeline_time)));
  CHECK(r.bubble > 0.3);
  CHECK(r.pipeline_interval < r.pipeline_time);  // back to back, the next step fills the bubble
  CHECK(r.tokens == 32);
  // Each device holds half the layers: the TP 8 device's weights, about halved; the last
  // stage also holds the head, the first the embedding (the same size here).
  o.pp = 1;
  o.check_memory = false;
  const RunReport whole = run_model(m, a, o);
  CHECK(r.memory[0].weights == Approx(whole.memory[0].weights / 2).epsilon(0.01));
  CHECK(r.memory[0].kv_cache == Approx(whole.memory[0].kv_cache / 2));
  CHECK(r.memory[0].stage >= 0);
  // More micro-batches shrink the bubble.
  o.pp = 2;
  o.microbatches = 8;
  CHECK(run_model(m, a, o).bubble < r.bubble);
  // Within one domain the hop takes NVLink.
  o.tp = 4;
  o.microbatches = 0;
  CHECK(run_model(m, a, o).pipeline_link == "nvlink");
  // Errors, located.
  o.pp = 3;  // 4 x 3 = 12 devices over 8-GPU domains
  CHECK_THAT(error_of([&] { run_model(m, a, o); }), Catch::Contains("cannot run --pp 3 over 4 devices a stage: 12 devices span scale-up domains of 8 unevenly"));
  o.pp = 2;
  o.microbatches = 5;
  CHECK_THAT(error_of([&] { run_model(m, a, o); }), Catch::Contains("--microbatches: error: --microbatches 5 does not divide the batch of 32 requests"));
  o.pp = 1;
  o.microbatches = 4;
  CHECK_THAT(error_of([&] { run_model(m, a, o); }), Catch::Contains("--microbatches: error: --microbatches splits the batch between pipeline stages"));
  o = decode(1, 16, 2);
  o.pp = 4;
  CHECK_THAT(error_of([&] { run_model(m, a, o); }), Catch::Contains("--pp: error: --pp 4: 'Llama-3.1-405B' has 2 layers to split into stages"));
}

TEST_CASE("placement search: splits formed, fitted, ranked by cost per token", "[run][placement]") {
  const ModelConfig m = load_model(shipped("models/llama-3.1-405b.toml"));
  const ArchSpec h100 = load_arch("h100");
  RunOptions o = decode(32, 8192, 0);
  PlacementOptions po;
  po.max_devices = 32;
  const std::vector<PlacementPoint> pts = search_placements(m, h100, o, po);
  REQUIRE(!pts.empty());
  // Best first: it fits, and nothing that fits ranks cheaper.
  const PlacementPoint& best = pts.front();
  CHECK(best.invalid.empty());
  CHECK(best.fits);
  CHECK(best.at.devices() == 16);
  CHECK(best.cost_per_mtok == Approx(16 * *h100.cost.rate * best.interval / 32 * 1e6));
  size_t formed = 0;
  for (const PlacementPoint& p : pts) {
    INFO(p.at.flags());
    if (!p.invalid.empty()) continue;
    ++formed;
    CHECK(p.fits == (p.memory <= p.capacity));
    if (p.fits) CHECK(p.rank >= best.rank);
    if (p.at.pp == 1) CHECK(p.interval == p.step);
    if (p.at.pp > 1) CHECK(p.interval < p.step);
  }
  CHECK(formed > 10);
  // One device never holds 405B parameters; 3 does not divide the heads: both reported.
  auto find = [&](int64_t tp, int64_t pp) {
    for (const PlacementPoint& p : pts)
      if (p.at.tp == tp && p.at.pp == pp && p.at.ep == 1) return p;
    FAIL("no split tp " << tp << " pp " << pp);
    return PlacementPoint{};
  };
  CHECK_FALSE(find(1, 1).fits);
  CHECK(find(8, 2).fits);
  CHECK(find(1, 1).invalid.empty());
  // A TPOT bound none meets leaves nothing ranked first as fitting.
  po.slo = 1e-3;
  const std::vector<PlacementPoint> none = search_placements(m, h100, o, po);
  for (const PlacementPoint& p : none) CHECK_FALSE((p.meets_slo && p.fits && p.invalid.empty()));
  // On GB200 NVL72 TP 16 stays in one NVLink domain, and is faster than across two HGX nodes.
  po.slo = 0;
  po.max_devices = 16;
  const PlacementPoint g = search_placements(m, load_arch("gb200"), o, po).front();
  CHECK(g.fits);
  // Models with experts search ep too.
  RunOptions small = decode(16, 1024, 2);
  po.max_devices = 8;
  bool ep = false;
  for (const PlacementPoint& p : search_placements(load_model(shipped("models/mixtral-8x7b.toml")), h100, small, po)) ep |= p.at.ep > 1 && p.invalid.empty();
  CHECK(ep);
  po.max_devices = 0;
  CHECK_THAT(error_of([&] { search_placements(m, h100, o, po); }), Catch::Contains("--max-devices: error: --max-devices must be at least 1"));
}

TEST_CASE("run: a deployment that does not fit says by how much", "[run]") {
  const ArchSpec a = load_arch("a100");
  const ModelConfig big = load_model(shipped("models/llama-3-70b.toml"));
  RunOptions o = decode(1, 1024, 0);
  const std::string e = error_of([&] { run_model(big, a, o); });
  CHECK_THAT(e, Catch::StartsWith("--batch/--context: error: the deployment does not fit"));
  CHECK_THAT(e, Catch::Contains("weights 131.42 GiB") && Catch::Contains("or --tp 2 (the cheapest placement that holds it: 2 devices, "));
  // 204 GiB on 80 GB devices needs 3 of them; 3 does not divide Llama-2-7B's 32 heads, but
  // three pipeline stages of 11, 11 and 10 layers hold it.
  const std::string three = error_of([&] { run_model(llama2_7b(), a, decode(48, 8192, 0)); });
  CHECK_THAT(three, Catch::Contains("or --tp 1 --pp 3 (the cheapest placement that holds it: 3 devices, "));
  // KV cache counts too: Llama-2-7B at batch 64 and 8K context needs 256 GiB of cache.
  const std::string kv = error_of([&] { run_model(llama2_7b(), a, decode(64, 8192, 0)); });
  CHECK_THAT(kv, Catch::Contains("KV cache 256.0"));
}

TEST_CASE("run: memory per device counts weights, KV cache and activations", "[run]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = run_model(llama2_7b(), a, decode(8, 4095, 0));
  REQUIRE(r.memory.size() == 1);
  CHECK(r.memory[0].tier == "hbm");
  CHECK(r.memory[0].weights == Approx(count_params(llama2_7b()).total * 2));
  CHECK(r.memory[0].kv_cache == Approx(8.0 * 4096 * llama2_7b().kv_bytes_per_token(DType::BF16)));
  CHECK(r.memory[0].activations > 0);
  CHECK(r.memory[0].activations < 0.01 * r.memory[0].weights);
  CHECK(r.tokens == 8);
  CHECK(r.tokens_per_s == Approx(8 / r.step_time));
  CHECK(r.energy_per_token > 0);
}

TEST_CASE("run: the mapping cache replays a design point without searching", "[run]") {
  const ArchSpec a = load_arch("h100");
  MapCache cache;
  const RunReport cold = run_model(llama2_7b(), a, decode(8, 2048), &cache);
  CHECK(cold.mappings_evaluated > 0);
  const RunReport warm = run_model(llama2_7b(), a, decode(8, 2048), &cache);
  CHECK(warm.mappings_evaluated == 0);
  CHECK(warm.cache_hits == static_cast<int64_t>(warm.einsums.size()));
  CHECK(warm.step_time == cold.step_time);
  CHECK(cache.cascades().size() == 1);  // the bound cascade is reused too
  // Another context length shares every Einsum but attention's.
  const RunReport other = run_model(llama2_7b(), a, decode(8, 8192), &cache);
  CHECK(other.cache_hits > 0);
  CHECK(other.cache_hits < static_cast<int64_t>(other.einsums.size()));
  CHECK(cache.cascades().size() == 2);
  // A model that differs in one field builds its own cascade.
  ModelConfig wider = llama2_7b();
  wider.intermediate_size += 256;
  const RunReport w = run_model(wider, a, decode(8, 2048), &cache);
  CHECK(cache.cascades().size() == 3);
  CHECK(w.step_time > warm.step_time);
}

TEST_CASE("run: per-layer Einsums are mapped for one layer and repeated", "[run]") {
  const ArchSpec a = load_arch("h100");
  const RunReport r = run_model(llama2_7b(), a, decode(8, 2048, 3));
  for (const EinsumRun& e : r.einsums) {
    if (e.component == "embedding" || e.component == "lm-head" || e.name == "FSS" || e.name == "FRS" || e.name == "XF") {
      CHECK(e.repeats == 1);
    } else if (e.name == "SLN" || e.name == "SLD" || e.name == "SLNV" || e.name == "PRM" || e.name == "SPD" || e.name == "SPNV") {
      CHECK(e.repeats == 3 * 9);  // layers x blocks of 256 keys (2049 keys: 9 blocks), after the running max
    } else if (e.name == "RM" || e.name == "RD" || e.name == "RNV") {
      INFO(e.name);
      CHECK((e.repeats == 3 * 9 || e.repeats == 1));  // the recurrence, or its initialisation (all layers at once)
    } else {
      INFO(e.name);
      CHECK(e.repeats == 3);
    }
    CHECK_THAT(e.mapping, !Catch::Contains("l="));  // never tiled across layers
  }
}

TEST_CASE("run: fp8 halves weights and cache, and operations no array runs at fp8 compute in bf16", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(8, 4096);
  const RunReport bf16 = run_model(llama2_7b(), a, o);
  o.dtype = DType::FP8;
  const RunReport fp8 = run_model(llama2_7b(), a, o);
  CHECK(fp8.dtype == DType::FP8);
  CHECK(fp8.memory[0].weights == Approx(bf16.memory[0].weights / 2));
  CHECK(fp8.memory[0].kv_cache == Approx(bf16.memory[0].kv_cache / 2));
  CHECK(fp8.step_time < bf16.step_time);
  CHECK(fp8.emulated.empty());  // H100's tensor cores run fp8; its norms at bf16 are no matrix products
  // int4 has no tensor-core path on H100: weight-only quantization, computing in bf16, and the
  // report says so.
  o.dtype = DType::INT4;
  const RunReport int4 = run_model(llama2_7b(), a, o);
  CHECK(int4.memory[0].weights == Approx(bf16.memory[0].weights / 4));
  CHECK(int4.step_time < fp8.step_time);
  REQUIRE(int4.emulated.size() == 1);
  CHECK(int4.emulated[0] == "int4 matrix products computed at bf16: no array of H100-SXM5-80GB runs them at int4");
  o.dtype = DType::FP8;
  const RunReport a100 = run_model(llama2_7b(), load_arch("a100"), o);
  REQUIRE(a100.emulated.size() == 1);
  CHECK_THAT(a100.emulated[0], Catch::StartsWith("fp8 matrix products computed at bf16: no array of A100"));
  CHECK(bf16.emulated.empty());
  // FuseMax has no array for the norms' rsqrt at any type: a located error.
  o.dtype.reset();
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), load_arch("fusemax"), o); }),
             Catch::Contains("(generated):") && Catch::Contains("error: no array of 'FuseMax' runs all of"));
}

TEST_CASE("run: eager fusion runs every matrix product as its own kernel", "[run]") {
  const ArchSpec a = load_arch("a100");
  RunOptions o = prefill(1, 512, 1);
  o.phase.attention = AttentionKind::ThreePass;
  o.fusion = Fusion::Eager;
  const RunReport r = run_model(load_model(shipped("models/gpt-3-175b.toml")), a, o);
  CHECK(block_with(r, "QK") != block_with(r, "AV"));
  CHECK(block_with(r, "QK") != block_with(r, "SN"));
  CHECK(block_with(r, "GM") == block_with(r, "A"));       // softmax: one kernel
  CHECK(block_with(r, "N1S1") == block_with(r, "XN"));    // layer norm: one kernel
  CHECK(block_with(r, "Q") == block_with(r, "QB"));       // addmm: the bias add rides along
  CHECK(block_with(r, "UP") != block_with(r, "H"));       // GELU is a kernel of its own
  CHECK(parse_fusion("eager") == Fusion::Eager);
  CHECK_FALSE(parse_fusion("fast").has_value());
}

TEST_CASE("run: the mapping cache keeps design points with different hardware apart", "[run]") {
  MapCache cache;
  const RunReport fast = run_model(llama2_7b(), load_arch("h100"), decode(8, 2048), &cache);
  const ArchSpec slower = load_arch("h100", {"arch.tiers.hbm.read_bandwidth=1 TB/s"});
  const RunReport slow = run_model(llama2_7b(), slower, decode(8, 2048), &cache);
  const RunReport alone = run_model(llama2_7b(), slower, decode(8, 2048));
  CHECK(slow.cache_hits == alone.cache_hits);  // only the Einsums the run shares within itself
  CHECK(slow.step_time == alone.step_time);
  CHECK(slow.step_time > 2 * fast.step_time);
}

TEST_CASE("run: block utilization is the peak-compute share of its time", "[run]") {
  const ArchSpec a = load_arch("h100");
  const RunReport pre = run_model(llama2_7b(), a, prefill(8, 2048));
  const RunReport dec = run_model(llama2_7b(), a, decode(8, 2048));
  const BlockRun* up = block_with(pre, "UP");
  REQUIRE(up);
  CHECK(up->utilization > 0.5);  // a large prefill GEMM: compute-bound near the calibrated 85%
  CHECK(up->utilization <= 1.0);
  CHECK(block_with(dec, "UP")->utilization < 0.1);  // decode GEMV: bandwidth-bound
}

TEST_CASE("run: prefill attention is one kernel with the scores on chip", "[run]") {
  const RunReport r = run_model(llama2_7b(), load_arch("h100"), prefill(1, 8192));
  const BlockRun* attn = block_with(r, "SLN");
  REQUIRE(attn);
  CHECK(attn == block_with(r, "BQK"));
  CHECK(attn == block_with(r, "SLNV"));
  CHECK(attn == block_with(r, "AV"));
  CHECK(has(attn->resident, "SLN"));
  // The P x M scores never reach HBM: the largest activations are the layer's rows.
  CHECK(r.memory[0].activations < 1.0 * (1 << 30));
}


TEST_CASE("run: a quantized KV cache shrinks the cache and its traffic, not the weights", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(16, 8192);
  const RunReport bf16 = run_model(llama2_7b(), a, o);
  o.phase.kv_dtype = DType::INT8;
  const RunReport int8 = run_model(llama2_7b(), a, o);
  o.phase.kv_dtype = DType::INT4;
  const RunReport int4 = run_model(llama2_7b(), a, o);
  CHECK(int8.memory[0].weights == bf16.memory[0].weights);
  CHECK(int8.memory[0].kv_cache == Approx(bf16.memory[0].kv_cache / 2));
  CHECK(int4.memory[0].kv_cache == Approx(bf16.memory[0].kv_cache / 4));
  // The attention block reads the cache: its tier traffic falls by what the cache saves
  // (2 layers x 16 requests x 8448 cached positions (8193 padded to whole 256-key blocks, as
  // the 1-pass cascade reads them) x 2 (K, V) x 4096 x (2 - 1) bytes at int8).
  const double saved = 2.0 * 16 * 8448 * 2 * 4096;
  CHECK(tier_bytes(bf16) - tier_bytes(int8) == Approx(saved).epsilon(0.02));
  CHECK(int8.step_time < bf16.step_time);
  CHECK(int4.step_time < int8.step_time);
}

TEST_CASE("run: pruned key channels shrink the K cache and the scores' work", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(8, 8192);
  const RunReport full = run_model(llama2_7b(), a, o);
  o.phase.key_channels = 64;  // of 128
  const RunReport half = run_model(llama2_7b(), a, o);
  CHECK(half.memory[0].kv_cache == Approx(full.memory[0].kv_cache * (64.0 + 128) / 256));
  double qk_full = 0, qk_half = 0;
  for (const EinsumRun& e : full.einsums)
    if (e.name == "BQK") qk_full += e.flops;
  for (const EinsumRun& e : half.einsums)
    if (e.name == "BQK") qk_half += e.flops;
  CHECK(qk_half == Approx(qk_full / 2));
  CHECK(half.step_time < full.step_time);
  // RoPE rotates channel pairs: an odd count, or more than the head has, is refused.
  o.phase.key_channels = 63;
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), a, o); }), Catch::Contains("63 key channels kept") && Catch::Contains("even"));
  o.phase.key_channels = 130;
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), a, o); }), Catch::Contains("at most head_dim (128)"));
}

TEST_CASE("run: linear attention keeps a fixed state beside a short window", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(2, 64);  // 2 layers, a 64-token window
  o.phase.linear_features = 16;
  const RunReport lin = run_model(llama2_7b(), a, o);
  // Cache: the window's KV (65 tokens) and, per layer, request and KV head (32 in Llama-2-7B),
  // (1 + 16 + 256) x 128 numerator and (1 + 16 + 256) denominator values, 2 bytes each.
  const double window = 2.0 * 2 * 65 * 2 * 32 * 128 * 2, state = 2.0 * 2 * 32 * (273 * 128 + 273) * 2;
  CHECK(lin.memory[0].kv_cache == Approx(window + state));
  // Its Einsums are attention's, and the state update reads and writes the state.
  double upd_write = 0;
  for (const EinsumRun& e : lin.einsums)
    if (e.name == "S2N") {
      CHECK(e.component == "attention");
      upd_write += e.traffic[0].write_bytes;
    }
  CHECK(upd_write > 0);
  // The state's size does not depend on how many tokens came before: only the window is read.
  o.phase.linear_features = 0;
  const RunReport window_only = run_model(llama2_7b(), a, o);
  CHECK(lin.step_time > window_only.step_time);
}

TEST_CASE("run: activation sparsity gathers the active FFN neurons, and a predictor scores all of them", "[run]") {
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(1, 512);
  const RunReport dense = run_model(llama2_7b(), a, o);
  o.phase.ffn_active = 1101;  // about 10% of 11008
  const RunReport sparse = run_model(llama2_7b(), a, o);
  o.phase.predictor_rank = 128;
  const RunReport predicted = run_model(llama2_7b(), a, o);
  auto sum = [](const RunReport& r, const std::string& name, bool flops) {
    double v = 0;
    for (const EinsumRun& e : r.einsums)
      if (e.name == name) v += flops ? e.flops : e.traffic[0].read_bytes;
    return v;
  };
  // Llama-2-7B's gated MLP: gate, up and down read only the active neurons' columns and rows.
  for (const std::string n : {"GT", "UP", "DN"}) {
    INFO(n);
    CHECK(sum(sparse, n, true) == Approx(sum(dense, n, true) * 1101 / 11008));
    CHECK(sum(sparse, n, false) == Approx(2.0 * 1101 * 4096 * 2).epsilon(0.02));  // 2 layers of weights, bf16
  }
  CHECK(sparse.step_time < dense.step_time);
  // The predictor: XN -> 128 -> 11008 scores per layer, its weights read once.
  CHECK(sum(predicted, "PL", true) == Approx(2.0 * 4096 * 128 * 2));
  CHECK(sum(predicted, "PS", true) == Approx(2.0 * 128 * 11008 * 2));
  CHECK(sum(predicted, "PS", false) >= 2.0 * 128 * 11008 * 2);
  CHECK(predicted.step_time > sparse.step_time);
  // Phases that differ only in these fields build different cascades (a shared cache keys on them).
  MapCache cache;
  o.phase.predictor_rank = 0;
  o.phase.ffn_active = 0;
  const RunReport d2 = run_model(llama2_7b(), a, o, &cache);
  o.phase.ffn_active = 1101;
  const RunReport s2 = run_model(llama2_7b(), a, o, &cache);
  CHECK(d2.step_time == Approx(dense.step_time));
  CHECK(s2.step_time == Approx(sparse.step_time));
  // Errors: more neurons than the MLP has; an MoE model.
  o.phase.ffn_active = 20000;
  CHECK(error_of([&] { run_model(llama2_7b(), a, o); }) == "--ffn-active: error: 20000 active FFN neurons: at most the FFN width of 'Llama-2-7B' (11008)");
  o.phase.ffn_active = 100;
  // A predictor as wide as the model is not low-rank (it was blamed on memory, with a --tp hint).
  o.phase.predictor_rank = 100000;
  CHECK(error_of([&] { run_model(llama2_7b(), a, o); }) ==
        "--predictor-rank: error: a predictor of rank 100000: it must be below the model width of 'Llama-2-7B' (4096) to be low-rank");
  o.phase.predictor_rank = 0;
  CHECK_THAT(error_of([&] { run_model(load_model("mixtral-8x7b"), a, o); }), Catch::Contains("routes its MLP to experts"));
}

TEST_CASE("run: every phase field reaches the cascade key", "[run]") {
  Phase p;
  std::set<std::string> keys = {p.key()};
  auto differs = [&](Phase q) { CHECK(keys.insert(q.key()).second); };
  Phase q = p;
  q.kind = PhaseKind::Decode;
  differs(q);
  q = p, q.batch = 2, differs(q);
  q = p, q.prompt = 2, differs(q);
  q = p, q.context = 2, differs(q);
  q = p, q.attention = AttentionKind::ThreePass, differs(q);
  q = p, q.block = 128, differs(q);
  q = p, q.layers = 2, differs(q);
  q = p, q.kv_dtype = DType::INT8, differs(q);
  q = p, q.key_channels = 64, differs(q);
  q = p, q.linear_features = 16, differs(q);
  q = p, q.ffn_active = 100, differs(q);
  q = p, q.predictor_rank = 8, differs(q);
}

// Properties every report holds, over random deployments (a fixed seed, so the same points on
// every machine): finite numbers, utilizations within [0, 1], blocks and layers adding up to
// the step, and more memory bandwidth never slowing a block down.
TEST_CASE("run: properties over random (model, arch, phase, batch, context, TP) points", "[run][property]") {
  std::mt19937_64 rng(20261203);
  const std::vector<std::string> models = {"llama-2-7b", "llama-3-8b", "mixtral-8x7b", "yi-34b-200k", "falcon-7b", "opt-6.7b", "llama-3-70b"};
  const std::vector<std::string> archs = {"a100", "h100", "h200", "l40s", "h20", "b200", "mi300x", "tpu-v5e"};
  auto pick = [&](const auto& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
  auto finite = [](double v) { return std::isfinite(v); };
  int checked = 0;
  for (int i = 0; i < 24; ++i) {
    const ModelConfig m = load_model(pick(models));
    const ArchSpec a = load_arch(pick(archs));
    RunOptions o;
    o.phase.kind = rng() % 2 ? PhaseKind::Decode : PhaseKind::Prefill;
    o.phase.batch = int64_t{1} << std::uniform_int_distribution<int>(0, 6)(rng);
    o.phase.prompt = o.phase.context = int64_t{1} << std::uniform_int_distribution<int>(7, 14)(rng);
    o.phase.layers = 1;
    o.tp = int64_t{1} << std::uniform_int_distribution<int>(0, 3)(rng);
    o.check_memory = false;
    INFO(m.name << " on " << a.name << (o.phase.kind == PhaseKind::Decode ? " decode" : " prefill") << " batch " << o.phase.batch << " tokens "
                << o.phase.prompt << " TP " << o.tp);
    RunReport r;
    try {
      r = run_model(m, a, o);
    } catch (const UserError& e) {
      // A TP that does not divide the model, or an arch without a peer link: refused, not a result.
      CHECK_THAT(std::string(e.what()), Catch::Contains("--tp"));
      continue;
    }
    ++checked;
    for (double v : {r.step_time, r.compute_time, r.allreduce_time, r.energy, r.power, r.tokens_per_s, r.energy_per_token, r.layer_time, r.flops})
      CHECK(finite(v));
    CHECK(r.step_time > 0);
    double blocks = 0;
    for (const BlockRun& b : r.blocks) {
      CHECK(finite(b.time));
      CHECK(b.utilization >= 0);
      CHECK(b.utilization <= 1 + 1e-9);
      blocks += b.time;
    }
    for (const EinsumRun& e : r.einsums) {
      CHECK(e.utilization >= 0);
      CHECK(e.utilization <= 1 + 1e-9);
    }
    CHECK(blocks == Approx(r.compute_time).epsilon(1e-9));
    CHECK(r.compute_time + r.allreduce_time == Approx(r.step_time).epsilon(1e-9));
    CHECK(r.layer_time * static_cast<double>(r.layers) <= r.compute_time * (1 + 1e-9));
    // Twice the memory bandwidth: no block slower (the mapper may keep or improve a mapping).
    ArchSpec fast = a;
    for (MemoryTier& t : fast.tiers) t.read_bandwidth *= 2, t.write_bandwidth *= 2;
    const RunReport f = run_model(m, fast, o);
    REQUIRE(f.blocks.size() == r.blocks.size());
    for (size_t b = 0; b < r.blocks.size(); ++b) {
      INFO("block " << b);
      CHECK(f.blocks[b].time <= r.blocks[b].time * 1.001);
    }
  }
  CHECK(checked >= 12);
}

TEST_CASE("MoE decode reads the experts a batch is expected to touch", "[moe]") {
  // Uniform routing of n tokens, k of E experts each: E (1 - (1 - k/E)^n) distinct experts.
  Tensor sel;
  sel.routed = 2;
  CHECK(distinct_rows(8, sel, 2) == Approx(2));                         // one token: its 2
  CHECK(distinct_rows(8, sel, 8) == Approx(8 * (1 - std::pow(0.75, 4))));  // 4 tokens: 5.47, not all 8
  CHECK(distinct_rows(8, sel, 2 * 64) == Approx(8).epsilon(1e-6));
  Tensor plain;  // an index of distinct rows
  CHECK(distinct_rows(8, plain, 5) == 5);
  CHECK(distinct_rows(8, plain, 50) == 8);
  // Mixtral's gate experts as a decode step reads them: 32 layers x 8 x 4096 x 14336 bf16.
  const ModelConfig m = load_model("mixtral-8x7b");
  const double all = 32.0 * 8 * 4096 * 14336 * 2;
  auto gate_bytes = [&](int64_t batch) {
    RunOptions o;
    o.phase.kind = PhaseKind::Decode;
    o.phase.batch = batch;
    o.phase.context = 511;
    o.check_memory = false;  // one H100 holds 87 GiB of Mixtral weights only in this count
    const RunReport r = run_model(m, load_arch("h100"), o);
    double bytes = 0;
    for (const EinsumRun& e : r.einsums)
      if (e.name == "EG")
        for (const LevelTraffic& t : e.traffic)
          if (t.name == "hbm") bytes += t.read_bytes;
    return bytes;
  };
  CHECK(gate_bytes(1) == Approx(all * 2 / 8).epsilon(0.02));
  CHECK(gate_bytes(4) == Approx(all * (1 - std::pow(0.75, 4))).epsilon(0.02));
  CHECK(gate_bytes(64) == Approx(all).epsilon(0.02));
}

TEST_CASE("a sliding window caps the KV cache and the keys attended", "[window]") {
  // Mistral-7B-v0.1's window of 4096: at batch 8 and 32K of context the cache holds 4096
  // tokens per request (4 GiB), not 32K (32 GiB).
  ModelConfig m = load_model("llama-2-7b", {"model.num_key_value_heads=8", "model.sliding_window=4096"});
  const ArchSpec a = load_arch("h100");
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 8;
  o.phase.context = 32767;
  o.check_memory = false;
  const RunReport windowed = run_model(m, a, o);
  CHECK(windowed.memory[0].kv_cache == Approx(m.kv_bytes_per_token(DType::BF16) * 8 * 4096));
  CHECK(windowed.memory[0].kv_cache == Approx(4.0 * (1ull << 30)));
  ModelConfig full = m;
  full.sliding_window = 0;
  const RunReport dense = run_model(full, a, o);
  CHECK(dense.memory[0].kv_cache == Approx(8 * windowed.memory[0].kv_cache));
  // Decode attends to the window's keys: the same step as a 4095-token context without one.
  RunOptions short_ctx = o;
  short_ctx.phase.context = 4095;
  CHECK(windowed.step_time == Approx(run_model(full, a, short_ctx).step_time).epsilon(1e-9));
  CHECK(windowed.step_time < dense.step_time);
  // Prefill: a band of 128 x 128 tiles. 8 query tiles with a 256-token window compute the
  // diagonal and up to two tiles back: 1 + 2 + 3 x 6 = 21 of 64.
  CHECK(causal_attention_work(0, 1024, 128, 256) == Approx(21.0 / 64));
  CHECK(causal_attention_work(0, 1024, 128, 1024) == Approx(causal_attention_work(0, 1024)));
  CHECK(causal_attention_work(0, 1024, 128, 0) == Approx(causal_attention_work(0, 1024)));
  // A chunk after 8K cached tokens reads only the window's (4096 keys + its own).
  RunOptions chunk;
  chunk.phase.kind = PhaseKind::Prefill;
  chunk.phase.prompt = 512;
  chunk.phase.context = 8192;
  chunk.check_memory = false;
  RunOptions near = chunk;
  near.phase.context = 4096;
  CHECK(run_model(m, a, chunk).step_time == Approx(run_model(m, a, near).step_time).epsilon(1e-9));
  CHECK(run_model(m, a, chunk).memory[0].kv_cache == Approx(m.kv_bytes_per_token(DType::BF16) * 4096));
}

TEST_CASE("layer kinds: a group per kind costs what its layers cost", "[window][layers]") {
  // Alternate windowed and global layers (Gemma 2's pattern) with a window longer than the
  // context: every layer attends to every key, so the step costs what the uniform model's
  // does (two groups of 16 layers; the stream passes between them as a view, no kernel).
  const ModelConfig plain = llama2_7b();
  const ModelConfig alternating = load_model("llama-2-7b", {"model.sliding_window=8192", "model.sliding_window_pattern=2"});
  REQUIRE(alternating.layer_groups().size() == 2);
  const ArchSpec a = load_arch("h100");
  for (PhaseKind kind : {PhaseKind::Decode, PhaseKind::Prefill}) {
    RunOptions o;
    o.phase.kind = kind;
    o.phase.batch = 4;
    o.phase.prompt = 1024;
    o.phase.context = kind == PhaseKind::Decode ? 2048 : 0;
    const RunReport u = run_model(plain, a, o), g = run_model(alternating, a, o);
    CHECK(g.step_time == Approx(u.step_time).epsilon(1e-9));
    CHECK(g.blocks.size() == 2 * u.blocks.size() - 3);  // each group's layer blocks; embedding, final norm and head once
    CHECK(g.layers == 32);
    CHECK(g.memory[0].kv_cache == Approx(u.memory[0].kv_cache));
  }
  // At 32K the windowed half keeps 8K: the cache is (16 x 8K + 16 x 32K) / (32 x 32K) of the
  // uniform one's, and decode reads less.
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 32767;
  o.check_memory = false;
  const RunReport u = run_model(plain, a, o), g = run_model(alternating, a, o);
  CHECK(g.memory[0].kv_cache == Approx(u.memory[0].kv_cache * (8192.0 + 32768.0) / (2 * 32768.0)));
  CHECK(g.step_time < u.step_time);
  // Tensor parallelism all-reduces each sublayer's output: two per layer.
  o.tp = 2;
  CHECK(run_model(alternating, a, o).allreduces == 64);
}

TEST_CASE("dense layers before the MoE layers", "[layers]") {
  // Mixtral with its first two layers dense (DeepSeek's first_k_dense_replace): two layers'
  // experts and routers replaced by one MLP of the same width each.
  const ModelConfig mix = load_model("mixtral-8x7b");
  const ModelConfig firsts = load_model("mixtral-8x7b", {"model.first_k_dense_replace=2"});
  const double ffn = 3.0 * 4096 * 14336;
  CHECK(count_params(firsts).total == Approx(count_params(mix).total - 2 * (8 * ffn + 4096 * 8) + 2 * ffn));
  CHECK(count_params(firsts).active == Approx(count_params(mix).active - 2 * (2 * ffn + 4096 * 8) + 2 * ffn));
  CHECK(firsts.moe_layers() == 30);
  const ArchSpec a = load_arch("h100");
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = 1024;
  o.tp = 2;
  // At batch 1 a dense layer reads its one MLP, an MoE layer two experts of that size: less.
  CHECK(run_model(firsts, a, o).step_time < run_model(mix, a, o).step_time);
  CHECK(run_model(firsts, a, o).memory[0].weights < run_model(mix, a, o).memory[0].weights);
}

TEST_CASE("expert parallelism: experts split by expert, tokens dispatched by all-to-all", "[layers][ep]") {
  const ModelConfig mix = load_model("mixtral-8x7b");
  const ArchSpec a = load_arch("h100");
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 64;
  o.phase.context = 1024;
  o.check_memory = false;
  o.tp = 8;
  const RunReport tp8 = run_model(mix, a, o);
  o.tp = 1;
  o.ep = 8;
  const RunReport ep8 = run_model(mix, a, o);
  // Each device holds one whole expert per layer and the rest of the model whole (attention
  // data-parallel): experts' bytes / 8 plus everything else.
  const ParamCounts p = count_params(mix);
  CHECK(ep8.memory[0].weights == Approx(p.expert_bytes / 8 + (p.total_bytes - p.expert_bytes)).epsilon(1e-9));
  CHECK(ep8.memory[0].weights > tp8.memory[0].weights);
  // Its 8 requests' cache only.
  CHECK(ep8.memory[0].kv_cache == Approx(mix.kv_bytes(DType::BF16, 1025) * 8).epsilon(1e-9));
  // Two all-to-alls per MoE layer (dispatch and combine), no all-reduce; 8 devices' tokens.
  CHECK(ep8.alltoalls == 64);
  CHECK(ep8.allreduces == 0);
  CHECK(ep8.alltoall_time > 0);
  CHECK(ep8.tokens == 64);
  CHECK(ep8.devices() == 8);
  // Within one tensor-parallel group (ep = tp) the MLP's all-reduce combines: no all-to-all.
  o.tp = 8;
  const RunReport both = run_model(mix, a, o);
  CHECK(both.alltoalls == 0);
  CHECK(both.allreduces == 64);
  // Errors: a degree that does not divide the experts, is not a multiple of tp, or a dense model.
  o.tp = 2;
  o.ep = 3;
  CHECK_THAT(error_of([&] { run_model(mix, a, o); }), Catch::Contains("--ep: error: --ep 3 is not a multiple of --tp 2"));
  o.tp = 1;
  o.ep = 16;
  CHECK_THAT(error_of([&] { run_model(mix, a, o); }), Catch::Contains("--ep: error: --ep 16 does not divide the 8 experts"));
  o.ep = 2;
  CHECK_THAT(error_of([&] { run_model(llama2_7b(), a, o); }), Catch::Contains("--ep: error: --ep 2: 'Llama-2-7B' has no experts to split"));
}

TEST_CASE("DeepSeek-V3 by hand", "[layers][mla]") {
  const ModelConfig m = load_model("deepseek-v3");
  // Embedding and LM head 2 x 129280 x 7168; per layer attention (q 7168 x 1536, its norm,
  // 1536 x 128 x 192; latent 7168 x 512 + RoPE key 7168 x 64, its norm, up-projections
  // 512 x 128 x 256, output 128 x 128 x 7168) and two norms; 3 dense MLPs of 18432; 58 MoE
  // layers: router 7168 x 256 and its bias, 256 experts and 1 shared of 3 x 7168 x 2048.
  const double attention = 7168.0 * 1536 + 1536 + 1536.0 * 128 * 192 + 7168.0 * 576 + 512 + 512.0 * 128 * 256 + 128.0 * 128 * 7168;
  const double expert = 3.0 * 7168 * 2048;
  const double total = 2.0 * 129280 * 7168 + 7168 + 61 * (attention + 2 * 7168) + 3 * 3.0 * 7168 * 18432 + 58 * (7168.0 * 256 + 256 + 257 * expert);
  const ParamCounts p = count_params(m);
  CHECK(p.total == total);
  CHECK(p.total == Approx(671.0e9).epsilon(0.001));  // the card's 671B
  CHECK(p.active == total - 58 * 248 * expert);
  CHECK(p.active == Approx(37.6e9).epsilon(0.005));  // the card's 37B activated, rounded
  CHECK(m.kv_bytes_per_token(DType::BF16) == 61 * 576 * 2);
}

TEST_CASE("a Mamba scan keeps each token's state on chip and writes the last one back", "[layers][ssm]") {
  // The fused scan kernel starts from the cached state, holds the per-token states as it goes
  // (they never reach memory) and writes the final state to the cache.
  const ModelConfig m = load_model(shipped("models/mamba-2.8b.toml"));
  const ArchSpec a = load_arch("h100");
  const double state = m.ssm_inner * m.ssm_state * dtype_bytes(m.dtype);  // one layer's, one request
  auto scan_block = [&](const RunReport& r) -> const BlockRun& {
    for (const BlockRun& b : r.blocks)
      for (int i : b.einsums)
        if (r.einsums[static_cast<size_t>(i)].name == "SSO") return b;
    FAIL("no block writes the final state");
    return r.blocks.front();
  };
  const RunReport pre = run_model(m, a, prefill(1, 1024, 1));
  const BlockRun& b = scan_block(pre);
  CHECK(std::find(b.resident.begin(), b.resident.end(), "SSH") != b.resident.end());
  // The kernel moves its per-token inputs (dt, x, z, B, C) and output, each 1024 x the inner
  // width or less, A and D once, and the state in and out: not the 1025 states of the layer.
  const double bytes = b.traffic[0].read_bytes + b.traffic[0].write_bytes, token_row = 1024.0 * m.ssm_inner * dtype_bytes(m.dtype);
  CHECK(bytes < 5 * token_row);
  CHECK(bytes < 1025 * state / 3);
  const RunReport dec = run_model(m, a, decode(4, 1000, 1));
  const BlockRun& d = scan_block(dec);
  CHECK(d.traffic[0].read_bytes >= 4 * state);   // the cached state read
  CHECK(d.traffic[0].write_bytes >= 4 * state);  // the new state written back
}

TEST_CASE("expert parallelism under skewed routing: the busiest device sets the pace", "[layers][ep]") {
  // Qwen3-30B-A3B (128 experts, top 8) over 8 devices, 256 decodes.
  ModelConfig m = load_model(std::string(EINSIM_TEST_DATA) + "/configs/Qwen--Qwen3-30B-A3B.json");
  CHECK(m.expert_imbalance(8) == 1);
  const ArchSpec a = load_arch("h100");
  RunOptions o = decode(256, 1024, 0);  // every layer
  o.ep = 8;
  const RunReport uniform = run_model(m, a, o);
  m.routing_skew = 1.0;
  // By hand: Zipf(1) probabilities p_i = min(1, c / i) summing to 8; experts dealt round-robin
  // by popularity, so device 0 holds ranks 1, 9, 17, ...; its share over the mean (8 / 8).
  const std::vector<double> p = routing_probabilities(128, 8, 1.0);
  double first = 0;
  for (size_t i = 0; i < p.size(); i += 8) first += p[i];
  CHECK(m.expert_imbalance(8) == Approx(first / 1.0));
  CHECK(m.expert_imbalance(8) > 1.5);
  const RunReport skewed = run_model(m, a, o);
  CHECK(skewed.expert_imbalance == Approx(m.expert_imbalance(8)));
  // The busiest device computes and receives imbalance x the mean pairs.
  CHECK(skewed.alltoall_bytes == Approx(uniform.alltoall_bytes * skewed.expert_imbalance).epsilon(0.01));
  CHECK(skewed.step_time > uniform.step_time);
  // A config.json model takes the skew by --set.
  const std::string cfg = std::string(EINSIM_TEST_DATA) + "/configs/Qwen--Qwen3-30B-A3B.json";
  CHECK(load_model(cfg, {"model.routing_skew=1.0"}).expert_imbalance(8) == Approx(m.expert_imbalance(8)));
  CHECK_THAT(error_of([&] { load_model(cfg, {"model.routing_skew=-1"}); }), Catch::Contains("'routing_skew' must be a number in [0, 10]"));
}

TEST_CASE("tiers: attached hosts' tiers hold offloaded shares, streamed every step over their path", "[run][tiers]") {
  // The path's bandwidth per device: the narrowest of the tier's share, its own links' share and
  // the device's host link. A socket's DDR5 (307.2 GB/s over 4 GPUs) behind the H100's PCIe
  // (63 GB/s); a CXL module's x8 link (31.5 GB/s) behind it; Grace's LPDDR5X over C2C.
  const ArchSpec ddr = attach(load_arch("h100"), load_arch("ddr5-socket"), SourceLoc{"--attach"});
  const TierPath dp = *tier_path(ddr, "ddr5", "hbm");
  CHECK(dp.read_bandwidth == Approx(63e9));
  CHECK(dp.capacity == Approx(512e9 / 4));
  CHECK(dp.links == std::vector<std::string>{"pcie"});
  const ArchSpec cxl = attach(load_arch("h100"), load_arch("cxl-expander"), SourceLoc{"--attach"});
  const TierPath cp = *tier_path(cxl, "cxl", "hbm");
  CHECK(cp.read_bandwidth == Approx(31.5e9));
  CHECK(cp.links == std::vector<std::string>{"cxl-x8", "pcie"});
  CHECK(tier_path(load_arch("gh200"), "lpddr5x", "hbm")->read_bandwidth == Approx(450e9));
  CHECK(cxl.name == "H100-SXM5-80GB + cxl-expander");
  std::string why;
  CHECK_FALSE(tier_path(load_arch("h100"), "cxl", "hbm", &why));
  CHECK_THAT(why, Catch::Contains("has no tier 'cxl'"));

  // Half of a decode step's KV cache on the CXL module: half the cache leaves HBM, lands on
  // the module, and is read over the 31.5 GB/s path every step, which bounds the step.
  RunOptions o = decode(8, 8191, 0);
  const ModelConfig m = load_model("llama-3-8b");
  const RunReport base = run_model(m, cxl, o);
  o.offload.push_back({Offloaded::KvCache, "cxl", 0.5, SourceLoc{"--kv-tier"}});
  const RunReport half = run_model(m, cxl, o);
  REQUIRE(half.memory.size() == 2);
  CHECK(half.memory[0].kv_cache == Approx(base.memory[0].kv_cache / 2));
  CHECK(half.memory[0].weights == Approx(base.memory[0].weights));
  CHECK(half.memory[1].tier == "cxl");
  CHECK(half.memory[1].kv_cache == Approx(base.memory[0].kv_cache / 2));
  REQUIRE(half.offloads.size() == 1);
  const OffloadRun& kv = half.offloads[0];
  CHECK(kv.read_bytes + kv.write_bytes == Approx(base.memory[0].kv_cache / 2));
  CHECK(kv.write_bytes == Approx(kv.read_bytes / 8191));  // one token of 8192 appended
  CHECK(kv.time == Approx((kv.read_bytes + kv.write_bytes) / 31.5e9));
  CHECK(kv.time > base.step_time);
  // The streams bound the step: their time plus the first layer's share of them.
  CHECK(half.step_time - half.host_time == Approx(kv.time * (1 + 1.0 / 32)));
  CHECK(half.tokens_per_s == Approx(half.tokens / half.step_time));
  // Weights on the NVMe SSD: read-only, so a KV cache there is refused; too much for a tier is too.
  const ArchSpec ssd = attach(load_arch("h100"), load_arch("nvme-gen5"), SourceLoc{"--attach"});
  RunOptions w = decode(1, 1023, 0);
  w.offload.push_back({Offloaded::Weights, "nvme", 1, SourceLoc{"--weights-tier"}});
  const RunReport streamed = run_model(m, ssd, w);
  CHECK(streamed.memory[0].weights == Approx(0).margin(1));
  CHECK(streamed.offloads[0].bandwidth == Approx(14e9));
  CHECK(streamed.step_time > base.memory[0].weights / 14e9);
  w.offload[0].what = Offloaded::KvCache;
  CHECK(error_of([&] { run_model(m, ssd, w); }) == "--weights-tier: error: tier 'nvme' gives no write bandwidth, and the KV cache is written every step");
  RunOptions big = decode(64, 32767, 0);
  big.offload.push_back({Offloaded::KvCache, "cxl", 1, SourceLoc{"--kv-tier"}});
  const ArchSpec cxl_small = attach(load_arch("h100"), load_arch("cxl-expander", {"arch.tiers.cxl.capacity=\"64 GB\""}), SourceLoc{"--attach"});
  CHECK_THAT(error_of([&] { run_model(m, cxl_small, big); }), Catch::StartsWith("--kv-tier: error: tier 'cxl' holds 59.60 GiB per device"));
  RunOptions twice = decode(8, 8191, 0);
  twice.offload = {{Offloaded::KvCache, "cxl", 0.6, SourceLoc{"--kv-tier"}}, {Offloaded::KvCache, "cxl", 0.6, SourceLoc{"--kv-tier"}}};
  CHECK(error_of([&] { run_model(m, cxl, twice); }) == "--kv-tier: error: the shares of the KV cache placed off the device add up to more than 1");
  RunOptions staged = decode(8, 8191, 0);
  staged.pp = 2;
  staged.offload.push_back({Offloaded::KvCache, "cxl", 0.5, SourceLoc{"--kv-tier"}});
  CHECK_THAT(error_of([&] { run_model(m, cxl, staged); }), Catch::StartsWith("--kv-tier: error: an offloaded share with pipeline stages"));
  // Attaching: only hosts, and no name twice.
  CHECK(error_of([&] { attach(load_arch("h100"), load_arch("a100"), SourceLoc{"--attach"}); }) ==
        "--attach: error: 'A100-SXM4-80GB' is not a host (kind = \"host\"): only a host's tiers attach");
  CHECK(error_of([&] { attach(cxl, load_arch("cxl-expander"), SourceLoc{"--attach"}); }) ==
        "--attach: error: 'H100-SXM5-80GB + cxl-expander' and 'cxl-expander' both name a part 'cxl'");
}
