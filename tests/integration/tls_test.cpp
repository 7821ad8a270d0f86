// TLS: calls over a verified connection, servers and clients refused for their certificates,
// plaintext at a TLS port, no downgrade to UDP, and a clean stop. The certificates are made for
// the run by make_test_certs.sh (a ctest fixture); the folder is the first argument.
#define BOOST_TEST_MODULE tls
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include "msgframe/client.hpp"
#include "msgframe/envelope.hpp"
#include "test_server.hpp"

namespace asio = boost::asio;
using msgframe::Client;
using msgframe::test::echo_request;
using msgframe::test::generous;
using msgframe::test::TestServer;
namespace v1 = msgframe::v1;

namespace {

std::string certificate(const std::string& name) {
  const auto& arguments = boost::unit_test::framework::master_test_suite().argv;
  if (boost::unit_test::framework::master_test_suite().argc < 2) {
    throw std::runtime_error("usage: tls_test -- CERTIFICATE_FOLDER (see make_test_certs.sh)");
  }
  return std::string(arguments[1]) + "/" + name;
}

msgframe::TlsServerOptions server_tls(bool mutual = false) {
  msgframe::TlsServerOptions tls;
  tls.certificate_file = certificate("server.crt");
  tls.private_key_file = certificate("server.key");
  if (mutual) tls.client_ca_file = certificate("ca.crt");
  return tls;
}

msgframe::ServerOptions tls_server_options(bool mutual = false) {
  auto options = msgframe::test::loopback_options(2);
  options.tls = server_tls(mutual);
  return options;
}

msgframe::ClientOptions tls_client_options(const std::string& ca = "ca.crt") {
  msgframe::ClientOptions options;
  options.tls.emplace();
  options.tls->ca_file = certificate(ca);
  return options;
}

// Whether a call on `client` is answered: a refused client's handshake may complete on its side
// (TLS 1.3 checks the client's certificate after the client's last handshake message), so the
// refusal can surface at the first call instead of at connect().
bool echo_works(Client& client) {
  try {
    return client.call<v1::EchoResponse>(echo_request("hello"), generous).payload() == "hello";
  } catch (const boost::system::system_error&) {
    return false;
  }
}

bool wait_for(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + generous;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Reads what the server sends until it closes; false if it is still open after the deadline.
bool closed_by_server(asio::ip::tcp::socket& socket) {
  timeval timeout{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char buffer[4096];
  for (int reads = 0; reads < 100; ++reads) {
    const auto received = ::recv(socket.native_handle(), buffer, sizeof buffer, 0);
    if (received == 0) return true;
    if (received < 0) return errno != EAGAIN && errno != EWOULDBLOCK;  // reset: closed too
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(calls_over_tls_to_a_verified_server) {
  TestServer server(tls_server_options());
  server.start();
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    BOOST_TEST_CONTEXT("host " << host) {
      Client client(tls_client_options());
      const auto error = client.connect(host, server.port());
      BOOST_TEST_REQUIRE(!error, error.message());
      BOOST_TEST(echo_works(client));
      BOOST_TEST(client.call<v1::TimeResponse>(v1::TimeRequest{}, generous).unix_nanos() > 0);

      // Pipelined calls and a large payload: many frames per TLS record and many records per frame.
      std::vector<std::future<v1::EchoResponse>> replies;
      for (int index = 0; index < 1000; ++index) {
        replies.push_back(
            client.async_call<v1::EchoResponse>(echo_request("call " + std::to_string(index)),
                                                msgframe::CallOptions{generous}, asio::use_future));
      }
      for (int index = 0; index < 1000; ++index) {
        BOOST_TEST(replies[index].get().payload() == "call " + std::to_string(index));
      }
      const std::string large(1 << 20, 'L');
      BOOST_TEST(client.call<v1::EchoResponse>(echo_request(large), generous).payload() == large);
    }
  }
  BOOST_TEST(server.server.stats().tls_handshakes_failed == 0u);
}

// Large buffers are looked at once a second while traffic goes on; with TLS a read is always in
// progress into them. A stream of 1 MiB echoes lasting past several looks arrives intact.
BOOST_AUTO_TEST_CASE(a_stream_of_large_messages_over_tls_is_intact) {
  TestServer server(tls_server_options());
  server.start();
  Client client(tls_client_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
  int echoes = 0;
  for (; echoes < 2000 && std::chrono::steady_clock::now() < until; ++echoes) {
    const auto request =
        echo_request(std::string((1 << 20) + echoes, static_cast<char>('a' + echoes % 26)));
    const auto reply = client.call<v1::EchoResponse>(request, generous);
    BOOST_TEST_REQUIRE(reply.payload() == request.payload(), "echo " << echoes);
  }
  BOOST_TEST(echoes > 10);
}

BOOST_AUTO_TEST_CASE(an_untrusted_or_misnamed_server_is_refused) {
  TestServer server(tls_server_options());
  server.start();
  {
    Client trusting_other_ca(tls_client_options("rogue-ca.crt"));
    BOOST_TEST(trusting_other_ca.connect("127.0.0.1", server.port()));
  }
  {
    auto options = tls_client_options();
    options.tls->server_name = "msgframe.example";  // not a name the certificate carries
    Client misnamed(options);
    BOOST_TEST(misnamed.connect("127.0.0.1", server.port()));
  }
  {
    auto options = tls_client_options();
    options.tls->ca_file.clear();  // the system's CAs, which never issued the test certificate
    Client system_trust(options);
    BOOST_TEST(system_trust.connect("127.0.0.1", server.port()));
    // The same client without verification gets through: the check is what refused it.
    options.tls->verify_server = false;
    Client unverified(options);
    BOOST_TEST_REQUIRE(!unverified.connect("127.0.0.1", server.port()));
    BOOST_TEST(echo_works(unverified));
  }
  BOOST_TEST(wait_for([&] { return server.server.stats().tls_handshakes_failed >= 3u; }));

  // A server whose certificate comes from the untrusted CA is refused by a client of ours.
  auto rogue_options = msgframe::test::loopback_options(1);
  rogue_options.tls = server_tls();
  rogue_options.tls->certificate_file = certificate("rogue-server.crt");
  rogue_options.tls->private_key_file = certificate("rogue-server.key");
  TestServer rogue(rogue_options);
  rogue.start();
  Client client(tls_client_options());
  BOOST_TEST(client.connect("127.0.0.1", rogue.port()));
}

BOOST_AUTO_TEST_CASE(mutual_tls_lets_in_only_clients_with_a_trusted_certificate) {
  TestServer server(tls_server_options(/*mutual=*/true));
  server.start();
  const auto refused = [&](msgframe::ClientOptions options) {
    Client client(options);
    return client.connect("127.0.0.1", server.port()) || !echo_works(client);
  };

  BOOST_TEST(refused(tls_client_options()), "a client without a certificate got in");
  auto rogue = tls_client_options();
  rogue.tls->certificate_file = certificate("rogue-client.crt");
  rogue.tls->private_key_file = certificate("rogue-client.key");
  BOOST_TEST(refused(rogue), "a client with an untrusted certificate got in");
  BOOST_TEST(wait_for([&] { return server.server.stats().tls_handshakes_failed >= 2u; }));
  BOOST_TEST(server.server.stats().requests == 0u);

  auto trusted = tls_client_options();
  trusted.tls->certificate_file = certificate("client.crt");
  trusted.tls->private_key_file = certificate("client.key");
  Client client(trusted);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  BOOST_TEST(echo_works(client));
}

// TLS 1.2 or newer only: a peer that offers at most TLS 1.1 gets no session.
BOOST_AUTO_TEST_CASE(a_client_offering_only_tls_1_1_is_refused) {
  TestServer server(tls_server_options());
  server.start();
  asio::io_context io;
  asio::ssl::context old_tls(asio::ssl::context::tls_client);
  SSL_CTX_set_security_level(old_tls.native_handle(), 0);  // let this side offer it at all
  SSL_CTX_set_min_proto_version(old_tls.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(old_tls.native_handle(), TLS1_1_VERSION);
  old_tls.set_verify_mode(asio::ssl::verify_none);
  asio::ssl::stream<asio::ip::tcp::socket> stream(io, old_tls);
  stream.lowest_layer().connect({asio::ip::address_v4::loopback(), server.port()});
  boost::system::error_code error;
  stream.handshake(asio::ssl::stream_base::client, error);
  BOOST_TEST(error, "a TLS 1.1 handshake succeeded");
  BOOST_TEST(wait_for([&] { return server.server.stats().tls_handshakes_failed >= 1u; }));
}

BOOST_AUTO_TEST_CASE(plaintext_or_silence_at_a_tls_port_is_closed_and_harms_no_one) {
  auto options = tls_server_options();
  options.frame_timeout = std::chrono::milliseconds(300);  // the handshake's deadline too
  TestServer server(options);
  server.start();
  Client client(tls_client_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));

  asio::io_context io;
  const asio::ip::tcp::endpoint endpoint(asio::ip::address_v4::loopback(), server.port());
  asio::ip::tcp::socket plaintext(io);
  plaintext.connect(endpoint);
  std::vector<std::byte> frame;
  v1::EchoRequest request = echo_request("in the clear");
  BOOST_TEST_REQUIRE(!msgframe::append_envelope_frame(
      frame, msgframe::FrameEncoder{},
      {1, v1::KIND_REQUEST, "msgframe.v1.EchoRequest", &request, nullptr}));
  asio::write(plaintext, asio::buffer(frame));
  BOOST_TEST(closed_by_server(plaintext));

  asio::ip::tcp::socket silent(io);
  silent.connect(endpoint);
  BOOST_TEST(closed_by_server(silent), "a connection that never began a handshake stayed open");

  BOOST_TEST(wait_for([&] { return server.server.stats().tls_handshakes_failed >= 2u; }));
  BOOST_TEST(server.server.stats().requests == 0u);
  BOOST_TEST(echo_works(client));  // served throughout
}

BOOST_AUTO_TEST_CASE(tls_is_never_downgraded_to_plaintext_udp) {
  // A TLS server serves no UDP unless told to.
  const auto udp_answered = [](std::uint16_t port) {
    asio::io_context io;
    asio::ip::udp::socket socket(io, asio::ip::udp::v4());
    socket.connect({asio::ip::address_v4::loopback(), port});
    std::vector<std::byte> frame;
    v1::TimeRequest request;
    BOOST_TEST_REQUIRE(!msgframe::append_envelope_frame(
        frame, msgframe::FrameEncoder{},
        {1, v1::KIND_REQUEST, "msgframe.v1.TimeRequest", &request, nullptr}));
    socket.send(asio::buffer(frame.data() + 4, frame.size() - 4));  // a datagram: no prefix
    timeval timeout{10, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char reply[1024];
    // Nothing bound there: the ICMP port-unreachable comes back as ECONNREFUSED.
    return ::recv(socket.native_handle(), reply, sizeof reply, 0) > 0;
  };
  TestServer tls_only(tls_server_options());
  tls_only.start();
  BOOST_TEST(!udp_answered(tls_only.port()));
  auto with_udp = tls_server_options();
  with_udp.tls->plaintext_udp = true;
  TestServer explicit_udp(with_udp);
  explicit_udp.start();
  BOOST_TEST(udp_answered(explicit_udp.port()));

  // A TLS client refuses UDP outright, and its automatic transport does not fall back to it.
  auto udp_client = tls_client_options();
  udp_client.transport = msgframe::Transport::udp;
  BOOST_CHECK_THROW(Client{udp_client}, std::invalid_argument);

  auto udp_only = msgframe::test::loopback_options(1);
  udp_only.serve_tcp = false;
  TestServer plaintext_udp_server(udp_only);
  plaintext_udp_server.start();
  auto automatic = tls_client_options();
  automatic.transport = msgframe::Transport::automatic;
  Client tls_client(automatic);
  BOOST_TEST(tls_client.connect("127.0.0.1", plaintext_udp_server.port()));
  BOOST_TEST(tls_client.stats().fallbacks_to_udp == 0u);
  BOOST_TEST(!echo_works(tls_client));
  BOOST_TEST(tls_client.stats().calls_over_udp == 0u);
  // Without TLS the same client falls back: the refusal above is TLS's doing.
  automatic.tls.reset();
  Client plain_client(automatic);
  BOOST_TEST_REQUIRE(!plain_client.connect("127.0.0.1", plaintext_udp_server.port()));
  BOOST_TEST(echo_works(plain_client));
  BOOST_TEST(plain_client.stats().calls_over_udp == 1u);
}

BOOST_AUTO_TEST_CASE(a_tls_server_stops_cleanly) {
  std::atomic<bool> drain_timed_out{false};
  auto options = msgframe::test::draining_options(drain_timed_out);
  options.tls = server_tls();
  TestServer server(options);
  server.start();
  std::promise<boost::system::error_code> disconnected;
  auto client_options = tls_client_options();
  client_options.on_disconnect = [&](boost::system::error_code reason) {
    disconnected.set_value(reason);
  };
  Client client(client_options);
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server.port()));
  BOOST_TEST(echo_works(client));
  server.server.stop();
  auto reason = disconnected.get_future();
  BOOST_TEST_REQUIRE((reason.wait_for(generous) == std::future_status::ready));
  BOOST_TEST(reason.get() == msgframe::error::shutting_down);
  BOOST_TEST(!drain_timed_out);
}

// stop() does not wait for what is not a session: a connection refused while the server is full
// is still in its TLS handshake (30 s frame timeout) when the server stops.
BOOST_AUTO_TEST_CASE(stop_does_not_wait_for_a_refused_connection_in_its_handshake) {
  auto options = tls_server_options();
  options.max_sessions = 1;
  auto server = std::make_unique<TestServer>(options);
  server->start();
  Client client(tls_client_options());
  BOOST_TEST_REQUIRE(!client.connect("127.0.0.1", server->port()));
  BOOST_TEST(echo_works(client));
  asio::io_context io;
  asio::ip::tcp::socket silent(io);  // over the limit, and never says a word
  silent.connect({asio::ip::address_v4::loopback(), server->port()});
  auto stopped = std::async(std::launch::async, [&server] { server.reset(); });
  BOOST_TEST((stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready),
             "stop() waited for a refused connection's handshake");
}

BOOST_AUTO_TEST_CASE(unusable_certificate_files_are_refused_at_construction) {
  auto options = tls_server_options();
  options.tls->certificate_file = certificate("no-such.crt");
  try {
    msgframe::Server server(options);
    BOOST_TEST(false, "a server was made with a missing certificate");
  } catch (const std::invalid_argument& error) {
    BOOST_TEST(std::string(error.what()).find("no-such.crt") != std::string::npos);
  }
  options = tls_server_options();
  options.tls->private_key_file = certificate("client.key");  // not the certificate's key
  BOOST_CHECK_THROW(msgframe::Server{options}, std::invalid_argument);
  BOOST_CHECK_THROW(Client{tls_client_options("no-such-ca.crt")}, std::invalid_argument);
}
