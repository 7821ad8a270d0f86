// Memory for a call waiting for its reply (not for users): the default allocator of a call whose
// handler names none.
#pragma once

#include <cstddef>
#include <limits>
#include <new>

namespace msgframe::detail {

// A block a thread keeps for its next call (see SpareCallBlock); freed when the thread ends.
struct SpareBlock {
  static constexpr std::size_t gone = std::numeric_limits<std::size_t>::max();

  void* block = nullptr;
  std::size_t bytes = 0;  // 0: no block kept; `gone`: destroyed
  SpareBlock() = default;
  SpareBlock(const SpareBlock&) = delete;
  SpareBlock& operator=(const SpareBlock&) = delete;
  // A call freed later on this thread (by a static client, as the program exits) finds it gone:
  // its block is deleted, not kept.
  ~SpareBlock() {
    if (bytes != 0) ::operator delete(block);
    block = nullptr;
    bytes = gone;
  }
};
inline thread_local SpareBlock spare_call_block;

// Each thread keeps the last call block it freed, for its next call of the same size: a reply's
// handler frees its call and then, most often, starts the next call. Asio's recycling allocator
// does the same with more checks, one of them a division by the alignment (~2 ns a call).
struct SpareCallBlock {
  static void* take(std::size_t bytes) {
    SpareBlock& spare = spare_call_block;
    if (spare.bytes == bytes) {
      spare.bytes = 0;
      return spare.block;
    }
    return ::operator new(bytes);
  }

  // The block freed last is the one kept: a thread whose calls change size keeps up with them.
  static void give(void* block, std::size_t bytes) noexcept {
    SpareBlock& spare = spare_call_block;
    if (spare.bytes == SpareBlock::gone) return ::operator delete(block);
    if (spare.bytes != 0) ::operator delete(spare.block);
    spare.block = block;
    spare.bytes = bytes;
  }
};

// A call whose handler holds an over-aligned capture is served by aligned new, and never kept.
template <class T>
struct CallAllocator {
  using value_type = T;

  CallAllocator() = default;
  template <class U>
  CallAllocator(const CallAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      return static_cast<T*>(::operator new (count * sizeof(T), std::align_val_t{alignof(T)}));
    } else {
      return static_cast<T*>(SpareCallBlock::take(count * sizeof(T)));
    }
  }
  void deallocate(T* pointer, std::size_t count) noexcept {
    if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      ::operator delete (pointer, std::align_val_t{alignof(T)});
    } else {
      SpareCallBlock::give(pointer, count * sizeof(T));
    }
  }

  template <class U>
  bool operator==(const CallAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace msgframe::detail
