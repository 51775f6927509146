#include "workloads/cascade_loader.h"

#include <fmt/format.h>

#include "common/paths.h"

namespace einsim {

CascadeSpec read_cascade(const ConfigTable& t) {
  CascadeSpec s;
  s.loc = t.loc();
  s.name = t.opt_name("name").value_or("");
  if (s.name.empty()) throw UserError(t.loc(), "missing required key 'cascade.name' (a string)");
  if (auto d = t.opt_choice("dtype", dtype_names())) s.dtype = *parse_dtype(*d);

  const ConfigTable ranks = t.get_table("ranks");
  for (const std::string& k : ranks.keys()) {
    RankDecl r;
    r.name = k;
    const toml::node* n = ranks.node(k);
    r.loc = ranks.loc(k);
    if (auto i = n->value_exact<int64_t>()) {
      r.extent_text = std::to_string(*i);
    } else if (n->is_string()) {
      r.extent_text = *n->value<std::string>();
    } else {
      throw UserError(r.loc, fmt::format("rank '{}' needs an extent: an integer or an expression such as \"kv_len / M0\"", k));
    }
    // +1: the string's text starts after its opening quote.
    r.extent = parse_extent_expr(r.extent_text, n->is_string() ? r.loc.shifted(1) : r.loc);
    if (n->is_string()) r.loc = r.loc.shifted(1);
    s.ranks.push_back(std::move(r));
  }
  if (s.ranks.empty()) throw UserError(ranks.loc(), "[cascade.ranks] declares no rank");

  if (auto params = t.opt_table("params")) {
    for (const std::string& k : params->keys()) {
      s.params[k] = params->get_int(k, 1);
      s.param_locs[k] = params->loc(k);
    }
  }
  if (auto parts = t.opt_table("partitions")) {
    for (const std::string& k : parts->keys()) {
      PartitionDecl p;
      p.parent = k;
      p.parts = parts->get_string_array(k);
      p.loc = parts->loc(k);
      s.partitions.push_back(std::move(p));
    }
  }
  if (auto tensors = t.opt_table("tensors")) {
    for (const std::string& k : tensors->keys()) {
      const ConfigTable d = tensors->get_table(k);
      TensorDecl td;
      td.name = k;
      td.loc = tensors->loc(k);
      if (d.contains("ranks")) {
        td.ranks = d.get_string_array("ranks");
        td.has_ranks = true;
      }
      if (auto dt = d.opt_choice("dtype", dtype_names())) td.dtype = parse_dtype(*dt);
      if (auto r = d.opt_choice("role", {"auto", "weight", "expert_weight", "kv_cache", "input", "index"}))
        td.role = *parse_role(*r);
      s.tensors.push_back(std::move(td));
    }
  }

  if (t.contains("inputs")) {
    s.inputs = t.get_string_array("inputs");
    s.inputs_loc = t.loc("inputs");
  }
  const toml::node* es = t.node("einsums");
  if (!es) throw UserError(t.loc(), "missing required key 'cascade.einsums' (an array of Einsum strings)");
  const toml::array* arr = es->as_array();
  if (!arr) throw UserError(t.loc("einsums"), "'cascade.einsums' must be an array of strings");
  if (arr->empty()) throw UserError(t.loc("einsums"), "'cascade.einsums' is empty");
  for (const toml::node& n : *arr) {
    const SourceLoc at = loc_of(n, t.loc("einsums"));
    if (!n.is_string()) throw UserError(at, "'cascade.einsums' must contain only strings");
    s.einsums.push_back(parse_einsum(*n.value<std::string>(), at.shifted(1)));
    s.einsums.back().loc = at.shifted(1);
  }
  return s;
}

Cascade load_cascade(const std::string& file, const std::vector<std::string>& overrides) {
  auto doc = ConfigDoc::load(file, overrides, config_path("workloads"));
  CascadeSpec spec = read_cascade(doc->root().get_table("cascade"));
  doc->finish();
  return bind_cascade(spec);
}

}  // namespace einsim
