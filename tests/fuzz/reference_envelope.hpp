// msgframe's first Envelope parser, on protobuf's CodedInputStream and WireFormatLite::SkipField:
// the reference the hand-written parse_envelope must agree with, byte for byte, on every input
// (envelope_fuzz, fuzz_corpus_test).
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <limits>

#include "msgframe/envelope.hpp"

namespace msgframe::test {

namespace reference {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr int id_field = v1::Envelope::kIdFieldNumber;
constexpr int kind_field = v1::Envelope::kKindFieldNumber;
constexpr int type_field = v1::Envelope::kTypeFieldNumber;
constexpr int payload_field = v1::Envelope::kPayloadFieldNumber;
constexpr int error_field = v1::Envelope::kErrorFieldNumber;

// Reads a length-delimited field's bytes as a view of the input.
inline bool read_view(CodedInputStream& input, const std::uint8_t* base, std::string_view& out) {
  int length = 0;
  if (!input.ReadVarintSizeAsInt(&length)) return false;
  const int position = input.CurrentPosition();
  if (!input.Skip(length)) return false;
  out = {reinterpret_cast<const char*>(base) + position, static_cast<std::size_t>(length)};
  return true;
}

constexpr int code_field = v1::Error::kCodeFieldNumber;
constexpr int message_field = v1::Error::kMessageFieldNumber;

// Read by hand, not by protobuf's parser: that one logs every message that is not UTF-8, which
// would let any peer write to the server's log at will. Repeated occurrences merge (the last
// code and message win), as protobuf's own parser does.
inline bool read_error(CodedInputStream& input, const std::uint8_t* base, v1::Error& error) {
  int length = 0;
  if (!input.ReadVarintSizeAsInt(&length)) return false;
  // The one change to the first parser, which missed this (PushLimit does not check it): an
  // Error whose length runs past the envelope is not an Error.
  if (length > input.BytesUntilLimit()) return false;
  const auto limit = input.PushLimit(length);
  bool parsed = true;
  while (parsed) {
    const std::uint32_t tag = input.ReadTag();
    if (tag == 0) break;
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto wire_type = WireFormatLite::GetTagWireType(tag);
    std::uint64_t code = 0;
    std::string_view message;
    if (field == 0) {
      parsed = false;
    } else if (field == code_field && wire_type == WireFormatLite::WIRETYPE_VARINT) {
      parsed = input.ReadVarint64(&code);
      error.set_code(static_cast<v1::ErrorCode>(static_cast<std::int32_t>(code)));
    } else if (field == message_field && wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      parsed = read_view(input, base, message) && is_valid_utf8(message);
      if (parsed) error.set_message(std::string(message));
    } else {
      parsed = WireFormatLite::SkipField(&input, tag);
    }
  }
  parsed = parsed && input.ConsumedEntireMessage();
  input.PopLimit(limit);
  return parsed;
}

inline bool read_fields(CodedInputStream& input, const std::uint8_t* base, EnvelopeView& out) {
  while (const std::uint32_t tag = input.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    // No field has number 0: protobuf refuses the tag. SkipField (internal API) does today;
    // say it here rather than depend on that.
    if (field == 0) return false;
    const auto wire_type = WireFormatLite::GetTagWireType(tag);
    const bool varint = wire_type == WireFormatLite::WIRETYPE_VARINT;
    const bool delimited = wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    std::uint64_t value = 0;
    std::string_view bytes;
    if (field == id_field && varint) {
      if (!input.ReadVarint64(&out.id)) return false;
    } else if (field == kind_field && varint) {
      if (!input.ReadVarint64(&value)) return false;
      // Enums are int32 on the wire: a negative one arrives sign-extended to 64 bits.
      out.kind = static_cast<int>(static_cast<std::int32_t>(value));
    } else if (field == type_field && delimited) {
      if (!read_view(input, base, out.type)) return false;
    } else if (field == payload_field && delimited) {
      if (!read_view(input, base, bytes)) return false;
      out.payload = std::as_bytes(std::span(bytes.data(), bytes.size()));
    } else if (field == error_field && delimited) {
      if (!out.error) out.error.emplace();
      if (!read_error(input, base, *out.error)) return false;
    } else if (!WireFormatLite::SkipField(&input, tag)) {  // unknown, or a known number with a
      return false;                                        // foreign wire type, as protobuf does
    }
  }
  // ReadTag() returns 0 at the end and on a malformed tag; only the end is fine.
  return input.ConsumedEntireMessage();
}

}  // namespace reference

inline boost::system::error_code reference_parse_envelope(std::span<const std::byte> body,
                                                          EnvelopeView& out) {
  out = EnvelopeView{};
  if (body.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return error::bad_envelope;
  }
  const auto* base = reinterpret_cast<const std::uint8_t*>(body.data());
  reference::CodedInputStream input(base, static_cast<int>(body.size()));
  const bool well_formed = reference::read_fields(input, base, out) && input.BytesUntilLimit() == 0;
  if (!well_formed || !is_valid_utf8(out.type)) return error::bad_envelope;
  if (out.kind < v1::KIND_REQUEST || out.kind > v1::KIND_EVENT) return error::bad_envelope;
  return {};
}

}  // namespace msgframe::test
