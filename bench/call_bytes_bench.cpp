// Google Benchmark of the bytes a client handles per call, without the network: what msgframe's
// envelope and protobuf cost beside raw's bare length prefix. Compare within one run.
//
// A call is a 64-byte Echo: its request written into a write buffer, its reply read from a frame.
// BM_RawCall does what bench/baseline's client does (a 4-byte prefix and the payload);
// BM_MsgframeCall what msgframe's does (the payload set in the request, the envelope with the
// payload's type name, the Echo messages through protobuf, the reply's type checked);
// BM_ProtobufEcho protobuf's part of that alone (the request serialized, the reply parsed).
// Neither checks the echoed payload, which both load clients do alike.
#include <benchmark/benchmark.h>

#include <boost/endian/conversion.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "msgframe/envelope.hpp"
#include "msgframe/frame_encoder.hpp"
#include "msgframe/v1/echo.pb.h"

namespace {

namespace v1 = msgframe::v1;

const std::string payload(64, 'm');

// A write buffer that keeps its memory, as msgframe's client's does.
std::vector<std::byte> reserved_buffer() {
  std::vector<std::byte> buffer;
  buffer.reserve(4096);
  return buffer;
}

// Raw's client rewrites its frames in a buffer sized once.
void BM_RawCall(benchmark::State& state) {
  std::vector<std::byte> request(4 + payload.size());
  std::vector<std::byte> reply(4 + payload.size());
  boost::endian::store_big_u32(reinterpret_cast<unsigned char*>(reply.data()),
                               static_cast<std::uint32_t>(payload.size()));
  std::memcpy(reply.data() + 4, payload.data(), payload.size());
  for (auto _ : state) {
    boost::endian::store_big_u32(reinterpret_cast<unsigned char*>(request.data()),
                                 static_cast<std::uint32_t>(payload.size()));
    std::memcpy(request.data() + 4, payload.data(), payload.size());
    benchmark::DoNotOptimize(request.data());
    const auto length =
        boost::endian::load_big_u32(reinterpret_cast<const unsigned char*>(reply.data()));
    const std::string_view echoed(reinterpret_cast<const char*>(reply.data()) + 4, length);
    benchmark::DoNotOptimize(echoed);
  }
}

const std::string& request_type() {
  static const std::string name = v1::EchoRequest::default_instance().GetTypeName();
  return name;
}
const std::string& response_type() {
  static const std::string name = v1::EchoResponse::default_instance().GetTypeName();
  return name;
}

// The reply's frame body, as the server sends it.
std::vector<std::byte> reply_body() {
  v1::EchoResponse response;
  response.set_payload(payload);
  const msgframe::OutgoingEnvelope envelope(7, v1::KIND_RESPONSE, response_type(), &response);
  std::vector<std::byte> body;
  msgframe::append_envelope(body, envelope, msgframe::envelope_size(envelope));
  return body;
}

void BM_MsgframeCall(benchmark::State& state) {
  const msgframe::FrameEncoder encoder;
  auto request_frame = reserved_buffer();
  v1::EchoRequest request;
  request.set_payload(payload);
  const auto reply = reply_body();
  msgframe::EnvelopeView view;
  v1::EchoResponse response;
  std::uint64_t id = 1000;
  for (auto _ : state) {
    // The payload into the request, as raw's goes into its frame.
    request.mutable_payload()->assign(payload);
    const msgframe::OutgoingEnvelope envelope(++id, v1::KIND_REQUEST, request_type(), &request);
    if (msgframe::append_envelope_frame(request_frame, encoder, envelope)) state.SkipWithError("");
    benchmark::DoNotOptimize(request_frame.data());
    if (msgframe::parse_envelope(reply, view) || view.type != response_type() ||
        !response.ParseFromArray(view.payload.data(), static_cast<int>(view.payload.size()))) {
      state.SkipWithError("the reply did not parse");
    }
    benchmark::DoNotOptimize(response.payload().data());
    request_frame.clear();
  }
}

void BM_ProtobufEcho(benchmark::State& state) {
  std::vector<std::uint8_t> request_bytes(256);
  v1::EchoRequest request;
  request.set_payload(payload);
  v1::EchoResponse reply;
  reply.set_payload(payload);
  const auto reply_bytes = reply.SerializeAsString();
  v1::EchoResponse response;
  for (auto _ : state) {
    const auto size = request.ByteSizeLong();
    benchmark::DoNotOptimize(request.SerializeWithCachedSizesToArray(request_bytes.data()));
    benchmark::DoNotOptimize(size);
    if (!response.ParseFromArray(reply_bytes.data(), static_cast<int>(reply_bytes.size()))) {
      state.SkipWithError("the reply did not parse");
    }
    benchmark::DoNotOptimize(response.payload().data());
  }
}

}  // namespace

BENCHMARK(BM_RawCall);
BENCHMARK(BM_MsgframeCall);
BENCHMARK(BM_ProtobufEcho);
BENCHMARK_MAIN();
