// The frame encoder: exact prefix bytes in every format, and refusing bodies over the max.
#define BOOST_TEST_MODULE frame_encoder
#include "msgframe/frame_encoder.hpp"

#include <algorithm>
#include <array>
#include <boost/test/unit_test.hpp>
#include <vector>

#include "msgframe/error.hpp"

using msgframe::FrameEncoder;
using msgframe::LengthPrefix;

namespace {

std::vector<int> prefix_bytes(LengthPrefix format, std::size_t max_frame, std::size_t body_bytes) {
  const FrameEncoder encoder({format, max_frame});
  const auto prefix = encoder.encode_prefix(body_bytes);
  BOOST_TEST_REQUIRE(prefix.has_value());
  std::vector<int> out;
  for (const auto byte : prefix->bytes()) out.push_back(std::to_integer<int>(byte));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fixed_width_prefixes_in_both_byte_orders) {
  using V = std::vector<int>;
  BOOST_TEST(prefix_bytes(LengthPrefix::u8, 255, 0xAB) == V({0xAB}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u16_be, 65535, 0x1234) == V({0x12, 0x34}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u16_le, 65535, 0x1234) == V({0x34, 0x12}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u32_be, 1 << 30, 0x01020304) == V({1, 2, 3, 4}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u32_le, 1 << 30, 0x01020304) == V({4, 3, 2, 1}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u64_be, 1 << 30, 0x01020304) ==
             V({0, 0, 0, 0, 1, 2, 3, 4}));
  BOOST_TEST(prefix_bytes(LengthPrefix::u64_le, 1 << 30, 0x01020304) ==
             V({4, 3, 2, 1, 0, 0, 0, 0}));
}

BOOST_AUTO_TEST_CASE(varint_prefixes_are_minimal_base_128) {
  using V = std::vector<int>;
  BOOST_TEST(prefix_bytes(LengthPrefix::varint, 1 << 30, 0) == V({0x00}));
  BOOST_TEST(prefix_bytes(LengthPrefix::varint, 1 << 30, 127) == V({0x7F}));
  BOOST_TEST(prefix_bytes(LengthPrefix::varint, 1 << 30, 128) == V({0x80, 0x01}));
  BOOST_TEST(prefix_bytes(LengthPrefix::varint, 1 << 30, 300) == V({0xAC, 0x02}));
  BOOST_TEST(prefix_bytes(LengthPrefix::varint, 1 << 30, 4096) == V({0x80, 0x20}));
}

BOOST_AUTO_TEST_CASE(protocol_default_is_four_bytes_big_endian) {
  const FrameEncoder encoder;
  const auto prefix = encoder.encode_prefix(5);
  BOOST_TEST_REQUIRE(prefix.has_value());
  BOOST_TEST(prefix->size() == 4u);
  BOOST_TEST(std::to_integer<int>(prefix->bytes()[3]) == 5);
}

BOOST_AUTO_TEST_CASE(a_body_over_the_max_is_refused) {
  const FrameEncoder encoder({LengthPrefix::u32_be, 100});
  BOOST_TEST(encoder.encode_prefix(100).has_value());
  const auto refused = encoder.encode_prefix(101);
  BOOST_TEST_REQUIRE(!refused.has_value());
  BOOST_TEST(refused.error() == msgframe::error::frame_too_large);
}

BOOST_AUTO_TEST_CASE(append_frame_writes_prefix_then_body) {
  const FrameEncoder encoder({LengthPrefix::u16_be, 10});
  std::vector<std::byte> stream;
  const std::byte body[] = {std::byte{'h'}, std::byte{'i'}};
  BOOST_TEST(!encoder.append_frame(stream, body));
  BOOST_TEST(!encoder.append_frame(stream, {}));
  const std::vector<std::byte> expected = {std::byte{0},   std::byte{2}, std::byte{'h'},
                                           std::byte{'i'}, std::byte{0}, std::byte{0}};
  BOOST_TEST((stream == expected));

  const std::vector<std::byte> too_long(11);
  BOOST_TEST(encoder.append_frame(stream, too_long) == msgframe::error::frame_too_large);
  BOOST_TEST(stream.size() == expected.size());
}

// In place, the prefix takes the first bytes of the room given and leaves the rest alone.
BOOST_AUTO_TEST_CASE(a_prefix_written_in_place_is_the_encoded_one) {
  for (const auto format : msgframe::all_length_prefixes) {
    BOOST_TEST_CONTEXT("format " << static_cast<int>(format)) {
      const FrameEncoder encoder({format, 255});
      std::array<std::byte, msgframe::max_length_prefix_bytes> room;
      room.fill(std::byte{0xEE});
      const auto size = encoder.write_prefix(200, room);
      const auto encoded = encoder.encode_prefix(200);
      BOOST_TEST_REQUIRE(encoded.has_value());
      BOOST_TEST(size == encoded->size());
      BOOST_TEST(std::equal(encoded->bytes().begin(), encoded->bytes().end(), room.begin()));
      BOOST_TEST(std::all_of(room.begin() + static_cast<std::ptrdiff_t>(size), room.end(),
                             [](std::byte byte) { return byte == std::byte{0xEE}; }));
    }
  }
}
