// Fuzzes the Einsum parser, the binder, the analyses and the reference executor: each input
// line is one Einsum; every index variable gets a small rank, every tensor read but not
// written is an input. Anything but a UserError is a finding.
#include <cctype>
#include <cstdint>
#include <set>
#include <string>

#include "workloads/analysis.h"
#include "workloads/cascade.h"
#include "workloads/executor.h"

using namespace einsim;

namespace {
void collect(const IndexExpr& ie, std::set<std::string>& vars, std::set<std::string>& reads) {
  if (ie.kind == IndexExpr::Kind::Var) vars.insert(ie.name);
  if (ie.kind == IndexExpr::Kind::Gather) reads.insert(ie.name);
  for (const auto& k : ie.kids) collect(k, vars, reads);
}
void collect(const Expr& e, std::set<std::string>& vars, std::set<std::string>& reads) {
  if (e.kind == Expr::Kind::Ref) {
    reads.insert(e.ref.name);
    for (const auto& i : e.ref.idx) collect(i, vars, reads);
  }
  for (const auto& a : e.args) collect(a, vars, reads);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Large inputs too (long chains and deep nesting overflowed the stack once); the reference
  // executor runs on small ones only, where it stays fast.
  if (size > (1 << 20)) return 0;
  const bool execute_it = size <= 4096;
  const std::string text(reinterpret_cast<const char*>(data), size);
  CascadeSpec spec;
  spec.name = "fuzz";
  std::set<std::string> vars, reads, written;
  try {
    size_t start = 0, line = 1;
    while (start <= text.size() && spec.einsums.size() < 16) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string l = text.substr(start, end - start);
      if (!l.empty()) {
        spec.einsums.push_back(parse_einsum(l, SourceLoc{"fuzz", static_cast<int>(line), 1}));
        const EinsumAst& e = spec.einsums.back();
        written.insert(e.lhs.name);
        for (const auto& i : e.lhs.idx) collect(i, vars, reads);
        for (const auto& v : e.lhs.init_var)
          if (!v.empty()) vars.insert(v);
        collect(e.rhs, vars, reads);
      }
      start = end + 1;
      ++line;
    }
    if (spec.einsums.empty()) return 0;
    std::set<std::string> ranks;
    for (const auto& v : vars) {
      std::string r = v;
      r[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r[0])));
      if (!ranks.insert(r).second) continue;
      RankDecl d;
      d.name = r;
      d.extent.value = 2 + static_cast<int64_t>(r.size() % 2);
      d.extent_text = std::to_string(d.extent.value);
      spec.ranks.push_back(d);
    }
    for (const auto& r : reads)
      if (!written.count(r) && !ranks.count(r)) spec.inputs.push_back(r);
    const Cascade c = bind_cascade(spec);
    analyze(c);
    for (const Rank& r : c.ranks) pass_analysis(c, r.name);
    if (execute_it) execute(c, random_inputs(c, 1, 1 << 16), 1 << 16);
  } catch (const UserError&) {
  }
  return 0;
}
