// Memory mapped twice, back to back, so that a run of bytes past its end continues at its start.
#pragma once

#include <cstddef>

namespace msgframe::detail {

// size() bytes whose pages are mapped again right after them: data()[i] and data()[i + size()]
// are the same byte, so the frame decoder can use it as a ring whose every frame is contiguous
// in memory, and never move a byte to keep it so. Linux only (memfd_create); the mapping is not
// inherited by a forked child.
class MirroredBuffer {
 public:
  MirroredBuffer() noexcept = default;
  MirroredBuffer(MirroredBuffer&& other) noexcept;
  MirroredBuffer& operator=(MirroredBuffer&& other) noexcept;
  ~MirroredBuffer();

  // Whole pages, at least `min_bytes` and at most `max_bytes`; empty when no number of pages fits
  // or the system refuses (no memory, file descriptor or mapping left), which callers take as a
  // reason to use plain memory instead.
  static MirroredBuffer allocate(std::size_t min_bytes, std::size_t max_bytes) noexcept;

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  MirroredBuffer(std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace msgframe::detail
