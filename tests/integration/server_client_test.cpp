// The server and the client together on loopback: calls with every kind of completion token,
// pipelining, concurrency, every documented error outcome, deadlines and a dying server.
#define BOOST_TEST_MODULE server_client
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include "msgframe/client.hpp"
#include "test_server.hpp"

namespace asio = boost::asio;
using msgframe::Client;
using msgframe::test::TestServer;
namespace v1 = msgframe::v1;

namespace {

constexpr auto generous = std::chrono::seconds(20);

v1::EchoRequest echo_request(std::string text, bool uppercase = false) {
  v1::EchoRequest request;
  request.set_payload(std::move(text));
  request.set_uppercase(uppercase);
  return request;
}

}  // namespace

BOOST_AUTO_TEST_CASE(blocking_calls_to_echo_and_time) {
  TestServer server;
  server.start();
  Client client;
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  const auto echoed =
      client.call<v1::EchoResponse>(echo_request("Hello, msgframe!", true), generous);
  BOOST_TEST(echoed.payload() == "HELLO, MSGFRAME!");
  const auto before = std::chrono::system_clock::now();
  const auto time = client.call<v1::TimeResponse>(v1::TimeRequest{}, generous);
  const auto after = std::chrono::system_clock::now();
  const auto nanos = [](auto point) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(point.time_since_epoch()).count();
  };
  BOOST_TEST(time.unix_nanos() >= nanos(before));
  BOOST_TEST(time.unix_nanos() <= nanos(after));
  BOOST_TEST(time.rfc3339() == msgframe::format_rfc3339_nanos(time.unix_nanos()));
}

BOOST_AUTO_TEST_CASE(every_completion_token) {
  TestServer server;
  server.start();
  asio::io_context io;
  Client client(io.get_executor());
  std::string callback_reply, awaited_reply, deferred_reply;
  client.async_connect("127.0.0.1", server.port(), [&](boost::system::error_code error) {
    BOOST_TEST_REQUIRE(!error);
    client.async_call<v1::EchoResponse>(echo_request("callback"),
                                        [&](boost::system::error_code error, v1::EchoResponse r) {
                                          BOOST_TEST(!error);
                                          callback_reply = r.payload();
                                        });
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const auto reply = co_await client.async_call<v1::EchoResponse>(echo_request("awaited"),
                                                                          asio::use_awaitable);
          awaited_reply = reply.payload();
          auto operation =
              client.async_call<v1::EchoResponse>(echo_request("deferred"), asio::deferred);
          const auto [error, deferred] =
              co_await std::move(operation)(asio::as_tuple(asio::use_awaitable));
          BOOST_TEST(!error);
          deferred_reply = deferred.payload();
          client.close();
        },
        asio::detached);
  });
  io.run_for(generous);
  BOOST_TEST(callback_reply == "callback");
  BOOST_TEST(awaited_reply == "awaited");
  BOOST_TEST(deferred_reply == "deferred");

  Client threaded;  // its own I/O thread: use_future from this one
  BOOST_TEST_REQUIRE(!threaded.connect("127.0.0.1", server.port()));
  auto future = threaded.async_call<v1::EchoResponse>(echo_request("future"), asio::use_future);
  BOOST_TEST(future.get().payload() == "future");
}
