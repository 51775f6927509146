#include "common/units.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

namespace einsim {
namespace {

struct Prefix {
  std::string_view name;
  double factor;
};
// SI prefixes (BIPM SI Brochure, 9th ed., Table 7) and IEC 80000-13 binary prefixes.
constexpr std::array<Prefix, 6> kSmall = {{{"p", 1e-12}, {"n", 1e-9}, {"u", 1e-6}, {"\xC2\xB5", 1e-6}, {"m", 1e-3}, {"", 1}}};
constexpr std::array<Prefix, 6> kLarge = {{{"", 1}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}}};
constexpr std::array<Prefix, 5> kBinary = {{{"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}, {"Pi", 1125899906842624.0}}};

enum class Base { Byte, Bit, Second, Minute, Hour, Hertz, Joule, WattHour, Watt, Flop, Op, Flops };

struct BaseUnit {
  std::string_view symbol;
  Base base;
};
// Longest symbols first so that suffix matching is unambiguous.
constexpr std::array<BaseUnit, 12> kBases = {{{"FLOPS", Base::Flops}, {"FLOP", Base::Flop}, {"bit", Base::Bit},
                                              {"min", Base::Minute}, {"Hz", Base::Hertz}, {"Wh", Base::WattHour},
                                              {"op", Base::Op}, {"B", Base::Byte}, {"b", Base::Bit},
                                              {"s", Base::Second}, {"h", Base::Hour}, {"J", Base::Joule}}};

template <size_t N>
std::optional<double> find_prefix(const std::array<Prefix, N>& table, std::string_view p) {
  for (const auto& e : table)
    if (e.name == p) return e.factor;
  return std::nullopt;
}

// Value of one prefixed unit in SI, and its base; nullopt when unknown.
std::optional<std::pair<double, Base>> parse_unit(std::string_view u) {
  if (u == "W") return std::pair{1.0, Base::Watt};
  for (const auto& b : kBases) {
    if (u.size() < b.symbol.size() || u.substr(u.size() - b.symbol.size()) != b.symbol) continue;
    std::string_view p = u.substr(0, u.size() - b.symbol.size());
    std::optional<double> f;
    switch (b.base) {
      case Base::Byte:
      case Base::Bit:
        f = find_prefix(kLarge, p);
        if (!f) f = find_prefix(kBinary, p);
        if (f && b.base == Base::Bit) *f /= 8.0;
        break;
      case Base::Second:
        f = find_prefix(kSmall, p);
        break;
      case Base::Minute:
        if (p.empty()) f = 60.0;
        break;
      case Base::Hour:
        if (p.empty()) f = 3600.0;
        break;
      case Base::Hertz:
      case Base::Flop:
      case Base::Op:
      case Base::Flops:
        f = find_prefix(kLarge, p);
        break;
      case Base::Joule:
        f = find_prefix(kSmall, p);
        if (!f) f = find_prefix(kLarge, p);
        break;
      case Base::WattHour:
        f = find_prefix(kLarge, p);
        if (f) *f *= 3600.0;
        break;
      case Base::Watt:
        break;
    }
    if (f) return std::pair{*f, b.base};
  }
  // Watts with a prefix ("kW", "mW"): handled separately because "W" is also the tail of nothing else.
  if (u.size() >= 2 && u.back() == 'W') {
    auto f = find_prefix(kSmall, u.substr(0, u.size() - 1));
    if (!f) f = find_prefix(kLarge, u.substr(0, u.size() - 1));
    if (f) return std::pair{*f, Base::Watt};
  }
  return std::nullopt;
}

double unprefixed(Base b) {
  switch (b) {
    case Base::Bit: return 1.0 / 8.0;
    case Base::Minute: return 60.0;
    case Base::Hour:
    case Base::WattHour: return 3600.0;  // an hour; a watt-hour is 3600 J
    default: return 1.0;
  }
}

bool is_data(Base b) { return b == Base::Byte || b == Base::Bit; }
bool is_time(Base b) { return b == Base::Second || b == Base::Minute || b == Base::Hour; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses the leading number; returns the rest.
std::optional<double> parse_number(std::string_view& s) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || !std::isfinite(v)) return std::nullopt;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  return v;
}

}  // namespace

std::string_view dim_name(Dim d) {
  switch (d) {
    case Dim::Count: return "count";
    case Dim::Bytes: return "size";
    case Dim::Bandwidth: return "bandwidth";
    case Dim::Frequency: return "frequency";
    case Dim::Time: return "time";
    case Dim::Energy: return "energy";
    case Dim::EnergyPerByte: return "energy per data";
    case Dim::Power: return "power";
    case Dim::OpRate: return "operation rate";
    case Dim::Money: return "price";
    case Dim::MoneyRate: return "price rate";
  }
  return "?";
}

std::string dim_description(Dim d) {
  switch (d) {
    case Dim::Count: return "a plain number";
    case Dim::Bytes: return "a size (e.g. \"80 GiB\", \"40 MB\", \"512 Kib\")";
    case Dim::Bandwidth: return "a bandwidth (e.g. \"3.35 TB/s\", \"400 Gb/s\", \"400 GiB/s\")";
    case Dim::Frequency: return "a frequency (e.g. \"1.83 GHz\")";
    case Dim::Time: return "a time (e.g. \"2 us\", \"5 s\", \"1 h\")";
    case Dim::Energy: return "an energy (e.g. \"17.16 pJ\")";
    case Dim::EnergyPerByte: return "an energy per data (e.g. \"3.9 pJ/bit\", \"2 pJ/B\")";
    case Dim::Power: return "a power (e.g. \"700 W\", \"10 kW\")";
    case Dim::OpRate: return "an operation rate (e.g. \"989.4 TFLOP/s\", \"312 TFLOPS\")";
    case Dim::Money: return "a price (e.g. \"$25000\")";
    case Dim::MoneyRate: return "a price rate (e.g. \"$11.06/h\")";
  }
  return "?";
}

namespace {
std::optional<Quantity> parse_quantity_unchecked(std::string_view text, std::string* error);
}  // namespace

std::optional<Quantity> parse_quantity(std::string_view text, std::string* error) {
  std::optional<Quantity> q = parse_quantity_unchecked(text, error);
  // A value that overflows or underflows once in SI units would make every result infinite
  // or zero ("1e308 TB/s", "1e-320 TB/s"): out of range, said here rather than later.
  if (q && (!std::isfinite(q->value) || (q->value != 0 && std::fabs(q->value) < std::numeric_limits<double>::min()))) {
    if (error) *error = fmt::format("\"{}\" overflows or underflows in SI units (einsim computes in doubles)", trim(text));
    return std::nullopt;
  }
  return q;
}

namespace {
std::optional<Quantity> parse_quantity_unchecked(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Quantity> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  std::string_view s = trim(text);
  if (!s.empty() && s.front() == '$') {
    s.remove_prefix(1);
    auto v = parse_number(s);
    if (!v) return fail(fmt::format("cannot read a number after '$' in \"{}\"", text));
    s = trim(s);
    if (s.empty()) return Quantity{*v, Dim::Money};
    // Rates: per second, hour, day, and year of 365 days.
    if (s == "/s") return Quantity{*v, Dim::MoneyRate};
    if (s == "/h") return Quantity{*v / 3600.0, Dim::MoneyRate};
    if (s == "/day") return Quantity{*v / 86400.0, Dim::MoneyRate};
    if (s == "/yr") return Quantity{*v / (365.0 * 86400.0), Dim::MoneyRate};
    return fail(fmt::format("unknown price unit '{}' in \"{}\" (use $N, $N/s, $N/h, $N/day or $N/yr)", s, text));
  }
  auto v = parse_number(s);
  if (!v) return fail(fmt::format("cannot read a number at the start of \"{}\"", text));
  s = trim(s);
  if (s.empty()) return Quantity{*v, Dim::Count};

  std::string_view num = s, den;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    num = trim(s.substr(0, slash));
    den = trim(s.substr(slash + 1));
  }
  auto n = parse_unit(num);
  if (!n) return fail(fmt::format("unknown unit '{}' in \"{}\"", num, text));
  const double x = *v * n->first;
  const Base nb = n->second;
  if (den.empty()) {
    if (is_data(nb)) return Quantity{x, Dim::Bytes};
    if (is_time(nb)) return Quantity{x, Dim::Time};
    if (nb == Base::Hertz) return Quantity{x, Dim::Frequency};
    if (nb == Base::Joule || nb == Base::WattHour) return Quantity{x, Dim::Energy};
    if (nb == Base::Watt) return Quantity{x, Dim::Power};
    if (nb == Base::Flops) return Quantity{x, Dim::OpRate};
    return fail(fmt::format("'{}' needs a rate: write \"{}/s\"", num, text));
  }
  auto d = parse_unit(den);
  // Denominators carry no prefix ("/s", "/h", "/bit", "/B"), so "GB/ms" is rejected, not guessed.
  if (!d || d->first != unprefixed(d->second))
    return fail(fmt::format("unknown unit '{}' after '/' in \"{}\"", den, text));
  const Base db = d->second;
  if (is_data(nb) && is_time(db)) return Quantity{x / d->first, Dim::Bandwidth};
  if ((nb == Base::Flop || nb == Base::Op) && is_time(db)) return Quantity{x / d->first, Dim::OpRate};
  if ((nb == Base::Joule) && is_data(db)) return Quantity{x / d->first, Dim::EnergyPerByte};
  return fail(fmt::format("'{}/{}' is not a unit einsim knows in \"{}\"", num, den, text));
}
}  // namespace

std::string format_quantity(double value, Dim d) {
  std::string_view unit;
  switch (d) {
    case Dim::Count: return fmt::format("{:.4g}", value);
    case Dim::Money: return fmt::format("${:.2f}", value);
    case Dim::MoneyRate: return fmt::format("${:.4g}/h", value * 3600.0);
    case Dim::Bytes: unit = "B"; break;
    case Dim::Bandwidth: unit = "B/s"; break;
    case Dim::Frequency: unit = "Hz"; break;
    case Dim::Time: unit = "s"; break;
    case Dim::Energy: unit = "J"; break;
    case Dim::EnergyPerByte: unit = "J/B"; break;
    case Dim::Power: unit = "W"; break;
    case Dim::OpRate: unit = "FLOP/s"; break;
  }
  static constexpr std::array<std::pair<double, std::string_view>, 10> kScale = {
      {{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}, {1e-3, "m"}, {1e-6, "u"}, {1e-9, "n"}, {1e-12, "p"}}};
  const double a = std::fabs(value);
  if (a == 0) return fmt::format("0 {}", unit);
  for (const auto& [f, p] : kScale)
    if (a >= f * 0.9995) return fmt::format("{:.4g} {}{}", value / f, p, unit);
  return fmt::format("{:.4g} {}", value, unit);
}

std::optional<int64_t> parse_token_count(std::string_view text) {
  const std::string s(text);
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string suffix = s.substr(used);
  // A count whose multiple does not fit 64 bits is no token count (a fuzz finding).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if ((suffix == "K" || suffix == "k") && (v > kMax / 1024 || v < -kMax / 1024)) return std::nullopt;
  constexpr int64_t kMi = int64_t{1024} * 1024;
  if (suffix == "M" && (v > kMax / kMi || v < -kMax / kMi)) return std::nullopt;
  if (suffix == "K" || suffix == "k") return v * 1024;
  if (suffix == "M") return v * 1024 * 1024;
  if (!suffix.empty()) return std::nullopt;
  return v;
}

}  // namespace einsim
