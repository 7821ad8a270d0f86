// The client's connections: TCP with batched gather writes and a read loop, UDP with resends,
// replies matched to calls by id, deadlines from one timer, and the fallback from TCP to UDP.
#include "msgframe/detail/client_core.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>

#include "envelope_frame.hpp"
#include "msgframe/v1/lifecycle.pb.h"
#include "tls_context.hpp"
#include "user_code.hpp"
#include "write_at_once.hpp"

namespace msgframe::detail {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

// The protocol's prefix is 4 bytes: a frame less its prefix is the datagram.
constexpr std::size_t frame_prefix_bytes = 4;

// How often a connection with large buffers looks whether it can give them back: not after
// every message, which would make a stream of large replies allocate a buffer for each.
constexpr std::chrono::seconds trim_interval{1};

// Frame buffers worth keeping in the locked pool, which callers on any thread use: large ones,
// left to malloc, may be given back to the system after each call and faulted in again for the
// next. Small ones go to the strand's own pool (below).
constexpr std::size_t min_pooled_frame_bytes = 16 * 1024;
constexpr std::size_t max_pooled_frames = 16;

// Frames of small buffers are copied together, up to max_coalesced_bytes a piece, for the write:
// a gather write of many small pieces costs the kernel more per byte than the copy costs us.
// (A piece so filled stays under min_pooled_frame_bytes, out of the large pool.) Their own
// buffers go back to the strand's small pool, which take_frame_buffer() hands out on the
// strand, so that calls started there (from other calls' completions) allocate nothing.
constexpr std::size_t max_coalesced_bytes = 8 * 1024;
// The room coalesce_call() makes ahead in that buffer at a time.
constexpr std::size_t coalesced_room_bytes = 1024;
constexpr std::size_t max_small_buffers = 4;
constexpr std::size_t max_small_pool_bytes = 16 * 1024;

// Deadlines of answered calls the queue may hold beyond the calls in flight (see complete()).
constexpr std::size_t deadline_slack = 8;

}  // namespace

struct ClientCore::Tls {
  asio::ssl::context context;
  std::string server_name;  // from the options, or else the host given to connect()
  // This connection's stream. The completions of its reads and writes hold it too: after a lost
  // connection they may still be queued when the next connection makes a new one.
  std::shared_ptr<TlsStream> stream;
  // A write's frames in one piece (few TLS records). Shared with the write's completion, which
  // may still use it after a lost connection, while the next connection writes from another.
  std::shared_ptr<std::vector<std::byte>> write_buffer;
};

ClientCore::ClientCore(const asio::any_io_executor& executor, const ClientOptions& options,
                       bool one_thread)
    : strand_(executor, one_thread),
      socket_(strand_.executor()),
      decoder_(protocol_framing(options.max_frame_bytes)),
      encoder_(protocol_framing(options.max_frame_bytes)),
      max_pending_calls_(options.max_pending_calls),
      read_bytes_(options.read_bytes),
      retained_buffer_bytes_(std::max<std::size_t>(4 * options.read_bytes, 256 * 1024)),
      wait_for_room_(options.wait_for_room),
      tls_(options.tls
               ? std::make_unique<Tls>(Tls{
                     make_client_tls_context(*options.tls), options.tls->server_name, nullptr, {}})
               : nullptr),
      options_(options),
      udp_socket_(strand_.executor()),
      resolver_(strand_.executor()),
      deadline_timer_(strand_.executor()),
      connect_timer_(strand_.executor()),
      reconnect_timer_(strand_.executor()),
      trim_timer_(strand_.executor()),
      backoff_(options.reconnect_backoff_min) {}

ClientCore::~ClientCore() = default;

ClientStats ClientCore::stats() const noexcept {
  return {counters_.calls_over_tcp,   counters_.calls_over_udp, counters_.udp_resends,
          counters_.fallbacks_to_udp, counters_.tcp_reconnects, counters_.writes_deferred};
}

// ---- Connecting -------------------------------------------------------------------------------

void ClientCore::connect(std::string host, std::uint16_t port, ConnectHandler done) {
  if (is_connected()) return done({});
  closed_by_user_ = false;
  // This connect replaces the background reconnects (TCP with reconnect on, or TLS in automatic
  // mode): they would otherwise close the socket it is connecting.
  ++open_generation_;
  reconnect_timer_.cancel();
  if (tls_ && options_.tls->server_name.empty()) tls_->server_name = host;
  const auto generation = open_generation_;
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait(
      [self = shared_from_this(), generation](const boost::system::error_code& error) {
        // Cancelled (the connect finished first), or from before a close(): a later connect's
        // resolver and socket are not this timer's to cancel.
        if (error || generation != self->open_generation_) return;
        self->resolver_.cancel();
        // Closed, not just cancelled: a TLS handshake step queued at this moment would
        // otherwise go on to its next read with nothing left to stop it.
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      });
  // An address needs no lookup, nor the resolver's thread, which would make every socket call
  // of a single-threaded program count references to the socket's file.
  boost::system::error_code not_an_address;
  const auto address = asio::ip::make_address(host, not_an_address);
  if (!not_an_address) {
    server_endpoints_.assign(1, tcp::endpoint(address, port));
    return connect_to_endpoints(std::move(done));
  }
  resolver_.async_resolve(
      host, std::to_string(port),
      [self = shared_from_this(), generation, done = std::move(done)](
          boost::system::error_code error, const tcp::resolver::results_type& results) mutable {
        if (generation != self->open_generation_) return done(asio::error::operation_aborted);
        if (error) {
          self->connect_timer_.cancel();
          return done(error == asio::error::operation_aborted ? msgframe::error::timeout : error);
        }
        self->server_endpoints_.clear();
        for (const auto& result : results) self->server_endpoints_.push_back(result.endpoint());
        self->connect_to_endpoints(std::move(done));
      });
}

void ClientCore::connect_to_endpoints(ConnectHandler done) {
  const auto& first = server_endpoints_.front();
  if (options_.transport != Transport::tcp && !tls_) {
    if (const auto udp_error = open_udp({first.address(), first.port()})) {
      connect_timer_.cancel();
      return done(udp_error);
    }
  }
  if (options_.transport == Transport::udp) {
    connect_timer_.cancel();
    set_transport(Transport::udp);
    return done({});
  }
  connect_tcp(std::move(done));
}

void ClientCore::connect_tcp(ConnectHandler done) {
  boost::system::error_code ignored;
  socket_.close(ignored);
  asio::async_connect(
      socket_, server_endpoints_,
      [self = shared_from_this(), generation = open_generation_, done = std::move(done)](
          boost::system::error_code error, const tcp::endpoint&) mutable {
        // Closed while connecting: close() closed the socket, which a later connect may be
        // using by now, and owns the timer too. Touch neither.
        if (generation != self->open_generation_) return done(asio::error::operation_aborted);
        if (error) return self->on_connect_failed(error, std::move(done));
        self->secure([self, generation, done](boost::system::error_code error) mutable {
          if (generation != self->open_generation_) return done(asio::error::operation_aborted);
          if (error) return self->on_connect_failed(error, std::move(done));
          self->connect_timer_.cancel();
          self->on_tcp_connected();
          done({});
        });
      });
}

void ClientCore::on_connect_failed(boost::system::error_code error, ConnectHandler done) {
  const bool timed_out = connect_timer_.expiry() <= Clock::now();
  connect_timer_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (timed_out) error = msgframe::error::timeout;
  if (options_.transport == Transport::automatic && !tls_) {
    fall_back_to_udp();
    return done({});  // connected, over UDP for now
  }
  done(error);
}

// The server's certificate must chain to a trusted CA and be issued for the name we asked for
// (an IP address is checked against the certificate's IP addresses).
void ClientCore::secure(ConnectHandler done) {
  if (!tls_) return done({});
  tls_->stream = std::make_shared<TlsStream>(socket_, tls_->context);
  auto& stream = *tls_->stream;
  boost::system::error_code not_an_address;
  asio::ip::make_address(tls_->server_name, not_an_address);
  if (not_an_address) SSL_set_tlsext_host_name(stream.native_handle(), tls_->server_name.c_str());
  if (options_.tls->verify_server) {
    stream.set_verify_callback(asio::ssl::host_name_verification(tls_->server_name));
  }
  stream.async_handshake(TlsStream::client,
                         [stream = tls_->stream, done = std::move(done)](
                             const boost::system::error_code& error) { done(error); });
}

void ClientCore::on_tcp_connected() {
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  // flush() writes at once when it can; never where the socket would block the thread.
  boost::system::error_code blocking;
  if (!tls_) socket_.non_blocking(true, blocking);
  writes_at_once_ = !tls_ && !blocking;
  decoder_.reset();
  waiting_readable_ = false;
  close_reason_.clear();
  server_draining_ = false;
  ++connection_generation_;
  tcp_connected_ = true;
  backoff_ = options_.reconnect_backoff_min;
  set_transport(Transport::tcp);
  read();
  flush();
}

boost::system::error_code ClientCore::open_udp(const udp::endpoint& server) {
  boost::system::error_code error;
  udp_socket_.close(error);
  // A connected UDP socket takes datagrams from the server's address and port only.
  if (udp_socket_.open(server.protocol(), error) || udp_socket_.connect(server, error)) {
    return error;
  }
  // Sized here, once, not with the client: a TCP client never touches 64 KiB for UDP.
  if (datagram_.empty()) datagram_.resize(options_.max_datagram_bytes + 1);
  udp_ready_ = true;
  receive_datagram();
  return {};
}

void ClientCore::fall_back_to_udp() {
  counters_.fallbacks_to_udp.bump();
  set_transport(Transport::udp);
  schedule_reconnect();
}

// Exponential backoff with jitter, so that many clients of a server that restarts do not all
// come back at the same instant. A close() ends the attempts: after it, their timer and connect
// completions (aborted, or already queued) find a newer generation and do nothing, even when a
// connect() has followed and is using the socket.
void ClientCore::schedule_reconnect() {
  const auto jittered = std::chrono::milliseconds(
      std::uniform_int_distribution<std::int64_t>(backoff_.count() / 2, backoff_.count())(jitter_));
  backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
  reconnect_timer_.expires_after(jittered);
  reconnect_timer_.async_wait([self = shared_from_this(), generation = open_generation_](
                                  const boost::system::error_code& error) {
    if (error || generation != self->open_generation_ || self->tcp_connected_) return;
    boost::system::error_code ignored;
    self->socket_.close(ignored);
    // Each attempt has the connect timeout: a server whose kernel accepts but which never
    // answers the handshake does not stall the reconnects.
    self->connect_timer_.expires_after(self->options_.connect_timeout);
    self->connect_timer_.async_wait([self, generation](const boost::system::error_code& error) {
      if (error || generation != self->open_generation_ || self->tcp_connected_) return;
      boost::system::error_code ignored;
      self->socket_.close(ignored);
    });
    asio::async_connect(self->socket_, self->server_endpoints_,
                        [self, generation](boost::system::error_code error, const tcp::endpoint&) {
                          if (generation != self->open_generation_) return;
                          if (error) {
                            self->connect_timer_.cancel();
                            return self->schedule_reconnect();
                          }
                          self->secure([self, generation](boost::system::error_code error) {
                            if (generation != self->open_generation_) return;
                            self->connect_timer_.cancel();
                            if (error) return self->schedule_reconnect();
                            self->counters_.tcp_reconnects.bump();
                            self->on_tcp_connected();
                          });
                        });
  });
}

void ClientCore::set_transport(Transport transport) {
  if (transport == reported_transport_) return;
  reported_transport_ = transport;
  if (options_.on_transport_change) {
    run_user_code(strand_.executor(), [&] { options_.on_transport_change(transport); });
  }
}

// ---- Calls ------------------------------------------------------------------------------------

void ClientCore::submit_call(std::uint64_t id, std::vector<std::byte>&& frame,
                             const boost::system::error_code& encode_error,
                             std::chrono::milliseconds timeout, PendingCallPtr&& call) {
  enter([id, frame = std::move(frame), encode_error, timeout,
         call = std::move(call)](ClientCore& core) mutable {
    core.begin_call(id, std::move(frame), encode_error, timeout, std::move(call));
  });
}

// The call goes into the table and its deadline into the queue before its frame is queued, and
// out of the table again if queuing fails: no frame goes out without its call, and no call waits
// for a frame never sent. Counted once all of that is done.
template <class QueueFrame>
void ClientCore::send_tcp_call(std::uint64_t id, Clock::time_point deadline, PendingCallPtr&& call,
                               QueueFrame&& queue_frame) {
  auto& waiting = pending_.insert(id);
  try {
    track_deadline(deadline, id);
    queue_frame();
  } catch (...) {
    pending_.erase(id);  // its deadline, if queued, finds no call and is dropped
    throw;
  }
  waiting.call = std::move(call);
  waiting.deadline = deadline;
  counters_.calls_over_tcp.bump();
  ++tcp_calls_in_flight_;
  ++calls_in_flight_;
}

void ClientCore::start_call_on_strand(std::uint64_t id, const OutgoingEnvelope& envelope,
                                      std::chrono::milliseconds timeout, PendingCallPtr&& call) {
  struct Restore {  // as enter(): a completion this causes is posted, never run in the caller
    bool& flag;
    bool was;
    ~Restore() { flag = was; }
  } restore{inside_entry_point_, inside_entry_point_};
  inside_entry_point_ = true;
  const std::size_t size = envelope_size(envelope);
  const bool small = size + max_length_prefix_bytes < min_pooled_frame_bytes;
  if (!small || size > encoder_.options().max_frame_bytes || !tcp_connected_ || server_draining_ ||
      calls_in_flight_ >= max_pending_calls_ || calls_wait_for_room()) {
    auto frame = take_frame_buffer();
    const auto encoded = append_envelope_frame(frame, encoder_, envelope, size);
    return begin_call(id, std::move(frame), encoded, timeout, std::move(call));
  }
  const auto now = handling_replies_ ? replies_read_at_ : Clock::now();
  send_tcp_call(id, now + timeout, std::move(call), [&] { coalesce_call(envelope, size); });
  flush_soon();
}

// Writes the frame of a call into queued_.back(), or a new buffer when that one is full. Room is
// made for many frames at once: growing the buffer for each would zero each frame's bytes first.
void ClientCore::coalesce_call(const OutgoingEnvelope& envelope, std::size_t size) {
  const std::size_t room = max_length_prefix_bytes + size;
  if (!last_queued_coalesces_ || coalesced_bytes_ + room > max_coalesced_bytes) {
    seal_coalesced();
    queued_.push_back(take_frame_buffer());
    last_queued_coalesces_ = true;
    coalesced_bytes_ = 0;
  }
  auto& buffer = queued_.back();
  if (buffer.size() < coalesced_bytes_ + room) {
    // Ahead by about ten small frames, within the memory the buffer has: a write of one frame
    // zeroes little more than the frame, and a buffer grows only for frames.
    buffer.resize(std::max(
        coalesced_bytes_ + room,
        std::min({buffer.capacity(), buffer.size() + coalesced_room_bytes, max_coalesced_bytes})));
  }
  coalesced_bytes_ +=
      write_envelope_frame(buffer.data() + coalesced_bytes_, encoder_, envelope, size);
}

// queued_.back() holds its frames alone again, without the room made ahead: before it is written,
// or appended to whole.
void ClientCore::seal_coalesced() {
  if (last_queued_coalesces_) queued_.back().resize(coalesced_bytes_);
}

void ClientCore::begin_call(std::uint64_t id, std::vector<std::byte>&& frame,
                            const boost::system::error_code& encode_error,
                            std::chrono::milliseconds timeout, PendingCallPtr&& call) {
  if (encode_error) return finish(std::move(call), encode_error, nullptr);
  // A deferred call (asio::deferred) copied and launched twice: its id is taken.
  if (pending_.contains(id)) return finish(std::move(call), asio::error::already_started, nullptr);
  // A call its predecessor's reply started counts from that read: one clock reading per read.
  const auto now = handling_replies_ ? replies_read_at_ : Clock::now();
  start_call(id, std::move(frame), now + timeout, std::move(call));
}

inline void ClientCore::finish(PendingCallPtr&& call, const boost::system::error_code& error,
                               const EnvelopeView* reply) {
  try {
    call.release()->complete(error, reply, strand_.executor(), !inside_entry_point_);
  } catch (...) {
    throw_later(strand_.executor(), std::current_exception());
  }
}

void ClientCore::start_call(std::uint64_t id, std::vector<std::byte>&& frame,
                            Clock::time_point deadline, PendingCallPtr&& call) {
  if (calls_in_flight_ < max_pending_calls_ && !calls_wait_for_room()) {
    return send_call(id, std::move(frame), deadline, std::move(call));
  }
  if (!wait_for_room_) {
    return finish(std::move(call), msgframe::error::too_many_pending_calls, nullptr);
  }
  pending_.emplace(id, Waiting{.call = std::move(call),
                               .frame = std::move(frame),
                               .deadline = deadline,
                               .waiting_for_room = true});
  waiting_for_room_.push_back(id);
  track_deadline(deadline, id);
}

// Room was made: the calls waiting for it go out, oldest first (those that timed out while
// waiting are gone from pending_).
void ClientCore::start_calls_waiting_for_room() {
  while (calls_in_flight_ < max_pending_calls_ && calls_wait_for_room()) {
    const auto id = waiting_for_room_.front();
    waiting_for_room_.pop_front();
    auto* found = pending_.find(id);
    if (found == nullptr) continue;
    auto waiting = std::move(*found);
    pending_.erase(id);
    send_call(id, std::move(waiting.frame), waiting.deadline, std::move(waiting.call));
  }
}

void ClientCore::send_call(std::uint64_t id, std::vector<std::byte>&& frame,
                           Clock::time_point deadline, PendingCallPtr&& call) {
  if (tcp_connected_) {
    if (server_draining_) return finish(std::move(call), msgframe::error::shutting_down, nullptr);
    return send_tcp_call(id, deadline, std::move(call), [&] { send(std::move(frame)); });
  }
  if (!udp_ready_) return finish(std::move(call), msgframe::error::not_connected, nullptr);
  if (frame.size() - frame_prefix_bytes > options_.max_datagram_bytes) {
    return finish(std::move(call), msgframe::error::frame_too_large, nullptr);
  }
  counters_.calls_over_udp.bump();
  ++calls_in_flight_;
  send_datagram(frame);
  const auto resend_at = std::min(deadline, Clock::now() + options_.udp_resend_interval);
  pending_.emplace(id, Waiting{.call = std::move(call),
                               .frame = std::move(frame),
                               .deadline = deadline,
                               .resends_left = options_.udp_resends,
                               .over_udp = true});
  track_deadline(resend_at, id);
}

// The frame goes out with the others queued by then: at the end of the read whose replies
// started it, or else in a flush posted behind the calls already waiting for the strand.
void ClientCore::send(std::vector<std::byte>&& frame) {
  if (!tcp_connected_) return;
  const bool small = frame.capacity() < min_pooled_frame_bytes;
  seal_coalesced();
  if (small && last_queued_coalesces_ && coalesced_bytes_ + frame.size() <= max_coalesced_bytes) {
    queued_.back().insert(queued_.back().end(), frame.begin(), frame.end());
    keep_small_buffer(std::move(frame));
  } else {
    queued_.push_back(std::move(frame));
    last_queued_coalesces_ = small;
  }
  coalesced_bytes_ = queued_.back().size();
  flush_soon();
}

void ClientCore::flush_soon() {
  if (handling_replies_ || flush_posted_) return;
  flush_posted_ = true;
  asio::post(strand_.executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void ClientCore::send_one_way(std::vector<std::byte> frame) {
  if (tcp_connected_) return send(std::move(frame));
  if (udp_ready_ && frame.size() - frame_prefix_bytes <= options_.max_datagram_bytes) {
    send_datagram(frame);
  }
}

void ClientCore::send_datagram(const std::vector<std::byte>& frame) {
  boost::system::error_code ignored;  // a lost datagram is what resends are for
  udp_socket_.send(
      asio::buffer(frame.data() + frame_prefix_bytes, frame.size() - frame_prefix_bytes), 0,
      ignored);
}

void ClientCore::subscribe(std::string type,
                           std::function<void(std::span<const std::byte>)> handler) {
  events_.insert_or_assign(std::move(type), std::move(handler));
}

// Every frame queued goes out in one gather write: at once, as far as the socket takes it (no
// completion to wait for), and the rest, or everything over TLS, by an asynchronous write. Frames
// queued meanwhile go out in the next write.
void ClientCore::flush() {
  if (writing_ || queued_.empty() || !tcp_connected_) return;
  seal_coalesced();
  std::swap(queued_, sending_);
  last_queued_coalesces_ = false;
  if (tls_) return write_tls();
  send_buffers_.clear();
  for (const auto& frame : sending_) send_buffers_.emplace_back(frame.data(), frame.size());
  if (writes_at_once_) {
    boost::system::error_code error;
    if (write_at_once(socket_, send_buffers_, error)) return on_written({});
    if (error) return lose_tcp(msgframe::error::connection_lost);
    counters_.writes_deferred.bump();
  }
  writing_ = true;
  asio::async_write(socket_, send_buffers_,
                    [self = shared_from_this(), generation = connection_generation_](
                        const boost::system::error_code& error, std::size_t) {
                      if (generation == self->connection_generation_) self->on_written(error);
                    });
}

void ClientCore::write_tls() {
  // TLS writes one record per buffer of a gather write: join the frames first.
  auto& joined = tls_->write_buffer;
  if (!joined || joined.use_count() > 1) joined = std::make_shared<std::vector<std::byte>>();
  joined->clear();
  for (const auto& frame : sending_) joined->insert(joined->end(), frame.begin(), frame.end());
  writing_ = true;
  asio::async_write(
      *tls_->stream, asio::buffer(*joined),
      [self = shared_from_this(), generation = connection_generation_, stream = tls_->stream,
       joined](const boost::system::error_code& error, std::size_t) {
        if (generation == self->connection_generation_) self->on_written(error);
      });
}

void ClientCore::on_written(const boost::system::error_code& error) {
  writing_ = false;
  recycle_frame_buffers(sending_);
  trim_buffers_later();
  if (error) return lose_tcp(msgframe::error::connection_lost);
  flush();
}

// While the read buffer is empty but large, wait for the socket to turn readable before taking
// it, so that trim_buffers() may free it meanwhile (not with TLS, whose stream may hold bytes
// already read from the socket).
void ClientCore::read() {
  if (!tls_ && decoder_.pending_bytes() == 0 &&
      decoder_.buffer_capacity() > retained_buffer_bytes_) {
    waiting_readable_ = true;
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this(), generation = connection_generation_](
                           const boost::system::error_code& error) {
                         if (generation != self->connection_generation_) return;
                         self->waiting_readable_ = false;
                         if (error) return self->on_read(error, 0);
                         self->read_into_buffer();
                       });
    return;
  }
  read_into_buffer();
}

void ClientCore::read_into_buffer() {
  const auto space = decoder_.prepare(read_bytes_);
  const auto buffer = asio::buffer(space.data(), space.size());
  auto handler = [self = shared_from_this(), generation = connection_generation_](
                     const boost::system::error_code& error, std::size_t bytes) {
    if (generation == self->connection_generation_) self->on_read(error, bytes);
  };
  if (!tls_) return socket_.async_read_some(buffer, std::move(handler));
  tls_->stream->async_read_some(buffer, [stream = tls_->stream, handler = std::move(handler)](
                                            const boost::system::error_code& error,
                                            std::size_t bytes) { handler(error, bytes); });
}

void ClientCore::on_read(const boost::system::error_code& error, std::size_t bytes) {
  if (!tcp_connected_) return;
  if (error) return lose_tcp(close_reason_ ? close_reason_ : msgframe::error::connection_lost);
  decoder_.commit(bytes);
  // Completions that run inline here often start new calls: they go out in one write after the
  // loop, not one write for the first and another for the rest.
  handling_replies_ = true;
  replies_read_at_ = Clock::now();
  struct RestoreReplying {  // also when a handler throws
    const ClientCore* before;
    ~RestoreReplying() { replying_core = before; }
  } restore_replying{std::exchange(replying_core, this)};
  // A client destroyed in a completion closes at once: the rest of the read is left unread.
  EnvelopeView envelope;  // built once per read (88 bytes zeroed), reset by each parse
  while (tcp_connected_) {
    const auto body = decoder_.next();
    if (!body) break;
    if (!parse_envelope(*body, envelope)) on_envelope(envelope);  // else: nothing to match it to
  }
  handling_replies_ = false;
  if (!tcp_connected_) return;
  if (decoder_.error()) return lose_tcp(decoder_.error());
  if (trim_read_buffer_due_) {
    trim_read_buffer_due_ = false;
    decoder_.release_if_empty(retained_buffer_bytes_);
  }
  trim_buffers_later();
  leave_if_drained();
  if (!tcp_connected_) return;
  flush();
  if (tcp_connected_) read();  // a failed write has lost the connection
}

void ClientCore::receive_datagram() {
  udp_socket_.async_receive(
      asio::buffer(datagram_), [self = shared_from_this(), generation = open_generation_](
                                   const boost::system::error_code& error, std::size_t bytes) {
        // A receive from before a close() must not start a second one on the reopened socket.
        if (generation != self->open_generation_ || !self->udp_ready_ ||
            error == asio::error::operation_aborted) {
          return;
        }
        // Refused (no one at the server's UDP port) or a datagram over the limit: the calls resend
        // or time out; keep listening.
        EnvelopeView envelope;
        if (!error && bytes <= self->options_.max_datagram_bytes &&
            !parse_envelope(std::span(self->datagram_).first(bytes), envelope)) {
          self->on_envelope(envelope);
        }
        self->receive_datagram();
      });
}

void ClientCore::on_envelope(const EnvelopeView& envelope) {
  if (envelope.kind == v1::KIND_EVENT) {
    static const std::string shutting_down = v1::ShuttingDown::default_instance().GetTypeName();
    if (envelope.type == shutting_down) server_draining_ = true;  // leave_if_drained() follows
    if (const auto handler = events_.find(envelope.type); handler != events_.end()) {
      run_user_code(strand_.executor(), [&] { handler->second(envelope.payload); });
    }
    return;
  }
  if (envelope.kind != v1::KIND_RESPONSE && envelope.kind != v1::KIND_ERROR) return;
  if (envelope.id == 0 && envelope.error) {
    // A connection-level error (the server is about to close): the reason pending calls fail.
    close_reason_ = from_wire_error(envelope.error->code());
    return;
  }
  // A reply whose id is not pending (late, duplicated, or never asked for) is dropped here.
  complete(envelope.id, no_error, &envelope);
}

void ClientCore::complete(std::uint64_t id, const boost::system::error_code& error,
                          const EnvelopeView* reply) {
  auto* found = pending_.find(id);
  if (found == nullptr) return;
  auto call = std::move(found->call);
  const bool was_sent = !found->waiting_for_room;
  if (was_sent && !found->over_udp) --tcp_calls_in_flight_;
  pending_.erase(id);
  if (deadlines_.size() > 2 * pending_.size() + deadline_slack) forget_answered_deadlines();
  if (was_sent) {
    --calls_in_flight_;
    if (calls_wait_for_room()) start_calls_waiting_for_room();
  }
  finish(std::move(call), error, reply);
}

// Calls end mostly in the order they began, and most share one timeout: the earliest deadlines
// are usually answered calls'. Dropping those once they are half the queue keeps it within about
// twice the calls in flight, instead of every call of the last call_timeout (10 million entries
// at 1 M calls/s), and costs one lookup per deadline dropped and one per batch, not per call.
void ClientCore::forget_answered_deadlines() {
  while (!deadlines_.empty() && !pending_.contains(deadlines_.top().second)) deadlines_.pop();
}

// ---- Buffers ----------------------------------------------------------------------------------

std::vector<std::byte> ClientCore::take_frame_buffer() {
  if (on_strand() && !small_buffers_.empty()) {  // the strand's, first
    auto buffer = std::move(small_buffers_.back());
    small_buffers_.pop_back();
    small_buffers_bytes_ -= buffer.capacity();
    return buffer;
  }
  if (frame_pool_size_.load(std::memory_order_relaxed) == 0) return {};  // small frames: no lock
  const std::lock_guard lock(frame_pool_mutex_);
  if (frame_pool_.empty()) return {};
  auto buffer = std::move(frame_pool_.back());
  frame_pool_.pop_back();
  frame_pool_size_.store(frame_pool_.size(), std::memory_order_relaxed);
  frame_pool_bytes_ -= buffer.capacity();
  return buffer;
}

// Empties `sent`: small buffers go to the strand's small pool, large ones in order to the frame
// pool until it is full. After a quiet look at the buffers (trim_buffers), the first sent batch
// keeps none over retained_buffer_bytes: a large buffer out with a request then is not kept either.
void ClientCore::recycle_frame_buffers(std::vector<std::vector<std::byte>>& sent) {
  const auto keep = retained_buffer_bytes_;
  const bool keep_large = !drop_large_frame_buffers_;
  drop_large_frame_buffers_ = false;
  bool any_large = false;
  for (auto& buffer : sent) {
    if (buffer.capacity() < min_pooled_frame_bytes) {
      keep_small_buffer(std::move(buffer));
    } else {
      any_large = true;
    }
  }
  if (any_large) {
    const std::lock_guard lock(frame_pool_mutex_);
    for (auto& buffer : sent) {
      const auto bytes = buffer.capacity();
      if (bytes < min_pooled_frame_bytes) continue;
      if (frame_pool_.size() == max_pooled_frames ||
          (frame_pool_bytes_ + bytes > keep && !(frame_pool_.empty() && keep_large))) {
        break;
      }
      buffer.clear();
      frame_pool_.push_back(std::move(buffer));
      frame_pool_bytes_ += bytes;
    }
    frame_pool_size_.store(frame_pool_.size(), std::memory_order_relaxed);
  }
  sent.clear();  // outside the lock: callers of take_frame_buffer() need not wait for free()
}

// Strand only.
void ClientCore::keep_small_buffer(std::vector<std::byte> buffer) {
  if (small_buffers_.size() == max_small_buffers ||
      small_buffers_bytes_ + buffer.capacity() > max_small_pool_bytes) {
    return;
  }
  buffer.clear();
  small_buffers_bytes_ += buffer.capacity();
  small_buffers_.push_back(std::move(buffer));
}

void ClientCore::drop_frame_pool() {
  small_buffers_.clear();
  small_buffers_bytes_ = 0;
  std::vector<std::vector<std::byte>> dropped;
  const std::lock_guard lock(frame_pool_mutex_);
  dropped.swap(frame_pool_);
  frame_pool_size_.store(0, std::memory_order_relaxed);
  frame_pool_bytes_ = 0;
}

// Looked at after every read and write: an empty pool (small frames only) takes no lock.
std::size_t ClientCore::frame_pool_bytes() const {
  if (frame_pool_size_.load(std::memory_order_relaxed) == 0) return 0;
  const std::lock_guard lock(frame_pool_mutex_);
  return frame_pool_bytes_;
}

void ClientCore::trim_buffers_later() {
  const auto keep = retained_buffer_bytes_;
  const bool large = decoder_.buffer_capacity() > keep || frame_pool_bytes() > keep ||
                     (tls_ && tls_->write_buffer && tls_->write_buffer->capacity() > keep);
  if (trim_timer_armed_ || !large) return;
  trim_timer_armed_ = true;
  trim_timer_.expires_after(trim_interval);
  trim_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    self->trim_timer_armed_ = false;
    if (!error) self->trim_buffers();
  });
}

void ClientCore::trim_buffers() {
  const auto keep = retained_buffer_bytes_;
  // A read in progress (or, with TLS, one of a lost connection still finishing) writes into the
  // read buffer: then the end of the next read frees it.
  if (waiting_readable_) {
    decoder_.release_if_empty(keep);
  } else {
    trim_read_buffer_due_ = true;
  }
  // A write in progress holds its own reference.
  if (tls_ && tls_->write_buffer && tls_->write_buffer->capacity() > keep) {
    tls_->write_buffer.reset();
  }
  if (frame_pool_bytes() > keep) drop_frame_pool();
  drop_large_frame_buffers_ = true;
  trim_buffers_later();  // still large because still busy: look again later
}

// ---- Deadlines and resends --------------------------------------------------------------------

void ClientCore::track_deadline(Clock::time_point when, std::uint64_t id) {
  deadlines_.push(when, id);
  if (when < armed_for_) arm_deadline_timer();
}

void ClientCore::arm_deadline_timer() {
  armed_for_ = deadlines_.top().first;
  deadline_timer_.expires_at(armed_for_);
  deadline_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (error != asio::error::operation_aborted) self->on_deadline_timer();
  });
}

void ClientCore::on_deadline_timer() {
  armed_for_ = Clock::time_point::max();
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    const auto id = deadlines_.top().second;
    deadlines_.pop();
    auto* waiting_call = pending_.find(id);
    if (waiting_call == nullptr) continue;
    auto& waiting = *waiting_call;
    // The deadline of an earlier start of this id (an asio::deferred call started again after
    // the first completed): this start's own deadline is later, and queued.
    if (!waiting.over_udp && now < waiting.deadline) continue;
    if (waiting.over_udp && waiting.resends_left > 0 && now < waiting.deadline) {
      --waiting.resends_left;
      counters_.udp_resends.bump();
      send_datagram(waiting.frame);  // the same id: the server may answer either copy
      deadlines_.push(std::min(waiting.deadline, now + options_.udp_resend_interval), id);
      continue;
    }
    complete(id, msgframe::error::timeout, nullptr);  // deadline, or no resend left
  }
  if (!deadlines_.empty()) arm_deadline_timer();
  leave_if_drained();
}

// A server that is shutting down closes the connection once we do: close it as soon as our
// calls on it are answered, so that its stop() need not wait for its drain deadline.
void ClientCore::leave_if_drained() {
  if (tcp_connected_ && server_draining_ && tcp_calls_in_flight_ == 0) {
    lose_tcp(msgframe::error::shutting_down);
  }
}

// ---- Losing and closing -----------------------------------------------------------------------

// TCP calls in flight fail: they may have run on the server, so they are not sent again over
// UDP. With the automatic transport, later calls go over UDP while TCP reconnects.
void ClientCore::lose_tcp(boost::system::error_code reason) {
  tcp_connected_ = false;
  ++connection_generation_;
  writing_ = false;
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  queued_.clear();
  last_queued_coalesces_ = false;
  sending_.clear();
  drop_frame_pool();
  std::vector<std::uint64_t> lost;
  pending_.for_each([&lost](std::uint64_t id, const Waiting& waiting) {
    if (!waiting.over_udp && !waiting.waiting_for_room) lost.push_back(id);
  });
  for (const auto id : lost) complete(id, reason, nullptr);
  if (!closed_by_user_ && options_.on_disconnect) {
    run_user_code(strand_.executor(), [&] { options_.on_disconnect(reason); });
  }
  if (closed_by_user_) return;
  if (options_.transport == Transport::automatic && udp_ready_) {
    fall_back_to_udp();
  } else if (options_.reconnect || options_.transport == Transport::automatic) {
    schedule_reconnect();
  }
}

void ClientCore::close(boost::system::error_code reason) {
  closed_by_user_ = true;
  ++open_generation_;
  udp_ready_ = false;
  boost::system::error_code ignored;
  resolver_.cancel();
  connect_timer_.cancel();
  reconnect_timer_.cancel();
  trim_timer_.cancel();
  drop_frame_pool();
  udp_socket_.close(ignored);
  // Calls waiting for room were never sent: they end with the close's reason, before the calls
  // lose_tcp() completes make room and start them.
  const auto never_sent = std::move(waiting_for_room_);
  waiting_for_room_.clear();
  for (const auto id : never_sent) complete(id, reason, nullptr);
  if (tcp_connected_) lose_tcp(reason);
  socket_.close(ignored);
  deadline_timer_.cancel();
  armed_for_ = Clock::time_point::max();
  deadlines_.clear();
  tcp_calls_in_flight_ = 0;
  calls_in_flight_ = 0;
  waiting_for_room_.clear();
  auto pending = std::move(pending_);
  pending_.clear();
  pending.for_each([this, reason](std::uint64_t, Waiting& waiting) {
    finish(std::move(waiting.call), reason, nullptr);
  });
}

}  // namespace msgframe::detail
