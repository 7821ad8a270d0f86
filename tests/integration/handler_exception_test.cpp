// A completion handler that throws: the exception leaves io_context::run(), as an Asio handler's
// does, and the client goes on when run() is called again: the replies read with the one whose
// handler threw, later calls, the other calls that timed out, and UDP replies all complete.
#define BOOST_TEST_MODULE handler_exception
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
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
  msgframe::Server server(msgframe::test::loopback_options(1));
  msgframe::test::HeldEcho held;
  held.install(server.router());
  BOOST_TEST_REQUIRE(!server.start());
  asio::io_context io(1);
  msgframe::Client client(io.get_executor(), options_over(msgframe::Transport::tcp));
  BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));

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
  held.release();
}
