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
  PrefixStatus status = PrefixStatus::incomplete;
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

template <std::size_t width, class Load>
PrefixRead read_fixed_prefix(const unsigned char* data, std::size_t available,
                             std::uint64_t max_body_bytes, Load load) noexcept {
  if (available < width) return {PrefixStatus::incomplete};
  const std::uint64_t length = load(data);
  if (length > max_body_bytes) return {PrefixStatus::too_large};
  return {PrefixStatus::complete, width, length};
}

inline PrefixRead read_length_prefix(LengthPrefix format, const std::byte* bytes,
                                     std::size_t available, std::uint64_t max_body_bytes) noexcept {
  namespace endian = boost::endian;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes);
  const auto load_u8 = [](const unsigned char* p) { return *p; };
  const auto load_u16_be = [](const unsigned char* p) { return endian::load_big_u16(p); };
  const auto load_u16_le = [](const unsigned char* p) { return endian::load_little_u16(p); };
  const auto load_u32_be = [](const unsigned char* p) { return endian::load_big_u32(p); };
  const auto load_u32_le = [](const unsigned char* p) { return endian::load_little_u32(p); };
  const auto load_u64_be = [](const unsigned char* p) { return endian::load_big_u64(p); };
  const auto load_u64_le = [](const unsigned char* p) { return endian::load_little_u64(p); };

  // The protocol's own format first: no jump through the switch on the common path.
  if (format == LengthPrefix::u32_be) [[likely]] {
    return read_fixed_prefix<4>(data, available, max_body_bytes, load_u32_be);
  }
  switch (format) {
    case LengthPrefix::u8:
      return read_fixed_prefix<1>(data, available, max_body_bytes, load_u8);
    case LengthPrefix::u16_be:
      return read_fixed_prefix<2>(data, available, max_body_bytes, load_u16_be);
    case LengthPrefix::u16_le:
      return read_fixed_prefix<2>(data, available, max_body_bytes, load_u16_le);
    case LengthPrefix::u32_be:
      return read_fixed_prefix<4>(data, available, max_body_bytes, load_u32_be);
    case LengthPrefix::u32_le:
      return read_fixed_prefix<4>(data, available, max_body_bytes, load_u32_le);
    case LengthPrefix::u64_be:
      return read_fixed_prefix<8>(data, available, max_body_bytes, load_u64_be);
    case LengthPrefix::u64_le:
      return read_fixed_prefix<8>(data, available, max_body_bytes, load_u64_le);
    case LengthPrefix::varint:
      break;
  }
  return read_varint_prefix(data, available, max_body_bytes);
}

}  // namespace msgframe::detail
