// The --plot chart: a grouped bar chart of calls/s and p50 latency per scenario and system,
// drawn by gnuplot into an SVG file.
#pragma once

#include <string>
#include <vector>

namespace bench {

struct PlotPoint {
  std::string system;
  std::string scenario;
  double calls_per_second = 0;
  double p50_us = 0;
};

// Writes `svg_path`, and beside it the data and gnuplot script it was drawn from (.dat, .gp).
// Points that did not run are left out; their bars are missing. Returns what went wrong, or
// nothing.
std::string plot(const std::vector<PlotPoint>& points, const std::string& title,
                 const std::string& svg_path);

}  // namespace bench
