#include "validate/gpt_fast.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <map>

#include "arch/collective.h"
#include "common/least_squares.h"
#include "validate/calibration.h"
#include "validate/measurements.h"
#include "workloads/model_config.h"

namespace einsim {

std::vector<DecodeThroughput> read_gpt_fast(const std::string& file) {
  const auto lines = lines_of(file);
  if (lines.empty()) throw UserError(SourceLoc{file}, "empty file");
  const auto head = split(lines[0], ',');
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i].text] = i;
  for (const char* c : {"model", "weights", "kv_cache", "tp", "tokens_per_s", "gpu", "power_limit_w", "prompt_tokens", "new_tokens", "table"})
    if (!col.count(c)) throw UserError(SourceLoc{file, 1, 1}, fmt::format("missing column '{}'", c));
  std::vector<DecodeThroughput> out;
  for (size_t li = 1; li < lines.size(); ++li) {
    if (lines[li].empty()) continue;
    const SourceLoc at{file, static_cast<int>(li) + 1, 1};
    const auto f = split(lines[li], ',');
    if (f.size() != head.size()) throw UserError(at, fmt::format("expected {} fields, found {}", head.size(), f.size()));
    auto field = [&](const char* c) -> const Field& { return f[col[c]]; };
    auto positive = [&](const char* c) {
      const double v = number(field(c), at);
      if (!(v > 0)) throw UserError(at.shifted(field(c).col - 1), fmt::format("'{}' must be a positive number, found '{}'", c, field(c).text));
      return v;
    };
    DecodeThroughput r;
    r.model = field("model").text;
    r.weights = field("weights").text;
    if (r.weights != "bf16" && r.weights != "int8" && r.weights != "int4")
      throw UserError(at.shifted(field("weights").col - 1), fmt::format("unknown weights '{}' (known: bf16, int8, int4)", r.weights));
    r.kv_cache = field("kv_cache").text;
    r.tp = integer(field("tp"), at);
    r.tokens_per_s = positive("tokens_per_s");
    r.gpu = field("gpu").text;
    r.power_limit = positive("power_limit_w");
    r.prompt = integer(field("prompt_tokens"), at);
    r.new_tokens = integer(field("new_tokens"), at);
    r.table = field("table").text;
    r.loc = at;
    out.push_back(std::move(r));
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

Quantization gpt_fast_quantization(const DecodeThroughput& row) {
  // gpt-fast's quantize.py: int8 per output channel; int4 in groups of 32 (its README's
  // `--groupsize 32`, the checkpoints named model_int4.g32.pth) with a bf16 scale and zero.
  const auto q = parse_quantization(row.weights == "int4" ? "int4-g32" : row.weights == "int8" ? "int8" : "none");
  return *q;
}

DecodePrediction predict_gpt_fast(const ArchSpec& a, const Runtime& rt, const DecodeThroughput& row, MapCache* cache) {
  ModelConfig m = load_model(row.model);
  m.quant = gpt_fast_quantization(row);
  DecodePrediction p;
  p.row = row;
  RunOptions o;
  o.tp = row.tp;
  o.dtype = DType::BF16;
  o.runtime = &rt;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = 1;
  o.phase.context = row.prompt + row.new_tokens / 2;
  p.decode = run_model(m, a, o, cache);
  p.decode_step = p.decode.step_time;
  o.phase.kind = PhaseKind::Prefill;
  o.phase.prompt = row.prompt;
  o.phase.context = 0;
  p.prefill = run_model(m, a, o, cache).step_time;
  p.tokens_per_s = static_cast<double>(row.new_tokens) / (p.prefill + static_cast<double>(row.new_tokens - 1) * p.decode_step);
  return p;
}

bool gpt_fast_fit_row(const DecodeThroughput& row) { return row.weights != "bf16" && row.model == "llama-2-7b" && row.tp == 1; }

QuantizedFit fit_quantized_runtime(const ArchSpec& a, const Runtime& base, const std::vector<DecodeThroughput>& rows, const std::string& weights) {
  const KernelKind kind = weights == "int4" ? KernelKind::GemmW4A16 : KernelKind::GemmW8A16;
  std::vector<DecodeThroughput> fit_rows;
  for (const DecodeThroughput& r : rows)
    if (r.weights == weights && gpt_fast_fit_row(r)) fit_rows.push_back(r);
  if (fit_rows.empty()) throw UserError(SourceLoc{}, fmt::format("no {} row to fit (llama-2-7b at TP 1)", weights));
  MapCache cache;  // the quality scales rates after mapping: one mapping per row serves the grid
  const auto [quality, mape] = fit_kind_quality(base, kind, 0.2, [&](const Runtime& rt) {
    double e = 0;
    for (const DecodeThroughput& r : fit_rows) e += std::fabs(predict_gpt_fast(a, rt, r, &cache).error());
    return e / static_cast<double>(fit_rows.size());
  });
  return {quality, mape, static_cast<int64_t>(fit_rows.size())};
}

GraphRuntimeFit fit_graph_runtime(const ArchSpec& a, const Runtime& base, const std::vector<DecodeThroughput>& rows) {
  Runtime zero = base;
  zero.graphs = GraphMode::All;
  zero.graph_node = zero.iteration = zero.collective_base = 0;
  const Link* peer = peer_link(a);
  std::vector<std::array<double, 3>> f;
  std::vector<double> t;
  std::vector<double> fixed;
  MapCache cache;
  for (const DecodeThroughput& r : rows) {
    if (r.weights != "bf16") continue;
    // Every step as the decode step at the mean context (the prompt's prefill is a few tokens).
    const DecodePrediction p = predict_gpt_fast(a, zero, r, &cache);
    double kernels = p.decode.allreduces;
    for (const BlockRun& b : p.decode.blocks) kernels += b.repeats;
    const double bases = r.tp > 1 && peer ? p.decode.allreduces * peer->collective[static_cast<size_t>(CollectiveAlgo::Ring)].base : 0;
    f.push_back({kernels, 1, bases});
    const double step = 1 / r.tokens_per_s;
    t.push_back(step);
    fixed.push_back(p.decode_step);
  }
  if (f.size() < 3) throw UserError(SourceLoc{}, "the runtime fit needs three or more bf16 rows");
  // Relative error of the whole step: minimise sum ((fixed_i + x . f_i - t_i) / t_i)^2.
  std::vector<std::array<double, 3>> scaled(f.size());
  std::vector<double> target(t.size());
  for (size_t i = 0; i < f.size(); ++i) {
    for (size_t j = 0; j < 3; ++j) scaled[i][j] = f[i][j] / t[i];
    target[i] = (t[i] - fixed[i]) / t[i];
  }
  const auto x = nonnegative_least_squares<3>(scaled, target);
  GraphRuntimeFit fit;
  fit.graph_node = x[0];
  fit.iteration = x[1];
  fit.collective_base = x[2];
  fit.rows = static_cast<int64_t>(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    const double pred = fixed[i] + fit.graph_node * f[i][0] + fit.iteration + fit.collective_base * f[i][2];
    fit.mape += std::fabs(pred - t[i]) / t[i];
  }
  fit.mape /= static_cast<double>(t.size());
  return fit;
}

}  // namespace einsim
