// The frame decoder's buffer management: room for reads, and failing cleanly.
#include "msgframe/frame_decoder.hpp"

#include <algorithm>
#include <boost/assert.hpp>
#include <cstring>

namespace msgframe {
namespace {

// Moving a partial frame to the front costs its size, and the room that frees lasts for about
// the buffer's capacity in reads. Moving only partial frames of at most 1/32 of the capacity (and
// growing instead, within the bound) keeps moved bytes under ~3% of the bytes read, whatever the
// frame size; small frames never make the buffer grow past about two reads.
constexpr std::size_t move_share_divisor = 32;

}  // namespace

FrameDecoder::FrameDecoder(FrameOptions options) : options_(options) { validate(options_); }

std::span<std::byte> FrameDecoder::prepare(std::size_t bytes) {
  if (read_position_ == write_position_) read_position_ = write_position_ = 0;
  if (capacity_ - write_position_ < bytes) make_room(bytes);
  prepared_bytes_ = bytes;
  return {storage_.get() + write_position_, bytes};
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
  storage_.reset();
  capacity_ = 0;
  read_position_ = write_position_ = prepared_bytes_ = 0;
}

// The growth limit keeps capacity within one frame plus one read: the pending bytes of a drained
// decoder are a partial frame, so `needed` never exceeds it unless next() was not called.
void FrameDecoder::make_room(std::size_t bytes) {
  const std::size_t pending = write_position_ - read_position_;
  const std::size_t needed = pending + bytes;
  const std::size_t growth_limit = options_.max_frame_bytes + max_length_prefix_bytes + bytes;
  const bool worth_moving = pending <= capacity_ / move_share_divisor || capacity_ >= growth_limit;
  if (needed <= capacity_ && worth_moving) {
    std::memmove(storage_.get(), storage_.get() + read_position_, pending);
  } else {
    const std::size_t new_capacity = std::max(needed, std::min(2 * capacity_, growth_limit));
    auto new_storage = std::make_unique_for_overwrite<std::byte[]>(new_capacity);
    if (pending > 0) std::memcpy(new_storage.get(), storage_.get() + read_position_, pending);
    storage_ = std::move(new_storage);
    capacity_ = new_capacity;
  }
  read_position_ = 0;
  write_position_ = pending;
}

void FrameDecoder::fail(msgframe::error reason) noexcept {
  error_ = make_error_code(reason);
  read_position_ = write_position_ = 0;
}

}  // namespace msgframe
