// Frame options: validation with clear exceptions, and the prefix format names.
#define BOOST_TEST_MODULE frame_options
#include "msgframe/frame_options.hpp"

#include <boost/test/unit_test.hpp>
#include <stdexcept>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"

using msgframe::FrameOptions;
using msgframe::LengthPrefix;

namespace {

std::string validation_message(const FrameOptions& options) {
  try {
    msgframe::validate(options);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_are_the_protocol) {
  const FrameOptions options;
  BOOST_TEST((options.length_prefix == LengthPrefix::u32_be));
  BOOST_TEST(options.max_frame_bytes == 4u * 1024 * 1024);
  BOOST_CHECK_NO_THROW(msgframe::validate(options));
}

BOOST_AUTO_TEST_CASE(zero_max_frame_is_refused) {
  const auto message = validation_message({LengthPrefix::u32_be, 0});
  BOOST_TEST(message.find("max_frame_bytes is 0") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(max_frame_beyond_the_prefix_is_refused_with_the_limit) {
  const auto message = validation_message({LengthPrefix::u8, 256});
  BOOST_TEST(message.find("u8") != std::string::npos);
  BOOST_TEST(message.find("255") != std::string::npos);
  BOOST_CHECK_NO_THROW(msgframe::validate({LengthPrefix::u8, 255}));
  BOOST_CHECK_THROW(msgframe::validate({LengthPrefix::u16_le, 65536}), std::invalid_argument);
  BOOST_CHECK_NO_THROW(msgframe::validate({LengthPrefix::u16_le, 65535}));
  BOOST_CHECK_THROW(msgframe::validate({LengthPrefix::u64_be, SIZE_MAX}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(an_out_of_range_prefix_value_is_refused) {
  BOOST_CHECK_THROW(msgframe::validate({static_cast<LengthPrefix>(200), 100}),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(encoder_and_decoder_validate_at_construction) {
  BOOST_CHECK_THROW(msgframe::FrameEncoder({LengthPrefix::u8, 1000}), std::invalid_argument);
  BOOST_CHECK_THROW(msgframe::FrameDecoder({LengthPrefix::u16_be, 0}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(names_round_trip) {
  for (const auto prefix : msgframe::all_length_prefixes) {
    const auto parsed = msgframe::parse_length_prefix(msgframe::to_string(prefix));
    BOOST_TEST_REQUIRE(parsed.has_value());
    BOOST_TEST((*parsed == prefix));
  }
  BOOST_TEST(!msgframe::parse_length_prefix("u32").has_value());
  BOOST_TEST(!msgframe::parse_length_prefix("").has_value());
}

BOOST_AUTO_TEST_CASE(prefix_sizes_and_limits) {
  BOOST_TEST(msgframe::length_prefix_bytes(LengthPrefix::u8) == 1u);
  BOOST_TEST(msgframe::length_prefix_bytes(LengthPrefix::u16_be) == 2u);
  BOOST_TEST(msgframe::length_prefix_bytes(LengthPrefix::u32_le) == 4u);
  BOOST_TEST(msgframe::length_prefix_bytes(LengthPrefix::u64_be) == 8u);
  BOOST_TEST(msgframe::length_prefix_bytes(LengthPrefix::varint) == 10u);
  BOOST_TEST(msgframe::max_encodable_length(LengthPrefix::u32_be) == 0xFFFFFFFFu);
}
