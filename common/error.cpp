#include "common/error.h"

#include <fmt/format.h>

namespace einsim {

std::string SourceLoc::str() const {
  if (file.empty()) return "<input>";
  if (line <= 0) return file;
  if (col <= 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, col);
}

SourceLoc SourceLoc::shifted(int offset) const {
  SourceLoc l = *this;
  if (l.col > 0) l.col += offset;
  return l;
}

UserError::UserError(SourceLoc loc, const std::string& message)
    : std::runtime_error(fmt::format("{}: error: {}", loc.str(), message)),
      loc_(std::move(loc)),
      message_(message) {}

}  // namespace einsim
