// UDP: the unframed datagram transport end to end, on loopback — Echo and Time, datagram limits,
// garbage that must not disturb anyone, loss and duplication through a lossy relay, and the
// client's automatic fallback from TCP to UDP and back.
#define BOOST_TEST_MODULE udp
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>
#include <functional>
#include <future>
#include <mutex>
#include <random>

#include "msgframe/client.hpp"
#include "test_server.hpp"

namespace asio = boost::asio;
using asio::ip::udp;
using msgframe::Client;
using msgframe::Transport;
using msgframe::test::echo_request;
using msgframe::test::generous;
using msgframe::test::TestServer;
namespace v1 = msgframe::v1;

namespace {

msgframe::ClientOptions udp_options() {
  msgframe::ClientOptions options;
  options.transport = Transport::udp;
  return options;
}

std::string datagram_of(std::uint64_t id, int kind, std::string_view type, std::string payload) {
  v1::Envelope envelope;
  envelope.set_id(id);
  envelope.set_kind(static_cast<v1::Kind>(kind));
  envelope.set_type(std::string(type));
  envelope.set_payload(std::move(payload));
  return envelope.SerializeAsString();
}

// Waits at most 10 s for one datagram on a raw socket.
std::optional<v1::Envelope> receive_envelope(udp::socket& socket) {
  auto& context = static_cast<asio::io_context&>(socket.get_executor().context());
  std::string buffer(70000, '\0');
  std::optional<std::size_t> received;
  socket.async_receive(asio::buffer(buffer), [&](boost::system::error_code error, std::size_t n) {
    if (!error) received = n;
  });
  context.restart();
  context.run_for(std::chrono::seconds(10));
  if (!received) {
    socket.cancel();
    context.restart();
    context.run_for(std::chrono::seconds(1));
    return std::nullopt;
  }
  v1::Envelope envelope;
  if (!envelope.ParseFromArray(buffer.data(), static_cast<int>(*received))) return std::nullopt;
  return envelope;
}

}  // namespace

BOOST_AUTO_TEST_CASE(echo_and_time_over_udp) {
  TestServer server;
  server.start();
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  BOOST_TEST((client.transport() == Transport::udp));
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request("over udp"), generous).payload() ==
             "over udp");
  const auto time = client.call<v1::TimeResponse>(v1::TimeRequest{}, generous);
  BOOST_TEST(time.rfc3339() == msgframe::format_rfc3339_nanos(time.unix_nanos()));
  BOOST_TEST(client.stats().calls_over_udp == 2u);
  BOOST_TEST(client.stats().calls_over_tcp == 0u);
  BOOST_TEST(server.server.stats().datagrams_received >= 2u);
  BOOST_TEST(server.server.stats().sessions_accepted == 0u);  // no TCP involved
}

BOOST_AUTO_TEST_CASE(echo_over_udp_on_ipv6) {
  auto options = msgframe::test::loopback_options();
  options.host = "::1";
  TestServer server(options);
  server.start();
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("::1", server.port()));
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request("v6 datagram"), generous).payload() ==
             "v6 datagram");
}

BOOST_AUTO_TEST_CASE(a_sixty_thousand_byte_payload) {
  TestServer server;
  server.start();
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  std::string payload(60000, 'x');
  for (std::size_t index = 0; index < payload.size(); ++index) payload[index] = 'a' + index % 26;
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request(payload), generous).payload() == payload);
}

BOOST_AUTO_TEST_CASE(a_request_over_the_datagram_limit_fails_at_once) {
  TestServer server;
  server.start();
  auto options = udp_options();
  options.max_datagram_bytes = 1200;
  Client client(options);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  boost::system::error_code error;
  client.call<v1::EchoResponse>(echo_request(std::string(2000, 'x')), generous, error);
  BOOST_TEST(error == msgframe::error::frame_too_large);
  BOOST_TEST(client.stats().calls_over_udp == 0u);
  BOOST_TEST(server.server.stats().datagrams_received == 0u);
}

BOOST_AUTO_TEST_CASE(a_reply_too_big_for_a_datagram_gets_frame_too_large) {
  auto server_options = msgframe::test::loopback_options();
  server_options.max_datagram_bytes = 1200;
  msgframe::Server server(server_options);
  server.handle<v1::EchoRequest>([](const v1::EchoRequest& request) {
    v1::EchoResponse response;
    response.set_payload(std::string(std::stoul(request.payload()), 'y'));
    return response;
  });
  BOOST_TEST_REQUIRE(!server.start());
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  boost::system::error_code error;
  std::string message;
  client.call<v1::EchoResponse>(echo_request("5000"), generous, error, &message);
  BOOST_TEST(error == msgframe::error::frame_too_large);
  BOOST_TEST(message.find("1200") != std::string::npos);
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request("100"), generous).payload().size() == 100u);
}

// Even the FRAME_TOO_LARGE error does not fit a 40-byte limit: it is dropped and counted, the
// call times out, and the endpoint keeps serving replies that fit.
BOOST_AUTO_TEST_CASE(an_error_too_large_for_the_datagram_limit_is_dropped) {
  auto server_options = msgframe::test::loopback_options();
  server_options.max_datagram_bytes = 40;
  msgframe::Server server(server_options);
  server.handle<v1::EchoRequest>([](const v1::EchoRequest& request) {
    v1::EchoResponse response;
    response.set_payload(request.payload().empty() ? "" : std::string(100, 'x'));
    return response;
  });
  BOOST_TEST_REQUIRE(!server.start());
  auto options = udp_options();
  options.udp_resends = 0;
  Client client(options);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  boost::system::error_code error;
  client.call<v1::EchoResponse>(echo_request("big"), std::chrono::milliseconds(300), error);
  BOOST_TEST(error == msgframe::error::timeout);
  BOOST_TEST(server.stats().datagrams_dropped == 1u);
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request(""), generous).payload().empty());
}

// stop() waits for coroutine handlers serving UDP requests, but not past its drain timeout.
BOOST_AUTO_TEST_CASE(stop_is_bounded_by_udp_handlers_that_never_finish) {
  auto server_options = msgframe::test::loopback_options(1);
  server_options.serve_tcp = false;
  server_options.drain_timeout = std::chrono::milliseconds(200);
  auto server = std::make_unique<msgframe::Server>(server_options);
  std::promise<void> started;
  server->handle<v1::EchoRequest>([&](v1::EchoRequest) -> asio::awaitable<v1::EchoResponse> {
    started.set_value();
    asio::steady_timer forever(co_await asio::this_coro::executor, std::chrono::hours(1));
    co_await forever.async_wait(asio::use_awaitable);
    co_return v1::EchoResponse{};
  });
  BOOST_TEST_REQUIRE(!server->start());
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server->port()));
  auto never = client.async_call<v1::EchoResponse>(echo_request("x"), asio::use_future);
  started.get_future().wait();
  const auto before = std::chrono::steady_clock::now();
  server.reset();
  const auto took = std::chrono::steady_clock::now() - before;
  BOOST_TEST(took >= std::chrono::milliseconds(200));  // it did wait for the handler
  BOOST_TEST(took < std::chrono::seconds(30));         // and gave up on it
}

BOOST_AUTO_TEST_CASE(garbage_datagrams_are_dropped_without_reply_and_disturb_no_one) {
  auto server_options = msgframe::test::loopback_options();
  server_options.max_datagram_bytes = 1200;
  TestServer server(server_options);
  server.start();
  Client client(udp_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));

  asio::io_context io;
  udp::socket raw(io, udp::endpoint(asio::ip::address_v4::loopback(), 0));
  const udp::endpoint target(asio::ip::address_v4::loopback(), server.port());
  const std::vector<std::string> garbage = {
      "",                                                 // empty
      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",     // not protobuf
      datagram_of(5, 0, "msgframe.v1.EchoRequest", ""),   // kind unspecified
      datagram_of(6, 2, "msgframe.v1.EchoResponse", ""),  // a response, sent to the server
      datagram_of(7, 1, "msgframe.v1.EchoRequest", std::string(1300, 'z')),  // over the limit
  };
  for (const auto& datagram : garbage) {
    raw.send_to(asio::buffer(datagram), target);
    // The well-behaved client is served between every piece of garbage.
    BOOST_TEST(client.call<v1::EchoResponse>(echo_request("still here"), generous).payload() ==
               "still here");
  }
  v1::EchoRequest request;
  request.set_payload("valid");
  raw.send_to(
      asio::buffer(datagram_of(8, 1, "msgframe.v1.EchoRequest", request.SerializeAsString())),
      target);
  // The first datagram the raw socket gets back answers id 8: nothing answered the garbage.
  const auto reply = receive_envelope(raw);
  BOOST_TEST_REQUIRE(reply.has_value());
  BOOST_TEST(reply->id() == 8u);
  BOOST_TEST(server.server.stats().datagrams_dropped == garbage.size());
}

// A relay between client and server that drops and duplicates datagrams, with a fixed seed.
class LossyRelay {
 public:
  LossyRelay(asio::io_context& io, std::uint16_t server_port, double drop, double duplicate)
      : client_side_(io, udp::endpoint(asio::ip::address_v4::loopback(), 0)),
        server_side_(io, udp::endpoint(asio::ip::address_v4::loopback(), 0)),
        server_(asio::ip::address_v4::loopback(), server_port),
        drop_(drop),
        duplicate_(duplicate) {
    from_client();
    from_server();
  }
  std::uint16_t port() const { return client_side_.local_endpoint().port(); }
  void close() {
    client_side_.close();
    server_side_.close();
  }
  int dropped = 0;
  int duplicated = 0;

 private:
  void forward(udp::socket& out, const std::string& datagram, const udp::endpoint& to) {
    const double roll = std::uniform_real_distribution<double>(0, 1)(random_);
    if (roll < drop_) {
      ++dropped;
      return;
    }
    out.send_to(asio::buffer(datagram), to);
    if (roll < drop_ + duplicate_) {
      ++duplicated;
      out.send_to(asio::buffer(datagram), to);
    }
  }
  void from_client() {
    client_side_.async_receive_from(asio::buffer(client_buffer_), client_,
                                    [this](boost::system::error_code error, std::size_t bytes) {
                                      if (error) return;
                                      forward(server_side_, client_buffer_.substr(0, bytes),
                                              server_);
                                      from_client();
                                    });
  }
  void from_server() {
    server_side_.async_receive(asio::buffer(server_buffer_),
                               [this](boost::system::error_code error, std::size_t bytes) {
                                 if (error) return;
                                 forward(client_side_, server_buffer_.substr(0, bytes), client_);
                                 from_server();
                               });
  }

  udp::socket client_side_;
  udp::socket server_side_;
  udp::endpoint server_;
  udp::endpoint client_;
  std::string client_buffer_ = std::string(70000, '\0');
  std::string server_buffer_ = std::string(70000, '\0');
  double drop_;
  double duplicate_;
  std::mt19937 random_{20261125};
};

// The property: every call completes exactly once, with its own reply or a timeout, never a
// wrong or duplicated result. The relay's seeded losses must be the only ones: calls are paced
// (at most `window` in flight, so that no burst overflows a socket buffer, under ASan and
// ctest -j too), and each try waits 200 ms, far longer than a reply takes, even a slow one.
BOOST_AUTO_TEST_CASE(lost_and_duplicated_datagrams_give_each_call_one_right_answer_or_a_timeout) {
  TestServer server;
  server.start();
  asio::io_context io;
  LossyRelay relay(io, server.port(), 0.25, 0.15);
  auto options = udp_options();
  options.udp_resend_interval = std::chrono::milliseconds(200);
  options.udp_resends = 6;
  Client client(io.get_executor(), options);
  constexpr int calls = 400;
  constexpr int window = 32;
  std::vector<int> completions(calls, 0);
  int succeeded = 0, timed_out = 0, wrong = 0, finished = 0, started = 0;
  std::function<void()> start_next = [&] {
    const int index = started++;
    const std::string text = "call " + std::to_string(index);
    client.async_call<v1::EchoResponse>(
        echo_request(text), msgframe::CallOptions{std::chrono::seconds(10)},
        [&, index, text](boost::system::error_code error, v1::EchoResponse reply) {
          ++completions[index];
          if (!error && reply.payload() == text) {
            ++succeeded;
          } else if (error == msgframe::error::timeout) {
            ++timed_out;
          } else {
            ++wrong;
          }
          if (started < calls) start_next();
          if (++finished == calls) {
            client.close();
            relay.close();  // the io_context then runs out of work
          }
        });
  };
  client.async_connect("127.0.0.1", relay.port(), [&](boost::system::error_code error) {
    BOOST_TEST_REQUIRE(!error);
    while (started < window) start_next();
  });
  const auto began = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(30));  // about 3 s are expected, 7 tries of one call 1.4 s
  const auto took = std::chrono::steady_clock::now() - began;
  BOOST_TEST(finished == calls);
  BOOST_TEST(wrong == 0);
  BOOST_TEST(std::count(completions.begin(), completions.end(), 1) == calls);  // once each
  BOOST_TEST(succeeded + timed_out == calls);
  BOOST_TEST(succeeded > calls * 9 / 10);  // 7 tries at 56% each: a timeout is rare
  BOOST_TEST(relay.dropped > 0);
  BOOST_TEST(relay.duplicated > 0);
  BOOST_TEST(client.stats().udp_resends > 0u);
  BOOST_TEST_MESSAGE("lossy relay: "
                     << succeeded << " answered, " << timed_out << " timed out, " << relay.dropped
                     << " dropped, " << relay.duplicated << " duplicated, "
                     << client.stats().udp_resends << " resends, in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                     << " ms");
}

BOOST_AUTO_TEST_CASE(automatic_transport_falls_back_to_udp_and_returns_to_tcp) {
  // A TCP socket bound but not listening holds the port: TCP connects are refused, and no other
  // socket (a client's ephemeral port, say) can take it before the TCP server below does.
  asio::io_context io;
  asio::ip::tcp::acceptor tcp_port_holder(io);
  tcp_port_holder.open(asio::ip::tcp::v4());
  tcp_port_holder.bind({asio::ip::address_v4::loopback(), 0});
  const auto port = tcp_port_holder.local_endpoint().port();
  auto udp_only = msgframe::test::loopback_options();
  udp_only.port = port;
  udp_only.serve_tcp = false;
  TestServer udp_server(udp_only);
  udp_server.start();

  std::mutex changes_mutex;
  std::vector<Transport> changes;
  std::promise<void> back_on_tcp;
  msgframe::ClientOptions options;
  options.transport = Transport::automatic;
  options.reconnect_backoff_min = std::chrono::milliseconds(20);
  options.reconnect_backoff_max = std::chrono::milliseconds(100);
  options.on_transport_change = [&](Transport transport) {
    const std::lock_guard lock(changes_mutex);
    changes.push_back(transport);
    if (transport == Transport::tcp) back_on_tcp.set_value();
  };
  Client client(options);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", port));  // TCP refused: UDP serves
  BOOST_TEST((client.transport() == Transport::udp));
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request("fallback"), generous).payload() ==
             "fallback");
  BOOST_TEST(client.stats().calls_over_udp == 1u);
  BOOST_TEST(client.stats().fallbacks_to_udp == 1u);
  // While TCP is down, a call too big for a datagram fails at once rather than wait for TCP.
  boost::system::error_code too_big;
  client.call<v1::EchoResponse>(echo_request(std::string(70000, 'x')), generous, too_big);
  BOOST_TEST(too_big == msgframe::error::frame_too_large);
  BOOST_TEST(client.stats().calls_over_udp == 1u);  // it was not sent

  // TCP comes back on the same port: the client reconnects in the background and moves back.
  auto tcp_only = msgframe::test::loopback_options();
  tcp_only.port = port;
  tcp_only.serve_udp = false;
  tcp_port_holder.close();
  auto tcp_server = std::make_unique<TestServer>(tcp_only);
  tcp_server->start();
  BOOST_TEST_REQUIRE((back_on_tcp.get_future().wait_for(generous) == std::future_status::ready));
  BOOST_TEST((client.transport() == Transport::tcp));
  BOOST_TEST(client.call<v1::EchoResponse>(echo_request("tcp again"), generous).payload() ==
             "tcp again");
  BOOST_TEST(client.stats().calls_over_tcp == 1u);
  BOOST_TEST(client.stats().tcp_reconnects == 1u);
  BOOST_TEST(tcp_server->server.stats().requests == 1u);

  // TCP goes away again: calls move to UDP once more.
  tcp_server.reset();
  std::string reply;
  for (int attempt = 0; attempt < 50 && reply.empty(); ++attempt) {
    boost::system::error_code error;  // a call caught on the dying connection is lost, not retried
    reply = client.call<v1::EchoResponse>(echo_request("udp again"), generous, error).payload();
  }
  BOOST_TEST(reply == "udp again");
  BOOST_TEST(client.stats().fallbacks_to_udp == 2u);
  const std::lock_guard lock(changes_mutex);
  BOOST_TEST((changes == std::vector<Transport>{Transport::udp, Transport::tcp, Transport::udp}));
}

// close() ends the automatic transport's reconnect attempts, even those whose timer or connect
// completion is already queued: after a connect() that follows at once, a stale attempt must not
// reschedule itself, close the socket the new connect uses, or connect it somewhere else.
BOOST_AUTO_TEST_CASE(close_then_connect_in_automatic_mode_keeps_calls_on_tcp) {
  // TCP refused, UDP served: a client of this port falls back and keeps trying TCP.
  asio::io_context io;
  asio::ip::tcp::acceptor tcp_port_holder(io);
  tcp_port_holder.open(asio::ip::tcp::v4());
  tcp_port_holder.bind({asio::ip::address_v4::loopback(), 0});
  const auto refusing_port = tcp_port_holder.local_endpoint().port();
  auto udp_only = msgframe::test::loopback_options();
  udp_only.port = refusing_port;
  udp_only.serve_tcp = false;
  TestServer udp_server(udp_only);
  udp_server.start();
  TestServer full_server;
  full_server.start();

  msgframe::ClientOptions options;
  options.transport = Transport::automatic;
  // Attempts back to back (0 or 1 ms apart): one is nearly always in progress at the close.
  options.reconnect_backoff_min = std::chrono::milliseconds(1);
  options.reconnect_backoff_max = std::chrono::milliseconds(1);
  Client client(options);
  constexpr int rounds = 30;
  for (int round = 0; round < rounds; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", refusing_port));
      BOOST_TEST_REQUIRE((client.transport() == Transport::udp));
      client.close();  // queued on the strand just before the connect below
      auto connected = client.async_connect("127.0.0.1", full_server.port(), asio::use_future);
      BOOST_TEST_REQUIRE((connected.wait_for(generous) == std::future_status::ready));
      connected.get();
      BOOST_TEST((client.transport() == Transport::tcp));
      const auto tcp_calls = client.stats().calls_over_tcp;
      const std::string text = "round " + std::to_string(round);
      boost::system::error_code error;
      BOOST_TEST(client.call<v1::EchoResponse>(echo_request(text), generous, error).payload() ==
                 text);
      BOOST_TEST(!error, error.message());
      BOOST_TEST(client.stats().calls_over_tcp == tcp_calls + 1);
      client.close();
    }
  }
  // One fallback per connect to the refusing port, none after a connect to the full server, and
  // no background reconnect ever reached it: each of its sessions is one of our connects.
  BOOST_TEST(client.stats().fallbacks_to_udp == static_cast<std::uint64_t>(rounds));
  BOOST_TEST(client.stats().tcp_reconnects == 0u);
  BOOST_TEST(full_server.server.stats().sessions_accepted == static_cast<std::uint64_t>(rounds));
}

BOOST_AUTO_TEST_CASE(one_way_requests_go_over_udp_too) {
  msgframe::Server server(msgframe::test::loopback_options());
  std::promise<std::string> received;
  server.handle<v1::EchoRequest>([&](const v1::EchoRequest& request) {
    received.set_value(request.payload());
    return v1::EchoResponse{};
  });
  BOOST_TEST_REQUIRE(!server.start());
  Client client(udp_options());
  BOOST_TEST(client.send(echo_request("before connect")) == msgframe::error::not_connected);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  BOOST_TEST(!client.send(echo_request("fire and forget")));
  auto payload = received.get_future();
  BOOST_TEST_REQUIRE((payload.wait_for(generous) == std::future_status::ready));
  BOOST_TEST(payload.get() == "fire and forget");
  BOOST_TEST(server.stats().sessions_accepted == 0u);
}

BOOST_AUTO_TEST_CASE(a_client_closed_while_connecting_stays_closed) {
  TestServer server;
  server.start();
  for (const auto transport : {Transport::tcp, Transport::udp, Transport::automatic}) {
    msgframe::ClientOptions options;
    options.transport = transport;
    Client client(options);
    auto connected = client.async_connect("127.0.0.1", server.port(), asio::use_future);
    client.close();
    const auto error = [&] {
      try {
        connected.get();
        return boost::system::error_code{};
      } catch (const boost::system::system_error& failure) {
        return failure.code();
      }
    }();
    BOOST_TEST((!error || error == asio::error::operation_aborted), error.message());
    boost::system::error_code call_error;  // processed after the close: nothing is connected
    client.call<v1::EchoResponse>(echo_request("x"), generous, call_error);
    BOOST_TEST(call_error == msgframe::error::not_connected);
    BOOST_TEST(!client.is_connected());
  }
}
