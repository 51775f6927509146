#include "sim/report/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>

namespace einsim {
namespace {
bool numeric(const std::string& s) {
  return !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || (s[0] == '-' && s.size() > 1) || (s[0] == '+' && s.size() > 1 && (std::isdigit(static_cast<unsigned char>(s[1])) || s[1] == '.')));
}
}  // namespace

std::string TextTable::aligned() const {
  std::vector<size_t> w(header_.size(), 0);
  for (size_t i = 0; i < header_.size(); ++i) w[i] = header_[i].size();
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& r, bool head) {
    std::string l;
    for (size_t i = 0; i < w.size(); ++i) {
      const std::string& c = i < r.size() ? r[i] : std::string();
      const bool right = !head && numeric(c);
      l += right ? fmt::format("{:>{}}", c, w[i]) : fmt::format("{:<{}}", c, w[i]);
      if (i + 1 < w.size()) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header_, true);
  std::string rule;
  for (size_t i = 0; i < w.size(); ++i) rule += std::string(w[i], '-') + (i + 1 < w.size() ? "  " : "");
  out += rule + "\n";
  for (const auto& r : rows_) line(r, false);
  return out;
}

namespace {

// A table cell as printed ("25.66 ms", "1.50 GiB", "+2.6%", "12.3G") read back as a number in
// a base unit (s, bytes, W, J, Hz, B/s, ...) for CSV.
struct UnitValue {
  double value = 0;
  std::string unit;  ///< "" for a plain number
};

std::optional<UnitValue> parse_cell(const std::string& c) {
  size_t i = 0;
  if (i < c.size() && (c[i] == '+' || c[i] == '-')) ++i;
  const size_t digits = i;
  while (i < c.size() && (std::isdigit(static_cast<unsigned char>(c[i])) || c[i] == '.')) ++i;
  if (i == digits) return std::nullopt;
  if (i + 1 < c.size() && (c[i] == 'e' || c[i] == 'E') && (std::isdigit(static_cast<unsigned char>(c[i + 1])) || c[i + 1] == '-' || c[i + 1] == '+')) {
    i += 2;
    while (i < c.size() && std::isdigit(static_cast<unsigned char>(c[i]))) ++i;
  }
  double v = 0;
  try {
    v = std::stod(c.substr(0, i));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string u = c.substr(i);
  while (!u.empty() && u.front() == ' ') u.erase(0, 1);
  if (u.empty()) return UnitValue{v, ""};
  if (u == "%") return UnitValue{v, "%"};
  if (u == "x") return UnitValue{v, "x"};
  // fmt_count's suffixes, written without a space: plain counts.
  static const std::map<std::string, double> counts = {{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}};
  if (c.size() > i && c[i] != ' ')
    if (auto it = counts.find(u); it != counts.end()) return UnitValue{v * it->second, ""};
  std::string num = u, den;
  if (const size_t slash = u.find('/'); slash != std::string::npos) num = u.substr(0, slash), den = u.substr(slash + 1);
  static const std::map<std::string, std::pair<double, std::string>> units = {
      {"ns", {1e-9, "s"}},   {"us", {1e-6, "s"}},   {"\u00b5s", {1e-6, "s"}}, {"ms", {1e-3, "s"}},    {"s", {1, "s"}},       {"min", {60, "s"}},
      {"h", {3600, "s"}},    {"B", {1, "bytes"}},  {"KiB", {1024.0, "bytes"}}, {"MiB", {1048576.0, "bytes"}}, {"GiB", {1073741824.0, "bytes"}},
      {"TiB", {1099511627776.0, "bytes"}},         {"KB", {1e3, "bytes"}},    {"kB", {1e3, "bytes"}}, {"MB", {1e6, "bytes"}},
      {"GB", {1e9, "bytes"}}, {"TB", {1e12, "bytes"}}, {"Gb", {1e9 / 8, "bytes"}}, {"mW", {1e-3, "W"}}, {"W", {1, "W"}}, {"kW", {1e3, "W"}},
      {"MW", {1e6, "W"}},    {"pJ", {1e-12, "J"}}, {"nJ", {1e-9, "J"}},    {"uJ", {1e-6, "J"}},    {"mJ", {1e-3, "J"}},   {"J", {1, "J"}},
      {"kJ", {1e3, "J"}},    {"MJ", {1e6, "J"}},   {"kWh", {3.6e6, "J"}},  {"Hz", {1, "Hz"}},      {"kHz", {1e3, "Hz"}},  {"MHz", {1e6, "Hz"}},
      {"GHz", {1e9, "Hz"}},  {"FLOP", {1, "FLOP"}}, {"MFLOP", {1e6, "FLOP"}}, {"GFLOP", {1e9, "FLOP"}}, {"TFLOP", {1e12, "FLOP"}}, {"PFLOP", {1e15, "FLOP"}}, {"tokens", {1, "tokens"}},
      {"tok", {1, "tokens"}}, {"requests", {1, "requests"}}, {"req", {1, "requests"}}};
  double scale = 1;
  std::string base;
  if (auto it = units.find(num); it != units.end()) scale = it->second.first, base = it->second.second;
  else if (num.empty() && !den.empty()) base = "";
  else return std::nullopt;
  if (den.empty()) return UnitValue{v * scale, base};
  // A rate: the denominator in its base unit too (ms -> s).
  if (auto it = units.find(den); it != units.end()) return UnitValue{v * scale / it->second.first, (base.empty() ? "1" : base) + "/" + it->second.second};
  if (den.empty() || !std::isalpha(static_cast<unsigned char>(den[0])) || den.find_first_of(" ()") != std::string::npos) return std::nullopt;
  return UnitValue{v * scale, (base.empty() ? "1" : base) + "/" + den};
}

std::string number(double v) { return fmt::format("{:.6g}", v); }

}  // namespace

std::string TextTable::csv() const {
  // Numbers only: a column whose cells carry one unit moves the unit to its name ("mean [s]");
  // a row whose remaining cells share a unit (a table of metrics) names it in a last "unit"
  // column. Text cells (names, bottlenecks) stay as they are.
  const size_t cols = header_.size();
  std::vector<std::vector<std::optional<UnitValue>>> parsed(rows_.size());
  std::vector<std::set<std::string>> col_units(cols);
  for (size_t r = 0; r < rows_.size(); ++r)
    for (size_t i = 0; i < rows_[r].size(); ++i) {
      parsed[r].push_back(parse_cell(rows_[r][i]));
      if (parsed[r][i] && !parsed[r][i]->unit.empty() && i < cols) col_units[i].insert(parsed[r][i]->unit);
    }
  std::vector<std::string> header = header_;
  std::vector<bool> mixed(cols, false);
  bool any_mixed = false;
  for (size_t i = 0; i < cols; ++i) {
    if (col_units[i].size() == 1) header[i] += " [" + *col_units[i].begin() + "]";
    mixed[i] = col_units[i].size() > 1;
    any_mixed |= mixed[i];
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) out += (i ? "," : "") + csv_field(r[i]);
    out += "\n";
  };
  if (any_mixed) header.push_back("unit");
  line(header);
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::vector<std::string> cells = rows_[r];
    std::set<std::string> row_units;
    for (size_t i = 0; i < cells.size(); ++i)
      if (parsed[r][i]) {
        cells[i] = number(parsed[r][i]->value);
        if (i < cols && mixed[i] && !parsed[r][i]->unit.empty()) row_units.insert(parsed[r][i]->unit);
      }
    if (any_mixed) cells.push_back(row_units.size() == 1 ? *row_units.begin() : "");
    line(cells);
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

std::string fmt_count(double v) {
  const double a = std::fabs(v);
  if (a >= 1e15) return fmt::format("{:.3g}P", v / 1e15);
  if (a >= 1e12) return fmt::format("{:.3g}T", v / 1e12);
  if (a >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:.6g}", v);
}

std::string fmt_bytes(double v) {
  const double a = std::fabs(v);
  if (a >= 1099511627776.0) return fmt::format("{:.2f} TiB", v / 1099511627776.0);
  if (a >= 1073741824.0) return fmt::format("{:.2f} GiB", v / 1073741824.0);
  if (a >= 1048576.0) return fmt::format("{:.2f} MiB", v / 1048576.0);
  if (a >= 1024.0) return fmt::format("{:.2f} KiB", v / 1024.0);
  return fmt::format("{:.6g} B", v);
}

}  // namespace einsim
