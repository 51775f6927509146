#pragma once
// Located errors, printed like a compiler's: `file:line:col: error: message`.
#include <stdexcept>
#include <string>

namespace einsim {

/// A position in a config file, an Einsum string or a command-line argument (1-based).
struct SourceLoc {
  std::string file;  ///< path, or a pseudo-file such as `--set` for command-line overrides
  int line = 0;      ///< 0 when unknown
  int col = 0;       ///< 0 when unknown

  /// "file:line:col" (omitting unknown parts).
  std::string str() const;
  /// This location moved `offset` columns to the right (for positions inside a string value).
  SourceLoc shifted(int offset) const;
};

/// A user error: bad config, bad expression, bad option. The CLI prints it and exits 1.
class UserError : public std::runtime_error {
 public:
  UserError(SourceLoc loc, const std::string& message);
  const SourceLoc& loc() const { return loc_; }
  /// The message without the location prefix.
  const std::string& message() const { return message_; }

 private:
  SourceLoc loc_;
  std::string message_;
};

/// A broken invariant inside einsim itself. The CLI prints it and exits 2.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace einsim
