#include "arch/runtime.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <mutex>

#include "arch/arch.h"
#include "common/paths.h"
#include "common/toml_reader.h"

namespace einsim {

std::string_view kernel_kind_name(KernelKind k) {
  static constexpr std::array<std::string_view, kKernelKinds> n = {"gemm",           "gemm_fp8", "gemm_w8a16", "gemm_w4a16", "grouped_gemm",
                                                                            "attention_prefill", "attention_decode", "rowwise", "elementwise"};
  return n[static_cast<size_t>(k)];
}

namespace {

Runtime read_runtime(const ConfigTable& t) {
  Runtime r;
  r.loc = t.loc();
  r.name = t.opt_name("name").value_or("runtime");
  r.kernel_launch = t.get_quantity("kernel_launch", Dim::Time);
  const std::string g = t.opt_choice("graphs", {"none", "decode", "all"}).value_or("none");
  r.graphs = g == "all" ? GraphMode::All : g == "decode" ? GraphMode::Decode : GraphMode::None;
  if (auto n = t.opt_quantity("graph_node", Dim::Time)) r.graph_node = *n;
  else if (r.graphs != GraphMode::None)
    throw UserError(t.loc("graphs"), fmt::format("graphs = \"{}\" needs 'graph_node' (the cost of a kernel replayed from a graph)", g));
  r.iteration = t.opt_quantity("iteration", Dim::Time).value_or(0);
  r.request = t.opt_quantity("request", Dim::Time).value_or(0);
  r.collective_base = t.opt_number("collective_base", 0, 10).value_or(1);
  if (auto e = t.opt_table("efficiency")) {
    std::vector<std::string> kinds;
    for (size_t i = 0; i < kKernelKinds; ++i) kinds.emplace_back(kernel_kind_name(static_cast<KernelKind>(i)));
    for (const std::string& k : e->keys()) {
      const auto it = std::find(kinds.begin(), kinds.end(), k);
      if (it == kinds.end()) throw UserError(e->key_loc(k), fmt::format("unknown kernel kind '{}' (known: {})", k, fmt::join(kinds, ", ")));
      const double v = e->get_number(k, 0, 1);
      if (v <= 0) throw UserError(e->loc(k), fmt::format("'{}' must be above 0", k));
      r.efficiency[static_cast<size_t>(it - kinds.begin())] = v;
    }
  }
  return r;
}

}  // namespace

Runtime load_runtime(const std::string& file_or_preset, const std::vector<std::string>& overrides) {
  const std::string file = preset_file(file_or_preset, "runtimes", "runtime");
  auto doc = ConfigDoc::load(file, overrides, config_path("runtimes"));
  Runtime r = read_runtime(doc->root().get_table("runtime"));
  doc->finish();
  return r;
}

std::string runtime_key(const Runtime& r) {
  std::string k = fmt::format("{} (kernel_launch {:.6g} s, graph_node {:.6g} s, graphs {}, iteration {:.6g} s, request {:.6g} s, collective_base {:.6g}",
                              r.name, r.kernel_launch, r.graph_node, static_cast<int>(r.graphs), r.iteration, r.request, r.collective_base);
  for (size_t i = 0; i < kKernelKinds; ++i) k += fmt::format(", {} {:.6g}", kernel_kind_name(static_cast<KernelKind>(i)), r.efficiency[i]);
  return k + ")";
}

ArchSpec with_runtime(const ArchSpec& a, const Runtime& rt, PhaseKind phase) {
  ArchSpec x = a;
  if (x.gpu) {
    x.gpu->launch_overhead = rt.per_kernel(phase);
    x.gpu->kind_efficiency = rt.efficiency;
  }
  return x;
}

const Runtime& default_runtime() {
  static std::once_flag once;
  static Runtime r;
  std::call_once(once, [] { r = load_runtime(kDefaultRuntime); });
  return r;
}

}  // namespace einsim
