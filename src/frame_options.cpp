// Validation and naming of frame options.
#include "msgframe/frame_options.hpp"

#include <array>
#include <limits>
#include <stdexcept>
#include <string>

namespace msgframe {
namespace {

struct PrefixName {
  LengthPrefix prefix;
  std::string_view name;
};

constexpr std::array<PrefixName, 8> prefix_names{{
    {LengthPrefix::u8, "u8"},
    {LengthPrefix::u16_be, "u16be"},
    {LengthPrefix::u16_le, "u16le"},
    {LengthPrefix::u32_be, "u32be"},
    {LengthPrefix::u32_le, "u32le"},
    {LengthPrefix::u64_be, "u64be"},
    {LengthPrefix::u64_le, "u64le"},
    {LengthPrefix::varint, "varint"},
}};

// A buffer holds a whole frame plus a read: keep far from size_t overflow.
constexpr std::uint64_t largest_supported_frame = std::numeric_limits<std::ptrdiff_t>::max() / 4;

}  // namespace

std::uint64_t max_encodable_length(LengthPrefix prefix) noexcept {
  switch (prefix) {
    case LengthPrefix::u8:
      return std::numeric_limits<std::uint8_t>::max();
    case LengthPrefix::u16_be:
    case LengthPrefix::u16_le:
      return std::numeric_limits<std::uint16_t>::max();
    case LengthPrefix::u32_be:
    case LengthPrefix::u32_le:
      return std::numeric_limits<std::uint32_t>::max();
    case LengthPrefix::u64_be:
    case LengthPrefix::u64_le:
    case LengthPrefix::varint:
      break;
  }
  return std::numeric_limits<std::uint64_t>::max();
}

std::size_t length_prefix_bytes(LengthPrefix prefix) noexcept {
  switch (prefix) {
    case LengthPrefix::u8:
      return 1;
    case LengthPrefix::u16_be:
    case LengthPrefix::u16_le:
      return 2;
    case LengthPrefix::u32_be:
    case LengthPrefix::u32_le:
      return 4;
    case LengthPrefix::u64_be:
    case LengthPrefix::u64_le:
      return 8;
    case LengthPrefix::varint:
      break;
  }
  return max_length_prefix_bytes;
}

void validate(const FrameOptions& options) {
  const auto name = std::string(to_string(options.length_prefix));
  if (name == "invalid") {
    throw std::invalid_argument("FrameOptions: length_prefix is not a LengthPrefix value");
  }
  if (options.max_frame_bytes == 0) {
    throw std::invalid_argument(
        "FrameOptions: max_frame_bytes is 0; it must allow at least 1 byte");
  }
  const std::uint64_t limit =
      std::min(max_encodable_length(options.length_prefix), largest_supported_frame);
  if (options.max_frame_bytes > limit) {
    throw std::invalid_argument("FrameOptions: max_frame_bytes " +
                                std::to_string(options.max_frame_bytes) + " is more than a " +
                                name + " length prefix supports (" + std::to_string(limit) +
                                "); lower max_frame_bytes or choose a wider prefix");
  }
}

FrameOptions protocol_framing(std::size_t max_frame_bytes) {
  const FrameOptions options{LengthPrefix::u32_be, max_frame_bytes};
  validate(options);
  return options;
}

std::string_view to_string(LengthPrefix prefix) noexcept {
  for (const auto& entry : prefix_names) {
    if (entry.prefix == prefix) return entry.name;
  }
  return "invalid";
}

std::optional<LengthPrefix> parse_length_prefix(std::string_view name) noexcept {
  for (const auto& entry : prefix_names) {
    if (entry.name == name) return entry.prefix;
  }
  return std::nullopt;
}

}  // namespace msgframe
