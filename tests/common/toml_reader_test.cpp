#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include "common/toml_reader.h"
#include "../workloads/helpers.h"

using namespace einsim;
using einsim::test::error_of;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fs::path("einsim-test-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

}  // namespace

TEST_CASE("values are read with types, ranges and units", "[config]") {
  auto doc = ConfigDoc::parse("version = 1\n[hbm]\ncapacity = \"80 GiB\"\nbandwidth = \"3.35 TB/s\"\nstacks = 5\n"
                              "name = \"hbm3\"\necc = true\nutil = 0.9\n",
                              "x.toml");
  const ConfigTable hbm = doc->root().get_table("hbm");
  CHECK(hbm.get_quantity("capacity", Dim::Bytes) == Approx(80.0 * 1073741824.0));
  CHECK(hbm.get_quantity("bandwidth", Dim::Bandwidth) == Approx(3.35e12));
  CHECK(hbm.get_int("stacks", 1, 8) == 5);
  CHECK(hbm.get_string("name") == "hbm3");
  CHECK(hbm.get_bool("ecc"));
  CHECK(hbm.get_number("util", 0, 1) == Approx(0.9));
  CHECK_FALSE(hbm.opt_int("missing").has_value());
  doc->finish();
}

TEST_CASE("unknown keys are located errors with a hint", "[config][errors]") {
  auto doc = ConfigDoc::parse("version = 1\n[hbm]\nbandwith = \"3.35 TB/s\"\n", "arch.toml");
  const ConfigTable hbm = doc->root().get_table("hbm");
  CHECK_FALSE(hbm.opt_quantity("bandwidth", Dim::Bandwidth).has_value());
  const std::string e = error_of([&] { doc->finish(); });
  CHECK(e == "arch.toml:3:1: error: unknown key 'bandwith' in [hbm] (did you mean 'bandwidth'?)");
}

TEST_CASE("unknown tables and top-level keys are errors", "[config][errors]") {
  auto doc = ConfigDoc::parse("version = 1\ncolour = 3\n", "a.toml");
  CHECK(error_of([&] { doc->finish(); }) == "a.toml:2:1: error: unknown key 'colour' in the top level");
}

TEST_CASE("wrong types, ranges and dimensions are located errors", "[config][errors]") {
  auto doc = ConfigDoc::parse("version = 1\n[t]\nn = \"four\"\nm = -3\nbw = \"80 GiB\"\nbare = 400\nf = 1.5\ns = 3\n"
                              "ch = \"fp12\"\narr = [1, 2]\nbad = \"4 parsecs\"\n",
                              "t.toml");
  const ConfigTable t = doc->root().get_table("t");
  CHECK(error_of([&] { t.get_int("n"); }) == "t.toml:3:5: error: 't.n' must be an integer, found a string");
  CHECK(error_of([&] { t.get_int("m", 0); }) == "t.toml:4:5: error: 't.m' = -3 is out of range: it must be >= 0");
  CHECK_THAT(error_of([&] { t.get_quantity("bw", Dim::Bandwidth); }),
             Catch::StartsWith("t.toml:5:6: error: 't.bw' is size but must be a bandwidth"));
  CHECK_THAT(error_of([&] { t.get_quantity("bare", Dim::Bandwidth); }),
             Catch::StartsWith("t.toml:6:8: error: 't.bare' needs a unit: expected a bandwidth"));
  CHECK_THAT(error_of([&] { t.get_int("f"); }), Catch::Contains("must be an integer, found a float"));
  CHECK_THAT(error_of([&] { t.get_string("s"); }), Catch::Contains("must be a string, found an integer"));
  CHECK_THAT(error_of([&] { t.get_choice("ch", {"fp16", "bf16"}); }), Catch::Contains("is not one of: fp16, bf16"));
  CHECK_THAT(error_of([&] { t.get_string_array("arr"); }), Catch::Contains("must contain only strings"));
  CHECK_THAT(error_of([&] { t.get_quantity("bad", Dim::Time); }), Catch::Contains("unknown unit 'parsecs'"));
  CHECK_THAT(error_of([&] { t.get_number("missing"); }), Catch::Contains("missing required key 't.missing'"));
  CHECK_THAT(error_of([&] { t.get_table("nope"); }), Catch::Contains("missing required table [t.nope]"));
  CHECK_THAT(error_of([&] { t.get_bool("s"); }), Catch::Contains("must be a boolean"));
  CHECK_THAT(error_of([&] { t.get_table("s"); }), Catch::Contains("must be a table"));
}

TEST_CASE("negative quantities are rejected unless allowed", "[config][errors]") {
  auto doc = ConfigDoc::parse("version = 1\nbw = \"-3 TB/s\"\n", "n.toml");
  CHECK_THAT(error_of([&] { doc->root().get_quantity("bw", Dim::Bandwidth); }), Catch::Contains("must not be negative"));
  CHECK(doc->root().get_quantity("bw", Dim::Bandwidth, true) == Approx(-3e12));
}

TEST_CASE("duplicate keys and syntax errors come from the TOML parser with locations", "[config][errors]") {
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\na = 1\na = 2\n", "d.toml"); }), Catch::StartsWith("d.toml:3:"));
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\n[t]\n[t]\n", "d.toml"); }), Catch::StartsWith("d.toml:3:"));
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\na = \n", "s.toml"); }), Catch::StartsWith("s.toml:2:"));
}

TEST_CASE("every file carries version = 1", "[config][errors]") {
  CHECK(error_of([] { ConfigDoc::parse("a = 1\n", "v.toml"); }) ==
        "v.toml:1:1: error: missing 'version = 1' (every einsim config file starts with it)");
  CHECK(error_of([] { ConfigDoc::parse("version = 2\n", "v.toml"); }) ==
        "v.toml:1:11: error: unsupported 'version': this einsim reads version = 1");
}

TEST_CASE("presets are inherited and overridden, with locations in the right file", "[config]") {
  TempDir d;
  d.write("base.toml", "version = 1\n[hw]\nclock = \"1 GHz\"\ncores = 4\n");
  const std::string child = d.write("child.toml", "version = 1\ninherits = \"base\"\n[hw]\ncores = 8\n");
  auto doc = ConfigDoc::load(child);
  const ConfigTable hw = doc->root().get_table("hw");
  CHECK(hw.get_int("cores") == 8);
  CHECK(hw.get_quantity("clock", Dim::Frequency) == Approx(1e9));
  CHECK(hw.loc("clock").file == (d.path / "base.toml").string());
  CHECK(hw.loc("cores").file == child);
  doc->finish();

  d.write("typo.toml", "version = 1\n[hw]\nclokc = \"1 GHz\"\n");
  const std::string bad = d.write("bad.toml", "version = 1\ninherits = \"typo\"\n");
  auto doc2 = ConfigDoc::load(bad);
  doc2->root().get_table("hw").opt_quantity("clock", Dim::Frequency);
  CHECK(error_of([&] { doc2->finish(); }) ==
        (d.path / "typo.toml").string() + ":3:1: error: unknown key 'clokc' in [hw] (did you mean 'clock'?)");
}

TEST_CASE("inherits errors: missing preset, cycles, missing version in a preset", "[config][errors]") {
  TempDir d;
  const std::string a = d.write("a.toml", "version = 1\ninherits = \"nowhere\"\n");
  CHECK_THAT(error_of([&] { ConfigDoc::load(a); }), Catch::Contains("a.toml:2:12: error: cannot find preset 'nowhere'"));
  d.write("x.toml", "version = 1\ninherits = \"y\"\n");
  const std::string y = d.write("y.toml", "version = 1\ninherits = \"x\"\n");
  CHECK_THAT(error_of([&] { ConfigDoc::load(y); }), Catch::Contains("forms a cycle"));
  d.write("nov.toml", "[hw]\n");
  const std::string z = d.write("z.toml", "version = 1\ninherits = \"nov\"\n");
  CHECK_THAT(error_of([&] { ConfigDoc::load(z); }), Catch::Contains("nov.toml:1:1: error: missing 'version = 1'"));
  CHECK_THAT(error_of([&] { ConfigDoc::load((d.path / "absent.toml").string()); }), Catch::Contains("cannot open file"));
}

TEST_CASE("command-line overrides are checked exactly like file values", "[config]") {
  auto doc = ConfigDoc::parse("version = 1\n[hw]\ncores = 4\nclock = \"1 GHz\"\n", "o.toml",
                              {"hw.cores=16", "hw.clock=2 GHz"});
  const ConfigTable hw = doc->root().get_table("hw");
  CHECK(hw.get_int("cores") == 16);
  CHECK(hw.get_quantity("clock", Dim::Frequency) == Approx(2e9));
  CHECK(hw.loc("cores").file == "--set hw.cores=16");
  doc->finish();

  auto typo = ConfigDoc::parse("version = 1\n[hw]\ncores = 4\n", "o.toml", {"hw.coers=16"});
  typo->root().get_table("hw").get_int("cores");
  CHECK_THAT(error_of([&] { typo->finish(); }), Catch::Contains("--set hw.coers=16") && Catch::Contains("unknown key 'coers' in [hw] (did you mean 'cores'?)"));

  auto wrong = ConfigDoc::parse("version = 1\n[hw]\ncores = 4\n", "o.toml", {"hw.cores=many"});
  CHECK_THAT(error_of([&] { wrong->root().get_table("hw").get_int("cores"); }),
             Catch::Contains("'hw.cores' must be an integer, found a string"));
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\n", "o.toml", {"novalue"}); }), Catch::Contains("dotted.key=value"));
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\n", "o.toml", {"a..b=1"}); }), Catch::Contains("empty key"));
  // The file's own version and parent are not settings: overriding them is an error, not ignored.
  CHECK(error_of([] { ConfigDoc::parse("version = 1\n", "o.toml", {"version=2"}); }) ==
        "--set version=2: error: 'version' belongs to the file and cannot be overridden");
  CHECK_THAT(error_of([] { ConfigDoc::parse("version = 1\n", "o.toml", {"inherits=h100"}); }), Catch::Contains("'inherits' belongs to the file"));
}

TEST_CASE("edit distance", "[config]") {
  CHECK(edit_distance("bandwith", "bandwidth") == 1);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("same", "same") == 0);
}
