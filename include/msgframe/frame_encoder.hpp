// Encoding side of the framing codec: the length prefix that goes in front of a body.
#pragma once

#include <array>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "msgframe/frame_options.hpp"

namespace msgframe {

// A length prefix held by value, ready to be sent ahead of its body in one gather write.
class FramePrefix {
 public:
  // Valid as long as this FramePrefix lives.
  std::span<const std::byte> bytes() const noexcept { return {storage_.data(), size_}; }
  std::size_t size() const noexcept { return size_; }

 private:
  friend class FrameEncoder;
  std::array<std::byte, max_length_prefix_bytes> storage_{};
  std::uint8_t size_ = 0;
};

class FrameEncoder {
 public:
  // Throws std::invalid_argument when the options are invalid (see validate()).
  explicit FrameEncoder(FrameOptions options = {});

  // The prefix for a body of body_bytes, or error::frame_too_large when body_bytes exceeds
  // max_frame_bytes (the peer would refuse the frame). The body itself is never touched.
  [[nodiscard]] boost::system::result<FramePrefix> encode_prefix(
      std::size_t body_bytes) const noexcept;

  // Writes the prefix of a body of body_bytes (at most max_frame_bytes) at the start of `out`
  // and returns its size: for a frame built in a buffer, in place. (A FramePrefix returned by
  // value and copied on costs a stalled load on every frame.)
  [[nodiscard]] std::size_t write_prefix(
      std::size_t body_bytes, std::span<std::byte, max_length_prefix_bytes> out) const noexcept;

  // Appends prefix and body to out: for streams built in memory. Transports should send
  // encode_prefix() and the body as one gather write instead of copying.
  [[nodiscard]] boost::system::error_code append_frame(std::vector<std::byte>& out,
                                                       std::span<const std::byte> body) const;

  const FrameOptions& options() const noexcept { return options_; }

 private:
  FrameOptions options_;
};

}  // namespace msgframe
