#include <catch2/catch.hpp>

#include "common/units.h"

using namespace einsim;

namespace {
Quantity q(const char* s) {
  std::string err;
  auto v = parse_quantity(s, &err);
  INFO(s << ": " << err);
  REQUIRE(v.has_value());
  return *v;
}
std::string fails(const char* s) {
  std::string err;
  auto v = parse_quantity(s, &err);
  REQUIRE_FALSE(v.has_value());
  return err;
}
}  // namespace

TEST_CASE("sizes in bytes and bits, decimal and binary prefixes", "[units]") {
  CHECK(q("80 GiB").value == Approx(80.0 * 1073741824.0));
  CHECK(q("80 GiB").dim == Dim::Bytes);
  CHECK(q("40 MB").value == Approx(40e6));
  CHECK(q("16 KiB").value == Approx(16384));
  CHECK(q("1 TB").value == Approx(1e12));
  CHECK(q("2 TiB").value == Approx(2.0 * 1099511627776.0));
  CHECK(q("1 kB").value == Approx(1000));
  CHECK(q("8 b").value == Approx(1));
  CHECK(q("512 Kib").value == Approx(512.0 * 1024 / 8));
  CHECK(q("1 Gb").value == Approx(1e9 / 8));
  CHECK(q("64 B").value == Approx(64));
}

TEST_CASE("bandwidths", "[units]") {
  CHECK(q("3.35 TB/s").value == Approx(3.35e12));
  CHECK(q("3.35 TB/s").dim == Dim::Bandwidth);
  CHECK(q("400 Gb/s").value == Approx(50e9));
  CHECK(q("400 GiB/s").value == Approx(400.0 * 1073741824.0));
  CHECK(q("1 GB/h").value == Approx(1e9 / 3600));
}

TEST_CASE("frequency, time, energy, power, op rate", "[units]") {
  CHECK(q("1.83 GHz").value == Approx(1.83e9));
  CHECK(q("1.83 GHz").dim == Dim::Frequency);
  CHECK(q("940 MHz").value == Approx(940e6));
  CHECK(q("5 ps").value == Approx(5e-12));
  CHECK(q("2 us").value == Approx(2e-6));
  CHECK(q("2 \xC2\xB5s").value == Approx(2e-6));
  CHECK(q("3 ms").value == Approx(3e-3));
  CHECK(q("5 s").value == Approx(5));
  CHECK(q("2 min").value == Approx(120));
  CHECK(q("1 h").value == Approx(3600));
  CHECK(q("1 h").dim == Dim::Time);
  CHECK(q("17.16 pJ").value == Approx(17.16e-12));
  CHECK(q("17.16 pJ").dim == Dim::Energy);
  CHECK(q("1 kWh").value == Approx(3.6e6));
  CHECK(q("3.9 pJ/bit").value == Approx(3.9e-12 * 8));
  CHECK(q("3.9 pJ/bit").dim == Dim::EnergyPerByte);
  CHECK(q("2 pJ/B").value == Approx(2e-12));
  CHECK(q("700 W").value == Approx(700));
  CHECK(q("700 W").dim == Dim::Power);
  CHECK(q("10 kW").value == Approx(1e4));
  CHECK(q("250 mW").value == Approx(0.25));
  CHECK(q("989.4 TFLOP/s").value == Approx(989.4e12));
  CHECK(q("312 TFLOPS").value == Approx(312e12));
  CHECK(q("312 TFLOPS").dim == Dim::OpRate);
}

TEST_CASE("money and plain counts", "[units]") {
  CHECK(q("$11.06/h").value == Approx(11.06 / 3600));
  CHECK(q("$11.06/h").dim == Dim::MoneyRate);
  CHECK(q("$25000").value == Approx(25000));
  CHECK(q("$25000").dim == Dim::Money);
  CHECK(q("42").dim == Dim::Count);
  CHECK(q("1e3").value == Approx(1000));
}

TEST_CASE("bad quantities say what is wrong", "[units][errors]") {
  CHECK_THAT(fails("3.35 TB/ms"), Catch::Contains("after '/'"));
  CHECK_THAT(fails("80 GiBs"), Catch::Contains("unknown unit 'GiBs'"));
  CHECK_THAT(fails("fast"), Catch::Contains("cannot read a number"));
  CHECK_THAT(fails("$x"), Catch::Contains("after '$'"));
  CHECK_THAT(fails("$5/week"), Catch::Contains("unknown price unit"));
  CHECK_THAT(fails("3 FLOP"), Catch::Contains("needs a rate"));
  CHECK_THAT(fails("3 W/s"), Catch::Contains("not a unit"));
  CHECK_THAT(fails(""), Catch::Contains("cannot read a number"));
}

TEST_CASE("quantities format with readable prefixes", "[units]") {
  CHECK(format_quantity(3.35e12, Dim::Bandwidth) == "3.35 TB/s");
  CHECK(format_quantity(17.16e-12, Dim::Energy) == "17.16 pJ");
  CHECK(format_quantity(11.06 / 3600, Dim::MoneyRate) == "$11.06/h");
}

TEST_CASE("quantities that overflow or underflow in SI units are refused", "[units][errors]") {
  std::string why;
  CHECK_FALSE(parse_quantity("1e308 TB/s", &why));
  CHECK_THAT(why, Catch::Contains("\"1e308 TB/s\" overflows or underflows in SI units"));
  CHECK_FALSE(parse_quantity("1e-320 TB/s", &why));
  CHECK_FALSE(parse_quantity("1e300 GB", &why));
  CHECK(parse_quantity("1e-300 TB/s", &why)->value == Approx(1e-288));
  CHECK(parse_quantity("0 W", &why)->value == 0);
}

TEST_CASE("token counts: suffixes, and multiples that overflow are refused", "[units][errors]") {
  CHECK(parse_token_count("4096") == 4096);
  CHECK(parse_token_count("32k") == 32768);
  CHECK(parse_token_count("32K") == 32768);
  CHECK(parse_token_count("1M") == 1048576);
  CHECK_FALSE(parse_token_count("lots"));
  CHECK_FALSE(parse_token_count("4 K"));
  // A fuzz finding: 1286636666666666666 x 1024 overflowed.
  CHECK_FALSE(parse_token_count("1286636666666666666K"));
  CHECK_FALSE(parse_token_count("9000000000000M"));
  CHECK(parse_token_count("8796093022207K") == int64_t{8796093022207} * 1024);
}
