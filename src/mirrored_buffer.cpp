// The double mapping behind detail::MirroredBuffer: one memory file, mapped twice side by side.
#include "msgframe/detail/mirrored_buffer.hpp"

#include <atomic>
#include <cstdint>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace msgframe::detail {
namespace {

std::atomic<std::size_t> live_count{0};

#if defined(__linux__)
std::size_t page_bytes() noexcept {
  static const auto bytes = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return bytes;
}

// Maps the file's first `size` bytes at `address`, replacing what was reserved there. (Should
// this fail, the kernel may already have unmapped the reservation there; the caller unmaps the
// whole range at once, which is harmless unless another thread mapped into that hole between.)
bool map_file_at(void* address, std::size_t size, int file) noexcept {
  return ::mmap(address, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file, 0) == address;
}

// Two mappings of one fresh memory file of `size` bytes, back to back; null when refused.
std::byte* map_twice(std::size_t size) noexcept {
  const int file = ::memfd_create("msgframe-decoder", MFD_CLOEXEC);
  if (file < 0) return nullptr;
  void* reserved = MAP_FAILED;
  if (::ftruncate(file, static_cast<off_t>(size)) == 0) {
    // Reserve both halves first, so that nothing else can be mapped between them.
    reserved = ::mmap(nullptr, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  bool mapped = false;
  if (reserved != MAP_FAILED) {
    auto* lower = static_cast<std::byte*>(reserved);
    mapped = map_file_at(lower, size, file) && map_file_at(lower + size, size, file) &&
             ::madvise(lower, 2 * size, MADV_DONTFORK) == 0;
    if (!mapped) ::munmap(reserved, 2 * size);
  }
  ::close(file);  // the mappings keep the memory alive
  return mapped ? static_cast<std::byte*>(reserved) : nullptr;
}
#endif

}  // namespace

MirroredBuffer::MirroredBuffer(MirroredBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      owner_(other.owner_) {}

MirroredBuffer& MirroredBuffer::operator=(MirroredBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    owner_ = other.owner_;
  }
  return *this;
}

MirroredBuffer::~MirroredBuffer() { release(); }

std::size_t MirroredBuffer::live_buffers() noexcept { return live_count.load(); }

#if defined(__linux__)

void MirroredBuffer::release() noexcept {
  if (data_ == nullptr) return;
  // A forked child does not have the mapping (MADV_DONTFORK): the range may hold its own.
  if (::getpid() == owner_) {
    ::munmap(data_, 2 * size_);
    --live_count;
  }
  data_ = nullptr;
  size_ = 0;
}

MirroredBuffer MirroredBuffer::allocate(std::size_t min_bytes, std::size_t preferred_bytes,
                                        std::size_t max_bytes) noexcept {
  const std::size_t page = page_bytes();
  if (min_bytes == 0 || max_bytes > SIZE_MAX / 4) return {};
  std::size_t size = (preferred_bytes + page - 1) / page * page;
  if (size > max_bytes) size = max_bytes / page * page;
  if (size < min_bytes) return {};

  if (++live_count > max_live_buffers) {
    --live_count;
    return {};
  }
  std::byte* const data = map_twice(size);
  if (data == nullptr) {
    --live_count;
    return {};
  }
  return {data, size, static_cast<int>(::getpid())};
}

#else

void MirroredBuffer::release() noexcept {}

MirroredBuffer MirroredBuffer::allocate(std::size_t, std::size_t, std::size_t) noexcept {
  return {};
}

#endif

}  // namespace msgframe::detail
