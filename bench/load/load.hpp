// msgframe-bench's shared vocabulary: the scenarios, what a run of one measures, and the two
// sides every system provides (a server to start, a load client to drive it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

enum class Carrier { tcp, udp };

struct Scenario {
  std::string name;
  Carrier carrier = Carrier::tcp;
  std::size_t connections = 1;
  std::size_t in_flight_per_connection = 1;
  std::size_t payload_bytes = 64;
};

// pingpong, pipelined, bulk, fanin, fanin-10k, udp-pingpong, as issue #7 defines them.
const std::vector<Scenario>& all_scenarios();

// Call latencies in a log-linear histogram: fixed memory however many calls, percentiles within
// 3% of the true value.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void record(std::chrono::nanoseconds latency) noexcept;
  void merge(const LatencyHistogram& other);
  std::uint64_t count() const noexcept { return count_; }
  // The latency below which `fraction` (0..1) of the recorded calls fall; 0 when empty.
  double percentile_us(double fraction) const;

 private:
  static std::size_t bucket_of(std::uint64_t nanoseconds) noexcept;
  static std::uint64_t bucket_floor(std::size_t bucket) noexcept;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
};

// What a load client measured in its window.
struct LoadResult {
  std::uint64_t calls = 0;             // completed with a correct reply inside the window
  std::uint64_t payload_bytes = 0;     // echoed back, inside the window
  std::chrono::nanoseconds window{0};  // from the first call sent to the deadline
  LatencyHistogram latency;
  std::uint64_t wrong_replies = 0;  // a reply whose payload differs from the request's
  std::string failure;              // empty when the run worked; else what went wrong
};

// Every call's payload carries its sequence number in its first 8 bytes (fewer when shorter),
// the rest a fixed pattern: a reply matched to the wrong call, or corrupted, shows.
void write_payload(char* out, std::size_t bytes, std::uint64_t sequence) noexcept;
bool payload_matches(const char* data, std::size_t bytes, std::uint64_t sequence) noexcept;

struct LoadSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::chrono::milliseconds duration{5000};
  // Called once every connection of the scenario is open, before any call: the driver measures
  // the server's memory with all connections idle there.
  std::function<void()> on_connected;
};

struct ServeSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick one
  std::size_t threads = 1;
};

// A system's server runs in a process of its own: it binds (TCP and UDP on one port), prints
// "listening on PORT" and a newline to stdout, and serves until SIGTERM or SIGINT. Returns the
// process's exit code.
using ServeFunction = int (*)(const ServeSettings&);
// A system's load client: opens scenario.connections connections, keeps
// scenario.in_flight_per_connection echo calls of scenario.payload_bytes in flight on each until
// settings.duration has passed, checks every reply, then closes. Runs on the calling thread.
using LoadFunction = LoadResult (*)(const Scenario&, const LoadSettings&);

// Why a system cannot run a scenario at all (gRPC has no UDP, say); empty when it can.
using CannotRunFunction = std::string (*)(const Scenario&);

struct System {
  std::string name;
  ServeFunction serve;
  LoadFunction load;
  CannotRunFunction cannot_run = nullptr;  // nullptr: runs every scenario
};

}  // namespace bench
