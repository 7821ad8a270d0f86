// Test support: a plain POSIX TCP connection to a server on 127.0.0.1, for tests that must
// misbehave as no client library would (reset with requests in flight, stop reading, send
// garbage). Nothing here asserts: it reports errno values, so it may run on any thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace msgframe::test {

// What read_to_end saw.
struct ReadToEnd {
  std::string bytes;
  bool closed = false;     // the peer closed (FIN) or reset (RST)
  bool was_reset = false;  // ... with RST
  int error = 0;           // another errno that ended the read
};

class RawSocket {
 public:
  // Connects (blocking) to 127.0.0.1:port. A send that cannot go on for 10 s fails with EAGAIN
  // instead of blocking forever. `receive_buffer_bytes` (0: the system's autotuned default)
  // fixes SO_RCVBUF before the connection is made, so its window is scaled to it.
  explicit RawSocket(std::uint16_t port, int receive_buffer_bytes = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      connect_error_ = errno;
      return;
    }
    if (receive_buffer_bytes > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      connect_error_ = errno;
      close();
      return;
    }
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    const timeval send_timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  }

  ~RawSocket() { close(); }
  RawSocket(RawSocket&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), connect_error_(other.connect_error_) {}
  RawSocket& operator=(RawSocket&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      connect_error_ = other.connect_error_;
    }
    return *this;
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool is_open() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  // The errno of a failed connect; 0 when connected.
  int connect_error() const noexcept { return connect_error_; }

  // Sends every byte (blocking): 0, or the errno that stopped it (EPIPE or ECONNRESET once the
  // server has closed, EAGAIN past the send timeout).
  int send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return 0;
  }

  // Sends what the socket takes now without waiting: the byte count (0 when it takes nothing),
  // or -1 with `error` set.
  long send_now(std::string_view bytes, int& error) {
    for (;;) {
      const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent >= 0) return sent;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      error = errno;
      return -1;
    }
  }

  // Reads what is there now without waiting, up to `size` bytes: the byte count, 0 when
  // nothing is there, -1 with `error` set (0 for a FIN) when the peer has closed.
  long receive_now(char* buffer, std::size_t size, int& error) {
    for (;;) {
      const auto received = ::recv(fd_, buffer, size, MSG_DONTWAIT);
      if (received > 0) return received;
      if (received == 0) {
        error = 0;
        return -1;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      error = errno;
      return -1;
    }
  }

  // Reads until the peer closes, `limit` passes or `max_bytes` have come.
  ReadToEnd read_to_end(std::chrono::milliseconds limit, std::size_t max_bytes = 1 << 20) {
    ReadToEnd result;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    char chunk[16 * 1024];
    while (result.bytes.size() < max_bytes) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd readable{fd_, POLLIN, 0};
      const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;
      int error = 0;
      const auto received = receive_now(chunk, sizeof chunk, error);
      if (received < 0) {
        result.closed = error == 0 || error == ECONNRESET;
        result.was_reset = error == ECONNRESET;
        if (!result.closed) result.error = error;
        break;
      }
      result.bytes.append(chunk, static_cast<std::size_t>(received));
    }
    return result;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Closes with RST rather than FIN: the peer's next read or write fails with ECONNRESET.
  void reset() {
    if (fd_ < 0) return;
    const linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    close();
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int connect_error_ = 0;
};

}  // namespace msgframe::test
