#include <catch2/catch.hpp>

#include <cmath>

#include "helpers.h"
#include "workloads/analysis.h"
#include "workloads/executor.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

using namespace einsim;
using einsim::test::error_of;
using einsim::test::shipped;

namespace {
ModelConfig model(const std::string& name) { return load_model(shipped("models/" + name + ".toml")); }

ModelConfig tiny(const std::string& extra = "") {
  auto doc = ConfigDoc::parse("version = 1\n[model]\nmodel_type = \"llama\"\nhidden_size = 8\nnum_hidden_layers = 2\n"
                              "num_attention_heads = 4\nnum_key_value_heads = 2\nintermediate_size = 12\nvocab_size = 11\n" +
                                  extra,
                              "tiny.toml");
  ModelConfig m = read_model(doc->root().get_table("model"), "tiny");
  doc->finish();
  return m;
}
}  // namespace

TEST_CASE("parameter counts match published totals", "[model]") {
  CHECK(count_params(model("llama-2-7b")).total == Approx(6.74e9).epsilon(0.005));
  CHECK(count_params(model("llama-3-70b")).total == Approx(70.6e9).epsilon(0.005));
  const ParamCounts mix = count_params(model("mixtral-8x7b"));
  CHECK(mix.total == Approx(46.7e9).epsilon(0.005));
  CHECK(mix.active == Approx(12.9e9).epsilon(0.005));
  CHECK(count_params(model("gpt-3-175b")).total == Approx(175e9).epsilon(0.01));
}

TEST_CASE("KV-cache bytes per token", "[model]") {
  CHECK(model("yi-34b-200k").kv_bytes_per_token(DType::BF16) == 245760);
  CHECK(model("llama-3-70b").kv_bytes_per_token(DType::BF16) == 327680);
  CHECK(model("falcon-7b").kv_bytes_per_token(DType::BF16) == 2 * 32 * 64 * 2);
  CHECK(model("bert-base").kv_bytes_per_token(DType::BF16) == 0);
}

TEST_CASE("a decode step costs about two FLOPs per parameter per token", "[model]") {
  const ModelConfig m = model("llama-2-7b");
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.context = 0;
  const CascadeStats s = analyze(bind_cascade(transformer_cascade(m, ph)));
  const ParamCounts p = count_params(m);
  // Every weight but the token embedding is multiplied once.
  CHECK(s.ops[OpClass::Mac] == Approx(p.total - 32000.0 * 4096).epsilon(0.01));
}

TEST_CASE("prefill attention grows with the square of the prompt", "[model]") {
  const ModelConfig m = model("llama-3-8b");
  auto attention_macs = [&](int64_t prompt) {
    Phase ph;
    ph.prompt = prompt;
    ph.layers = 1;
    const Cascade c = bind_cascade(transformer_cascade(m, ph));
    double macs = 0;
    for (const Einsum& e : c.einsums)
      if (e.text.starts_with("BQK[") || e.text.starts_with("SLNV[")) macs += e.ops[OpClass::Mac];
    return macs;
  };
  CHECK(attention_macs(2048) == Approx(4 * attention_macs(1024)));
}

TEST_CASE("config.json files are read directly", "[model]") {
  const ModelConfig m = load_model(std::string(EINSIM_TEST_DATA) + "/llama-2-7b-config.json");
  CHECK(m.hidden_size == 4096);
  CHECK(m.dtype == DType::FP16);
  CHECK(count_params(m).total == Approx(count_params(model("llama-2-7b")).total));
  const ModelConfig f = load_model(std::string(EINSIM_TEST_DATA) + "/falcon-7b-config.json");
  CHECK(f.num_key_value_heads == 1);
  CHECK(f.intermediate_size == 4 * 4544);
  CHECK(f.parallel_attn);
  CHECK(count_params(f).total == Approx(count_params(model("falcon-7b")).total));
}

TEST_CASE("config.json errors are located", "[model][errors]") {
  CHECK(error_of([] { parse_hf_config_json("{\n  \"model_type\": \"llama\",\n  \"hidden_size\": \"big\"\n}", "c.json"); }) ==
        "c.json:3:3: error: 'hidden_size' must be an integer");
  CHECK_THAT(error_of([] { parse_hf_config_json("{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 8,\n}", "c.json"); }),
             Catch::StartsWith("c.json:4:1: error: parse error"));
  CHECK_THAT(error_of([] { parse_hf_config_json("{\"model_type\": \"rwkv\"}", "c.json"); }),
             Catch::Contains("missing required key 'hidden_size' (model_type 'rwkv' is not one einsim knows"));
  CHECK_THAT(error_of([] { parse_hf_config_json("[1]", "c.json"); }), Catch::Contains("must hold an object"));
  CHECK_THAT(error_of([] { parse_hf_config_json("{\"model_type\": \"llama\"}", "c.json"); }),
             Catch::Contains("missing required key 'hidden_size'"));
}

TEST_CASE("model TOML errors are located", "[model][errors]") {
  CHECK_THAT(error_of([] { tiny("hiden_act = \"silu\"\n"); }), Catch::Contains("tiny.toml:10:1: error: unknown key 'hiden_act' in [model] (did you mean 'hidden_act'?)"));
  CHECK_THAT(error_of([] { tiny("num_key_value_heads = 3\n"); }), Catch::Contains("duplicate") || Catch::Contains("redefin"));
  CHECK_THAT(error_of([] { tiny("hidden_act = \"swiglu9\"\n"); }), Catch::Contains("unsupported hidden_act 'swiglu9'"));
  CHECK_THAT(error_of([] { tiny("num_local_experts = 4\n"); }), Catch::Contains("needs both"));
  CHECK_THAT(error_of([] { tiny("head_dim = 3\n"); }), Catch::Contains("even head_dim"));
}

TEST_CASE("the whole-model cascade computes the same logits with 3-pass and 1-pass attention", "[model][executor]") {
  for (const std::string extra : {"", "num_local_experts = 4\nnum_experts_per_tok = 2\n"}) {
    const ModelConfig m = tiny(extra);
    Phase ph;
    ph.prompt = 6;
    ph.attention = AttentionKind::ThreePass;
    const Cascade c3 = bind_cascade(transformer_cascade(m, ph));
    const TensorValues in = random_inputs(c3, 3);
    const Eigen::VectorXd ref = execute(c3, in).at("LOGITS");
    REQUIRE(ref.allFinite());
    for (int64_t block : {1, 2, 3, 6}) {
      ph.attention = AttentionKind::OnePass;
      ph.block = block;
      const Eigen::VectorXd got = execute(bind_cascade(transformer_cascade(m, ph)), in).at("LOGITS");
      INFO("block " << block << " " << extra);
      CHECK((got - ref).norm() <= 1e-9 * ref.norm());
    }
  }
}

TEST_CASE("every shipped model builds prefill and decode cascades", "[model]") {
  for (const char* name : {"llama-2-7b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "yi-34b-200k", "opt-6.7b", "falcon-7b",
                           "mixtral-8x7b", "gpt-3-175b", "llama-33b", "llama-65b", "bert-base", "trxl-wt103",
                           "t5-small-encoder", "xlm"}) {
    const ModelConfig m = model(name);
    Phase ph;
    ph.prompt = 512;
    ph.layers = 2;
    INFO(name);
    CHECK(analyze(bind_cascade(transformer_cascade(m, ph))).ops.flops() > 0);
    if (!m.encoder_only) {
      ph.kind = PhaseKind::Decode;
      ph.context = 1000;
      CHECK(analyze(bind_cascade(transformer_cascade(m, ph))).ops.flops() > 0);
    } else {
      ph.kind = PhaseKind::Decode;
      CHECK_THROWS_AS(transformer_cascade(m, ph), UserError);
    }
  }
}

TEST_CASE("causal prefill: the masked key blocks are skipped, a chunk sees its prefix whole", "[model][causal]") {
  using namespace einsim;
  // One tile: computed whole. n tiles: n(n+1)/2 of n^2.
  CHECK(causal_attention_work(0, 100) == 1.0);
  CHECK(causal_attention_work(0, 1024) == Approx(36.0 / 64));
  // A chunk of 256 after 768 cached tokens: key tiles 0-5 are seen by both query tiles, tile 6
  // by both (the first query tile's diagonal), tile 7 by the second only: 15 of 16.
  CHECK(causal_attention_work(768, 256) == Approx(15.0 / 16));
  // Long prompts approach one half.
  CHECK(causal_attention_work(0, 1 << 20) == Approx(0.5).epsilon(0.001));
  const ModelConfig m = load_model("llama-3-8b");
  Phase p;
  p.kind = PhaseKind::Prefill;
  p.prompt = 4096;
  p.layers = 1;
  const Cascade causal = bind_cascade(transformer_cascade(m, p));
  p.causal = false;
  const Cascade dense = bind_cascade(transformer_cascade(m, p));
  double c = 0, d = 0;
  for (const Einsum& e : causal.einsums) c += e.ops.flops() * e.work;
  for (const Einsum& e : dense.einsums) d += e.ops.flops() * e.work;
  CHECK(c < d);
  double scores_c = 0, scores_d = 0;
  for (const Einsum& e : causal.einsums)
    if (causal.tensors[static_cast<size_t>(e.lhs.tensor)].name == "BQK") scores_c = e.ops.flops() * e.work;
  for (const Einsum& e : dense.einsums)
    if (dense.tensors[static_cast<size_t>(e.lhs.tensor)].name == "BQK") scores_d = e.ops.flops() * e.work;
  CHECK(scores_c == Approx(scores_d * causal_attention_work(0, 4096)));
  // An encoder attends to every key.
  Phase e = p;
  e.causal = true;
  const ModelConfig bert = load_model("bert-base");
  for (const Einsum& x : bind_cascade(transformer_cascade(bert, e)).einsums) CHECK(x.work == 1.0);
  // A chunk reads its prefix's keys from the cache: M = context + prompt.
  Phase chunk = p;
  chunk.causal = true;
  chunk.context = 4096;
  const Cascade ch = bind_cascade(transformer_cascade(m, chunk));
  CHECK(ch.ranks[static_cast<size_t>(ch.find_rank("M"))].extent == 8192);
  bool reads_cache = false;
  for (const Tensor& t : ch.tensors) reads_cache |= t.name == "KC";
  CHECK(reads_cache);
}

TEST_CASE("Qwen3: QK-norm over each head, explicit head_dim, read from a config.json", "[model][qwen3]") {
  // Qwen3-32B's shape (its config.json's architecture keys; model card: 32.8B parameters).
  const std::string json = R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 5120,
 "num_hidden_layers": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128,
 "intermediate_size": 25600, "vocab_size": 151936, "hidden_act": "silu", "attention_bias": false,
 "tie_word_embeddings": false, "sliding_window": null, "use_sliding_window": false, "max_window_layers": 64,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000, "rope_scaling": null, "torch_dtype": "bfloat16"})";
  const ModelConfig m = parse_hf_config_json(json, "qwen3-32b.json");
  CHECK(m.qk_norm);
  CHECK(m.head_dim == 128);
  // By hand: embeddings and LM head 2 x 151936 x 5120; per layer Q 5120 x 8192, K and V
  // 5120 x 1024 each, O 8192 x 5120, the two head norms 128 each, MLP 3 x 5120 x 25600, two
  // norms 5120 each; the final norm 5120.
  const double per_layer = 5120.0 * 8192 + 2 * 5120.0 * 1024 + 8192.0 * 5120 + 2 * 128 + 3 * 5120.0 * 25600 + 2 * 5120;
  const ParamCounts p = count_params(m);
  CHECK(p.total == Approx(2 * 151936.0 * 5120 + 64 * per_layer + 5120));
  CHECK(p.total / 1e9 == Approx(32.76).margin(0.01));
  CHECK(p.per_layer_attention == Approx(5120.0 * 8192 + 2 * 5120.0 * 1024 + 8192.0 * 5120 + 256));
  // KV per token: 64 layers x 8 heads x 128 x 2 (K, V) x 2 bytes.
  CHECK(m.kv_bytes_per_token(DType::BF16) == 64.0 * 8 * 128 * 2 * 2);
  // The head norms are in the cascade, before RoPE, and attention components.
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.context = 127;
  ph.layers = 1;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  for (const char* t : {"QN", "KN", "QRS", "KRS"}) CHECK(c.find_tensor(t) >= 0);
  CHECK(model_component(c.einsums[static_cast<size_t>(c.tensors[static_cast<size_t>(c.find_tensor("QN"))].writers[0])], "QN") == "attention");
  ModelConfig plain = m;
  plain.qk_norm = false;
  CHECK(plain.fingerprint() != m.fingerprint());
}
