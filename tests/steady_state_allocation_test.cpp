// The server's per-request path below the handler — reading frames, parsing envelopes, routing,
// parsing the request, framing the reply — allocates nothing in the steady state: every buffer
// and message is reused. Counted with a replaced global operator new, not timed.
#define BOOST_TEST_MODULE steady_state_allocation
#include <atomic>
#include <boost/test/unit_test.hpp>

#include "msgframe/echo_service.hpp"
#include "msgframe/envelope.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/router.hpp"
#include "msgframe/v1/echo.pb.h"
#include "support/allocation_counter.hpp"

using msgframe::test::allocations;

namespace {

namespace v1 = msgframe::v1;

// A ReplyChannel as a session is one: replies framed into one reused outgoing buffer.
class BufferChannel final : public msgframe::ReplyChannel {
 public:
  void send_reply(std::uint64_t request_id, std::string_view type,
                  const google::protobuf::MessageLite& response) override {
    if (msgframe::append_envelope_frame(
            outgoing, encoder, {request_id, v1::KIND_RESPONSE, type, &response, nullptr})) {
      ++failures;
    }
    ++replies;
  }
  void send_serialized_reply(std::uint64_t request_id, std::string_view type,
                             std::span<const std::byte> response) override {
    if (msgframe::append_envelope_frame(
            outgoing, encoder, {request_id, v1::KIND_RESPONSE, type, nullptr, nullptr, response})) {
      ++failures;
    }
    ++replies;
  }
  void send_error(std::uint64_t, v1::ErrorCode, std::string_view) override { ++failures; }
  boost::asio::any_io_executor executor() override { return {}; }
  std::shared_ptr<ReplyChannel> keep_alive() override { return nullptr; }
  void on_async_handler(bool) override {}

  msgframe::FrameEncoder encoder;
  std::vector<std::byte> outgoing;
  std::size_t replies = 0;
  std::size_t failures = 0;
};

// A stream of `count` Echo requests with 64-byte payloads, as a client sends them; every other
// one asks for uppercase when `alternate_uppercase` is set.
std::vector<std::byte> request_stream(std::size_t count, bool alternate_uppercase = false) {
  std::vector<std::byte> stream;
  const msgframe::FrameEncoder encoder;
  v1::EchoRequest request;
  request.set_payload(std::string(64, 'p'));
  for (std::size_t id = 1; id <= count; ++id) {
    request.set_uppercase(alternate_uppercase && id % 2 == 0);
    (void)msgframe::append_envelope_frame(
        stream, encoder, {id, v1::KIND_REQUEST, "msgframe.v1.EchoRequest", &request, nullptr});
  }
  return stream;
}

// Serves `stream` three times, in reads of 16 KiB, as a session reads and answers it; returns
// the allocations made during the last two (the first warms buffers and reused messages up).
std::size_t allocations_serving(const msgframe::Router& router, BufferChannel& channel,
                                const std::vector<std::byte>& stream) {
  msgframe::FrameDecoder decoder;
  constexpr std::size_t read_bytes = 16 * 1024;
  const auto serve_stream = [&] {
    for (std::size_t offset = 0; offset < stream.size(); offset += read_bytes) {
      const std::size_t size = std::min(read_bytes, stream.size() - offset);
      auto space = decoder.prepare(read_bytes);
      std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(offset), size, space.begin());
      decoder.commit(size);
      channel.outgoing.clear();  // written: the buffer's capacity stays
      while (auto body = decoder.next()) {
        msgframe::EnvelopeView envelope;
        if (msgframe::parse_envelope(*body, envelope)) ++channel.failures;
        msgframe::RequestContext context;
        context.request_id = envelope.id;
        router.dispatch(envelope.type, envelope.payload, context, channel);
      }
    }
  };
  serve_stream();
  const std::size_t before = allocations.load();
  serve_stream();
  serve_stream();
  return allocations.load() - before;
}

}  // namespace

BOOST_AUTO_TEST_CASE(framing_envelope_and_routing_allocate_nothing_per_request) {
  // The handler answers with a response it reuses: what a handler itself allocates is its own.
  v1::EchoResponse response;
  msgframe::Router router;
  router.handle<v1::EchoRequest>([&response](const v1::EchoRequest& request) -> const auto& {
    response.set_payload(request.payload());  // reuses the string's capacity
    return response;
  });
  BufferChannel channel;
  const std::size_t during = allocations_serving(router, channel, request_stream(2000));
  BOOST_TEST(channel.failures == 0u);
  BOOST_TEST(channel.replies == 6000u);
  BOOST_TEST(during == 0u, "allocations while serving 4,000 requests: " << during);
}

BOOST_AUTO_TEST_CASE(the_echo_service_allocates_nothing_per_request) {
  // Both of its paths: the request's own bytes, and (uppercase) parsed and serialized again.
  msgframe::Router router;
  msgframe::add_echo_service(router);
  BufferChannel channel;
  const std::size_t during = allocations_serving(router, channel, request_stream(2000, true));
  BOOST_TEST(channel.failures == 0u);
  BOOST_TEST(channel.replies == 6000u);
  BOOST_TEST(during == 0u, "allocations while serving 4,000 echo requests: " << during);
}

BOOST_AUTO_TEST_CASE(the_counter_sees_allocations) {
  // The proof above is worth something only if the counter counts.
  const std::size_t before = allocations.load();
  auto* value = new std::string(100, 'x');
  delete value;
  BOOST_TEST(allocations.load() - before >= 2u);
}
