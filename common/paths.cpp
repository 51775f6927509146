#include "common/paths.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include "common/error.h"
#include "common/toml_reader.h"

namespace einsim {
namespace fs = std::filesystem;

namespace {

// data_dir() is read by worker threads (sweeps); the cached value is written once under the
// mutex, and set_data_dir() is meant for a program's start. Function-local, so a fallback
// registered during another file's static initialisation (paths.h) finds it constructed.
struct State {
  std::mutex mutex;
  std::optional<fs::path> dir;
  fs::path fallback;
};
State& state() {
  static State s;
  return s;
}

bool holds_configs(const fs::path& dir) {
  std::error_code ec;
  return !dir.empty() && fs::is_directory(dir / "configs", ec);
}

fs::path locate() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("EINSIM_DATA_DIR"); env != nullptr && *env != '\0') {
    // An explicit setting that is wrong is an error, not a reason to look elsewhere.
    if (holds_configs(env)) return fs::path(env);
    throw UserError(SourceLoc{"EINSIM_DATA_DIR"}, "'" + std::string(env) + "' has no configs/ folder (it should name einsim's share/einsim)");
  }
  const fs::path exe = executable_dir();
  if (!exe.empty())
    for (const fs::path& c : {exe.parent_path() / "share" / "einsim", exe.parent_path().parent_path() / "share" / "einsim"}) {
      if (holds_configs(c)) return c.lexically_normal();
      tried.push_back(c.lexically_normal().string());
    }
  const fs::path& fallback = state().fallback;
  if (holds_configs(fallback)) return fallback;
  if (!fallback.empty()) tried.push_back(fallback.string());
  std::string list;
  for (const std::string& t : tried) list += (list.empty() ? "" : ", ") + t;
  throw UserError(SourceLoc{"einsim"}, "cannot find einsim's presets and data (looked in " + (list.empty() ? std::string("no folder") : list) +
                                           "); set EINSIM_DATA_DIR to the installed share/einsim folder");
}

}  // namespace

fs::path executable_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

const fs::path& data_dir() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (!s.dir) s.dir = locate();
  return *s.dir;
}

void set_data_dir(const fs::path& dir) {
  if (!holds_configs(dir)) throw UserError(SourceLoc{dir.string()}, "not an einsim data folder (no configs/ inside)");
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.dir = dir;
}

void register_data_dir_fallback(const fs::path& dir) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.fallback = dir;
}

std::vector<std::string> preset_names(const std::string& kind) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const char* k : kPresetKinds) {
    if (!kind.empty() && kind != k) continue;
    for (fs::directory_iterator it(config_path(k), ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".toml") names.push_back(it->path().stem().string());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> closest_presets(const std::string& name, const std::string& kind, size_t n) {
  return closest_names(name, preset_names(kind), n);
}

bool is_bare_name(const std::string& s) {
  return !s.empty() && s.find('/') == std::string::npos && !s.ends_with(".toml") && !s.ends_with(".json");
}

void throw_unknown_preset(const std::string& name, const std::string& kind, const std::string& what) {
  std::string list;
  for (const std::string& c : closest_presets(name, kind)) list += (list.empty() ? "" : ", ") + c;
  const std::string shown = name.size() > 80 ? name.substr(0, 80) + "..." : name;
  throw UserError(SourceLoc{shown}, fmt::format("no such file, and no shipped {} of that name (closest: {}; `einsim list` shows them all)", what, list));
}

std::string preset_file(const std::string& file_or_preset, const std::string& kind, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(file_or_preset, ec)) return file_or_preset;
  const std::filesystem::path preset = std::filesystem::path(config_path(kind)) / (file_or_preset + ".toml");
  if (std::filesystem::is_regular_file(preset, ec)) return preset.string();
  if (is_bare_name(file_or_preset)) throw_unknown_preset(file_or_preset, kind, what);
  return file_or_preset;
}

std::string config_path(const std::string& sub) { return (data_dir() / "configs" / sub).string(); }
std::string data_path(const std::string& sub) { return (data_dir() / "data" / sub).string(); }

}  // namespace einsim
