// Test support: msgframe frames built and split by hand, as an outside client written from
// the protocol would: the 4-byte big-endian prefix, echo requests built into a reused buffer, a
// splitter for reply streams, and checks that report instead of asserting (for any thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "msgframe/v1/echo.pb.h"
#include "msgframe/v1/envelope.pb.h"

namespace msgframe::test {

inline constexpr std::string_view echo_request_type = "msgframe.v1.EchoRequest";
inline constexpr std::string_view echo_response_type = "msgframe.v1.EchoResponse";

// The protocol's length prefix (PROTOCOL.md §1).
inline void append_length_prefix(std::string& out, std::uint32_t length) {
  out += static_cast<char>((length >> 24) & 0xFF);
  out += static_cast<char>((length >> 16) & 0xFF);
  out += static_cast<char>((length >> 8) & 0xFF);
  out += static_cast<char>(length & 0xFF);
}

inline std::uint32_t read_length_prefix(const char* bytes) {
  const auto byte = [bytes](int index) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[index]));
  };
  return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

// Echo request frames, serialized into buffers reused from one frame to the next: writing many
// frames costs one frame's memory.
class EchoFrameBuilder {
 public:
  // Prefix and Envelope of an echo request; valid until the next call.
  const std::string& frame(std::uint64_t id, std::string_view payload, bool uppercase = false) {
    request_.mutable_payload()->assign(payload);
    request_.set_uppercase(uppercase);
    envelope_.set_id(id);
    envelope_.set_kind(v1::KIND_REQUEST);
    envelope_.set_type(std::string(echo_request_type));
    request_.SerializeToString(envelope_.mutable_payload());
    envelope_.SerializeToString(&body_);
    frame_.clear();
    append_length_prefix(frame_, static_cast<std::uint32_t>(body_.size()));
    frame_ += body_;
    return frame_;
  }

  // The Envelope body alone, of the last frame().
  const std::string& body() const noexcept { return body_; }

 private:
  v1::EchoRequest request_;
  v1::Envelope envelope_;
  std::string body_;
  std::string frame_;
};

// Cuts a stream of frames read in arbitrary pieces into bodies.
class FrameSplitter {
 public:
  explicit FrameSplitter(std::uint32_t max_body_bytes) : max_body_bytes_(max_body_bytes) {}

  void append(const char* bytes, std::size_t size) {
    if (read_position_ > 0) {  // what next() has handed out is done with
      buffer_.erase(0, read_position_);
      read_position_ = 0;
    }
    buffer_.append(bytes, size);
  }

  // The next whole body, valid until the next append(); nullopt when none is complete or the
  // stream is out of step (a prefix over the max: see out_of_step()).
  std::optional<std::string_view> next() {
    if (out_of_step_ || buffer_.size() - read_position_ < 4) return std::nullopt;
    const std::uint32_t length = read_length_prefix(buffer_.data() + read_position_);
    if (length > max_body_bytes_) {
      out_of_step_ = true;
      return std::nullopt;
    }
    if (buffer_.size() - read_position_ - 4 < length) return std::nullopt;
    const std::string_view body(buffer_.data() + read_position_ + 4, length);
    read_position_ += 4 + length;
    return body;
  }

  bool out_of_step() const noexcept { return out_of_step_; }
  // Bytes of a frame begun but not complete.
  std::size_t partial_bytes() const noexcept { return buffer_.size() - read_position_; }

 private:
  std::uint32_t max_body_bytes_;
  std::string buffer_;
  std::size_t read_position_ = 0;
  bool out_of_step_ = false;
};

// What is wrong with `body` as the echo reply to request `id` with `payload` (uppercase off);
// empty when it is right.
inline std::string echo_reply_problem(std::string_view body, std::uint64_t id,
                                      std::string_view payload) {
  v1::Envelope reply;
  if (!reply.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return "a reply is not an Envelope";
  }
  if (reply.id() != id) {
    return "reply id " + std::to_string(reply.id()) + ", expected " + std::to_string(id);
  }
  if (reply.kind() != v1::KIND_RESPONSE || reply.type() != echo_response_type) {
    return "reply to " + std::to_string(id) + " has kind " + std::to_string(reply.kind()) +
           " and type '" + reply.type() + "'";
  }
  v1::EchoResponse response;
  if (!response.ParseFromString(reply.payload()) || response.payload() != payload) {
    return "the echo reply to " + std::to_string(id) + " does not carry the request's payload";
  }
  return {};
}

}  // namespace msgframe::test
