#include "common/toml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/paths.h"

namespace einsim {
namespace fs = std::filesystem;

namespace {

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
  }
}

SourceLoc loc_of_region(const toml::source_region& r, const SourceLoc& fallback) {
  if (!r.path || r.begin.line == 0) return fallback;
  return SourceLoc{*r.path, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

std::string join_path(const std::string& a, std::string_view b) {
  return a.empty() ? std::string(b) : fmt::format("{}.{}", a, b);
}

}  // namespace

SourceLoc loc_of(const toml::node& n, const SourceLoc& fallback) { return loc_of_region(n.source(), fallback); }

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> closest_names(std::string_view name, std::vector<std::string> candidates, size_t n) {
  name = name.substr(0, 256);  // a huge name costs its length times every candidate's
  std::vector<std::pair<size_t, std::string>> scored;
  scored.reserve(candidates.size());
  for (std::string& c : candidates) scored.emplace_back(edit_distance(name, c), std::move(c));
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < n; ++i) out.push_back(std::move(scored[i].second));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Recording the keys loaders ask for

namespace {
thread_local ConfigKeyRecorder* t_recorder = nullptr;

// Only the document the recorder met first since it was armed: not the presets it loads in
// turn (a scenario's architecture, a sweep's models).
void note(const ConfigDoc* doc, const std::string& path, std::string_view key, KeyShape shape) {
  if (!t_recorder) return;
  if (!t_recorder->doc) t_recorder->doc = doc;
  if (t_recorder->doc == doc) t_recorder->note(path, key, std::move(shape));
}
KeyShape shape(std::string type) { return KeyShape{std::move(type), {}, {}, {}, {}}; }
// A key of a plain type: nothing is built unless a recorder is on.
void note(const ConfigDoc* doc, const std::string& path, std::string_view key, const char* type) {
  if (t_recorder && type) note(doc, path, key, shape(type));
}
}  // namespace

RecordKeys::RecordKeys(ConfigKeyRecorder& r) : previous_(t_recorder) { t_recorder = &r; }
RecordKeys::~RecordKeys() { t_recorder = previous_; }

std::string ConfigKeyRecorder::normal(const std::string& path) const {
  std::string out;
  size_t at = 0;
  while (!path.empty()) {
    const size_t dot = path.find('.', at);
    const size_t end = dot == std::string::npos ? path.size() : dot;
    const bool entry = maps.count(out) > 0;  // an entry of a table of names
    if (!out.empty()) out += '.';
    if (entry) out += '*';
    else out.append(path, at, end - at);
    if (dot == std::string::npos) break;
    at = dot + 1;
  }
  return out;
}

void ConfigKeyRecorder::note(const std::string& path, std::string_view key, KeyShape shape) {
  const std::string p = normal(path);
  auto& shapes = keys[p][maps.count(p) ? std::string("*") : std::string(key)];
  for (KeyShape& k : shapes) {
    if (k.type != shape.type) continue;
    for (std::string& c : shape.choices)
      if (std::find(k.choices.begin(), k.choices.end(), c) == k.choices.end()) k.choices.push_back(std::move(c));
    if (k.min && (!shape.min || *shape.min < *k.min)) k.min = shape.min;
    if (k.max && (!shape.max || *shape.max > *k.max)) k.max = shape.max;
    return;
  }
  shapes.push_back(std::move(shape));
}

// ---------------------------------------------------------------------------------------------
// ConfigTable

ConfigTable::ConfigTable(const ConfigDoc* doc, std::vector<const toml::table*> layers,
                         std::vector<SourceLoc> fallbacks, std::string path)
    : doc_(doc), layers_(std::move(layers)), fallbacks_(std::move(fallbacks)), path_(std::move(path)) {}

std::string ConfigTable::full(std::string_view key) const { return join_path(path_, key); }

SourceLoc ConfigTable::loc() const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    SourceLoc l = loc_of(*layers_[i], {});
    if (!l.file.empty()) return l;
  }
  return fallbacks_.empty() ? SourceLoc{} : fallbacks_.front();
}

SourceLoc ConfigTable::loc(std::string_view key) const {
  for (size_t i = 0; i < layers_.size(); ++i)
    if (const toml::node* n = layers_[i]->get(key)) return loc_of(*n, fallbacks_[i]);
  return loc();
}

SourceLoc ConfigTable::key_loc(std::string_view key) const {
  for (size_t i = 0; i < layers_.size(); ++i)
    for (const auto& [k, v] : *layers_[i])
      if (k == key) return k.source().path ? loc_of_region(k.source(), fallbacks_[i]) : loc_of(v, fallbacks_[i]);
  return loc();
}

bool ConfigTable::contains(std::string_view key) const {
  doc_->asked(path_, key);
  note(doc_, path_, key, "present");
  for (const auto* t : layers_)
    if (t->contains(key)) return true;
  return false;
}

std::vector<std::string> ConfigTable::keys() const {
  if (t_recorder && t_recorder->doc == doc_) t_recorder->maps.insert(t_recorder->normal(path_));
  std::vector<std::string> out;
  for (const auto* t : layers_)
    for (const auto& [k, v] : *t)
      if (std::find(out.begin(), out.end(), k.str()) == out.end()) out.emplace_back(k.str());
  return out;
}

const toml::node* ConfigTable::lookup(std::string_view key, SourceLoc* where) const {
  doc_->asked(path_, key);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (const toml::node* n = layers_[i]->get(key)) {
      doc_->mark(full(key));
      if (where) *where = loc_of(*n, fallbacks_[i]);
      return n;
    }
  }
  return nullptr;
}

const toml::node* ConfigTable::node(std::string_view key) const {
  note(doc_, path_, key, "any");
  return lookup(key, nullptr);
}

void ConfigTable::type_error(std::string_view key, const toml::node& n, std::string_view expected) const {
  throw UserError(loc(key), fmt::format("'{}' must be {}, found {}", full(key), expected, type_name(n)));
}

std::optional<int64_t> ConfigTable::opt_int(std::string_view key, int64_t min, int64_t max) const {
  if (t_recorder) {
    KeyShape k = shape("integer");
    if (min != std::numeric_limits<int64_t>::min()) k.min = static_cast<double>(min);
    if (max != std::numeric_limits<int64_t>::max()) k.max = static_cast<double>(max);
    note(doc_, path_, key, std::move(k));
  }
  SourceLoc where;
  const toml::node* n = lookup(key, &where);
  if (!n) return std::nullopt;
  auto v = n->value_exact<int64_t>();
  if (!v) type_error(key, *n, "an integer");
  if (*v < min || *v > max) {
    std::string range = max == std::numeric_limits<int64_t>::max() ? fmt::format(">= {}", min)
                                                                    : fmt::format("in [{}, {}]", min, max);
    throw UserError(where, fmt::format("'{}' = {} is out of range: it must be {}", full(key), *v, range));
  }
  return v;
}

int64_t ConfigTable::get_int(std::string_view key, int64_t min, int64_t max) const {
  if (auto v = opt_int(key, min, max)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' (an integer)", full(key)));
}

std::optional<double> ConfigTable::opt_number(std::string_view key, double min, double max) const {
  if (t_recorder) {
    KeyShape k = shape("number");
    if (std::isfinite(min)) k.min = min;
    if (std::isfinite(max)) k.max = max;
    note(doc_, path_, key, std::move(k));
  }
  SourceLoc where;
  const toml::node* n = lookup(key, &where);
  if (!n) return std::nullopt;
  if (!n->is_number()) type_error(key, *n, "a number");
  double v = n->value<double>().value();
  if (!std::isfinite(v) || v < min || v > max)
    throw UserError(where, fmt::format("'{}' = {} is out of range: it must be in [{}, {}]", full(key), v, min, max));
  return v;
}

double ConfigTable::get_number(std::string_view key, double min, double max) const {
  if (auto v = opt_number(key, min, max)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' (a number)", full(key)));
}

std::optional<std::string> ConfigTable::opt_string(std::string_view key) const {
  return opt_string_as(key, "string");
}

std::optional<std::string> ConfigTable::opt_string_as(std::string_view key, const char* type) const {
  note(doc_, path_, key, type);  // null: the caller recorded it
  const toml::node* n = lookup(key, nullptr);
  if (!n) return std::nullopt;
  if (!n->is_string()) type_error(key, *n, "a string");
  return n->value<std::string>();
}

std::optional<std::string> ConfigTable::opt_name(std::string_view key) const {
  auto v = opt_string(key);
  if (!v) return v;
  const bool control = std::any_of(v->begin(), v->end(), [](char c) { return static_cast<unsigned char>(c) < 32; });
  if (v->empty() || v->size() > 256 || control)
    throw UserError(loc(key), fmt::format("'{}' must be a name of 1 to 256 characters without control characters (found {} characters)", full(key), v->size()));
  return v;
}

std::string ConfigTable::get_string(std::string_view key) const {
  if (auto v = opt_string(key)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' (a string)", full(key)));
}

std::optional<std::string> ConfigTable::opt_choice(std::string_view key, const std::vector<std::string>& choices) const {
  if (t_recorder) {
    KeyShape k = shape("choice");
    k.choices = choices;
    note(doc_, path_, key, std::move(k));
  }
  auto v = opt_string_as(key, nullptr);
  if (!v) return v;
  if (std::find(choices.begin(), choices.end(), *v) == choices.end())
    throw UserError(loc(key), fmt::format("'{}' = \"{}\" is not one of: {}", full(key), *v, fmt::join(choices, ", ")));
  return v;
}

std::string ConfigTable::get_choice(std::string_view key, const std::vector<std::string>& choices) const {
  if (auto v = opt_choice(key, choices)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' (one of: {})", full(key), fmt::join(choices, ", ")));
}

std::optional<bool> ConfigTable::opt_bool(std::string_view key) const {
  note(doc_, path_, key, "boolean");
  const toml::node* n = lookup(key, nullptr);
  if (!n) return std::nullopt;
  if (!n->is_boolean()) type_error(key, *n, "a boolean (true or false)");
  return n->value<bool>();
}

bool ConfigTable::get_bool(std::string_view key) const {
  if (auto v = opt_bool(key)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' (a boolean)", full(key)));
}

std::optional<double> ConfigTable::opt_quantity(std::string_view key, Dim dim, bool allow_negative) const {
  if (t_recorder && dim != Dim::Count) {
    KeyShape k = shape("quantity");
    k.dim = dim_description(dim);
    note(doc_, path_, key, std::move(k));
  }
  SourceLoc where;
  const toml::node* n = lookup(key, &where);
  if (!n) return std::nullopt;
  if (dim == Dim::Count) return opt_number(key, allow_negative ? -std::numeric_limits<double>::infinity() : 0.0);
  if (n->is_number())
    throw UserError(where, fmt::format("'{}' needs a unit: expected {}", full(key), dim_description(dim)));
  if (!n->is_string()) type_error(key, *n, dim_description(dim));
  std::string err;
  auto q = parse_quantity(*n->value<std::string>(), &err);
  if (!q) throw UserError(where, fmt::format("'{}': {}; expected {}", full(key), err, dim_description(dim)));
  if (q->dim != dim)
    throw UserError(where, fmt::format("'{}' is {} but must be {}", full(key),
                                       q->dim == Dim::Count ? std::string("a plain number") : std::string(dim_name(q->dim)),
                                       dim_description(dim)));
  if (!allow_negative && q->value < 0)
    throw UserError(where, fmt::format("'{}' must not be negative", full(key)));
  return q->value;
}

double ConfigTable::get_quantity(std::string_view key, Dim dim, bool allow_negative) const {
  if (auto v = opt_quantity(key, dim, allow_negative)) return *v;
  throw UserError(loc(), fmt::format("missing required key '{}' ({})", full(key), dim_description(dim)));
}

std::vector<std::string> ConfigTable::get_string_array(std::string_view key) const {
  note(doc_, path_, key, "strings");
  SourceLoc where;
  const toml::node* n = lookup(key, &where);
  if (!n) throw UserError(loc(), fmt::format("missing required key '{}' (an array of strings)", full(key)));
  const toml::array* a = n->as_array();
  if (!a) type_error(key, *n, "an array of strings");
  std::vector<std::string> out;
  for (const auto& e : *a) {
    if (!e.is_string())
      throw UserError(loc_of(e, where), fmt::format("'{}' must contain only strings, found {}", full(key), type_name(e)));
    out.push_back(*e.value<std::string>());
  }
  return out;
}

std::optional<ConfigTable> ConfigTable::opt_table(std::string_view key) const {
  doc_->asked(path_, key);
  note(doc_, path_, key, "table");
  std::vector<const toml::table*> layers;
  std::vector<SourceLoc> fallbacks;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const toml::node* n = layers_[i]->get(key);
    if (!n) continue;
    if (!n->is_table()) type_error(key, *n, "a table");
    layers.push_back(n->as_table());
    fallbacks.push_back(fallbacks_[i]);
  }
  if (layers.empty()) return std::nullopt;
  doc_->mark(full(key));
  return ConfigTable(doc_, std::move(layers), std::move(fallbacks), full(key));
}

ConfigTable ConfigTable::get_table(std::string_view key) const {
  if (auto t = opt_table(key)) return *t;
  throw UserError(loc(), fmt::format("missing required table [{}]", full(key)));
}

// ---------------------------------------------------------------------------------------------
// ConfigDoc

namespace {
constexpr int kMaxInheritDepth = 16;

toml::table parse_toml_file(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw UserError(SourceLoc{file}, "cannot open file (not found or not a regular file)");
  try {
    return toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    throw UserError(loc_of_region(e.source(), SourceLoc{file}), std::string(e.description()));
  }
}
}  // namespace

void ConfigDoc::add_file_layer(const std::string& file, std::set<std::string>& seen, const std::string& preset_dir,
                               int depth) {
  std::error_code ec;
  std::string canon = fs::weakly_canonical(file, ec).string();
  tables_.push_back(parse_toml_file(file));
  fallbacks_.push_back(SourceLoc{file});
  const toml::table& t = tables_.back();
  const SourceLoc here{file, 1, 1};
  const toml::node* version = t.get("version");
  if (!version) throw UserError(here, "missing 'version = 1' (every einsim config file starts with it)");
  if (version->value_exact<int64_t>() != 1)
    throw UserError(loc_of(*version, here), "unsupported 'version': this einsim reads version = 1");
  used_.insert("version");
  const toml::node* inh = t.get("inherits");
  if (!inh) return;
  used_.insert("inherits");
  const SourceLoc iloc = loc_of(*inh, here);
  if (!inh->is_string()) throw UserError(iloc, "'inherits' must be a string naming a preset or a file");
  std::string name = *inh->value<std::string>();
  if (depth >= kMaxInheritDepth) throw UserError(iloc, "'inherits' chain is too deep (a cycle?)");
  std::vector<fs::path> candidates;
  const fs::path dir = fs::path(file).parent_path();
  if (name.ends_with(".toml")) {
    candidates.push_back(dir / name);
  } else {
    candidates.push_back(dir / (name + ".toml"));
    if (!preset_dir.empty()) {
      candidates.push_back(fs::path(preset_dir) / (name + ".toml"));
    } else {
      // No kind given (a reader that only asks what a file holds): every shipped kind.
      for (const char* kind : kPresetKinds) candidates.push_back(fs::path(config_path(kind)) / (name + ".toml"));
    }
  }
  for (const auto& c : candidates) {
    if (!fs::is_regular_file(c, ec)) continue;
    std::string cc = fs::weakly_canonical(c, ec).string();
    if (seen.count(cc) || cc == canon) throw UserError(iloc, fmt::format("'inherits' forms a cycle through {}", c.string()));
    seen.insert(cc);
    add_file_layer(c.string(), seen, preset_dir, depth + 1);
    return;
  }
  throw UserError(iloc, fmt::format("cannot find preset '{}' (looked in {} and {})", name, dir.empty() ? "." : dir.string(),
                                    preset_dir.empty() ? config_path() : preset_dir));
}

void ConfigDoc::add_overrides(const std::vector<std::string>& overrides) {
  // Later overrides win: each becomes its own layer, pushed in front.
  for (const std::string& o : overrides) {
    const std::string name = "--set " + o;
    const SourceLoc here{name};
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UserError(here, "an override must look like dotted.key=value");
    const std::string path = o.substr(0, eq);
    const std::string value = o.substr(eq + 1);
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
      size_t dot = path.find('.', start);
      parts.push_back(path.substr(start, dot - start));
      if (parts.back().empty()) throw UserError(here, fmt::format("empty key in override path '{}'", path));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    // The file's format version and its parent are what the file is, not settings.
    if (parts.size() == 1 && (parts[0] == "version" || parts[0] == "inherits"))
      throw UserError(here, fmt::format("'{}' belongs to the file and cannot be overridden", parts[0]));
    toml::table layer;
    toml::table* cur = &layer;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      cur = cur->insert(parts[i], toml::table{}).first->second.as_table();
    // The value is read as TOML ("42", "true", "\"x\"", "[1, 2]"); anything else is a string,
    // so that `--set hbm.bandwidth=3.35 TB/s` needs no quoting.
    bool parsed = false;
    try {
      toml::table v = toml::parse("v = " + value, name);
      if (toml::node* n = v.get("v")) {
        // A copy drops the source region, so errors point at the `--set` text itself.
        cur->insert(parts.back(), *n);
        parsed = true;
      }
    } catch (const toml::parse_error&) {
    }
    if (!parsed) cur->insert(parts.back(), value);
    tables_.push_front(std::move(layer));
    fallbacks_.insert(fallbacks_.begin(), here);
  }
}

std::unique_ptr<ConfigDoc> ConfigDoc::load(const std::string& file, const std::vector<std::string>& overrides,
                                           const std::string& preset_dir) {
  std::unique_ptr<ConfigDoc> d(new ConfigDoc());
  d->file_ = file;
  std::set<std::string> seen;
  d->add_file_layer(file, seen, preset_dir, 0);
  d->add_overrides(overrides);
  return d;
}

std::unique_ptr<ConfigDoc> ConfigDoc::parse(std::string_view text, const std::string& name,
                                            const std::vector<std::string>& overrides) {
  std::unique_ptr<ConfigDoc> d(new ConfigDoc());
  d->file_ = name;
  try {
    d->tables_.push_back(toml::parse(text, name));
  } catch (const toml::parse_error& e) {
    throw UserError(loc_of_region(e.source(), SourceLoc{name}), std::string(e.description()));
  }
  d->fallbacks_.push_back(SourceLoc{name});
  const toml::node* version = d->tables_.back().get("version");
  if (!version) throw UserError(SourceLoc{name, 1, 1}, "missing 'version = 1' (every einsim config file starts with it)");
  if (version->value_exact<int64_t>() != 1)
    throw UserError(loc_of(*version, SourceLoc{name}), "unsupported 'version': this einsim reads version = 1");
  d->used_.insert("version");
  if (d->tables_.back().contains("inherits"))
    throw UserError(loc_of(*d->tables_.back().get("inherits"), SourceLoc{name}), "'inherits' needs a file on disk");
  d->add_overrides(overrides);
  return d;
}

ConfigTable ConfigDoc::root() const {
  std::vector<const toml::table*> layers;
  for (const auto& t : tables_) layers.push_back(&t);
  return ConfigTable(this, std::move(layers), fallbacks_, "");
}

void ConfigDoc::check_unused(const toml::table& t, const std::string& path, const SourceLoc& fallback) const {
  for (const auto& [k, v] : t) {
    const std::string full = join_path(path, k.str());
    if (used_.count(full)) {
      if (const toml::table* sub = v.as_table()) check_unused(*sub, full, fallback);
      continue;
    }
    std::string hint;
    if (auto it = asked_.find(path); it != asked_.end()) {
      size_t best = 3;
      for (const auto& a : it->second) {
        size_t d = edit_distance(a, k.str());
        if (d < best) best = d, hint = fmt::format(" (did you mean '{}'?)", a);
      }
    }
    SourceLoc l = k.source().path ? loc_of_region(k.source(), fallback) : loc_of(v, fallback);
    throw UserError(l, fmt::format("unknown key '{}' in {}{}", k.str(), path.empty() ? "the top level" : "[" + path + "]", hint));
  }
}

void ConfigDoc::finish() const {
  for (size_t i = 0; i < tables_.size(); ++i) check_unused(tables_[i], "", fallbacks_[i]);
}

}  // namespace einsim
