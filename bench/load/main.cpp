// msgframe-bench: runs load scenarios against each system's server, one after another in one
// invocation, and prints a table, RESULT lines for scripts and, on request, JSON.
//
// Each server runs in a child process (this program again, with --serve) pinned to core 0, or
// elsewhere already (--connect); the load client runs here, pinned to core 1. Exit status 1 when
// any run failed or got a wrong reply: the test command's smoke run relies on it.
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include "load.hpp"
#include "msgframe_system.hpp"
#include "plot.hpp"
#include "raw_echo.hpp"
#include "server_process.hpp"
#ifdef MSGFRAME_BENCH_WITH_GRPC
#include "grpc_system.hpp"
#endif

namespace options = boost::program_options;
using namespace bench;

namespace {

const std::vector<System>& all_systems() {
  static const std::vector<System> systems{
      {"msgframe", serve_msgframe, load_msgframe},
      {"raw", serve_raw, load_raw},
#ifdef MSGFRAME_BENCH_WITH_GRPC
      {"grpc", serve_grpc, load_grpc, grpc_cannot_run},
#endif
  };
  return systems;
}

struct Measurement {
  std::string system;
  std::string scenario;
  LoadResult load;
  double rss_kb_per_connection = 0;
  bool fanin = false;
  std::string skipped;  // why it did not run, when it could not here
};

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> names;
  std::stringstream stream(list);
  for (std::string name; std::getline(stream, name, ',');) {
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

bool selected(const std::vector<std::string>& names, const std::string& name) {
  return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

// Raises the descriptor limit to the hard limit and returns it: the server and the client (one
// process each, both inheriting it) need one descriptor per connection, and a few more.
std::uint64_t raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// A server started elsewhere (--connect): the load client's target instead of a child process.
struct ExternalServer {
  std::string host;
  std::uint16_t port = 0;
};

// "HOST:PORT" or "[IPV6]:PORT"; nothing when malformed.
std::optional<ExternalServer> parse_address(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = text.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return std::nullopt;
  const unsigned long number = std::stoul(port);
  if (number == 0 || number > 65535) return std::nullopt;
  return ExternalServer{std::move(host), static_cast<std::uint16_t>(number)};
}

Measurement run_one(const System& system, const Scenario& scenario, const ServeSettings& serve,
                    std::chrono::milliseconds duration, bool pin,
                    const std::optional<ExternalServer>& external) {
  Measurement measurement;
  measurement.system = system.name;
  measurement.scenario = scenario.name;
  measurement.fanin = scenario.connections > 1 && scenario.in_flight_per_connection == 1;
  LoadSettings settings;
  settings.duration = duration;
  if (external) {  // its memory is not ours to read: rss_kb_per_conn stays 0
    settings.host = external->host;
    settings.port = external->port;
    measurement.load = system.load(scenario, settings);
    return measurement;
  }
  ServerProcess server(system.name, serve, pin);
  if (!server.error().empty()) {
    measurement.load.failure = server.error();
    return measurement;
  }
  settings.host = serve.host;
  settings.port = server.port();
  const std::uint64_t idle_kb = server.rss_kb();
  std::uint64_t connected_kb = idle_kb;
  settings.on_connected = [&] { connected_kb = server.rss_kb(); };
  measurement.load = system.load(scenario, settings);
  if (connected_kb > idle_kb) {
    measurement.rss_kb_per_connection =
        static_cast<double>(connected_kb - idle_kb) / static_cast<double>(scenario.connections);
  }
  if (const auto stop_error = server.stop();
      !stop_error.empty() && measurement.load.failure.empty()) {
    measurement.load.failure = stop_error;
  }
  return measurement;
}

double calls_per_second(const LoadResult& load) {
  const double seconds = std::chrono::duration<double>(load.window).count();
  return seconds > 0 ? static_cast<double>(load.calls) / seconds : 0;
}

double megabytes_per_second(const LoadResult& load) {
  const double seconds = std::chrono::duration<double>(load.window).count();
  return seconds > 0 ? static_cast<double>(load.payload_bytes) / seconds / 1e6 : 0;
}

bool failed(const Measurement& measurement) {
  if (!measurement.skipped.empty()) return false;
  return !measurement.load.failure.empty() || measurement.load.wrong_replies > 0 ||
         measurement.load.calls == 0;
}

std::string status_of(const Measurement& measurement) {
  if (!measurement.skipped.empty()) return "skipped: " + measurement.skipped;
  if (!measurement.load.failure.empty()) return "FAILED: " + measurement.load.failure;
  if (measurement.load.wrong_replies > 0) {
    return "FAILED: " + std::to_string(measurement.load.wrong_replies) + " wrong replies";
  }
  if (measurement.load.calls == 0) return "FAILED: no call completed";
  return "ok";
}

// A system's calls/s over raw's in the same scenario, as text ("-" when either did not run).
std::string ratio_to_raw(const Measurement& measurement,
                         const std::vector<Measurement>& measurements) {
  const auto raw = std::find_if(measurements.begin(), measurements.end(), [&](const auto& m) {
    return m.system == "raw" && m.scenario == measurement.scenario;
  });
  if (raw == measurements.end() || failed(*raw) || !raw->skipped.empty() || failed(measurement) ||
      !measurement.skipped.empty()) {
    return "-";
  }
  char text[16];
  std::snprintf(text, sizeof text, "%.2f",
                calls_per_second(measurement.load) / calls_per_second(raw->load));
  return text;
}

void print_table(const std::vector<Measurement>& measurements) {
  std::printf("\n%-9s %-13s %12s %7s %9s %9s %9s %10s %9s  %s\n", "system", "scenario", "calls/s",
              "vs raw", "p50 us", "p99 us", "p999 us", "MB/s", "KiB/conn", "status");
  for (const auto& m : measurements) {
    const std::string per_connection = m.fanin && m.rss_kb_per_connection > 0
                                           ? std::to_string(m.rss_kb_per_connection).substr(0, 5)
                                           : "-";
    std::printf("%-9s %-13s %12.0f %7s %9.1f %9.1f %9.1f %10.1f %9s  %s\n", m.system.c_str(),
                m.scenario.c_str(), calls_per_second(m.load), ratio_to_raw(m, measurements).c_str(),
                m.load.latency.percentile_us(0.5), m.load.latency.percentile_us(0.99),
                m.load.latency.percentile_us(0.999), megabytes_per_second(m.load),
                per_connection.c_str(), status_of(m).c_str());
  }
  std::printf("\n");
}

// Of one system's runs of one scenario: the first that failed, else the run with the median
// calls/s (the lower of the two middle ones for an even count).
Measurement representative(std::vector<Measurement> runs) {
  if (const auto bad = std::find_if(runs.begin(), runs.end(), failed); bad != runs.end()) {
    return std::move(*bad);
  }
  std::sort(runs.begin(), runs.end(), [](const auto& left, const auto& right) {
    return calls_per_second(left.load) < calls_per_second(right.load);
  });
  return std::move(runs[(runs.size() - 1) / 2]);
}

void print_result_lines(const std::vector<Measurement>& measurements) {
  for (const auto& m : measurements) {
    if (!m.skipped.empty()) continue;
    std::printf(
        "RESULT system=%s scenario=%s msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f mb_per_s=%.1f",
        m.system.c_str(), m.scenario.c_str(), calls_per_second(m.load),
        m.load.latency.percentile_us(0.5), m.load.latency.percentile_us(0.99),
        megabytes_per_second(m.load));
    if (m.fanin) std::printf(" rss_kb_per_conn=%.2f", m.rss_kb_per_connection);
    std::printf("\n");
  }
  std::fflush(stdout);
}

void write_json(const std::string& path, const std::vector<Measurement>& measurements,
                const ServeSettings& serve, std::chrono::milliseconds duration, int rounds) {
  std::ofstream out(path);
  out << "{\"seconds\": " << std::chrono::duration<double>(duration).count()
      << ", \"rounds\": " << rounds << ", \"server_threads\": " << serve.threads
      << ", \"results\": [";
  for (std::size_t index = 0; index < measurements.size(); ++index) {
    const auto& m = measurements[index];
    out << (index ? ",\n  " : "\n  ") << "{\"system\": \"" << m.system << "\", \"scenario\": \""
        << m.scenario << "\", \"calls\": " << m.load.calls
        << ", \"msgs_per_s\": " << calls_per_second(m.load)
        << ", \"p50_us\": " << m.load.latency.percentile_us(0.5)
        << ", \"p99_us\": " << m.load.latency.percentile_us(0.99)
        << ", \"p999_us\": " << m.load.latency.percentile_us(0.999)
        << ", \"mb_per_s\": " << megabytes_per_second(m.load)
        << ", \"rss_kb_per_conn\": " << m.rss_kb_per_connection
        << ", \"wrong_replies\": " << m.load.wrong_replies
        << ", \"ok\": " << (failed(m) ? "false" : "true") << "}";
  }
  out << "\n]}\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string system_list, scenario_list, serve_system, json_path, plot_path, connect_to;
  double seconds = 5;
  int rounds = 1;
  ServeSettings serve;
  bool no_pin = false;
  options::options_description description("msgframe-bench options");
  description.add_options()("help", "show this help")(
      "system", options::value(&system_list), "systems to run, comma-separated (default: all)")(
      "scenario", options::value(&scenario_list),
      "scenarios, comma-separated: pingpong,pipelined,bulk,fanin,fanin-10k,udp-pingpong "
      "(default: all)")("seconds", options::value(&seconds)->default_value(seconds),
                        "measured time of each run")(
      "rounds", options::value(&rounds)->default_value(rounds),
      "runs of each scenario per system, the systems taking turns; the median run is reported")(
      "server-threads", options::value(&serve.threads)->default_value(serve.threads),
      "the server's I/O threads")("json", options::value(&json_path),
                                  "also write the full results to this file")(
      "plot", options::value(&plot_path),
      "draw calls/s and p50 latency per scenario and system into this SVG (gnuplot)")(
      "no-pin", options::bool_switch(&no_pin), "do not pin the server and client to cores")(
      "connect", options::value(&connect_to),
      "HOST:PORT: drive a server already running there instead of starting one (one --system, "
      "the server's kind; no RSS figures)")("serve", options::value(&serve_system),
                                            "(internal) run this system's server")(
      "port", options::value(&serve.port)->default_value(0), "(internal, with --serve)");
  options::variables_map values;
  try {
    options::store(options::parse_command_line(argc, argv, description), values);
    options::notify(values);
  } catch (const options::error& error) {
    std::cerr << "msgframe-bench: " << error.what() << "\n" << description;
    return 2;
  }
  if (values.count("help")) {
    std::cout << description;
    return 0;
  }
  if (rounds < 1) {
    std::cerr << "msgframe-bench: --rounds must be at least 1\n";
    return 2;
  }
  const auto systems = split(system_list);
  const auto scenarios = split(scenario_list);
  for (const auto& name : systems) {
    const bool known = std::any_of(all_systems().begin(), all_systems().end(),
                                   [&](const System& system) { return system.name == name; });
    if (!known && name != "grpc") {
      std::cerr << "msgframe-bench: unknown system " << name << '\n';
      return 2;
    }
  }
  std::optional<ExternalServer> external;
  if (!connect_to.empty()) {
    external = parse_address(connect_to);
    if (!external) {
      std::cerr << "msgframe-bench: --connect takes HOST:PORT or [IPV6]:PORT, not " << connect_to
                << '\n';
      return 2;
    }
    if (systems.size() != 1) {
      std::cerr << "msgframe-bench: --connect needs exactly one --system: the kind of server "
                   "that listens there\n";
      return 2;
    }
  }
  if (!serve_system.empty()) {
    for (const auto& system : all_systems()) {
      if (system.name == serve_system) return system.serve(serve);
    }
    std::cerr << "msgframe-bench: unknown system " << serve_system << '\n';
    return 2;
  }

  const bool pin = !no_pin && ::sysconf(_SC_NPROCESSORS_ONLN) >= 2;
  if (!pin) std::cerr << "msgframe-bench: not pinning server and client to cores\n";
  if (pin) pin_this_process_to_core(1);
  const std::uint64_t descriptor_limit = raise_descriptor_limit();
#ifndef MSGFRAME_BENCH_WITH_GRPC
  if (selected(systems, "grpc")) {
    std::cout << "grpc: skipped: msgframe-bench was built without gRPC (install libgrpc++-dev "
                 "protobuf-compiler-grpc: scripts/install-deps.sh)\n";
  }
#endif

  std::vector<Measurement> measurements;
  const auto duration = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  for (const auto& scenario : all_scenarios()) {
    if (!selected(scenarios, scenario.name)) continue;
    // One row per selected system, in all_systems() order: filled now for a system skipped
    // here, after the rounds for the others.
    std::vector<Measurement> rows;
    std::vector<const System*> runnable;
    std::vector<std::size_t> runnable_rows;
    for (const auto& system : all_systems()) {
      if (!selected(systems, system.name)) continue;
      std::string cannot_run = system.cannot_run ? system.cannot_run(scenario) : "";
      if (cannot_run.empty() && scenario.connections + 64 > descriptor_limit) {
        cannot_run = "needs " + std::to_string(scenario.connections + 64) +
                     " descriptors, the hard limit is " + std::to_string(descriptor_limit) +
                     " (raise it with ulimit -Hn as root)";
      }
      if (cannot_run.empty()) {
        runnable.push_back(&system);
        runnable_rows.push_back(rows.size());
      }
      Measurement row;
      row.system = system.name;
      row.scenario = scenario.name;
      row.skipped = std::move(cannot_run);
      rows.push_back(std::move(row));
    }
    // Taking turns, the systems meet this machine's drift alike.
    std::vector<std::vector<Measurement>> runs(runnable.size());
    for (int round = 1; round <= rounds; ++round) {
      for (std::size_t index = 0; index < runnable.size(); ++index) {
        std::cerr << "msgframe-bench: " << runnable[index]->name << " " << scenario.name;
        if (rounds > 1) std::cerr << " (round " << round << " of " << rounds << ")";
        std::cerr << "...\n";
        runs[index].push_back(run_one(*runnable[index], scenario, serve, duration, pin, external));
        if (rounds == 1) {
          print_result_lines({runs[index].back()});
        } else {
          std::cerr << "msgframe-bench:   " << std::fixed << std::setprecision(0)
                    << calls_per_second(runs[index].back().load) << " calls/s, "
                    << status_of(runs[index].back()) << '\n';
        }
      }
    }
    for (std::size_t index = 0; index < runnable.size(); ++index) {
      auto& row = rows[runnable_rows[index]];
      row = representative(std::move(runs[index]));
      if (rounds > 1) print_result_lines({row});
    }
    std::move(rows.begin(), rows.end(), std::back_inserter(measurements));
  }
  print_table(measurements);
  if (!json_path.empty()) write_json(json_path, measurements, serve, duration, rounds);
  if (!plot_path.empty()) {
    std::vector<PlotPoint> points;
    for (const auto& m : measurements) {
      if (m.skipped.empty() && !failed(m)) {
        points.push_back(
            {m.system, m.scenario, calls_per_second(m.load), m.load.latency.percentile_us(0.5)});
      }
    }
    std::string title = "msgframe-bench: " + std::to_string(seconds).substr(0, 4) + " s per run, " +
                        std::to_string(serve.threads) + " server thread(s)";
    if (rounds > 1) title += ", median of " + std::to_string(rounds) + " rounds";
    if (const auto error = plot(points, title, plot_path); !error.empty()) {
      std::cerr << "msgframe-bench: --plot: " << error << '\n';
      return 1;
    }
  }
  return std::any_of(measurements.begin(), measurements.end(), failed) ? 1 : 0;
}
