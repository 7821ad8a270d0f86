// Decoding side of the framing codec: turns a byte stream, split anywhere, into frame bodies.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>

#include "msgframe/detail/length_prefix.hpp"
#include "msgframe/detail/mirrored_buffer.hpp"
#include "msgframe/detail/opaque.hpp"
#include "msgframe/error.hpp"
#include "msgframe/frame_options.hpp"

namespace msgframe {

// A sans-I/O frame decoder. A transport reads straight into it and takes bodies out:
//
//     auto space = decoder.prepare(64 * 1024);
//     std::size_t n = socket.read_some(buffer(space));
//     decoder.commit(n);
//     while (auto body = decoder.next()) handle(*body);
//     if (decoder.error()) close();
//
// Bodies are views into the decoder's buffer: a whole frame is never copied. A small partial frame
// is moved to the buffer's front when a later prepare() needs the room; once partial frames are
// too large to move cheaply, the buffer becomes a ring mapped twice in a row
// (detail::MirroredBuffer), where every frame is contiguous and no byte moves again. Memory grows
// with bytes that actually arrived, never with a length a prefix announced, and stays within
// max_frame_bytes + max_length_prefix_bytes + the largest prepare() when each commit() is
// followed by next() until it yields nothing. A ring is not inherited by a forked child: a child
// must not use a decoder (nor a Client or Server) it inherited.
//
// Errors (error::frame_too_large, error::bad_length_prefix) are found from the prefix alone and
// reported after every frame that preceded the bad prefix. The decoder then stays failed, drops
// what it buffered and ignores new bytes, until reset().
class FrameDecoder {
 public:
  // Throws std::invalid_argument when the options are invalid (see validate()).
  explicit FrameDecoder(FrameOptions options = {});

  FrameDecoder(FrameDecoder&& other) noexcept;
  FrameDecoder& operator=(FrameDecoder&& other) noexcept;

  // A writable region of exactly `bytes` bytes for the next read, valid until the next
  // prepare(), feed() or reset(). Making room here invalidates earlier bodies.
  std::span<std::byte> prepare(std::size_t bytes);

  // Makes the first `bytes` bytes written to the last prepare() region part of the stream.
  void commit(std::size_t bytes) noexcept;

  // Copies `bytes` into the stream: for callers that hold the bytes elsewhere.
  void feed(std::span<const std::byte> bytes);

  // The next complete body, or nothing when more bytes are needed or the decoder failed
  // (see error()). The view is valid until the next prepare(), feed() or reset().
  [[nodiscard]] std::optional<std::span<const std::byte>> next() noexcept;

  // Why the decoder failed, or a default error_code while it has not.
  boost::system::error_code error() const noexcept { return error_; }

  // Bytes buffered that do not yet make a complete frame (0 once failed).
  std::size_t pending_bytes() const noexcept { return write_position_ - read_position_; }

  // The bytes the buffer holds room for, used or not.
  std::size_t buffer_capacity() const noexcept { return capacity_; }
  // Whether the buffer is a ring mapped twice (detail::MirroredBuffer) rather than plain memory.
  bool buffer_is_ring() const noexcept { return static_cast<bool>(ring_); }

  // Forgets buffered bytes and any error; keeps the buffer's memory for reuse.
  void reset() noexcept;

  // Frees the buffer when it holds no bytes and is larger than `keep`: a connection that had a
  // large frame once need not hold that much memory while it waits for small ones. The next
  // prepare() allocates again.
  void release_if_empty(std::size_t keep) noexcept;

  const FrameOptions& options() const noexcept { return options_; }

 private:
  void make_room(std::size_t bytes);
  bool move_into_ring(std::size_t needed, std::size_t new_capacity,
                      std::size_t max_capacity) noexcept;
  void move_into_heap(std::size_t capacity);
  void take(FrameDecoder& other) noexcept;
  void fail(msgframe::error reason) noexcept;

  // What next() reads comes first, together (moving the owners of the memory ahead of it cost
  // 16-byte frames a third of their speed in BM_Decode).
  FrameOptions options_;
  std::byte* buffer_ = nullptr;  // heap_'s or ring_'s memory, whichever is in use
  std::size_t capacity_ = 0;
  // In a ring, both positions may pass capacity_ (into the mirror) until the next prepare().
  std::size_t read_position_ = 0;      // start of the first byte not yet yielded
  std::size_t write_position_ = 0;     // end of the committed bytes
  std::size_t prepared_bytes_ = 0;     // size of the last prepare() region
  std::size_t last_frame_bytes_ = 0;   // prefix and body of the last frame yielded
  std::size_t last_size_changed_ = 1;  // nonzero when it differed from the one before
  boost::system::error_code error_;
  std::unique_ptr<std::byte[]> heap_;  // the buffer while partial frames are small
  detail::MirroredBuffer ring_;        // the buffer once they are not (heap_ is then empty)
};

// Inline: this is the per-frame hot path of every transport.
inline std::optional<std::span<const std::byte>> FrameDecoder::next() noexcept {
  const std::byte* const front = buffer_ + read_position_;
  const std::size_t available = write_position_ - read_position_;
  const auto prefix = detail::read_length_prefix(options_.length_prefix, front, available,
                                                 options_.max_frame_bytes);
  if (prefix.status == detail::PrefixStatus::complete) [[likely]] {
    if (available - prefix.prefix_bytes < prefix.body_bytes) return std::nullopt;
    const std::size_t frame_bytes = prefix.prefix_bytes + prefix.body_bytes;
    // Streams often repeat a frame size. Once a size has repeated, advancing by it while it still
    // matches lets the CPU run ahead to the next prefix before this one's load completes (a
    // predicted branch instead of a data dependency); sizes that keep changing take the other,
    // equally well predicted, branch. The test is made opaque so that the compiler cannot prove
    // the sizes equal and advance by the loaded one after all.
    std::size_t mismatch = (frame_bytes ^ last_frame_bytes_) | last_size_changed_;
    detail::opaque(mismatch);
    if (mismatch == 0) [[likely]] {
      read_position_ += last_frame_bytes_;
    } else {
      read_position_ += frame_bytes;
      last_size_changed_ = frame_bytes ^ last_frame_bytes_;
      last_frame_bytes_ = frame_bytes;
    }
    return std::span<const std::byte>(front + prefix.prefix_bytes, prefix.body_bytes);
  }
  if (prefix.status == detail::PrefixStatus::too_large) fail(msgframe::error::frame_too_large);
  if (prefix.status == detail::PrefixStatus::malformed) fail(msgframe::error::bad_length_prefix);
  return std::nullopt;
}

}  // namespace msgframe
