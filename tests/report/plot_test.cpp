// Figures: the gnuplot script's structure (legends per panel, bars for categories, decimated
// lines, log ticks), and every figure the command line writes rendered to PNG (non-empty).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "../cli/run_einsim.h"
#include "common/error.h"
#include "sim/report/plot.h"

using namespace einsim;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

PlotSeries series(const std::string& name, std::vector<std::pair<double, double>> pts, bool dashed = false) {
  PlotSeries x;
  x.name = name;
  x.points = std::move(pts);
  x.dashed = dashed;
  return x;
}

}  // namespace

TEST_CASE("plot: long lines are decimated keeping their ends and peaks", "[plot]") {
  std::vector<std::pair<double, double>> pts;
  for (int i = 0; i < 10000; ++i) pts.emplace_back(i, i == 4321 ? 100.0 : std::sin(i * 0.01));
  const auto d = decimate(pts, 600);
  CHECK(d.size() <= 600);
  CHECK(d.size() > 500);
  CHECK(d.front() == pts.front());
  CHECK(d.back() == pts.back());
  CHECK(std::find(d.begin(), d.end(), pts[4321]) != d.end());
  CHECK(std::is_sorted(d.begin(), d.end()));
  const std::vector<std::pair<double, double>> few = {{1, 1}, {2, 2}};
  CHECK(decimate(few, 600) == few);
}

TEST_CASE("plot: the gnuplot script gives each panel its own legend, bars to categories, units to axes", "[plot]") {
  PlotPanel a, b, c;
  a.title = "A";
  a.xlabel = "tokens";
  a.ylabel = "s";
  a.series = {series("one", {{1, 1}, {10, 2}}), series("two", {{1, 3}, {10, 4}}, true)};
  b.title = "B";
  b.log_x = false;
  b.series = {series("long", {{0, 0}})};
  for (int i = 1; i < 5000; ++i) b.series[0].points.emplace_back(i, i % 7);
  c.title = "C";
  c.log_x = false;
  c.log_y = true;
  c.categories = {"x", "y \"quoted\""};
  c.series = {series("mapped", {{0, 10}, {1, 20}}), series("formula", {{0, 11}, {1, 21}}, true)};
  const std::string g = gnuplot_script({a, b, c}, {"a footnote"}, PlotFormat::Svg, "/tmp/out.svg");
  CHECK_THAT(g, Catch::Contains("set terminal svg") && Catch::Contains("set multiplot layout 1,3"));
  // Legends: panel A lists one and two, B long, C mapped and formula; nothing else.
  CHECK(count(g, "title \"one\"") == 1);
  CHECK(count(g, "title \"two\"") == 1);
  CHECK(count(g, "title \"long\"") == 1);
  CHECK(count(g, "title \"formula\"") == 1);
  CHECK_THAT(g, Catch::Contains("dt 2"));                                   // the dashed estimate
  CHECK_THAT(g, Catch::Contains("with boxes") && Catch::Contains("\"y \\\"quoted\\\"\" 1"));  // bars, labels escaped
  CHECK_THAT(g, Catch::Contains("set xlabel \"tokens\"") && Catch::Contains("set ylabel \"s\""));
  CHECK_THAT(g, Catch::Contains("set label 1 \"a footnote\""));
  // Panel B's 5,000 points arrive as at most 600, as a line without markers.
  const size_t start = g.find("$p1s0 << EOD\n"), end = g.find("EOD\n", start + 12);
  CHECK(count(g.substr(start, end - start), "\n") <= 601);
  CHECK_THAT(g, Catch::Contains("$p1s0 using 1:2 with lines"));
  // Panel A's two points have markers; its short log axis gets 1-2-5 ticks.
  CHECK_THAT(g, Catch::Contains("$p0s0 using 1:2 with linespoints"));
  CHECK_THAT(g, Catch::Contains("set xtics (\"1\" 1, \"2\" 2, \"5\" 5, \"10\" 10)"));
  CHECK_THAT(gnuplot_script({a}, {}, PlotFormat::Png, "/tmp/o.png"), Catch::Contains("set terminal pngcairo"));
}

TEST_CASE("plot: every figure the command line writes, as PNG and SVG, non-empty", "[plot][cli]") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "einsim-plot-test";
  std::filesystem::create_directories(dir);
  const std::string data = EINSIM_TEST_DATA;
  const std::string db = (dir / "sweep.db").string();
  std::filesystem::remove(db);
  REQUIRE(test::run_einsim({"sweep", data + "/sweep-small.toml", "--db", db}).code == 0);
  const std::vector<std::pair<std::string, std::vector<std::string>>> figures = {
      {"fusemax", {"study", "fusemax", "--models", "t5-small-encoder", "--seq", "1K,4K"}},
      {"long-context", {"analyze", "long-context", "--set", "scenario.devices=[1]"}},
      {"kv-compression", {"analyze", "kv-compression"}},
      {"offload", {"analyze", "offload"}},
      {"flash", {"analyze", "flash"}},
      {"power", {"analyze", "power", data + "/power-small.toml"}},
      {"serve", {"serve", "--model", "llama-3-8b", "--arch", "h100", "--trace", "code", "--duration", "30"}},
      {"pareto", {"pareto", "--db", db}},
      {"validate", {"validate", data + "/kernels-small.csv", "--arch", "h100"}},
  };
  for (const auto& [name, args] : figures)
    for (const char* ext : {".png", ".svg"}) {
      INFO(name << ext);
      const std::string path = (dir / (name + ext)).string();
      std::vector<std::string> a = args;
      a.insert(a.end(), {"--plot", path});
      const test::CliRun r = test::run_einsim(a);
      INFO(r.err);
      REQUIRE(r.code == 0);
      const std::string bytes = slurp(path);
      CHECK(bytes.size() > 2000);
      if (std::string(ext) == ".png") CHECK(bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
      else CHECK_THAT(bytes, Catch::Contains("<svg") && Catch::Contains("</svg>"));
    }
}

TEST_CASE("plot: without gnuplot a figure is a clear error", "[plot][errors]") {
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  setenv("PATH", "/nonexistent-einsim-path", 1);
  PlotPanel p;
  p.series = {series("a", {{1, 1}})};
  CHECK_THROWS_WITH(svg_plot({p}), Catch::Contains("needs gnuplot") && Catch::Contains("gnuplot-nox"));
  setenv("PATH", saved.c_str(), 1);
}
