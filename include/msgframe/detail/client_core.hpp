// The client's connection state machine (not for users): the TCP connection and the UDP socket,
// the calls waiting for replies by id, their deadlines and resends, event subscriptions, and
// the fallback from TCP to UDP. Touched only on its strand.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "msgframe/client_options.hpp"
#include "msgframe/detail/call_table.hpp"
#include "msgframe/detail/client_strand.hpp"
#include "msgframe/detail/deadline_queue.hpp"
#include "msgframe/envelope.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"

namespace msgframe {

namespace detail {

// Success, passed by reference down to a completion handler. An error_code built just before it
// is copied is reloaded in 16-byte pieces over the smaller stores that built it, which defeats
// the CPU's store-to-load forwarding (about 6 ns per copy on this VM); this one was built long ago.
inline const boost::system::error_code no_error{};

// A call waiting for its reply, on the strand: completed once, or destroyed with the client.
class PendingCall {
 public:
  // Completes the call with the RESPONSE or ERROR envelope `reply` (null: it failed locally) and
  // frees it, on the client's strand, whose executor is `client_executor`. `may_run_inline`: not
  // inside a call or send of the client's (ClientCore::enter).
  virtual void complete(const boost::system::error_code& error, const EnvelopeView* reply,
                        const boost::asio::any_io_executor& client_executor,
                        bool may_run_inline) = 0;
  // Frees the call without completing it: its client's executor is gone.
  virtual void destroy() noexcept = 0;

 protected:
  ~PendingCall() = default;
};

struct PendingCallDeleter {
  void operator()(PendingCall* call) const noexcept { call->destroy(); }
};
using PendingCallPtr = std::unique_ptr<PendingCall, PendingCallDeleter>;

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  using Clock = std::chrono::steady_clock;
  using ConnectHandler = std::function<void(boost::system::error_code)>;

  // `one_thread`: `executor` runs one handler at a time (see ClientStrand).
  ClientCore(const boost::asio::any_io_executor& executor, const ClientOptions& options,
             bool one_thread);
  ~ClientCore();

  // The executor of the client's strand: its I/O objects' and its handlers'.
  const boost::asio::any_io_executor& executor() const noexcept { return strand_.executor(); }
  // Asked for every call: a reply's handler, run by on_read(), answers it without a walk through
  // Asio's call stack (~2 ns each time, and a call asks twice).
  bool on_strand() const noexcept {
    return replying_core == this || strand_.running_in_this_thread();
  }
  const FrameEncoder& encoder() const noexcept { return encoder_; }

  // Any thread.
  // On the strand, from a block of ids taken at once: the locked add that takes an id waits for
  // every store before it to drain (the caller's request, just written: ~6 ns a call).
  std::uint64_t next_call_id() noexcept {
    if (!on_strand()) return next_call_id_++;
    if (strand_ids_left_ == 0) {
      strand_next_id_ = next_call_id_.fetch_add(strand_id_block);
      strand_ids_left_ = strand_id_block;
    }
    --strand_ids_left_;
    return strand_next_id_++;
  }
  // An empty buffer to serialize a frame into: on the strand, one a small sent frame left; else
  // one a large sent frame left, so that a stream of large requests does not allocate (and fault
  // in) a buffer for each; else a new one.
  std::vector<std::byte> take_frame_buffer();
  bool is_connected() const noexcept { return tcp_connected_ || udp_ready_; }
  Transport current_transport() const noexcept {
    return tcp_connected_ ? Transport::tcp : Transport::udp;
  }
  ClientStats stats() const noexcept;
  // Runs step(*this) on the strand, for calls and one-way sends: at once when called there, so
  // that those made on the strand go out in the order they were made; else posted. Completions
  // it causes are posted, never run inside the caller.
  template <class Step>
  void enter(Step step);
  // Starts a call by enter(). `frame` is the TCP frame (over UDP, the frame less its prefix is
  // the datagram); `encode_error`, when set, is the call's result. Never completes the call
  // itself (the strand may, on another thread, before this returns).
  void submit_call(std::uint64_t id, std::vector<std::byte>&& frame,
                   const boost::system::error_code& encode_error, std::chrono::milliseconds timeout,
                   PendingCallPtr&& call);

  // Strand only.
  // Starts a call as submit_call() does, but serializes `envelope` here: a small frame of a call
  // that can go at once straight into the next write, where it would be copied anyway.
  void start_call_on_strand(std::uint64_t id, const OutgoingEnvelope& envelope,
                            std::chrono::milliseconds timeout, PendingCallPtr&& call);
  void connect(std::string host, std::uint16_t port, ConnectHandler done);
  // A one-way request: over TCP when connected, else as a datagram when it fits.
  void send_one_way(std::vector<std::byte> frame);
  void subscribe(std::string type, std::function<void(std::span<const std::byte>)> handler);
  // Closes both transports; every pending call completes with `reason`.
  void close(boost::system::error_code reason);

 private:
  struct Waiting {  // fields by size, so that a call table slot takes 56 bytes, not 72
    PendingCallPtr call;
    std::vector<std::byte> frame;  // kept for resends over UDP, and while waiting for room
    Clock::time_point deadline;
    int resends_left = 0;
    bool over_udp = false;
    bool waiting_for_room = false;  // not sent yet: max_pending_calls are in flight
  };

  struct Tls;
  void begin_call(std::uint64_t id, std::vector<std::byte>&& frame,
                  const boost::system::error_code& encode_error, std::chrono::milliseconds timeout,
                  PendingCallPtr&& call);
  void start_call(std::uint64_t id, std::vector<std::byte>&& frame, Clock::time_point deadline,
                  PendingCallPtr&& call);
  // Completes `call`: inline, unless inside enter() on the strand right now. Inlined where it is
  // used (client_core.cpp): out of line, its exception handling cost a call 33 instructions.
  [[gnu::always_inline]] inline void finish(PendingCallPtr&& call,
                                            const boost::system::error_code& error,
                                            const EnvelopeView* reply);
  // Opens UDP (when the transport may use it) and connects TCP to server_endpoints_.
  void connect_to_endpoints(ConnectHandler done);
  void connect_tcp(ConnectHandler done);
  void on_connect_failed(boost::system::error_code error, ConnectHandler done);
  // The TLS handshake on the connected socket (at once without TLS).
  void secure(ConnectHandler done);
  void on_tcp_connected();
  boost::system::error_code open_udp(const boost::asio::ip::udp::endpoint& server);
  void fall_back_to_udp();
  void schedule_reconnect();
  void lose_tcp(boost::system::error_code reason);
  void set_transport(Transport transport);
  void send(std::vector<std::byte>&& frame);
  // Flushes at the end of the read whose replies are being handled, or else in a posted flush.
  void flush_soon();
  // Tracks a call and queues its frame by queue_frame(), for a call going over TCP at once.
  template <class QueueFrame>
  void send_tcp_call(std::uint64_t id, Clock::time_point deadline, PendingCallPtr&& call,
                     QueueFrame&& queue_frame);
  void send_call(std::uint64_t id, std::vector<std::byte>&& frame, Clock::time_point deadline,
                 PendingCallPtr&& call);
  void start_calls_waiting_for_room();
  // Whether calls wait unsent for room: never without wait_for_room, which is read first, beside
  // the state every call touches (the deque lies lines further on).
  bool calls_wait_for_room() const noexcept { return wait_for_room_ && !waiting_for_room_.empty(); }

  void read();
  void read_into_buffer();
  void coalesce_call(const OutgoingEnvelope& envelope, std::size_t size);
  void seal_coalesced();
  void on_read(const boost::system::error_code& error, std::size_t bytes);
  void receive_datagram();
  void on_envelope(const EnvelopeView& envelope);
  void flush();
  void write_tls();
  void on_written(const boost::system::error_code& error);
  void send_datagram(const std::vector<std::byte>& frame);
  void track_deadline(Clock::time_point when, std::uint64_t id);
  void arm_deadline_timer();
  void forget_answered_deadlines();
  void on_deadline_timer();
  void complete(std::uint64_t id, const boost::system::error_code& error,
                const EnvelopeView* reply);
  void leave_if_drained();
  void trim_buffers_later();
  void trim_buffers();
  void recycle_frame_buffers(std::vector<std::vector<std::byte>>& sent);
  void keep_small_buffer(std::vector<std::byte> buffer);
  std::size_t frame_pool_bytes() const;
  void drop_frame_pool();

  // What every call and every read touch comes first, together: with thousands of clients in
  // one process (fanin), each call finds this object cold in the cache, and every line it
  // spans costs a miss.
  ClientStrand strand_;
  boost::asio::ip::tcp::socket socket_;
  FrameDecoder decoder_;
  const FrameEncoder encoder_;
  // The options every call reads, here beside the rest: options_ lies lines further on.
  const std::size_t max_pending_calls_;
  const std::size_t read_bytes_;
  // What a quiet connection keeps of its read buffer (and TLS write buffer): a large reply once
  // does not pin its size for the life of the client.
  const std::size_t retained_buffer_bytes_;
  const bool wait_for_room_;
  CallTable<Waiting> pending_;
  // Deadlines and resend times, earliest first; entries of calls already completed are dropped
  // when they reach the top.
  DeadlineQueue deadlines_;
  Clock::time_point armed_for_ = Clock::time_point::max();
  Clock::time_point replies_read_at_;  // when on_read's loop began
  std::size_t calls_in_flight_ = 0;    // in pending_, sent
  std::size_t tcp_calls_in_flight_ = 0;
  std::uint64_t connection_generation_ = 0;  // tells completions of an old connection apart
  std::atomic<std::uint64_t> next_call_id_{1};
  static constexpr std::uint64_t strand_id_block = 64;
  std::uint64_t strand_next_id_ = 0;  // the strand's block of ids: the next, and how many are left
  std::uint64_t strand_ids_left_ = 0;
  std::atomic<bool> tcp_connected_{false};
  std::atomic<bool> udp_ready_{false};
  std::unique_ptr<Tls> tls_;         // null without TLS
  bool trim_timer_armed_ = false;    // trim_timer_ is armed
  bool writes_at_once_ = false;      // the socket is non-blocking: flush() writes without waiting
  bool writing_ = false;             // an asynchronous write holds sending_
  bool flush_posted_ = false;        // a flush is on its way to the strand
  bool handling_replies_ = false;    // inside on_read's loop: flush once at its end
  bool inside_entry_point_ = false;  // inside enter() on the strand: completions are posted
  // The core whose replies this thread is handing to their handlers (on_read), if any.
  static inline thread_local const ClientCore* replying_core = nullptr;

  bool last_queued_coalesces_ = false;  // small frames may be appended to queued_.back()
  // While last_queued_coalesces_, the bytes of queued_.back() that hold frames; past them, room
  // made ahead (see coalesce_call).
  std::size_t coalesced_bytes_ = 0;
  bool waiting_readable_ = false;      // no read holds the read buffer
  bool trim_read_buffer_due_ = false;  // the next read's end frees the read buffer if empty
  // The server said it is shutting down: no new calls on this connection, which closes once the
  // calls on it are answered.
  bool server_draining_ = false;
  bool drop_large_frame_buffers_ = false;  // strand: see recycle_frame_buffers()
  // Counted on the strand, read by stats() on any thread: a plain load and store, not a locked
  // add, which waits for every store before it to drain (a call's frame, just written: ~7 ns).
  class StrandCounter {
   public:
    void bump() noexcept {
      value_.store(value_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    operator std::uint64_t() const noexcept { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<std::uint64_t> value_{0};
  };
  struct Counters {
    StrandCounter calls_over_tcp;
    StrandCounter calls_over_udp;
    StrandCounter udp_resends;
    StrandCounter fallbacks_to_udp;
    StrandCounter tcp_reconnects;
    StrandCounter writes_deferred;
  } counters_;

  // Frames for the next write, in order: large ones in the buffers the callers serialized them
  // into, small ones copied together (see send()).
  std::vector<std::vector<std::byte>> queued_;
  std::vector<std::vector<std::byte>> sending_;
  std::vector<boost::asio::const_buffer> send_buffers_;
  // Buffers of small frames, for take_frame_buffer() on the strand (strand only): at most
  // max_small_buffers, max_small_pool_bytes in all.
  std::vector<std::vector<std::byte>> small_buffers_;
  std::size_t small_buffers_bytes_ = 0;
  std::atomic<std::size_t> frame_pool_size_{0};  // frame_pool_'s size, to skip the lock if empty
  std::deque<std::uint64_t> waiting_for_room_;   // in pending_ (unless timed out), oldest first

  const ClientOptions options_;
  boost::asio::ip::udp::socket udp_socket_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer deadline_timer_;
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer trim_timer_;  // armed only while a buffer is over the retained size
  std::vector<std::byte> datagram_;       // receive buffer, one byte over the limit (UDP only)
  std::vector<boost::asio::ip::tcp::endpoint> server_endpoints_;
  // Large buffers of sent frames for take_frame_buffer(): at most max_pooled_frames, and in all
  // retained_buffer_bytes or a single buffer of any size (trimmed to that once traffic is quiet).
  mutable std::mutex frame_pool_mutex_;
  std::vector<std::vector<std::byte>> frame_pool_;  // under frame_pool_mutex_
  std::size_t frame_pool_bytes_ = 0;                // their capacity, under frame_pool_mutex_
  bool closed_by_user_ = false;
  // Counts close() calls: the completions of connects, reconnects and UDP receives begun before
  // the latest close() recognise themselves and do nothing.
  std::uint64_t open_generation_ = 0;
  boost::system::error_code close_reason_;  // from an ERROR envelope with id 0
  Transport reported_transport_ = Transport::tcp;
  std::chrono::milliseconds backoff_;
  std::minstd_rand jitter_{std::random_device{}()};

  std::map<std::string, std::function<void(std::span<const std::byte>)>, std::less<>> events_;
};

template <class Step>
void ClientCore::enter(Step step) {
  if (!on_strand()) {
    boost::asio::post(strand_.executor(), [self = shared_from_this(),
                                           step = std::move(step)]() mutable { step(*self); });
    return;
  }
  struct Restore {
    bool& flag;
    bool was;
    ~Restore() { flag = was; }
  } restore{inside_entry_point_, inside_entry_point_};
  inside_entry_point_ = true;
  step(*this);
}

}  // namespace detail
}  // namespace msgframe
