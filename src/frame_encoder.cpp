// Writes length prefixes in every LengthPrefix format.
#include "msgframe/frame_encoder.hpp"

#include <boost/assert.hpp>
#include <boost/endian/conversion.hpp>

#include "msgframe/error.hpp"

namespace msgframe {
namespace {

std::size_t write_varint(std::uint64_t value, unsigned char* out) noexcept {
  std::size_t size = 0;
  while (value >= 0x80) {
    out[size++] = static_cast<unsigned char>(value | 0x80);
    value >>= 7;
  }
  out[size++] = static_cast<unsigned char>(value);
  return size;
}

// out has room for max_length_prefix_bytes; length fits the format (checked by the caller).
std::size_t write_length_prefix(LengthPrefix format, std::uint64_t length,
                                unsigned char* out) noexcept {
  namespace endian = boost::endian;
  // The protocol's own format first: no jump through the switch's table on the common path.
  if (format == LengthPrefix::u32_be) [[likely]] {
    endian::store_big_u32(out, static_cast<std::uint32_t>(length));
    return 4;
  }
  switch (format) {
    case LengthPrefix::u8:
      out[0] = static_cast<unsigned char>(length);
      return 1;
    case LengthPrefix::u16_be:
      endian::store_big_u16(out, static_cast<std::uint16_t>(length));
      return 2;
    case LengthPrefix::u16_le:
      endian::store_little_u16(out, static_cast<std::uint16_t>(length));
      return 2;
    case LengthPrefix::u32_be:
      endian::store_big_u32(out, static_cast<std::uint32_t>(length));
      return 4;
    case LengthPrefix::u32_le:
      endian::store_little_u32(out, static_cast<std::uint32_t>(length));
      return 4;
    case LengthPrefix::u64_be:
      endian::store_big_u64(out, length);
      return 8;
    case LengthPrefix::u64_le:
      endian::store_little_u64(out, length);
      return 8;
    case LengthPrefix::varint:
      break;
  }
  return write_varint(length, out);
}

}  // namespace

FrameEncoder::FrameEncoder(FrameOptions options) : options_(options) { validate(options_); }

boost::system::result<FramePrefix> FrameEncoder::encode_prefix(
    std::size_t body_bytes) const noexcept {
  if (body_bytes > options_.max_frame_bytes) return make_error_code(error::frame_too_large);
  FramePrefix prefix;
  prefix.size_ = static_cast<std::uint8_t>(write_prefix(body_bytes, prefix.storage_));
  return prefix;
}

std::size_t FrameEncoder::write_prefix(
    std::size_t body_bytes, std::span<std::byte, max_length_prefix_bytes> out) const noexcept {
  BOOST_ASSERT_MSG(body_bytes <= options_.max_frame_bytes, "a body over the max frame");
  return write_length_prefix(options_.length_prefix, body_bytes,
                             reinterpret_cast<unsigned char*>(out.data()));
}

boost::system::error_code FrameEncoder::append_frame(std::vector<std::byte>& out,
                                                     std::span<const std::byte> body) const {
  auto prefix = encode_prefix(body.size());
  if (!prefix) return prefix.error();
  out.insert(out.end(), prefix->bytes().begin(), prefix->bytes().end());
  out.insert(out.end(), body.begin(), body.end());
  return {};
}

}  // namespace msgframe
