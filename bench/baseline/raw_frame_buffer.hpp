// The `raw` system's shared pieces (not msgframe's): the 4-byte big-endian prefix and a
// connection's read buffer, used by both the raw server and the raw load client.
#pragma once

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstring>
#include <deque>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace bench::raw {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::size_t prefix_bytes = 4;
constexpr std::size_t max_body_bytes = std::size_t{4} * 1024 * 1024;
constexpr std::size_t read_bytes = 64 * 1024;
constexpr std::size_t max_datagram_bytes = 65507;  // the most a UDP/IPv4 datagram carries
constexpr std::size_t max_connecting = 256;  // connects in progress at once: spares the backlog
constexpr auto connect_timeout = std::chrono::seconds(30);
constexpr auto reply_grace = std::chrono::seconds(5);  // for the replies still due at the deadline
constexpr auto resend_after = std::chrono::milliseconds(200);
constexpr int max_resends = 5;  // loopback loses nothing: more means the echo is broken

inline std::uint32_t read_prefix(const char* data) noexcept {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  return std::uint32_t{bytes[0]} << 24 | std::uint32_t{bytes[1]} << 16 |
         std::uint32_t{bytes[2]} << 8 | std::uint32_t{bytes[3]};
}

inline void write_prefix(char* out, std::uint32_t length) noexcept {
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
}

// A connection's read buffer: reads land after the bytes held, whole frames are taken from the
// front, and the partial frame left over moves to the front only when the room behind it runs
// short. It takes no memory until the first read, so idle connections cost none.
class FrameBuffer {
 public:
  FrameBuffer(std::size_t initial_bytes, std::size_t max_frame_bytes)
      : capacity_(initial_bytes), max_frame_bytes_(max_frame_bytes) {}

  // Makes room for the frame in progress; false when its header announces more than
  // max_frame_bytes. Invalidates every span taken before.
  bool prepare_read() {
    if (!storage_) storage_ = std::make_unique_for_overwrite<char[]>(capacity_);
    const std::size_t held = end_ - begin_;
    if (held == 0) {
      begin_ = end_ = 0;
      return true;
    }
    const std::size_t frame_bytes =
        held < prefix_bytes ? prefix_bytes : prefix_bytes + read_prefix(storage_.get() + begin_);
    if (frame_bytes > max_frame_bytes_) return false;
    const std::size_t missing = frame_bytes > held ? frame_bytes - held : 0;
    if (frame_bytes > capacity_) {
      auto bigger = std::make_unique_for_overwrite<char[]>(frame_bytes);
      std::memcpy(bigger.get(), storage_.get() + begin_, held);
      storage_ = std::move(bigger);
      capacity_ = frame_bytes;
    } else if (capacity_ - end_ < std::max(missing, capacity_ / 2)) {
      std::memmove(storage_.get(), storage_.get() + begin_, held);
    } else {
      return true;
    }
    begin_ = 0;
    end_ = held;
    return true;
  }

  // Where the next read goes: valid until the next prepare_read().
  asio::mutable_buffer free_space() noexcept {
    return asio::buffer(storage_.get() + end_, capacity_ - end_);
  }
  void commit(std::size_t bytes) noexcept { end_ += bytes; }

  // The body of the next whole frame, which leaves the buffer (the bytes stay valid until the
  // next prepare_read()); nothing when the frame is incomplete.
  std::optional<std::span<const char>> take_frame() noexcept {
    const std::size_t held = end_ - begin_;
    if (held < prefix_bytes) return std::nullopt;
    const std::size_t body_bytes = read_prefix(storage_.get() + begin_);
    if (prefix_bytes + body_bytes > max_frame_bytes_ || held - prefix_bytes < body_bytes) {
      return std::nullopt;
    }
    const std::span<const char> body(storage_.get() + begin_ + prefix_bytes, body_bytes);
    begin_ += prefix_bytes + body_bytes;
    return body;
  }

  // Every whole frame held, prefixes included, as the one byte range they occupy; valid until
  // the next prepare_read().
  std::span<const char> take_whole_frames() noexcept {
    const std::size_t first = begin_;
    while (take_frame()) {
    }
    return {storage_.get() + first, begin_ - first};
  }

 private:
  std::unique_ptr<char[]> storage_;
  std::size_t capacity_;
  std::size_t max_frame_bytes_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace bench::raw
