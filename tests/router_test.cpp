// The router: serialized handlers (bytes in, bytes out) beside typed ones, and the Echo service's
// answer from the request's own bytes, held to protobuf's reading of them.
#define BOOST_TEST_MODULE router
#include <boost/test/unit_test.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "msgframe/echo_service.hpp"
#include "support/recording_channel.hpp"

namespace v1 = msgframe::v1;
using msgframe::test::RecordingChannel;

namespace {

std::span<const std::byte> bytes_of(const std::string& text) {
  return std::as_bytes(std::span(text));
}

msgframe::RequestContext context_for(std::uint64_t request_id) {
  msgframe::RequestContext context;
  context.request_id = request_id;
  return context;
}

// What Echo answers `request_bytes` with, through the router as a session calls it.
RecordingChannel serve_echo(const std::string& request_bytes) {
  msgframe::Router router;
  msgframe::add_echo_service(router);
  RecordingChannel channel;
  router.dispatch("msgframe.v1.EchoRequest", bytes_of(request_bytes), context_for(9), channel);
  return channel;
}

std::string varint(std::uint64_t value, int at_least_bytes = 1) {
  std::string out;
  for (int index = 1; value >= 0x80 || index < at_least_bytes; ++index) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const char byte : bytes) {
    out.push_back(digits[static_cast<unsigned char>(byte) >> 4]);
    out.push_back(digits[static_cast<unsigned char>(byte) & 0xF]);
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_serialized_handler_gets_the_payload_bytes_and_its_reply_is_sent_as_is) {
  msgframe::Router router;
  std::string seen;
  router.handle_serialized<v1::EchoRequest, v1::EchoResponse>(
      [&seen](std::span<const std::byte> request,
              msgframe::RequestContext& context) -> msgframe::SerializedResult {
        seen.assign(reinterpret_cast<const char*>(request.data()), request.size());
        BOOST_TEST(context.request_id == 5u);
        return request.subspan(1);
      });
  RecordingChannel channel;
  const std::string payload = "xyz";
  router.dispatch("msgframe.v1.EchoRequest", bytes_of(payload), context_for(5), channel);
  BOOST_TEST(seen == "xyz");
  BOOST_TEST(channel.calls == 1u);
  BOOST_TEST(channel.id == 5u);
  BOOST_TEST(channel.type == "msgframe.v1.EchoResponse");
  BOOST_TEST(channel.response.value_or("") == "yz");
  BOOST_TEST((channel.serialized_at == bytes_of(payload).data() + 1));
}

BOOST_AUTO_TEST_CASE(a_serialized_handler_fails_with_its_error_or_internal_when_it_throws) {
  msgframe::Router router;
  router.handle_serialized<v1::EchoRequest, v1::EchoResponse>(
      [](std::span<const std::byte> request) -> msgframe::SerializedResult {
        if (request.empty()) throw std::runtime_error("empty");
        return msgframe::HandlerError{v1::ERROR_CODE_BAD_PAYLOAD, "not today"};
      });
  RecordingChannel refused;
  router.dispatch("msgframe.v1.EchoRequest", bytes_of("a"), context_for(1), refused);
  BOOST_TEST((refused.error == v1::ERROR_CODE_BAD_PAYLOAD));
  BOOST_TEST(refused.error_message == "not today");
  BOOST_TEST(!refused.response.has_value());
  RecordingChannel thrown;
  router.dispatch("msgframe.v1.EchoRequest", {}, context_for(2), thrown);
  BOOST_TEST((thrown.error == v1::ERROR_CODE_INTERNAL));
  BOOST_TEST(thrown.id == 2u);
}

// Handlers must not return a container: the span made from it would outlive it.
static_assert(msgframe::detail::returns_borrowed_bytes<decltype([](std::span<const std::byte> in) {
  return in;
})>());
static_assert(msgframe::detail::returns_borrowed_bytes<
              decltype([](std::span<const std::byte>, msgframe::RequestContext&)
                           -> msgframe::SerializedResult { return msgframe::HandlerError{}; })>());
static_assert(!msgframe::detail::returns_borrowed_bytes<decltype([](std::span<const std::byte>) {
  return std::vector<std::byte>();
})>());
static_assert(!msgframe::detail::returns_borrowed_bytes<decltype([](int) { return 0; })>());

BOOST_AUTO_TEST_CASE(a_channel_that_takes_no_serialized_replies_answers_internal) {
  // A ReplyChannel written before serialized replies existed still compiles, and fails them.
  class TypedOnlyChannel final : public msgframe::ReplyChannel {
   public:
    void send_reply(std::uint64_t, std::string_view,
                    const google::protobuf::MessageLite&) override {
      ++replies;
    }
    void send_error(std::uint64_t, v1::ErrorCode code, std::string_view) override { error = code; }
    boost::asio::any_io_executor executor() override { return {}; }
    std::shared_ptr<ReplyChannel> keep_alive() override { return nullptr; }
    void on_async_handler(bool) override {}
    int replies = 0;
    std::optional<v1::ErrorCode> error;
  } channel;
  msgframe::Router router;
  msgframe::add_echo_service(router);
  const std::string request = "\x0a\x02hi";
  router.dispatch("msgframe.v1.EchoRequest", bytes_of(request), context_for(4), channel);
  BOOST_TEST(channel.replies == 0);
  BOOST_TEST((channel.error == v1::ERROR_CODE_INTERNAL));
}

BOOST_AUTO_TEST_CASE(a_type_takes_one_handler_whichever_kind) {
  msgframe::Router router;
  router.handle<v1::EchoRequest>([](const v1::EchoRequest&) { return v1::EchoResponse(); });
  const auto serialized = [](std::span<const std::byte> request) -> msgframe::SerializedResult {
    return request;
  };
  BOOST_CHECK_THROW((router.handle_serialized<v1::EchoRequest, v1::EchoResponse>(serialized)),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(echo_answers_a_payload_only_request_with_its_own_bytes) {
  v1::EchoRequest request;
  request.set_payload(std::string(300, 'p'));  // a two-byte length
  const auto bytes = request.SerializeAsString();
  msgframe::Router router;
  msgframe::add_echo_service(router);
  RecordingChannel channel;
  router.dispatch("msgframe.v1.EchoRequest", bytes_of(bytes), context_for(3), channel);
  BOOST_TEST(channel.type == "msgframe.v1.EchoResponse");
  BOOST_TEST(channel.response.value_or("") == bytes);
  BOOST_TEST((channel.serialized_at == bytes_of(bytes).data()), "the reply is not the request");
}

BOOST_AUTO_TEST_CASE(echo_answers_every_request_as_protobuf_reads_it) {
  const std::string payload = "Hello, bytes \x01\xff";
  const auto field = [](std::string_view bytes, int length_bytes) {
    return "\x0a" + varint(bytes.size(), length_bytes) + std::string(bytes);
  };
  const std::string requests[] = {
      "",                                              // all defaults
      field(payload, 1),                               // the usual form
      field(payload, 5),                               // a length padded to protobuf's five bytes
      field(payload, 6),                               // one byte past what protobuf reads
      field(payload, 1).substr(0, 5),                  // cut short
      field(payload, 1) + "\x10\x01",                  // uppercase
      field(payload, 1) + std::string("\x10\x00", 2),  // uppercase written as false
      field("first", 1) + field(payload, 1),           // repeated: the last wins
      field(payload, 1) + "\x18\x07",                  // an unknown field
      "\x08\x05" + field(payload, 1),                  // field 1 as a varint: unknown, then bytes
      std::string("\x0a\x80", 2),                      // a length that never ends
      std::string("\x0a\x00", 2),                      // an empty payload, written out
      std::string("\x0a\x05", 2) + "abc",              // a length past the end
  };
  for (const auto& bytes : requests) {
    BOOST_TEST_CONTEXT("request " << hex(bytes)) {
      v1::EchoRequest parsed;
      const bool parses = parsed.ParseFromString(bytes);
      const auto channel = serve_echo(bytes);
      BOOST_TEST(channel.calls == 1u);
      BOOST_TEST(channel.id == 9u);
      if (!parses) {
        BOOST_TEST((channel.error == v1::ERROR_CODE_BAD_PAYLOAD));
        continue;
      }
      BOOST_TEST_REQUIRE(channel.response.has_value());
      v1::EchoResponse response;
      BOOST_TEST_REQUIRE(response.ParseFromString(*channel.response));
      BOOST_TEST(response.payload() == msgframe::echo(parsed).payload());
    }
  }
}
