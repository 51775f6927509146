#include "workloads/transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
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
    groups_ = m_.layer_groups(ph_.layers);
    rank("B", ph_.batch);
    rank("P", P);
    rank("D", m_.hidden_size);
    if (m_.mla()) {
      // Latent attention: the heads over G (naive: each its keys and values) or R (absorbed:
      // one latent every head reads); E the RoPE channels, E2 the others, F the value's.
      if (pruned() || linear() || m_.qk_norm || m_.position != PositionKind::Rope)
        throw UserError(m_.loc, fmt::format("'{}' has latent attention (MLA): key-channel pruning, linear attention and QK-norm do not apply", m_.name));
      const bool absorbed = ph_.mla_absorbed.value_or(decode);
      rank("G", absorbed ? 1 : m_.num_attention_heads);
      rank("R", absorbed ? m_.num_attention_heads : 1);
      rank("E", m_.qk_rope_head_dim);
      rank("E2", m_.qk_nope_head_dim);
      rank("F", m_.v_head_dim);
      rank("C1", m_.kv_lora_rank);
      if (m_.q_lora_rank > 0) rank("Q1", m_.q_lora_rank);
      scale_ = fmt::format("{:.17g}", 1.0 / std::sqrt(static_cast<double>(m_.qk_nope_head_dim + m_.qk_rope_head_dim)));
    } else {
      rank("G", m_.kv_heads());
      rank("R", m_.group());
      rank("E", m_.head_dim);
      rank("F", m_.head_dim);
    }
    rank("I", m_.intermediate_size);
    if (m_.num_local_experts > 0 && m_.expert_width() != m_.intermediate_size) rank("I1", m_.expert_width());  // a routed expert's width
    if (m_.shared_expert_size > 0) rank("I2", m_.shared_expert_size);  // the shared experts' width
    rank("W", m_.vocab_size);  // vocabulary (V names the value tensor)
    if (m_.ssm_inner > 0 && m_.mamba2()) {
      rank("T3", P);                                  // the tokens, as the scan's iterative rank
      rank("G3", m_.ssm_groups);                      // groups of heads sharing B and C
      rank("H3", m_.ssm_heads / m_.ssm_groups);       // heads per group
      rank("E3", m_.ssm_inner / m_.ssm_heads);        // channels per head
      rank("N3", m_.ssm_state);                       // state per channel
      rank("K3", m_.ssm_conv - 1);                    // the conv's earlier taps (cached inputs)
    } else if (m_.ssm_inner > 0) {
      rank("T3", P);                // the tokens, as the scan's iterative rank
      rank("I3", m_.ssm_inner);     // a Mamba mixer's channels
      rank("N3", m_.ssm_state);     // state per channel
      rank("K3", m_.ssm_conv - 1);  // the conv's earlier taps (cached inputs)
      rank("R3", m_.ssm_dt_rank);   // the dt projection's rank
    }
    if (m_.position == PositionKind::Rope) {
      rank("E1", 2);
      rank("E0", (m_.mla() ? m_.qk_rope_head_dim : m_.head_dim) / 2);
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
      if (m_.moe_layers() > 0)
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
      if (ph_.expert_parallel > 1) {
        // Expert parallelism: this device's N2 experts and the K1 (token, expert) pairs routed
        // to them from every device's tokens (uniform routing: k / EP of each token's).
        if (m_.num_local_experts % ph_.expert_parallel != 0)
          throw UserError(SourceLoc{"--ep"}, fmt::format("--ep {} does not divide the {} experts of '{}'", ph_.expert_parallel, m_.num_local_experts, m_.name));
        rank("N2", m_.num_local_experts / ph_.expert_parallel);
        // (Skewed routing: the busiest device's pairs, which set the pace.)
        const int64_t tokens = std::max<int64_t>(ph_.expert_tokens, ph_.batch * P);
        const double pairs = static_cast<double>(tokens * m_.num_experts_per_tok) / static_cast<double>(ph_.expert_parallel);
        rank("K1", static_cast<int64_t>(std::ceil(pairs * m_.expert_imbalance(ph_.expert_parallel) - 1e-9)));
      }
      if (m_.n_group > 0) {
        // Grouped routing: N = N1 groups x N0 experts; a token keeps its S1 best groups.
        rank("N1", m_.n_group);
        rank("N0", m_.num_local_experts / m_.n_group);
        rank("S1", m_.topk_group);
        partition("N", {"N1", "N0"});
      }
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
    // The layers, one group per kind: group g's ranks and tensors carry the suffix _g (none
    // for the first), and its residual stream starts from the previous group's last.
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (g > 0) {
        // A view of the previous stream's end, not a kernel.
        s_.views.insert(static_cast<int>(s_.einsums.size()));
        add(fmt::format("X{0}[l{0}=0,b,d,p] = X{1}[L{1},b,d,p]", suffix(g), suffix(g - 1)));
      }
      begin_group(g, P);
      layer(decode);
      rename_.clear();
    }
    const std::string last = suffix(groups_.size() - 1);
    norm("F", fmt::format("X{0}[L{0},b,d,p]", last), "XF[b,d,p]", false);
    if (!m_.encoder_only) {
      const std::string head = m_.tie_word_embeddings ? "WE" : "WLM";
      if (!m_.tie_word_embeddings) {
        tensor("WLM", {"D", "W"}, TensorRole::Weight);
        if (m_.quant.lm_head) quantize(s_.tensors.back(), m_.hidden_size);
      }
      add(fmt::format("LOGITS[b,w] = XF[b,d,P-1] * {}[d,w]", head));
      // Gemma 2's final soft-capping: cap * tanh(logit / cap).
      if (m_.final_logit_softcapping > 0) add(fmt::format("LOGITC[b,w] = tanh(LOGITS[b,w] / {0}) * {0}", m_.final_logit_softcapping));
    }
    return std::move(s_);
  }

 private:
  // One layer of the group's kind, indexed by l: attention (or none), then a dense MLP,
  // routed experts (or none), each with its residual add.
  void layer(bool decode) {
    const bool ffn = kind_.ffn != FfnKind::None;
    if (kind_.mixer == MixerKind::None) {
      if (!ffn) throw UserError(m_.loc, fmt::format("'{}' has a layer with neither attention nor an MLP", m_.name));
      norm("N2", "X[l,b,d,p]", "XN2[l,b,d,p]", true);
      quantize_input("XN2", {"L", "B", "D", "P"});
      add(fmt::format("X[l+1,b,d,p] = X[l,b,d,p] + {}[l,b,d,p]", post_norm("N4", mlp("XN2"), "DNN")));
      return;
    }
    const std::string o = post_norm("N3", kind_.mixer != MixerKind::Mamba ? attention_block(decode) : m_.mamba2() ? mamba2_block() : mamba_block(), "ON");
    if (!ffn) {
      add(fmt::format("X[l+1,b,d,p] = X[l,b,d,p] + {}[l,b,d,p]", o));
      return;
    }
    if (m_.parallel_attn) {
      const std::string dn = mlp("XN");
      add(fmt::format("X[l+1,b,d,p] = X[l,b,d,p] + {}[l,b,d,p] + {}[l,b,d,p]", o, dn));
      return;
    }
    add(fmt::format("XA[l,b,d,p] = X[l,b,d,p] + {}[l,b,d,p]", o));
    norm("N2", "XA[l,b,d,p]", "XN2[l,b,d,p]", true);
    quantize_input("XN2", {"L", "B", "D", "P"});
    const std::string dn = post_norm("N4", mlp("XN2"), "DNN");
    add(fmt::format("X[l+1,b,d,p] = XA[l,b,d,p] + {}[l,b,d,p]", dn));
  }

  // A Mamba mixer (Gu & Dao 2023, Algorithm 2; HF MambaMixer) on this step's P tokens: in
  // projection to x and the gate z, a causal depthwise conv of K taps (the K - 1 earlier
  // inputs from the cache; a prefill's own earlier tokens cost the same taps), SiLU, the
  // input-dependent dt (low rank, softplus), B and C, then the selective scan: per channel and
  // state element h[p+1] = exp(dt A) h[p] + dt B x, started from the cached state, an iterative
  // rank over the tokens (one kernel with y = C h, as the fused scan), y + D x gated by SiLU(z), and
  // the out projection. Returns the output's name.
  std::string mamba_block() {
    norm("N1", "X[l,b,d,p]", "XN[l,b,d,p]", true);
    quantize_input("XN", {"L", "B", "D", "P"});
    const int64_t D = m_.hidden_size, I = m_.ssm_inner;
    linear_weight("WSX", {"D", "I3"}, D);
    linear_weight("WSZ", {"D", "I3"}, D);
    const std::string x = proj("SX", "b,i3,p", "XN[l,b,d,p]", "WSX[l,d,i3]", "BSX", {"I3"}, "i3", m_.ssm_proj_bias);
    const std::string z = proj("SZ", "b,i3,p", "XN[l,b,d,p]", "WSZ[l,d,i3]", "BSZ", {"I3"}, "i3", m_.ssm_proj_bias);
    causal_conv(x, "SCV", "VX", {"I3"}, "i3");
    linear_weight("WXR", {"I3", "R3"}, I);
    linear_weight("WXB", {"I3", "N3"}, I);
    linear_weight("WXC", {"I3", "N3"}, I);
    add("SDR[l,b,r3,p] = SCV[l,b,i3,p] * WXR[l,i3,r3]");
    add("SBM[l,b,n3,p] = SCV[l,b,i3,p] * WXB[l,i3,n3]");
    add("SCM[l,b,n3,p] = SCV[l,b,i3,p] * WXC[l,i3,n3]");
    std::string dr = "SDR", bm = "SBM", cm = "SCM";
    if (m_.model_type == "jamba") {
      // modeling_jamba.py: RMSNorms of dt, B and C (dt_layernorm, b_layernorm, c_layernorm).
      dr = channel_norm("SDR", "SDR", "r3", "R3"), bm = channel_norm("SBM", "SBM", "n3", "N3"), cm = channel_norm("SCM", "SCM", "n3", "N3");
    }
    linear_weight("WDT", {"R3", "I3"}, m_.ssm_dt_rank);
    weight("BDT", {"I3"});
    add(fmt::format("SDP[l,b,i3,p] = {}[l,b,r3,p] * WDT[l,r3,i3]", dr));
    add("SDT[l,b,i3,p] = log(exp(SDP[l,b,i3,p] + BDT[l,i3]) + 1)");  // softplus
    weight("SAL", {"I3", "N3"});  // A (its log is the parameter; -exp(A_log) here)
    weight("SDS", {"I3"});        // the skip D
    tensor("SSC", {"L", "B", "I3", "N3"}, TensorRole::KVCache, ph_.kv_dtype);
    // The scan runs over its own rank T3 (the tokens again), so that only it loops: what reads
    // its states runs over all tokens after it. The discretised A and B x are formed inside
    // the scan, never stored (as the fused kernel).
    add("SSH[l,b,i3,n3,t3=0] = SSC[l,b,i3,n3]");
    add(fmt::format("SSH[l,b,i3,n3,t3+1] = exp(SDT[l,b,i3,t3] * SAL[l,i3,n3]) * SSH[l,b,i3,n3,t3] + SDT[l,b,i3,t3] * {}[l,b,n3,t3] * SCV[l,b,i3,t3]", bm));
    add(fmt::format("SY[l,b,i3,p] = SSH[l,b,i3,n3,p+1] * {}[l,b,n3,p]", cm));
    // The state after the step's last token goes back to the cache.
    tensor("SSO", {"L", "B", "I3", "N3"}, TensorRole::KVCache, ph_.kv_dtype);
    add("SSO[l,b,i3,n3] = SSH[l,b,i3,n3,T3]");
    add(fmt::format("SYG[l,b,i3,p] = (SY[l,b,i3,p] + SDS[l,i3] * SCV[l,b,i3,p]) * silu({}[l,b,i3,p])", z));
    linear_weight("WSO", {"I3", "D"}, I);
    quantize_input("SYG", {"L", "B", "I3", "P"});
    return proj("SO", "b,d,p", "SYG[l,b,i3,p]", "WSO[l,i3,d]", "BSO", {"D"}, "d", m_.ssm_proj_bias);
  }

  // The model's activation of `x` (an access); squared ReLU (relu2) as relu(x) * relu(x).
  std::string activate(const std::string& x) const {
    if (m_.hidden_act == "relu2") return fmt::format("relu({0}) * relu({0})", x);
    return fmt::format("{}({})", m_.hidden_act, x);
  }

  // A Mamba mixer's causal depthwise conv of `in` (indexed l,b,<idx>,p over `ranks`) into
  // `out`, with SiLU: the K - 1 earlier inputs from the cache C<pre> against the taps W<pre>,
  // this input against its own tap W<pre>K, the bias B<pre>. A prefill's own earlier tokens
  // cost the same taps.
  void causal_conv(const std::string& in, const std::string& out, const std::string& pre, const std::vector<std::string>& ranks, const std::string& idx) {
    std::vector<std::string> cache = {"L", "B"}, taps = ranks;
    cache.insert(cache.end(), ranks.begin(), ranks.end());
    cache.push_back("K3");
    taps.push_back("K3");
    tensor("C" + pre, cache, TensorRole::KVCache, ph_.kv_dtype);
    weight("W" + pre, taps);
    weight("W" + pre + "K", ranks);
    add(fmt::format("{0}E[l,b,{1},p] = C{2}[l,b,{1},k3] * W{2}[l,{1},k3]", out, idx, pre));
    std::string sum = fmt::format("{0}E[l,b,{1},p] + {2}[l,b,{1},p] * W{3}K[l,{1}]", out, idx, in, pre);
    if (m_.ssm_conv_bias) {
      weight("B" + pre, ranks);
      sum += fmt::format(" + B{}[l,{}]", pre, idx);
    }
    add(fmt::format("{}[l,b,{},p] = silu({})", out, idx, sum));
  }

  // A Mamba-2 mixer (Dao & Gu 2024; HF Mamba2Mixer, NemotronHMamba2Mixer) on this step's P
  // tokens: one in projection to the gate z, x (heads of E3 channels), B and C (per group of
  // heads) and dt (per head); a causal depthwise conv over x, B and C (their K - 1 earlier
  // inputs cached) with SiLU; dt softplus-ed; the scan per head, channel and state element
  // h[p+1] = exp(dt A) h[p] + dt B x with a scalar A per head, from the cached state, as an
  // iterative rank over the tokens; y = C h + D x gated by SiLU(z), RMS-normed per group; the
  // out projection. Returns the output's name.
  std::string mamba2_block() {
    norm("N1", "X[l,b,d,p]", "XN[l,b,d,p]", true);
    quantize_input("XN", {"L", "B", "D", "P"});
    const int64_t D = m_.hidden_size;
    const bool bias = m_.ssm_proj_bias;
    const std::vector<std::string> head = {"G3", "H3", "E3"}, group = {"G3", "N3"};
    linear_weight("WSZ", {"D", "G3", "H3", "E3"}, D);
    linear_weight("WSX", {"D", "G3", "H3", "E3"}, D);
    linear_weight("WXB", {"D", "G3", "N3"}, D);
    linear_weight("WXC", {"D", "G3", "N3"}, D);
    linear_weight("WDT", {"D", "G3", "H3"}, D);
    const std::string z = proj("SZ", "b,g3,h3,e3,p", "XN[l,b,d,p]", "WSZ[l,d,g3,h3,e3]", "BSZ", head, "g3,h3,e3", bias);
    const std::string x = proj("SX", "b,g3,h3,e3,p", "XN[l,b,d,p]", "WSX[l,d,g3,h3,e3]", "BSX", head, "g3,h3,e3", bias);
    const std::string bm = proj("SB", "b,g3,n3,p", "XN[l,b,d,p]", "WXB[l,d,g3,n3]", "BSB", group, "g3,n3", bias);
    const std::string cm = proj("SC", "b,g3,n3,p", "XN[l,b,d,p]", "WXC[l,d,g3,n3]", "BSC", group, "g3,n3", bias);
    const std::string dr = proj("SDR", "b,g3,h3,p", "XN[l,b,d,p]", "WDT[l,d,g3,h3]", "BSD", {"G3", "H3"}, "g3,h3", bias);
    causal_conv(x, "SCV", "VX", head, "g3,h3,e3");
    causal_conv(bm, "SBM", "VB", group, "g3,n3");
    causal_conv(cm, "SCM", "VC", group, "g3,n3");
    weight("BDT", {"G3", "H3"});
    add(fmt::format("SDT[l,b,g3,h3,p] = log(exp({}[l,b,g3,h3,p] + BDT[l,g3,h3]) + 1)", dr));  // softplus
    weight("SAL", {"G3", "H3"});  // A, one per head (-exp(A_log))
    weight("SDS", {"G3", "H3"});  // the skip D, one per head
    tensor("SSC", {"L", "B", "G3", "H3", "E3", "N3"}, TensorRole::KVCache, ph_.kv_dtype);
    add("SSH[l,b,g3,h3,e3,n3,t3=0] = SSC[l,b,g3,h3,e3,n3]");
    add("SSH[l,b,g3,h3,e3,n3,t3+1] = exp(SDT[l,b,g3,h3,t3] * SAL[l,g3,h3]) * SSH[l,b,g3,h3,e3,n3,t3] + "
        "SDT[l,b,g3,h3,t3] * SBM[l,b,g3,n3,t3] * SCV[l,b,g3,h3,e3,t3]");
    add("SY[l,b,g3,h3,e3,p] = SSH[l,b,g3,h3,e3,n3,p+1] * SCM[l,b,g3,n3,p]");
    tensor("SSO", {"L", "B", "G3", "H3", "E3", "N3"}, TensorRole::KVCache, ph_.kv_dtype);
    add("SSO[l,b,g3,h3,e3,n3] = SSH[l,b,g3,h3,e3,n3,T3]");
    add(fmt::format("SYG[l,b,g3,h3,e3,p] = (SY[l,b,g3,h3,e3,p] + SDS[l,g3,h3] * SCV[l,b,g3,h3,e3,p]) * silu({}[l,b,g3,h3,e3,p])", z));
    // The gated RMSNorm, over each group's channels.
    weight("SNW", {"G3", "H3", "E3"});
    add("SNS[l,b,g3,p] = SYG[l,b,g3,h3,e3,p] * SYG[l,b,g3,h3,e3,p]");
    add(fmt::format("SNR[l,b,g3,p] = rsqrt(SNS[l,b,g3,p] / {} + 0.00001)", m_.ssm_inner / m_.ssm_groups));
    add("SYN[l,b,g3,h3,e3,p] = SYG[l,b,g3,h3,e3,p] * SNR[l,b,g3,p] * SNW[l,g3,h3,e3]");
    linear_weight("WSO", {"G3", "H3", "E3", "D"}, m_.ssm_inner);
    quantize_input("SYN", {"L", "B", "G3", "H3", "E3", "P"});
    return proj("SO", "b,d,p", "SYN[l,b,g3,h3,e3,p]", "WSO[l,g3,h3,e3,d]", "BSO", {"D"}, "d", bias);
  }

  // Gemma's norm of a sublayer's output before its residual add (`out`), or `x` as it is.
  std::string post_norm(const std::string& pre, const std::string& x, const std::string& out) {
    if (!m_.sandwich_norm) return x;
    norm(pre, x + "[l,b,d,p]", out + "[l,b,d,p]", true);
    return out;
  }

  // Norm, projections, RoPE, attention over the cache and this step's keys, and the output
  // projection; returns the output's name.
  std::string attention_block(bool decode) {
    if (m_.mla()) return latent_attention(decode);
    norm("N1", "X[l,b,d,p]", "XN[l,b,d,p]", true);
    linear_weight("WQ", {"D", "G", "R", "E"}, m_.hidden_size);
    linear_weight("WK", {"D", "G", "E"}, m_.hidden_size);
    linear_weight("WV", {"D", "G", "F"}, m_.hidden_size);
    linear_weight("WO", {"G", "R", "F", "D"}, m_.num_attention_heads * m_.head_dim);
    quantize_input("XN", {"L", "B", "D", "P"});
    // Projections: Q over (G kv heads) x (R queries per kv head), K and V over G.
    const bool qkv_bias = m_.attention_bias || m_.qkv_bias;
    std::string q = proj("Q", "b,g,r,e,p", "XN[l,b,d,p]", "WQ[l,d,g,r,e]", "BQ", {"G", "R", "E"}, "g,r,e", qkv_bias);
    std::string k = proj("K", "b,g,e,p", "XN[l,b,d,p]", "WK[l,d,g,e]", "BK", {"G", "E"}, "g,e", qkv_bias);
    const std::string v = proj("V", "b,g,f,p", "XN[l,b,d,p]", "WV[l,d,g,f]", "BV", {"G", "F"}, "g,f", qkv_bias);
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
    return proj("O", "b,d,p", av + "[l,b,g,r,f,p]", "WO[l,g,r,f,d]", "BO", {"D"}, "d", m_.attention_bias);
  }

  // RMSNorm of `x`[l,b,<var>,p] over its `rank` channels with a per-layer weight <pre>W;
  // returns the normed tensor's name (<pre>N).
  std::string channel_norm(const std::string& pre, const std::string& x, const std::string& var, const std::string& rank_name) {
    weight(pre + "W", {rank_name});
    add(fmt::format("{0}SS[l,b,p] = {1}[l,b,{2},p] * {1}[l,b,{2},p]", pre, x, var));
    add(fmt::format("{0}RS[l,b,p] = rsqrt({0}SS[l,b,p] / {1} + 0.000001)", pre, rank_name));
    add(fmt::format("{0}N[l,b,{2},p] = {1}[l,b,{2},p] * {0}RS[l,b,p] * {0}W[l,{2}]", pre, x, var));
    return pre + "N";
  }

  // Multi-head latent attention (DeepSeek-V2 §2.1): queries through the q_lora bottleneck
  // (normed), split into a RoPE part and the rest; one latent per token (normed) and a RoPE
  // key every head shares, both cached. Naive: each head's keys and values up-projected from
  // the latents (as engines prefill). Absorbed: the key up-projection folded into the query
  // and the value up-projection applied after attention, so attention reads the latents as
  // one KV head of kv_lora_rank + rope channels (as engines decode). Scores are the two
  // parts' sum, scaled by 1 / sqrt(nope + rope). Returns the output projection's name.
  std::string latent_attention(bool decode) {
    const bool absorbed = ph_.mla_absorbed.value_or(decode);
    const std::string hr = absorbed ? "R" : "G", hv = absorbed ? "r" : "g";  // the rank of the heads
    norm("N1", "X[l,b,d,p]", "XN[l,b,d,p]", true);
    quantize_input("XN", {"L", "B", "D", "P"});
    std::string qin = "XN", qv = "d", qr = "D";
    int64_t qwidth = m_.hidden_size;
    if (m_.q_lora_rank > 0) {
      linear_weight("WDQ", {"D", "Q1"}, m_.hidden_size);
      add("CQ[l,b,q1,p] = XN[l,b,d,p] * WDQ[l,d,q1]");
      qin = channel_norm("NQ", "CQ", "q1", "Q1");
      quantize_input(qin, {"L", "B", "Q1", "P"});
      qv = "q1", qr = "Q1", qwidth = m_.q_lora_rank;
    }
    linear_weight("WQN", {qr, hr, "E2"}, qwidth);
    linear_weight("WQR", {qr, hr, "E"}, qwidth);
    add(fmt::format("QNP[l,b,g,r,e2,p] = {0}[l,b,{1},p] * WQN[l,{1},{2},e2]", qin, qv, hv));
    add(fmt::format("QPE[l,b,g,r,e,p] = {0}[l,b,{1},p] * WQR[l,{1},{2},e]", qin, qv, hv));
    linear_weight("WDKV", {"D", "C1"}, m_.hidden_size);
    linear_weight("WKR", {"D", "E"}, m_.hidden_size);
    add("CKV[l,b,c1,p] = XN[l,b,d,p] * WDKV[l,d,c1]");
    add("KPE[l,b,e,p] = XN[l,b,d,p] * WKR[l,d,e]");
    const std::string latent = channel_norm("NK", "CKV", "c1", "C1");
    quantize_input(latent, {"L", "B", "C1", "P"});
    add("QR[l,b,g,r,e1,e0,p] = QPE[l,b,g,r,e1*E0+e0,p] * COS[e0,p] + QPE[l,b,g,r,(1-e1)*E0+e0,p] * SIN[e1,e0,p]");
    add("KR[l,b,e1,e0,p] = KPE[l,b,e1*E0+e0,p] * COS[e0,p] + KPE[l,b,(1-e1)*E0+e0,p] * SIN[e1,e0,p]");
    linear_weight("WUK", {"C1", hr, "E2"}, m_.kv_lora_rank);
    linear_weight("WUV", {"C1", hr, "F"}, m_.kv_lora_rank);
    linear_weight("WO", {"G", "R", "F", "D"}, m_.num_attention_heads * m_.v_head_dim);
    // The latents and RoPE keys attended, indexed by m: the cache's (decode, or a chunk after
    // cached tokens), or this step's.
    std::string lat, rk;
    if (decode || cached_prefix() > 0) {
      tensor("CKC", {"L", "B", "C1", "M"}, TensorRole::KVCache, ph_.kv_dtype);
      tensor("KRC", {"L", "B", "E", "M"}, TensorRole::KVCache, ph_.kv_dtype);
      lat = "CKC[l,b,c1,{m}]", rk = "KRC[l,b,e1*E0+e0,{m}]";
    } else {
      lat = latent + "[l,b,c1,{m}]", rk = "KR[l,b,e1,e0,{m}]";
    }
    auto at = [](const std::string& t, const std::string& m) { return fmt::format(fmt::runtime(t), fmt::arg("m", m)); };
    const std::string mi = ph_.attention == AttentionKind::OnePass ? "m1*M0+m0" : "m";
    if (absorbed) {
      add("QL[l,b,g,r,c1,p] = QNP[l,b,g,r,e2,p] * WUK[l,c1,r,e2]");
      // Both score parts are computed in the attention kernel (FlashMLA).
      s_.in_reader_kernel.insert(static_cast<int>(s_.einsums.size()));
      add(fmt::format("SRP[l,b,g,r,m,p] = QR[l,b,g,r,e1,e0,p] * {}", at(rk, "m")));
      s_.in_reader_kernel.insert(static_cast<int>(s_.einsums.size()));
      add(fmt::format("SNP[l,b,g,r,m,p] = QL[l,b,g,r,c1,p] * {}", at(lat, "m")));
      attention("SNP[l,b,g,r,{m},p] + SRP[l,b,g,r,{m},p]", "", at(lat, mi), "c1");
      add("AVU[l,b,g,r,f,p] = AV[l,b,g,r,c1,p] * WUV[l,c1,r,f]");
      quantize_input("AVU", {"L", "B", "G", "R", "F", "P"});
      return proj("O", "b,d,p", "AVU[l,b,g,r,f,p]", "WO[l,g,r,f,d]", "BO", {"D"}, "d", false);
    }
    add(fmt::format("KNP[l,b,g,e2,m] = {} * WUK[l,c1,g,e2]", at(lat, "m")));
    add(fmt::format("VU[l,b,g,f,m] = {} * WUV[l,c1,g,f]", at(lat, "m")));
    s_.in_reader_kernel.insert(static_cast<int>(s_.einsums.size()));
    add(fmt::format("SRP[l,b,g,r,m,p] = QR[l,b,g,r,e1,e0,p] * {}", at(rk, "m")));
    s_.in_reader_kernel.insert(static_cast<int>(s_.einsums.size()));
    add("SNP[l,b,g,r,m,p] = QNP[l,b,g,r,e2,p] * KNP[l,b,g,e2,m]");
    attention("SNP[l,b,g,r,{m},p] + SRP[l,b,g,r,{m},p]", "", fmt::format("VU[l,b,g,f,{}]", mi));
    quantize_input("AV", {"L", "B", "G", "R", "F", "P"});
    return proj("O", "b,d,p", "AV[l,b,g,r,f,p]", "WO[l,g,r,f,d]", "BO", {"D"}, "d", false);
  }

  // Softmax(Q K^T / sqrt(E)) V for every (l, b, g, r) into AV[l,b,g,r,f,p].
  //
  // Soft-capping (Gemma 2) bounds each scaled score: cap * tanh(score / sqrt(E) / cap), kept in
  // the raw scores' units. A sink (gpt-oss) is a learned logit per head that joins each
  // softmax's denominator and no value.
  //
  // `q` * `k` are the scores; with `k` empty, `q` is the scores' expression itself, with "{m}"
  // where the key index goes (MLA: its two products' sum). `fv` is the value channels' index
  // (MLA's absorbed form: the latent's).
  void attention(const std::string& q, const std::string& k, const std::string& v, const std::string& fv = "f") {
    const std::string h = "l,b,g,r";
    const double cap = m_.attn_logit_softcapping;
    const std::string& sc_ = scale_;
    auto scores = [&](const std::string& m) {
      return k.empty() ? fmt::format(fmt::runtime(q), fmt::arg("m", m)) : q + " * " + k;
    };
    if (m_.attention_sinks) weight("SNK", {"G", "R"});
    if (ph_.attention == AttentionKind::ThreePass) {
      add(fmt::format("QK[{0},m,p] = {1}", h, scores("m")));
      std::string sc = "QK";
      if (cap > 0) add(fmt::format("QKC[{0},m,p] = tanh(QK[{0},m,p] * {2} / {1}) * {1} / {2}", h, cap, sc_)), sc = "QKC";
      add(fmt::format("GM[{0},p] = max[m] {1}[{0},m,p]", h, sc));
      add(fmt::format("SN[{0},m,p] = exp(({1}[{0},m,p] - GM[{0},p]) * {2})", h, sc, sc_));
      add(fmt::format("SD[{0},p] = SN[{0},m,p]", h));
      std::string sd = "SD";
      if (m_.attention_sinks) add(fmt::format("SKD[{0},p] = SD[{0},p] + exp(SNK[l,g,r] - GM[{0},p] * {1})", h, sc_)), sd = "SKD";
      add(fmt::format("A[{0},m,p] = SN[{0},m,p] / {1}[{0},p]", h, sd));
      add(fmt::format("AV[{0},{2},p] = A[{0},m,p] * {1}", h, v, fv));
      return;
    }
    add(fmt::format("BQK[{0},m1,m0,p] = {1}", h, scores("m1*M0+m0")));
    std::string sc = "BQK";
    if (cap > 0) add(fmt::format("BQC[{0},m1,m0,p] = tanh(BQK[{0},m1,m0,p] * {2} / {1}) * {1} / {2}", h, cap, sc_)), sc = "BQC";
    add(fmt::format("LM[{0},m1,p] = max[m0] {1}[{0},m1,m0,p]", h, sc));
    add(fmt::format("RM[{0},m1=0,p] = -inf", h));
    add(fmt::format("RM[{0},m1+1,p] = max(RM[{0},m1,p], LM[{0},m1,p])", h));
    add(fmt::format("SLN[{0},m1,m0,p] = exp(({1}[{0},m1,m0,p] - RM[{0},m1+1,p]) * {2})", h, sc, sc_));
    add(fmt::format("SLD[{0},m1,p] = SLN[{0},m1,m0,p]", h));
    add(fmt::format("SLNV[{0},{2},m1,p] = SLN[{0},m1,m0,p] * {1}", h, v, fv));
    add(fmt::format("PRM[{0},m1,p] = exp((RM[{0},m1,p] - RM[{0},m1+1,p]) * {1})", h, sc_));
    add(fmt::format("RD[{0},m1=0,p] = 0", h));
    add(fmt::format("SPD[{0},m1,p] = RD[{0},m1,p] * PRM[{0},m1,p]", h));
    add(fmt::format("RD[{0},m1+1,p] = SLD[{0},m1,p] + SPD[{0},m1,p]", h));
    add(fmt::format("RNV[{0},{1},m1=0,p] = 0", h, fv));
    add(fmt::format("SPNV[{0},{1},m1,p] = RNV[{0},{1},m1,p] * PRM[{0},m1,p]", h, fv));
    add(fmt::format("RNV[{0},{1},m1+1,p] = SLNV[{0},{1},m1,p] + SPNV[{0},{1},m1,p]", h, fv));
    if (m_.attention_sinks) {
      add(fmt::format("SKD[{0},p] = RD[{0},M1,p] + exp(SNK[l,g,r] - RM[{0},M1,p] * {1})", h, sc_));
      add(fmt::format("AV[{0},{1},p] = RNV[{0},{1},M1,p] / SKD[{0},p]", h, fv));
    } else {
      add(fmt::format("AV[{0},{1},p] = RNV[{0},{1},M1,p] / RD[{0},M1,p]", h, fv));
    }
    // A decoder's prefill: the key blocks a query tile cannot see are skipped.
    if (ph_.kind == PhaseKind::Prefill && ph_.causal && !m_.encoder_only) {
      const double w = causal_attention_work(cached_prefix(), ph_.prompt, 128, kind_.window, kind_.chunk);
      for (const char* t : {"BQK", "BQC", "SNP", "SRP", "LM", "RM", "SLN", "SLD", "SLNV", "PRM", "SPD", "RD", "SPNV", "RNV"}) s_.work[rename_one(t)] = w;
    }
  }

  // The MLP (or routed experts) of layer l on xn[l,b,d,p]; returns the output's name.
  std::string mlp(const std::string& xn) {
    const std::string in = xn + "[l,b,d,p]";
    if (kind_.ffn == FfnKind::Moe) return experts(in);
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
        add(fmt::format("H[l,b,a,p] = {} * {}[l,b,a,p]", activate(g + "[l,b,a,p]"), u));
      } else {
        const std::string u = gathered("UP", "W1", "B1");
        add(fmt::format("H[l,b,a,p] = {}", activate(u + "[l,b,a,p]")));
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
      add(fmt::format("H[l,b,i,p] = {} * {}[l,b,i,p]", activate(g + "[l,b,i,p]"), u));
    } else {
      linear_weight("W1", {"D", "I"}, m_.hidden_size);
      const std::string u = proj("UP", "b,i,p", in, "W1[l,d,i]", "B1", {"I"}, "i", m_.mlp_bias);
      add(fmt::format("H[l,b,i,p] = {}", activate(u + "[l,b,i,p]")));
    }
    linear_weight("WD", {"I", "D"}, m_.intermediate_size);
    quantize_input("H", {"L", "B", "I", "P"});
    return proj("DN", "b,d,p", "H[l,b,i,p]", "WD[l,i,d]", "BD", {"D"}, "d", m_.mlp_bias);
  }

  // Routed experts on `in` (an [l,b,d,p] access), and the shared experts beside them; returns
  // the output's name. Router scores (softmax, or sigmoid with a selection bias), grouped
  // routing (each group's best score, then the topk_group best groups), top-k selection (k
  // max-passes), the chosen weights (renormalised, scaled). Which experts are chosen is data:
  // the index SEL is an input of the cascade, with the expected distinct experts a batch reads
  // (uniform, or skewed) set on it.
  std::string experts(const std::string& in) {
    const std::string iw = m_.expert_width() != m_.intermediate_size ? "I1" : "I";
    const std::string i = iw == "I1" ? "i1" : "i";
    weight("WR", {"D", "N"});
    add(fmt::format("RL[l,b,n,p] = {} * WR[l,d,n]", in));
    std::string logits = "RL";
    if (m_.router_bias) {
      weight("RB", {"N"});
      add("RLB[l,b,n,p] = RL[l,b,n,p] + RB[l,n]");
      logits = "RLB";
    }
    const bool plain = m_.scoring == ScoringKind::Softmax && m_.n_group == 0 && m_.norm_topk_prob && m_.routed_scaling_factor == 1.0;
    if (plain) {
      // Softmax over the top-k logits (Mixtral).
      add(fmt::format("RMAX[l,b,s,p] = max[n] {}[l,b,n,p]", logits));
      add("RE[l,b,s,p] = exp(RMAX[l,b,s,p])");
      add("RSUM[l,b,p] = RE[l,b,s,p]");
      add("RW[l,b,s,p] = RE[l,b,s,p] / RSUM[l,b,p]");
    } else {
      if (m_.scoring == ScoringKind::Sigmoid) {
        add(fmt::format("RP[l,b,n,p] = sigmoid({}[l,b,n,p])", logits));
      } else {
        add(fmt::format("RE[l,b,n,p] = exp({}[l,b,n,p])", logits));
        add("RSUM[l,b,p] = RE[l,b,n,p]");
        add("RP[l,b,n,p] = RE[l,b,n,p] / RSUM[l,b,p]");
      }
      if (m_.n_group > 0) {
        add("GS[l,b,n1,p] = max[n0] RP[l,b,n1*N0+n0,p]");
        add("GTOP[l,b,s1,p] = max[n1] GS[l,b,n1,p]");
      }
      add("RMAX[l,b,s,p] = max[n] RP[l,b,n,p]");
      if (m_.norm_topk_prob) {
        add("RTOT[l,b,p] = RMAX[l,b,s,p]");
        add(fmt::format("RW[l,b,s,p] = RMAX[l,b,s,p] / RTOT[l,b,p] * {}", m_.routed_scaling_factor));
      } else {
        add(fmt::format("RW[l,b,s,p] = RMAX[l,b,s,p] * {}", m_.routed_scaling_factor));
      }
    }
    if (ph_.expert_parallel > 1) return dispatched_experts(in, iw, i);
    tensor("SEL", {"L", "B", "S", "P"}, TensorRole::Index);
    s_.tensors.back().routed = m_.num_experts_per_tok;
    s_.tensors.back().routing_skew = m_.routing_skew;
    return combine(in, expert_ffn("N", in, "SEL[l,b,s,p]", "l,b,s", ",p", {"L", "B", "S", iw, "P"}, iw, i));
  }

  // The routed experts' gated MLP over (token, expert) pairs indexed `pre`..`post` (l,b,s..,p on
  // a device's own tokens; l,k1 on dispatched pairs), each reading `x` and the expert `sel` picks
  // from the table over rank `experts`; returns the down projection's name (biased if any).
  std::string expert_ffn(const std::string& experts, const std::string& x, const std::string& sel, const std::string& pre, const std::string& post,
                         std::vector<std::string> hidden_ranks, const std::string& iw, const std::string& i) {
    // Gated experts (gate, up, down), or plain ones (up, down: Nemotron-H's).
    const bool gated = m_.mlp == MlpKind::Gated;
    if (gated) linear_weight("WG", {experts, "D", iw}, m_.hidden_size, TensorRole::ExpertWeight);
    linear_weight("WU", {experts, "D", iw}, m_.hidden_size, TensorRole::ExpertWeight);
    linear_weight("WD", {experts, iw, "D"}, m_.expert_width(), TensorRole::ExpertWeight);
    quantize_input("EH", std::move(hidden_ranks));
    const std::string e = fmt::format("{},{}{}", pre, i, post), out = fmt::format("{},d{}", pre, post);
    std::string g = "EG", u = "EU";
    if (gated) add(fmt::format("EG[{}] = {} * WG[l,{},d,{}]", e, x, sel, i));
    add(fmt::format("EU[{}] = {} * WU[l,{},d,{}]", e, x, sel, i));
    if (m_.mlp_bias) {
      if (gated) weight("BEG", {experts, iw}, TensorRole::ExpertWeight);
      weight("BEU", {experts, iw}, TensorRole::ExpertWeight);
      if (gated) add(fmt::format("EGB[{0}] = EG[{0}] + BEG[l,{1},{2}]", e, sel, i));
      add(fmt::format("EUB[{0}] = EU[{0}] + BEU[l,{1},{2}]", e, sel, i));
      g = "EGB", u = "EUB";
    }
    if (gated) add(fmt::format("EH[{0}] = {1} * {2}[{0}]", e, activate(fmt::format("{}[{}]", g, e)), u));
    else add(fmt::format("EH[{0}] = {1}", e, activate(fmt::format("{}[{}]", u, e))));
    add(fmt::format("ED[{}] = EH[{}] * WD[l,{},{},d]", out, e, sel, i));
    if (!m_.mlp_bias) return "ED";
    weight("BED", {experts, "D"}, TensorRole::ExpertWeight);
    add(fmt::format("EDB[{0}] = ED[{0}] + BED[l,{1},d]", out, sel));
    return "EDB";
  }

  // The routed experts' results weighted and summed per token (`ed`[l,b,s,d,p]), with the
  // shared experts beside them; returns the output's name.
  std::string combine(const std::string& in, const std::string& ed) {
    if (m_.shared_expert_size == 0) {
      add(fmt::format("DN[l,b,d,p] = {}[l,b,s,d,p] * RW[l,b,s,p]", ed));
      return "DN";
    }
    // Shared experts: a dense gated MLP of their total width on the same input, added to the
    // routed experts' sum (Qwen2-MoE scales it by a sigmoid gate first).
    add(fmt::format("DR[l,b,d,p] = {}[l,b,s,d,p] * RW[l,b,s,p]", ed));
    const bool gated = m_.mlp == MlpKind::Gated;
    if (gated) linear_weight("WSG", {"D", "I2"}, m_.hidden_size);
    linear_weight("WSU", {"D", "I2"}, m_.hidden_size);
    linear_weight("WSD", {"I2", "D"}, m_.shared_expert_size);
    if (gated) add(fmt::format("SG[l,b,i2,p] = {} * WSG[l,d,i2]", in));
    add(fmt::format("SU[l,b,i2,p] = {} * WSU[l,d,i2]", in));
    if (gated) add(fmt::format("SH[l,b,i2,p] = {} * SU[l,b,i2,p]", activate("SG[l,b,i2,p]")));
    else add(fmt::format("SH[l,b,i2,p] = {}", activate("SU[l,b,i2,p]")));
    quantize_input("SH", {"L", "B", "I2", "P"});
    add("SDN[l,b,d,p] = SH[l,b,i2,p] * WSD[l,i2,d]");
    if (m_.shared_expert_gate) {
      weight("WSE", {"D"});
      add(fmt::format("SGW[l,b,p] = {} * WSE[l,d]", in));
      add("DN[l,b,d,p] = DR[l,b,d,p] + SDN[l,b,d,p] * sigmoid(SGW[l,b,p])");
    } else {
      add("DN[l,b,d,p] = DR[l,b,d,p] + SDN[l,b,d,p]");
    }
    return "DN";
  }

  // Expert parallelism: this device's experts (N2 of them, full width) on the K1 pairs
  // dispatched to it (XD, each with its one chosen local expert: SEL2); their results ED go
  // back to the tokens' devices, and this device's tokens receive theirs (EDR) to combine.
  // The pairs' hidden states are packed from the layer's normed input by an index (DISP, the
  // permutation engines run around the all-to-all), which keeps the experts in their layer.
  std::string dispatched_experts(const std::string& in, const std::string& iw, const std::string& i) {
    tensor("DISP", {"L", "K1"}, TensorRole::Index);
    tensor("XD", {"L", "K1", "D"}, TensorRole::Auto, m_.quant.active && m_.quant.activations ? m_.quant.activations : std::nullopt);
    if (m_.quant.active && m_.quant.activations) s_.tensors.back().scale_bytes = m_.quant.activation_bytes_per_element();
    add(fmt::format("XD[l,k1,d] = {}", in.substr(0, in.find('[')) + "[l,DISP[l,k1],d,0]"));
    tensor("SEL2", {"L", "K1"}, TensorRole::Index);
    s_.tensors.back().routed = 1;  // a pair picks one of this device's experts
    s_.tensors.back().routing_skew = m_.routing_skew;
    expert_ffn("N2", "XD[l,k1,d]", "SEL2[l,k1]", "l,k1", "", {"L", "K1", iw}, iw, i);  // sent back
    tensor("EDR", {"L", "B", "S", "D", "P"}, TensorRole::Input);
    return combine(in, "EDR");
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

  static std::string suffix(size_t group) { return group == 0 ? "" : fmt::format("_{}", group); }

  // Group g of the layers: its layer rank L and key ranks M (with M1, M0), sized for its
  // kind; from here on its Einsums and tensors are renamed with the group's suffix.
  void begin_group(size_t g, int64_t P) {
    kind_ = groups_[g].kind;
    in_layers_ = true;
    const std::string sfx = suffix(g);
    rename_.clear();
    if (g > 0) {
      for (const char* r : {"L", "M", "M1", "M0"}) rename_[r] = r + sfx;
      for (const char* v : {"l", "m", "m1", "m0"}) rename_[v] = v + sfx;
    }
    const bool decode = ph_.kind == PhaseKind::Decode;
    // Keys attended: the cache and this step's tokens; a window or chunk caps what the cache
    // holds (a decode attends to it; a chunk's first query reaches back that far).
    int64_t M = decode ? std::max<int64_t>(1, kind_.cached(ph_.context + 1)) : cached_prefix() + P;
    if (ph_.attention == AttentionKind::OnePass) {
      if (decode) {
        m0_ = std::min(ph_.block, M);
        M = (M + m0_ - 1) / m0_ * m0_;
      } else {
        m0_ = std::gcd(M, ph_.block);
      }
    }
    rank("L", groups_[g].count);
    if (kind_.mixer == MixerKind::Attention) {
      rank("M", M);
      if (ph_.attention == AttentionKind::OnePass) {
        rank("M1", M / m0_);
        rank("M0", m0_);
        partition("M", {"M1", "M0"});
      }
    }
  }

  // `text` with the current group's names: every upper-case identifier but the global ranks
  // and tensors gets the suffix, and so do the group's index variables.
  std::string renamed(const std::string& text) const {
    if (rename_.empty()) return text;
    std::string out;
    out.reserve(text.size() + 16);
    for (size_t i = 0; i < text.size();) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (!std::isalpha(c) && c != '_') {
        out += text[i++];
        continue;
      }
      size_t j = i;
      while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
      const std::string id = text.substr(i, j - i);
      out += rename_one(id);
      i = j;
    }
    return out;
  }
  std::string rename_one(const std::string& id) const {
    if (rename_.empty()) return id;
    if (auto it = rename_.find(id); it != rename_.end()) return it->second;
    if (!std::isupper(static_cast<unsigned char>(id[0])) || global_.count(id)) return id;
    return id + rename_.at("L").substr(1);  // a tensor of the group
  }

  void rank(const std::string& name, int64_t extent) {
    if (!in_layers_) global_.insert(name);
    RankDecl r;
    r.name = rename_one(name);
    r.extent_text = std::to_string(extent);
    r.extent.value = extent;
    r.loc = m_.loc;
    s_.ranks.push_back(std::move(r));
  }
  // Prefill: the cached tokens before the prompt its attention reads (all of them, or the
  // sliding window's).
  int64_t cached_prefix() const {
    if (ph_.kind != PhaseKind::Prefill || kind_.mixer != MixerKind::Attention) return 0;
    if (kind_.window > 0) return std::min(ph_.context, kind_.window);
    if (kind_.chunk > 0) return ph_.context % kind_.chunk;  // the tokens of the chunk the prompt starts in
    return ph_.context;
  }
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
    for (std::string& x : parts) x = rename_one(x);
    s_.partitions.push_back(PartitionDecl{rename_one(parent), std::move(parts), m_.loc});
  }
  void tensor(const std::string& name, std::vector<std::string> ranks, TensorRole role, std::optional<DType> dtype = std::nullopt) {
    TensorDecl t;
    t.name = rename_one(name);
    if (!in_layers_) global_.insert(name);
    for (std::string& r : ranks) r = rename_one(r);
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
    if (!m_.quant.active || (m_.quant.experts_only && t.role != TensorRole::ExpertWeight)) return;
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
    s_.einsums.push_back(parse_einsum(renamed(text), SourceLoc{s_.name + " (generated)", static_cast<int>(s_.einsums.size()) + 1, 1}));
  }

  const ModelConfig& m_;
  const Phase& ph_;
  CascadeSpec s_;
  int64_t m0_ = 1;
  std::vector<LayerGroup> groups_;
  std::string scale_ = "rsqrt(E)";              ///< the softmax's scale of the scores
  LayerKind kind_;                              ///< the kind of the group being built
  std::map<std::string, std::string> rename_;   ///< the group's ranks and variables (empty: the first group)
  std::set<std::string> global_;                ///< ranks and tensors declared before the layers
  bool in_layers_ = false;
};

}  // namespace

std::string Phase::key() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", static_cast<int>(kind), batch, prompt, context, static_cast<int>(attention), block,
                     layers, kv_dtype ? static_cast<int>(*kv_dtype) : -1, key_channels, linear_features, ffn_active, predictor_rank, causal,
                     mla_absorbed ? static_cast<int>(*mla_absorbed) : -1, expert_parallel, expert_tokens);
}

double causal_attention_work(int64_t prefix, int64_t prompt, int64_t tile, int64_t window, int64_t chunk) {
  if (prompt < 1 || tile < 1) return 1;
  const int64_t keys = prefix + prompt;
  const int64_t q_tiles = (prompt + tile - 1) / tile, k_tiles = (keys + tile - 1) / tile;
  if ((window > 0 && window < keys) || (chunk > 0 && chunk < keys)) {
    // A band: query q (at position prefix + q) sees keys in (position - window, position], or
    // from the start of its chunk. A (query tile, key tile) pair is computed when any of its
    // pairs is visible.
    double computed = 0;
    for (int64_t i = 0; i < q_tiles; ++i) {
      const int64_t q_first = prefix + i * tile, q_last = prefix + std::min(prompt, (i + 1) * tile) - 1;
      // keys any query of the tile sees
      const int64_t k_lo = window > 0 ? std::max<int64_t>(0, q_first - window + 1) : q_first / chunk * chunk, k_hi = q_last;
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

std::string_view base_name(std::string_view name) {
  const size_t u = name.rfind('_');
  if (u == std::string_view::npos || u == 0 || u + 1 == name.size()) return name;
  for (size_t i = u + 1; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return name;
  return name.substr(0, u);
}

size_t group_of(std::string_view name) {
  const std::string_view base = base_name(name);
  if (base.size() == name.size()) return 0;
  return static_cast<size_t>(std::stoul(std::string(name.substr(base.size() + 1))));
}

ParamCounts count_params(const ModelConfig& m) {
  // Count from the cascade's weight tensors, so the figures describe exactly what the
  // simulator moves. Per-layer weights carry their group's layer rank first.
  Phase ph;
  ph.attention = AttentionKind::ThreePass;
  const Cascade c = bind_cascade(transformer_cascade(m, ph));
  ParamCounts p;
  const double L = static_cast<double>(m.num_hidden_layers);
  const double k_of_x = m.num_local_experts > 0 ? static_cast<double>(m.num_experts_per_tok) / static_cast<double>(m.num_local_experts) : 1.0;
  double attention = 0, mlp = 0, norms = 0, expert = 0;
  p.per_group.assign(m.layer_groups().size(), 0);
  for (const Tensor& t : c.tensors) {
    if (t.role != TensorRole::Weight && t.role != TensorRole::ExpertWeight) continue;
    const double n = static_cast<double>(t.elements());
    const std::string_view name = base_name(t.name);
    p.total_bytes += t.bytes();
    if (t.ranks.empty() || base_name(c.ranks[static_cast<size_t>(t.ranks[0])].name) != "L") {
      (name == "FW" || name == "FB" ? p.final_norm : p.embedding) += n;
      if (name != "FW" && name != "FB") p.embedding_bytes += t.bytes();
      continue;
    }
    p.per_group[std::min(group_of(t.name), p.per_group.size() - 1)] += n;
    if (name.starts_with("N1") || name.starts_with("N2") || name.starts_with("N3") || name.starts_with("N4")) norms += n;
    else if (name == "WQ" || name == "WK" || name == "WV" || name == "WO" || name == "BQ" || name == "BK" || name == "BV" || name == "BO" ||
             name == "QNW" || name == "KNW" || name == "SNK" || name == "WDQ" || name == "NQW" || name == "WQN" || name == "WQR" || name == "WDKV" ||
             name == "WKR" || name == "NKW" || name == "WUK" || name == "WUV" || name == "WSX" || name == "WSZ" || name == "BSX" || name == "BSZ" ||
             name == "WXR" || name == "WXB" || name == "WXC" || name == "WDT" || name == "BDT" ||
             name == "SAL" || name == "SDS" || name == "WSO" || name == "BSO" || name == "BSB" || name == "BSC" || name == "BSD" ||
             name == "WVX" || name == "WVXK" || name == "BVX" || name == "WVB" || name == "WVBK" || name == "BVB" || name == "WVC" || name == "WVCK" ||
             name == "BVC" || name == "SNW" || name == "SDRW" || name == "SBMW" || name == "SCMW")
      attention += n;
    else mlp += n, p.mlp_bytes += t.bytes();
    if (t.role == TensorRole::ExpertWeight) expert += n, p.expert_bytes += t.bytes();
  }
  // Per layer: averages over the layers (they differ when the layers have kinds).
  p.per_layer_attention = attention / L, p.per_layer_mlp = mlp / L, p.per_layer_norm = norms / L;
  p.total = p.embedding + p.final_norm + attention + mlp + norms;
  p.active = p.total - expert * (1.0 - k_of_x);
  p.active_bytes = p.total_bytes - p.expert_bytes * (1.0 - k_of_x);
  return p;
}

// Component of a model Einsum, by the tensor it writes: embedding, norm, attention,
// out-proj, mlp, residual, lm-head.
std::string model_component(const Einsum& e, const std::string& tensor) {
  const std::string n(base_name(tensor));
  if (n == "X") return e.iter_var < 0 && n == tensor ? "embedding" : "residual";
  if (n == "XA") return "residual";
  if (n.starts_with("N1") || n.starts_with("N2") || n.starts_with("N3") || n.starts_with("N4") || n == "FSS" || n == "FRS" || n == "FS1" ||
      n == "FS2" || n == "XN" || n == "XN2" || n == "XF" || n == "ON" || n == "DNN")
    return "norm";
  static const std::vector<std::string> attn = {"Q", "K", "V", "QB", "KB", "VB", "QR", "KR", "QSS", "QRS", "QN", "KSS", "KRS", "KN", "QK", "QKC", "GM", "SN", "SD", "SKD", "A", "AV",
                                                "BQK", "BQC", "LM", "RM",
                                                // latent attention (MLA)
                                                "CQ", "NQSS", "NQRS", "NQN", "QNP", "QPE", "CKV", "KPE", "NKSS", "NKRS", "NKN", "SRP", "SNP", "QL", "AVU", "KNP", "VU", "SLN", "SLD", "SLNV", "PRM", "RD", "SPD", "RNV", "SPNV",
                                                // linear attention (BASED)
                                                "QF", "KF", "S0N", "S1N", "S2N", "Z0N", "Z1N", "Z2N", "LN1", "LN2", "LD1", "LD2", "LA"};
  if (std::find(attn.begin(), attn.end(), n) != attn.end()) return "attention";
  static const std::vector<std::string> ssm = {"SX", "SXB", "SZ", "SZB", "SCV", "SDR", "SBM", "SCM", "SDP", "SDT", "SSH", "SY", "SYG", "SO", "SOB",
                                               // Mamba-2's
                                               "SB", "SBB", "SC", "SCB", "SDRB", "SCVE", "SBME", "SCME", "SNS", "SNR", "SYN",
                                               // Jamba's norms of dt, B and C
                                               "SDRSS", "SDRRS", "SDRN", "SBMSS", "SBMRS", "SBMN", "SCMSS", "SCMRS", "SCMN", "SSO"};
  if (std::find(ssm.begin(), ssm.end(), n) != ssm.end()) return "ssm";
  if (n == "O" || n == "OB") return "out-proj";
  if (n == "LOGITS" || n == "LOGITC") return "lm-head";
  return "mlp";
}

}  // namespace einsim
