// msgframe-bench's msgframe system: msgframe::Server with Echo, driven by msgframe::Client.
#include "msgframe_system.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <iostream>
#include <memory>

#include "batch_clock.hpp"
#include "msgframe/client.hpp"
#include "msgframe/echo_service.hpp"
#include "msgframe/server.hpp"

namespace bench {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

int serve_msgframe(const ServeSettings& settings) {
  asio::io_context signals_context;
  asio::signal_set signals(signals_context, SIGINT, SIGTERM);
  msgframe::ServerOptions options;
  options.host = settings.host;
  options.port = settings.port;
  options.threads = settings.threads;
  msgframe::Server server(options);
  msgframe::add_echo_service(server.router());
  if (const auto error = server.start()) {
    std::cerr << "msgframe server: cannot listen: " << error.message() << '\n';
    return 1;
  }
  std::cout << "listening on " << server.port() << std::endl;
  signals.async_wait([](const boost::system::error_code&, int) {});
  signals_context.run();
  server.stop();
  return 0;
}

namespace {

// One connection's calls: `in_flight` chains, each sending its next call when the last returns.
class Caller {
 public:
  Caller(asio::io_context& io, BatchClock& clock, msgframe::ClientOptions options,
         const Scenario& scenario, LoadResult& result)
      : io_(io),
        clock_(clock),
        responses_(scenario.in_flight_per_connection),
        client_(io.get_executor(), std::move(options)),
        scenario_(scenario),
        result_(result) {}

  msgframe::Client& client() { return client_; }

  void start(Clock::time_point deadline, std::size_t& outstanding) {
    deadline_ = deadline;
    outstanding_ = &outstanding;
    const auto now = Clock::now();
    for (std::size_t chain = 0; chain < scenario_.in_flight_per_connection; ++chain) {
      call(chain, now);
    }
  }

 private:
  // `sent`: the time of the replies that start this call: the clock is read once per batch of
  // replies, as the raw client reads it (see BatchClock).
  void call(std::size_t chain, Clock::time_point sent) {
    const std::uint64_t sequence = next_sequence_++;
    // One request reused for every call: async_call serializes it before returning, and the
    // raw client, too, writes each payload into a buffer it keeps.
    auto& payload = *request_.mutable_payload();
    payload.resize(scenario_.payload_bytes);
    write_payload(payload.data(), payload.size(), sequence);
    ++*outstanding_;
    // Each chain's reply goes into a message of its own, reused: as an expert would write it,
    // and as raw's client reads replies into a buffer it keeps.
    auto& response = responses_[chain];
    client_.async_call_into(
        request_, response,
        [this, chain, sequence, sent, &response](boost::system::error_code error) {
          --*outstanding_;
          const auto now = clock_.now();
          if (error) {
            if (result_.failure.empty()) result_.failure = "a call failed: " + error.message();
            return finish_if_idle();
          }
          const auto& echoed = response.payload();
          if (echoed.size() != scenario_.payload_bytes ||
              !payload_matches(echoed.data(), echoed.size(), sequence)) {
            ++result_.wrong_replies;
          } else if (now <= deadline_) {
            ++result_.calls;
            result_.payload_bytes += echoed.size();
            result_.latency.record(now - sent);
          }
          if (now < deadline_ && result_.failure.empty()) return call(chain, now);
          finish_if_idle();
        });
  }

  void finish_if_idle() {
    if (*outstanding_ == 0) io_.stop();
  }

  asio::io_context& io_;
  BatchClock& clock_;
  // One per chain, reused; before client_, so that it outlives the calls that parse into it.
  std::vector<msgframe::v1::EchoResponse> responses_;
  msgframe::Client client_;
  msgframe::v1::EchoRequest request_;
  const Scenario& scenario_;
  LoadResult& result_;
  Clock::time_point deadline_;
  std::size_t* outstanding_ = nullptr;
  std::uint64_t next_sequence_ = 1;
};

// Runs `io` until something stops it, or `limit` passes; false at the limit.
bool run_for_at_most(asio::io_context& io, std::chrono::milliseconds limit) {
  bool timed_out = false;
  asio::steady_timer timer(io, limit);
  timer.async_wait([&](const boost::system::error_code& error) {
    if (error) return;
    timed_out = true;
    io.stop();
  });
  io.restart();
  io.run();
  return !timed_out;
}

}  // namespace

LoadResult load_msgframe(const Scenario& scenario, const LoadSettings& settings) {
  LoadResult result;
  asio::io_context io(1);
  BatchClock clock(io);
  msgframe::ClientOptions options;
  options.transport =
      scenario.carrier == Carrier::udp ? msgframe::Transport::udp : msgframe::Transport::tcp;
  options.executor_is_single_threaded = true;  // `io` runs on this thread only, as raw's does
  options.call_timeout = std::chrono::seconds(10);
  options.connect_timeout = std::chrono::seconds(10);
  options.udp_resend_interval = std::chrono::milliseconds(200);
  // Many idle connections must not each hold a 64 KiB read buffer in the load client.
  options.read_bytes = scenario.connections > 100 ? 4096 : 64 * 1024;

  std::vector<std::unique_ptr<Caller>> callers;
  callers.reserve(scenario.connections);
  // Connect in batches, so a large fan-in does not overrun the server's listen backlog.
  constexpr std::size_t batch = 256;
  for (std::size_t first = 0; first < scenario.connections; first += batch) {
    std::size_t pending = 0;
    for (std::size_t index = first; index < std::min(first + batch, scenario.connections);
         ++index) {
      callers.push_back(std::make_unique<Caller>(io, clock, options, scenario, result));
      ++pending;
      callers.back()->client().async_connect(settings.host, settings.port,
                                             [&](boost::system::error_code error) {
                                               if (error && result.failure.empty())
                                                 result.failure = "connect: " + error.message();
                                               if (--pending == 0) io.stop();
                                             });
    }
    if (!run_for_at_most(io, std::chrono::seconds(30))) {
      result.failure = "connecting took over 30 s";
    }
    if (!result.failure.empty()) return result;
  }
  if (settings.on_connected) settings.on_connected();

  std::size_t outstanding = 0;
  const auto start = Clock::now();
  const auto deadline = start + settings.duration;
  for (auto& caller : callers) caller->start(deadline, outstanding);
  const bool drained = run_for_at_most(io, settings.duration + std::chrono::seconds(15));
  result.window = std::chrono::duration_cast<std::chrono::nanoseconds>(settings.duration);
  if (!drained && result.failure.empty()) {
    result.failure = std::to_string(outstanding) + " calls still unanswered 15 s after the end";
  }
  for (auto& caller : callers) caller->client().close();
  io.restart();
  io.poll();
  return result;
}

}  // namespace bench
