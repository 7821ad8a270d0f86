// The double mapping behind detail::MirroredBuffer: one memory file, mapped twice side by side.
#include "msgframe/detail/mirrored_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

namespace msgframe::detail {
namespace {

std::size_t page_bytes() noexcept {
  static const auto bytes = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return bytes;
}

// Maps the file's first `size` bytes at `address`, replacing what was reserved there.
bool map_file_at(void* address, std::size_t size, int file) noexcept {
  return ::mmap(address, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file, 0) == address;
}

}  // namespace

MirroredBuffer::MirroredBuffer(MirroredBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MirroredBuffer& MirroredBuffer::operator=(MirroredBuffer&& other) noexcept {
  if (this != &other) {
    MirroredBuffer old(std::move(*this));
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MirroredBuffer::~MirroredBuffer() {
  if (data_ != nullptr) ::munmap(data_, 2 * size_);
}

MirroredBuffer MirroredBuffer::allocate(std::size_t min_bytes, std::size_t max_bytes) noexcept {
  const std::size_t page = page_bytes();
  if (min_bytes == 0 || max_bytes > SIZE_MAX / 4) return {};
  std::size_t size = (min_bytes + page - 1) / page * page;
  if (size > max_bytes) size = max_bytes / page * page;
  if (size < min_bytes) return {};

  const int file = ::memfd_create("msgframe-decoder", MFD_CLOEXEC);
  if (file < 0) return {};
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
  if (!mapped) return {};
  return {static_cast<std::byte*>(reserved), size};
}

}  // namespace msgframe::detail
