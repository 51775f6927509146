#pragma once
// Where einsim finds what it ships: presets and configs (`configs/`), the vendored data sets
// (`data/`) and the project's own measurements (`measured/`). Nothing is compiled in: the
// folder is found at run time, so a build tree, an installed copy and a moved copy all work.
#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace einsim {

/// The folder holding `configs/`, `data/` and `measured/`, first of:
///  1. the folder given to set_data_dir();
///  2. `$EINSIM_DATA_DIR`;
///  3. `share/einsim` beside the running executable's folder or one above it
///     (`PREFIX/bin/einsim` -> `PREFIX/share/einsim`; in a build tree CMake links
///     `BUILD/share/einsim` to the sources);
///  4. a fallback registered by a program's build (register_data_dir_fallback(), which the
///     exported CMake package sets to its install prefix).
/// Throws UserError naming what was tried when none holds `configs/`.
const std::filesystem::path& data_dir();

/// Use `dir` from now on (a program embedding einsim; tests). Throws UserError when `dir` has
/// no `configs/` folder.
void set_data_dir(const std::filesystem::path& dir);

/// The last resort of data_dir(); ignored when it has no `configs/` folder.
void register_data_dir_fallback(const std::filesystem::path& dir);

/// The folders of configs/ that hold presets, in the order a bare name is looked up.
inline constexpr std::array<const char*, 7> kPresetKinds = {"models", "arch", "workloads", "analyses", "scenarios", "sweeps", "runtimes"};

/// data_dir() / "configs" / sub, as a string.
std::string config_path(const std::string& sub = "");
/// data_dir() / "data" / sub.
std::string data_path(const std::string& sub);

/// The shipped preset names in configs/`kind` (every kind when empty), sorted.
std::vector<std::string> preset_names(const std::string& kind = "");
/// Up to `n` shipped preset names closest to `name` (edit distance, then order), for errors
/// about a name that is neither a file nor a preset.
std::vector<std::string> closest_presets(const std::string& name, const std::string& kind = "", size_t n = 3);
/// Whether `s` reads as a preset name rather than a path (no '/', no .toml or .json ending).
bool is_bare_name(const std::string& s);
/// The error for `name`, neither a file nor a shipped preset: names the closest presets.
[[noreturn]] void throw_unknown_preset(const std::string& name, const std::string& kind, const std::string& what);
/// The file `file_or_preset` names: itself when it is a file, else the shipped preset
/// configs/`kind`/NAME.toml; a bare name that is neither is throw_unknown_preset's error (a
/// path that is not a file is left to the reader, which says it cannot open it).
std::string preset_file(const std::string& file_or_preset, const std::string& kind, const std::string& what);

/// The folder of the running executable ("" when the system cannot tell).
std::filesystem::path executable_dir();

}  // namespace einsim

// A program built against the installed CMake package (find_package(einsim)) gets the
// package's share/einsim as the last fallback, so it runs from anywhere without setup.
#ifdef EINSIM_PACKAGE_DATA_DIR
namespace einsim::detail {
inline const bool package_data_dir_registered = (register_data_dir_fallback(EINSIM_PACKAGE_DATA_DIR), true);
}  // namespace einsim::detail
#endif
