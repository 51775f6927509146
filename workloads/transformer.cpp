#include "workloads/transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace einsim {
namespace {

// Every per-layer tensor carries the layer index l first; the residual stream X is an
// iterative rank over layers: X[l=0] is the embedding, X[l+1] the output of layer l and
// X[L] the final hidden state (FuseMax's extended-Einsum notation, applied to depth).
class Builder {
 public:
  Builder(const ModelConfig& m, const Phase& ph) : m_(m), ph_(ph) {
    s_.name = fmt::format("{}-{}", m.name, ph.kind == PhaseKind::Prefill ? "prefill" : "decode");
    s_.loc = m.loc;
    s_.dtype = m.dtype;
  }

  CascadeSpec build() {
    const bool decode = ph_.kind == PhaseKind::Decode;
    if (decode && m_.encoder_only)
      throw UserError(m_.loc, fmt::format("'{}' is an encoder: it has no decode phase", m_.name));
    if (ph_.batch < 1 || ph_.prompt < 1 || ph_.context < 0 || ph_.block < 1)
      throw UserError(SourceLoc{"--batch/--prompt/--context"}, "batch and prompt must be >= 1 and context >= 0");
    const int64_t P = decode ? 1 : ph_.prompt;
    // Keys attended: the cache and this step's tokens; under a sliding window the cache holds
    // only the last window's tokens (a decode attends to them; a chunk's first query reaches
    // back that far).
    int64_t M = decode ? m_.kv_tokens(ph_.context + 1) : cached_prefix() + ph_.prompt;
    if (ph_.attention == AttentionKind::OnePass) {
      if (decode) {
        m0_ = std::min(ph_.block, M);
        M = (M + m0_ - 1) / m0_ * m0_;
      } else {
        m0_ = std::gcd(M, ph_.block);
      }
    }
    const int64_t layers = ph_.layers > 0 ? std::min(ph_.layers, m_.num_hidden_layers) : m_.num_hidden_layers;
    rank("L", layers);
    rank("B", ph_.batch);
    rank("P", P);
    rank("M", M);
    rank("D", m_.hidden_size);
    rank("G", m_.kv_heads());
    rank("R", m_.group());
    rank("E", m_.head_dim);
    rank("F", m_.head_dim);
    rank("I", m_.intermediate_size);
    rank("W", m_.vocab_size);  // vocabulary (V names the value tensor)
    if (m_.position == PositionKind::Rope) {
      rank("E1", 2);
      rank("E0", m_.head_dim / 2);
      partition("E", {"E1", "E0"});
    }
    if (pruned()) {
      if (ph_.key_channels > m_.head_dim || (m_.position == PositionKind::Rope && ph_.key_channels % 2))
        throw UserError(m_.loc, fmt::format("{} key channels kept: at most head_dim ({}){}", ph_.key_channels, m_.head_dim,
                                            m_.position == PositionKind::Rope ? ", and even (half per rotary half)" : ""));
      rank("C", ph_.key_channels);  // kept key channels
      if (m_.position == PositionKind::Rope) rank("C0", ph_.key_channels / 2);  // per rotary half
    }
    if (linear()) {
      rank("U", ph_.linear_features);   // feature dimension of the linear attention
      rank("U2", ph_.linear_features);  // its second index in the Taylor map's quadratic term
    }
    if (ph_.kind == PhaseKind::Decode && (ph_.ffn_active > 0 || ph_.predictor_rank > 0)) {
      if (m_.num_local_experts > 0)
        throw UserError(m_.loc, fmt::format("'{}' routes its MLP to experts: neuron sparsity and predictors apply to dense MLPs", m_.name));
      if (ph_.ffn_active < 0 || ph_.ffn_active > m_.intermediate_size)
        throw UserError(SourceLoc{"--ffn-active"}, fmt::format("{} active FFN neurons: at most the FFN width of '{}' ({})", ph_.ffn_active, m_.name,
                                                               m_.intermediate_size));
      // A low-rank predictor (d -> rank -> FFN) smaller than the layer it predicts; at the
      // model width or beyond it costs as much as computing every neuron.
      if (ph_.predictor_rank < 0 || ph_.predictor_rank >= m_.hidden_size)
        throw UserError(SourceLoc{"--predictor-rank"}, fmt::format("a predictor of rank {}: it must be below the model width of '{}' ({}) to be low-rank",
                                                                   ph_.predictor_rank, m_.name, m_.hidden_size));
    }
    if (sparse()) rank("A", ph_.ffn_active);            // active FFN neurons per layer
    if (predicted()) rank("J", ph_.predictor_rank);     // the predictor's low rank
    if (m_.position == PositionKind::Learned) rank("T", m_.max_position_embeddings);
    if (m_.type_vocab_size > 0) rank("Y", m_.type_vocab_size);
    if (m_.num_local_experts > 0) {
      rank("N", m_.num_local_experts);  // experts (X names the residual stream)
      rank("S", m_.num_experts_per_tok);
    }
    if (ph_.attention == AttentionKind::OnePass) {
      rank("M1", M / m0_);
      rank("M0", m0_);
      partition("M", {"M1", "M0"});
    }

    // Embeddings: a gather of one row per token, the initial value of the residual stream.
    tensor("WE", {"D", "W"}, TensorRole::Weight);
    tensor("TOK", {"B", "P"}, TensorRole::Index);
    std::string x0 = "X[l=0,b,d,p] = WE[d, TOK[b,p]]";
    if (m_.position == PositionKind::Learned) {
      tensor("WPOS", {"D", "T"}, TensorRole::Weight);
      tensor("POS", {"B", "P"}, TensorRole::Index);
      x0 += " + WPOS[d, POS[b,p]]";
    }
    if (m_.type_vocab_size > 0) {
      tensor("WTYPE", {"D", "Y"}, TensorRole::Weight);
      tensor("TYPE", {"B", "P"}, TensorRole::Index);
      x0 += " + WTYPE[d, TYPE[b,p]]";
    }
    add(x0);
    if (m_.position == PositionKind::Rope) {
      // cos and sin of each position and frequency, with the rotate-half sign folded into SIN.
      tensor("COS", {"E0", "P"}, TensorRole::Input);
      tensor("SIN", {"E1", "E0", "P"}, TensorRole::Input);
    }
    layer(decode);
    norm("F", "X[L,b,d,p]", "XF[b,d,p]", false);
    if (!m_.encoder_only) {
      const std::string head = m_.tie_word_embeddings ? "WE" : "WLM";
      if (!m_.tie_word_embeddings) {
        tensor("WLM", {"D", "W"}, TensorRole::Weight);
        if (m_.quant.lm_head) quantize(s_.tensors.back(), m_.hidden_size);
      }
      add(fmt::format("LOGITS[b,w] = XF[b,d,P-1] * {}[d,w]", head));
    }
    return std::move(s_);
  }

 private:
  // One layer, indexed by l.
  void layer(bool decode) {
    norm("N1", "X[l,b,d,p]", "XN[l,b,d,p]", true);
    linear_weight("WQ", {"D", "G", "R", "E"}, m_.hidden_size);
    linear_weight("WK", {"D", "G", "E"}, m_.hidden_size);
    linear_weight("WV", {"D", "G", "F"}, m_.hidden_size);
    linear_weight("WO", {"G", "R", "F", "D"}, m_.num_attention_heads * m_.head_dim);
    quantize_input("XN", {"L", "B", "D", "P"});
    // Projections: Q over (G kv heads) x (R queries per kv head), K and V over G.
    std::string q = proj("Q", "b,g,r,e,p", "XN[l,b,d,p]", "WQ[l,d,g,r,e]", "BQ", {"G", "R", "E"}, "g,r,e", m_.attention_bias);
    std::string k = proj("K", "b,g,e,p", "XN[l,b,d,p]", "WK[l,d,g,e]", "BK", {"G", "E"}, "g,e", m_.attention_bias);
    const std::string v = proj("V", "b,g,f,p", "XN[l,b,d,p]", "WV[l,d,g,f]", "BV", {"G", "F"}, "g,f", m_.attention_bias);
    if (m_.qk_norm) {
      // RMSNorm over each head's channels (Qwen3), before RoPE; the cache holds normed keys.
      q = head_norm("Q", q, "b,g,r");
      k = head_norm("K", k, "b,g");
    }
    std::string qe = q + "[l,b,g,r,e,p]";
    const bool rope = m_.position == PositionKind::Rope;
    if (rope) {
      add(fmt::format("QR[l,b,g,r,e1,e0,p] = {0}[l,b,g,r,e1*E0+e0,p] * COS[e0,p] + {0}[l,b,g,r,(1-e1)*E0+e0,p] * SIN[e1,e0,p]", q));
      add(fmt::format("KR[l,b,g,e1,e0,p] = {0}[l,b,g,e1*E0+e0,p] * COS[e0,p] + {0}[l,b,g,(1-e1)*E0+e0,p] * SIN[e1,e0,p]", k));
      qe = "QR[l,b,g,r,e1,e0,p]";
    }
    const std::string mi = ph_.attention == AttentionKind::OnePass ? "m1*M0+m0" : "m";
    std::string ke, ve;  // keys and values as attention reads them, indexed by m
    if (decode || cached_prefix() > 0) {
      // The cache holds post-RoPE keys; this step's new K and V are outputs written into it.
      tensor("KC", {"L", "B", "G", pruned() ? "C" : "E", "M"}, TensorRole::KVCache, ph_.kv_dtype);
      tensor("VC", {"L", "B", "G", "F", "M"}, TensorRole::KVCache, ph_.kv_dtype);
      ke = rope ? fmt::format("KC[l,b,g,e1*E0+e0,{}]", mi) : fmt::format("KC[l,b,g,e,{}]", mi);
      ve = fmt::format("VC[l,b,g,f,{}]", mi);
      if (pruned()) {
        // The cache keeps some key channels (which ones is data: the index KEEP); the query
        // is gathered to them and QK contracts over the kept channels only.
        tensor("KEEP", {rope ? "C0" : "C"}, TensorRole::Index);
        ke = rope ? fmt::format("KC[l,b,g,e1*C0+c0,{}]", mi) : fmt::format("KC[l,b,g,c,{}]", mi);
        qe = rope ? "QR[l,b,g,r,e1,KEEP[c0],p]" : q + "[l,b,g,r,KEEP[c],p]";
      }
    } else {
      ke = rope ? fmt::format("KR[l,b,g,e1,e0,{}]", mi) : fmt::format("{}[l,b,g,e,{}]", k, mi);
      ve = fmt::format("{}[l,b,g,f,{}]", v, mi);
    }
    attention(qe, ke, ve);
    std::string av = "AV";
    if (linear()) av = linear_attention(v);
    quantize_input(av, {"L", "B", "G", "R", "F", "P"});
    const std::string o = proj("O", "b,d,p", av + "[l,b,g,r,f,p]", "WO[l,g,r,f,d]", "BO", {"D"}, "d", m_.attention_bias);
    if (m_.parallel_attn) {
      const std::string dn = mlp("XN");
      add(fmt::format("X[l+1,b,d,p] = X[l,b,d,p] + {}[l,b,d,p] + {}[l,b,d,p]", o, dn));
      return;
    }
    add(fmt::format("XA[l,b,d,p] = X[l,b,d,p] + {}[l,b,d,p]", o));
    norm("N2", "XA[l,b,d,p]", "XN2[l,b,d,p]", true);
    quantize_input("XN2", {"L", "B", "D", "P"});
    const std::string dn = mlp("XN2");
    add(fmt::format("X[l+1,b,d,p] = XA[l,b,d,p] + {}[l,b,d,p]", dn));
  }

  // Softmax(Q K^T / sqrt(E)) V for every (l, b, g, r) into AV[l,b,g,r,f,p].
  void attention(const std::string& q, const std::string& k, const std::string& v) {
    const std::string h = "l,b,g,r";
    if (ph_.attention == AttentionKind::ThreePass) {
      add(fmt::format("QK[{0},m,p] = {1} * {2}", h, q, k));
      add(fmt::format("GM[{0},p] = max[m] QK[{0},m,p]", h));
      add(fmt::format("SN[{0},m,p] = exp((QK[{0},m,p] - GM[{0},p]) * rsqrt(E))", h));
      add(fmt::format("SD[{0},p] = SN[{0},m,p]", h));
      add(fmt::format("A[{0},m,p] = SN[{0},m,p] / SD[{0},p]", h));
      add(fmt::format("AV[{0},f,p] = A[{0},m,p] * {1}", h, v));
      return;
    }
    add(fmt::format("BQK[{0},m1,m0,p] = {1} * {2}", h, q, k));
    add(fmt::format("LM[{0},m1,p] = max[m0] BQK[{0},m1,m0,p]", h));
    add(fmt::format("RM[{0},m1=0,p] = -inf", h));
    add(fmt::format("RM[{0},m1+1,p] = max(RM[{0},m1,p], LM[{0},m1,p])", h));
    add(fmt::format("SLN[{0},m1,m0,p] = exp((BQK[{0},m1,m0,p] - RM[{0},m1+1,p]) * rsqrt(E))", h));
    add(fmt::format("SLD[{0},m1,p] = SLN[{0},m1,m0,p]", h));
    add(fmt::format("SLNV[{0},f,m1,p] = SLN[{0},m1,m0,p] * {1}", h, v));
    add(fmt::format("PRM[{0},m1,p] = exp((RM[{0},m1,p] - RM[{0},m1+1,p]) * rsqrt(E))", h));
    add(fmt::format("RD[{0},m1=0,p] = 0", h));
    add(fmt::format("SPD[{0},m1,p] = RD[{0},m1,p] * PRM[{0},m1,p]", h));
    add(fmt::format("RD[{0},m1+1,p] = SLD[{0},m1,p] + SPD[{0},m1,p]", h));
    add(fmt::format("RNV[{0},f,m1=0,p] = 0", h));
    add(fmt::format("SPNV[{0},f,m1,p] = RNV[{0},f,m1,p] * PRM[{0},m1,p]", h));
    add(fmt::format("RNV[{0},f,m1+1,p] = SLNV[{0},f,m1,p] + SPNV[{0},f,m1,p]", h));
    add(fmt::format("AV[{0},f,p] = RNV[{0},f,M1,p] / RD[{0},M1,p]", h));
    // A decoder's prefill: the key blocks a query tile cannot see are skipped.
    if (ph_.kind == PhaseKind::Prefill && ph_.causal && !m_.encoder_only) {
      const double w = causal_attention_work(cached_prefix(), ph_.prompt, 128, m_.sliding_window);
      for (const char* t : {"BQK", "LM", "RM", "SLN", "SLD", "SLNV", "PRM", "SPD", "RD", "SPNV", "RNV"}) s_.work[t] = w;
    }
  }

  // The MLP (or routed experts) of layer l on xn[l,b,d,p]; returns the output's name.
  std::string mlp(const std::string& xn) {
    const std::string& act = m_.hidden_act;
    const std::string in = xn + "[l,b,d,p]";
    if (m_.num_local_experts > 0) {
      // Router, top-k selection (k max-passes over the experts), softmax over the chosen
      // logits, then the routed experts gathered by index. Which experts are chosen is data:
      // the index tensor SEL is an input of the cascade.
      weight("WR", {"D", "N"});
      tensor("SEL", {"L", "B", "S", "P"}, TensorRole::Index);
      s_.tensors.back().routed = m_.num_experts_per_tok;  // uniform routing: expected distinct experts
      add(fmt::format("RL[l,b,n,p] = {} * WR[l,d,n]", in));
      add("RMAX[l,b,s,p] = max[n] RL[l,b,n,p]");
      add("RE[l,b,s,p] = exp(RMAX[l,b,s,p])");
      add("RSUM[l,b,p] = RE[l,b,s,p]");
      add("RW[l,b,s,p] = RE[l,b,s,p] / RSUM[l,b,p]");
      linear_weight("WG", {"N", "D", "I"}, m_.hidden_size, TensorRole::ExpertWeight);
      linear_weight("WU", {"N", "D", "I"}, m_.hidden_size, TensorRole::ExpertWeight);
      linear_weight("WD", {"N", "I", "D"}, m_.intermediate_size, TensorRole::ExpertWeight);
      quantize_input("EH", {"L", "B", "S", "I", "P"});
      add(fmt::format("EG[l,b,s,i,p] = {} * WG[l,SEL[l,b,s,p],d,i]", in));
      add(fmt::format("EU[l,b,s,i,p] = {} * WU[l,SEL[l,b,s,p],d,i]", in));
      add(fmt::format("EH[l,b,s,i,p] = {}(EG[l,b,s,i,p]) * EU[l,b,s,i,p]", act));
      add("ED[l,b,s,d,p] = EH[l,b,s,i,p] * WD[l,SEL[l,b,s,p],i,d]");
      add("DN[l,b,d,p] = ED[l,b,s,d,p] * RW[l,b,s,p]");
      return "DN";
    }
    if (predicted()) {
      // The predictor's scores for every neuron; choosing the active ones from them is data
      // (the index ACT is an input of the cascade).
      weight("WP1", {"D", "J"});
      weight("WP2", {"J", "I"});
      add(fmt::format("PL[l,b,j,p] = {} * WP1[l,d,j]", in));
      add("PS[l,b,i,p] = PL[l,b,j,p] * WP2[l,j,i]");
    }
    if (sparse()) {
      // Only the active neurons: their up (and gate) columns and down rows, gathered.
      tensor("ACT", {"L", "A"}, TensorRole::Index);
      const bool gated = m_.mlp == MlpKind::Gated;
      // Returns the name of the (biased) output over a.
      auto gathered = [&](const std::string& out, const std::string& w, const std::string& b) {
        linear_weight(w, {"D", "I"}, m_.hidden_size);
        add(fmt::format("{}[l,b,a,p] = {} * {}[l,d,ACT[l,a]]", out, in, w));
        if (!m_.mlp_bias) return out;
        weight(b, {"I"});
        add(fmt::format("{0}B[l,b,a,p] = {0}[l,b,a,p] + {1}[l,ACT[l,a]]", out, b));
        return out + "B";
      };
      if (gated) {
        const std::string g = gathered("GT", "WG", "BG");
        const std::string u = gathered("UP", "WU", "BU");
        add(fmt::format("H[l,b,a,p] = {}({}[l,b,a,p]) * {}[l,b,a,p]", act, g, u));
      } else {
        const std::string u = gathered("UP", "W1", "B1");
        add(fmt::format("H[l,b,a,p] = {}({}[l,b,a,p])", act, u));
      }
      linear_weight("WD", {"I", "D"}, m_.intermediate_size);
      quantize_input("H", {"L", "B", "A", "P"});
      add("DN[l,b,d,p] = H[l,b,a,p] * WD[l,ACT[l,a],d]");
      if (!m_.mlp_bias) return "DN";
      weight("BD", {"D"});
      add("DNB[l,b,d,p] = DN[l,b,d,p] + BD[l,d]");
      return "DNB";
    }
    if (m_.mlp == MlpKind::Gated) {
      linear_weight("WG", {"D", "I"}, m_.hidden_size);
      linear_weight("WU", {"D", "I"}, m_.hidden_size);
      const std::string g = proj("GT", "b,i,p", in, "WG[l,d,i]", "BG", {"I"}, "i", m_.mlp_bias);
      const std::string u = proj("UP", "b,i,p", in, "WU[l,d,i]", "BU", {"I"}, "i", m_.mlp_bias);
      add(fmt::format("H[l,b,i,p] = {}({}[l,b,i,p]) * {}[l,b,i,p]", act, g, u));
    } else {
      linear_weight("W1", {"D", "I"}, m_.hidden_size);
      const std::string u = proj("UP", "b,i,p", in, "W1[l,d,i]", "B1", {"I"}, "i", m_.mlp_bias);
      add(fmt::format("H[l,b,i,p] = {}({}[l,b,i,p])", act, u));
    }
    linear_weight("WD", {"I", "D"}, m_.intermediate_size);
    quantize_input("H", {"L", "B", "I", "P"});
    return proj("DN", "b,d,p", "H[l,b,i,p]", "WD[l,i,d]", "BD", {"D"}, "d", m_.mlp_bias);
  }

  // out[l,idx] = in * w (+ bias[l,bias_idx]); returns the name of the final tensor.
  std::string proj(const std::string& out, const std::string& idx, const std::string& in, const std::string& w,
                   const std::string& bias, std::vector<std::string> bias_ranks, const std::string& bias_idx, bool with_bias) {
    add(fmt::format("{}[l,{}] = {} * {}", out, idx, in, w));
    if (!with_bias) return out;
    weight(bias, std::move(bias_ranks));
    add(fmt::format("{0}B[l,{1}] = {0}[l,{1}] + {2}[l,{3}]", out, idx, bias, bias_idx));
    return out + "B";
  }

  // RMSNorm of each head of `x` (indexed l,<heads>,e,p) over its E channels, scaled by a
  // per-layer weight <pre>NW[l,e]; returns the normed tensor's name (<pre>N).
  std::string head_norm(const std::string& pre, const std::string& x, const std::string& heads) {
    weight(pre + "NW", {"E"});
    add(fmt::format("{0}SS[l,{1},p] = {2}[l,{1},e,p] * {2}[l,{1},e,p]", pre, heads, x));
    add(fmt::format("{0}RS[l,{1},p] = rsqrt({0}SS[l,{1},p] / E + 0.000001)", pre, heads));
    add(fmt::format("{0}N[l,{1},e,p] = {2}[l,{1},e,p] * {0}RS[l,{1},p] * {0}NW[l,e]", pre, heads, x));
    return pre + "N";
  }

  // Normalises `x` (a [.., b,d,p] access) into `out`; per layer when `layered`.
  void norm(const std::string& pre, const std::string& x, const std::string& out, bool layered) {
    const std::string l = layered ? "l," : "";
    const std::string w = fmt::format("{}W[{}d]", pre, l);
    (layered ? weight(pre + "W", {"D"}) : tensor(pre + "W", {"D"}, TensorRole::Weight));
    if (m_.norm == NormKind::RMSNorm) {
      add(fmt::format("{0}SS[{1}b,p] = {2} * {2}", pre, l, x));
      add(fmt::format("{0}RS[{1}b,p] = rsqrt({0}SS[{1}b,p] / D + 0.00001)", pre, l));
      add(fmt::format("{0} = {1} * {2}RS[{3}b,p] * {4}", out, x, pre, l, w));
      return;
    }
    const std::string b = fmt::format("{}B[{}d]", pre, l);
    (layered ? weight(pre + "B", {"D"}) : tensor(pre + "B", {"D"}, TensorRole::Weight));
    add(fmt::format("{0}S1[{1}b,p] = {2}", pre, l, x));
    add(fmt::format("{0}S2[{1}b,p] = {2} * {2}", pre, l, x));
    add(fmt::format("{0}RS[{1}b,p] = rsqrt({0}S2[{1}b,p] / D - ({0}S1[{1}b,p] / D) * ({0}S1[{1}b,p] / D) + 0.00001)", pre, l));
    add(fmt::format("{0} = ({1} - {2}S1[{3}b,p] / D) * {2}RS[{3}b,p] * {4} + {5}", out, x, pre, l, w, b));
  }

  void rank(const std::string& name, int64_t extent) {
    RankDecl r;
    r.name = name;
    r.extent_text = std::to_string(extent);
    r.extent.value = extent;
    r.loc = m_.loc;
    s_.ranks.push_back(std::move(r));
  }
  // Prefill: the cached tokens before the prompt its attention reads (all of them, or the
  // sliding window's).
  int64_t cached_prefix() const { return ph_.kind == PhaseKind::Prefill ? m_.kv_tokens(ph_.context) : 0; }
  bool linear() const { return ph_.kind == PhaseKind::Decode && ph_.linear_features > 0; }

  // BASED-style linear attention for one decode step, added to the window attention's AV:
  // phi(x) = [1, x, x (x) x / sqrt(2)] over U features; per KV head a state of sum(phi(k) v)
  // (S0, S1, S2) and sum(phi(k)) (Z1, Z2; Z0 counts tokens), read from the cache and written
  // back with this token's key and value; the output is phi(q) S / phi(q) z.
  std::string linear_attention(const std::string& v) {
    weight("WQF", {"D", "G", "R", "U"});
    weight("WKF", {"D", "G", "U"});
    add("QF[l,b,g,r,u,p] = XN[l,b,d,p] * WQF[l,d,g,r,u]");
    add("KF[l,b,g,u,p] = XN[l,b,d,p] * WKF[l,d,g,u]");
    tensor("S0", {"L", "B", "G", "F"}, TensorRole::KVCache, ph_.kv_dtype);
    tensor("S1", {"L", "B", "G", "U", "F"}, TensorRole::KVCache, ph_.kv_dtype);
    tensor("S2", {"L", "B", "G", "U", "U2", "F"}, TensorRole::KVCache, ph_.kv_dtype);
    tensor("Z0", {"L", "B", "G"}, TensorRole::KVCache, ph_.kv_dtype);
    tensor("Z1", {"L", "B", "G", "U"}, TensorRole::KVCache, ph_.kv_dtype);
    tensor("Z2", {"L", "B", "G", "U", "U2"}, TensorRole::KVCache, ph_.kv_dtype);
    const std::string vp = v + "[l,b,g,f,p]";
    add(fmt::format("S0N[l,b,g,f,p] = S0[l,b,g,f] + {}", vp));
    add(fmt::format("S1N[l,b,g,u,f,p] = S1[l,b,g,u,f] + KF[l,b,g,u,p] * {}", vp));
    add(fmt::format("S2N[l,b,g,u,u2,f,p] = S2[l,b,g,u,u2,f] + KF[l,b,g,u,p] * KF[l,b,g,u2,p] * {} * 0.5", vp));
    add("Z0N[l,b,g,p] = Z0[l,b,g] + 1");
    add("Z1N[l,b,g,u,p] = Z1[l,b,g,u] + KF[l,b,g,u,p]");
    add("Z2N[l,b,g,u,u2,p] = Z2[l,b,g,u,u2] + KF[l,b,g,u,p] * KF[l,b,g,u2,p] * 0.5");
    add("LN1[l,b,g,r,f,p] = QF[l,b,g,r,u,p] * S1N[l,b,g,u,f,p]");
    add("LN2[l,b,g,r,f,p] = QF[l,b,g,r,u,p] * QF[l,b,g,r,u2,p] * S2N[l,b,g,u,u2,f,p]");
    add("LD1[l,b,g,r,p] = QF[l,b,g,r,u,p] * Z1N[l,b,g,u,p]");
    add("LD2[l,b,g,r,p] = QF[l,b,g,r,u,p] * QF[l,b,g,r,u2,p] * Z2N[l,b,g,u,u2,p]");
    add("LA[l,b,g,r,f,p] = AV[l,b,g,r,f,p] + (S0N[l,b,g,f,p] + LN1[l,b,g,r,f,p] + LN2[l,b,g,r,f,p]) / "
        "(Z0N[l,b,g,p] + LD1[l,b,g,r,p] + LD2[l,b,g,r,p])");
    return "LA";
  }

  bool sparse() const { return ph_.kind == PhaseKind::Decode && ph_.ffn_active > 0 && ph_.ffn_active < m_.intermediate_size; }
  bool predicted() const { return ph_.kind == PhaseKind::Decode && ph_.predictor_rank > 0; }
  bool pruned() const { return ph_.kind == PhaseKind::Decode && ph_.key_channels > 0 && ph_.key_channels != m_.head_dim; }
  void partition(const std::string& parent, std::vector<std::string> parts) {
    s_.partitions.push_back(PartitionDecl{parent, std::move(parts), m_.loc});
  }
  void tensor(const std::string& name, std::vector<std::string> ranks, TensorRole role, std::optional<DType> dtype = std::nullopt) {
    TensorDecl t;
    t.name = name;
    t.ranks = std::move(ranks);
    t.has_ranks = true;
    t.role = role;
    t.dtype = dtype;
    t.loc = m_.loc;
    s_.tensors.push_back(std::move(t));
  }
  // A parameter of every layer: ranks after the layer rank L.
  void weight(const std::string& name, std::vector<std::string> ranks, TensorRole role = TensorRole::Weight) {
    ranks.insert(ranks.begin(), "L");
    tensor(name, std::move(ranks), role);
  }
  // A linear layer's weight (a parameter of every layer, contracting `inputs` channels), stored
  // as the quantization scheme says.
  void linear_weight(const std::string& name, std::vector<std::string> ranks, int64_t inputs, TensorRole role = TensorRole::Weight) {
    weight(name, std::move(ranks), role);
    quantize(s_.tensors.back(), inputs);
  }
  // `t` in the scheme's weight type, with its scale bytes per element.
  void quantize(TensorDecl& t, int64_t inputs) const {
    if (!m_.quant.active) return;
    t.dtype = m_.quant.weights;
    t.scale_bytes = m_.quant.weight_scale_bytes(inputs);
  }
  // A GEMM input the scheme quantizes (fp8's activations): its producer writes it in that type
  // with per-group scales, as engines fuse the quantization into the norm or activation kernel.
  void quantize_input(const std::string& name, std::vector<std::string> ranks) {
    if (!m_.quant.active || !m_.quant.activations) return;
    tensor(name, std::move(ranks), TensorRole::Auto, m_.quant.activations);
    s_.tensors.back().scale_bytes = m_.quant.activation_bytes_per_element();
  }
  void add(const std::string& text) {
    // Generated Einsums are located by their index in the cascade.
    s_.einsums.push_back(parse_einsum(text, SourceLoc{s_.name + " (generated)", static_cast<int>(s_.einsums.size()) + 1, 1}));
  }

  const ModelConfig& m_;
  const Phase& ph_;
  CascadeSpec s_;
  int64_t m0_ = 1;
};

}  // namespace

std::string Phase::key() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", static_cast<int>(kind), batch, prompt, context, static_cast<int>(attention), block, layers,
                     kv_dtype ? static_cast<int>(*kv_dtype) : -1, key_channels, linear_features, ffn_active, predictor_rank, causal);
}

double causal_attention_work(int64_t prefix, int64_t prompt, int64_t tile, int64_t window) {
  if (prompt < 1 || tile < 1) return 1;
  const int64_t keys = prefix + prompt;
  const int64_t q_tiles = (prompt + tile - 1) / tile, k_tiles = (keys + tile - 1) / tile;
  if (window > 0 && window < keys) {
    // A band: query q (at position prefix + q) sees keys in (position - window, position]. A
    // (query tile, key tile) pair is computed when any of its pairs is visible.
    double computed = 0;
    for (int64_t i = 0; i < q_tiles; ++i) {
      const int64_t q_first = prefix + i * tile, q_last = prefix + std::min(prompt, (i + 1) * tile) - 1;
      const int64_t k_lo = std::max<int64_t>(0, q_first - window + 1), k_hi = q_last;  // keys any query of the tile sees
      const int64_t tiles = k_hi / tile - k_lo / tile + 1;  // key tiles from the first visible to the last
      computed += static_cast<double>(tiles);
    }
    return computed / (static_cast<double>(q_tiles) * static_cast<double>(k_tiles));
  }
  // Nothing cached: the lower triangle of n x n tiles with its diagonal (the sweep's roofline
  // asks this per point; no loop).
  if (prefix == 0) return static_cast<double>(q_tiles + 1) / static_cast<double>(2 * q_tiles);
  // Key tile j starts at key j*tile; the query tiles whose last query (at prefix + its
  // index) reaches it are computed: those from the tile holding query j*tile - prefix on.
  double computed = 0;
  for (int64_t j = 0; j < k_tiles; ++j) {
    const int64_t first = std::max<int64_t>(0, j * tile - prefix);
    if (first >= prompt) break;
    const int64_t first_tile = first / tile;  // the query tile holding it
    computed += static_cast<double>(q_tiles - first_tile);
  }
  return computed / (static_cast<double>(q_tiles) * static_cast<double>(k_tiles));
}

CascadeSpec transformer_cascade(const ModelConfig& m, const Phase& ph) { return Builder(m, ph).build(); }

ParamCounts count_params(const ModelConfig& m) {
  // Count from the cascade's weight tensors, so the figures describe exactly what the
  // simulator moves. Per-layer weights carry the layer rank L first.
  Phase ph;
  ph.attention = AttentionKind::ThreePass;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  const int layer_rank = c.find_rank("L");
  ParamCounts p;
  const double L = static_cast<double>(m.num_hidden_layers);
  const double k_of_x = m.num_local_experts > 0 ? static_cast<double>(m.num_experts_per_tok) / static_cast<double>(m.num_local_experts) : 1.0;
  double expert = 0;
  for (const Tensor& t : c.tensors) {
    if (t.role != TensorRole::Weight && t.role != TensorRole::ExpertWeight) continue;
    const double n = static_cast<double>(t.elements());
    p.total_bytes += t.bytes();
    if (t.ranks.empty() || t.ranks[0] != layer_rank) {
      (t.name == "FW" || t.name == "FB" ? p.final_norm : p.embedding) += n;
      if (t.name != "FW" && t.name != "FB") p.embedding_bytes += t.bytes();
      continue;
    }
    const double per = n / L;
    const std::string& name = t.name;
    if (name.starts_with("N1") || name.starts_with("N2")) p.per_layer_norm += per;
    else if (name == "WQ" || name == "WK" || name == "WV" || name == "WO" || name == "BQ" || name == "BK" || name == "BV" || name == "BO" ||
             name == "QNW" || name == "KNW")
      p.per_layer_attention += per;
    else p.per_layer_mlp += per, p.mlp_bytes += t.bytes();
    if (t.role == TensorRole::ExpertWeight) expert += per, p.expert_bytes += t.bytes();
  }
  p.total = p.embedding + p.final_norm + L * (p.per_layer_attention + p.per_layer_mlp + p.per_layer_norm);
  p.active = p.total - L * expert * (1.0 - k_of_x);
  p.active_bytes = p.total_bytes - p.expert_bytes * (1.0 - k_of_x);
  return p;
}

// Component of a model Einsum, by the tensor it writes: embedding, norm, attention,
// out-proj, mlp, residual, lm-head.
std::string model_component(const Einsum& e, const std::string& n) {
  if (n == "X") return e.iter_var < 0 ? "embedding" : "residual";
  if (n == "XA") return "residual";
  if (n.starts_with("N1") || n.starts_with("N2") || n == "FSS" || n == "FRS" || n == "FS1" || n == "FS2" || n == "XN" ||
      n == "XN2" || n == "XF")
    return "norm";
  static const std::vector<std::string> attn = {"Q", "K", "V", "QB", "KB", "VB", "QR", "KR", "QSS", "QRS", "QN", "KSS", "KRS", "KN", "QK", "GM", "SN", "SD", "A", "AV",
                                                "BQK", "LM", "RM", "SLN", "SLD", "SLNV", "PRM", "RD", "SPD", "RNV", "SPNV",
                                                // linear attention (BASED)
                                                "QF", "KF", "S0N", "S1N", "S2N", "Z0N", "Z1N", "Z2N", "LN1", "LN2", "LD1", "LD2", "LA"};
  if (std::find(attn.begin(), attn.end(), n) != attn.end()) return "attention";
  if (n == "O" || n == "OB") return "out-proj";
  if (n == "LOGITS") return "lm-head";
  return "mlp";
}

}  // namespace einsim
