#pragma once
// Quantities with units, parsed once into SI doubles (bytes count as the SI unit of data).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace einsim {

/// Physical dimension of a configured quantity. Values are held in these SI units.
enum class Dim {
  Count,          ///< plain number
  Bytes,          ///< B (bits are converted: 1 b = 1/8 B)
  Bandwidth,      ///< B/s
  Frequency,      ///< Hz
  Time,           ///< s
  Energy,         ///< J
  EnergyPerByte,  ///< J/B
  Power,          ///< W
  OpRate,         ///< operations/s (FLOP/s)
  Money,          ///< $
  MoneyRate,      ///< $/s
};

/// A value and its dimension, in SI units.
struct Quantity {
  double value = 0;
  Dim dim = Dim::Count;
};

/// "a bandwidth (e.g. \"3.35 TB/s\")": used in error messages.
std::string dim_description(Dim d);
/// Short name of a dimension ("bandwidth").
std::string_view dim_name(Dim d);

/// Parses "3.35 TB/s", "80 GiB", "17.16 pJ", "3.9 pJ/bit", "$11.06/h", "1.83 GHz", ...
/// Returns std::nullopt and fills `error` (without location) on failure.
std::optional<Quantity> parse_quantity(std::string_view text, std::string* error);

/// Formats an SI value with a readable prefix: format_quantity(3.35e12, Dim::Bandwidth) = "3.35 TB/s".
std::string format_quantity(double value, Dim d);

/// A token count as architects write it: "4096", "32K" or "32k" (x 1024), "1M" (x 1024^2).
/// nullopt when the text is not one.
std::optional<int64_t> parse_token_count(std::string_view text);

}  // namespace einsim
