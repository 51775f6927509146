#pragma once
// Small SVG line plots for reports: side-by-side panels, log or linear axes, one colour per
// series name (shared across panels), dashed series for first-order estimates.
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
};

/// Panels side by side, with a legend of series names in the first, and `footnotes` (one
/// line each) below them.
std::string svg_plot(const std::vector<PlotPanel>& panels, const std::vector<std::string>& footnotes = {});

/// "4K", "1M", "512": token counts as axis labels.
std::string token_words(double n);

}  // namespace einsim
