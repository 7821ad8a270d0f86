// Reading a length prefix from the front of buffered bytes, for every LengthPrefix format.
#pragma once

#include <boost/endian/conversion.hpp>
#include <cstddef>
#include <cstdint>

#include "msgframe/frame_options.hpp"

namespace msgframe::detail {

enum class PrefixStatus : std::uint8_t {
  complete,    // prefix_bytes and body_bytes are set
  incomplete,  // more bytes are needed to read the prefix
  too_large,   // the prefix (or a varint's bytes so far) announces more than the max
  malformed,   // a varint longer than max_length_prefix_bytes
};

struct PrefixRead {
  PrefixStatus status;
  std::size_t prefix_bytes = 0;
  std::uint64_t body_bytes = 0;
};

// A varint's value only grows with each byte, so the bytes so far are a lower bound: a value
// over the max is reported as soon as it shows, without waiting for the last byte.
inline PrefixRead read_varint_prefix(const unsigned char* data, std::size_t available,
                                     std::uint64_t max_body_bytes) noexcept {
  std::uint64_t value = 0;
  const std::size_t readable =
      available < max_length_prefix_bytes ? available : max_length_prefix_bytes;
  for (std::size_t index = 0; index < readable; ++index) {
    const std::uint64_t bits = data[index] & 0x7Fu;
    // The 10th byte holds bit 63 only; anything more cannot fit 64 bits, so exceeds any max.
    if (index == max_length_prefix_bytes - 1 && bits > 1) return {PrefixStatus::too_large};
    value |= bits << (7 * index);
    if (value > max_body_bytes) return {PrefixStatus::too_large};
    if ((data[index] & 0x80u) == 0) return {PrefixStatus::complete, index + 1, value};
  }
  return {readable == max_length_prefix_bytes ? PrefixStatus::malformed : PrefixStatus::incomplete};
}

inline PrefixRead read_length_prefix(LengthPrefix format, const std::byte* bytes,
                                     std::size_t available, std::uint64_t max_body_bytes) noexcept {
  namespace endian = boost::endian;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes);
  std::size_t width = 0;
  std::uint64_t length = 0;
  // The protocol's own format first, with no jump through the switch.
  if (format == LengthPrefix::u32_be) [[likely]] {
    if (available < 4) return {PrefixStatus::incomplete};
    length = endian::load_big_u32(data);
    if (length > max_body_bytes) return {PrefixStatus::too_large};
    return {PrefixStatus::complete, 4, length};
  }
  switch (format) {
    case LengthPrefix::u32_be:
      width = 4;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_big_u32(data);
      break;
    case LengthPrefix::u8:
      width = 1;
      if (available < width) return {PrefixStatus::incomplete};
      length = data[0];
      break;
    case LengthPrefix::u16_be:
      width = 2;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_big_u16(data);
      break;
    case LengthPrefix::u16_le:
      width = 2;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_little_u16(data);
      break;
    case LengthPrefix::u32_le:
      width = 4;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_little_u32(data);
      break;
    case LengthPrefix::u64_be:
      width = 8;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_big_u64(data);
      break;
    case LengthPrefix::u64_le:
      width = 8;
      if (available < width) return {PrefixStatus::incomplete};
      length = endian::load_little_u64(data);
      break;
    case LengthPrefix::varint:
      return read_varint_prefix(data, available, max_body_bytes);
  }
  if (length > max_body_bytes) return {PrefixStatus::too_large};
  return {PrefixStatus::complete, width, length};
}

}  // namespace msgframe::detail
