#include "workloads/transformer.h"

#include <fmt/format.h>

#include <numeric>

namespace einsim {
namespace {

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
    int64_t M = decode ? ph_.context + 1 : ph_.prompt;
    if (ph_.attention == AttentionKind::OnePass) {
      if (decode) {
        m0_ = std::min(ph_.block, M);
        M = (M + m0_ - 1) / m0_ * m0_;
      } else {
        m0_ = std::gcd(M, ph_.block);
      }
    }
    rank("B", ph_.batch);
    rank("P", P);
    rank("M", M);
    rank("D", m_.hidden_size);
    rank("G", m_.kv_heads());
    rank("R", m_.group());
    rank("E", m_.head_dim);
    rank("F", m_.head_dim);
    rank("I", m_.intermediate_size);
    rank("V", m_.vocab_size);
    if (m_.position == PositionKind::Rope) {
      rank("E1", 2);
      rank("E0", m_.head_dim / 2);
      partition("E", {"E1", "E0"});
    }
    if (m_.position == PositionKind::Learned) rank("T", m_.max_position_embeddings);
    if (m_.type_vocab_size > 0) rank("Y", m_.type_vocab_size);
    if (m_.num_local_experts > 0) {
      rank("X", m_.num_local_experts);
      rank("S", m_.num_experts_per_tok);
    }
    if (ph_.attention == AttentionKind::OnePass) {
      rank("M1", M / m0_);
      rank("M0", m0_);
      partition("M", {"M1", "M0"});
    }

    // Embeddings: a gather of one row per token.
    tensor("WE", {"D", "V"}, TensorRole::Weight);
    tensor("TOK", {"B", "P"}, TensorRole::Index);
    std::string x0 = "X0[b,d,p] = WE[d, TOK[b,p]]";
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

    const int64_t layers = ph_.layers > 0 ? std::min(ph_.layers, m_.num_hidden_layers) : m_.num_hidden_layers;
    std::string x = "X0";
    for (int64_t l = 0; l < layers; ++l) x = layer(l, x, decode);

    const std::string xf = norm("F_", x, "XF");
    if (!m_.encoder_only) {
      const std::string head = m_.tie_word_embeddings ? "WE" : "WLM";
      if (!m_.tie_word_embeddings) tensor("WLM", {"D", "V"}, TensorRole::Weight);
      add(fmt::format("LOGITS[b,v] = {}[b,d,P-1] * {}[d,v]", xf, head));
    }
    return std::move(s_);
  }

 private:
  std::string layer(int64_t l, const std::string& x, bool decode) {
    const std::string L = fmt::format("L{}_", l);
    const std::string xn = norm(L + "N1_", x, L + "XN");
    // Projections: Q over (G kv heads) x (R queries per kv head), K and V over G.
    tensor(L + "WQ", {"D", "G", "R", "E"}, TensorRole::Weight);
    tensor(L + "WK", {"D", "G", "E"}, TensorRole::Weight);
    tensor(L + "WV", {"D", "G", "F"}, TensorRole::Weight);
    tensor(L + "WO", {"G", "R", "F", "D"}, TensorRole::Weight);
    std::string q = proj(L + "Q[b,g,r,e,p]", xn + "[b,d,p]", L + "WQ[d,g,r,e]", L + "BQ", {"G", "R", "E"}, "g,r,e", m_.attention_bias);
    std::string k = proj(L + "K[b,g,e,p]", xn + "[b,d,p]", L + "WK[d,g,e]", L + "BK", {"G", "E"}, "g,e", m_.attention_bias);
    std::string v = proj(L + "V[b,g,f,p]", xn + "[b,d,p]", L + "WV[d,g,f]", L + "BV", {"G", "F"}, "g,f", m_.attention_bias);
    std::string qe = q + "[b,g,r,e,p]";
    std::string ke;  // keys as read by attention, indexed by m
    std::string ve;  // values, indexed by m
    const bool rope = m_.position == PositionKind::Rope;
    if (rope) {
      add(fmt::format("{0}QR[b,g,r,e1,e0,p] = {1}[b,g,r,e1*E0+e0,p] * COS[e0,p] + {1}[b,g,r,(1-e1)*E0+e0,p] * SIN[e1,e0,p]", L, q));
      add(fmt::format("{0}KR[b,g,e1,e0,p] = {1}[b,g,e1*E0+e0,p] * COS[e0,p] + {1}[b,g,(1-e1)*E0+e0,p] * SIN[e1,e0,p]", L, k));
      qe = L + "QR[b,g,r,e1,e0,p]";
    }
    const std::string mi = ph_.attention == AttentionKind::OnePass ? "m1*M0+m0" : "m";
    if (decode) {
      // The cache holds post-RoPE keys; this step's new K and V are outputs written into it.
      tensor(L + "KC", {"B", "G", "E", "M"}, TensorRole::KVCache);
      tensor(L + "VC", {"B", "G", "F", "M"}, TensorRole::KVCache);
      ke = rope ? fmt::format("{}KC[b,g,e1*E0+e0,{}]", L, mi) : fmt::format("{}KC[b,g,e,{}]", L, mi);
      ve = fmt::format("{}VC[b,g,f,{}]", L, mi);
    } else {
      ke = rope ? fmt::format("{}KR[b,g,e1,e0,{}]", L, mi) : fmt::format("{}[b,g,e,{}]", k, mi);
      ve = fmt::format("{}[b,g,f,{}]", v, mi);
    }
    const std::string av = attention(L, qe, ke, ve);
    const std::string o = proj(L + "O[b,d,p]", av + "[b,g,r,f,p]", L + "WO[g,r,f,d]", L + "BO", {"D"}, "d", m_.attention_bias);
    if (m_.parallel_attn) {
      const std::string dn = mlp(L, xn);
      add(fmt::format("X{}[b,d,p] = {}[b,d,p] + {}[b,d,p] + {}[b,d,p]", l + 1, x, o, dn));
      return fmt::format("X{}", l + 1);
    }
    add(fmt::format("{0}XA[b,d,p] = {1}[b,d,p] + {2}[b,d,p]", L, x, o));
    const std::string xn2 = norm(L + "N2_", L + "XA", L + "XN2");
    const std::string dn = mlp(L, xn2);
    add(fmt::format("X{}[b,d,p] = {}XA[b,d,p] + {}[b,d,p]", l + 1, L, dn));
    return fmt::format("X{}", l + 1);
  }

  // Softmax(Q K^T / sqrt(E)) V for every (b, g, r); returns the name of AV[b,g,r,f,p].
  std::string attention(const std::string& L, const std::string& q, const std::string& k, const std::string& v) {
    const std::string h = "b,g,r";
    if (ph_.attention == AttentionKind::ThreePass) {
      add(fmt::format("{0}QK[{1},m,p] = {2} * {3}", L, h, q, k));
      add(fmt::format("{0}GM[{1},p] = max[m] {0}QK[{1},m,p]", L, h));
      add(fmt::format("{0}SN[{1},m,p] = exp(({0}QK[{1},m,p] - {0}GM[{1},p]) * rsqrt(E))", L, h));
      add(fmt::format("{0}SD[{1},p] = {0}SN[{1},m,p]", L, h));
      add(fmt::format("{0}A[{1},m,p] = {0}SN[{1},m,p] / {0}SD[{1},p]", L, h));
      add(fmt::format("{0}AV[{1},f,p] = {0}A[{1},m,p] * {2}", L, h, v));
      return L + "AV";
    }
    add(fmt::format("{0}BQK[{1},m1,m0,p] = {2} * {3}", L, h, q, k));
    add(fmt::format("{0}LM[{1},m1,p] = max[m0] {0}BQK[{1},m1,m0,p]", L, h));
    add(fmt::format("{0}RM[{1},m1=0,p] = -inf", L, h));
    add(fmt::format("{0}RM[{1},m1+1,p] = max({0}RM[{1},m1,p], {0}LM[{1},m1,p])", L, h));
    add(fmt::format("{0}SLN[{1},m1,m0,p] = exp(({0}BQK[{1},m1,m0,p] - {0}RM[{1},m1+1,p]) * rsqrt(E))", L, h));
    add(fmt::format("{0}SLD[{1},m1,p] = {0}SLN[{1},m1,m0,p]", L, h));
    add(fmt::format("{0}SLNV[{1},f,m1,p] = {0}SLN[{1},m1,m0,p] * {2}", L, h, v));
    add(fmt::format("{0}PRM[{1},m1,p] = exp(({0}RM[{1},m1,p] - {0}RM[{1},m1+1,p]) * rsqrt(E))", L, h));
    add(fmt::format("{0}RD[{1},m1=0,p] = 0", L, h));
    add(fmt::format("{0}SPD[{1},m1,p] = {0}RD[{1},m1,p] * {0}PRM[{1},m1,p]", L, h));
    add(fmt::format("{0}RD[{1},m1+1,p] = {0}SLD[{1},m1,p] + {0}SPD[{1},m1,p]", L, h));
    add(fmt::format("{0}RNV[{1},f,m1=0,p] = 0", L, h));
    add(fmt::format("{0}SPNV[{1},f,m1,p] = {0}RNV[{1},f,m1,p] * {0}PRM[{1},m1,p]", L, h));
    add(fmt::format("{0}RNV[{1},f,m1+1,p] = {0}SLNV[{1},f,m1,p] + {0}SPNV[{1},f,m1,p]", L, h));
    add(fmt::format("{0}AV[{1},f,p] = {0}RNV[{1},f,M1,p] / {0}RD[{1},M1,p]", L, h));
    return L + "AV";
  }

  // Returns the name of the MLP output [b,d,p].
  std::string mlp(const std::string& L, const std::string& xn) {
    const std::string act = m_.hidden_act;
    if (m_.num_local_experts > 0) {
      // Router, top-k selection (k max-passes over the experts), softmax over the chosen
      // logits, then the routed experts gathered by index. Which experts are chosen is data:
      // the index tensor SEL is an input of the cascade.
      tensor(L + "WR", {"D", "X"}, TensorRole::Weight);
      tensor(L + "SEL", {"B", "S", "P"}, TensorRole::Index);
      add(fmt::format("{0}RL[b,x,p] = {1}[b,d,p] * {0}WR[d,x]", L, xn));
      add(fmt::format("{0}RMAX[b,s,p] = max[x] {0}RL[b,x,p]", L));
      add(fmt::format("{0}RE[b,s,p] = exp({0}RMAX[b,s,p])", L));
      add(fmt::format("{0}RSUM[b,p] = {0}RE[b,s,p]", L));
      add(fmt::format("{0}RW[b,s,p] = {0}RE[b,s,p] / {0}RSUM[b,p]", L));
      tensor(L + "WG", {"X", "D", "I"}, TensorRole::ExpertWeight);
      tensor(L + "WU", {"X", "D", "I"}, TensorRole::ExpertWeight);
      tensor(L + "WD", {"X", "I", "D"}, TensorRole::ExpertWeight);
      add(fmt::format("{0}EG[b,s,i,p] = {1}[b,d,p] * {0}WG[{0}SEL[b,s,p],d,i]", L, xn));
      add(fmt::format("{0}EU[b,s,i,p] = {1}[b,d,p] * {0}WU[{0}SEL[b,s,p],d,i]", L, xn));
      add(fmt::format("{0}EH[b,s,i,p] = {2}({0}EG[b,s,i,p]) * {0}EU[b,s,i,p]", L, xn, act));
      add(fmt::format("{0}ED[b,s,d,p] = {0}EH[b,s,i,p] * {0}WD[{0}SEL[b,s,p],i,d]", L));
      add(fmt::format("{0}DN[b,d,p] = {0}ED[b,s,d,p] * {0}RW[b,s,p]", L));
      return L + "DN";
    }
    if (m_.mlp == MlpKind::Gated) {
      tensor(L + "WG", {"D", "I"}, TensorRole::Weight);
      tensor(L + "WU", {"D", "I"}, TensorRole::Weight);
      tensor(L + "WD", {"I", "D"}, TensorRole::Weight);
      const std::string g = proj(L + "GT[b,i,p]", xn + "[b,d,p]", L + "WG[d,i]", L + "BG", {"I"}, "i", m_.mlp_bias);
      const std::string u = proj(L + "UP[b,i,p]", xn + "[b,d,p]", L + "WU[d,i]", L + "BU", {"I"}, "i", m_.mlp_bias);
      add(fmt::format("{0}H[b,i,p] = {1}({2}[b,i,p]) * {3}[b,i,p]", L, act, g, u));
    } else {
      tensor(L + "W1", {"D", "I"}, TensorRole::Weight);
      tensor(L + "WD", {"I", "D"}, TensorRole::Weight);
      const std::string u = proj(L + "UP[b,i,p]", xn + "[b,d,p]", L + "W1[d,i]", L + "B1", {"I"}, "i", m_.mlp_bias);
      add(fmt::format("{0}H[b,i,p] = {1}({2}[b,i,p])", L, act, u));
    }
    return proj(L + "DN[b,d,p]", L + "H[b,i,p]", L + "WD[i,d]", L + "BD", {"D"}, "d", m_.mlp_bias);
  }

  // out = in * w (+ bias); returns the name of the final tensor.
  std::string proj(const std::string& out, const std::string& in, const std::string& w, const std::string& bias,
                   std::vector<std::string> bias_ranks, const std::string& bias_idx, bool with_bias) {
    add(fmt::format("{} = {} * {}", out, in, w));
    const std::string name = out.substr(0, out.find('['));
    if (!with_bias) return name;
    tensor(bias, std::move(bias_ranks), TensorRole::Weight);
    const std::string idx = out.substr(out.find('['));
    add(fmt::format("{}B{} = {}{} + {}[{}]", name, idx, name, idx, bias, bias_idx));
    return name + "B";
  }

  // Normalises x[b,d,p]; returns the name of the result.
  std::string norm(const std::string& pre, const std::string& x, const std::string& out) {
    tensor(pre + "W", {"D"}, TensorRole::Weight);
    if (m_.norm == NormKind::RMSNorm) {
      add(fmt::format("{0}SS[b,p] = {1}[b,d,p] * {1}[b,d,p]", pre, x));
      add(fmt::format("{0}RS[b,p] = rsqrt({0}SS[b,p] / D + 0.00001)", pre));
      add(fmt::format("{2}[b,d,p] = {1}[b,d,p] * {0}RS[b,p] * {0}W[d]", pre, x, out));
      return out;
    }
    tensor(pre + "B", {"D"}, TensorRole::Weight);
    add(fmt::format("{0}S1[b,p] = {1}[b,d,p]", pre, x));
    add(fmt::format("{0}S2[b,p] = {1}[b,d,p] * {1}[b,d,p]", pre, x));
    add(fmt::format("{0}RS[b,p] = rsqrt({0}S2[b,p] / D - ({0}S1[b,p] / D) * ({0}S1[b,p] / D) + 0.00001)", pre));
    add(fmt::format("{2}[b,d,p] = ({1}[b,d,p] - {0}S1[b,p] / D) * {0}RS[b,p] * {0}W[d] + {0}B[d]", pre, x, out));
    return out;
  }

  void rank(const std::string& name, int64_t extent) {
    RankDecl r;
    r.name = name;
    r.extent_text = std::to_string(extent);
    r.extent.value = extent;
    r.loc = m_.loc;
    s_.ranks.push_back(std::move(r));
  }
  void partition(const std::string& parent, std::vector<std::string> parts) {
    s_.partitions.push_back(PartitionDecl{parent, std::move(parts), m_.loc});
  }
  void tensor(const std::string& name, std::vector<std::string> ranks, TensorRole role) {
    TensorDecl t;
    t.name = name;
    t.ranks = std::move(ranks);
    t.has_ranks = true;
    t.role = role;
    t.loc = m_.loc;
    s_.tensors.push_back(std::move(t));
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

CascadeSpec transformer_cascade(const ModelConfig& m, const Phase& ph) { return Builder(m, ph).build(); }

ParamCounts count_params(const ModelConfig& m) {
  // One layer is enough: layers are identical. Count from the cascade's weight tensors so the
  // figures describe exactly what the simulator moves.
  Phase ph;
  ph.layers = 1;
  ph.attention = AttentionKind::ThreePass;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  ParamCounts p;
  const double L = static_cast<double>(m.num_hidden_layers);
  const double k_of_x = m.num_local_experts > 0 ? static_cast<double>(m.num_experts_per_tok) / static_cast<double>(m.num_local_experts) : 1.0;
  double expert = 0;
  for (const Tensor& t : c.tensors) {
    if (t.role != TensorRole::Weight && t.role != TensorRole::ExpertWeight) continue;
    const double n = static_cast<double>(t.elements());
    const std::string& name = t.name;
    if (name.starts_with("L0_")) {
      const std::string part = name.substr(3);
      if (part.starts_with("N1_") || part.starts_with("N2_")) p.per_layer_norm += n;
      else if (part == "WQ" || part == "WK" || part == "WV" || part == "WO" || part == "BQ" || part == "BK" || part == "BV" || part == "BO")
        p.per_layer_attention += n;
      else p.per_layer_mlp += n;
      if (t.role == TensorRole::ExpertWeight) expert += n;
    } else if (name.starts_with("F_")) {
      p.final_norm += n;
    } else {
      p.embedding += n;
    }
  }
  p.total = p.embedding + p.final_norm + L * (p.per_layer_attention + p.per_layer_mlp + p.per_layer_norm);
  p.active = p.total - L * expert * (1.0 - k_of_x);
  return p;
}

}  // namespace einsim
