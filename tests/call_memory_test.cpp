// The default memory of a call waiting for its reply: each thread keeps the last block it freed for
// its next call of the same size, and no more than that one.
#define BOOST_TEST_MODULE call_memory
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <thread>

#include "msgframe/detail/call_memory.hpp"
#include "support/allocation_counter.hpp"

using msgframe::detail::CallAllocator;
using msgframe::test::allocations;

namespace {

struct Call {
  char bytes[96];
};
struct LargerCall {
  char bytes[160];
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_freed_call_block_serves_the_next_call_of_its_size) {
  CallAllocator<Call> allocator;
  Call* first = allocator.allocate(1);
  allocator.deallocate(first, 1);
  const std::size_t before = allocations;
  Call* second = allocator.allocate(1);
  BOOST_TEST(second == first);
  BOOST_TEST(allocations == before);
  allocator.deallocate(second, 1);
}

BOOST_AUTO_TEST_CASE(a_call_of_another_size_gets_a_block_of_its_own) {
  CallAllocator<Call> small;
  CallAllocator<LargerCall> large(small);
  Call* kept = small.allocate(1);
  small.deallocate(kept, 1);
  const std::size_t before = allocations;
  LargerCall* other = large.allocate(1);
  BOOST_TEST(static_cast<void*>(other) != static_cast<void*>(kept));
  BOOST_TEST(allocations == before + 1);
  // The smaller block is still kept, for its own size.
  Call* again = small.allocate(1);
  BOOST_TEST(again == kept);
  BOOST_TEST(allocations == before + 1);
  small.deallocate(again, 1);
  large.deallocate(other, 1);  // kept in place of the smaller one, which is freed (ASan: no leak)
}

// A thread whose calls change size keeps the block of the latest: one call of another size at
// the start does not leave every later call to allocate.
BOOST_AUTO_TEST_CASE(the_block_freed_last_is_the_one_kept) {
  CallAllocator<LargerCall> early;
  CallAllocator<Call> later;
  early.deallocate(early.allocate(1), 1);
  Call* first = later.allocate(1);
  later.deallocate(first, 1);
  const std::size_t before = allocations;
  for (int call = 0; call < 10; ++call) later.deallocate(later.allocate(1), 1);
  BOOST_TEST(allocations == before);
}

BOOST_AUTO_TEST_CASE(one_block_is_kept_and_the_rest_are_freed) {
  CallAllocator<Call> allocator;
  Call* first = allocator.allocate(1);
  Call* second = allocator.allocate(1);
  Call* third = allocator.allocate(1);
  allocator.deallocate(first, 1);
  allocator.deallocate(second, 1);
  allocator.deallocate(third, 1);
  const std::size_t before = allocations;
  Call* reused = allocator.allocate(1);
  Call* fresh = allocator.allocate(1);
  BOOST_TEST(reused == third);  // the last freed
  BOOST_TEST(allocations == before + 1);
  allocator.deallocate(reused, 1);
  allocator.deallocate(fresh, 1);
}

// A handler holding an over-aligned capture gets memory aligned for it, from aligned new.
BOOST_AUTO_TEST_CASE(an_over_aligned_call_gets_aligned_memory) {
  struct alignas(64) AlignedCall {
    char bytes[64];
  };
  CallAllocator<AlignedCall> allocator;
  for (int call = 0; call < 3; ++call) {
    AlignedCall* block = allocator.allocate(1);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(block) % alignof(AlignedCall) == 0u);
    allocator.deallocate(block, 1);
  }
}

// Each thread keeps its own block, and frees it when it ends (ASan and valgrind see no leak).
BOOST_AUTO_TEST_CASE(each_thread_keeps_a_block_of_its_own) {
  CallAllocator<Call> allocator;
  Call* here = allocator.allocate(1);
  allocator.deallocate(here, 1);
  Call* there = nullptr;
  std::thread other([&] {
    there = allocator.allocate(1);
    allocator.deallocate(there, 1);
  });
  other.join();
  BOOST_TEST(there != here);  // the other thread could not take this thread's block
  Call* again = allocator.allocate(1);
  BOOST_TEST(again == here);
  allocator.deallocate(again, 1);
}
