// The extension behind the Python package `einsim` (python/einsim/__init__.py, docs/PYTHON.md):
// the command line run in-process, its output and errors returned as strings, with the GIL
// released while it works. Calls are serialised: the command line's state (the SystemC kernel
// of `simulate`, the data folder) is the process's.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/paths.h"
#include "sim/cli/cli.h"

namespace py = pybind11;

namespace {
std::mutex& cli_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

PYBIND11_MODULE(_einsim, m) {
  m.doc() = "einsim's command line, in-process (use the einsim package, not this module)";
  m.attr("__version__") = EINSIM_VERSION;
  m.def(
      "cli",
      [](const std::vector<std::string>& args) {
        std::vector<const char*> argv = {"einsim"};
        for (const std::string& a : args) argv.push_back(a.c_str());
        std::ostringstream out, err;
        int code = 0;
        {
          py::gil_scoped_release release;
          std::lock_guard lock(cli_mutex());
          code = einsim::run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
        }
        return py::make_tuple(code, out.str(), err.str());
      },
      py::arg("args"), "Runs `einsim ARGS...`; returns (exit code, standard output, standard error).");
  m.def(
      "set_data_dir",
      [](const std::string& dir) {
        try {
          einsim::set_data_dir(dir);
        } catch (const einsim::UserError& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("dir"), "Where einsim's presets and data live (share/einsim).");
  m.def("data_dir", [] {
    try {
      return einsim::data_dir().string();
    } catch (const einsim::UserError& e) {
      throw py::value_error(e.what());
    }
  });
}
