// How frames are delimited: the length prefix format and the largest body a peer accepts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace msgframe {

// The bytes in front of every body that say how long it is. The msgframe protocol itself always
// uses u32_be; the others exist for users' own protocols.
enum class LengthPrefix : std::uint8_t {
  u8,
  u16_be,
  u16_le,
  u32_be,
  u32_le,
  u64_be,
  u64_le,
  varint,  // protobuf base-128 varint, 1 to 10 bytes
};

inline constexpr std::array<LengthPrefix, 8> all_length_prefixes{
    LengthPrefix::u8,     LengthPrefix::u16_be, LengthPrefix::u16_le, LengthPrefix::u32_be,
    LengthPrefix::u32_le, LengthPrefix::u64_be, LengthPrefix::u64_le, LengthPrefix::varint};

// The longest prefix of any format: a 10-byte varint.
inline constexpr std::size_t max_length_prefix_bytes = 10;

inline constexpr std::size_t default_max_frame_bytes = std::size_t{4} * 1024 * 1024;

struct FrameOptions {
  LengthPrefix length_prefix = LengthPrefix::u32_be;
  // The largest body accepted; a prefix announcing more is an error::frame_too_large.
  std::size_t max_frame_bytes = default_max_frame_bytes;
};

// Throws std::invalid_argument, saying what to change, when max_frame_bytes is 0 or more than
// the length prefix can express.
void validate(const FrameOptions& options);

// The msgframe protocol's framing (4-byte big-endian prefix) with the given max; validated.
FrameOptions protocol_framing(std::size_t max_frame_bytes);

// The largest body length the prefix format can express.
std::uint64_t max_encodable_length(LengthPrefix prefix) noexcept;

// The prefix's size in bytes; for varint, its largest size.
std::size_t length_prefix_bytes(LengthPrefix prefix) noexcept;

// Short names as used on command lines and in test vectors: "u8", "u16be", ..., "varint".
std::string_view to_string(LengthPrefix prefix) noexcept;
std::optional<LengthPrefix> parse_length_prefix(std::string_view name) noexcept;

}  // namespace msgframe
