#pragma once
// Runs the einsim command line in-process, as a test's CLI calls do.
#include <sstream>
#include <string>
#include <vector>

#include "sim/cli/cli.h"

namespace einsim::test {

struct CliRun {
  int code;
  std::string out, err;
};

/// `einsim ARGS...`: the exit code and what it printed.
inline CliRun run_einsim(std::vector<std::string> args) {
  args.insert(args.begin(), "einsim");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  const int code = run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

}  // namespace einsim::test
