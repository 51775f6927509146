#pragma once
// A small text table that renders aligned (for terminals) or as CSV.
#include <string>
#include <vector>

namespace einsim {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  /// Columns padded to their widest cell; numbers right-aligned.
  std::string aligned() const;
  /// RFC 4180 CSV.
  std::string csv() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// One CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

/// "1.23e+12" style helpers for reports.
std::string fmt_count(double v);   ///< 12.3G, 456M, 789k, 12
std::string fmt_bytes(double v);   ///< 1.50 GiB, 256 KiB, 12 B

}  // namespace einsim
