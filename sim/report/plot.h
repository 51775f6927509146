#pragma once
// Report figures drawn by gnuplot (its svg and pngcairo terminals; docs/ARCHITECTURE.md says
// why gnuplot): side-by-side panels, log or linear axes with rounded ticks and units, one colour
// per series key (shared across panels), a legend per panel listing only its own series,
// dashed series for first-order estimates, long lines decimated, categories as bars.
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace einsim {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  ///< (x, y); points with y <= 0 on a log axis are skipped
  bool dashed = false;
  /// Series with the same key share a colour and one legend entry (default: the name).
  std::string key;
  bool points_only = false;  ///< markers without a line (a scatter)
};

struct PlotPanel {
  std::string title, xlabel, ylabel;
  bool log_x = true, log_y = false;
  std::vector<PlotSeries> series;
  /// Tick label for an x value (default: the number).
  std::function<std::string(double)> xtick;
  /// x ticks at 1, 2 and 5 x 10^k (log axis) instead of at the points' x values.
  bool round_x_ticks = false;
  /// The legend to the right of the panel, outside the axes (many series over the data).
  bool legend_right = false;
  /// Categorical x: series points at x = 0, 1, ... drawn as grouped bars, labelled by these.
  std::vector<std::string> categories;
};

/// The format figures are drawn in: SVG, or PNG (binary bytes in the returned string).
enum class PlotFormat { Svg, Png };
/// The format svg_plot() draws in on this thread (SVG unless a PlotFormatScope says otherwise).
PlotFormat plot_format();
/// Draws this thread's figures as PNG or SVG while it lives (by the output file's extension:
/// ".png" for PNG).
class PlotFormatScope {
 public:
  explicit PlotFormatScope(const std::string& path);
  ~PlotFormatScope();
  PlotFormatScope(const PlotFormatScope&) = delete;
  PlotFormatScope& operator=(const PlotFormatScope&) = delete;

 private:
  PlotFormat saved_;
};

/// Panels side by side, each with the legend of its own series, and `footnotes` (one line each)
/// below them, drawn by gnuplot in plot_format(). Throws UserError when gnuplot is missing or
/// fails.
std::string svg_plot(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes = {});

/// The gnuplot script svg_plot() runs (its output file left to the caller): for tests.
std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes, PlotFormat format,
                           const std::string& output);

/// At most `max_points` points of a line through `points` (sorted by x): the first, the last,
/// and each bucket's lowest and highest y, so peaks survive.
std::vector<std::pair<double, double>> decimate(const std::vector<std::pair<double, double>>& points, size_t max_points);

/// "4K", "1M", "512": token counts as axis labels.
std::string token_words(double n);

}  // namespace einsim
