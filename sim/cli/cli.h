#pragma once
#include <iosfwd>

namespace einsim {

/// Runs the einsim command line. Returns the exit code: 0 ok, 1 user error, 2 internal error.
int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace einsim
