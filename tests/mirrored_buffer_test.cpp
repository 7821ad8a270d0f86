// The double mapping under the frame decoder's ring: one set of pages seen twice in a row.
#define BOOST_TEST_MODULE mirrored_buffer
#include "msgframe/detail/mirrored_buffer.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <utility>
#include <vector>

#include "support/process_resources.hpp"

using msgframe::detail::MirroredBuffer;

namespace {

const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

MirroredBuffer allocate_pages(std::size_t pages) {
  return MirroredBuffer::allocate(pages * page, pages * page, pages * page);
}

}  // namespace

BOOST_AUTO_TEST_CASE(each_byte_is_seen_at_two_addresses) {
  const auto buffer = allocate_pages(3);
  BOOST_TEST_REQUIRE(static_cast<bool>(buffer));
  BOOST_TEST(buffer.size() == 3 * page);
  std::byte* const data = buffer.data();

  // A run written across the end comes back whole at its start, and the reverse.
  for (std::size_t i = 0; i < 2 * page; ++i) data[buffer.size() - page + i] = std::byte(i % 251);
  for (std::size_t i = 0; i < page; ++i) {
    BOOST_TEST_REQUIRE((data[i] == std::byte((i + page) % 251)));
  }
  std::memset(data, 0x5A, buffer.size());
  for (std::size_t i = 0; i < buffer.size(); ++i) {
    BOOST_TEST_REQUIRE((data[buffer.size() + i] == std::byte{0x5A}));
  }
}

BOOST_AUTO_TEST_CASE(size_is_whole_pages_within_the_bounds_or_nothing) {
  BOOST_TEST(MirroredBuffer::allocate(1, 1, 4 * page).size() == page);
  BOOST_TEST(MirroredBuffer::allocate(1, page + 1, 4 * page).size() == 2 * page);
  // Rounding the preferred size up would pass the max: the max rounded down, if it holds min.
  BOOST_TEST(MirroredBuffer::allocate(page + 1, 2 * page + 1, 2 * page + 100).size() == 2 * page);
  BOOST_TEST(!MirroredBuffer::allocate(2 * page + 1, 2 * page + 1, 2 * page + 100));
  // No whole number of pages between min and max, a zero size, an absurd one: nothing.
  BOOST_TEST(!MirroredBuffer::allocate(page + 1, page + 1, 2 * page - 1));
  BOOST_TEST(!MirroredBuffer::allocate(0, 0, page));
  BOOST_TEST(!MirroredBuffer::allocate(SIZE_MAX / 2, SIZE_MAX / 2, SIZE_MAX));
}

BOOST_AUTO_TEST_CASE(moving_hands_over_the_mapping_and_the_last_owner_unmaps_it) {
  const auto rings_before = msgframe::test::decoder_ring_bytes();
  {
    auto first = allocate_pages(1);
    BOOST_TEST_REQUIRE(static_cast<bool>(first));
    std::byte* const data = first.data();
    data[0] = std::byte{42};

    MirroredBuffer second(std::move(first));
    BOOST_TEST(!first);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
    BOOST_TEST(second.data() == data);
    BOOST_TEST((second.data()[page] == std::byte{42}));

    auto third = allocate_pages(2);
    BOOST_TEST_REQUIRE(static_cast<bool>(third));
    BOOST_TEST(msgframe::test::decoder_ring_bytes() == rings_before + 3 * page);
    third = std::move(second);  // third's own mapping is released, second's taken over
    BOOST_TEST(third.data() == data);
    BOOST_TEST(!second);  // NOLINT(bugprone-use-after-move)
    BOOST_TEST(msgframe::test::decoder_ring_bytes() == rings_before + page);
  }
  BOOST_TEST(msgframe::test::decoder_ring_bytes() == rings_before);
}

// Each ring takes two of the kernel's mappings, which every mmap and thread in the process
// shares: past max_live_buffers, allocate() refuses, and callers use plain memory.
BOOST_AUTO_TEST_CASE(live_buffers_are_capped) {
  std::vector<MirroredBuffer> rings;
  while (rings.size() < MirroredBuffer::max_live_buffers + 1) {
    auto ring = allocate_pages(1);
    if (!ring) break;
    rings.push_back(std::move(ring));
  }
  BOOST_TEST(rings.size() == MirroredBuffer::max_live_buffers);
  BOOST_TEST(MirroredBuffer::live_buffers() == MirroredBuffer::max_live_buffers);
  rings.pop_back();
  BOOST_TEST(static_cast<bool>(allocate_pages(1)), "room made by a release is usable again");
  rings.clear();
  BOOST_TEST(MirroredBuffer::live_buffers() == 0u);
}

// A forked child does not get the mapping; when it destroys what it inherited, it must not
// unmap that address range, which may hold its own memory by then.
BOOST_AUTO_TEST_CASE(a_forked_child_never_unmaps_its_parents_range) {
  auto ring = allocate_pages(1);
  BOOST_TEST_REQUIRE(static_cast<bool>(ring));
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0);
  if (child == 0) {
    void* const own = ::mmap(ring.data(), 2 * page, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (own != ring.data()) ::_exit(2);  // the range was not free: the mapping was inherited
    static_cast<volatile std::byte*>(own)[0] = std::byte{7};
    { const MirroredBuffer inherited = std::move(ring); }  // destroyed here
    // Unmapped by the destructor, this read would end the child with SIGSEGV.
    ::_exit(static_cast<volatile std::byte*>(own)[0] == std::byte{7} ? 0 : 1);
  }
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_TEST(WIFEXITED(status), "the child died: its memory at the ring's address was unmapped");
  BOOST_TEST(WEXITSTATUS(status) == 0, "2: the child inherited the mapping");
  BOOST_TEST((ring.data()[0] == ring.data()[page]));  // the parent's ring is untouched
}
