// The envelope layer: frame bodies <-> msgframe.v1.Envelope, with payloads never copied to be
// framed or read. Sending serializes the payload once, straight into the outgoing buffer;
// receiving yields the payload and type as views of the frame body.
#pragma once

#include <google/protobuf/message_lite.h>

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "msgframe/error.hpp"
#include "msgframe/frame_encoder.hpp"
#include "msgframe/v1/envelope.pb.h"

namespace msgframe {

// A received envelope. `type` and `payload` are views into the frame body and valid as long as
// it is (for a FrameDecoder body: until the decoder's next prepare(), feed() or reset()).
struct EnvelopeView {  // parse_envelope() resets it field by field: a new field goes there too
  std::uint64_t id = 0;
  int kind = v1::KIND_UNSPECIFIED;  // the raw value: a peer may send one outside the enum
  std::string_view type;
  std::span<const std::byte> payload;
  std::optional<v1::Error> error;  // present when the envelope carried one
};

// Parses a frame body as an Envelope, by the protobuf rules: fields in any order, unknown fields
// of every wire type skipped, the last of repeated scalars wins, non-minimal varints accepted.
// Returns error::bad_envelope for bytes that are not an Envelope, a `type` that is not UTF-8, or a
// kind outside 1-4; `out.id` then still holds the id when it could be read (else 0).
boost::system::error_code parse_envelope(std::span<const std::byte> body, EnvelopeView& out);

// An envelope to send. `payload` (may be null) is serialized straight into the outgoing buffer;
// or, when it is null, `serialized_payload` holds the payload message's wire bytes.
struct OutgoingEnvelope {
  // Built member by member, not as an aggregate: brace-initializing one zeroes the padding after
  // `kind` too, with 16-byte stores off the members' alignment, and reading `error` back soon
  // after straddles two of them, which stalls the load until both are written (~4 ns a call).
  OutgoingEnvelope(std::uint64_t id_ = 0, v1::Kind kind_ = v1::KIND_REQUEST,
                   std::string_view type_ = {},
                   const google::protobuf::MessageLite* payload_ = nullptr,
                   const v1::Error* error_ = nullptr,
                   std::span<const std::byte> serialized_payload_ = {}) noexcept
      : id(id_),
        kind(kind_),
        type(type_),
        payload(payload_),
        error(error_),
        serialized_payload(serialized_payload_) {}

  std::uint64_t id;
  v1::Kind kind;
  std::string_view type;  // the payload's full name; empty for ERROR envelopes
  const google::protobuf::MessageLite* payload;
  const v1::Error* error;
  std::span<const std::byte> serialized_payload;
};

// The serialized size of the envelope (its frame body). Computes and caches the payload's size,
// so call it before append_envelope / append_envelope_frame.
std::size_t envelope_size(const OutgoingEnvelope& envelope);

// Appends the serialized envelope alone (a UDP datagram) to out. envelope_size() first.
void append_envelope(std::vector<std::byte>& out, const OutgoingEnvelope& envelope,
                     std::size_t size);

// Appends one frame, length prefix then envelope, to out. Returns error::frame_too_large, and
// appends nothing, when the envelope exceeds the encoder's max_frame_bytes.
[[nodiscard]] boost::system::error_code append_envelope_frame(std::vector<std::byte>& out,
                                                              const FrameEncoder& encoder,
                                                              const OutgoingEnvelope& envelope);

// As append_envelope_frame, with `size` from envelope_size(envelope), the envelope and its
// payload unchanged since: for a caller that looks at the size first. (Checked in debug builds:
// a smaller size would have the envelope written past the room made for it.)
[[nodiscard]] boost::system::error_code append_envelope_frame(std::vector<std::byte>& out,
                                                              const FrameEncoder& encoder,
                                                              const OutgoingEnvelope& envelope,
                                                              std::size_t size);

// As append_envelope_frame, without the bytes of `envelope.serialized_payload`, which the caller
// writes right after what was appended (they end the envelope: it has no error). For bytes that
// are written from where they are, by a gather write.
[[nodiscard]] boost::system::error_code append_envelope_frame_head(
    std::vector<std::byte>& out, const FrameEncoder& encoder, const OutgoingEnvelope& envelope);

// The wire error code for a msgframe error, and back. Errors with no wire code map to
// ERROR_CODE_INTERNAL; wire codes this version does not know map to unknown_server_error.
v1::ErrorCode to_wire_error(msgframe::error value) noexcept;
msgframe::error from_wire_error(int code) noexcept;

// Whether `text` is well-formed UTF-8 (what protobuf requires of a string field).
bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace msgframe
