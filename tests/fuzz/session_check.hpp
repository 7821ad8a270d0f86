// The session fuzz property, shared by the libFuzzer target and the corpus replay test: any bytes
// written to a real server's TCP session get exactly the replies the protocol promises, worked out
// independently from the same bytes, and the session closes once the peer has left.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/empty.pb.h>
#include <google/protobuf/wrappers.pb.h>
#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "msgframe/echo_service.hpp"
#include "msgframe/envelope.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/server.hpp"
#include "msgframe/time_service.hpp"
#include "msgframe/v1/echo.pb.h"
#include "msgframe/v1/envelope.pb.h"
#include "msgframe/v1/time.pb.h"

namespace msgframe::test {

// Small enough that inputs of a few KiB reach every limit: a frame of exactly the max, one byte
// over it, and an echo whose reply would exceed it.
inline constexpr std::size_t session_fuzz_max_frame_bytes = 4096;

// A hang is a failure the fuzzer reports, not a stuck fuzzer.
inline constexpr auto session_fuzz_deadline = std::chrono::seconds(10);

// Request types of the fuzz server beyond Echo and Time: a plain handler that always throws, and
// a coroutine handler that answers after a hop through its executor (or throws for "throw").
inline constexpr std::string_view throwing_request_type = "google.protobuf.Empty";
inline constexpr std::string_view coroutine_request_type = "google.protobuf.BytesValue";
inline constexpr std::string_view coroutine_throw_value = "throw";

namespace session_check_detail {

namespace asio = boost::asio;
using Bytes = std::vector<std::byte>;

inline std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (const unsigned char byte : bytes) {
    out += digits[byte >> 4];
    out += digits[byte & 0xF];
  }
  return out;
}

inline std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

template <class Message>
bool parse(Message& message, std::span<const std::byte> bytes) {
  return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// ---- What the protocol promises for an input ---------------------------------------------------

inline std::string error_reply(std::uint64_t id, v1::ErrorCode code) {
  return "id=" + std::to_string(id) + " ERROR " + v1::ErrorCode_Name(code);
}

inline std::string response_reply(std::uint64_t id, std::string_view type,
                                  std::string_view detail) {
  return "id=" + std::to_string(id) + " RESPONSE " + std::string(type) + " " + std::string(detail);
}

// A response, or FRAME_TOO_LARGE when its envelope would exceed the max frame (sized with
// protobuf's own serializer, not msgframe's).
inline std::string response_or_too_large(std::uint64_t id, std::string_view type,
                                         const google::protobuf::MessageLite& response,
                                         std::string_view detail) {
  v1::Envelope envelope;
  envelope.set_id(id);
  envelope.set_kind(v1::KIND_RESPONSE);
  envelope.set_type(std::string(type));
  envelope.set_payload(response.SerializeAsString());
  if (envelope.ByteSizeLong() > session_fuzz_max_frame_bytes) {
    return error_reply(id, v1::ERROR_CODE_FRAME_TOO_LARGE);
  }
  return response_reply(id, type, detail);
}

// The reply a request with a nonzero id must get, by the fuzz server's routes.
inline std::string reply_to_request(std::uint64_t id, std::string_view type,
                                    std::span<const std::byte> payload) {
  if (type == v1::EchoRequest::default_instance().GetTypeName()) {
    v1::EchoRequest request;
    if (!parse(request, payload)) return error_reply(id, v1::ERROR_CODE_BAD_PAYLOAD);
    v1::EchoResponse response;
    response.set_payload(request.payload());
    if (request.uppercase()) {  // PROTOCOL.md §4: ASCII a-z only
      for (auto& byte : *response.mutable_payload()) {
        if (byte >= 'a' && byte <= 'z') byte = static_cast<char>(byte - 'a' + 'A');
      }
    }
    return response_or_too_large(id, response.GetTypeName(), response,
                                 "payload=" + hex(response.payload()));
  }
  if (type == v1::TimeRequest::default_instance().GetTypeName()) {
    v1::TimeRequest request;
    if (!parse(request, payload)) return error_reply(id, v1::ERROR_CODE_BAD_PAYLOAD);
    return response_reply(id, v1::TimeResponse::default_instance().GetTypeName(), "valid");
  }
  if (type == throwing_request_type) {
    google::protobuf::Empty request;
    if (!parse(request, payload)) return error_reply(id, v1::ERROR_CODE_BAD_PAYLOAD);
    return error_reply(id, v1::ERROR_CODE_INTERNAL);
  }
  if (type == coroutine_request_type) {
    google::protobuf::BytesValue request;
    if (!parse(request, payload)) return error_reply(id, v1::ERROR_CODE_BAD_PAYLOAD);
    if (request.value() == coroutine_throw_value) return error_reply(id, v1::ERROR_CODE_INTERNAL);
    return response_or_too_large(id, coroutine_request_type, request,
                                 "payload=" + hex(request.value()));
  }
  return error_reply(id, v1::ERROR_CODE_UNKNOWN_TYPE);  // an empty type too
}

struct Expectation {
  std::vector<std::string> replies;  // one per reply, in no particular order
  bool stream_fails = false;         // a bad length prefix: the server closes after its ERROR
};

// Frames as the protocol cuts them, envelopes as msgframe parses them, then PROTOCOL.md §1, §3, §6:
// a bad envelope gets BAD_ENVELOPE (with its id when readable, else 0); RESPONSE, ERROR and EVENT
// envelopes are dropped; a request with id 0 gets nothing; any other request exactly one reply.
// A bad prefix gets one ERROR with id 0, after every frame before it.
inline Expectation expected_replies(std::span<const std::byte> input) {
  Expectation out;
  FrameDecoder decoder(protocol_framing(session_fuzz_max_frame_bytes));
  decoder.feed(input);
  while (const auto body = decoder.next()) {
    EnvelopeView envelope;
    if (parse_envelope(*body, envelope)) {
      out.replies.push_back(error_reply(envelope.id, v1::ERROR_CODE_BAD_ENVELOPE));
    } else if (envelope.kind == v1::KIND_REQUEST && envelope.id != 0) {
      out.replies.push_back(reply_to_request(envelope.id, envelope.type, envelope.payload));
    }
  }
  if (const auto error = decoder.error()) {
    out.stream_fails = true;
    out.replies.push_back(error_reply(0, error == msgframe::error::frame_too_large
                                             ? v1::ERROR_CODE_FRAME_TOO_LARGE
                                             : v1::ERROR_CODE_BAD_ENVELOPE));
  }
  return out;
}

// ---- What the server sent
// ------------------------------------------------------------------------

inline std::string check_time(const v1::TimeResponse& time,
                              std::chrono::system_clock::time_point earliest,
                              std::chrono::system_clock::time_point latest) {
  if (time.rfc3339() != format_rfc3339_nanos(time.unix_nanos())) return "invalid: text != nanos";
  const auto instant = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(time.unix_nanos())));
  if (instant < earliest || instant > latest) return "invalid: not the time of the exchange";
  return "valid";
}

// One reply, described the way expected_replies() describes what it should be.
inline std::string describe_reply(std::span<const std::byte> body,
                                  std::chrono::system_clock::time_point earliest,
                                  std::chrono::system_clock::time_point latest) {
  v1::Envelope envelope;
  if (!parse(envelope, body)) return "a reply that is not an Envelope: " + hex(as_text(body));
  const std::uint64_t id = envelope.id();
  if (envelope.kind() == v1::KIND_ERROR) {
    if (!envelope.has_error() || !envelope.type().empty() || !envelope.payload().empty() ||
        envelope.error().message().empty()) {
      return "id=" + std::to_string(id) + " ERROR malformed: " + envelope.ShortDebugString();
    }
    return error_reply(id, envelope.error().code());
  }
  if (envelope.kind() != v1::KIND_RESPONSE || envelope.has_error()) {
    return "id=" + std::to_string(id) + " unexpected: " + envelope.ShortDebugString();
  }
  const std::string& type = envelope.type();
  const auto payload = std::as_bytes(std::span(envelope.payload()));
  if (type == v1::EchoResponse::default_instance().GetTypeName()) {
    v1::EchoResponse response;
    if (!parse(response, payload)) return response_reply(id, type, "unparsable");
    return response_reply(id, type, "payload=" + hex(response.payload()));
  }
  if (type == v1::TimeResponse::default_instance().GetTypeName()) {
    v1::TimeResponse response;
    if (!parse(response, payload)) return response_reply(id, type, "unparsable");
    return response_reply(id, type, check_time(response, earliest, latest));
  }
  if (type == coroutine_request_type) {
    google::protobuf::BytesValue response;
    if (!parse(response, payload)) return response_reply(id, type, "unparsable");
    return response_reply(id, type, "payload=" + hex(response.value()));
  }
  return response_reply(id, type, "of a type nobody asked for");
}

// ---- One connection
// ------------------------------------------------------------------------------

struct Exchange {
  Bytes received;
  bool reset = false;   // the server ended the connection with RST rather than FIN
  std::string failure;  // set when the exchange itself failed (a hang, a socket error)
};

class SocketCloser {
 public:
  explicit SocketCloser(int fd) : fd_(fd) {}
  ~SocketCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketCloser(const SocketCloser&) = delete;
  SocketCloser& operator=(const SocketCloser&) = delete;

 private:
  int fd_;
};

inline std::string system_failure(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Writes the input, then closes the sending side, while reading everything the server sends
// until it closes: reading and writing at once, so a server that holds back its reading until
// its replies are read (backpressure) cannot deadlock the exchange.
inline Exchange exchange(std::uint16_t port, std::span<const std::byte> input) {
  Exchange out;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {{}, false, system_failure("socket")};
  const SocketCloser closer(fd);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
    return {{}, false, system_failure("connect to the server")};
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    return {{}, false, system_failure("fcntl")};
  }

  const auto deadline = std::chrono::steady_clock::now() + session_fuzz_deadline;
  std::size_t written = 0;
  bool sending = true;
  std::byte buffer[16 * 1024];
  for (;;) {
    if (sending && written == input.size()) {
      ::shutdown(fd, SHUT_WR);
      sending = false;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd events{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
    const int ready = ::poll(&events, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return {{}, false, system_failure("poll")};
    if (ready == 0) {
      out.failure = "the server did not close the connection within " +
                    std::to_string(session_fuzz_deadline.count()) + " s (" +
                    std::to_string(written) + " of " + std::to_string(input.size()) +
                    " bytes written, " + std::to_string(out.received.size()) + " received)";
      return out;
    }
    if (sending && (events.revents & (POLLOUT | POLLERR))) {
      const ssize_t sent = ::send(fd, input.data() + written, input.size() - written, MSG_NOSIGNAL);
      if (sent >= 0) {
        written += static_cast<std::size_t>(sent);
      } else if (errno != EAGAIN && errno != EINTR) {
        sending = false;  // the server closed first (after a bad prefix): now read what it sent
      }
    }
    if (events.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got == 0) return out;
      if (got > 0) {
        out.received.insert(out.received.end(), buffer, buffer + got);
      } else if (errno == ECONNRESET) {
        out.reset = true;
        return out;
      } else if (errno != EAGAIN && errno != EINTR) {
        return {{}, false, system_failure("recv")};
      }
    }
  }
}

inline std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    out += "\n    ";
    out += line.size() > 160 ? line.substr(0, 160) + "..." : line;
  }
  return out;
}

}  // namespace session_check_detail

// The server every input goes to: one I/O thread, TCP on 127.0.0.1, a small max frame, and small
// reads and backpressure marks so that frames split across reads and sessions pause and resume.
class SessionFuzzServer {
 public:
  SessionFuzzServer() : server_(options()) {
    namespace asio = boost::asio;
    add_echo_service(server_.router());
    add_time_service(server_.router());
    server_.handle<google::protobuf::Empty>(
        [](const google::protobuf::Empty&) -> google::protobuf::Empty {
          throw std::runtime_error("the fuzz server's throwing handler");
        });
    server_.handle<google::protobuf::BytesValue>(
        [](google::protobuf::BytesValue& request) -> asio::awaitable<google::protobuf::BytesValue> {
          co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
          if (request.value() == coroutine_throw_value) {
            throw std::runtime_error("the fuzz server's coroutine handler was told to throw");
          }
          co_return request;
        });
    if (const auto error = server_.start()) {
      throw std::runtime_error("the fuzz server did not start: " + error.message());
    }
  }

  static ServerOptions options() {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.threads = 1;
    options.serve_udp = false;
    options.max_frame_bytes = session_fuzz_max_frame_bytes;
    options.read_bytes = 509;             // frames of a few KiB span reads, at moving offsets
    options.max_write_queue_bytes = 512;  // a few replies unread pause reading...
    options.max_requests_in_flight = 2;   // ...and so do two running coroutine handlers
    return options;
  }

  // Sends `input` on a new connection. Returns what broke, or an empty string.
  std::string check(std::span<const std::byte> input) {
    using namespace session_check_detail;
    const Expectation expected = expected_replies(input);
    const auto earliest = std::chrono::system_clock::now() - std::chrono::seconds(1);
    const Exchange exchanged = exchange(server_.port(), input);
    const auto latest = std::chrono::system_clock::now() + std::chrono::seconds(1);
    const std::string context = " (input of " + std::to_string(input.size()) + " bytes)";
    if (!exchanged.failure.empty()) return exchanged.failure + context;
    if (exchanged.reset && !expected.stream_fails) {
      return "the server reset a connection with no bad prefix" + context;
    }

    FrameDecoder decoder(protocol_framing(session_fuzz_max_frame_bytes));
    decoder.feed(exchanged.received);
    std::vector<std::string> actual;
    while (const auto body = decoder.next()) {
      actual.push_back(describe_reply(*body, earliest, latest));
    }
    if (decoder.error()) {
      return "the server sent a bad length prefix (" + decoder.error().message() + ")" + context;
    }
    if (decoder.pending_bytes() != 0) return "the server's last frame is cut short" + context;

    std::vector<std::string> wanted = expected.replies;
    std::sort(wanted.begin(), wanted.end());
    std::sort(actual.begin(), actual.end());
    if (wanted != actual) {
      std::vector<std::string> missing;
      std::vector<std::string> unexpected;
      std::set_difference(wanted.begin(), wanted.end(), actual.begin(), actual.end(),
                          std::back_inserter(missing));
      std::set_difference(actual.begin(), actual.end(), wanted.begin(), wanted.end(),
                          std::back_inserter(unexpected));
      return "replies differ from the protocol's" + context +
             (exchanged.reset ? ", connection reset" : "") + "\n  missing:" + join(missing) +
             "\n  unexpected:" + join(unexpected);
    }
    return wait_for_sessions_closed(context);
  }

  Server& server() { return server_; }

 private:
  // The peer has gone and so must its session: the server's count drops back to zero. Polled
  // against a deadline: the count falls just after the socket closes, on the server's thread.
  std::string wait_for_sessions_closed(const std::string& context) {
    const auto deadline = std::chrono::steady_clock::now() + session_fuzz_deadline;
    while (server_.stats().sessions_open != 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        return "a session is still open " + std::to_string(session_fuzz_deadline.count()) +
               " s after its peer left" + context;
      }
      std::this_thread::yield();
    }
    return {};
  }

  Server server_;
};

}  // namespace msgframe::test
