#include "sim/report/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace einsim {

std::string token_words(double n) {
  const auto v = static_cast<int64_t>(std::llround(n));
  if (v >= (1 << 20) && v % (1 << 20) == 0) return fmt::format("{}M", v >> 20);
  if (v >= 1024 && v % 1024 == 0) return fmt::format("{}K", v >> 10);
  return std::to_string(v);
}

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

}  // namespace

std::string svg_plot(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes) {
  const bool outside = std::any_of(panels.begin(), panels.end(), [](const PlotPanel& p) { return p.legend_right; });
  const double pw = 400, ph = 290, left = 70, right = outside ? 190 : 20, top = 50, bottom = 50, gap = 80;
  const double W = left + right + static_cast<double>(panels.size()) * pw + static_cast<double>(panels.size() - 1) * gap,
               H = top + ph + bottom + 16 * static_cast<double>(footnotes.size());
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::vector<std::string> names;  // legend entries: colour keys
  auto key_of = [](const PlotSeries& s) { return s.key.empty() ? s.name : s.key; };
  for (const PlotPanel& p : panels)
    for (const PlotSeries& s : p.series)
      if (std::find(names.begin(), names.end(), key_of(s)) == names.end()) names.push_back(key_of(s));
  auto color = [&](const std::string& n) { return colors[static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin()) % 8]; };
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
                                "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                                W, H);
  for (size_t k = 0; k < panels.size(); ++k) {
    const PlotPanel& p = panels[k];
    const double x0 = left + static_cast<double>(k) * (pw + gap);
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    for (const PlotSeries& s : p.series)
      for (auto [x, y] : s.points) {
        if ((p.log_x && x <= 0) || (p.log_y && y <= 0) || !std::isfinite(y)) continue;
        xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
      }
    if (!std::isfinite(xmin)) xmin = 1, xmax = 2, ymin = 1, ymax = 2;
    if (!p.log_y) ymin = std::min(0.0, ymin);
    auto fx = [&](double x) { return p.log_x ? std::log10(x) : x; };
    auto fy = [&](double y) { return p.log_y ? std::log10(y) : y; };
    double lx0 = fx(xmin), lx1 = fx(xmax), ly0 = fy(ymin), ly1 = fy(ymax);
    if (lx1 <= lx0) lx1 = lx0 + 1;
    if (p.log_y) ly0 = std::floor(ly0), ly1 = std::ceil(ly1);
    if (ly1 <= ly0) ly1 = ly0 + 1;
    double step = 1;  // linear axes: a round step (1, 2 or 5 x 10^k), about five of them
    if (!p.log_y) {
      const double raw = (ly1 - ly0) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
      step = raw / mag <= 1 ? mag : raw / mag <= 2 ? 2 * mag : raw / mag <= 5 ? 5 * mag : 10 * mag;
      ly0 = std::floor(ly0 / step) * step;
      ly1 = std::ceil(ly1 * 1.02 / step) * step;
    }
    auto X = [&](double x) { return x0 + (fx(x) - lx0) / (lx1 - lx0) * pw; };
    auto Y = [&](double y) { return top + ph - (fy(y) - ly0) / (ly1 - ly0) * ph; };
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n", x0 + pw / 2, top - 30, escape(p.title));
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", x0, top, pw, ph);
    // y grid: decades on a log axis, five steps on a linear one.
    std::vector<double> yt;
    if (p.log_y)
      for (int d = 0; ly0 + d <= ly1 + 1e-9; ++d) yt.push_back(std::pow(10.0, ly0 + d));
    else
      for (int d = 0; ly0 + d * step <= ly1 + step * 1e-6; ++d) yt.push_back(ly0 + d * step);
    for (double v : yt)
      svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n",
                         x0, Y(v), x0 + pw, Y(v), x0 - 5, Y(v) + 4, v);
    // x ticks at every x a series has, leaving out those too close to the previous one.
    std::vector<double> xs;
    if (p.round_x_ticks && p.log_x) {
      // Within a decade or so every digit; over more, 1, 2 and 5.
      const std::vector<double> digits = lx1 - lx0 < 1.2 ? std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9} : std::vector<double>{1, 2, 5};
      for (int d = static_cast<int>(std::floor(lx0)); d <= static_cast<int>(std::ceil(lx1)); ++d)
        for (double m : digits)
          if (const double x = m * std::pow(10.0, d); fx(x) >= lx0 - 1e-9 && fx(x) <= lx1 + 1e-9) xs.push_back(x);
    } else {
      for (const PlotSeries& s : p.series)
        for (auto [x, y] : s.points)
          if (!(p.log_x && x <= 0)) xs.push_back(x);
    }
    std::sort(xs.begin(), xs.end());
    xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
    double last = -1e9;
    for (double x : xs) {
      if (X(x) - last < 36) continue;
      last = X(x);
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", X(x), top + ph + 18,
                         escape(p.xtick ? p.xtick(x) : fmt::format("{:.3g}", x)));
    }
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x0 + pw / 2, top + ph + 38, escape(p.xlabel));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"start\" font-style=\"italic\">{}</text>\n", x0 - 60, top - 10, escape(p.ylabel));
    for (const PlotSeries& s : p.series) {
      std::string pts;
      for (auto [x, y] : s.points) {
        if ((p.log_x && x <= 0) || (p.log_y && y <= 0) || !std::isfinite(y)) continue;
        pts += fmt::format("{:.1f},{:.1f} ", X(x), Y(y));
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", X(x), Y(y), color(key_of(s)));
      }
      if (!s.points_only)
        svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", pts, color(key_of(s)),
                           s.dashed ? " stroke-dasharray=\"6,4\"" : "");
    }
    if (k == 0)
      for (size_t i = 0; i < names.size(); ++i) {
        const double ly = top + 16 + 15 * static_cast<double>(i);
        const double lx = outside ? left + static_cast<double>(panels.size()) * pw + static_cast<double>(panels.size() - 1) * gap + 5 : x0;
        svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>\n", lx + 10, ly - 4,
                           lx + 30, ly - 4, color(names[i]), lx + 36, ly, escape(names[i]));
      }
  }
  for (size_t i = 0; i < footnotes.size(); ++i)
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", left, top + ph + bottom + 12 + 16 * static_cast<double>(i), escape(footnotes[i]));
  svg += "</svg>\n";
  return svg;
}

}  // namespace einsim
