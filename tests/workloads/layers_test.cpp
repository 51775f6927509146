// Layer kinds: windows, chunks, dense and MoE layers in one model; fine-grained and shared
// experts; routing; soft-capping and sinks.
#include <catch2/catch.hpp>

#include <cmath>

#include "helpers.h"
#include "workloads/executor.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

using namespace einsim;
using einsim::test::error_of;
using einsim::test::model_toml;

namespace {

// Two layers, 4 heads of 2 channels over 2 KV heads, FFN 12, vocabulary 11.
const std::string kTiny = "model_type = \"llama\"\nhidden_size = 8\nnum_hidden_layers = 2\nnum_attention_heads = 4\nnum_key_value_heads = 2\n"
                          "intermediate_size = 12\nvocab_size = 11\n";
const std::string kJson = R"({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 16)";

std::vector<std::string> names(const ModelConfig& m) {
  std::vector<std::string> out;
  for (const LayerKind& k : m.layers()) out.push_back(k.name());
  return out;
}

}  // namespace

TEST_CASE("layer patterns from config keys", "[model][layers]") {
  using V = std::vector<std::string>;
  // Qwen2: layers from max_window_layers on are windowed.
  CHECK(names(parse_hf_config_json(kJson + R"(, "sliding_window": 64, "use_sliding_window": true, "max_window_layers": 2})", "c.json")) ==
        V{"attention + dense", "attention + dense", "window 64 + dense", "window 64 + dense"});
  // Gemma 2: even layers windowed; Gemma 3: every sixth layer global (here the pattern of 2).
  const std::string gemma = R"({"model_type": "gemma2", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "head_dim": 2, "vocab_size": 10, "intermediate_size": 16, "sliding_window": 32)";
  CHECK(names(parse_hf_config_json(gemma + "}", "c.json")) == V{"window 32 + dense", "attention + dense", "window 32 + dense", "attention + dense"});
  std::string g3 = gemma + R"(, "sliding_window_pattern": 4})";
  g3.replace(g3.find("gemma2"), 6, "gemma3_text");
  CHECK(names(parse_hf_config_json(g3, "c.json")) == V{"window 32 + dense", "window 32 + dense", "window 32 + dense", "attention + dense"});
  // layer_types (gpt-oss, newer configs) says it per layer.
  CHECK(names(parse_hf_config_json(kJson + R"(, "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]})",
                                   "c.json")) == V{"window 128 + dense", "attention + dense", "window 128 + dense", "attention + dense"});
  // Llama 4: chunked attention on the RoPE layers, global attention on the others.
  CHECK(names(parse_hf_config_json(kJson + R"(, "attention_chunk_size": 8192, "no_rope_layers": [1, 1, 1, 0]})", "c.json")) ==
        V{"chunk 8192 + dense", "chunk 8192 + dense", "chunk 8192 + dense", "attention + dense"});
  // DeepSeek: the first k layers dense, then MoE every moe_layer_freq-th layer.
  const std::string moe = kJson + R"(, "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 4)";
  CHECK(names(parse_hf_config_json(moe + R"(, "first_k_dense_replace": 1, "moe_layer_freq": 2})", "c.json")) ==
        V{"attention + dense", "attention + dense", "attention + moe", "attention + dense"});
  // Qwen-MoE: MoE where (i + 1) % decoder_sparse_step == 0, but not on mlp_only_layers.
  CHECK(names(parse_hf_config_json(moe + R"(, "decoder_sparse_step": 1, "mlp_only_layers": [0, 3]})", "c.json")) ==
        V{"attention + dense", "attention + moe", "attention + moe", "attention + dense"});
  CHECK(names(parse_hf_config_json(moe + R"(, "interleave_moe_layer_step": 2})", "c.json")) ==
        V{"attention + dense", "attention + moe", "attention + dense", "attention + moe"});
  // A pattern that makes every layer alike is the uniform model (one group, the same cascade).
  const ModelConfig alike = parse_hf_config_json(kJson + R"(, "sliding_window": 64, "use_sliding_window": true, "max_window_layers": 0})", "c.json");
  CHECK(alike.layer_kinds.empty());
  CHECK(alike.layer_groups().size() == 1);
  // TOML presets take the same keys.
  CHECK(names(model_toml(kTiny + "sliding_window = 16\nlayer_types = [\"sliding_attention\", \"full_attention\"]\n")) ==
        V{"window 16 + dense", "attention + dense"});
  CHECK(model_toml(kTiny + "sliding_window = 16\nlayer_types = [\"sliding_attention\", \"full_attention\"]\n").layer_groups().size() == 2);
}

TEST_CASE("layer pattern and expert errors are located", "[model][layers][errors]") {
  CHECK_THAT(error_of([] { model_toml(kTiny + "sliding_window = 16\nlayer_types = [\"sliding_attention\"]\n"); }),
             Catch::Contains("m.toml:11:15: error: 'layer_types' lists 1 layers; the model has 2"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "sliding_window = 16\nlayer_types = [\"linear_attention\", \"full_attention\"]\n"); }),
             Catch::Contains("layer 0 is 'linear_attention': einsim knows full_attention, sliding_attention, chunked_attention and mamba"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "layer_types = [\"sliding_attention\", \"full_attention\"]\n"); }),
             Catch::Contains("m.toml:10:15: error: windowed layers need 'sliding_window'"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "layer_types = [\"chunked_attention\", \"full_attention\"]\n"); }),
             Catch::Contains("chunked_attention layers need 'attention_chunk_size'"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kJson + R"(, "num_local_experts": 4, "num_experts_per_tok": 1,
 "mlp_only_layers": [7]})", "c.json"); }),
             Catch::Contains("c.json:2:2: error: 'mlp_only_layers' names layer 7; 'c' has layers 0 to 3"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kJson + R"(, "mlp_only_layers": 3})", "c.json"); }),
             Catch::Contains("'mlp_only_layers' must be an array of integers"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "no_rope_layers = [1, \"x\"]\n"); }), Catch::Contains("'model.no_rope_layers' must be an array of integers"));
  // Experts: groups must divide them and hold the chosen ones; widths need experts.
  const std::string moe = kTiny + "num_local_experts = 8\nnum_experts_per_tok = 4\n";
  CHECK_THAT(error_of([&] { model_toml(moe + "n_group = 3\n"); }), Catch::Contains("n_group 3 does not divide the 8 experts"));
  CHECK_THAT(error_of([&] { model_toml(moe + "n_group = 4\ntopk_group = 5\n"); }), Catch::Contains("topk_group 5 must be in [1, n_group = 4]"));
  CHECK_THAT(error_of([&] { model_toml(moe + "n_group = 4\ntopk_group = 1\n"); }),
             Catch::Contains("num_experts_per_tok 4 exceeds the experts of topk_group 1 groups (2)"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "moe_intermediate_size = 4\n"); }), Catch::Contains("need an MoE model"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kJson + R"(, "n_shared_experts": 2})", "c.json"); }), Catch::Contains("need an MoE model"));
  CHECK_THAT(error_of([&] { model_toml(moe + "n_shared_experts = 1\nshared_expert_intermediate_size = 4\n"); }),
             Catch::Contains("not both"));
  CHECK_THAT(error_of([&] { parse_hf_config_json(kJson + R"(, "num_local_experts": 4, "num_experts_per_tok": 1, "scoring_func": "relu"})", "c.json"); }),
             Catch::Contains("scoring_func 'relu': einsim knows softmax and sigmoid"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kJson + R"(, "sliding_window": -2})", "c.json"); }), Catch::Contains("'sliding_window' = -2 is out of range"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kJson + R"(, "num_local_experts": 2, "num_experts_per_tok": 3})", "c.json"); }),
             Catch::Contains("num_experts_per_tok 3 exceeds num_local_experts 2"));
}

TEST_CASE("a request's cache over layers of different windows", "[model][layers]") {
  const ModelConfig m = model_toml(kTiny + "sliding_window = 4\nlayer_types = [\"sliding_attention\", \"full_attention\"]\n");
  // K and V of 2 KV heads x 2 channels in bf16 per token and layer: 16 B. After 10 tokens the
  // windowed layer keeps 4, the global one 10.
  CHECK(m.kv_bytes_per_token(DType::BF16) == 2 * 16);
  CHECK(m.kv_bytes(DType::BF16, 10) == 16 * (4 + 10));
  CHECK(m.kv_tokens(10) == 7);
  CHECK(m.kv_bytes(DType::BF16, 3) == 16 * (3 + 3));
  // A chunk keeps the tokens of the current chunk.
  LayerKind chunked;
  chunked.chunk = 8;
  CHECK(chunked.cached(8) == 8);
  CHECK(chunked.cached(9) == 1);
  CHECK(chunked.cached(20) == 4);
  // Each sublayer's output is all-reduced under TP; parallel attention joins them.
  CHECK(m.sublayers() == 4);
  ModelConfig par = m;
  par.parallel_attn = true;
  CHECK(par.sublayers() == 2);
}

TEST_CASE("fine-grained and shared experts, hand-counted", "[model][layers]") {
  // Layer 0 dense (FFN 12), layer 1 MoE: 4 experts of width 3 (2 routed) and one shared of 3.
  const ModelConfig m = model_toml(kTiny + "num_local_experts = 4\nnum_experts_per_tok = 2\nmoe_intermediate_size = 3\nn_shared_experts = 1\n"
                                             "first_k_dense_replace = 1\n");
  CHECK(m.shared_expert_size == 3);
  const ParamCounts p = count_params(m);
  // Embedding and LM head 2 x 8 x 11; final norm 8; per layer attention 64 + 32 + 32 + 64 and
  // norms 16; the dense MLP 3 x 8 x 12; the router 8 x 4, experts 4 x 3 x 8 x 3, shared 3 x 8 x 3.
  CHECK(p.total == 176 + 8 + 2 * (192 + 16) + 288 + 32 + 288 + 72);
  CHECK(p.active == p.total - 288 / 2);
  CHECK(p.embedding == 176);
  // The cascade has one group per kind: the dense layer's ranks and tensors unsuffixed, the
  // MoE layer's with _1; the residual stream passes between them as a view that costs nothing.
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.context = 5;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  CHECK(c.find_rank("L") >= 0);
  CHECK(c.find_rank("L_1") >= 0);
  CHECK(c.find_tensor("WG") >= 0);
  CHECK(c.find_tensor("WG_1") >= 0);
  CHECK(c.find_tensor("WSG_1") >= 0);
  CHECK(base_name("WSG_1") == "WSG");
  CHECK(base_name("M1") == "M1");
  CHECK(base_name("X_") == "X_");
  int views = 0;
  for (const Einsum& e : c.einsums) views += e.view;
  CHECK(views == 1);
}

TEST_CASE("routing: grouped, sigmoid, biased and scaled routers build and run", "[model][layers]") {
  const ModelConfig m = model_toml(kTiny + "num_local_experts = 8\nnum_experts_per_tok = 2\nn_group = 4\ntopk_group = 2\nscoring_func = \"sigmoid\"\n"
                                             "router_bias = true\nrouted_scaling_factor = 2.5\nnorm_topk_prob = true\n");
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.batch = 2;
  ph.context = 3;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  for (const char* t : {"RP", "GS", "GTOP", "RLB", "RTOT", "RW"}) {
    CAPTURE(t);
    CHECK(c.find_tensor(t) >= 0);
  }
  // The reference executor runs it (the selection is data).
  const TensorValues out = execute(c, random_inputs(c, 7));
  CHECK(out.count("LOGITS") == 1);
  CHECK(count_params(m).total == count_params(model_toml(kTiny + "num_local_experts = 8\nnum_experts_per_tok = 2\n")).total + 2 * 8);  // the bias
}

TEST_CASE("expected distinct experts under skewed routing", "[model][layers]") {
  Tensor sel;
  sel.routed = 1;
  // Uniform: E (1 - (1 - k/E)^n).
  CHECK(distinct_rows(4, sel, 2) == Approx(4 * (1 - 0.75 * 0.75)));
  // Zipf 1 over 4 experts, top-1: p = 12/25 x (1, 1/2, 1/3, 1/4); two tokens touch
  // sum 1 - (1 - p_i)^2 = 1.672 experts.
  sel.routing_skew = 1;
  CHECK(distinct_rows(4, sel, 2) == Approx(1.672).epsilon(1e-6));
  // Skew concentrates the batch on fewer experts; many tokens still reach them all.
  sel.routed = 8;
  Tensor uniform = sel;
  uniform.routing_skew = 0;
  CHECK(distinct_rows(256, sel, 8 * 64) < distinct_rows(256, uniform, 8 * 64));
  CHECK(distinct_rows(256, sel, 8.0 * 1e6) == Approx(256).epsilon(1e-3));
  CHECK(distinct_rows(256, sel, 8) == Approx(8).epsilon(1e-9));  // one token: its k experts
}

TEST_CASE("windowed decode attention equals masked attention over the whole cache", "[model][layers][executor]") {
  // One layer, a window of 4 after 9 cached tokens: the cascade reads the last 4 keys. The
  // reference attends over all 10 with the older 6 masked, from the same queries.
  const ModelConfig m = model_toml(kTiny + "sliding_window = 4\n");
  Phase ph;
  ph.kind = PhaseKind::Decode;
  ph.batch = 2;
  ph.context = 9;
  ph.layers = 1;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  const int kc = c.find_tensor("KC");
  REQUIRE(c.tensors[static_cast<size_t>(kc)].shape.back() == 4);
  TensorValues in = random_inputs(c, 3);
  // The whole cache: T = 10 tokens, the window's 4 the last of them.
  const int B = 2, G = 2, R = 2, E = 2, T = 10, W = 4;
  Eigen::VectorXd kfull = Eigen::VectorXd::Random(B * G * E * T), vfull = Eigen::VectorXd::Random(B * G * E * T);
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < G; ++g)
      for (int e = 0; e < E; ++e)
        for (int w = 0; w < W; ++w) {
          in.at("KC")[((b * G + g) * E + e) * W + w] = kfull[((b * G + g) * E + e) * T + (T - W + w)];
          in.at("VC")[((b * G + g) * E + e) * W + w] = vfull[((b * G + g) * E + e) * T + (T - W + w)];
        }
  const TensorValues out = execute(c, in);
  const Eigen::VectorXd& q = out.at("QR");  // [l,b,g,r,e1,e0,p]: e = e1 * E0 + e0, P = 1
  double worst = 0;
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < G; ++g)
      for (int r = 0; r < R; ++r) {
        std::vector<double> s(T);
        double mx = -1e300;
        for (int t = 0; t < T; ++t) {
          s[static_cast<size_t>(t)] = -1e300;
          if (t < T - W) continue;  // masked: older than the window
          double dot = 0;
          for (int e = 0; e < E; ++e) dot += q[((b * G + g) * R + r) * E + e] * kfull[((b * G + g) * E + e) * T + t];
          s[static_cast<size_t>(t)] = dot / std::sqrt(static_cast<double>(E));
          mx = std::max(mx, s[static_cast<size_t>(t)]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = x < -1e299 ? 0 : std::exp(x - mx));
        for (int f = 0; f < E; ++f) {
          double av = 0;
          for (int t = 0; t < T; ++t) av += s[static_cast<size_t>(t)] / sum * vfull[((b * G + g) * E + f) * T + t];
          worst = std::max(worst, std::fabs(av - out.at("AV")[((b * G + g) * R + r) * E + f]));
        }
      }
  CHECK(worst < 1e-12);
}

TEST_CASE("causal work of chunked attention", "[model][layers]") {
  // 8 query tiles of 128 in chunks of 256 keys: a tile sees its own and, for the second tile
  // of a chunk, the first: 4 x 1 + 4 x 2 = 12 of 64 tile pairs.
  CHECK(causal_attention_work(0, 1024, 128, 0, 256) == Approx(12.0 / 64));
  // A chunk as long as the keys is plain causal attention.
  CHECK(causal_attention_work(0, 1024, 128, 0, 1024) == Approx(causal_attention_work(0, 1024)));
}

TEST_CASE("soft-capping and sinks add their operations", "[model][layers]") {
  const ModelConfig plain = model_toml(kTiny);
  ModelConfig capped = plain;
  capped.attn_logit_softcapping = 50;
  capped.final_logit_softcapping = 30;
  capped.attention_sinks = true;
  for (AttentionKind a : {AttentionKind::OnePass, AttentionKind::ThreePass}) {
    Phase ph;
    ph.attention = a;
    ph.prompt = 8;
    const Cascade c = bind_cascade(transformer_cascade(capped, ph));
    CHECK(c.find_tensor(a == AttentionKind::OnePass ? "BQC" : "QKC") >= 0);
    CHECK(c.find_tensor("SKD") >= 0);
    CHECK(c.find_tensor("LOGITC") >= 0);
    // It still computes (tanh, the sink's term), and the sink is a parameter per head.
    const TensorValues out = execute(c, random_inputs(c, 1));
    CHECK(std::isfinite(out.at("LOGITC")[0]));
  }
  CHECK(count_params(capped).total == count_params(plain).total + 2 * 4);
}

namespace {
// DeepSeek-V2-Lite's attention at toy size: 4 heads, q through a bottleneck of 6, a latent of
// 4 channels, RoPE key of 2, nope 3, value 2.
const std::string kMla = "model_type = \"deepseek_v3\"\nhidden_size = 8\nnum_hidden_layers = 2\nnum_attention_heads = 4\nintermediate_size = 12\n"
                         "vocab_size = 11\nkv_lora_rank = 4\nq_lora_rank = 6\nqk_rope_head_dim = 2\nqk_nope_head_dim = 3\nv_head_dim = 2\n";
}  // namespace

TEST_CASE("latent attention: parameters and cache by hand", "[model][layers][mla]") {
  const ModelConfig m = model_toml(kMla);
  // Per layer: q down 8 x 6 and its norm 6, q up 6 x 4 x (3 + 2), kv down 8 x 4 and the RoPE
  // key 8 x 2, the latent's norm 4, up-projections 4 x 4 x 3 (keys) and 4 x 4 x 2 (values),
  // output 4 x 2 x 8.
  const double attention = 48 + 6 + 120 + 32 + 16 + 4 + 48 + 32 + 64;
  const ParamCounts p = count_params(m);
  CHECK(p.per_layer_attention == attention);
  CHECK(p.total == 2 * 8 * 11 + 8 + 2 * (attention + 16 + 3 * 8 * 12));
  // The cache: the latent and the RoPE key per token and layer.
  CHECK(m.kv_bytes_per_token(DType::BF16) == 2 * (4 + 2) * 2);
  CHECK(m.kv_bytes(DType::FP8, 100) == 2 * 6 * 100);
}

TEST_CASE("absorbed latent attention equals naive latent attention", "[model][layers][mla][executor]") {
  // One decode step over 6 cached tokens and a chunk of 3 prompt tokens after 5 cached, both
  // forms, both attention cascades: the same logits from the same weights and cache.
  const ModelConfig m = model_toml(kMla);
  for (PhaseKind kind : {PhaseKind::Decode, PhaseKind::Prefill})
    for (AttentionKind a : {AttentionKind::OnePass, AttentionKind::ThreePass}) {
      Phase ph;
      ph.kind = kind;
      ph.batch = 2;
      ph.prompt = 3;
      ph.context = 5;
      ph.block = 4;
      ph.attention = a;
      ph.mla_absorbed = false;
      const Cascade naive = bind_cascade(transformer_cascade(m, ph));
      ph.mla_absorbed = true;
      const Cascade absorbed = bind_cascade(transformer_cascade(m, ph));
      const TensorValues in = random_inputs(naive, 11);
      const TensorValues a_in = random_inputs(absorbed, 11);
      REQUIRE(a_in.size() == in.size());  // the same inputs, by name and size
      for (const auto& [name, v] : in) REQUIRE(a_in.at(name).size() == v.size());
      const TensorValues x = execute(naive, in), y = execute(absorbed, in);
      const Eigen::VectorXd& lx = x.at("LOGITS");
      const Eigen::VectorXd& ly = y.at("LOGITS");
      CHECK((lx - ly).cwiseAbs().maxCoeff() < 1e-9 * std::max(1.0, lx.cwiseAbs().maxCoeff()));
      // The two forms differ in work: absorbed attention reads the latent once for all heads.
      CHECK(naive.find_tensor("KNP") >= 0);
      CHECK(absorbed.find_tensor("QL") >= 0);
    }
}

TEST_CASE("a multimodal wrapper's text_config, and an unknown model_type, with notes", "[model][layers]") {
  // Llama 4's shape at toy size: the language model nested under text_config, a vision tower
  // beside it; experts of intermediate_size with a shared one, dense layers of
  // intermediate_size_mlp, chunked attention on the RoPE layers.
  const std::string llama4 = R"({"model_type": "llama4", "tie_word_embeddings": false, "vision_config": {"hidden_size": 4},
    "text_config": {"model_type": "llama4_text", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
      "head_dim": 2, "vocab_size": 11, "intermediate_size": 3, "intermediate_size_mlp": 12, "num_local_experts": 4, "num_experts_per_tok": 1,
      "interleave_moe_layer_step": 2, "attention_chunk_size": 16, "no_rope_layers": [1, 1, 1, 0], "use_qk_norm": true, "torch_dtype": "bfloat16"}})";
  const ModelConfig m = parse_hf_config_json(llama4, "l4.json");
  REQUIRE(m.notes.size() == 2);
  CHECK_THAT(m.notes[0], Catch::Contains("the language model of 'llama4' is its text_config; vision_config not modelled"));
  CHECK_THAT(m.notes[1], Catch::Contains("use_qk_norm"));
  CHECK(m.moe_intermediate_size == 3);
  CHECK(m.shared_expert_size == 3);
  CHECK(m.intermediate_size == 12);
  CHECK(m.scoring == ScoringKind::Sigmoid);
  CHECK(names(m) == std::vector<std::string>{"chunk 16 + dense", "chunk 16 + moe", "chunk 16 + dense", "attention + moe"});
  // Per layer attention 64 + 32 + 32 + 64 and norms 16; dense MLPs 3 x 8 x 12; MoE layers a
  // router 8 x 4, experts 4 x 3 x 8 x 3 and a shared 3 x 8 x 3; untied embeddings (the
  // wrapper says so).
  CHECK(count_params(m).total == 2 * 8 * 11 + 8 + 4 * (192 + 16) + 2 * 288 + 2 * (32 + 288 + 72));
  // An unknown model_type with keys einsim reads is built as a Llama-style decoder, and said so.
  const ModelConfig u = parse_hf_config_json(R"({"model_type": "olmo2", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4,
    "vocab_size": 10, "intermediate_size": 16})", "o.json");
  REQUIRE(u.notes.size() == 1);
  CHECK_THAT(u.notes[0], Catch::Contains("model_type 'olmo2' is not one einsim knows") && Catch::Contains("Llama-style"));
  CHECK(u.model_type == "llama");
  CHECK(count_params(u).total == count_params(parse_hf_config_json(R"({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 2,
    "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 16})", "l.json")).total);
}

namespace {
// A two-layer Mamba at toy size: width 4, inner 6, state 3, conv 3 taps, dt rank 2.
const std::string kMamba = "model_type = \"mamba\"\nhidden_size = 4\nnum_hidden_layers = 2\nintermediate_size = 6\nvocab_size = 11\n"
                           "tie_word_embeddings = true\nssm_state_size = 3\nssm_conv_kernel = 3\nssm_dt_rank = 2\n";
}  // namespace

namespace {
// The reference executor's values for a prefill of 5 tokens of 2 requests through the first
// layer, from random inputs (seed `seed`): what the scan tests check against a recurrence.
TensorValues scan_prefill(const ModelConfig& m, uint64_t seed) {
  Phase ph;
  ph.prompt = 5;
  ph.batch = 2;
  ph.layers = 1;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  return execute(c, random_inputs(c, seed));
}
}  // namespace

TEST_CASE("Mamba: parameters and the constant state by hand", "[model][layers][ssm]") {
  const ModelConfig m = model_toml(kMamba);
  CHECK(names(m) == std::vector<std::string>{"mamba", "mamba"});
  // Per layer: in projections 4 x 6 twice, conv 6 x 3 taps + bias 6, x projection 6 x (2 + 3 + 3),
  // dt projection 2 x 6 + bias 6, A 6 x 3, D 6, out 6 x 4, its norm 4; tied embedding 11 x 4;
  // final norm 4.
  const double layer = 48 + 18 + 6 + 48 + 12 + 6 + 18 + 6 + 24 + 4;
  CHECK(count_params(m).total == 44 + 4 + 2 * layer);
  // The cache: per layer the conv's 2 earlier inputs and the 6 x 3 state, whatever the context.
  CHECK(m.kv_bytes(DType::BF16, 10) == 2 * (6 * 2 + 6 * 3) * 2);
  CHECK(m.kv_bytes(DType::BF16, 100000) == m.kv_bytes(DType::BF16, 10));
  CHECK(m.kv_bytes_per_token(DType::BF16) == 0);
}

TEST_CASE("the Mamba scan equals the naive recurrence", "[model][layers][ssm][executor]") {
  // A prefill of 5 tokens from a cached state: the cascade's scan (an iterative rank over the
  // tokens) against h[p+1] = exp(dt A) h[p] + dt B x, y = C h, computed here from the same
  // projections.
  const TensorValues out = scan_prefill(model_toml(kMamba), 5);
  const int B = 2, I = 6, N = 3, P = 5;
  const Eigen::VectorXd &dt = out.at("SDT"), &bm = out.at("SBM"), &cm = out.at("SCM"), &x = out.at("SCV"), &a = out.at("SAL"), &h0 = out.at("SSC");
  double worst = 0;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < I; ++i) {
      std::vector<double> h(N);
      for (int n = 0; n < N; ++n) h[static_cast<size_t>(n)] = h0[(b * I + i) * N + n];
      for (int p = 0; p < P; ++p) {
        const double d = dt[(b * I + i) * P + p], xi = x[(b * I + i) * P + p];
        double y = 0;
        for (int n = 0; n < N; ++n) {
          double& hn = h[static_cast<size_t>(n)];
          hn = std::exp(d * a[i * N + n]) * hn + d * bm[(b * N + n) * P + p] * xi;
          y += cm[(b * N + n) * P + p] * hn;
        }
        worst = std::max(worst, std::fabs(y - out.at("SY")[(b * I + i) * P + p]));
      }
    }
  CHECK(worst < 1e-12);
}

namespace {
// A two-layer Mamba-2 at toy size: width 4, 8 channels in 4 heads of 2 in 2 groups, state 3,
// conv 3 taps.
const std::string kMamba2 = "model_type = \"mamba2\"\nhidden_size = 4\nnum_hidden_layers = 2\nintermediate_size = 8\nvocab_size = 11\n"
                            "tie_word_embeddings = true\nssm_state_size = 3\nssm_conv_kernel = 3\nssm_heads = 4\nssm_groups = 2\n";
}  // namespace

TEST_CASE("Mamba-2: parameters and the constant state by hand", "[model][layers][ssm]") {
  const ModelConfig m = model_toml(kMamba2);
  CHECK(names(m) == std::vector<std::string>{"mamba", "mamba"});
  // Per layer: the in projection 4 x (z 8 + x 8 + B 2 x 3 + C 2 x 3 + dt 4) = 128; the conv over
  // x, B and C, 20 channels x 3 taps + 20 biases; dt bias, A and D per head 3 x 4; the gated
  // norm 8; out 8 x 4; the layer's norm 4. Tied embedding 11 x 4, final norm 4.
  const double layer = 128 + 60 + 20 + 12 + 8 + 32 + 4;
  CHECK(count_params(m).total == 44 + 4 + 2 * layer);
  // The cache per layer: the conv's 2 earlier inputs of its 20 channels, the 8 x 3 state.
  CHECK(m.kv_bytes(DType::BF16, 10) == 2 * (20 * 2 + 8 * 3) * 2);
  CHECK(m.kv_bytes(DType::BF16, 100000) == m.kv_bytes(DType::BF16, 10));
  CHECK_THAT(error_of([] { model_toml(kMamba2.substr(0, kMamba2.find("ssm_groups")) + "ssm_groups = 3\n"); }), Catch::Contains("the groups the heads"));
  CHECK_THAT(error_of([] { model_toml("model_type = \"mamba2\"\nhidden_size = 4\nnum_hidden_layers = 2\nintermediate_size = 8\nvocab_size = 11\n"
                                      "ssm_state_size = 3\n"); }),
             Catch::Contains("a mamba2 model needs 'ssm_heads'"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "ssm_groups = 2\n"); }), Catch::Contains("'ssm_groups' is for Mamba-2 mixers"));
}

TEST_CASE("Mamba-2 from config.json: num_heads and head_dim are the mixers'", "[model][layers][ssm]") {
  const std::string cfg = R"({"model_type": "mamba2", "hidden_size": 4, "num_hidden_layers": 2, "vocab_size": 11, "num_heads": 4, "head_dim": 2,
    "n_groups": 2, "state_size": 3, "conv_kernel": 3, "expand": 2, "tie_word_embeddings": true, "time_step_limit": [0.0, Infinity]})";
  const ModelConfig m = parse_hf_config_json(cfg, "m.json");
  CHECK(m.ssm_heads == 4);
  CHECK(m.ssm_inner == 8);
  CHECK(count_params(m).total == count_params(model_toml(kMamba2)).total);
  CHECK_THAT(error_of([&] { parse_hf_config_json(R"({"model_type": "mamba2", "hidden_size": 4, "num_hidden_layers": 2, "vocab_size": 11,
    "num_heads": 4, "head_dim": 3, "state_size": 3, "conv_kernel": 3, "expand": 2})", "m.json"); }),
             Catch::Contains("m.json:2:5: error: num_heads 4 x head_dim 3 = 12 channels, but expand x hidden_size = 8"));
  CHECK_THAT(error_of([&] { parse_hf_config_json(R"({"model_type": "mamba2", "hidden_size": 4, "num_hidden_layers": 2, "vocab_size": 11,
    "num_heads": 4, "head_dim": 2, "state_size": 3, "conv_kernel": 3, "rms_norm": false})", "m.json"); }),
             Catch::Contains("'rms_norm' = false"));
}

TEST_CASE("the Mamba-2 scan equals the naive recurrence", "[model][layers][ssm][executor]") {
  // A prefill of 5 tokens from a cached state: per head a scalar decay exp(dt A), B and C shared
  // by the heads of a group.
  const TensorValues out = scan_prefill(model_toml(kMamba2), 7);
  const int B = 2, G = 2, H = 2, E = 2, N = 3, P = 5;
  const Eigen::VectorXd &dt = out.at("SDT"), &bm = out.at("SBM"), &cm = out.at("SCM"), &x = out.at("SCV"), &a = out.at("SAL"), &h0 = out.at("SSC");
  double worst = 0;
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < G; ++g)
      for (int h = 0; h < H; ++h)
        for (int e = 0; e < E; ++e) {
          std::vector<double> st(N);
          const int ch = ((b * G + g) * H + h) * E + e;
          for (int n = 0; n < N; ++n) st[static_cast<size_t>(n)] = h0[ch * N + n];
          for (int p = 0; p < P; ++p) {
            const double d = dt[((b * G + g) * H + h) * P + p], xi = x[ch * P + p];
            double y = 0;
            for (int n = 0; n < N; ++n) {
              double& s = st[static_cast<size_t>(n)];
              s = std::exp(d * a[g * H + h]) * s + d * bm[((b * G + g) * N + n) * P + p] * xi;
              y += cm[((b * G + g) * N + n) * P + p] * s;
            }
            worst = std::max(worst, std::fabs(y - out.at("SY")[ch * P + p]));
          }
        }
  CHECK(worst < 1e-12);
}

TEST_CASE("Nemotron-H: a layer is a Mamba-2 mixer, attention or an MLP, by its pattern", "[model][layers][ssm]") {
  const std::string nem = R"({"model_type": "nemotron_h", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "attention_head_dim": 2, "intermediate_size": 12, "vocab_size": 11, "tie_word_embeddings": false,
    "hybrid_override_pattern": "M-*-", "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 3, "conv_kernel": 4,
    "mlp_hidden_act": "relu2", "mamba_hidden_act": "silu", "use_conv_bias": true, "use_bias": false})";
  const ModelConfig m = parse_hf_config_json(nem, "n.json");
  CHECK(names(m) == std::vector<std::string>{"mamba", "mlp", "attention", "mlp"});
  CHECK(m.position == PositionKind::None);
  // Mamba layer: in projection 8 x (16 + 16 + 6 + 6 + 4), conv 28 x 4 + 28, 3 x 4 per head,
  // norm 16, out 16 x 8, its norm 8. Attention: q 8 x 8, k and v 8 x 4 each, o 8 x 8, norm 8.
  // MLP (squared ReLU, no gate): 8 x 12 twice, norm 8. Embedding and LM head 2 x 11 x 8, final 8.
  const double mamba = 8 * 48 + 112 + 28 + 12 + 16 + 128 + 8, attention = 64 + 32 + 32 + 64 + 8, mlp = 192 + 8;
  CHECK(count_params(m).total == mamba + attention + 2 * mlp + 176 + 8);
  // One attention layer's KV (2 heads x 2 channels, K and V) per token; one Mamba layer's state.
  CHECK(m.kv_bytes(DType::BF16, 100) == 100 * 2 * 2 * 2 * 2 + ((16 + 12) * 3 + 16 * 3) * 2);
  // The squared ReLU is relu(x) * relu(x).
  Phase ph;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  bool relu2 = false;
  for (const Einsum& e : c.einsums) relu2 |= e.text.find("= relu(UP") != std::string::npos && e.text.find(") * relu(UP") != std::string::npos;
  CHECK(relu2);
  // layers_block_type spells the same pattern.
  std::string listed = nem;
  listed.replace(listed.find(R"("hybrid_override_pattern": "M-*-")"), 33, R"("layers_block_type": ["mamba", "mlp", "attention", "mlp"])");
  CHECK(count_params(parse_hf_config_json(listed, "n.json")).total == count_params(m).total);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = nem;
    s.replace(s.find(from), from.size(), to);
    return error_of([&] { parse_hf_config_json(s, "n.json"); });
  };
  CHECK_THAT(with("\"M-*-\"", "\"M-*\""), Catch::Contains("'hybrid_override_pattern' has 3 layers; the model has 4"));
  CHECK_THAT(with("\"M-*-\"", "\"M-*X\""), Catch::Contains("layer 3 is 'X': einsim knows M (Mamba), * (attention), - (MLP) and E (experts)"));
  CHECK_THAT(with("\"M-*-\"", "\"M-*E\""), Catch::Contains("n.json:3:5: error: 'hybrid_override_pattern' has expert layers ('E') but no 'n_routed_experts'"));
  CHECK_THAT(with("\"mamba_hidden_act\": \"silu\"", "\"mamba_hidden_act\": \"gelu\""), Catch::Contains("mamba_hidden_act 'gelu'"));
  CHECK_THAT(with("\"hybrid_override_pattern\": \"M-*-\", ", ""), Catch::Contains("missing required key 'hybrid_override_pattern'"));
  // Outside Nemotron-H the pattern is refused, not dropped.
  CHECK_THAT(error_of([] { parse_hf_config_json(R"({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4,
    "vocab_size": 10, "intermediate_size": 16, "hybrid_override_pattern": "M-*-"})", "l.json"); }),
             Catch::Contains("'hybrid_override_pattern' = \"M-*-\": hybrid attention and state-space layers is not modelled yet"));
}

TEST_CASE("Nemotron 3: expert layers of squared-ReLU experts beside a shared one", "[model][layers][ssm]") {
  const std::string nem = R"({"model_type": "nemotron_h", "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "attention_head_dim": 2, "intermediate_size": 12, "vocab_size": 11, "tie_word_embeddings": false,
    "hybrid_override_pattern": "ME*E", "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 3, "conv_kernel": 4,
    "mlp_hidden_act": "relu2", "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 6,
    "moe_shared_expert_intermediate_size": 8, "n_group": 1, "topk_group": 1, "norm_topk_prob": true, "routed_scaling_factor": 2.5})";
  const ModelConfig m = parse_hf_config_json(nem, "n.json");
  CHECK(names(m) == std::vector<std::string>{"mamba", "moe only", "attention", "moe only"});
  CHECK(m.scoring == ScoringKind::Sigmoid);
  CHECK(m.router_bias);
  // An expert layer: router 8 x 4 and its selection bias 4; 4 experts of up and down 8 x 6;
  // the shared expert's up and down 8 x 8; its norm 8. The Mamba and attention layers as in
  // the test above; embedding and LM head 2 x 11 x 8; final norm 8.
  const double moe = 32 + 4 + 4 * 2 * 48 + 2 * 64 + 8, mamba = 8 * 48 + 112 + 28 + 12 + 16 + 128 + 8, attention = 64 + 32 + 32 + 64 + 8;
  const ParamCounts p = count_params(m);
  CHECK(p.total == mamba + attention + 2 * moe + 176 + 8);
  // Active: 2 of the 4 experts in each expert layer.
  CHECK(p.active == p.total - 2 * 2 * 96);
  // The larger models' latent projection is refused at its key.
  std::string latent = nem;
  latent.insert(latent.size() - 1, R"(, "moe_latent_size": 1024)");
  CHECK_THAT(error_of([&] { parse_hf_config_json(latent, "n.json"); }), Catch::Contains("'moe_latent_size': Nemotron 3's latent projection"));
}

TEST_CASE("Jamba's pattern: attention every 8th layer, experts every other", "[model][layers][ssm]") {
  const std::string jamba = R"({"model_type": "jamba", "hidden_size": 8, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 12, "vocab_size": 11, "num_experts": 4, "num_experts_per_tok": 2, "attn_layer_period": 8, "attn_layer_offset": 4,
    "expert_layer_period": 2, "expert_layer_offset": 1, "mamba_d_state": 4, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 2,
    "tie_word_embeddings": false})";
  const ModelConfig m = parse_hf_config_json(jamba, "j.json");
  CHECK(names(m) == std::vector<std::string>{"mamba + dense", "mamba + moe", "mamba + dense", "mamba + moe", "attention + dense", "mamba + moe",
                                             "mamba + dense", "mamba + moe"});
  // One attention layer's KV per token; seven Mamba layers' constant state.
  CHECK(m.kv_bytes(DType::BF16, 100) == 100 * 2 * 2 * 2 * 2 + 7 * (16 * 3 + 16 * 4) * 2);
  CHECK_THAT(error_of([&] { parse_hf_config_json(R"({"model_type": "jamba", "hidden_size": 8, "num_hidden_layers": 8, "num_attention_heads": 4,
    "intermediate_size": 12, "vocab_size": 11, "attn_layer_period": 8, "attn_layer_offset": 9, "mamba_d_state": 4, "mamba_d_conv": 4})", "j.json"); }),
             Catch::Contains("attn_layer_offset 9 must be in [0, attn_layer_period = 8)"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "layer_types = [\"mamba\", \"full_attention\"]\n"); }), Catch::Contains("Mamba layers need"));
}

TEST_CASE("presets of current models against their cards", "[model][layers][presets]") {
  // Qwen3-235B-A22B by hand: embeddings and head 2 x 151936 x 4096; per layer attention
  // 4096 x 8192 twice, 4096 x 512 twice and the QK-norms 2 x 128, two norms, a router
  // 4096 x 128 and 128 experts of 3 x 4096 x 1536; the final norm.
  const double attention = 2 * 4096.0 * 8192 + 2 * 4096.0 * 512 + 256, expert = 3.0 * 4096 * 1536;
  const ParamCounts q = count_params(load_model("qwen3-235b-a22b"));
  CHECK(q.total == 2 * 151936.0 * 4096 + 4096 + 94 * (attention + 8192 + 4096.0 * 128 + 128 * expert));
  CHECK(q.active == q.total - 94 * 120 * expert);
  // Each against its card's rounding (billions): total, active.
  const std::vector<std::tuple<const char*, double, double>> cards = {
      {"qwen3-235b-a22b", 235, 22}, {"deepseek-v3", 671, 37}, {"llama-4-scout", 108, 17},  // Scout's card: 109B with its vision encoder
      {"gemma-3-27b", 27, 27},      {"jamba-1.5-mini", 52, 12}, {"mamba-2.8b", 2.8, 2.8}, {"qwen3-32b", 33, 33},
      {"gpt-oss-120b", 117, 5.1 + 0.58},  // gpt-oss's card leaves out the 0.58B embedding table
      {"llama-3.1-405b", 406, 406}};      // the card's 405B is 405.85B
  for (const auto& [name, total, active] : cards) {
    CAPTURE(name);
    const ParamCounts p = count_params(load_model(name));
    const double scale = total < 10 ? 10 : 1;  // 2.8B: to a tenth
    CHECK(std::round(p.total / 1e9 * scale) / scale == total);
    CHECK(p.active / 1e9 == Approx(active).margin(total < 10 ? 0.05 : 0.6));  // DeepSeek's 37.55B is "37B" on its card
  }
}

TEST_CASE("MXFP4 experts (gpt-oss): 4-bit elements and a byte of scale per 32, the rest bf16", "[model][layers][quant]") {
  const ModelConfig m = model_toml(kTiny + "num_local_experts = 4\nnum_experts_per_tok = 2\nquantization = \"mxfp4\"\n");
  const ModelConfig plain = model_toml(kTiny + "num_local_experts = 4\nnum_experts_per_tok = 2\n");
  const ParamCounts p = count_params(m), q = count_params(plain);
  CHECK(p.total == q.total);
  // Experts: 4 x 3 x 8 x 12 per layer; a byte of scale per 32 elements (the format's share:
  // real experts contract multiples of 32 inputs).
  const double expert_elements = 2 * 4 * 3 * 8 * 12;
  CHECK(p.expert_bytes == Approx(expert_elements * (0.5 + 1.0 / 32)));
  CHECK(p.total_bytes - p.expert_bytes == Approx(q.total_bytes - q.expert_bytes));  // the rest stays bf16
  const ModelConfig json = parse_hf_config_json(R"({"model_type": "gpt_oss", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 2, "vocab_size": 10, "intermediate_size": 12, "num_local_experts": 4, "num_experts_per_tok": 2,
    "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"], "quantization_config": {"quant_method": "mxfp4"}})", "g.json");
  CHECK(json.quant.name == "mxfp4");
  CHECK(json.attention_sinks);
  CHECK(json.router_bias);
}
