// The frame decoder's buffer management: room for reads, and failing cleanly.
#include "msgframe/frame_decoder.hpp"

#include <algorithm>
#include <boost/assert.hpp>
#include <cstring>
#include <utility>

namespace msgframe {
namespace {

// Moving a partial frame to the front costs its size, and the room that frees lasts for about
// the buffer's capacity in reads. Partial frames of at most 1/32 of the capacity are moved
// (under ~3% of the bytes read, whatever the frame size); a larger one makes the buffer a ring,
// where nothing is moved at all, or, under ring_floor_bytes, grows it (a ring costs a memory
// file, two mappings and a few system calls: not worth it for a buffer a few reads would fill).
constexpr std::size_t move_share_divisor = 32;
constexpr std::size_t ring_floor_bytes = 16 * 1024;

}  // namespace

FrameDecoder::FrameDecoder(FrameOptions options) : options_(options) { validate(options_); }

FrameDecoder::FrameDecoder(FrameDecoder&& other) noexcept : options_(other.options_) {
  take(other);
}

FrameDecoder& FrameDecoder::operator=(FrameDecoder&& other) noexcept {
  if (this != &other) {
    options_ = other.options_;
    take(other);
  }
  return *this;
}

// Leaves `other` with no buffer, as release_if_empty() would.
void FrameDecoder::take(FrameDecoder& other) noexcept {
  heap_ = std::move(other.heap_);
  ring_ = std::move(other.ring_);
  buffer_ = std::exchange(other.buffer_, nullptr);
  capacity_ = std::exchange(other.capacity_, 0);
  read_position_ = std::exchange(other.read_position_, 0);
  write_position_ = std::exchange(other.write_position_, 0);
  prepared_bytes_ = std::exchange(other.prepared_bytes_, 0);
  last_frame_bytes_ = other.last_frame_bytes_;
  last_size_changed_ = other.last_size_changed_;
  error_ = std::exchange(other.error_, {});
}

std::span<std::byte> FrameDecoder::prepare(std::size_t bytes) {
  if (read_position_ == write_position_) {
    read_position_ = write_position_ = 0;
  } else if (read_position_ >= capacity_) {  // only in a ring: back from the mirror
    read_position_ -= capacity_;
    write_position_ -= capacity_;
  }
  // A ring's free bytes are contiguous from write_position_ on, through the mirror.
  const std::size_t room = ring_ ? capacity_ - pending_bytes() : capacity_ - write_position_;
  if (room < bytes) make_room(bytes);
  prepared_bytes_ = bytes;
  return {buffer_ + write_position_, bytes};
}

void FrameDecoder::commit(std::size_t bytes) noexcept {
  BOOST_ASSERT_MSG(bytes <= prepared_bytes_, "commit() of more bytes than prepare() gave");
  bytes = std::min(bytes, prepared_bytes_);
  prepared_bytes_ = 0;
  if (error_) return;  // a failed decoder drops new bytes instead of buffering them
  write_position_ += bytes;
}

void FrameDecoder::feed(std::span<const std::byte> bytes) {
  if (error_ || bytes.empty()) return;
  std::memcpy(prepare(bytes.size()).data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

void FrameDecoder::reset() noexcept {
  read_position_ = write_position_ = prepared_bytes_ = 0;
  error_.clear();
}

void FrameDecoder::release_if_empty(std::size_t keep) noexcept {
  if (read_position_ != write_position_ || capacity_ <= keep) return;
  heap_.reset();
  ring_ = {};
  buffer_ = nullptr;
  capacity_ = 0;
  read_position_ = write_position_ = prepared_bytes_ = 0;
}

// The growth limit keeps capacity within one frame plus one read: the pending bytes of a drained
// decoder are a partial frame, so `needed` never exceeds it unless next() was not called.
void FrameDecoder::make_room(std::size_t bytes) {
  const std::size_t pending = pending_bytes();
  const std::size_t needed = pending + bytes;
  const std::size_t growth_limit = options_.max_frame_bytes + max_length_prefix_bytes + bytes;
  const bool small_partial = pending <= capacity_ / move_share_divisor;
  const bool fits = needed <= capacity_;
  if (!ring_ && fits && (small_partial || capacity_ >= growth_limit)) {
    std::memmove(buffer_, buffer_ + read_position_, pending);
    read_position_ = 0;
    write_position_ = pending;
    return;
  }
  const std::size_t grown = std::max(needed, std::min(2 * capacity_, growth_limit));
  if (ring_ || (!small_partial && pending >= ring_floor_bytes)) {
    // Plain memory that would only need its partial frame moved becomes a ring of its size.
    const std::size_t ring_capacity = !ring_ && fits ? capacity_ : grown;
    if (move_into_ring(needed, ring_capacity, std::max(needed, growth_limit))) return;
  }
  move_into_heap(grown);  // also when the system refuses a ring
}

// A ring is whole pages: new_capacity rounded up within the growth limit, else rounded down.
bool FrameDecoder::move_into_ring(std::size_t needed, std::size_t new_capacity,
                                  std::size_t max_capacity) noexcept {
  auto ring = detail::MirroredBuffer::allocate(needed, new_capacity, max_capacity);
  if (!ring) return false;
  const std::size_t pending = pending_bytes();
  if (pending > 0) std::memcpy(ring.data(), buffer_ + read_position_, pending);
  ring_ = std::move(ring);
  heap_.reset();
  buffer_ = ring_.data();
  capacity_ = ring_.size();
  read_position_ = 0;
  write_position_ = pending;
  return true;
}

void FrameDecoder::move_into_heap(std::size_t capacity) {
  auto heap = std::make_unique_for_overwrite<std::byte[]>(capacity);
  const std::size_t pending = pending_bytes();
  if (pending > 0) std::memcpy(heap.get(), buffer_ + read_position_, pending);
  heap_ = std::move(heap);
  ring_ = {};
  buffer_ = heap_.get();
  capacity_ = capacity;
  read_position_ = 0;
  write_position_ = pending;
}

void FrameDecoder::fail(msgframe::error reason) noexcept {
  error_ = make_error_code(reason);
  read_position_ = write_position_ = 0;
}

}  // namespace msgframe
