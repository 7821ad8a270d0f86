// The load clients' reply check: a payload is correct only when every byte is as written for its
// call, whatever its length.
#define BOOST_TEST_MODULE payload_check
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <vector>

#include "load.hpp"

namespace {

// Lengths around the 8-byte stamp and the 8-byte words the filler is compared in.
constexpr std::size_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000};

std::vector<char> payload_of(std::size_t bytes, std::uint64_t sequence) {
  std::vector<char> payload(bytes);
  bench::write_payload(payload.data(), bytes, sequence);
  return payload;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_payload_as_written_matches_its_own_sequence_only) {
  for (const auto bytes : lengths) {
    // Sequences that differ in every byte: in any byte order, in any stamp of 1 to 8 bytes.
    const auto payload = payload_of(bytes, 0x0102030405060708);
    BOOST_TEST(bench::payload_matches(payload.data(), bytes, 0x0102030405060708), bytes);
    if (bytes > 0) BOOST_TEST(!bench::payload_matches(payload.data(), bytes, 0x1112131415161718));
  }
}

BOOST_AUTO_TEST_CASE(any_one_changed_byte_is_a_mismatch) {
  for (const auto bytes : lengths) {
    for (std::size_t at = 0; at < bytes; ++at) {
      for (const int flip : {0x01, 0x80, 0xFF}) {
        auto payload = payload_of(bytes, 42);
        payload[at] = static_cast<char>(payload[at] ^ flip);
        BOOST_TEST(!bench::payload_matches(payload.data(), bytes, 42),
                   "length " << bytes << ", byte " << at << " xor " << flip);
      }
    }
  }
}
