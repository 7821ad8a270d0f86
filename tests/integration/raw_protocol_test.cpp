// Raw-socket tests of the msgframe wire protocol (docs/PROTOCOL.md): a real msgframe
// server, and clients that write and read bytes on plain TCP sockets, as an outside
// implementation built against the contract would: half and sticky packets, every error reply,
// one-way requests, frame limits and the protobuf parsing rules of the envelope.
#define BOOST_TEST_MODULE raw_protocol
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "msgframe/server.hpp"
#include "msgframe/v1/echo.pb.h"
#include "msgframe/v1/envelope.pb.h"
#include "msgframe/v1/lifecycle.pb.h"
#include "msgframe/v1/time.pb.h"
#include "support/process_resources.hpp"
#include "test_server.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using msgframe::test::loopback_options;
using msgframe::test::TestServer;
namespace v1 = msgframe::v1;

// How long one read may wait for the server: a broken server fails the test instead of hanging.
constexpr auto read_deadline = std::chrono::seconds(10);
// No reply in these tests comes near this; a larger prefix means the stream is out of step.
constexpr std::uint32_t max_expected_reply_bytes = 1024 * 1024;

constexpr std::string_view echo_request_type = "msgframe.v1.EchoRequest";
constexpr std::string_view echo_response_type = "msgframe.v1.EchoResponse";

// ---- Frames and envelopes, built the way an outside client builds them -------------------------

// The protocol's 4-byte big-endian length prefix (PROTOCOL.md §1).
std::string length_prefix(std::uint32_t length) {
  return {static_cast<char>((length >> 24) & 0xFF), static_cast<char>((length >> 16) & 0xFF),
          static_cast<char>((length >> 8) & 0xFF), static_cast<char>(length & 0xFF)};
}

std::string frame(std::string_view body) {
  return length_prefix(static_cast<std::uint32_t>(body.size())) + std::string(body);
}

std::string echo_payload(std::string_view text, bool uppercase = false) {
  v1::EchoRequest request;
  request.set_payload(std::string(text));
  request.set_uppercase(uppercase);
  return request.SerializeAsString();
}

std::string envelope_body(std::uint64_t id, v1::Kind kind, std::string_view type,
                          std::string_view payload) {
  v1::Envelope envelope;
  envelope.set_id(id);
  envelope.set_kind(kind);
  envelope.set_type(std::string(type));
  envelope.set_payload(std::string(payload));
  return envelope.SerializeAsString();
}

std::string request_body(std::uint64_t id, std::string_view type, std::string_view payload) {
  return envelope_body(id, v1::KIND_REQUEST, type, payload);
}

std::string echo_body(std::uint64_t id, std::string_view text, bool uppercase = false) {
  return request_body(id, echo_request_type, echo_payload(text, uppercase));
}

// ---- Hand-written protobuf wire bytes, for what the generated classes refuse to write ----------
// (unknown fields, repeated or reordered fields, non-minimal varints, kinds outside the enum,
// strings that are not UTF-8).

enum WireType : std::uint64_t {
  wire_varint = 0,
  wire_fixed64 = 1,
  wire_length_delimited = 2,
  wire_start_group = 3,
  wire_end_group = 4,
  wire_fixed32 = 5
};

std::string varint(std::uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
  return out;
}

// `value` in exactly `bytes` bytes, padded with continuation bytes: valid, but not minimal.
std::string padded_varint(std::uint64_t value, int bytes) {
  std::string out;
  for (int index = 0; index < bytes - 1; ++index) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);  // only callers' small values: it fits in the bytes given
  return out;
}

std::string tag(std::uint64_t field, WireType wire_type) { return varint(field << 3 | wire_type); }

std::string varint_field(std::uint64_t field, std::uint64_t value) {
  return tag(field, wire_varint) + varint(value);
}

std::string bytes_field(std::uint64_t field, std::string_view bytes) {
  return tag(field, wire_length_delimited) + varint(bytes.size()) + std::string(bytes);
}

// Fixed-width fields are little-endian on the protobuf wire.
std::string little_endian(std::uint64_t value, int bytes) {
  std::string out;
  for (int index = 0; index < bytes; ++index)
    out += static_cast<char>((value >> (8 * index)) & 0xFF);
  return out;
}

std::string fixed32_field(std::uint64_t field, std::uint32_t value) {
  return tag(field, wire_fixed32) + little_endian(value, 4);
}

std::string fixed64_field(std::uint64_t field, std::uint64_t value) {
  return tag(field, wire_fixed64) + little_endian(value, 8);
}

std::string group_field(std::uint64_t field, std::string_view contents) {
  return tag(field, wire_start_group) + std::string(contents) + tag(field, wire_end_group);
}

// Envelope field numbers (PROTOCOL.md §3).
constexpr std::uint64_t id_field = 1;
constexpr std::uint64_t kind_field = 2;
constexpr std::uint64_t type_field = 3;
constexpr std::uint64_t payload_field = 4;

// ---- A raw client connection -----------------------------------------------------------------

// A plain TCP connection to the server. Writes are blocking; reads are asynchronous with a
// deadline, because a blocking Asio read cannot time out (with SO_RCVTIMEO it polls again forever).
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
    // Small writes leave at once: the byte-by-byte and split tests mean to hand the server
    // separate segments, not ones Nagle's algorithm glued back together.
    socket_.set_option(tcp::no_delay(true));
  }

  void write(std::string_view bytes) {
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()));
  }

  void close_sending() { socket_.shutdown(tcp::socket::shutdown_send); }

  // Writes as much of `bytes` as the connection takes until it has taken nothing for `quiet`
  // (the server stopped reading and the socket buffers are full); returns how much it took.
  std::size_t write_until_blocked(std::string_view bytes, std::chrono::milliseconds quiet) {
    socket_.non_blocking(true);
    std::size_t written = 0;
    while (written < bytes.size()) {
      boost::system::error_code error;
      written += socket_.write_some(asio::buffer(bytes.substr(written)), error);
      if (!error) continue;
      BOOST_TEST_REQUIRE(error == asio::error::would_block, "writing: " << error.message());
      pollfd writable{socket_.native_handle(), POLLOUT, 0};
      if (::poll(&writable, 1, static_cast<int>(quiet.count())) == 0) break;
    }
    socket_.non_blocking(false);
    return written;
  }

  // The next frame's body; nullopt when the server closed the connection (FIN or RST) at a frame
  // boundary. Fails the test on a timeout, or on a close in the middle of a frame.
  std::optional<std::string> read_frame() {
    std::string prefix(4, '\0');
    const auto [prefix_error, prefix_bytes] = read_exactly(prefix);
    const bool closed =
        prefix_error == asio::error::eof || prefix_error == asio::error::connection_reset;
    if (closed && prefix_bytes == 0) return std::nullopt;
    BOOST_TEST_REQUIRE(!prefix_error, "reading a length prefix: " << prefix_error.message());
    const auto byte = [&](std::size_t index) {
      return static_cast<std::uint32_t>(static_cast<unsigned char>(prefix[index]));
    };
    const std::uint32_t length = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
    BOOST_TEST_REQUIRE(length <= max_expected_reply_bytes,
                       "the server announced a " << length << "-byte reply");
    std::string body(length, '\0');
    const auto [body_error, body_bytes] = read_exactly(body);
    BOOST_TEST_REQUIRE(!body_error, "reading a " << length << "-byte body, got " << body_bytes
                                                 << " bytes: " << body_error.message());
    return body;
  }

  // The next frame, which must exist and be an Envelope.
  v1::Envelope read_envelope() {
    const auto body = read_frame();
    BOOST_TEST_REQUIRE(body.has_value(), "the server closed the connection instead of replying");
    v1::Envelope envelope;
    BOOST_TEST_REQUIRE(envelope.ParseFromString(*body), "a reply is not a msgframe.v1.Envelope");
    return envelope;
  }

 private:
  std::pair<boost::system::error_code, std::size_t> read_exactly(std::string& buffer) {
    std::optional<std::pair<boost::system::error_code, std::size_t>> outcome;
    asio::async_read(socket_, asio::buffer(buffer),
                     [&outcome](const boost::system::error_code& error, std::size_t bytes) {
                       outcome.emplace(error, bytes);
                     });
    io_.restart();
    io_.run_for(read_deadline);
    if (!outcome) {
      // Cancel, and let the aborted handler run before `outcome` goes out of scope.
      socket_.cancel();
      io_.restart();
      io_.run();
      BOOST_TEST_REQUIRE(false,
                         "no reply from the server within " << read_deadline.count() << " s");
    }
    return *outcome;
  }

  asio::io_context io_;
  tcp::socket socket_;
};

// ---- Checks --------------------------------------------------------------------------------

void check_echo_reply(const v1::Envelope& reply, std::uint64_t id, std::string_view payload) {
  BOOST_TEST(reply.id() == id);
  BOOST_TEST(reply.kind() == v1::KIND_RESPONSE);
  BOOST_TEST(reply.type() == echo_response_type);
  BOOST_TEST(!reply.has_error());
  v1::EchoResponse response;
  BOOST_TEST(response.ParseFromString(reply.payload()));
  BOOST_TEST(response.payload() == payload);
}

// ERROR envelopes carry the id, `error`, an empty type and no payload (PROTOCOL.md §6).
void check_error_reply(const v1::Envelope& reply, std::uint64_t id, v1::ErrorCode code) {
  BOOST_TEST(reply.id() == id);
  BOOST_TEST(reply.kind() == v1::KIND_ERROR);
  BOOST_TEST(reply.type().empty());
  BOOST_TEST(reply.payload().empty());
  BOOST_TEST_REQUIRE(reply.has_error());
  BOOST_TEST(reply.error().code() == code);
}

// An echo round trip: the connection is still open, and the stream still in step.
void check_echo_round_trip(RawConnection& connection, std::uint64_t id) {
  const std::string text = "still open, request " + std::to_string(id);
  connection.write(frame(echo_body(id, text)));
  check_echo_reply(connection.read_envelope(), id, text);
}

// Sends two echo requests and `prefix` (an oversized length prefix, no body) in one write. The
// requests must be answered, an ERROR (id 0, FRAME_TOO_LARGE) must be sent, and then the server
// must close the connection (PROTOCOL.md §1, §6). The contract orders the replies only before the
// close, so the three frames may come in any order.
void check_oversized_prefix_closes(std::uint16_t port, std::string_view prefix,
                                   std::uint64_t first_id) {
  RawConnection connection(port);
  std::map<std::uint64_t, std::string> unanswered{{first_id, "before the bad prefix, first"},
                                                  {first_id + 1, "before the bad prefix, second"}};
  std::string bytes;
  for (const auto& [id, text] : unanswered) bytes += frame(echo_body(id, text));
  connection.write(bytes + std::string(prefix));
  int errors = 0;
  for (int reply_index = 0; reply_index < 3; ++reply_index) {
    const auto reply = connection.read_envelope();
    if (reply.kind() == v1::KIND_ERROR) {
      ++errors;
      check_error_reply(reply, 0, v1::ERROR_CODE_FRAME_TOO_LARGE);
      continue;
    }
    const auto request = unanswered.find(reply.id());
    BOOST_TEST_REQUIRE((request != unanswered.end()), "unexpected reply id " << reply.id());
    check_echo_reply(reply, request->first, request->second);
    unanswered.erase(request);
  }
  BOOST_TEST(errors == 1);
  BOOST_TEST(unanswered.empty());
  BOOST_TEST(!connection.read_frame().has_value(),
             "the server sent more after FRAME_TOO_LARGE instead of closing");
}

}  // namespace

// ---- 1. Half packets: a frame trickling in ----------------------------------------------------

BOOST_AUTO_TEST_CASE(request_written_one_byte_at_a_time) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  // Two frames, so the second starts in the middle of the reads that end the first.
  const std::string bytes = frame(echo_body(1, "one byte per write", true)) +
                            frame(echo_body(2, "and another frame after it"));
  for (const char byte : bytes) connection.write(std::string_view(&byte, 1));
  check_echo_reply(connection.read_envelope(), 1, "ONE BYTE PER WRITE");
  check_echo_reply(connection.read_envelope(), 2, "and another frame after it");
}

// ---- 2. Sticky packets: many frames in one write ------------------------------------------------

BOOST_AUTO_TEST_CASE(thousand_requests_in_one_write) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  constexpr std::uint64_t request_count = 1000;
  // Ids are spread out (some need multi-byte varints) and payloads vary in length.
  std::map<std::uint64_t, std::string> expected;
  std::string bytes;
  for (std::uint64_t index = 0; index < request_count; ++index) {
    const std::uint64_t id = 1 + index * 977;
    std::string text = "request " + std::to_string(index) + " " +
                       std::string(index % 300, static_cast<char>('a' + index % 26));
    bytes += frame(echo_body(id, text));
    expected.emplace(id, std::move(text));
  }
  connection.write(bytes);

  std::set<std::uint64_t> answered;
  for (std::uint64_t reply_index = 0; reply_index < request_count; ++reply_index) {
    const auto reply = connection.read_envelope();
    const auto request = expected.find(reply.id());
    BOOST_TEST_REQUIRE((request != expected.end()), "a reply for unknown id " << reply.id());
    BOOST_TEST_REQUIRE(answered.insert(reply.id()).second,
                       "id " << reply.id() << " answered twice");
    check_echo_reply(reply, request->first, request->second);
  }
  BOOST_TEST(answered.size() == request_count);
  BOOST_TEST(server.server.stats().requests == request_count);
  // Replies to one read leave in one write: a write per reply would make this 1,000.
  BOOST_TEST(server.server.stats().writes <= request_count / 20);
}

// ---- 3. Every split of one frame ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(frame_split_at_every_offset) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  // Ids from 1000 take two varint bytes, like every payload the same length: every frame has the
  // same size.
  constexpr std::uint64_t first_id = 1000;
  const auto text_for = [](std::size_t split) {
    std::string number = std::to_string(split);
    return "split at " + std::string(3 - number.size(), '0') + number;
  };
  const std::size_t frame_size = frame(echo_body(first_id, text_for(0))).size();
  for (std::size_t split = 0; split <= frame_size; ++split) {
    BOOST_TEST_CONTEXT("split at byte " << split << " of " << frame_size) {
      const std::uint64_t id = first_id + split;  // distinct ids: a stale reply would show
      const std::string bytes = frame(echo_body(id, text_for(split)));
      BOOST_TEST_REQUIRE(bytes.size() == frame_size);
      connection.write(std::string_view(bytes).substr(0, split));
      connection.write(std::string_view(bytes).substr(split));
      check_echo_reply(connection.read_envelope(), id, text_for(split));
    }
  }
}

// ---- 4-6. Error replies; the connection stays open ----------------------------------------------

BOOST_AUTO_TEST_CASE(unknown_and_empty_type_get_unknown_type) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());

  connection.write(frame(request_body(41, "no.such.Type", echo_payload("lost"))));
  check_error_reply(connection.read_envelope(), 41, v1::ERROR_CODE_UNKNOWN_TYPE);
  check_echo_round_trip(connection, 42);

  connection.write(frame(request_body(43, "", echo_payload("no type"))));
  check_error_reply(connection.read_envelope(), 43, v1::ERROR_CODE_UNKNOWN_TYPE);
  check_echo_round_trip(connection, 44);

  BOOST_TEST(server.server.stats().errors_sent == 2u);
}

BOOST_AUTO_TEST_CASE(unparsable_payload_gets_bad_payload) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  // 0xff 0xff 0xff: a tag varint that never ends, so not an EchoRequest.
  connection.write(frame(request_body(51, echo_request_type, "\xff\xff\xff")));
  check_error_reply(connection.read_envelope(), 51, v1::ERROR_CODE_BAD_PAYLOAD);
  check_echo_round_trip(connection, 52);
}

BOOST_AUTO_TEST_CASE(bad_envelopes_get_bad_envelope_with_the_id_when_readable) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  const std::string type = bytes_field(type_field, echo_request_type);
  const std::string payload = bytes_field(payload_field, echo_payload("inside a bad envelope"));
  const std::string id_9 = varint_field(id_field, 9);
  struct Case {
    std::string_view name;
    std::string body;
    std::uint64_t expected_id;
  };
  const Case cases[] = {
      {"garbage: a tag varint that never ends", std::string(11, '\xff'), 0},
      {"a length-delimited field longer than the body", "\x22\x10short", 0},
      {"an empty body: no kind", "", 0},
      {"id 9 and no kind", id_9 + type + payload, 9},
      {"id 9 and kind 0 written out", id_9 + varint_field(kind_field, 0) + type + payload, 9},
      {"id 9 and kind 7", id_9 + varint_field(kind_field, 7) + type + payload, 9},
      {"id 9 and kind -1",
       id_9 + varint_field(kind_field, std::numeric_limits<std::uint64_t>::max()) + type + payload,
       9},
      {"id 9 and a type that is not UTF-8",
       id_9 + varint_field(kind_field, v1::KIND_REQUEST) +
           bytes_field(type_field, "msgframe.v1.Echo\xc3\x28") + payload,
       9},
      {"id 9, then a truncated field",
       id_9 + varint_field(kind_field, v1::KIND_REQUEST) + "\x22\x05" + "ab", 9},
      {"id 9 and a field numbered 0 (tag 02, empty)",
       id_9 + varint_field(kind_field, v1::KIND_REQUEST) + type + bytes_field(0, "") + payload, 9},
  };
  std::uint64_t next_id = 60;
  for (const auto& bad : cases) {
    BOOST_TEST_CONTEXT(bad.name) {
      connection.write(frame(bad.body));
      check_error_reply(connection.read_envelope(), bad.expected_id, v1::ERROR_CODE_BAD_ENVELOPE);
      check_echo_round_trip(connection, next_id++);
    }
  }
  BOOST_TEST(server.server.stats().errors_sent == std::size(cases));
}

// ---- 7-8. Frames that get no reply ----------------------------------------------------------

// A one-way request (id 0) runs but is never answered, not even with an error: the first frame
// back must be the reply to the request sent after it.
BOOST_AUTO_TEST_CASE(one_way_requests_get_no_reply) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());

  connection.write(frame(echo_body(0, "one-way echo")));
  connection.write(frame(echo_body(5, "after the one-way echo")));
  check_echo_reply(connection.read_envelope(), 5, "after the one-way echo");

  connection.write(frame(request_body(0, "no.such.Type", echo_payload("one-way, unknown"))));
  connection.write(frame(echo_body(6, "after the one-way unknown type")));
  check_echo_reply(connection.read_envelope(), 6, "after the one-way unknown type");

  const auto stats = server.server.stats();
  BOOST_TEST(stats.requests == 4u);
  BOOST_TEST(stats.one_way_errors == 1u);
  BOOST_TEST(stats.errors_sent == 0u);
}

BOOST_AUTO_TEST_CASE(server_drops_responses_errors_and_events) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());

  v1::Envelope error;
  error.set_id(3);
  error.set_kind(v1::KIND_ERROR);
  error.mutable_error()->set_code(v1::ERROR_CODE_INTERNAL);
  error.mutable_error()->set_message("a client's error, sent to the server");
  std::string bytes =
      frame(envelope_body(3, v1::KIND_RESPONSE, "msgframe.v1.EchoResponse", "")) +
      frame(error.SerializeAsString()) +
      frame(envelope_body(3, v1::KIND_EVENT, echo_request_type, echo_payload("an event")));
  connection.write(bytes);
  connection.write(frame(echo_body(5, "after three dropped frames")));
  check_echo_reply(connection.read_envelope(), 5, "after three dropped frames");

  const auto stats = server.server.stats();
  BOOST_TEST(stats.frames_dropped == 3u);
  BOOST_TEST(stats.requests == 1u);
  BOOST_TEST(stats.errors_sent == 0u);
}

// ---- 9. Oversized length prefixes -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(oversized_prefix_gets_frame_too_large_then_close) {
  auto options = loopback_options();
  options.max_frame_bytes = 1024;
  TestServer server(options);
  server.start();
  // Connected (and served) before the bad clients: it must not notice them.
  RawConnection bystander(server.port());
  check_echo_round_trip(bystander, 1);

  BOOST_TEST_CONTEXT("prefix 1025, one more than the max frame") {
    check_oversized_prefix_closes(server.port(), length_prefix(1025), 10);
  }
  check_echo_round_trip(bystander, 2);
  BOOST_TEST_CONTEXT("prefix 0xFFFFFFFF") {
    check_oversized_prefix_closes(server.port(), length_prefix(0xFFFFFFFF), 20);
  }
  check_echo_round_trip(bystander, 3);
  BOOST_TEST(server.server.stats().sessions_failed == 2u);
}

BOOST_AUTO_TEST_CASE(oversized_prefix_with_the_default_max_frame) {
  TestServer server;
  server.start();
  RawConnection bystander(server.port());
  check_echo_round_trip(bystander, 1);
  BOOST_TEST_CONTEXT("prefix 4 MiB + 1") {
    check_oversized_prefix_closes(server.port(), length_prefix(4 * 1024 * 1024 + 1), 10);
  }
  BOOST_TEST_CONTEXT("prefix 0xFFFFFFFF") {
    check_oversized_prefix_closes(server.port(), length_prefix(0xFFFFFFFF), 20);
  }
  check_echo_round_trip(bystander, 2);
}

// ---- 10. A reply over the max frame ---------------------------------------------------------

// An EchoResponse envelope is one byte longer than its EchoRequest envelope (the type name
// "msgframe.v1.EchoResponse" has one more character, the payload is the same when uppercase is
// off), so with a request body of exactly the max frame the reply is one byte over.
BOOST_AUTO_TEST_CASE(echo_reply_one_byte_over_the_max_frame_gets_frame_too_large) {
  constexpr std::size_t max_frame = 1024;
  constexpr std::uint64_t id = 70;
  const auto response_size = [](std::size_t payload_bytes) {
    v1::EchoResponse response;
    response.set_payload(std::string(payload_bytes, 'r'));
    return envelope_body(id, v1::KIND_RESPONSE, echo_response_type, response.SerializeAsString())
        .size();
  };
  std::optional<std::size_t> payload_bytes;
  for (std::size_t candidate = max_frame; candidate > 0 && !payload_bytes; --candidate) {
    const std::size_t request_size = echo_body(id, std::string(candidate, 'r')).size();
    if (request_size <= max_frame && response_size(candidate) > max_frame) {
      payload_bytes = candidate;
    }
  }
  BOOST_TEST_REQUIRE(payload_bytes.has_value());
  const std::string text(*payload_bytes, 'r');
  BOOST_TEST_MESSAGE("request body " << echo_body(id, text).size() << " bytes, reply body "
                                     << response_size(*payload_bytes) << " bytes");

  auto options = loopback_options();
  options.max_frame_bytes = max_frame;
  TestServer server(options);
  server.start();
  RawConnection connection(server.port());
  connection.write(frame(echo_body(id, text)));
  check_error_reply(connection.read_envelope(), id, v1::ERROR_CODE_FRAME_TOO_LARGE);
  check_echo_round_trip(connection, id + 1);
  // One byte shorter, the reply fits exactly.
  const std::string fitting(*payload_bytes - 1, 'r');
  connection.write(frame(echo_body(id + 2, fitting)));
  check_echo_reply(connection.read_envelope(), id + 2, fitting);
  BOOST_TEST(server.server.stats().sessions_failed == 0u);
}

BOOST_AUTO_TEST_CASE(large_reply_to_small_request_gets_frame_too_large) {
  auto options = loopback_options();
  options.max_frame_bytes = 1024;
  msgframe::Server server(options);
  server.handle<v1::EchoRequest>([](const v1::EchoRequest& request) {
    v1::EchoResponse response;
    response.set_payload(request.payload() == "big" ? std::string(5000, 'x') : request.payload());
    return response;
  });
  BOOST_TEST_REQUIRE(!server.start());
  RawConnection connection(server.port());
  connection.write(frame(echo_body(80, "big")));
  check_error_reply(connection.read_envelope(), 80, v1::ERROR_CODE_FRAME_TOO_LARGE);
  check_echo_round_trip(connection, 81);
}

// ---- 11. A failing handler ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(throwing_handler_gets_internal) {
  msgframe::Server server(loopback_options());
  server.handle<v1::EchoRequest>([](const v1::EchoRequest& request) {
    if (request.payload() == "throw") throw std::runtime_error("the handler failed on purpose");
    v1::EchoResponse response;
    response.set_payload(request.payload());
    return response;
  });
  BOOST_TEST_REQUIRE(!server.start());
  RawConnection connection(server.port());
  connection.write(frame(echo_body(90, "throw")));
  check_error_reply(connection.read_envelope(), 90, v1::ERROR_CODE_INTERNAL);
  check_echo_round_trip(connection, 91);
  // One-way: the failure is counted, not sent.
  connection.write(frame(echo_body(0, "throw")));
  check_echo_round_trip(connection, 92);
  BOOST_TEST(server.stats().one_way_errors == 1u);
}

// Handlers may throw anything, not only std::exception: a plain handler's int must not escape
// the I/O thread, a coroutine's must not vanish with no reply, and the coroutine's end must still
// be counted, or its session would never close and stop() would wait out its drain timeout.
BOOST_AUTO_TEST_CASE(handlers_throwing_a_non_exception_get_internal) {
  auto options = loopback_options(1);
  options.drain_timeout = std::chrono::seconds(20);
  std::mutex log_mutex;
  std::vector<std::string> log;
  options.log = [&](const std::string& line) {
    const std::lock_guard lock(log_mutex);
    log.push_back(line);
  };
  std::promise<void> session_closed;  // before the server, whose stop() may close the session
  msgframe::Server server(options);
  server.handle<v1::EchoRequest>([](const v1::EchoRequest& request) {
    if (request.payload() == "throw") throw 42;
    v1::EchoResponse response;
    response.set_payload(request.payload());
    return response;
  });
  server.handle<v1::TimeRequest>([](v1::TimeRequest) -> asio::awaitable<v1::TimeResponse> {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw 42;
  });
  server.on_session_closed([&](std::uint64_t) { session_closed.set_value(); });
  BOOST_TEST_REQUIRE(!server.start());
  {
    RawConnection connection(server.port());
    connection.write(frame(echo_body(93, "throw")));
    check_error_reply(connection.read_envelope(), 93, v1::ERROR_CODE_INTERNAL);
    check_echo_round_trip(connection, 94);
    connection.write(frame(request_body(95, "msgframe.v1.TimeRequest", "")));
    check_error_reply(connection.read_envelope(), 95, v1::ERROR_CODE_INTERNAL);
    check_echo_round_trip(connection, 96);
    connection.write(frame(request_body(0, "msgframe.v1.TimeRequest", "")));  // one-way
    connection.write(frame(echo_body(0, "throw")));
    check_echo_round_trip(connection, 97);
  }  // the client leaves: the session closes once no coroutine handler runs for it
  BOOST_TEST_REQUIRE(
      (session_closed.get_future().wait_for(std::chrono::seconds(20)) == std::future_status::ready),
      "the session did not close: a coroutine handler's end was not counted");
  server.stop();
  BOOST_TEST(server.stats().one_way_errors == 2u);
  const std::lock_guard lock(log_mutex);
  for (const auto& line : log) BOOST_TEST(line.find("drain timeout") == std::string::npos);
}

// ---- 12. Protobuf parsing rules of the envelope ---------------------------------------------

BOOST_AUTO_TEST_CASE(unknown_reordered_repeated_and_non_minimal_fields_are_answered) {
  TestServer server;
  server.start();
  RawConnection connection(server.port());
  const std::string text = "parsed by the protobuf rules";
  const std::string payload = bytes_field(payload_field, echo_payload(text));
  const std::string type = bytes_field(type_field, echo_request_type);
  const std::string request_kind = varint_field(kind_field, v1::KIND_REQUEST);
  // One unknown field of every wire type, including the largest field number and a group with
  // nested fields (and a nested group).
  const std::string unknown_fields =
      varint_field(100, 150) + fixed64_field(101, 0x0123456789ABCDEF) + fixed32_field(102, 7) +
      bytes_field(103, "unknown bytes") +
      group_field(104, varint_field(1, 5) + bytes_field(2, "in a group") +
                           group_field(3, fixed32_field(4, 9))) +
      varint_field(536870911, 1);
  // The same EchoRequest and envelope with each varint in more bytes than it needs.
  const std::string padded_echo = tag(1, wire_length_delimited) + padded_varint(text.size(), 2) +
                                  text + tag(2, wire_varint) + padded_varint(0, 3);
  const std::string padded_varints =
      tag(id_field, wire_varint) + padded_varint(203, 5) + tag(kind_field, wire_varint) +
      padded_varint(v1::KIND_REQUEST, 3) + tag(type_field, wire_length_delimited) +
      padded_varint(echo_request_type.size(), 4) + std::string(echo_request_type) +
      tag(payload_field, wire_length_delimited) + padded_varint(padded_echo.size(), 3) +
      padded_echo;
  const std::string padded_tags =
      padded_varint(id_field << 3 | wire_varint, 2) + varint(205) +
      padded_varint(kind_field << 3 | wire_varint, 3) + varint(v1::KIND_REQUEST) +
      padded_varint(type_field << 3 | wire_length_delimited, 2) + varint(echo_request_type.size()) +
      std::string(echo_request_type) +
      padded_varint(payload_field << 3 | wire_length_delimited, 5) +
      varint(echo_payload(text).size()) + echo_payload(text);
  struct Case {
    std::string_view name;
    std::string body;
    std::uint64_t id;
  };
  const Case cases[] = {
      {"unknown fields of every wire type between the known ones",
       varint_field(id_field, 200) + unknown_fields + request_kind + unknown_fields + type +
           unknown_fields + payload + unknown_fields,
       200},
      {"fields in reverse order", payload + type + request_kind + varint_field(id_field, 201), 201},
      {"repeated scalars: the last one wins",
       varint_field(id_field, 1) + varint_field(kind_field, v1::KIND_EVENT) +
           bytes_field(type_field, "no.such.Type") + bytes_field(payload_field, "\xff\xff") +
           varint_field(id_field, 202) + request_kind + type + payload,
       202},
      {"non-minimal varints: every value and length padded", padded_varints, 203},
      {"non-minimal varints in the tags too", padded_tags, 205},
      {"unknown fields inside the EchoRequest payload",
       varint_field(id_field, 204) + request_kind + type +
           bytes_field(payload_field, unknown_fields + echo_payload(text) + unknown_fields),
       204},
  };
  for (const auto& valid : cases) {
    BOOST_TEST_CONTEXT(valid.name) {
      connection.write(frame(valid.body));
      check_echo_reply(connection.read_envelope(), valid.id, text);
    }
  }
  BOOST_TEST(server.server.stats().errors_sent == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_does_not_read_is_held_back_and_then_gets_every_reply) {
  // The peer pipelines far more echo requests than the write-queue mark allows and reads
  // nothing: the server stops reading it (TCP holds the peer back) instead of queueing replies
  // without bound, keeps serving others, and once the peer reads, every reply arrives in order.
  auto options = loopback_options(1);
  options.max_write_queue_bytes = 256 * 1024;
  TestServer server(options);
  server.start();

  const std::string payload(16 * 1024, 'q');
  constexpr std::size_t requests = 1200;  // about 20 MB
  std::string stream;
  std::vector<std::size_t> frame_ends;  // frames differ in size: ids take 1 or 2 bytes
  for (std::size_t id = 1; id <= requests; ++id) {
    stream += frame(echo_body(id, payload));
    frame_ends.push_back(stream.size());
  }

  RawConnection slow(server.port());
  const std::size_t written = slow.write_until_blocked(stream, std::chrono::milliseconds(1000));
  BOOST_TEST_REQUIRE(written < stream.size(), "the server took all 20 MB without being read");
  BOOST_TEST(server.server.stats().reads_paused >= 1u);

  RawConnection other(server.port());  // others are served meanwhile
  other.write(frame(echo_body(7, "meanwhile")));
  check_echo_reply(other.read_envelope(), 7, "meanwhile");

  // Now the slow peer reads: every request it got in whole is answered, in order; then it
  // finishes the request it was cut off in, and that is answered too.
  const auto whole = static_cast<std::size_t>(
      std::upper_bound(frame_ends.begin(), frame_ends.end(), written) - frame_ends.begin());
  for (std::size_t id = 1; id <= whole; ++id) check_echo_reply(slow.read_envelope(), id, payload);
  if (whole < requests && written > (whole == 0 ? 0 : frame_ends[whole - 1])) {
    slow.write(std::string_view(stream).substr(written, frame_ends[whole] - written));
    check_echo_reply(slow.read_envelope(), whole + 1, payload);
  }
}

namespace {

// Echo requests whose payloads differ from each other at every byte, 18 MiB in all (more than
// sockets buffer), to a peer that reads their replies late: a reply overwritten by a later
// request would not match. Every fourth asks for uppercase and every seventh carries an unknown
// field: those replies are parsed and copied. Returns the largest ring the server's decoders had.
std::size_t echo_to_a_late_reader(const msgframe::ServerOptions& options,
                                  std::size_t payload_bytes) {
  TestServer server(options);
  server.start();
  const std::size_t requests = 18 * 1024 * 1024 / payload_bytes;
  const auto payload_of = [payload_bytes](std::size_t id) {
    std::string payload(payload_bytes, '\0');
    for (std::size_t index = 0; index < payload_bytes; ++index) {
      payload[index] = static_cast<char>('a' + (id * 7 + index) % 26);
    }
    return payload;
  };
  std::string stream;
  std::vector<std::size_t> frame_ends;
  for (std::size_t id = 1; id <= requests; ++id) {
    std::string request = echo_payload(payload_of(id), id % 4 == 0);
    if (id % 7 == 0) request.append(varint_field(9, id));
    stream += frame(request_body(id, echo_request_type, request));
    frame_ends.push_back(stream.size());
  }

  RawConnection peer(server.port());
  std::size_t written = peer.write_until_blocked(stream, std::chrono::milliseconds(500));
  BOOST_TEST_REQUIRE(written < stream.size(), "the server took all 18 MiB without being read");
  BOOST_TEST(server.server.stats().reads_paused >= 1u);
  std::size_t largest_ring = msgframe::test::decoder_ring_bytes();

  // Read the replies to the requests sent whole, send more, and so on to the end.
  std::size_t answered = 0;
  for (int round = 0; round < 5000 && answered < requests; ++round) {
    const auto whole = static_cast<std::size_t>(
        std::upper_bound(frame_ends.begin(), frame_ends.end(), written) - frame_ends.begin());
    for (; answered < whole; ++answered) {
      const std::size_t id = answered + 1;
      std::string expected = payload_of(id);
      if (id % 4 == 0) {
        for (auto& letter : expected) letter = static_cast<char>(letter - 'a' + 'A');
      }
      check_echo_reply(peer.read_envelope(), id, expected);
    }
    written += peer.write_until_blocked(std::string_view(stream).substr(written),
                                        std::chrono::milliseconds(500));
    largest_ring = std::max(largest_ring, msgframe::test::decoder_ring_bytes());
  }
  BOOST_TEST(answered == requests);
  return largest_ring;
}

}  // namespace

// Large frames split across 64 KiB reads: the server's read buffer becomes a ring, and echo
// replies are copied out of it (writing them from a ring cost the kernel more than the copy).
BOOST_AUTO_TEST_CASE(echo_replies_from_a_ring_survive_a_peer_that_reads_late) {
  BOOST_TEST(echo_to_a_late_reader(loopback_options(1), 192 * 1024) > 0u,
             "the server's read buffer never became a ring");
}

// 20 KiB frames in 1 MiB reads leave partial frames too small for a ring: the read buffer stays
// plain memory, the usual echo reply is written from it in place, and no read may reuse those
// bytes before that write is done.
BOOST_AUTO_TEST_CASE(echo_replies_written_in_place_survive_a_peer_that_reads_late) {
  auto options = loopback_options(1);
  options.read_bytes = 1024 * 1024;
  BOOST_TEST(echo_to_a_late_reader(options, 20 * 1024) == 0u, "the read buffer became a ring");
}

BOOST_AUTO_TEST_CASE(slow_loris_connections_are_closed_at_the_frame_deadline) {
  // 500 connections each send half a length prefix and then nothing: each is closed once the
  // frame timeout passes, while a well-behaved client is served throughout.
  rlimit limit{};  // 500 connections here and 500 in the server: more than the usual 1,024 fds
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);

  auto options = loopback_options(2);
  options.frame_timeout = std::chrono::milliseconds(500);
  TestServer server(options);
  server.start();

  constexpr std::size_t lorises = 500;
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (std::size_t index = 0; index < lorises; ++index) {
    slow.push_back(std::make_unique<RawConnection>(server.port()));
    slow.back()->write(std::string("\0\0", 2));  // half of a prefix
  }
  RawConnection normal(server.port());
  normal.write(frame(echo_body(1, "while they wait")));
  check_echo_reply(normal.read_envelope(), 1, "while they wait");

  for (auto& connection : slow) {  // each read ends at the close, within read_deadline
    BOOST_TEST_REQUIRE(!connection->read_frame().has_value(), "a slow connection got a reply");
  }
  BOOST_TEST(server.server.stats().frames_timed_out == lorises);

  // A frame whose bytes come slowly but within the deadline is fine, and so is the client.
  normal.write(frame(echo_body(2, "after")).substr(0, 3));
  normal.write(frame(echo_body(2, "after")).substr(3));
  check_echo_reply(normal.read_envelope(), 2, "after");
}

BOOST_AUTO_TEST_CASE(a_frame_begun_after_a_quiet_spell_gets_the_whole_frame_timeout) {
  // The deadline is that of the frame now partial, not of an earlier one that has ended: frame
  // 2 begins 700 ms after frame 1 did and takes 500 ms, past frame 1's deadline but well within
  // its own. The pauses are the scenario (a peer that writes slowly), not synchronisation.
  auto options = loopback_options(1);
  options.frame_timeout = std::chrono::milliseconds(1000);
  TestServer server(options);
  server.start();
  RawConnection connection(server.port());
  const auto first = frame(echo_body(1, "first"));
  connection.write(first.substr(0, 3));
  connection.write(first.substr(3));
  check_echo_reply(connection.read_envelope(), 1, "first");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const auto second = frame(echo_body(2, "second"));
  connection.write(second.substr(0, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  connection.write(second.substr(3));
  check_echo_reply(connection.read_envelope(), 2, "second");
  BOOST_TEST(server.server.stats().frames_timed_out == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_never_reads_its_events_is_closed_not_buffered_forever) {
  // Events are pushed whether or not the peer reads: past twice the write-queue mark of unread
  // events its session is closed, and a peer that reads keeps getting them.
  auto options = loopback_options(1);
  options.max_write_queue_bytes = 64 * 1024;
  std::mutex closed_mutex;
  std::condition_variable closed_changed;
  bool deaf_closed = false;
  TestServer server(options);
  server.server.on_session_closed([&](std::uint64_t) {
    const std::lock_guard lock(closed_mutex);
    deaf_closed = true;
    closed_changed.notify_all();
  });
  server.start();

  RawConnection deaf(server.port());  // connects, reads nothing
  RawConnection listener(server.port());
  // Both are registered once each has been answered.
  deaf.write(frame(echo_body(1, "hello")));
  listener.write(frame(echo_body(1, "hello")));
  check_echo_reply(listener.read_envelope(), 1, "hello");

  // Events of 16 KiB, a bounded number: enough to fill the deaf peer's socket buffers and then
  // twice the mark (loopback buffers hold a few MB).
  v1::EchoResponse event;
  event.set_payload(std::string(16 * 1024, 'e'));
  bool closed = false;
  for (int round = 0; round < 2000 && !closed; ++round) {
    server.server.broadcast(event);
    // Keep the listener reading, so it is never the slow one.
    const auto pushed = listener.read_envelope();
    BOOST_TEST_REQUIRE(pushed.kind() == v1::KIND_EVENT);
    const std::lock_guard lock(closed_mutex);
    closed = deaf_closed;
  }
  BOOST_TEST_REQUIRE(closed, "the deaf peer's session was never closed");
  BOOST_TEST(server.server.stats().sessions_too_slow == 1u);
  listener.write(frame(echo_body(2, "still here")));
  // Events still queued for the listener come first; then its reply.
  for (;;) {
    const auto envelope = listener.read_envelope();
    if (envelope.kind() == v1::KIND_EVENT) continue;
    check_echo_reply(envelope, 2, "still here");
    break;
  }
}

// ---- Clean shutdown ---------------------------------------------------------------------------

namespace {

// Runs server.stop() on a thread of its own; stopped() says whether it has returned.
class Stopper {
 public:
  explicit Stopper(msgframe::Server& server)
      : done_(std::async(std::launch::async, [&server] { server.stop(); })) {}
  bool stopped_within(std::chrono::seconds deadline) {
    return done_.wait_for(deadline) == std::future_status::ready;
  }
  bool stopped() { return done_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::future<void> done_;
};

void check_shutting_down_event(const v1::Envelope& event, std::uint32_t drain_timeout_ms) {
  BOOST_TEST(event.id() == 0u);
  BOOST_TEST(event.kind() == v1::KIND_EVENT);
  BOOST_TEST_REQUIRE(event.type() == "msgframe.v1.ShuttingDown");
  v1::ShuttingDown notice;
  BOOST_TEST(notice.ParseFromString(event.payload()));
  BOOST_TEST(notice.drain_timeout_ms() == drain_timeout_ms);
}

}  // namespace

BOOST_AUTO_TEST_CASE(stop_announces_itself_answers_what_it_read_and_refuses_the_rest) {
  // stop(): the listener closes, the open session is told (ShuttingDown), the request in flight
  // is answered, a request sent after the notice gets SHUTTING_DOWN, and the session closes as
  // soon as the peer closes, long before the drain deadline.
  std::atomic<bool> drain_timed_out{false};
  auto options = msgframe::test::draining_options(drain_timed_out);
  options.serve_udp = false;
  msgframe::Server server(options);
  msgframe::test::HeldEcho held;
  held.install(server.router());
  BOOST_TEST_REQUIRE(!server.start());
  const auto port = server.port();

  RawConnection connection(port);
  connection.write(frame(echo_body(1, "read before the stop")));
  BOOST_TEST_REQUIRE(held.wait_until_holding(1, read_deadline));

  Stopper stopper(server);
  check_shutting_down_event(connection.read_envelope(), 60000);
  connection.write(frame(echo_body(2, "sent after the notice")));
  check_error_reply(connection.read_envelope(), 2, v1::ERROR_CODE_SHUTTING_DOWN);
  BOOST_CHECK_THROW(RawConnection{port}, boost::system::system_error);  // no longer accepting

  held.release();
  check_echo_reply(connection.read_envelope(), 1, "read before the stop");
  BOOST_TEST(!stopper.stopped(), "stop() returned while a session was still open");
  connection.close_sending();
  BOOST_TEST(!connection.read_frame().has_value());
  BOOST_TEST(stopper.stopped_within(read_deadline));
  BOOST_TEST(!drain_timed_out);
  BOOST_TEST(server.stats().sessions_open == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_stays_is_closed_at_the_drain_deadline) {
  auto options = loopback_options(1);
  options.serve_udp = false;
  options.drain_timeout = std::chrono::milliseconds(300);
  TestServer server(options);
  server.start();
  RawConnection connection(server.port());
  check_echo_round_trip(connection, 1);

  Stopper stopper(server.server);
  check_shutting_down_event(connection.read_envelope(), 300);
  BOOST_TEST(!connection.read_frame().has_value(), "the session outlived the drain deadline");
  BOOST_TEST(stopper.stopped_within(read_deadline));
}
