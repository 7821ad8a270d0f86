// The double mapping under the frame decoder's ring: one set of pages seen twice in a row.
#define BOOST_TEST_MODULE mirrored_buffer
#include "msgframe/detail/mirrored_buffer.hpp"

#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <utility>

using msgframe::detail::MirroredBuffer;

namespace {

const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

}  // namespace

BOOST_AUTO_TEST_CASE(each_byte_is_seen_at_two_addresses) {
  const auto buffer = MirroredBuffer::allocate(3 * page, 8 * page);
  BOOST_TEST_REQUIRE(static_cast<bool>(buffer));
  BOOST_TEST(buffer.size() == 3 * page);
  std::byte* const data = buffer.data();

  // A run written across the end comes back whole at its start, and the reverse.
  for (std::size_t i = 0; i < 2 * page; ++i) data[buffer.size() - page + i] = std::byte(i % 251);
  for (std::size_t i = 0; i < page; ++i)
    BOOST_TEST_REQUIRE((data[i] == std::byte((i + page) % 251)));
  std::memset(data, 0x5A, buffer.size());
  for (std::size_t i = 0; i < buffer.size(); ++i) {
    BOOST_TEST_REQUIRE((data[buffer.size() + i] == std::byte{0x5A}));
  }
}

BOOST_AUTO_TEST_CASE(size_is_whole_pages_within_the_bounds_or_nothing) {
  BOOST_TEST(MirroredBuffer::allocate(1, 4 * page).size() == page);
  BOOST_TEST(MirroredBuffer::allocate(page + 1, 4 * page).size() == 2 * page);
  // Rounding up would pass the max: the largest whole number of pages under it still holds min.
  BOOST_TEST(MirroredBuffer::allocate(page + 1, 2 * page + 100).size() == 2 * page);
  // No whole number of pages between min and max, a zero size, an absurd one: nothing.
  BOOST_TEST(!MirroredBuffer::allocate(page + 1, 2 * page - 1));
  BOOST_TEST(!MirroredBuffer::allocate(0, page));
  BOOST_TEST(!MirroredBuffer::allocate(SIZE_MAX / 2, SIZE_MAX));
}

BOOST_AUTO_TEST_CASE(moving_hands_over_the_mapping) {
  auto first = MirroredBuffer::allocate(page, page);
  BOOST_TEST_REQUIRE(static_cast<bool>(first));
  std::byte* const data = first.data();
  data[0] = std::byte{42};

  MirroredBuffer second(std::move(first));
  BOOST_TEST(!first);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  BOOST_TEST(second.data() == data);
  BOOST_TEST((second.data()[page] == std::byte{42}));

  auto third = MirroredBuffer::allocate(page, page);
  third = std::move(second);  // third's own mapping is released, second's taken over
  BOOST_TEST(third.data() == data);
  BOOST_TEST(!second);  // NOLINT(bugprone-use-after-move)
}
