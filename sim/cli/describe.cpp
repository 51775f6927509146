#include "sim/cli/describe.h"

#include "sim/sweep/evaluate.h"

#include "sim/analyze/flash.h"
#include "sim/engine/contention.h"
#include "sim/analyze/kv_compression.h"
#include "sim/analyze/long_context.h"
#include "sim/analyze/offload.h"
#include "sim/analyze/power.h"
#include "sim/serve/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <array>
#include <map>
#include <nlohmann/json.hpp>

#include "common/paths.h"
#include "common/toml_reader.h"
#include "sim/report/table.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"

namespace einsim {
namespace fs = std::filesystem;
using nlohmann::json;

ConfigKind config_kind(const std::string& file) {
  if (file.ends_with(".json")) return ConfigKind::Model;
  auto doc = ConfigDoc::load(file);
  const ConfigTable root = doc->root();
  const bool cascade = root.contains("cascade"), model = root.contains("model"), arch = root.contains("arch"), scenario = root.contains("scenario"),
             sweep = root.contains("sweep"), runtime = root.contains("runtime");
  if (cascade + model + arch + scenario + sweep + runtime > 1)
    throw UserError(SourceLoc{file, 1, 1}, "a config file holds one thing: [cascade], [model], [arch], [scenario], [sweep] or [runtime]");
  if (runtime) return ConfigKind::Runtime;
  if (sweep) return ConfigKind::Sweep;
  if (cascade) return ConfigKind::Cascade;
  if (model) return ConfigKind::Model;
  if (arch) return ConfigKind::Arch;
  if (scenario) return ConfigKind::Scenario;
  throw UserError(SourceLoc{file, 1, 1}, "not an einsim config: expected a [cascade], [model], [arch], [scenario], [sweep] or [runtime] table");
}

std::string scenario_kind(const std::string& file) {
  auto doc = ConfigDoc::load(file);
  return doc->root().get_table("scenario").get_choice("kind", {"long-context", "kv-compression", "offload", "flash", "power", "contention"});
}

std::string check_file(const std::string& file, const std::vector<std::string>& overrides) {
  const ConfigKind kind = config_kind(file);
  if (kind == ConfigKind::Arch) {
    const ArchSpec a = load_arch(file, overrides);
    return fmt::format("{}: ok: arch '{}', {} tiers, {} levels, {} arrays, {} links", file, a.name, a.tiers.size(),
                       a.levels.size(), a.arrays.size(), a.links.size());
  }
  if (kind == ConfigKind::Runtime) {
    const Runtime r = load_runtime(file, overrides);
    const char* graphs = r.graphs == GraphMode::All ? "all steps" : r.graphs == GraphMode::Decode ? "decode" : "none";
    return fmt::format("{}: ok: runtime '{}', {:.3g} us per kernel, graphs: {}", file, r.name, r.kernel_launch * 1e6, graphs);
  }
  if (kind == ConfigKind::Sweep) {
    const SweepSpec s = load_sweep(file, overrides);
    check_sweep(s);
    return fmt::format("{}: ok: sweep '{}', {} parameters, {} points ({})", file, s.name, s.params.size(), s.total,
                       s.mode == SweepMode::Roofline ? "roofline" : s.mode == SweepMode::Serve ? "serve" : "mapped");
  }
  if (kind == ConfigKind::Scenario) {
    const std::string what = scenario_kind(file);
    if (what == "offload") {
      const OffloadScenario sc = load_offload(file, overrides);
      load_model(sc.model);
      return fmt::format("{}: ok: scenario 'offload', {} on {} + {}, {} batches x {} contexts", file, sc.model, sc.compute, sc.memory,
                         sc.batches.size(), sc.contexts.size());
    }
    if (what == "contention") {
      const ContentionScenario sc = load_contention(file, overrides);
      for (const std::string& m : {sc.model}) load_model(m);
      return fmt::format("{}: ok: scenario 'contention', case '{}' ({}; `einsim simulate`)", file, sc.kind, sc.model);
    }
    if (what == "flash") {
      const FlashScenario sc = load_flash(file, overrides);
      for (const std::string& m : sc.models) load_model(m);
      for (const std::string& m : sc.candidates) load_model(m);
      for (const std::string& h : sc.hosts) load_arch(h);
      return fmt::format("{}: ok: scenario 'flash', {} models on {} hosts, {} DRAM sizes for the largest model", file, sc.models.size(),
                         sc.hosts.size(), sc.dram_sizes.size());
    }
    if (what == "power") {
      const PowerScenario sc = load_power(file, overrides);
      load_model(sc.model);
      load_arch(sc.arch);
      for (const PowerClass& c : sc.classes)
        if (c.trace != "conv" && c.trace != "code") load_trace(c.trace);
      return fmt::format("{}: ok: scenario 'power', {} on {} servers of {}, {} classes, {} policies x {} oversubscription levels", file, sc.model, sc.servers,
                         sc.arch, sc.classes.size(), sc.policies.size(), sc.oversubscription.size());
    }
    if (what == "kv-compression") {
      const KvCompressionScenario sc = load_kv_compression(file, overrides);
      load_model(sc.model);
      load_arch(sc.arch);
      return fmt::format("{}: ok: scenario 'kv-compression', {} on {}, {} policies", file, sc.model, sc.arch, sc.policies.size());
    }
    const LongContextScenario sc = load_long_context(file, overrides);
    load_model(sc.model);
    load_arch(sc.arch);
    return fmt::format("{}: ok: scenario 'long-context', {} on {}, {} contexts x {} device counts", file, sc.model, sc.arch, sc.contexts.size(),
                       sc.devices.size());
  }
  if (kind == ConfigKind::Cascade) {
    const Cascade c = load_cascade(file, overrides);
    return fmt::format("{}: ok: cascade '{}', {} Einsums, {} tensors", file, c.name, c.einsums.size(), c.tensors.size());
  }
  const ModelConfig m = load_model(file, overrides);
  // Build and check one layer of each phase the model has.
  Phase ph;
  ph.layers = 1;
  bind_cascade(transformer_cascade(m, ph));
  if (!m.encoder_only) {
    ph.kind = PhaseKind::Decode;
    ph.context = 16;
    bind_cascade(transformer_cascade(m, ph));
  }
  const ParamCounts p = count_params(m);
  return fmt::format("{}: ok: model '{}', {} parameters", file, m.name, fmt_count(p.total));
}

const std::vector<std::string>& list_kinds() {
  static const std::vector<std::string> kinds = {"archs", "models", "workloads", "analyses", "scenarios", "sweeps", "runtimes"};
  return kinds;
}

namespace {

// The first sentence of a config's leading comment block, at most 100 characters.
std::string first_sentence(const fs::path& file) {
  std::ifstream in(file);
  std::string line, text;
  while (std::getline(in, line) && line.starts_with("#")) {
    const size_t start = line.find_first_not_of("# ");
    if (start != std::string::npos) text += (text.empty() ? "" : " ") + line.substr(start);
    if (text.size() > 200) break;
  }
  for (size_t p = text.find(". "); p != std::string::npos; p = text.find(". ", p + 1))
    if (p > 2) {  // not an initial ("e. g.")
      text = text.substr(0, p);
      break;
    }
  if (text.ends_with(".")) text.pop_back();
  if (text.size() > 100) text = text.substr(0, 97) + "...";
  return text;
}

}  // namespace

std::string list_presets(const std::string& kind, Format f) {
  if (!kind.empty() && std::find(list_kinds().begin(), list_kinds().end(), kind) == list_kinds().end())
    throw UserError(SourceLoc{kind}, fmt::format("not a kind of preset (one of: {})", fmt::join(list_kinds(), ", ")));
  TextTable t({"kind", "name", "what", "file"});
  json rows = json::array();
  for (const std::string& k : list_kinds()) {
    if (!kind.empty() && k != kind) continue;
    const std::string folder = k == "archs" ? "arch" : k;
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(config_path(folder), ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".toml") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    for (const fs::path& p : files) {
      const std::string name = p.stem().string(), what = first_sentence(p);
      t.row({k, name, what, p.string()});
      rows.push_back({{"kind", k}, {"name", name}, {"what", what}, {"file", p.string()}});
    }
  }
  if (f == Format::Json) return rows.dump(2) + "\n";
  if (f == Format::Csv) return t.csv();
  if (rows.empty()) return fmt::format("no {} presets are shipped\n", kind.empty() ? "" : kind);
  return t.aligned();
}

namespace {

json ops_json(const OpCounts& o) {
  json j;
  for (int i = 0; i < kOpClasses; ++i) j[std::string(op_class_name(static_cast<OpClass>(i)))] = o.n[static_cast<size_t>(i)];
  j["flops"] = o.flops();
  return j;
}

std::string iteration_space(const Einsum& e) {
  std::vector<std::string> v;
  for (size_t i = 0; i < e.vars.size(); ++i)
    v.push_back(fmt::format("{}{}={}", static_cast<int>(i) < e.n_out ? "" : "~", e.vars[i].name, e.vars[i].extent));
  return fmt::format("{}", fmt::join(v, " "));
}

// Predecessors of each Einsum, 1-based; `^` marks a value from an earlier iteration.
std::vector<std::string> predecessors(const Cascade& c) {
  std::vector<std::vector<std::string>> pre(c.einsums.size());
  for (const Edge& e : c.edges)
    if (e.from != e.to || e.carried())
      pre[static_cast<size_t>(e.to)].push_back(fmt::format("{}{}", e.from + 1, e.carried() ? "^" : ""));
  std::vector<std::string> out;
  out.reserve(pre.size());
  for (auto& p : pre) out.push_back(fmt::format("{}", fmt::join(p, ",")));
  return out;
}

json schedule_json(const Cascade& c, const std::vector<Step>& steps) {
  json j = json::array();
  for (const Step& s : steps) {
    if (s.iter_rank < 0) j.push_back(s.einsum + 1);
    else j.push_back({{"loop", c.ranks[static_cast<size_t>(s.iter_rank)].name}, {"body", schedule_json(c, s.body)}});
  }
  return j;
}

std::vector<PassReport> all_passes(const Cascade& c) {
  std::vector<PassReport> out;
  for (const Rank& r : c.ranks) {
    if (r.parent >= 0) continue;
    PassReport p = pass_analysis(c, r.name);
    // Only ranks that some Einsum reduces are interesting; a rank nobody reduces is 1 pass.
    bool reduced = false;
    const std::vector<int> fam = c.rank_family(c.find_rank(r.name));
    for (const Einsum& e : c.einsums)
      for (size_t v = static_cast<size_t>(e.n_out); v < e.vars.size(); ++v)
        reduced |= std::find(fam.begin(), fam.end(), e.vars[v].rank) != fam.end();
    if (reduced && p.passes > 0) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

std::string describe_cascade(const Cascade& c, Format f) {
  const CascadeStats s = analyze(c);
  const std::vector<PassReport> passes = all_passes(c);
  if (f == Format::Json) {
    json j;
    j["kind"] = "cascade";
    j["name"] = c.name;
    for (const Rank& r : c.ranks) j["ranks"][r.name] = r.extent;
    for (const Tensor& t : c.tensors)
      j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", dtype_name(t.dtype)},
                              {"role", t.is_input() ? (t.role == TensorRole::Auto ? "input" : role_name(t.role))
                                       : t.readers.empty() ? "output" : "intermediate"},
                              {"bytes", t.bytes()}});
    for (size_t i = 0; i < c.einsums.size(); ++i) {
      const Einsum& e = c.einsums[i];
      j["einsums"].push_back({{"einsum", e.text}, {"points", e.points}, {"ops", ops_json(e.ops)},
                              {"bytes_read", s.einsums[i].bytes_read}, {"bytes_written", s.einsums[i].bytes_written}});
    }
    j["totals"] = {{"ops", ops_json(s.ops)}, {"input_bytes", s.input_bytes}, {"output_bytes", s.output_bytes},
                   {"intermediate_bytes", s.intermediate_bytes}, {"compulsory_bytes", s.compulsory_bytes},
                   {"unfused_bytes", s.unfused_bytes}};
    for (const PassReport& p : passes) j["passes"].push_back({{"rank", p.rank}, {"passes", p.passes}, {"reasons", p.reasons}});
    for (const Edge& e : c.edges)
      j["dependencies"].push_back({{"from", e.from + 1}, {"to", e.to + 1},
                                   {"carried_by", e.carried() ? json(c.ranks[static_cast<size_t>(e.carried_rank)].name) : json(nullptr)}});
    j["schedule"] = schedule_json(c, c.schedule);
    return j.dump(2) + "\n";
  }
  const std::vector<std::string> after = predecessors(c);
  TextTable t({"#", "einsum", "after", "iteration space", "points", "mac", "add", "max", "exp", "div", "other", "read", "written"});
  for (size_t i = 0; i < c.einsums.size(); ++i) {
    const Einsum& e = c.einsums[i];
    const OpCounts& o = e.ops;
    t.row({std::to_string(i + 1), e.text, after[i], iteration_space(e), fmt_count(static_cast<double>(e.points)),
           fmt_count(o[OpClass::Mac]), fmt_count(o[OpClass::Add]), fmt_count(o[OpClass::Max]), fmt_count(o[OpClass::Exp]),
           fmt_count(o[OpClass::Div]), fmt_count(o[OpClass::Mul] + o[OpClass::Unary]), fmt_bytes(s.einsums[i].bytes_read),
           fmt_bytes(s.einsums[i].bytes_written)});
  }
  if (f == Format::Csv) return t.csv();
  std::string out = fmt::format("cascade {}: {} Einsums over ranks", c.name, c.einsums.size());
  for (const Rank& r : c.ranks) out += fmt::format(" {}={}", r.name, r.extent);
  out += "\n(after: the Einsums each one reads from, ^ from an earlier iteration; ~ marks a reduced index)\n\n" + t.aligned();
  out += fmt::format("\ntotal: {} FLOPs ({} MACs), inputs {}, outputs {}, intermediates {}\n", fmt_count(s.ops.flops()),
                     fmt_count(s.ops[OpClass::Mac]), fmt_bytes(s.input_bytes), fmt_bytes(s.output_bytes),
                     fmt_bytes(s.intermediate_bytes));
  out += fmt::format("compulsory traffic {} (fused, intermediates on chip); unfused traffic {}\n", fmt_bytes(s.compulsory_bytes),
                     fmt_bytes(s.unfused_bytes));
  for (const PassReport& p : passes) {
    out += fmt::format("passes over {}: {}\n", p.rank, p.passes);
    for (const std::string& r : p.reasons) out += "  " + r + "\n";
  }
  return out;
}

std::string describe_arch(const ArchSpec& a, Format f) {
  // The common types always; a block-scaled format where some array runs it.
  std::vector<DType> kTypes = {DType::FP32, DType::FP16, DType::BF16, DType::FP8, DType::INT8};
  for (DType t : {DType::MXFP8, DType::MXFP6, DType::MXFP4, DType::NVFP4})
    if (std::any_of(a.arrays.begin(), a.arrays.end(), [&](const ComputeArray& c) { return c.peak_flops(t) > 0; })) kTypes.push_back(t);
  json j;
  j["kind"] = "arch";
  j["name"] = a.name;
  TextTable tiers({"tier", "kind", "capacity", "read", "write", "latency", "energy"});
  for (const MemoryTier& t : a.tiers) {
    tiers.row({t.name, std::string(tier_kind_name(t.kind)), fmt_bytes(t.capacity), format_quantity(t.read_bandwidth, Dim::Bandwidth),
               format_quantity(t.write_bandwidth, Dim::Bandwidth), t.latency > 0 ? format_quantity(t.latency, Dim::Time) : "-",
               t.energy > 0 ? format_quantity(t.energy / 8, Dim::Energy) + "/bit" : "-"});
    j["tiers"].push_back({{"name", t.name}, {"kind", tier_kind_name(t.kind)}, {"capacity", t.capacity},
                          {"read_bandwidth", t.read_bandwidth}, {"write_bandwidth", t.write_bandwidth}, {"latency", t.latency},
                          {"energy_per_byte", t.energy}});
  }
  TextTable levels({"level", "parent", "capacity", "instances", "bandwidth"});
  for (const StorageLevel& l : a.levels) {
    levels.row({l.name, l.parent, fmt_bytes(l.capacity), std::to_string(l.instances), format_quantity(l.bandwidth, Dim::Bandwidth)});
    j["levels"].push_back({{"name", l.name}, {"parent", l.parent}, {"capacity", l.capacity}, {"instances", l.instances},
                           {"bandwidth", l.bandwidth}});
  }
  std::vector<std::string> head{"array", "PEs", "clock"};
  for (DType t : kTypes) head.push_back(fmt::format("{} MAC", dtype_name(t)));
  TextTable arrays(head);
  for (const ComputeArray& c : a.arrays) {
    std::vector<std::string> r{c.name, fmt::format("{} x {}", c.instances, fmt::join(c.shape, "x")), format_quantity(c.clock, Dim::Frequency)};
    json peaks;
    for (DType t : kTypes) {
      const double p = c.peak_flops(t);
      r.push_back(p > 0 ? format_quantity(p, Dim::OpRate) : "-");
      if (p > 0) peaks[std::string(dtype_name(t))] = p;
    }
    arrays.row(r);
    j["arrays"].push_back({{"name", c.name}, {"shape", c.shape}, {"instances", c.instances}, {"clock", c.clock},
                           {"level", c.level}, {"peak_flops", peaks}});
  }
  TextTable links({"link", "kind", "joins", "bandwidth per direction", "domain"});
  for (const Link& l : a.links) {
    const bool peer = l.to == "peer";
    links.row({l.name, std::string(link_kind_name(l.kind)), l.from + " - " + l.to, format_quantity(l.bandwidth, Dim::Bandwidth),
               !peer ? "-" : l.torus.empty() ? std::to_string(l.domain) : fmt::format("{} torus", fmt::join(l.torus, "x"))});
    json lj = {{"name", l.name}, {"kind", link_kind_name(l.kind)}, {"from", l.from}, {"to", l.to}, {"bandwidth", l.bandwidth}};
    if (peer) lj["domain"] = l.domain;
    if (!l.torus.empty()) lj["torus"] = l.torus;
    j["links"].push_back(lj);
  }
  j["power"] = {{"idle", a.power.idle}, {"tdp", a.power.tdp}};
  if (a.cost.rate) j["cost"]["rate_per_hour"] = *a.cost.rate * 3600;
  if (a.cost.price) j["cost"]["price"] = *a.cost.price;
  if (f == Format::Json) return j.dump(2) + "\n";
  if (f == Format::Csv) return arrays.csv();
  std::string out = fmt::format("arch {} ({})\n\n", a.name, a.kind == ArchKind::GPU ? "gpu" : a.kind == ArchKind::Accelerator ? "accelerator" : "host");
  out += tiers.aligned();
  if (!a.levels.empty()) out += "\n" + levels.aligned();
  if (!a.arrays.empty()) out += "\n" + arrays.aligned();
  if (!a.links.empty()) out += "\n" + links.aligned();
  if (a.power.tdp > 0) out += fmt::format("\npower: idle {}, TDP {}\n", format_quantity(a.power.idle, Dim::Power), format_quantity(a.power.tdp, Dim::Power));
  if (a.cost.rate) out += fmt::format("cost: {}\n", format_quantity(*a.cost.rate, Dim::MoneyRate));
  return out;
}

std::string describe_model(const ModelConfig& m, const std::optional<Phase>& phase, Format f) {
  const ParamCounts p = count_params(m);
  const double kv = m.kv_bytes_per_token(m.dtype);
  json j;
  j["kind"] = "model";
  j["name"] = m.name;
  j["model_type"] = m.model_type;
  j["config"] = {{"hidden_size", m.hidden_size}, {"num_hidden_layers", m.num_hidden_layers},
                 {"num_attention_heads", m.num_attention_heads}, {"num_key_value_heads", m.num_key_value_heads},
                 {"head_dim", m.head_dim}, {"intermediate_size", m.intermediate_size}, {"vocab_size", m.vocab_size},
                 {"hidden_act", m.hidden_act}, {"tie_word_embeddings", m.tie_word_embeddings},
                 {"num_local_experts", m.num_local_experts}, {"num_experts_per_tok", m.num_experts_per_tok},
                 {"dtype", dtype_name(m.dtype)}};
  j["parameters"] = {{"total", p.total}, {"active", p.active}, {"embedding", p.embedding},
                     {"per_layer", {{"attention", p.per_layer_attention}, {"mlp", p.per_layer_mlp}, {"norm", p.per_layer_norm}}},
                     {"final_norm", p.final_norm}};
  j["kv_bytes_per_token"] = kv;
  // The layers by kind: how many, their parameters, the KV each keeps per token.
  const std::vector<LayerGroup> groups = m.layer_groups();
  const double kv_layer = m.attention_layers() > 0 ? kv / static_cast<double>(m.attention_layers()) : 0;
  for (size_t g = 0; g < groups.size(); ++g)
    j["layers"].push_back({{"kind", groups[g].kind.name()}, {"layers", groups[g].count}, {"parameters", p.per_group[g]},
                           {"window", groups[g].kind.window}, {"chunk", groups[g].kind.chunk},
                           {"kv_bytes_per_token", groups[g].kind.mixer == MixerKind::Attention ? kv_layer * static_cast<double>(groups[g].count) : 0.0}});

  std::map<std::string, OpCounts> comp_ops;
  std::map<std::string, double> comp_bytes;
  CascadeStats s;
  std::optional<Cascade> c;
  double weight_bytes = 0, kv_bytes = 0;
  std::vector<double> group_flops;
  if (phase) {
    c = bind_cascade(transformer_cascade(m, *phase));
    s = analyze(*c);
    group_flops.assign(groups.size(), 0);
    for (size_t i = 0; i < c->einsums.size(); ++i) {
      const Einsum& e = c->einsums[i];
      const std::string k = model_component(e, c->tensors[static_cast<size_t>(e.lhs.tensor)].name);
      comp_ops[k] += s.einsums[i].ops;  // the work computed (causal attention skips blocks)
      comp_bytes[k] += s.einsums[i].bytes_read + s.einsums[i].bytes_written;
      for (const Var& v : e.vars)
        if (base_name(c->ranks[static_cast<size_t>(v.rank)].name) == "L") {
          group_flops[std::min(group_of(c->ranks[static_cast<size_t>(v.rank)].name), groups.size() - 1)] += s.einsums[i].ops.flops();
          break;
        }
    }
    for (size_t g = 0; g < groups.size(); ++g) j["layers"][g]["flops"] = group_flops[g];
    for (size_t i = 0; i < c->einsums.size(); ++i)
      for (const Access& a : c->einsums[i].reads) {
        const Tensor& t = c->tensors[static_cast<size_t>(a.tensor)];
        if (t.role == TensorRole::KVCache) kv_bytes += touched_elements(*c, c->einsums[i], a) * t.element_bytes();
      }
    // Weights touched by this step (gathered tables and experts only where indexed).
    std::vector<double> touched(c->tensors.size(), 0);
    for (const Einsum& e : c->einsums)
      for (const Access& a : e.reads) {
        const Tensor& t = c->tensors[static_cast<size_t>(a.tensor)];
        if (t.role == TensorRole::Weight || t.role == TensorRole::ExpertWeight)
          touched[static_cast<size_t>(a.tensor)] = std::max(touched[static_cast<size_t>(a.tensor)], touched_elements(*c, e, a) * t.element_bytes());
      }
    for (double b : touched) weight_bytes += b;
    json ph = {{"phase", phase->kind == PhaseKind::Prefill ? "prefill" : "decode"}, {"batch", phase->batch},
               {"prompt", phase->prompt}, {"context", phase->context},
               {"attention", phase->attention == AttentionKind::OnePass ? "1-pass" : "3-pass"},
               {"einsums", c->einsums.size()}, {"ops", ops_json(s.ops)}, {"weight_bytes_read", weight_bytes},
               {"kv_bytes_read", kv_bytes}, {"compulsory_bytes", s.compulsory_bytes}};
    for (const auto& [k, o] : comp_ops) ph["components"][k] = {{"ops", ops_json(o)}, {"unfused_bytes", comp_bytes[k]}};
    j["phase"] = ph;
  }
  if (f == Format::Json) return j.dump(2) + "\n";

  if (f == Format::Csv) {
    TextTable t({"component", "mac", "mul", "add", "max", "exp", "div", "unary", "flops", "unfused_bytes"});
    if (!phase) {
      TextTable pt({"part", "parameters"});
      pt.row({"embedding", fmt::format("{:.0f}", p.embedding)});
      pt.row({"attention_per_layer", fmt::format("{:.0f}", p.per_layer_attention)});
      pt.row({"mlp_per_layer", fmt::format("{:.0f}", p.per_layer_mlp)});
      pt.row({"norm_per_layer", fmt::format("{:.0f}", p.per_layer_norm)});
      pt.row({"final_norm", fmt::format("{:.0f}", p.final_norm)});
      pt.row({"total", fmt::format("{:.0f}", p.total)});
      pt.row({"active", fmt::format("{:.0f}", p.active)});
      return pt.csv();
    }
    for (const auto& [k, o] : comp_ops) {
      std::vector<std::string> r{k};
      for (int i = 0; i < kOpClasses; ++i) r.push_back(fmt::format("{:.0f}", o.n[static_cast<size_t>(i)]));
      r.push_back(fmt::format("{:.0f}", o.flops()));
      r.push_back(fmt::format("{:.0f}", comp_bytes[k]));
      t.row(r);
    }
    return t.csv();
  }

  const std::string inner = m.mla() ? fmt::format("latent attention: kv_lora {} + rope {} cached, q_lora {}, head_dim {} + {}, value {}", m.kv_lora_rank,
                                                   m.qk_rope_head_dim, m.q_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim)
                                     : fmt::format("{} KV heads, head_dim {}", m.num_key_value_heads, m.head_dim);
  const std::string heads = m.attention_layers() == 0 ? "no attention" : fmt::format("{} heads ({})", m.num_attention_heads, inner);
  const bool mlps = m.dense_layers() + m.moe_layers() > 0;
  std::string out = fmt::format("model {} ({}): {} layers, d_model {}, {}, {}{}, vocab {}\n",
                                m.name, m.model_type, m.num_hidden_layers, m.hidden_size, heads, mlps ? fmt::format("FFN {}", m.intermediate_size) : "no MLP",
                                m.num_local_experts ? fmt::format("; {} experts of {} (top {}){}", m.num_local_experts, m.expert_width(), m.num_experts_per_tok,
                                                                  m.shared_expert_size ? fmt::format(", shared {}", m.shared_expert_size) : "")
                                                    : "",
                                m.vocab_size);
  out += fmt::format("parameters: {:.4g}B total", p.total / 1e9);
  if (p.active != p.total) out += fmt::format(", {:.4g}B active per token", p.active / 1e9);
  out += fmt::format(" ({} at {}{})\n", fmt_bytes(p.total_bytes), dtype_name(m.dtype),
                     m.quant.active ? fmt::format(", linear layers {} with their scales", m.quant.name) : "");
  if (!m.encoder_only && m.attention_layers() > 0) out += fmt::format("KV cache: {:.0f} bytes per token ({})\n", kv, fmt_bytes(kv));
  int64_t ssm_layers = 0;
  for (const LayerGroup& g : groups) ssm_layers += g.kind.mixer == MixerKind::Mamba ? g.count : 0;
  if (ssm_layers > 0) {
    out += m.mamba2() ? fmt::format("Mamba-2 mixers: {} channels in {} heads of {}, {} groups, state {}, conv {}\n", m.ssm_inner, m.ssm_heads,
                                    m.ssm_inner / m.ssm_heads, m.ssm_groups, m.ssm_state, m.ssm_conv)
                      : fmt::format("Mamba mixers: {} channels, state {}, conv {}, dt rank {}\n", m.ssm_inner, m.ssm_state, m.ssm_conv, m.ssm_dt_rank);
    out += fmt::format("Mamba state: {} per request, whatever its context ({} layers)\n", fmt_bytes(m.kv_bytes(m.dtype, 1) - kv), ssm_layers);
  }
  TextTable pt({"part", "parameters", "share"});
  auto prow = [&](const std::string& name, double n) { pt.row({name, fmt_count(n), fmt::format("{:.1f}%", 100.0 * n / p.total)}); };
  const double L = static_cast<double>(m.num_hidden_layers);
  prow("embeddings + LM head", p.embedding);
  if (groups.size() == 1) {
    prow(fmt::format("{} ({} x {})", ssm_layers > 0 ? "Mamba mixers" : "attention", m.num_hidden_layers, fmt_count(p.per_layer_attention)),
         L * p.per_layer_attention);
    prow(fmt::format("{} ({} x {})", m.num_local_experts ? "experts + router" : "MLP", m.num_hidden_layers, fmt_count(p.per_layer_mlp)),
         L * p.per_layer_mlp);
  } else {
    prow(ssm_layers > 0 ? fmt::format("attention ({} layers), Mamba mixers ({} layers)", m.attention_layers(), ssm_layers)
                        : fmt::format("attention ({} layers)", m.attention_layers()),
         L * p.per_layer_attention);
    std::vector<std::string> parts;
    if (m.dense_layers()) parts.push_back(fmt::format("MLPs ({} layers)", m.dense_layers()));
    if (m.moe_layers()) parts.push_back(fmt::format("experts + router ({} layers)", m.moe_layers()));
    prow(parts.empty() ? std::string("MLPs (none)") : fmt::format("{}", fmt::join(parts, ", ")), L * p.per_layer_mlp);
  }
  prow("norms", L * p.per_layer_norm + p.final_norm);
  out += "\n" + pt.aligned();
  if (groups.size() > 1) {
    // Per layer kind (built as one group each; layers exchange only the residual stream).
    std::vector<std::string> head = {"layer kind", "layers", "parameters", "KV per token"};
    if (phase) head.push_back("FLOPs this step");
    TextTable lt(head);
    for (size_t g = 0; g < groups.size(); ++g) {
      const double kvg = groups[g].kind.mixer == MixerKind::Attention ? kv_layer * static_cast<double>(groups[g].count) : 0.0;
      std::vector<std::string> row = {groups[g].kind.name(), std::to_string(groups[g].count), fmt_count(p.per_group[g]), fmt_bytes(kvg)};
      if (phase) row.push_back(fmt_count(group_flops[g]));
      lt.row(row);
    }
    out += "\n" + lt.aligned();
  }
  if (phase) {
    out += fmt::format("\n{} step: batch {}, {}, {} attention cascade, {} Einsums\n",
                       phase->kind == PhaseKind::Prefill ? "prefill" : "decode", phase->batch,
                       phase->kind == PhaseKind::Prefill ? fmt::format("prompt {}", phase->prompt)
                                                         : fmt::format("context {}", phase->context),
                       phase->attention == AttentionKind::OnePass ? "1-pass" : "3-pass", c->einsums.size());
    TextTable t({"component", "FLOPs", "MACs", "exp", "share of FLOPs", "unfused traffic"});
    for (const auto& [k, o] : comp_ops)
      t.row({k, fmt_count(o.flops()), fmt_count(o[OpClass::Mac]), fmt_count(o[OpClass::Exp]),
             fmt::format("{:.1f}%", 100.0 * o.flops() / s.ops.flops()), fmt_bytes(comp_bytes[k])});
    out += t.aligned();
    out += fmt::format("total {} FLOPs; reads {} of weights and {} of KV cache; compulsory traffic {}\n",
                       fmt_count(s.ops.flops()), fmt_bytes(weight_bytes), fmt_bytes(kv_bytes), fmt_bytes(s.compulsory_bytes));
    out += fmt::format("arithmetic intensity at compulsory traffic: {:.1f} FLOP/B\n", s.ops.flops() / s.compulsory_bytes);
  }
  return out;
}

}  // namespace einsim
