// A completion handler that throws: the exception leaves io_context::run(), as an Asio handler's
// does, and the client goes on: the replies read with the one whose handler threw, later calls,
// the other calls that timed out, UDP replies, the other calls of a lost connection and the
// reconnect all happen.
#define BOOST_TEST_MODULE handler_exception
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>
#include <functional>
#include <stdexcept>
#include <string>

#include "msgframe/client.hpp"
#include "test_server.hpp"

namespace {

namespace asio = boost::asio;
namespace v1 = msgframe::v1;
using msgframe::test::echo_request;
using msgframe::test::generous;

struct HandlerFailure : std::runtime_error {
  HandlerFailure() : std::runtime_error("a handler threw") {}
};

// Runs `io` until it stops or `generous` passes; whether a HandlerFailure left run().
bool run_catching(asio::io_context& io) {
  io.restart();
  try {
    io.run_for(generous);
  } catch (const HandlerFailure&) {
    return true;
  }
  return false;
}

msgframe::ClientOptions options_over(msgframe::Transport transport) {
  msgframe::ClientOptions options;
  options.transport = transport;
  options.executor_is_single_threaded = true;
  return options;
}

// A server that holds every request until the end (HeldEcho), and a client connected to it on
// `io`: calls that stay in flight.
struct HeldCalls {
  HeldCalls() {
    echo.install(server.router());
    BOOST_TEST_REQUIRE(!server.start());
    BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));
  }
  ~HeldCalls() {
    echo.release();
    server.stop();
  }

  msgframe::test::HeldEcho echo;
  msgframe::Server server{msgframe::test::loopback_options(1)};
  asio::io_context io{1};
  msgframe::Client client{io.get_executor(), options_over(msgframe::Transport::tcp)};
};

// Calls `calls` echoes at once, the first one's handler throwing; then, once run() has been left
// by it, one call more. How many of the others, and of the one after, came back right.
int answered_after_a_throw(msgframe::Transport transport) {
  msgframe::test::TestServer server(msgframe::test::loopback_options(1));
  server.start();
  asio::io_context io(1);
  msgframe::Client client(io.get_executor(), options_over(transport));
  BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));

  constexpr int calls = 8;
  int answered = 0;
  int expected = calls - 1;
  const auto count = [&](boost::system::error_code error, const v1::EchoResponse& reply,
                         const std::string& text) {
    answered += !error && reply.payload() == text ? 1 : 0;
    if (answered == expected) io.stop();
  };
  for (int call = 0; call < calls; ++call) {
    const auto text = "call " + std::to_string(call);
    client.async_call<v1::EchoResponse>(
        echo_request(text),
        [&, call, text](boost::system::error_code error, v1::EchoResponse reply) {
          if (call == 0) throw HandlerFailure();
          count(error, reply, text);
        });
  }
  // In two runs at most: one left by the exception, one stopped once the rest are answered
  // (replies may come back in any order).
  bool threw = false;
  for (int run = 0; run < 2 && !(threw && answered == expected); ++run) threw |= run_catching(io);
  BOOST_TEST_REQUIRE(threw);
  BOOST_TEST(answered == calls - 1);

  expected = calls;
  client.async_call<v1::EchoResponse>(echo_request("after"),
                                      [&](boost::system::error_code error, v1::EchoResponse reply) {
                                        count(error, reply, "after");
                                      });
  BOOST_TEST(!run_catching(io));
  return answered;
}

}  // namespace

BOOST_AUTO_TEST_CASE(replies_over_tcp_go_on_after_a_handler_throws) {
  BOOST_TEST(answered_after_a_throw(msgframe::Transport::tcp) == 8);
}

BOOST_AUTO_TEST_CASE(replies_over_udp_go_on_after_a_handler_throws) {
  BOOST_TEST(answered_after_a_throw(msgframe::Transport::udp) == 8);
}

// The server holds every request: the calls time out, and the first one's handler throws.
BOOST_AUTO_TEST_CASE(the_other_timeouts_complete_after_a_timeout_handler_throws) {
  HeldCalls held;
  auto& io = held.io;
  auto& client = held.client;

  constexpr int calls = 4;
  int timed_out = 0;
  for (int call = 0; call < calls; ++call) {
    client.async_call<v1::EchoResponse>(
        echo_request("held"), msgframe::CallOptions{std::chrono::milliseconds(50)},
        [&, call](boost::system::error_code error, v1::EchoResponse) {
          if (call == 0) throw HandlerFailure();
          timed_out += error == msgframe::error::timeout ? 1 : 0;
          if (timed_out == calls - 1) io.stop();
        });
  }
  bool threw = false;
  for (int run = 0; run < 2 && !(threw && timed_out == calls - 1); ++run) {
    threw |= run_catching(io);
  }
  BOOST_TEST_REQUIRE(threw);
  BOOST_TEST(timed_out == calls - 1);
  BOOST_TEST(held.echo.wait_until_holding(calls, generous));
}

// A server that reads the calls and closes the connection: the calls are lost, and one of the
// user's handlers throws (`thrower`: the first lost call's, or on_disconnect). Still the other lost
// call completes, on_disconnect is told once and the client connects again.
enum class Thrower { lost_call, on_disconnect };

void lost_connection_goes_on_after(Thrower thrower) {
  asio::io_context io(1);
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  int accepted = 0;
  asio::ip::tcp::socket first_connection(io);
  asio::ip::tcp::socket second_connection(io);  // kept open: the reconnect stays connected
  std::array<char, 256> request_bytes{};
  acceptor.async_accept(first_connection, [&](boost::system::error_code error) {
    BOOST_TEST_REQUIRE(!error);
    ++accepted;
    // Closed once the calls have arrived: they are in flight, and lost with the connection.
    first_connection.async_read_some(
        asio::buffer(request_bytes), [&](boost::system::error_code, std::size_t) {
          first_connection.close();
          acceptor.async_accept(second_connection, [&](boost::system::error_code error) {
            accepted += error ? 0 : 1;
          });
        });
  });

  auto options = options_over(msgframe::Transport::tcp);
  options.reconnect = true;
  options.reconnect_backoff_min = std::chrono::milliseconds(10);
  int disconnects = 0;
  options.on_disconnect = [&](boost::system::error_code reason) {
    disconnects += reason == msgframe::error::connection_lost ? 1 : 0;
    if (thrower == Thrower::on_disconnect) throw HandlerFailure();
  };
  msgframe::Client client(io.get_executor(), options);
  BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, acceptor.local_endpoint().port()));

  int lost = 0;
  const int expected_lost = thrower == Thrower::lost_call ? 1 : 2;
  for (int call = 0; call < 2; ++call) {
    client.async_call<v1::EchoResponse>(
        echo_request("lost"), [&, call](boost::system::error_code error, v1::EchoResponse) {
          if (call == 0 && thrower == Thrower::lost_call) throw HandlerFailure();
          lost += error == msgframe::error::connection_lost ? 1 : 0;
        });
  }
  // Stops once the second connection is accepted, or after `generous`.
  asio::steady_timer poll(io);
  const auto done = [&] { return accepted == 2 && lost == expected_lost && disconnects == 1; };
  std::function<void()> check = [&] {
    if (done()) return io.stop();
    poll.expires_after(std::chrono::milliseconds(5));
    poll.async_wait([&](boost::system::error_code) { check(); });
  };
  check();
  bool threw = false;
  for (int run = 0; run < 2 && !(threw && done()); ++run) threw |= run_catching(io);
  BOOST_TEST(threw);
  BOOST_TEST(lost == expected_lost);
  BOOST_TEST(disconnects == 1);
  BOOST_TEST(accepted == 2);
}

BOOST_AUTO_TEST_CASE(a_lost_connection_ends_and_reconnects_after_a_handler_throws) {
  lost_connection_goes_on_after(Thrower::lost_call);
}

BOOST_AUTO_TEST_CASE(the_client_reconnects_after_on_disconnect_throws) {
  lost_connection_goes_on_after(Thrower::on_disconnect);
}

// close() with two calls in flight: the first one's handler throws, and still the second one
// completes, with the close's reason.
BOOST_AUTO_TEST_CASE(a_close_ends_every_call_after_a_handler_throws) {
  HeldCalls held;
  auto& io = held.io;
  auto& client = held.client;

  int closed = 0;
  for (int call = 0; call < 2; ++call) {
    client.async_call<v1::EchoResponse>(
        echo_request("held"), [&, call](boost::system::error_code error, v1::EchoResponse) {
          if (call == 0) throw HandlerFailure();
          closed += error == msgframe::error::connection_lost ? 1 : 0;
          io.stop();
        });
  }
  // Closed once the server holds both: both are in flight.
  asio::steady_timer poll(io);
  std::function<void()> close_once_held = [&] {
    if (held.echo.wait_until_holding(2, std::chrono::seconds(0))) return client.close();
    poll.expires_after(std::chrono::milliseconds(5));
    poll.async_wait([&](boost::system::error_code) { close_once_held(); });
  };
  close_once_held();
  bool threw = false;
  for (int run = 0; run < 2 && !(threw && closed == 1); ++run) threw |= run_catching(io);
  BOOST_TEST(threw);
  BOOST_TEST(closed == 1);
}
