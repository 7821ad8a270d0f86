// The default memory of a call waiting for its reply: each thread keeps the last block it freed for
// its next call of the same size, and no more than that one.
#define BOOST_TEST_MODULE call_memory
#include <boost/test/unit_test.hpp>
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
  large.deallocate(other, 1);  // one block is kept already: this one is freed (ASan: no leak)
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
  BOOST_TEST(allocations == before + 1);
  BOOST_TEST(reused != fresh);
  allocator.deallocate(reused, 1);
  allocator.deallocate(fresh, 1);
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
