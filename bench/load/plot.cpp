// Drawing the results with gnuplot: one data file, one script, one SVG.
#include "plot.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>

namespace bench {

namespace {

template <class T>
void add_unique(std::vector<T>& list, const T& value) {
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

// Quotes a string for a gnuplot script (single quotes, doubled inside).
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string plot(const std::vector<PlotPoint>& points, const std::string& title,
                 const std::string& svg_path) {
  std::vector<std::string> systems, scenarios;
  std::map<std::pair<std::string, std::string>, const PlotPoint*> by_key;
  for (const auto& point : points) {
    add_unique(systems, point.system);
    add_unique(scenarios, point.scenario);
    by_key[{point.scenario, point.system}] = &point;
  }
  if (systems.empty()) return "nothing to plot";

  // One row per scenario: its calls/s for each system, then its p50 for each; '?' = missing.
  const std::string data_path = svg_path + ".dat";
  std::ofstream data(data_path);
  for (const auto& scenario : scenarios) {
    data << '"' << scenario << '"';
    for (const bool latency : {false, true}) {
      for (const auto& system : systems) {
        const auto found = by_key.find({scenario, system});
        if (found == by_key.end()) {
          data << " ?";
        } else {
          data << ' ' << (latency ? found->second->p50_us : found->second->calls_per_second);
        }
      }
    }
    data << '\n';
  }
  data.close();

  const std::string script_path = svg_path + ".gp";
  std::ofstream script(script_path);
  script << "set terminal svg size 1000,760 dynamic font 'sans,11'\n"
         << "set output " << quoted(svg_path) << "\n"
         << "set datafile missing '?'\n"
         << "set style data histograms\n"
         << "set style histogram clustered gap 1\n"
         << "set style fill solid 0.85 border -1\n"
         << "set logscale y\nset grid ytics\nset key outside right top\n"
         << "set multiplot layout 2,1 title " << quoted(title) << "\n";
  const auto panel = [&](const std::string& label, std::size_t first_column) {
    script << "set ylabel " << quoted(label) << "\nplot ";
    for (std::size_t index = 0; index < systems.size(); ++index) {
      script << (index ? ", '' " : quoted(data_path) + " ") << "using " << first_column + index
             << (index ? "" : ":xtic(1)") << " title " << quoted(systems[index]);
    }
    script << "\n";
  };
  panel("calls/s (log)", 2);
  panel("p50 latency, µs (log)", 2 + systems.size());
  script << "unset multiplot\n";
  script.close();

  // posix_spawnp, not system(): no shell to quote the path for.
  pid_t gnuplot = 0;
  char* const arguments[] = {const_cast<char*>("gnuplot"), const_cast<char*>(script_path.c_str()),
                             nullptr};
  int status = -1;
  if (::posix_spawnp(&gnuplot, "gnuplot", nullptr, nullptr, arguments, environ) == 0) {
    ::waitpid(gnuplot, &status, 0);
  }
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "gnuplot failed or is not installed (apt-get install gnuplot-nox); the data and "
           "script are in " +
           data_path + " and " + script_path;
  }
  return {};
}

}  // namespace bench
