#include "validate/measurements.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace einsim {

std::vector<std::string> lines_of(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw UserError(SourceLoc{file}, "cannot open file");
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    out.push_back(l);
  }
  return out;
}

std::vector<Field> split(const std::string& line, char sep) {
  std::vector<Field> f;
  size_t start = 0;
  for (;;) {
    size_t end = line.find(sep, start);
    std::string t = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t lead = t.find_first_not_of(' ');
    const int col = static_cast<int>(start + (lead == std::string::npos ? 0 : lead)) + 1;
    t = lead == std::string::npos ? "" : t.substr(lead);
    while (!t.empty() && t.back() == ' ') t.pop_back();
    f.push_back({t, col});
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return f;
}

// A number, optionally followed by `unit`, which is stripped.
double number(const Field& f, const SourceLoc& line, std::string_view unit) {
  std::string_view s = f.text;
  if (!unit.empty()) {
    if (s.size() <= unit.size() || s.substr(s.size() - unit.size()) != unit)
      throw UserError(line.shifted(f.col - 1), fmt::format("expected a number in {}, found '{}'", unit, f.text));
    s.remove_suffix(unit.size());
  }
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !(v >= 0) || !std::isfinite(v))
    throw UserError(line.shifted(f.col - 1), fmt::format("expected a finite non-negative number, found '{}'", f.text));
  return v;
}

int64_t integer(const Field& f, const SourceLoc& line, int64_t max) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(f.text.data(), f.text.data() + f.text.size(), v);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && p == f.text.data() + f.text.size() && v > max))
    throw UserError(line.shifted(f.col - 1), fmt::format("'{}' is larger than {}, the most a measurement field may hold", f.text, max));
  if (ec != std::errc() || p != f.text.data() + f.text.size() || v < 1)
    throw UserError(line.shifted(f.col - 1), fmt::format("expected a positive integer, found '{}'", f.text));
  return v;
}

namespace {

// The non-empty lines of a headerless comma-separated file, split, with their locations.
struct Row {
  SourceLoc at;
  std::vector<Field> f;
};
std::vector<Row> rows_of(const std::string& file) {
  std::vector<Row> out;
  const auto lines = lines_of(file);
  for (size_t i = 0; i < lines.size(); ++i)
    if (!lines[i].empty()) out.push_back({SourceLoc{file, static_cast<int>(i) + 1, 1}, split(lines[i], ',')});
  return out;
}

}  // namespace

std::vector<GemmMeasurement> read_llmcompass_matmul(const std::string& file) {
  std::vector<GemmMeasurement> out;
  for (const auto& [at, f] : rows_of(file)) {
    if (f.size() != 5) throw UserError(at, fmt::format("expected 5 fields (M, N, K, latency ms, Tflops), found {}", f.size()));
    GemmMeasurement g;
    g.m = integer(f[0], at);
    g.n = integer(f[1], at);
    g.k = integer(f[2], at);
    g.seconds = number(f[3], at, "ms") * 1e-3;
    g.flops_per_s = number(f[4], at, "Tflops") * 1e12;
    if (g.seconds <= 0) throw UserError(at.shifted(f[3].col - 1), "latency must be positive");
    g.loc = at;
    out.push_back(g);
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

std::vector<ElementwiseMeasurement> read_llmcompass_elementwise(const std::string& file) {
  std::vector<ElementwiseMeasurement> out;
  for (const auto& [at, f] : rows_of(file)) {
    if (f.size() != 2 && f.size() != 3) throw UserError(at, fmt::format("expected 'M, N, Gelem/s' or 'M, Gelem/s', found {} fields", f.size()));
    ElementwiseMeasurement e;
    e.m = integer(f[0], at);
    if (f.size() == 3) e.n = integer(f[1], at);
    e.elements_per_s = number(f.back(), at) * 1e9;
    if (e.elements_per_s <= 0) throw UserError(at.shifted(f.back().col - 1), "throughput must be positive");
    e.loc = at;
    out.push_back(e);
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

std::vector<LayerOpMeasurement> read_llmcompass_layer(const std::string& file) {
  static const std::vector<std::string> kOps = {"qkv",  "qk",         "av",         "out_proj", "ffn1",       "ffn2",
                                                "softmax", "layernorm1", "layernorm2", "gelu",     "allreduce1", "allreduce2"};
  std::vector<LayerOpMeasurement> out;
  for (const auto& [at, f] : rows_of(file)) {
    if (out.size() == kOps.size()) throw UserError(at, fmt::format("expected {} latencies, found more", kOps.size()));
    if (f.size() != 1) throw UserError(at, fmt::format("expected one latency in seconds, found {} fields", f.size()));
    LayerOpMeasurement m;
    m.op = kOps[out.size()];
    m.seconds = number(f[0], at);
    if (m.seconds <= 0) throw UserError(at, "latency must be positive");
    m.loc = at;
    out.push_back(m);
  }
  if (out.size() != kOps.size()) throw UserError(SourceLoc{file}, fmt::format("expected {} latencies, found {}", kOps.size(), out.size()));
  return out;
}

std::vector<VidurRow> read_vidur_mlp(const std::string& file) {
  const auto lines = lines_of(file);
  if (lines.empty()) throw UserError(SourceLoc{file}, "empty file");
  const auto head = split(lines[0], ',');
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i].text] = i;
  const std::vector<std::string> shape = {"n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size",
                                          "use_gated_mlp", "num_tokens", "num_tensor_parallel_workers"};
  for (const auto& s : shape)
    if (!col.count(s)) throw UserError(SourceLoc{file, 1, 1}, fmt::format("missing column '{}'", s));
  std::vector<std::pair<std::string, size_t>> ops;
  for (const auto& [name, i] : col)
    if (name.starts_with("time_stats.") && name.ends_with(".median"))
      ops.push_back({name.substr(11, name.size() - 11 - 7), i});
  if (ops.empty()) throw UserError(SourceLoc{file, 1, 1}, "no time_stats.<op>.median column");
  std::vector<VidurRow> out;
  for (size_t li = 1; li < lines.size(); ++li) {
    if (lines[li].empty()) continue;
    const SourceLoc at{file, static_cast<int>(li) + 1, 1};
    const auto f = split(lines[li], ',');
    if (f.size() != head.size()) throw UserError(at, fmt::format("expected {} fields, found {}", head.size(), f.size()));
    VidurRow r;
    for (const auto& [op, i] : ops)
      if (!f[i].text.empty()) r.median_seconds[op] = number(f[i], at) * 1e-3;
    r.n_head = integer(f[col["n_head"]], at);
    r.n_kv_head = integer(f[col["n_kv_head"]], at);
    r.n_embd = integer(f[col["n_embd"]], at);
    r.n_expanded_embd = integer(f[col["n_expanded_embd"]], at);
    r.vocab_size = integer(f[col["vocab_size"]], at);
    const Field& g = f[col["use_gated_mlp"]];
    if (g.text != "True" && g.text != "False") throw UserError(at.shifted(g.col - 1), fmt::format("expected True or False, found '{}'", g.text));
    r.gated_mlp = g.text == "True";
    r.num_tokens = integer(f[col["num_tokens"]], at);
    r.tensor_parallel = integer(f[col["num_tensor_parallel_workers"]], at);
    r.loc = at;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<CollectiveMeasurement> read_vidur_network(const std::string& file) {
  const auto lines = lines_of(file);
  if (lines.empty()) throw UserError(SourceLoc{file}, "empty file");
  const auto head = split(lines[0], ',');
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i].text] = i;
  for (const char* c : {"num_workers", "size", "collective", "devices_per_node"})
    if (!col.count(c)) throw UserError(SourceLoc{file, 1, 1}, fmt::format("missing column '{}'", c));
  std::optional<size_t> median;
  for (const auto& [name, i] : col)
    if (name.starts_with("time_stats.") && name.ends_with(".median")) median = i;
  if (!median) throw UserError(SourceLoc{file, 1, 1}, "no time_stats.<collective>.median column");
  static const std::set<std::string> known = {"all_reduce", "send_recv", "all_gather", "reduce_scatter", "all_to_all"};
  std::vector<CollectiveMeasurement> out;
  for (size_t li = 1; li < lines.size(); ++li) {
    if (lines[li].empty()) continue;
    const SourceLoc at{file, static_cast<int>(li) + 1, 1};
    const auto f = split(lines[li], ',');
    if (f.size() != head.size()) throw UserError(at, fmt::format("expected {} fields, found {}", head.size(), f.size()));
    CollectiveMeasurement m;
    const Field& c = f[col["collective"]];
    if (!known.count(c.text))
      throw UserError(at.shifted(c.col - 1), fmt::format("unknown collective '{}' (known: {})", c.text, fmt::join(known, ", ")));
    m.collective = c.text;
    m.workers = integer(f[col["num_workers"]], at);
    m.devices_per_node = integer(f[col["devices_per_node"]], at);
    if (m.workers < 1 || m.devices_per_node < 1 || m.devices_per_node > m.workers)
      throw UserError(at, fmt::format("{} workers with {} per node: expected 1 <= per node <= workers", m.workers, m.devices_per_node));
    m.bytes = static_cast<double>(integer(f[col["size"]], at, int64_t{1} << 50));
    if (m.bytes <= 0) throw UserError(at.shifted(f[col["size"]].col - 1), "'size' must be positive");
    m.seconds = number(f[*median], at) * 1e-3;
    if (!(m.seconds > 0)) throw UserError(at.shifted(f[*median].col - 1), "the median time must be positive");
    m.loc = at;
    out.push_back(std::move(m));
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

std::vector<KernelMeasurement> read_kernel_csv(const std::string& file) {
  const auto lines = lines_of(file);
  size_t h = 0;
  while (h < lines.size() && (lines[h].empty() || lines[h][0] == '#')) ++h;
  if (h == lines.size()) throw UserError(SourceLoc{file}, "no header row (kind,op,dtype,...)");
  const SourceLoc head_at{file, static_cast<int>(h) + 1, 1};
  const auto head = split(lines[h], ',');
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < head.size(); ++i) col[head[i].text] = i;
  for (const char* c : {"kind", "op", "dtype", "m", "n", "k", "batch", "heads", "seq", "kv", "bytes", "flops", "median_s"})
    if (!col.count(c)) throw UserError(head_at, fmt::format("missing column '{}'", c));
  static const std::vector<std::string> kKinds = {"gemm", "attention", "memory", "rowwise", "pcie"};
  std::vector<KernelMeasurement> out;
  for (size_t li = h + 1; li < lines.size(); ++li) {
    if (lines[li].empty() || lines[li][0] == '#') continue;
    const SourceLoc at{file, static_cast<int>(li) + 1, 1};
    const auto f = split(lines[li], ',');
    if (f.size() != head.size()) throw UserError(at, fmt::format("expected {} fields, found {}", head.size(), f.size()));
    KernelMeasurement k;
    const Field& kind = f[col["kind"]];
    if (std::find(kKinds.begin(), kKinds.end(), kind.text) == kKinds.end())
      throw UserError(at.shifted(kind.col - 1), fmt::format("unknown kernel kind '{}' (known: gemm, attention, memory, rowwise, pcie)", kind.text));
    k.kind = kind.text;
    k.op = f[col["op"]].text;
    k.dtype = f[col["dtype"]].text;
    auto count = [&](const char* name) {
      const Field& x = f[col[name]];
      const double v = number(x, at);
      if (v != std::floor(v)) throw UserError(at.shifted(x.col - 1), fmt::format("'{}' must be a whole number, found '{}'", name, x.text));
      // Shapes beyond 2^53 are not kernels anyone measured, and would not convert exactly.
      if (v > 9007199254740992.0) throw UserError(at.shifted(x.col - 1), fmt::format("'{}' = {} is too large (at most 2^53)", name, x.text));
      return static_cast<int64_t>(v);
    };
    k.m = count("m"), k.n = count("n"), k.k = count("k"), k.batch = count("batch"), k.heads = count("heads"), k.seq = count("seq"), k.kv = count("kv");
    k.bytes = number(f[col["bytes"]], at);
    k.flops = number(f[col["flops"]], at);
    const Field& t = f[col["median_s"]];
    k.seconds = number(t, at);
    if (k.seconds <= 0) throw UserError(at.shifted(t.col - 1), "the median time must be positive");
    if (const auto p = col.find("power_w"); p != col.end()) {
      const Field& w = f[p->second];
      if (!w.text.empty() && w.text != "nan" && w.text != "NaN") {
        k.power = number(w, at);
        if (!(k.power > 0)) throw UserError(at.shifted(w.col - 1), "the power must be positive (or empty, or nan: not sampled)");
      }
    }
    k.loc = at;
    out.push_back(std::move(k));
  }
  if (out.empty()) throw UserError(SourceLoc{file}, "no measurements");
  return out;
}

}  // namespace einsim
