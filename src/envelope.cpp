// Hand-written Envelope wire format, so that payloads are serialized in place and read as views.
#include "msgframe/envelope.hpp"

#include "envelope_frame.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <boost/assert.hpp>
#include <cstring>
#include <limits>

namespace msgframe {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

enum EnvelopeField : int {
  id_field = 1,
  kind_field = 2,
  type_field = 3,
  payload_field = 4,
  error_field = 5
};

std::size_t length_delimited_size(int field, std::size_t length) {
  return WireFormatLite::TagSize(field, WireFormatLite::TYPE_BYTES) +
         CodedOutputStream::VarintSize64(length) + length;
}

std::uint8_t* write_length_delimited_header(int field, std::size_t length, std::uint8_t* target) {
  target =
      WireFormatLite::WriteTagToArray(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, target);
  return CodedOutputStream::WriteVarint64ToArray(length, target);
}

// Protobuf's wire format, read by hand with protobuf's rules (those of CodedInputStream and
// WireFormatLite::SkipField, which tests/fuzz/reference_envelope.hpp uses and envelope_fuzz
// holds this reader to): varints of up to ten bytes, tags the low 32 bits of theirs, lengths up
// to INT_MAX (of a skipped field: its low 32 bits, as SkipField reads them), groups skipped to
// their matching end up to 100 deep.
class WireReader {
 public:
  WireReader(const std::uint8_t* begin, const std::uint8_t* end) noexcept : at_(begin), end_(end) {}

  bool at_end() const noexcept { return at_ == end_; }

  // Consumes `expected`, a one-byte tag, when it comes next.
  bool take_tag(std::uint8_t expected) noexcept {
    if (at_ == end_ || *at_ != expected) return false;
    ++at_;
    return true;
  }

  // Bits past the 64th are dropped, as protobuf drops them.
  bool varint(std::uint64_t& value) noexcept {
    if (at_ != end_ && *at_ < 0x80) {  // one byte: ids under 128, kinds, most tags and lengths
      value = *at_++;
      return true;
    }
    value = 0;  // also on failure, as protobuf does: an id cut short reads as 0
    std::uint64_t result = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
      if (at_ == end_) return false;
      const std::uint8_t byte = *at_++;
      result |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
      if (byte < 0x80) {
        value = result;
        return true;
      }
    }
    return false;
  }

  // A tag with a field number (protobuf has no field 0).
  bool tag(std::uint32_t& out) noexcept {
    std::uint64_t value = 0;
    if (!varint(value)) return false;
    out = static_cast<std::uint32_t>(value);
    return WireFormatLite::GetTagFieldNumber(out) != 0;
  }

  // A length-delimited field's bytes, as a view of the input.
  bool bytes(std::string_view& out) noexcept {
    std::uint64_t length = 0;
    if (!varint(length) || length > static_cast<std::uint64_t>(std::numeric_limits<int>::max()) ||
        length > static_cast<std::uint64_t>(end_ - at_)) {
      return false;
    }
    out = {reinterpret_cast<const char*>(at_), static_cast<std::size_t>(length)};
    at_ += length;
    return true;
  }

  // A field this reader does not want, of any wire type but an end of group.
  bool skip(std::uint32_t tag, int depth = 0) noexcept {
    std::uint64_t ignored = 0;
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT:
        return varint(ignored);
      case WireFormatLite::WIRETYPE_FIXED64:
        return advance(8);
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        if (!varint(ignored)) return false;
        const auto length = static_cast<std::uint32_t>(ignored);
        return length <= static_cast<std::uint32_t>(std::numeric_limits<int>::max()) &&
               advance(length);
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        return skip_group(WireFormatLite::GetTagFieldNumber(tag), depth + 1);
      case WireFormatLite::WIRETYPE_FIXED32:
        return advance(4);
      default:  // an end of group outside its group, or wire types 6 and 7
        return false;
    }
  }

 private:
  static constexpr int max_group_depth = 100;

  bool advance(std::size_t count) noexcept {
    if (static_cast<std::size_t>(end_ - at_) < count) return false;
    at_ += count;
    return true;
  }

  bool skip_group(int field, int depth) noexcept {
    if (depth > max_group_depth) return false;
    while (!at_end()) {
      std::uint32_t inner = 0;
      if (!tag(inner)) return false;
      if (WireFormatLite::GetTagWireType(inner) == WireFormatLite::WIRETYPE_END_GROUP) {
        return WireFormatLite::GetTagFieldNumber(inner) == field;
      }
      if (!skip(inner, depth)) return false;
    }
    return false;  // the input ended inside the group
  }

  const std::uint8_t* at_;
  const std::uint8_t* end_;
};

enum ErrorField : int { code_field = 1, message_field = 2 };

constexpr std::uint32_t tag_of(int field, WireFormatLite::WireType type) {
  return static_cast<std::uint32_t>(field) << 3 | type;
}

// Read by hand, not by protobuf's parser: that one logs every message that is not UTF-8, which
// would let any peer write to the server's log at will. Repeated occurrences merge (the last
// code and message win), as protobuf's own parser does.
bool read_error(std::string_view bytes, v1::Error& error) {
  const auto* begin = reinterpret_cast<const std::uint8_t*>(bytes.data());
  WireReader input(begin, begin + bytes.size());
  while (!input.at_end()) {
    std::uint32_t tag = 0;
    if (!input.tag(tag)) return false;
    std::uint64_t code = 0;
    std::string_view message;
    if (tag == tag_of(code_field, WireFormatLite::WIRETYPE_VARINT)) {
      if (!input.varint(code)) return false;
      error.set_code(static_cast<v1::ErrorCode>(static_cast<std::int32_t>(code)));
    } else if (tag == tag_of(message_field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
      if (!input.bytes(message) || !is_valid_utf8(message)) return false;
      error.set_message(std::string(message));
    } else if (!input.skip(tag)) {
      return false;
    }
  }
  return true;
}

// The envelope's fields, each read into `out` (the tag just read).
bool read_id(WireReader& input, EnvelopeView& out) { return input.varint(out.id); }

bool read_kind(WireReader& input, EnvelopeView& out) {
  std::uint64_t value = 0;
  if (!input.varint(value)) return false;
  // Enums are int32 on the wire: a negative one arrives sign-extended to 64 bits.
  out.kind = static_cast<int>(static_cast<std::int32_t>(value));
  return true;
}

bool read_type(WireReader& input, EnvelopeView& out) { return input.bytes(out.type); }

bool read_payload(WireReader& input, EnvelopeView& out) {
  std::string_view bytes;
  if (!input.bytes(bytes)) return false;
  out.payload = std::as_bytes(std::span(bytes.data(), bytes.size()));
  return true;
}

bool read_fields(WireReader& input, EnvelopeView& out) {
  // Fields in number order, each tag one byte, as msgframe and protobuf's serializers write
  // them: read in a line, with no dispatch on the tag. From the first other tag on, the loop
  // below reads the rest, in the same order, so that the last of repeated fields still wins.
  constexpr auto varint = WireFormatLite::WIRETYPE_VARINT;
  constexpr auto delimited = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
  if ((input.take_tag(tag_of(id_field, varint)) && !read_id(input, out)) ||
      (input.take_tag(tag_of(kind_field, varint)) && !read_kind(input, out)) ||
      (input.take_tag(tag_of(type_field, delimited)) && !read_type(input, out)) ||
      (input.take_tag(tag_of(payload_field, delimited)) && !read_payload(input, out))) {
    return false;
  }
  while (!input.at_end()) {
    std::uint32_t tag = 0;
    if (!input.tag(tag)) return false;
    std::string_view bytes;
    bool read = true;
    switch (tag) {
      case tag_of(id_field, varint):
        read = read_id(input, out);
        break;
      case tag_of(kind_field, varint):
        read = read_kind(input, out);
        break;
      case tag_of(type_field, delimited):
        read = read_type(input, out);
        break;
      case tag_of(payload_field, delimited):
        read = read_payload(input, out);
        break;
      case tag_of(error_field, delimited):
        if (!input.bytes(bytes)) return false;
        if (!out.error) out.error.emplace();
        read = read_error(bytes, *out.error);
        break;
      default:  // unknown, or a known number with a foreign wire type, as protobuf does
        read = input.skip(tag);
    }
    if (!read) return false;
  }
  return true;
}

}  // namespace

boost::system::error_code parse_envelope(std::span<const std::byte> body, EnvelopeView& out) {
  // Field by field: assigning a fresh EnvelopeView zeroes a temporary first, as large as the
  // v1::Error its optional has room for (a `rep stos` of 88 bytes on every frame).
  out.id = 0;
  out.kind = v1::KIND_UNSPECIFIED;
  out.type = {};
  out.payload = {};
  out.error.reset();
  if (body.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return error::bad_envelope;
  }
  const auto* begin = reinterpret_cast<const std::uint8_t*>(body.data());
  WireReader input(begin, begin + body.size());
  if (!read_fields(input, out) || !is_valid_utf8(out.type)) return error::bad_envelope;
  if (out.kind < v1::KIND_REQUEST || out.kind > v1::KIND_EVENT) return error::bad_envelope;
  return {};
}

std::size_t envelope_size(const OutgoingEnvelope& envelope) {
  std::size_t size = 0;
  if (envelope.id != 0) {
    size += WireFormatLite::TagSize(id_field, WireFormatLite::TYPE_UINT64) +
            WireFormatLite::UInt64Size(envelope.id);
  }
  if (envelope.kind != 0) {
    size += WireFormatLite::TagSize(kind_field, WireFormatLite::TYPE_ENUM) +
            WireFormatLite::EnumSize(envelope.kind);
  }
  if (!envelope.type.empty()) size += length_delimited_size(type_field, envelope.type.size());
  const std::size_t payload_size = envelope.payload != nullptr ? envelope.payload->ByteSizeLong()
                                                               : envelope.serialized_payload.size();
  if (payload_size > 0) size += length_delimited_size(payload_field, payload_size);
  if (envelope.error != nullptr) {
    size += length_delimited_size(error_field, envelope.error->ByteSizeLong());
  }
  return size;
}

namespace {

// Serializes the envelope into `target`, which has room for it, but for the bytes of
// serialized_payload when `with_serialized_payload` is false.
void write_envelope(const OutgoingEnvelope& envelope, bool with_serialized_payload,
                    std::uint8_t* target) {
  if (envelope.id != 0) target = WireFormatLite::WriteUInt64ToArray(id_field, envelope.id, target);
  if (envelope.kind != 0)
    target = WireFormatLite::WriteEnumToArray(kind_field, envelope.kind, target);
  if (!envelope.type.empty()) {
    target = write_length_delimited_header(type_field, envelope.type.size(), target);
    // memcpy, not std::copy: from char to uint8_t that is a loop of single bytes.
    std::memcpy(target, envelope.type.data(), envelope.type.size());
    target += envelope.type.size();
  }
  // Sizes were cached by envelope_size(): serialize without measuring again.
  if (envelope.payload != nullptr) {
    if (const int payload_size = envelope.payload->GetCachedSize(); payload_size > 0) {
      // As protobuf's generated code writes a message field: its size not asked for again.
      google::protobuf::io::EpsCopyOutputStream stream(
          target, static_cast<int>(length_delimited_size(payload_field, payload_size)),
          CodedOutputStream::IsDefaultSerializationDeterministic());
      target = WireFormatLite::InternalWriteMessage(payload_field, *envelope.payload, payload_size,
                                                    target, &stream);
    }
  } else if (envelope.payload == nullptr && !envelope.serialized_payload.empty()) {
    const auto bytes = envelope.serialized_payload;
    target = write_length_delimited_header(payload_field, bytes.size(), target);
    if (with_serialized_payload) {
      std::memcpy(target, bytes.data(), bytes.size());
      target += bytes.size();
    }
  }
  if (envelope.error != nullptr) {
    target = write_length_delimited_header(
        error_field, static_cast<std::size_t>(envelope.error->GetCachedSize()), target);
    target = envelope.error->SerializeWithCachedSizesToArray(target);
  }
}

// Writes the prefix of a body of `size` bytes at `out`, then the envelope but for the bytes of its
// serialized_payload when `with_serialized_payload` is false; the prefix's bytes.
std::size_t write_frame(std::byte* out, const FrameEncoder& encoder,
                        const OutgoingEnvelope& envelope, bool with_serialized_payload,
                        std::size_t size) {
  const std::size_t prefix_bytes = encoder.write_prefix(
      size, std::span<std::byte, max_length_prefix_bytes>(out, max_length_prefix_bytes));
  write_envelope(envelope, with_serialized_payload,
                 reinterpret_cast<std::uint8_t*>(out + prefix_bytes));
  return prefix_bytes;
}

// Appends the frame of `envelope`: its prefix, then the envelope but for the bytes of its
// serialized_payload when `with_serialized_payload` is false.
boost::system::error_code append_frame(std::vector<std::byte>& out, const FrameEncoder& encoder,
                                       const OutgoingEnvelope& envelope,
                                       bool with_serialized_payload, std::size_t size) {
  BOOST_ASSERT_MSG(with_serialized_payload || (envelope.payload == nullptr && !envelope.error),
                   "a frame head leaves out a serialized payload that ends the envelope");
  if (size > encoder.options().max_frame_bytes) return make_error_code(error::frame_too_large);
  const std::size_t written =
      size - (with_serialized_payload ? 0 : envelope.serialized_payload.size());
  const std::size_t start = out.size();
  out.resize(start + max_length_prefix_bytes + written);
  const std::size_t prefix_bytes =
      write_frame(out.data() + start, encoder, envelope, with_serialized_payload, size);
  out.resize(start + prefix_bytes + written);
  return {};
}

}  // namespace

std::size_t write_envelope_frame(std::byte* out, const FrameEncoder& encoder,
                                 const OutgoingEnvelope& envelope, std::size_t size) {
  BOOST_ASSERT_MSG(size == envelope_size(envelope), "the size is not the envelope's");
  return write_frame(out, encoder, envelope, true, size) + size;
}

void append_envelope(std::vector<std::byte>& out, const OutgoingEnvelope& envelope,
                     std::size_t size) {
  const std::size_t start = out.size();
  out.resize(start + size);
  write_envelope(envelope, true, reinterpret_cast<std::uint8_t*>(out.data() + start));
}

boost::system::error_code append_envelope_frame(std::vector<std::byte>& out,
                                                const FrameEncoder& encoder,
                                                const OutgoingEnvelope& envelope) {
  return append_frame(out, encoder, envelope, true, envelope_size(envelope));
}

boost::system::error_code append_envelope_frame(std::vector<std::byte>& out,
                                                const FrameEncoder& encoder,
                                                const OutgoingEnvelope& envelope,
                                                std::size_t size) {
  // A smaller size would have the envelope written past the room made for it.
  BOOST_ASSERT_MSG(size == envelope_size(envelope), "the size is not the envelope's");
  return append_frame(out, encoder, envelope, true, size);
}

boost::system::error_code append_envelope_frame_head(std::vector<std::byte>& out,
                                                     const FrameEncoder& encoder,
                                                     const OutgoingEnvelope& envelope) {
  return append_frame(out, encoder, envelope, false, envelope_size(envelope));
}

v1::ErrorCode to_wire_error(msgframe::error value) noexcept {
  switch (value) {
    case error::unknown_type:
      return v1::ERROR_CODE_UNKNOWN_TYPE;
    case error::bad_payload:
      return v1::ERROR_CODE_BAD_PAYLOAD;
    case error::bad_envelope:
      return v1::ERROR_CODE_BAD_ENVELOPE;
    case error::frame_too_large:
      return v1::ERROR_CODE_FRAME_TOO_LARGE;
    case error::overloaded:
      return v1::ERROR_CODE_OVERLOADED;
    case error::timeout:
      return v1::ERROR_CODE_TIMEOUT;
    case error::shutting_down:
      return v1::ERROR_CODE_SHUTTING_DOWN;
    default:
      return v1::ERROR_CODE_INTERNAL;
  }
}

msgframe::error from_wire_error(int code) noexcept {
  switch (code) {
    case v1::ERROR_CODE_UNKNOWN_TYPE:
      return error::unknown_type;
    case v1::ERROR_CODE_BAD_PAYLOAD:
      return error::bad_payload;
    case v1::ERROR_CODE_BAD_ENVELOPE:
      return error::bad_envelope;
    case v1::ERROR_CODE_FRAME_TOO_LARGE:
      return error::frame_too_large;
    case v1::ERROR_CODE_OVERLOADED:
      return error::overloaded;
    case v1::ERROR_CODE_INTERNAL:
      return error::internal;
    case v1::ERROR_CODE_TIMEOUT:
      return error::timeout;
    case v1::ERROR_CODE_SHUTTING_DOWN:
      return error::shutting_down;
    default:
      return error::unknown_server_error;
  }
}

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  constexpr std::uint64_t top_bits = 0x8080808080808080u;
  if (size >= sizeof(std::uint64_t)) {
    // Type names are ASCII: all of it first, a word at a time, the last word overlapping.
    std::uint64_t seen = 0;
    std::uint64_t word = 0;
    for (std::size_t index = 0; index + sizeof word <= size; index += sizeof word) {
      std::memcpy(&word, bytes + index, sizeof word);
      seen |= word;
    }
    std::memcpy(&word, bytes + size - sizeof word, sizeof word);
    if (((seen | word) & top_bits) == 0) return true;
  }
  for (std::size_t index = 0; index < size;) {
    // Eight bytes at a time while no byte has its top bit set.
    std::uint64_t word = 0;
    if (size - index >= sizeof word) {
      std::memcpy(&word, bytes + index, sizeof word);
      if ((word & top_bits) == 0) {
        index += sizeof word;
        continue;
      }
    }
    const unsigned char lead = bytes[index];
    if (lead < 0x80) {
      ++index;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      code_point = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (size - index < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((bytes[index + k] & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (bytes[index + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000) ||
        (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF) {
      return false;
    }
    index += length;
  }
  return true;
}

}  // namespace msgframe
