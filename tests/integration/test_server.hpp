// Integration test support: a real msgframe::Server on 127.0.0.1 with the built-in services,
// started on a free port and stopped at the end of the test.
#pragma once

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "msgframe/client.hpp"
#include "msgframe/echo_service.hpp"
#include "msgframe/server.hpp"
#include "msgframe/time_service.hpp"

namespace msgframe::test {

// How long a test waits for what must happen: long enough for a loaded 2-core machine.
inline constexpr auto generous = std::chrono::seconds(20);

inline v1::EchoRequest echo_request(std::string text, bool uppercase = false) {
  v1::EchoRequest request;
  request.set_payload(std::move(text));
  request.set_uppercase(uppercase);
  return request;
}

inline ServerOptions loopback_options(std::size_t threads = 2) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = threads;
  return options;
}

class TestServer {
 public:
  explicit TestServer(ServerOptions options = loopback_options()) : server(std::move(options)) {
    add_echo_service(server.router());
    add_time_service(server.router());
  }
  void start() {
    const auto error = server.start();
    BOOST_TEST_REQUIRE(!error, "server did not start: " << error.message());
  }
  std::uint16_t port() const { return server.port(); }

  Server server;
};

// Connects `client`, whose executor is `io`'s, running `io` until it has; whether it did.
inline bool connect_on(boost::asio::io_context& io, Client& client, std::uint16_t port) {
  bool connected = false;
  client.async_connect("127.0.0.1", port, [&](boost::system::error_code error) {
    connected = !error;
    io.stop();
  });
  io.restart();
  io.run_for(generous);
  return connected;
}

// Options whose log sets `timed_out` when stop() runs out of drain_timeout (60 s here): a
// test that expects sessions to close by themselves checks that it stays false.
inline ServerOptions draining_options(std::atomic<bool>& timed_out, std::size_t threads = 1) {
  auto options = loopback_options(threads);
  options.drain_timeout = std::chrono::seconds(60);
  options.log = [&timed_out](const std::string& line) {
    if (line.find("drain timeout") != std::string::npos) timed_out = true;
  };
  return options;
}

// An echo handler that holds each request until release(): requests in flight on demand. Call
// release() before the server stops, and make the server outlive it.
class HeldEcho {
 public:
  void install(Router& router) {
    router.handle<v1::EchoRequest>(
        [this](v1::EchoRequest request) -> boost::asio::awaitable<v1::EchoResponse> {
          auto timer = std::make_shared<boost::asio::steady_timer>(
              co_await boost::asio::this_coro::executor,
              boost::asio::steady_timer::time_point::max());
          if (hold(timer)) {
            co_await timer->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
          }
          co_return echo(request);
        });
  }

  // Whether `count` requests are held within `deadline`.
  bool wait_until_holding(std::size_t count, std::chrono::seconds deadline) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, deadline, [&] { return held_.size() >= count; });
  }

  void release() {
    const std::lock_guard lock(mutex_);
    released_ = true;
    // The timers go with the cancels: none may outlive the server's io_context.
    for (auto& timer : held_) {
      const auto executor = timer->get_executor();
      boost::asio::post(executor, [timer = std::move(timer)] { timer->cancel(); });
    }
    held_.clear();
  }

 private:
  bool hold(const std::shared_ptr<boost::asio::steady_timer>& timer) {
    const std::lock_guard lock(mutex_);
    if (released_) return false;
    held_.push_back(timer);
    changed_.notify_all();
    return true;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> held_;
  bool released_ = false;
};

}  // namespace msgframe::test
