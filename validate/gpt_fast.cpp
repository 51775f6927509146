#include "validate/gpt_fast.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "arch/collective.h"
#include "common/least_squares.h"
#include "workloads/model_config.h"

namespace einsim {

namespace {

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(f);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

}  // namespace

std::vector<DecodeThroughput> read_gpt_fast(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw UserError(SourceLoc{file}, "cannot read the file");
  std::string line;
  if (!std::getline(in, line)) throw UserError(SourceLoc{file}, "empty file");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::vector<std::string> head = split_csv(line);
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i]] = i;
  for (const char* c : {"model", "weights", "kv_cache", "tp", "tokens_per_s", "gpu", "power_limit_w", "prompt_tokens", "new_tokens", "table"})
    if (!col.count(c)) throw UserError(SourceLoc{file, 1, 1}, fmt::format("missing column '{}'", c));
  std::vector<DecodeThroughput> out;
  int ln = 1;
  while (std::getline(in, line)) {
    ++ln;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const SourceLoc at{file, ln, 1};
    const std::vector<std::string> f = split_csv(line);
    if (f.size() != head.size()) throw UserError(at, fmt::format("expected {} fields, found {}", head.size(), f.size()));
    auto field_at = [&](const char* c) {
      int column = 1;
      for (size_t i = 0; i < col[c]; ++i) column += static_cast<int>(f[i].size()) + 1;
      return at.shifted(column - 1);
    };
    auto number = [&](const char* c) {
      const std::string& s = f[col[c]];
      double v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size() || !(v > 0) || !std::isfinite(v))
        throw UserError(field_at(c), fmt::format("'{}' must be a positive number, found '{}'", c, s));
      return v;
    };
    auto integer = [&](const char* c) {
      const double v = number(c);
      if (v != std::floor(v) || v > 1e9) throw UserError(field_at(c), fmt::format("'{}' must be a whole number, found '{}'", c, f[col[c]]));
      return static_cast<int64_t>(v);
    };
    DecodeThroughput r;
    r.model = f[col["model"]];
    r.weights = f[col["weights"]];
    if (r.weights != "bf16" && r.weights != "int8" && r.weights != "int4")
      throw UserError(field_at("weights"), fmt::format("unknown weights '{}' (known: bf16, int8, int4)", r.weights));
    r.kv_cache = f[col["kv_cache"]];
    r.tp = integer("tp");
    r.tokens_per_s = number("tokens_per_s");
    r.gpu = f[col["gpu"]];
    r.power_limit = number("power_limit_w");
    r.prompt = integer("prompt_tokens");
    r.new_tokens = integer("new_tokens");
    r.table = f[col["table"]];
    r.loc = at;
    out.push_back(std::move(r));
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

DecodePrediction predict_gpt_fast(const ArchSpec& a, const Runtime& rt, const DecodeThroughput& row, MapCache* cache) {
  if (row.weights != "bf16")
    throw UserError(row.loc, fmt::format("{} weights: weight-only quantization is not modelled yet (bf16 rows only)", row.weights));
  const ModelConfig m = load_model(row.model);
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
