#pragma once
// Strict TOML reading: every key must be read by the loader (unknown keys are errors), every
// value is type- and range-checked, and every error is located (`file:line:col: error: ...`).
// A document is a stack of layers: `--set` overrides, then the file, then the presets it
// `inherits` from, so that source locations always point at the file that set a value.
#include <toml++/toml.h>

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/units.h"

namespace einsim {

/// Location of a toml++ node (its file, line, column).
SourceLoc loc_of(const toml::node& n, const SourceLoc& fallback = {});

class ConfigDoc;

/// What a loader accepts for one key, as it asked for it (ConfigKeyRecorder).
struct KeyShape {
  /// integer, number, string, choice, boolean, quantity, strings, table; any (the loader reads
  /// the raw node and checks it itself); present (only asked whether it is there)
  std::string type;
  std::vector<std::string> choices;         ///< choice
  std::optional<double> min, max;           ///< integer, number (finite bounds only)
  std::string dim;                          ///< quantity: what it measures ("a bandwidth, e.g. ...")
};

/// Records, while a RecordKeys is alive on this thread, every key the loaders ask for and what
/// they accept: the source of the config files' JSON Schemas (`einsim schema config`). Tables
/// whose keys the file chooses (an architecture's tiers, arrays, links) are read by iterating
/// their keys; their entries are recorded under "*".
struct ConfigKeyRecorder {
  std::map<std::string, std::map<std::string, std::vector<KeyShape>>> keys;  ///< by table path ("" the root)
  std::set<std::string> maps;  ///< table paths whose keys are names the file chooses
  const void* doc = nullptr;   ///< the document recorded (the first met since the last arm())
  /// Records the next document met: call before loading each file.
  void arm() { doc = nullptr; }
  /// `path` with every entry of a map as "*".
  std::string normal(const std::string& path) const;
  void note(const std::string& path, std::string_view key, KeyShape shape);
};

/// Records into `r` on this thread while alive.
class RecordKeys {
 public:
  explicit RecordKeys(ConfigKeyRecorder& r);
  ~RecordKeys();
  RecordKeys(const RecordKeys&) = delete;
  RecordKeys& operator=(const RecordKeys&) = delete;

 private:
  ConfigKeyRecorder* previous_;
};

/// A view of one table across all layers of a document. Reading a key marks it as known.
class ConfigTable {
 public:
  /// Dotted path of this table ("" for the root).
  const std::string& path() const { return path_; }
  /// Location of the table itself (its header in the highest layer that defines it).
  SourceLoc loc() const;
  /// Location of `key` (highest layer), or of the table when absent.
  SourceLoc loc(std::string_view key) const;
  /// Location of the key itself (not its value), for errors about the key's name.
  SourceLoc key_loc(std::string_view key) const;
  bool contains(std::string_view key) const;
  /// Every key present in any layer, in file order of the highest layer first. Marks none.
  std::vector<std::string> keys() const;

  int64_t get_int(std::string_view key, int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  std::optional<int64_t> opt_int(std::string_view key, int64_t min = std::numeric_limits<int64_t>::min(),
                                 int64_t max = std::numeric_limits<int64_t>::max()) const;
  /// An integer or float.
  double get_number(std::string_view key, double min = -std::numeric_limits<double>::infinity(),
                    double max = std::numeric_limits<double>::infinity()) const;
  std::optional<double> opt_number(std::string_view key, double min = -std::numeric_limits<double>::infinity(),
                                   double max = std::numeric_limits<double>::infinity()) const;
  /// A name (a model's, an architecture's, a cascade's): 1 to 256 characters, no control
  /// characters. Names are copied into every report row; a 20 MB one cost seconds and GB.
  std::optional<std::string> opt_name(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;
  /// A string that must be one of `choices`.
  std::string get_choice(std::string_view key, const std::vector<std::string>& choices) const;
  std::optional<std::string> opt_choice(std::string_view key, const std::vector<std::string>& choices) const;
  bool get_bool(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  /// A quantity with a unit, in SI. Negative values are errors unless `allow_negative`.
  double get_quantity(std::string_view key, Dim dim, bool allow_negative = false) const;
  std::optional<double> opt_quantity(std::string_view key, Dim dim, bool allow_negative = false) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  /// Raw node in the highest layer (marks the key as known), or nullptr.
  const toml::node* node(std::string_view key) const;
  ConfigTable get_table(std::string_view key) const;
  std::optional<ConfigTable> opt_table(std::string_view key) const;

 private:
  friend class ConfigDoc;
  ConfigTable(const ConfigDoc* doc, std::vector<const toml::table*> layers, std::vector<SourceLoc> fallbacks,
              std::string path);
  const toml::node* lookup(std::string_view key, SourceLoc* where) const;
  /// opt_string, recorded as `type` (nullptr: not recorded here).
  std::optional<std::string> opt_string_as(std::string_view key, const char* type) const;
  [[noreturn]] void type_error(std::string_view key, const toml::node& n, std::string_view expected) const;
  std::string full(std::string_view key) const;

  const ConfigDoc* doc_;
  std::vector<const toml::table*> layers_;  // highest priority first
  std::vector<SourceLoc> fallbacks_;        // location of each layer's file
  std::string path_;
};

/// One config document: a file, its `inherits` chain and command-line overrides.
class ConfigDoc {
 public:
  /// Parses `file` (TOML), follows `inherits = "name"` (looked up beside the file, then in
  /// `preset_dir`), applies `overrides` ("dotted.key=value", highest priority) and checks
  /// `version = 1` in every file. Throws UserError with a location.
  static std::unique_ptr<ConfigDoc> load(const std::string& file, const std::vector<std::string>& overrides = {},
                                         const std::string& preset_dir = "");
  /// Parses TOML text held in memory (`name` is used in locations).
  static std::unique_ptr<ConfigDoc> parse(std::string_view text, const std::string& name,
                                          const std::vector<std::string>& overrides = {});

  ConfigTable root() const;
  /// Throws on the first key no loader read, with a "did you mean" hint when one is close.
  void finish() const;
  /// The file this document was loaded from.
  const std::string& file() const { return file_; }

 private:
  friend class ConfigTable;
  ConfigDoc() = default;
  void add_file_layer(const std::string& file, std::set<std::string>& seen, const std::string& preset_dir, int depth);
  void add_overrides(const std::vector<std::string>& overrides);
  void mark(const std::string& path) const { used_.insert(path); }
  void asked(const std::string& table, std::string_view key) const { asked_[table].insert(std::string(key)); }
  void check_unused(const toml::table& t, const std::string& path, const SourceLoc& fallback) const;

  std::string file_;
  std::deque<toml::table> tables_;  // owned layers, highest priority first after construction
  std::vector<SourceLoc> fallbacks_;
  mutable std::set<std::string> used_;
  mutable std::map<std::string, std::set<std::string>> asked_;
};

/// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);
/// Up to `n` of `candidates` closest to `name` (edit distance, then alphabetical), for errors.
std::vector<std::string> closest_names(std::string_view name, std::vector<std::string> candidates, size_t n);

}  // namespace einsim
