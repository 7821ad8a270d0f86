// A session closed for a bad length prefix still delivers the replies it owes (PROTOCOL.md §6:
// requests that arrived complete before an oversized prefix are answered before the close), also
// to a peer that reads slowly and goes on sending after the prefix. Closing a socket that holds
// unread input makes the kernel reset the connection and drop the replies still in its send
// queue; a lingering close (shut down the sending side, discard input until the peer closes or a
// deadline passes, then close) keeps them.
//
// Found by session_fuzz; its input is tests/fuzz/corpus/session/regression-reset-drops-replies.
#define BOOST_TEST_MODULE failed_stream_close
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/v1/echo.pb.h"
#include "msgframe/v1/envelope.pb.h"
#include "test_server.hpp"

namespace {

namespace v1 = msgframe::v1;
using std::chrono::steady_clock;

constexpr auto deadline = std::chrono::seconds(10);

std::string frame(const std::string& body) {
  const auto length = static_cast<std::uint32_t>(body.size());
  return std::string{static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                     static_cast<char>(length >> 8), static_cast<char>(length)} +
         body;
}

std::string echo_frame(std::uint64_t id, const std::string& text) {
  v1::EchoRequest request;
  request.set_payload(text);
  v1::Envelope envelope;
  envelope.set_id(id);
  envelope.set_kind(v1::KIND_REQUEST);
  envelope.set_type(v1::EchoRequest::default_instance().GetTypeName());
  envelope.set_payload(request.SerializeAsString());
  return frame(envelope.SerializeAsString());
}

BOOST_AUTO_TEST_CASE(replies_before_an_oversized_prefix_reach_a_slow_peer_that_keeps_sending) {
  auto options = msgframe::test::loopback_options(1);
  options.serve_udp = false;
  msgframe::test::TestServer server(options);
  server.start();

  constexpr std::uint64_t requests = 500;  // about 120 KB of replies: more than the peer takes in
  std::string input;
  for (std::uint64_t id = 1; id <= requests; ++id) input += echo_frame(id, std::string(200, 'x'));
  input += std::string("\xff\xff\xff\xff", 4);

  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_TEST_REQUIRE(fd >= 0);
  const int small_buffer = 4096;  // a peer that reads slowly: its window fills at once
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small_buffer, sizeof small_buffer);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) ==
                     0);
  BOOST_TEST_REQUIRE(::send(fd, input.data(), input.size(), MSG_NOSIGNAL) ==
                     static_cast<ssize_t>(input.size()));

  // Once the server has read the bad prefix, more bytes come that it will never read.
  const auto failed_by = steady_clock::now() + deadline;
  while (server.server.stats().sessions_failed == 0 && steady_clock::now() < failed_by) {
    std::this_thread::yield();
  }
  BOOST_TEST_REQUIRE(server.server.stats().sessions_failed == 1u);
  const std::string more(100, 'z');
  ::send(fd, more.data(), more.size(), MSG_NOSIGNAL);  // may fail: the server may have closed

  msgframe::FrameDecoder decoder(msgframe::protocol_framing(msgframe::default_max_frame_bytes));
  std::string ended = "timeout";
  for (const auto read_by = steady_clock::now() + deadline; steady_clock::now() < read_by;) {
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 100) <= 0) continue;
    const auto space = decoder.prepare(64 * 1024);
    const ssize_t got = ::recv(fd, space.data(), space.size(), 0);
    if (got <= 0) {
      ended = got == 0 ? "EOF" : std::strerror(errno);
      break;
    }
    decoder.commit(static_cast<std::size_t>(got));
  }
  ::close(fd);
  std::uint64_t replies = 0;
  while (decoder.next()) ++replies;
  BOOST_TEST_MESSAGE("the connection ended with " << ended);
  BOOST_TEST(replies == requests + 1);  // every echo, then the FRAME_TOO_LARGE error
}

}  // namespace
