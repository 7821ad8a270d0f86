// Memory mapped twice, back to back, so that a run of bytes past its end continues at its start.
#pragma once

#include <cstddef>

namespace msgframe::detail {

// size() bytes whose pages are mapped again right after them: data()[i] and data()[i + size()]
// are the same byte, so the frame decoder can use it as a ring whose every frame is contiguous
// in memory, and never move a byte to keep it so. Linux only (memfd_create); elsewhere
// allocate() always returns an empty buffer. The mapping is not inherited by a forked child
// (and a child never unmaps its parent's address range), so a child must not use it.
class MirroredBuffer {
 public:
  MirroredBuffer() noexcept = default;
  MirroredBuffer(MirroredBuffer&& other) noexcept;
  MirroredBuffer& operator=(MirroredBuffer&& other) noexcept;
  ~MirroredBuffer();

  // Whole pages: `preferred_bytes` rounded up if that stays within `max_bytes`, else `max_bytes`
  // rounded down. Empty when that is under `min_bytes`, when max_live_buffers are alive in the
  // process (each takes two of the kernel's mappings, of which a process has about 65,000), or
  // when the system refuses (no memory, file descriptor or mapping left): callers then use plain
  // memory instead.
  static MirroredBuffer allocate(std::size_t min_bytes, std::size_t preferred_bytes,
                                 std::size_t max_bytes) noexcept;

  static constexpr std::size_t max_live_buffers = 8192;
  // How many are alive in this process now.
  static std::size_t live_buffers() noexcept;

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  MirroredBuffer(std::byte* data, std::size_t size, int owner) noexcept
      : data_(data), size_(size), owner_(owner) {}
  void release() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  int owner_ = 0;  // the process that mapped it
};

}  // namespace msgframe::detail
