// One TCP connection of the server: reads frames, dispatches requests, writes replies in batches.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "msgframe/envelope.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/router.hpp"
#include "server_impl.hpp"
#include "tls_context.hpp"

namespace msgframe {

// All of a session's state is touched only on its io_context's single thread, except the events
// pushed from other threads (pushed_, under pushed_mutex_).
class Session final : public ReplyChannel, public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& server, boost::asio::ip::tcp::socket socket, std::uint64_t id);

  std::uint64_t id() const noexcept { return id_; }
  void start();

  // Any thread: queues an already framed event (shared by every session of a broadcast). Events
  // pushed to one session are written in the order push_frame was called.
  void push_frame(std::shared_ptr<const std::vector<std::byte>> frame);
  // The server is stopping: send `notice` (a framed ShuttingDown event), answer requests read
  // from now on with SHUTTING_DOWN, and close once the peer has closed its side and every reply
  // is written (stop() closes what is left at its deadline).
  void drain(const std::shared_ptr<const std::vector<std::byte>>& notice);
  void force_close();

  void send_reply(std::uint64_t request_id, std::string_view type,
                  const google::protobuf::MessageLite& response) override;
  void send_serialized_reply(std::uint64_t request_id, std::string_view type,
                             std::span<const std::byte> response) override;
  void send_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message) override;
  boost::asio::any_io_executor executor() override { return socket_.get_executor(); }
  std::shared_ptr<ReplyChannel> keep_alive() override { return shared_from_this(); }
  void on_async_handler(bool started) override;

 private:
  void on_handshake(const boost::system::error_code& error, Server::Impl::Admission admission);
  void serve(Server::Impl::Admission admission);
  void read();
  void read_into_buffer();
  bool backed_up() const noexcept;
  std::size_t retained_buffer_bytes() const noexcept;
  void trim_buffers_later();
  void trim_buffers();
  void read_unless_backed_up();
  void resume_reading_if_room();
  void watch_partial_frame(bool frames_completed);
  void arm_frame_timer();
  void arm_idle_timer();
  void on_idle_timer();
  void on_frame_timer();
  void on_read(const boost::system::error_code& error, std::size_t bytes);
  void handle_frame(std::span<const std::byte> body);
  void fail_stream(const boost::system::error_code& error);
  void queue_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message);
  void queue(const OutgoingEnvelope& envelope);
  void queue_from_read_buffer(const OutgoingEnvelope& reply);
  void refuse_too_large(const OutgoingEnvelope& envelope);
  bool lends_read_buffer() const noexcept {
    return !queued_splices_.empty() || !sending_splices_.empty();
  }
  void write_gathered();
  void write_pushed();
  void flush();
  void flush_soon();
  void on_written(const boost::system::error_code& error);
  void close_when_drained();
  void close();
  void close_after_peer();
  void discard_input();
  std::string peer_name() const;

  Server::Impl& server_;
  boost::asio::ip::tcp::socket socket_;
  const std::unique_ptr<TlsStream> tls_;  // over socket_; null without TLS
  bool handshaking_ = false;              // no reads or writes of ours until the handshake ends
  const std::uint64_t id_;
  RequestContext context_;
  FrameDecoder decoder_;
  std::vector<std::byte> queued_;   // frames waiting for the next write
  std::vector<std::byte> sending_;  // frames of the write in progress
  // Reply payloads written from the read buffer instead of copied (see send_serialized_reply):
  // each goes after the first `offset` bytes of queued_ (sending_), and no read reuses the read
  // buffer until they are written.
  struct Splice {
    std::size_t offset;
    std::span<const std::byte> bytes;
  };
  std::vector<Splice> queued_splices_;
  std::vector<Splice> sending_splices_;
  std::vector<boost::asio::const_buffer> gather_;  // the write of sending_ with its splices
  std::span<const std::byte> request_body_;        // the frame being dispatched, if any
  std::size_t async_handlers_ = 0;
  bool writes_at_once_ = false;  // the socket is non-blocking: flush() writes without waiting
  bool writing_ = false;         // an asynchronous write holds sending_
  bool flush_posted_ = false;    // flush_soon() is on its way
  bool dispatching_ = false;     // inside a read's frame loop: flush once at its end
  bool reading_stopped_ = false;
  bool read_paused_ = false;
  bool draining_ = false;
  // Slow-loris guard: a frame begun must end by frame_deadline_ (and a TLS handshake too); the
  // timer, armed while one is unfinished, checks it (a read moves the deadline without touching
  // the timer, which re-arms itself for a later deadline).
  boost::asio::steady_timer frame_timer_;
  std::chrono::steady_clock::time_point frame_deadline_;
  bool frame_timer_armed_ = false;
  bool frame_begun_ = false;  // the deadline is that of the partial frame now in the decoder
  boost::asio::steady_timer idle_timer_;  // armed only when ServerOptions::idle_timeout is set
  boost::asio::steady_timer trim_timer_;  // armed only while a buffer is over the retained size
  bool trim_timer_armed_ = false;
  bool trim_read_buffer_due_ = false;  // the next read's end frees the read buffer if empty
  bool waiting_readable_ = false;      // no read holds the read buffer
  std::chrono::steady_clock::time_point
      last_read_;  // by backpressure; resumed as replies are written
  bool closed_ = false;
  bool peer_closed_ = false;                                // its read side: EOF or an error
  std::unique_ptr<std::array<std::byte, 4096>> discarded_;  // while closing after the peer

  // Posting each event on its own could reorder them: a post from one of the server's I/O threads
  // waits in that thread's private queue while a post from another thread goes straight in.
  std::mutex pushed_mutex_;
  std::vector<std::shared_ptr<const std::vector<std::byte>>> pushed_;
  bool pushed_write_posted_ = false;
};

}  // namespace msgframe
