// Counts the test program's every allocation: by replacing the global operator new, and
// aligned_alloc, which Asio uses for its handlers' memory. Include it in one source file of a test
// executable only.
#pragma once

#include <malloc.h>
#include <atomic>

#include <cstdlib>
#include <new>

namespace msgframe::test {
inline std::atomic<std::size_t> allocations{0};
// The bytes this thread asked for: what a client run on the test's own thread allocates, apart
// from a server's threads in the same process.
inline thread_local std::size_t thread_allocated_bytes = 0;
}  // namespace msgframe::test

// GCC sees the replaced operator new's malloc and, inlined into std::allocator, takes the free
// below for a mismatch; they are the matching pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
  ++msgframe::test::allocations;
  msgframe::test::thread_allocated_bytes += size;
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

// Counted, then served by memalign(), whose memory free() frees.
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  ++msgframe::test::allocations;
  msgframe::test::thread_allocated_bytes += size;
  return memalign(alignment, size);
}
