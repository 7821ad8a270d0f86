// Memory for a call waiting for its reply (not for users): the default allocator of a call whose
// handler names none.
#pragma once

#include <cstddef>
#include <new>

namespace msgframe::detail {

// A block a thread keeps for its next call (see SpareCallBlock); freed when the thread ends.
struct SpareBlock {
  void* block = nullptr;
  std::size_t bytes = 0;  // 0: no block kept
  SpareBlock() = default;
  SpareBlock(const SpareBlock&) = delete;
  SpareBlock& operator=(const SpareBlock&) = delete;
  ~SpareBlock() {
    if (bytes != 0) ::operator delete(block);
  }
};
inline thread_local SpareBlock spare_call_block;

// Each thread keeps the last call block it freed, for its next call of the same size: a reply's
// handler frees its call and then, most often, starts the next call. Asio's recycling allocator
// does the same with more checks, one of them a division by the alignment (~3 ns a call).
struct SpareCallBlock {
  static void* take(std::size_t bytes) {
    SpareBlock& spare = spare_call_block;
    if (spare.bytes == bytes) {
      spare.bytes = 0;
      return spare.block;
    }
    return ::operator new(bytes);
  }

  static void give(void* block, std::size_t bytes) noexcept {
    SpareBlock& spare = spare_call_block;
    if (spare.bytes == 0) {
      spare.block = block;
      spare.bytes = bytes;
      return;
    }
    ::operator delete(block);
  }
};

template <class T>
struct CallAllocator {
  using value_type = T;

  CallAllocator() = default;
  template <class U>
  CallAllocator(const CallAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                  "an over-aligned call needs an allocator of its own");
    return static_cast<T*>(SpareCallBlock::take(count * sizeof(T)));
  }
  void deallocate(T* pointer, std::size_t count) noexcept {
    SpareCallBlock::give(pointer, count * sizeof(T));
  }

  template <class U>
  bool operator==(const CallAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace msgframe::detail
