#include "sim/report/plot.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace einsim {

std::string token_words(double n) {
  const auto v = static_cast<int64_t>(std::llround(n));
  if (v >= (1 << 20) && v % (1 << 20) == 0) return fmt::format("{}M", v >> 20);
  if (v >= 1024 && v % 1024 == 0) return fmt::format("{}K", v >> 10);
  return std::to_string(v);
}

namespace {

thread_local PlotFormat g_format = PlotFormat::Svg;

// A gnuplot string literal: double-quoted, backslashes and quotes escaped.
std::string quoted(const std::string& text) {
  std::string o = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o + "\"";
}

std::string num(double v) { return fmt::format("{:.9g}", v); }

bool usable(const PlotPanel& p, double x, double y) {
  return std::isfinite(x) && std::isfinite(y) && !(p.log_x && x <= 0) && !(p.log_y && y <= 0);
}

// Lines with more points than the eye resolves at the figure's width are decimated; a few
// points get markers, many do not (a marker per sample buries the line).
constexpr size_t kMaxLinePoints = 600, kMaxScatterPoints = 3000, kMarkersUpTo = 40;

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', pos), dirs.size());
    const std::filesystem::path cand = std::filesystem::path(dirs.substr(pos, end - pos)) / "gnuplot";
    std::error_code ec;
    if (std::filesystem::is_regular_file(cand, ec) && ::access(cand.c_str(), X_OK) == 0) return cand.string();
    pos = end + 1;
  }
  return "";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Ticks of a log axis over [lo, hi]: each decade, and 2 and 5 times it when the axis spans
// fewer than three decades (gnuplot labels decades only, which leaves a short axis bare).
std::string log_tics(const char* axis, double lo, double hi) {
  if (!(lo > 0) || !(hi > lo) || std::log10(hi / lo) >= 3) return "";
  std::string tics;
  for (int d = static_cast<int>(std::floor(std::log10(lo))); d <= static_cast<int>(std::ceil(std::log10(hi))); ++d)
    for (double m : {1.0, 2.0, 5.0})
      if (const double v = m * std::pow(10.0, d); v >= lo * 0.999 && v <= hi * 1.001) tics += (tics.empty() ? "" : ", ") + fmt::format("\"{:g}\" {}", v, num(v));
  return tics.empty() ? "" : fmt::format("set {}tics ({})\n", axis, tics);
}

}  // namespace

PlotFormat plot_format() { return g_format; }

PlotFormatScope::PlotFormatScope(const std::string& path) : saved_(g_format) {
  const bool png = path.size() >= 4 && path.compare(path.size() - 4, 4, ".png") == 0;
  g_format = png ? PlotFormat::Png : PlotFormat::Svg;
}
PlotFormatScope::~PlotFormatScope() { g_format = saved_; }

std::vector<std::pair<double, double>> decimate(const std::vector<std::pair<double, double>>& points, size_t max_points) {
  if (points.size() <= max_points || max_points < 4) return points;
  std::vector<std::pair<double, double>> out;
  const size_t buckets = (max_points - 2) / 2;
  out.push_back(points.front());
  const size_t inner = points.size() - 2;
  for (size_t b = 0; b < buckets; ++b) {
    const size_t lo = 1 + b * inner / buckets, hi = 1 + (b + 1) * inner / buckets;
    if (lo >= hi) continue;
    size_t mn = lo, mx = lo;
    for (size_t i = lo; i < hi; ++i) {
      if (points[i].second < points[mn].second) mn = i;
      if (points[i].second > points[mx].second) mx = i;
    }
    out.push_back(points[std::min(mn, mx)]);
    if (mn != mx) out.push_back(points[std::max(mn, mx)]);
  }
  out.push_back(points.back());
  return out;
}

std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes, PlotFormat format,
                           const std::string& output) {
  auto key_of = [](const PlotSeries& x) { return x.key.empty() ? x.name : x.key; };
  // A legend of more than six entries goes outside, to the right, where it covers nothing.
  auto entries = [&](const PlotPanel& p) {
    std::vector<std::string> seen;
    for (const PlotSeries& x : p.series)
      if (std::find(seen.begin(), seen.end(), key_of(x)) == seen.end()) seen.push_back(key_of(x));
    return seen.size();
  };
  auto legend_outside = [&](const PlotPanel& p) { return p.legend_right || entries(p) > 6; };
  const bool outside = std::any_of(panels.begin(), panels.end(), legend_outside);
  const double n = static_cast<double>(std::max<size_t>(1, panels.size()));
  // Rotated category labels need room below the axes.
  // Tick labels at the data's own x values (xtick): at most eight per panel, rotated when they
  // would not fit side by side (about 7 px a character in a 380 px panel).
  std::vector<std::vector<std::pair<double, std::string>>> xlabels(panels.size());
  std::vector<bool> rotated(panels.size(), false);
  for (size_t k = 0; k < panels.size(); ++k) {
    const PlotPanel& p = panels[k];
    if (!p.categories.empty()) {
      rotated[k] = true;
      continue;
    }
    if (!p.xtick) continue;
    std::vector<double> xs;
    for (const PlotSeries& x : p.series)
      for (auto [a, b] : x.points)
        if (usable(p, a, b)) xs.push_back(a);
    std::sort(xs.begin(), xs.end());
    xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
    const size_t every = (xs.size() + 7) / 8;
    size_t chars = 0;
    for (size_t j = 0; j < xs.size(); j += std::max<size_t>(1, every)) {
      xlabels[k].emplace_back(xs[j], p.xtick(xs[j]));
      chars += xlabels[k].back().second.size() + 2;
    }
    rotated[k] = static_cast<double>(chars) * 7 > 380;
  }
  const double below = std::any_of(rotated.begin(), rotated.end(), [](bool r) { return r; }) ? 80 : 0;
  const double W = 480 * n + (outside ? 220 : 0), H = 380 + below + 18 * static_cast<double>(footnotes.size());
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::vector<std::string> keys;  // colour per series key, shared across panels
  for (const PlotPanel& p : panels)
    for (const PlotSeries& x : p.series)
      if (std::find(keys.begin(), keys.end(), key_of(x)) == keys.end()) keys.push_back(key_of(x));
  auto color = [&](const std::string& k) { return colors[static_cast<size_t>(std::find(keys.begin(), keys.end(), k) - keys.begin()) % 8]; };

  std::string g;
  if (format == PlotFormat::Png)
    g += fmt::format("set terminal pngcairo size {:.0f},{:.0f} noenhanced font 'Sans,10' background rgb 'white'\n", W, H);
  else
    g += fmt::format("set terminal svg size {:.0f},{:.0f} noenhanced font 'Helvetica,11' background rgb 'white'\n", W, H);
  g += "set output " + quoted(output) + "\n";
  // The data, one block per series, only the points each axis can show.
  for (size_t k = 0; k < panels.size(); ++k)
    for (size_t i = 0; i < panels[k].series.size(); ++i) {
      const PlotPanel& p = panels[k];
      const PlotSeries& x = p.series[i];
      std::vector<std::pair<double, double>> pts;
      for (auto [a, b] : x.points)
        if (usable(p, a, b)) pts.emplace_back(a, b);
      if (x.points_only && pts.size() > kMaxScatterPoints) {
        std::vector<std::pair<double, double>> thin;
        for (size_t j = 0; j < pts.size(); j += (pts.size() + kMaxScatterPoints - 1) / kMaxScatterPoints) thin.push_back(pts[j]);
        pts = std::move(thin);
      } else if (!x.points_only && p.categories.empty()) {
        std::stable_sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        pts = decimate(pts, kMaxLinePoints);
      }
      g += fmt::format("$p{}s{} << EOD\n", k, i);
      for (auto [a, b] : pts) g += num(a) + " " + num(b) + "\n";
      g += "EOD\n";
    }
  const double bottom = (62 + below + 18 * static_cast<double>(footnotes.size())) / H, right = outside ? 1 - 210 / W : 0.98;
  g += fmt::format("set multiplot layout 1,{} margins screen {:.4f}, screen {:.4f}, screen {:.4f}, screen 0.90 spacing screen {:.4f}\n", panels.size(),
                   85 / W, right, bottom, 100 / W);
  for (size_t k = 0; k < panels.size(); ++k) {
    const PlotPanel& p = panels[k];
    g += "reset\nunset label\n";
    g += "set title " + quoted(p.title) + " font ',12'\n";
    g += "set xlabel " + quoted(p.xlabel) + "\nset ylabel " + quoted(p.ylabel) + "\n";
    g += "set border 15\nset grid ytics lc rgb '#dddddd' lw 1 dt 1\nset tics out nomirror\nset format y '%g'\nset format x '%g'\n";
    // The legend in the corner with the fewest data points (top left first on a tie).
    if (legend_outside(p)) {
      g += "set key outside right top vertical Right noreverse samplen 2\n";
    } else {
      double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
      auto fx = [&](double x) { return p.log_x && p.categories.empty() ? std::log10(x) : x; };
      auto fy = [&](double y) { return p.log_y ? std::log10(y) : y; };
      for (const PlotSeries& x : p.series)
        for (auto [a, b] : x.points)
          if (usable(p, a, b)) x0 = std::min(x0, fx(a)), x1 = std::max(x1, fx(a)), y0 = std::min(y0, fy(b)), y1 = std::max(y1, fy(b));
      const char* corners[] = {"top left", "top right", "bottom right", "bottom left"};
      int crowd[4] = {0, 0, 0, 0};
      if (x1 > x0 && y1 > y0)
        for (const PlotSeries& x : p.series)
          for (auto [a, b] : x.points) {
            if (!usable(p, a, b)) continue;
            const double u = (fx(a) - x0) / (x1 - x0), v = (fy(b) - y0) / (y1 - y0);
            const bool left = u < 0.45, rightside = u > 0.55, topside = v > 0.65, low = v < 0.35;
            crowd[0] += left && topside, crowd[1] += rightside && topside, crowd[2] += rightside && low, crowd[3] += left && low;
          }
      const int best = static_cast<int>(std::min_element(crowd, crowd + 4) - crowd);
      g += fmt::format("set key {} Left reverse box opaque samplen 2 spacing 1.1\n", corners[best]);
    }
    bool any = false, nonneg = true;
    std::vector<double> xs, ys;
    for (const PlotSeries& x : p.series)
      for (auto [a, b] : x.points)
        if (usable(p, a, b)) any = true, nonneg = nonneg && b >= 0, xs.push_back(a), ys.push_back(b);
    if (p.log_x && p.categories.empty()) {
      g += "set logscale x 10\n";
      if (!xs.empty()) {
        const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
        g += fmt::format("set xrange [{}:{}]\n", num(*lo / 1.15), num(*hi * 1.15));
        if (!p.xtick) g += log_tics("x", *lo / 1.15, *hi * 1.15);
      }
    }
    if (p.log_y) {
      g += "set logscale y 10\n";
      if (!ys.empty()) {
        const auto [lo, hi] = std::minmax_element(ys.begin(), ys.end());
        g += fmt::format("set yrange [{}:{}]\n", num(*lo / 1.4), num(*hi * 1.4));
        g += log_tics("y", *lo / 1.4, *hi * 1.4);
      }
    }
    else if (nonneg) g += "set yrange [0:*]\n";
    if (!p.log_y && !nonneg) g += "set yrange [*:*]\n";
    if (!p.categories.empty()) {
      std::string tics;
      for (size_t c = 0; c < p.categories.size(); ++c) tics += (c ? ", " : "") + quoted(p.categories[c]) + " " + std::to_string(c);
      g += "set xtics (" + tics + ") rotate by 30 right\nset xlabel offset 0,-1\n";
      g += fmt::format("set xrange [-0.6:{:.1f}]\n", static_cast<double>(p.categories.size()) - 0.4);
    } else if (!xlabels[k].empty()) {
      std::string tics;
      for (const auto& [x, label] : xlabels[k]) tics += (tics.empty() ? "" : ", ") + quoted(label) + " " + num(x);
      g += "set xtics (" + tics + ")" + (rotated[k] ? " rotate by 30 right\nset xlabel offset 0,-1" : "") + "\n";
    } else if (p.log_x && p.round_x_ticks) {
      g += "set mxtics 10\n";
    }
    if (!any) g += "set xrange [1:2]\nset yrange [1:2]\n";
    if (k + 1 == panels.size())
      for (size_t f = 0; f < footnotes.size(); ++f)
        g += fmt::format("set label {} {} at screen 0.01, screen {:.4f} left front\n", f + 1, quoted(footnotes[f]),
                         (8 + 18 * static_cast<double>(footnotes.size() - 1 - f)) / H);
    std::vector<std::string> items, titled;
    const double nser = static_cast<double>(std::max<size_t>(1, p.series.size()));
    if (!p.categories.empty()) g += fmt::format("set style fill solid 0.85 border -1\nset boxwidth {:.4f} absolute\n", 0.8 / nser);
    for (size_t i = 0; i < p.series.size(); ++i) {
      const PlotSeries& x = p.series[i];
      size_t count = 0;
      for (auto [a, b] : x.points) count += usable(p, a, b) ? 1 : 0;
      if (count == 0) continue;
      // Bars are told apart by name (a formula beside its mapped value shares their colour).
      const std::string key = p.categories.empty() ? key_of(x) : x.name;
      const bool first = std::find(titled.begin(), titled.end(), key) == titled.end();
      if (first) titled.push_back(key);
      const std::string title = first ? "title " + quoted(key) : "notitle";
      const std::string lc = fmt::format("lc rgb '{}'", color(key_of(x)));
      std::string item = fmt::format("$p{}s{} ", k, i);
      if (!p.categories.empty()) {
        const double off = (static_cast<double>(i) - (nser - 1) / 2) * 0.8 / nser;
        item += fmt::format("using ($1{:+.4f}):2 with boxes {} {} {}", off, x.dashed ? "fs solid 0.3" : "fs solid 0.85", lc, title);
      } else if (x.points_only) {
        item += fmt::format("using 1:2 with points pt 7 ps 0.5 {} {}", lc, title);
      } else {
        item += fmt::format("using 1:2 with {} lw 2 {} {} {}", count <= kMarkersUpTo && !x.dashed ? "linespoints pt 7 ps 0.6" : "lines", x.dashed ? "dt 2" : "dt 1", lc, title);
      }
      items.push_back(item);
    }
    if (items.empty()) items.push_back("NaN notitle");
    g += "plot " + fmt::format("{}", fmt::join(items, ", \\\n     ")) + "\n";
  }
  g += "unset multiplot\nset output\n";
  return g;
}

std::string svg_plot(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) throw UserError(SourceLoc{"--plot"}, "drawing a figure needs gnuplot, which is not on the PATH (Debian: apt install gnuplot-nox)");
  static std::atomic<int> serial{0};
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string stem = fmt::format("einsim-plot-{}-{}", ::getpid(), serial++);
  const std::filesystem::path script = dir / (stem + ".gp"), out = dir / (stem + (g_format == PlotFormat::Png ? ".png" : ".svg")),
                              log = dir / (stem + ".log");
  {
    std::ofstream f(script);
    f << gnuplot_script(panels, footnotes, g_format, out.string());
    if (!f) throw UserError(SourceLoc{script.string()}, "cannot write the figure's gnuplot script");
  }
  const std::string cmd = fmt::format("'{}' '{}' > '{}' 2>&1", gnuplot, script.string(), log.string());
  const int rc = std::system(cmd.c_str());
  std::string text = read_file(out), why = read_file(log);
  std::error_code ec;
  for (const auto& p : {script, out, log}) std::filesystem::remove(p, ec);
  if (rc != 0 || text.empty()) {
    const size_t nl = why.find('\n', why.size() > 400 ? why.size() - 400 : 0);
    throw UserError(SourceLoc{"--plot"}, fmt::format("gnuplot could not draw the figure: {}", why.empty() ? "no output" : why.substr(nl == std::string::npos ? 0 : nl)));
  }
  return text;
}

}  // namespace einsim
