// The envelope layer: byte-identical to protobuf's own serializer, zero-copy views when reading,
// every protobuf leniency accepted, and every malformed envelope a bad_envelope.
#define BOOST_TEST_MODULE envelope
#include "msgframe/envelope.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <google/protobuf/stubs/logging.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <random>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/v1/echo.pb.h"

using msgframe::EnvelopeView;
using msgframe::OutgoingEnvelope;
namespace v1 = msgframe::v1;

namespace {

std::span<const std::byte> as_span(const std::string& bytes) {
  return std::as_bytes(std::span(bytes.data(), bytes.size()));
}

std::string as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string serialize(const OutgoingEnvelope& envelope) {
  std::vector<std::byte> out;
  msgframe::append_envelope(out, envelope, msgframe::envelope_size(envelope));
  return as_string(out);
}

// Raw protobuf bytes, for envelopes protobuf's serializer would never write.
class WireWriter {
 public:
  WireWriter& varint(int field, std::uint64_t value) {
    stream_.WriteTag(field << 3 | 0);
    stream_.WriteVarint64(value);
    return *this;
  }
  WireWriter& bytes(int field, std::string_view value) {
    stream_.WriteTag(field << 3 | 2);
    stream_.WriteVarint32(static_cast<std::uint32_t>(value.size()));
    stream_.WriteRaw(value.data(), static_cast<int>(value.size()));
    return *this;
  }
  WireWriter& raw(std::string_view value) {
    stream_.WriteRaw(value.data(), static_cast<int>(value.size()));
    return *this;
  }
  std::string finish() {
    stream_.Trim();
    return std::move(buffer_);
  }

 private:
  std::string buffer_;
  google::protobuf::io::StringOutputStream output_{&buffer_};
  google::protobuf::io::CodedOutputStream stream_{&output_};
};

EnvelopeView parse_ok(const std::string& bytes) {
  EnvelopeView view;
  const auto error = msgframe::parse_envelope(as_span(bytes), view);
  BOOST_TEST(!error, "parse failed: " << error.message());
  return view;
}

boost::system::error_code parse_error(const std::string& bytes, std::uint64_t& id) {
  EnvelopeView view;
  const auto error = msgframe::parse_envelope(as_span(bytes), view);
  id = view.id;
  return error;
}

}  // namespace

BOOST_AUTO_TEST_CASE(serialization_is_byte_identical_to_protobuf) {
  std::mt19937_64 random(42);
  for (int round = 0; round < 500; ++round) {
    v1::EchoRequest payload;
    payload.set_payload(std::string(random() % 300, static_cast<char>('a' + round % 26)));
    payload.set_uppercase(round % 2 == 0);
    v1::Error error;
    error.set_code(v1::ERROR_CODE_BAD_PAYLOAD);
    error.set_message("no " + std::to_string(round));

    const bool is_error = round % 5 == 0;
    OutgoingEnvelope outgoing;
    outgoing.id = round % 7 == 0 ? 0 : random();
    outgoing.kind = is_error ? v1::KIND_ERROR : static_cast<v1::Kind>(1 + round % 4);
    outgoing.type = is_error ? "" : "msgframe.v1.EchoRequest";
    outgoing.payload = is_error ? nullptr : &payload;
    outgoing.error = is_error ? &error : nullptr;

    v1::Envelope expected;
    expected.set_id(outgoing.id);
    expected.set_kind(outgoing.kind);
    expected.set_type(std::string(outgoing.type));
    if (!is_error) expected.set_payload(payload.SerializeAsString());
    if (is_error) *expected.mutable_error() = error;
    BOOST_TEST(serialize(outgoing) == expected.SerializeAsString());
  }
}

BOOST_AUTO_TEST_CASE(a_frame_round_trips_with_the_payload_as_a_view) {
  v1::EchoRequest request;
  request.set_payload("hello");
  const msgframe::FrameEncoder encoder;
  std::vector<std::byte> stream;
  BOOST_TEST(!msgframe::append_envelope_frame(
      stream, encoder, {7, v1::KIND_REQUEST, "msgframe.v1.EchoRequest", &request, nullptr}));

  msgframe::FrameDecoder decoder;
  decoder.feed(stream);
  const auto body = decoder.next();
  BOOST_TEST_REQUIRE(body.has_value());
  EnvelopeView view;
  BOOST_TEST(!msgframe::parse_envelope(*body, view));
  BOOST_TEST(view.id == 7u);
  BOOST_TEST(view.kind == v1::KIND_REQUEST);
  BOOST_TEST(view.type == "msgframe.v1.EchoRequest");
  BOOST_TEST(view.payload.data() >= body->data());
  BOOST_TEST(view.payload.data() + view.payload.size() <= body->data() + body->size());
  v1::EchoRequest parsed;
  BOOST_TEST(parsed.ParseFromArray(view.payload.data(), static_cast<int>(view.payload.size())));
  BOOST_TEST(parsed.payload() == "hello");
}

// The prefix is written in place, in the room of the longest one: in every format, frames
// appended one after another (a short body, then one whose varint prefix takes two bytes) leave
// no gap and decode in order.
BOOST_AUTO_TEST_CASE(frames_appended_in_every_prefix_format_decode_in_order) {
  v1::EchoRequest short_request;
  short_request.set_payload("a");
  v1::EchoRequest long_request;
  long_request.set_payload(std::string(150, 'b'));
  for (const auto format : msgframe::all_length_prefixes) {
    BOOST_TEST_CONTEXT("format " << static_cast<int>(format)) {
      const msgframe::FrameEncoder encoder({format, 255});
      std::vector<std::byte> stream;
      BOOST_TEST(!msgframe::append_envelope_frame(stream, encoder,
                                                  {1, v1::KIND_REQUEST, "t", &short_request}));
      BOOST_TEST(!msgframe::append_envelope_frame(stream, encoder,
                                                  {2, v1::KIND_REQUEST, "t", &long_request}));
      msgframe::FrameDecoder decoder({format, 255});
      decoder.feed(stream);
      for (const auto* expected : {&short_request, &long_request}) {
        const auto body = decoder.next();
        BOOST_TEST_REQUIRE(body.has_value());
        EnvelopeView view;
        BOOST_TEST_REQUIRE(!msgframe::parse_envelope(*body, view));
        v1::EchoRequest parsed;
        BOOST_TEST(
            parsed.ParseFromArray(view.payload.data(), static_cast<int>(view.payload.size())));
        BOOST_TEST(parsed.payload() == expected->payload());
      }
      BOOST_TEST(!decoder.next().has_value());
      BOOST_TEST(decoder.pending_bytes() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_envelope_over_the_max_frame_is_refused_whole) {
  v1::EchoRequest request;
  request.set_payload(std::string(200, 'x'));
  const msgframe::FrameEncoder encoder({msgframe::LengthPrefix::u32_be, 100});
  std::vector<std::byte> out(3);
  BOOST_TEST(msgframe::append_envelope_frame(out, encoder, {1, v1::KIND_REQUEST, "t", &request}) ==
             msgframe::error::frame_too_large);
  BOOST_TEST(out.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_serialized_payload_frames_as_its_message_does_and_its_head_leaves_it_out) {
  v1::EchoResponse response;
  response.set_payload(std::string(300, 'r'));  // a two-byte length, in the payload and around it
  const std::string payload = response.SerializeAsString();
  const msgframe::FrameEncoder encoder;
  for (const auto& bytes : {payload, std::string()}) {
    BOOST_TEST_CONTEXT(bytes.size() << " payload bytes") {
      std::vector<std::byte> from_message;
      v1::EchoResponse message;
      BOOST_TEST_REQUIRE(message.ParseFromString(bytes));
      BOOST_TEST(!msgframe::append_envelope_frame(
          from_message, encoder, {3, v1::KIND_RESPONSE, "msgframe.v1.EchoResponse", &message}));
      const OutgoingEnvelope serialized{3,       v1::KIND_RESPONSE, "msgframe.v1.EchoResponse",
                                        nullptr, nullptr,           as_span(bytes)};
      std::vector<std::byte> from_bytes;
      BOOST_TEST(!msgframe::append_envelope_frame(from_bytes, encoder, serialized));
      BOOST_TEST(as_string(from_bytes) == as_string(from_message));
      std::vector<std::byte> head(2);  // appended to what is there
      BOOST_TEST(!msgframe::append_envelope_frame_head(head, encoder, serialized));
      BOOST_TEST(as_string(head).substr(2) + bytes == as_string(from_message));
    }
  }
  const msgframe::FrameEncoder small({msgframe::LengthPrefix::u32_be, 100});
  std::vector<std::byte> refused;
  BOOST_TEST(msgframe::append_envelope_frame_head(
                 refused, small, {3, v1::KIND_RESPONSE, "t", nullptr, nullptr, as_span(payload)}) ==
             msgframe::error::frame_too_large);
  BOOST_TEST(refused.empty());
}

BOOST_AUTO_TEST_CASE(unknown_fields_of_every_wire_type_are_skipped) {
  const std::string bytes =
      WireWriter()
          .varint(1, 5)
          .raw(std::string("\x31\x01\x02\x03\x04\x05\x06\x07\x08", 9))  // 6: fixed64
          .raw(std::string("\x3d\x01\x02\x03\x04", 5))                  // 7: fixed32
          .raw(std::string("\x43\x08\x01\x44", 4))                      // 8: group {1: 1}
          .bytes(9, "unknown")
          .varint(2, v1::KIND_REQUEST)
          .varint(100, 1)
          .bytes(3, "t")
          .finish();
  const auto view = parse_ok(bytes);
  BOOST_TEST(view.id == 5u);
  BOOST_TEST(view.kind == v1::KIND_REQUEST);
  BOOST_TEST(view.type == "t");
}

BOOST_AUTO_TEST_CASE(fields_in_any_order_last_scalar_wins_and_long_varints_count) {
  const std::string bytes = WireWriter()
                                .bytes(4, "payload")
                                .bytes(3, "first")
                                .varint(2, v1::KIND_REQUEST)
                                .varint(1, 1)
                                .bytes(3, "second")
                                .raw(std::string("\x08\x82\x80\x80\x00", 5))  // id 2, non-minimal
                                .finish();
  const auto view = parse_ok(bytes);
  BOOST_TEST(view.id == 2u);
  BOOST_TEST(view.type == "second");
  BOOST_TEST(as_string(view.payload) == "payload");
}

// Fields in number order are read in a line; the same fields again after them go through the
// general reader, and still win. A truncated field in either part is a bad envelope.
BOOST_AUTO_TEST_CASE(fields_in_number_order_then_repeated_the_later_ones_win) {
  const std::string bytes = WireWriter()
                                .varint(1, 300)
                                .varint(2, v1::KIND_REQUEST)
                                .bytes(3, "first")
                                .bytes(4, "p1")
                                .varint(1, 7)
                                .varint(2, v1::KIND_EVENT)
                                .bytes(4, "p2")
                                .bytes(3, "second")
                                .finish();
  const auto view = parse_ok(bytes);
  BOOST_TEST(view.id == 7u);
  BOOST_TEST(view.kind == v1::KIND_EVENT);
  BOOST_TEST(view.type == "second");
  BOOST_TEST(as_string(view.payload) == "p2");
  const auto in_order =
      WireWriter().varint(1, 300).varint(2, 1).bytes(3, "t").bytes(4, "pp").finish();
  std::uint64_t id = 0;
  for (std::size_t cut = 1; cut < in_order.size(); ++cut) {
    const auto error = parse_error(in_order.substr(0, cut), id);
    const bool after_kind_or_type = cut == 5 || cut == 8;  // before the kind: unspecified
    BOOST_TEST(static_cast<bool>(error) == !after_kind_or_type, "cut at " << cut);
  }
}

BOOST_AUTO_TEST_CASE(a_known_field_with_a_foreign_wire_type_is_an_unknown_field) {
  const std::string bytes =
      WireWriter().bytes(1, "not a varint").varint(2, v1::KIND_EVENT).varint(1, 9).finish();
  const auto view = parse_ok(bytes);
  BOOST_TEST(view.id == 9u);
}

BOOST_AUTO_TEST_CASE(error_fields_are_read_and_repeated_ones_merge) {
  v1::Error code_only;
  code_only.set_code(v1::ERROR_CODE_TIMEOUT);
  v1::Error message_only;
  message_only.set_message("too slow");
  const std::string bytes = WireWriter()
                                .varint(2, v1::KIND_ERROR)
                                .bytes(5, code_only.SerializeAsString())
                                .bytes(5, message_only.SerializeAsString())
                                .finish();
  const auto view = parse_ok(bytes);
  BOOST_TEST_REQUIRE(view.error.has_value());
  BOOST_TEST(view.error->code() == v1::ERROR_CODE_TIMEOUT);
  BOOST_TEST(view.error->message() == "too slow");
}

// The error is read by hand: protobuf's parser would log every non-UTF-8 message, a log any
// peer could fill. Such a message is still refused; unknown fields inside are skipped.
BOOST_AUTO_TEST_CASE(an_error_message_that_is_not_utf8_is_a_bad_envelope_and_unknowns_skip) {
  static int logged = 0;
  const auto previous = google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) { ++logged; });
  std::uint64_t id = 0;
  const auto bad_message = WireWriter().varint(2, 5).bytes(2, "no\xff").finish();
  const auto bytes =
      WireWriter().varint(1, 6).varint(2, v1::KIND_ERROR).bytes(5, bad_message).finish();
  BOOST_TEST(parse_error(bytes, id) == msgframe::error::bad_envelope);
  BOOST_TEST(id == 6u);
  google::protobuf::SetLogHandler(previous);
  BOOST_TEST(logged == 0);

  const auto with_unknowns =
      WireWriter().varint(9, 1).bytes(2, "fine").bytes(10, "x").varint(1, 7).finish();
  const auto view =
      parse_ok(WireWriter().varint(2, v1::KIND_ERROR).bytes(5, with_unknowns).finish());
  BOOST_TEST_REQUIRE(view.error.has_value());
  BOOST_TEST(view.error->code() == v1::ERROR_CODE_TIMEOUT);
  BOOST_TEST(view.error->message() == "fine");
}

BOOST_AUTO_TEST_CASE(kinds_outside_one_to_four_are_bad_envelopes) {
  std::uint64_t id = 0;
  for (const std::uint64_t kind : {std::uint64_t{0}, std::uint64_t{5}, ~std::uint64_t{0}}) {
    const auto bytes = WireWriter().varint(1, 3).varint(2, kind).finish();
    BOOST_TEST(parse_error(bytes, id) == msgframe::error::bad_envelope);
    BOOST_TEST(id == 3u);
  }
  BOOST_TEST(parse_error(WireWriter().varint(1, 3).finish(), id) == msgframe::error::bad_envelope);
}

BOOST_AUTO_TEST_CASE(a_type_that_is_not_utf8_is_a_bad_envelope) {
  std::uint64_t id = 0;
  const auto bytes = WireWriter().varint(1, 4).varint(2, 1).bytes(3, "bad\xff").finish();
  BOOST_TEST(parse_error(bytes, id) == msgframe::error::bad_envelope);
  BOOST_TEST(id == 4u);
}

// Found by envelope_fuzz: the first parser took an Error whose length runs past the end of the
// envelope for a whole one. Protobuf's own parser refuses it, and so do we.
BOOST_AUTO_TEST_CASE(an_error_longer_than_the_envelope_is_a_bad_envelope) {
  std::uint64_t id = 0;
  const auto bytes = WireWriter().varint(1, 9).varint(2, 3).raw("\x2a\x05\x08\x02").finish();
  BOOST_TEST(parse_error(bytes, id) == msgframe::error::bad_envelope);
  BOOST_TEST(id == 9u);
  v1::Envelope by_protobuf;
  BOOST_TEST(!by_protobuf.ParseFromString(bytes));
}

BOOST_AUTO_TEST_CASE(truncated_and_garbage_bodies_are_bad_envelopes_keeping_a_readable_id) {
  std::uint64_t id = 0;
  const auto whole = WireWriter().varint(1, 77).varint(2, 1).bytes(3, "some.Type").finish();
  for (std::size_t cut = 3; cut < whole.size(); ++cut) {
    BOOST_TEST_CONTEXT("cut at " << cut) {
      const auto error = parse_error(whole.substr(0, cut), id);
      // A cut can land on a field boundary, leaving a valid but kind-less or shorter envelope.
      if (error) {
        BOOST_TEST(error == msgframe::error::bad_envelope);
        BOOST_TEST(id == 77u);
      }
    }
  }
  BOOST_TEST(parse_error(whole.substr(0, whole.size() - 1), id) == msgframe::error::bad_envelope);
  BOOST_TEST(parse_error(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), id) ==
             msgframe::error::bad_envelope);
  BOOST_TEST(id == 0u);
  BOOST_TEST(parse_error(std::string("\x00", 1), id) == msgframe::error::bad_envelope);
  BOOST_TEST(parse_error(std::string("\x0c", 1), id) ==
             msgframe::error::bad_envelope);                         // end group
  BOOST_TEST(parse_error("", id) == msgframe::error::bad_envelope);  // kind unspecified
}

// Field number 0 does not exist: protobuf's own parser refuses such a tag, whatever its wire
// type, and so must the envelope reader, rather than skip it as an unknown field.
BOOST_AUTO_TEST_CASE(a_field_numbered_zero_is_a_bad_envelope) {
  const std::string valid = WireWriter().varint(1, 12).varint(2, v1::KIND_REQUEST).finish();
  const std::string zero_fields[] = {
      std::string("\x02\x00", 2),                  // field 0, length-delimited, empty
      std::string("\x00\x01", 2),                  // field 0, varint
      std::string("\x05\x01\x02\x03\x04", 5),      // field 0, fixed32
      std::string("\x82\x80\x80\x80\x00\x00", 6),  // field 0 in a non-minimal tag
  };
  for (const auto& zero_field : zero_fields) {
    BOOST_TEST_CONTEXT("field 0 written as " << zero_field.size() << " bytes") {
      std::uint64_t id = 0;
      BOOST_TEST(parse_error(valid + zero_field, id) == msgframe::error::bad_envelope);
      BOOST_TEST(id == 12u);  // read before the bad tag
      v1::Envelope by_protobuf;
      BOOST_TEST(!by_protobuf.ParseFromString(valid + zero_field));
    }
  }
  parse_ok(valid);
}

BOOST_AUTO_TEST_CASE(wire_error_codes_map_both_ways) {
  for (int code = v1::ERROR_CODE_UNKNOWN_TYPE; code <= v1::ERROR_CODE_SHUTTING_DOWN; ++code) {
    BOOST_TEST(msgframe::to_wire_error(msgframe::from_wire_error(code)) == code);
  }
  BOOST_TEST(msgframe::from_wire_error(0) == msgframe::error::unknown_server_error);
  BOOST_TEST(msgframe::from_wire_error(99) == msgframe::error::unknown_server_error);
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
  BOOST_TEST(msgframe::is_valid_utf8(""));
  BOOST_TEST(msgframe::is_valid_utf8("msgframe.v1.EchoRequest"));
  BOOST_TEST(msgframe::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  BOOST_TEST(!msgframe::is_valid_utf8("\xc3"));              // truncated
  BOOST_TEST(!msgframe::is_valid_utf8("\xc0\xaf"));          // overlong
  BOOST_TEST(!msgframe::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  BOOST_TEST(!msgframe::is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  BOOST_TEST(!msgframe::is_valid_utf8("\x80"));
  // ASCII is checked eight bytes at a time: a bad byte anywhere in or after such a run counts,
  // and a character may straddle two runs.
  const std::string ascii = "msgframe.v1.EchoRequest.";
  const auto with = [&](std::size_t at, std::string_view inserted) {
    std::string text(ascii.data(), at);
    text.append(inserted).append(ascii.data() + at, ascii.size() - at);
    return text;
  };
  for (std::size_t at = 0; at <= ascii.size(); ++at) {
    BOOST_TEST(!msgframe::is_valid_utf8(with(at, "\xff")), "0xff at " << at);
    BOOST_TEST(msgframe::is_valid_utf8(with(at, "\xe2\x82\xac")), "a euro sign at " << at);
    const auto text = with(at, "\xe2\x82");
    BOOST_TEST(!msgframe::is_valid_utf8(text), "a cut euro sign at " << at);
  }
}

// The worked example of docs/PROTOCOL.md, byte for byte.
BOOST_AUTO_TEST_CASE(protocol_doc_worked_example) {
  const auto hex = [](const std::vector<std::byte>& bytes) {
    std::string out;
    char digits[3];
    for (const auto byte : bytes) {
      std::snprintf(digits, sizeof digits, "%02x", std::to_integer<unsigned>(byte));
      out += digits;
    }
    return out;
  };
  const msgframe::FrameEncoder encoder;
  v1::EchoRequest request;
  request.set_payload("hi");
  std::vector<std::byte> frame;
  BOOST_TEST(!msgframe::append_envelope_frame(
      frame, encoder, {1, v1::KIND_REQUEST, "msgframe.v1.EchoRequest", &request}));
  BOOST_TEST(hex(frame) ==
             "00000023080110011a176d73676672616d652e76312e4563686f5265717565737422040a026869");

  v1::EchoResponse response;
  response.set_payload("hi");
  frame.clear();
  BOOST_TEST(!msgframe::append_envelope_frame(
      frame, encoder, {1, v1::KIND_RESPONSE, "msgframe.v1.EchoResponse", &response}));
  BOOST_TEST(hex(frame) ==
             "00000024080110021a186d73676672616d652e76312e4563686f526573706f6e736522040a026869");

  v1::Error error;
  error.set_code(v1::ERROR_CODE_UNKNOWN_TYPE);
  error.set_message("no handler for type no.such.Type");
  frame.clear();
  BOOST_TEST(
      !msgframe::append_envelope_frame(frame, encoder, {7, v1::KIND_ERROR, {}, nullptr, &error}));
  BOOST_TEST(hex(frame) ==
             "0000002a080710032a24080112206e6f2068616e646c657220666f722074797065206e6f2e7375636"
             "82e54797065");
}
