// A server session: the read loop over the frame decoder, request dispatch, batched writes.
#include "session.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <functional>

#include "write_at_once.hpp"

namespace msgframe {

namespace asio = boost::asio;

namespace {

// How long a session we close waits for its peer to close too (see close_after_peer).
constexpr std::chrono::seconds close_linger{2};
// How often a session with large buffers looks whether it can give them back.
constexpr std::chrono::seconds trim_interval{1};
// The least a reply's payload taken from the read buffer must be to be written from there.
constexpr std::size_t min_bytes_written_in_place = 16 * 1024;

}  // namespace

Session::Session(Server::Impl& server, asio::ip::tcp::socket socket, std::uint64_t id)
    : server_(server),
      socket_(std::move(socket)),
      tls_(server.tls_context ? std::make_unique<TlsStream>(socket_, *server.tls_context)
                              : nullptr),
      id_(id),
      decoder_(server.frame_options),
      frame_timer_(socket_.get_executor()),
      idle_timer_(socket_.get_executor()),
      trim_timer_(socket_.get_executor()) {
  boost::system::error_code ignored;
  const auto peer = socket_.remote_endpoint(ignored);
  context_.session_id = id_;
  context_.peer_address = peer.address();
  context_.peer_port = peer.port();
  context_.server = &server_.owner;
}

void Session::start() {
  const auto admission = server_.add_session(shared_from_this());
  if (admission == Server::Impl::Admission::stopping) {  // accepted while stopping: not served
    closed_ = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
    return;
  }
  if (!tls_) return serve(admission);
  // The handshake has the frame timeout to finish: a peer that connects and says nothing, or
  // speaks plaintext and waits, is not held forever.
  handshaking_ = true;
  frame_deadline_ = std::chrono::steady_clock::now() + server_.options.frame_timeout;
  arm_frame_timer();
  tls_->async_handshake(TlsStream::server, [self = shared_from_this(),
                                            admission](const boost::system::error_code& error) {
    self->on_handshake(error, admission);
  });
}

void Session::on_handshake(const boost::system::error_code& error,
                           Server::Impl::Admission admission) {
  handshaking_ = false;
  if (closed_) return;
  if (error) {
    ++server_.counters.tls_handshakes_failed;
    server_.log("refusing " + peer_name() + ": TLS handshake failed: " + error.message());
    return close();
  }
  serve(admission);
  flush();  // what was queued during the handshake (a stop()'s notice)
}

void Session::serve(Server::Impl::Admission admission) {
  if (!tls_) {
    // flush() writes at once when it can; never where the socket would block the thread.
    boost::system::error_code blocking;
    socket_.non_blocking(true, blocking);
    writes_at_once_ = !blocking;
  }
  if (admission == Server::Impl::Admission::admitted) {
    last_read_ = std::chrono::steady_clock::now();
    if (server_.options.idle_timeout.count() > 0) arm_idle_timer();
    return read();
  }
  // Full: say why, then close once it is written.
  server_.log("refusing " + peer_name() + ": " + std::to_string(server_.options.max_sessions) +
              " sessions are open");
  queue_error(0, v1::ERROR_CODE_OVERLOADED,
              "the server has as many sessions open as it allows; try again later");
  reading_stopped_ = true;
  flush();
}

// A session takes no read buffer until its first bytes arrive: thousands of idle connections
// cost their socket and this object, not a read's worth of memory each. It waits the same way
// while its buffer is empty but large, so that trim_buffers() may free it meanwhile. (Not with
// TLS: the handshake may have read the first request already, so the socket may never turn
// readable.)
void Session::read() {
  const auto capacity = decoder_.buffer_capacity();
  const bool buffer_unneeded =
      decoder_.pending_bytes() == 0 && (capacity == 0 || capacity > retained_buffer_bytes());
  if (tls_ || !buffer_unneeded) return read_into_buffer();
  waiting_readable_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& error) {
                       self->waiting_readable_ = false;
                       if (error) return self->on_read(error, 0);
                       self->read_into_buffer();
                     });
}

void Session::read_into_buffer() {
  const auto space = decoder_.prepare(server_.options.read_bytes);
  const auto buffer = asio::buffer(space.data(), space.size());
  auto handler = [self = shared_from_this()](const boost::system::error_code& error,
                                             std::size_t bytes) { self->on_read(error, bytes); };
  if (tls_) return tls_->async_read_some(buffer, std::move(handler));
  socket_.async_read_some(buffer, std::move(handler));
}

void Session::on_read(const boost::system::error_code& error, std::size_t bytes) {
  if (closed_) return;
  if (error) {
    // The peer closed or reset: answer what is in flight if it still listens, then close.
    peer_closed_ = true;
    reading_stopped_ = true;
    close_when_drained();
    return;
  }
  decoder_.commit(bytes);
  last_read_ = std::chrono::steady_clock::now();
  dispatching_ = true;
  bool frames_completed = false;
  while (const auto body = decoder_.next()) {
    handle_frame(*body);
    frames_completed = true;
  }
  dispatching_ = false;
  // Replies written from the read buffer must be out before a read reuses it.
  if (lends_read_buffer()) {
    flush();
    if (closed_) return;
  }
  if (trim_read_buffer_due_ && !lends_read_buffer()) {
    trim_read_buffer_due_ = false;
    decoder_.release_if_empty(retained_buffer_bytes());
  }
  trim_buffers_later();
  watch_partial_frame(frames_completed);
  if (decoder_.error()) {
    fail_stream(decoder_.error());
  } else if (!reading_stopped_) {
    read_unless_backed_up();
  }
  flush();
}

// A frame left partial by this read must be complete by its deadline: set when it began (the
// first read that left it partial; a read that completed frames begins a new one).
void Session::watch_partial_frame(bool frames_completed) {
  if (decoder_.pending_bytes() == 0 || decoder_.error()) {
    frame_begun_ = false;
    return;
  }
  if (frames_completed || !frame_begun_) {
    frame_deadline_ = std::chrono::steady_clock::now() + server_.options.frame_timeout;
  }
  frame_begun_ = true;
  if (!frame_timer_armed_) arm_frame_timer();
}

void Session::arm_frame_timer() {
  frame_timer_armed_ = true;
  frame_timer_.expires_at(frame_deadline_);
  frame_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (!error) self->on_frame_timer();
  });
}

void Session::on_frame_timer() {
  frame_timer_armed_ = false;
  if (closed_) return;
  const auto now = std::chrono::steady_clock::now();
  if (handshaking_) {
    if (now < frame_deadline_) return arm_frame_timer();
    ++server_.counters.tls_handshakes_failed;
    server_.log("refusing " + peer_name() + ": no TLS handshake within the frame timeout");
    return close();
  }
  if (reading_stopped_ || decoder_.pending_bytes() == 0) return;
  if (read_paused_) frame_deadline_ = now + server_.options.frame_timeout;  // our pause, not theirs
  if (now < frame_deadline_) return arm_frame_timer();
  ++server_.counters.frames_timed_out;
  server_.log("closing " + peer_name() + ": a frame took longer than the frame timeout");
  reading_stopped_ = true;
  close_when_drained();
}

// Idle sessions close: a session that has read nothing for idle_timeout and has nothing in
// flight. The timer looks at the time of the last read when it fires, so reads only store it.
void Session::arm_idle_timer() {
  idle_timer_.expires_at(last_read_ + server_.options.idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (!error) self->on_idle_timer();
  });
}

void Session::on_idle_timer() {
  if (closed_ || reading_stopped_) return;
  const bool busy = writing_ || !queued_.empty() || async_handlers_ > 0;
  if (busy) last_read_ = std::chrono::steady_clock::now();  // working for the peer is not idle
  if (std::chrono::steady_clock::now() < last_read_ + server_.options.idle_timeout) {
    return arm_idle_timer();
  }
  ++server_.counters.sessions_idle_closed;
  server_.log("closing " + peer_name() + ": idle for longer than the idle timeout");
  close();
}

// Backpressure: while the peer leaves its replies unread, or its coroutine handlers pile up, the
// session stops reading; TCP then holds the peer back, and the server's memory stays bounded.
// So do replies written from the read buffer that the socket did not take at once: a read
// would reuse their bytes (see lends_read_buffer()).
bool Session::backed_up() const noexcept {
  return queued_.size() + sending_.size() >= server_.options.max_write_queue_bytes ||
         async_handlers_ >= server_.options.max_requests_in_flight;
}

void Session::read_unless_backed_up() {
  if (!backed_up() && !lends_read_buffer()) return read();
  read_paused_ = true;
  ++server_.counters.reads_paused;
}

void Session::resume_reading_if_room() {
  if (!read_paused_ || reading_stopped_ || closed_ || backed_up() || lends_read_buffer()) return;
  read_paused_ = false;
  read();
}

void Session::handle_frame(std::span<const std::byte> body) {
  EnvelopeView envelope;
  if (const auto error = parse_envelope(body, envelope)) {
    queue_error(envelope.id, v1::ERROR_CODE_BAD_ENVELOPE,
                "the frame is not a valid msgframe.v1.Envelope with a kind of 1 to 4");
    return;
  }
  if (envelope.kind != v1::KIND_REQUEST) {
    ++server_.counters.frames_dropped;  // the server sends responses and events, not takes them
    return;
  }
  ++server_.counters.requests;
  if (draining_) {
    send_error(envelope.id, v1::ERROR_CODE_SHUTTING_DOWN,
               "the server is shutting down: retry on another server or once it is back");
    return;
  }
  context_.request_id = envelope.id;
  request_body_ = body;
  server_.router.dispatch(envelope.type, envelope.payload, context_, *this);
  request_body_ = {};
}

// The stream cannot be followed past a bad prefix: tell the peer, then close after the replies
// to every request before it.
void Session::fail_stream(const boost::system::error_code& error) {
  ++server_.counters.sessions_failed;
  server_.log("closing " + peer_name() + ": " + error.message());
  const bool too_large = error == msgframe::error::frame_too_large;
  queue_error(0, too_large ? v1::ERROR_CODE_FRAME_TOO_LARGE : v1::ERROR_CODE_BAD_ENVELOPE,
              too_large ? "frame too large: the length prefix exceeds the server's max frame"
                        : "malformed length prefix");
  reading_stopped_ = true;
  close_when_drained();
}

void Session::send_reply(std::uint64_t request_id, std::string_view type,
                         const google::protobuf::MessageLite& response) {
  if (request_id == 0 || closed_) return;  // one-way request: no reply
  queue({request_id, v1::KIND_RESPONSE, type, &response, nullptr});
  if (!dispatching_) flush_soon();
}

// A large response within the request being dispatched is written from the read buffer, by a
// gather write, instead of copied (not over TLS, whose stream wants one buffer). Small ones are
// copied: a gather write of many small pieces costs the kernel more than their copy does. So is
// any from a read buffer that is a ring: the kernel read 1 MiB payloads from the ring's shared
// mapping at an eighth of its speed from plain memory, slower than a copy out of it (see
// docs/PERFORMANCE.md, bulk).
void Session::send_serialized_reply(std::uint64_t request_id, std::string_view type,
                                    std::span<const std::byte> response) {
  if (request_id == 0 || closed_) return;
  const OutgoingEnvelope reply{request_id, v1::KIND_RESPONSE, type, nullptr, nullptr, response};
  const auto* request_begin = request_body_.data();
  const bool within_request =
      response.size() >= min_bytes_written_in_place &&
      std::less_equal<>()(request_begin, response.data()) &&
      std::less_equal<>()(response.data() + response.size(), request_begin + request_body_.size());
  if (within_request && !tls_ && !decoder_.buffer_is_ring()) return queue_from_read_buffer(reply);
  queue(reply);
  if (!dispatching_) flush_soon();
}

void Session::send_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message) {
  if (request_id == 0) {
    ++server_.counters.one_way_errors;
    return;
  }
  queue_error(request_id, code, message);
  if (!dispatching_) flush_soon();
}

void Session::queue_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message) {
  if (closed_) return;
  v1::Error error;
  error.set_code(code);
  error.set_message(std::string(message));
  ++server_.counters.errors_sent;
  queue({request_id, v1::KIND_ERROR, {}, nullptr, &error});
}

void Session::queue(const OutgoingEnvelope& envelope) {
  if (!append_envelope_frame(queued_, server_.encoder, envelope)) return;
  refuse_too_large(envelope);
}

void Session::queue_from_read_buffer(const OutgoingEnvelope& reply) {
  queued_splices_.reserve(queued_splices_.size() + 1);  // no head without its payload
  if (append_envelope_frame_head(queued_, server_.encoder, reply)) return refuse_too_large(reply);
  queued_splices_.push_back({queued_.size(), reply.serialized_payload});
}

void Session::refuse_too_large(const OutgoingEnvelope& envelope) {
  if (envelope.kind == v1::KIND_ERROR) {
    // Only with an absurdly small max frame: nothing smaller could be said.
    server_.log("an ERROR envelope for " + peer_name() + " exceeds the max frame: not sent");
    return;
  }
  queue_error(envelope.id, v1::ERROR_CODE_FRAME_TOO_LARGE,
              "the reply exceeds the max frame of " +
                  std::to_string(server_.frame_options.max_frame_bytes) + " bytes");
}

void Session::push_frame(std::shared_ptr<const std::vector<std::byte>> frame) {
  {
    const std::lock_guard lock(pushed_mutex_);
    pushed_.push_back(std::move(frame));
    if (pushed_write_posted_) return;
    pushed_write_posted_ = true;
  }
  asio::post(executor(), [self = shared_from_this()] { self->write_pushed(); });
}

void Session::write_pushed() {
  std::vector<std::shared_ptr<const std::vector<std::byte>>> frames;
  {
    const std::lock_guard lock(pushed_mutex_);
    frames.swap(pushed_);
    pushed_write_posted_ = false;
  }
  if (closed_ || reading_stopped_) return;
  for (const auto& frame : frames) {
    // Replies are bounded by backpressure; events are not the peer's doing, so a peer that
    // leaves twice the write-queue mark unread is too slow to keep: it is closed.
    if (queued_.size() + sending_.size() + frame->size() >
        2 * server_.options.max_write_queue_bytes) {
      ++server_.counters.sessions_too_slow;
      server_.log("closing " + peer_name() + ": it does not read the events pushed to it");
      return close();
    }
    queued_.insert(queued_.end(), frame->begin(), frame->end());
  }
  flush();
}

// One write for every frame queued: replies to a whole read go out in a single syscall.
// Written at once as far as the socket takes it (no completion to wait for); the rest, or
// everything over TLS, by an asynchronous write.
void Session::flush() {
  if (writing_ || queued_.empty() || closed_ || handshaking_) return;
  std::swap(queued_, sending_);
  std::swap(queued_splices_, sending_splices_);
  if (!sending_splices_.empty()) return write_gathered();
  std::size_t written = 0;
  if (writes_at_once_) {
    boost::system::error_code error;
    written = socket_.write_some(asio::buffer(sending_), error);
    if (error && error != asio::error::would_block) return on_written(error);
    if (written == sending_.size()) return on_written({});
  }
  writing_ = true;
  auto handler = [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
    self->on_written(error);
  };
  if (tls_) return asio::async_write(*tls_, asio::buffer(sending_), std::move(handler));
  asio::async_write(socket_, asio::buffer(sending_) + written, std::move(handler));
}

// Frames with payloads in the read buffer: one gather write of the frames and those payloads, at
// once as far as the socket takes it (never over TLS).
void Session::write_gathered() {
  gather_.clear();
  std::size_t framed = 0;  // bytes of sending_ already in gather_
  for (const auto& splice : sending_splices_) {
    gather_.emplace_back(sending_.data() + framed, splice.offset - framed);
    gather_.emplace_back(splice.bytes.data(), splice.bytes.size());
    framed = splice.offset;
  }
  if (framed < sending_.size()) {
    gather_.emplace_back(sending_.data() + framed, sending_.size() - framed);
  }
  if (writes_at_once_) {
    boost::system::error_code error;
    if (write_at_once(socket_, gather_, error)) return on_written({});
    if (error) return on_written(error);
  }
  writing_ = true;
  asio::async_write(socket_, gather_,
                    [self = shared_from_this()](const boost::system::error_code& error,
                                                std::size_t) { self->on_written(error); });
}

// Replies from outside a read's frame loop (coroutine handlers') go out together: in one flush
// posted behind the work already waiting for the session's thread.
void Session::flush_soon() {
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Session::on_written(const boost::system::error_code& error) {
  ++server_.counters.writes;
  writing_ = false;
  sending_.clear();
  sending_splices_.clear();
  trim_buffers_later();
  if (error) {
    queued_.clear();
    queued_splices_.clear();
    close();
    return;
  }
  flush();
  close_when_drained();
  resume_reading_if_room();
}

// What a session keeps of its read and write buffers once traffic is quiet: enough that steady
// traffic reuses them without allocating, little enough that thousands of sessions that once
// carried a large message do not each hold its size.
std::size_t Session::retained_buffer_bytes() const noexcept {
  return std::max<std::size_t>(4 * server_.options.read_bytes, 256 * 1024);
}

// Buffers larger than that are looked at every trim_interval, and freed when empty then: not
// at once after each message, which would make a stream of large messages allocate (and fault
// in) a fresh buffer for every one.
void Session::trim_buffers_later() {
  const auto keep = retained_buffer_bytes();
  if (trim_timer_armed_ || closed_) return;
  if (decoder_.buffer_capacity() <= keep && queued_.capacity() <= keep &&
      sending_.capacity() <= keep) {
    return;
  }
  trim_timer_armed_ = true;
  trim_timer_.expires_after(trim_interval);
  trim_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    self->trim_timer_armed_ = false;
    if (!error) self->trim_buffers();
  });
}

void Session::trim_buffers() {
  if (closed_) return;
  const auto keep = retained_buffer_bytes();
  // A read in progress writes into the read buffer: then the end of that read frees it.
  if (waiting_readable_) {
    decoder_.release_if_empty(keep);
  } else {
    trim_read_buffer_due_ = true;
  }
  // `= {}` would keep the capacity: it assigns an empty initializer list.
  if (queued_.empty() && queued_.capacity() > keep) queued_ = std::vector<std::byte>();
  if (!writing_ && sending_.capacity() > keep) sending_ = std::vector<std::byte>();
  trim_buffers_later();  // still large because still busy: look again later
}

void Session::on_async_handler(bool started) {
  server_.async_handler(started);
  if (started) {
    ++async_handlers_;
    return;
  }
  --async_handlers_;
  close_when_drained();
  resume_reading_if_room();
}

void Session::drain(const std::shared_ptr<const std::vector<std::byte>>& notice) {
  if (closed_ || draining_) return;
  draining_ = true;
  queued_.insert(queued_.end(), notice->begin(), notice->end());
  flush();
}

void Session::force_close() { close(); }

void Session::close_when_drained() {
  if (!reading_stopped_ || closed_) return;
  if (writing_ || !queued_.empty() || async_handlers_ > 0) return;
  if (peer_closed_) return close();
  close_after_peer();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  frame_timer_.cancel();
  idle_timer_.cancel();
  trim_timer_.cancel();
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  server_.remove_session(id_);
}

// We close first (a bad prefix, a frame timeout, a refusal) while the peer may still be
// sending. Closing a socket with unread input makes the kernel send a reset, and a reset makes
// the peer's kernel drop the replies the peer has not read yet. So: end our side (FIN after the
// last reply), discard what the peer still sends until it closes too, and close then, or after
// close_linger at the latest.
void Session::close_after_peer() {
  closed_ = true;
  frame_timer_.cancel();
  idle_timer_.cancel();
  trim_timer_.cancel();
  server_.remove_session(id_);
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  discarded_ = std::make_unique<std::array<std::byte, 4096>>();
  frame_timer_.expires_after(close_linger);
  frame_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (error) return;
    boost::system::error_code ignored;
    self->socket_.close(ignored);  // ends discard_input()
  });
  discard_input();
}

void Session::discard_input() {
  socket_.async_read_some(
      asio::buffer(*discarded_),
      [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
        if (!error) return self->discard_input();
        self->frame_timer_.cancel();
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      });
}

std::string Session::peer_name() const {
  return context_.peer_address.to_string() + ":" + std::to_string(context_.peer_port);
}

}  // namespace msgframe
