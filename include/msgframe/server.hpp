// msgframe::Server: a multi-session TCP server that answers envelopes through a Router.
#pragma once

#include <google/protobuf/message_lite.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "msgframe/frame_options.hpp"
#include "msgframe/router.hpp"
#include "msgframe/tls_options.hpp"

namespace msgframe {

// The largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
inline constexpr std::size_t max_udp_payload_bytes = 65507;

// More I/O threads than this is a mistake (a negative count wrapped around, say), not a plan.
inline constexpr std::size_t max_server_threads = 1024;

struct ServerOptions {
  // A host name or address; every address it resolves to is listened on ("0.0.0.0" for every
  // IPv4 address, "::" for every IPv6 one). UDP replies leave from the address a request came to
  // when that is a specific address; on a wildcard one the system picks the source address, which
  // on a host with several addresses may not be the one the client sent to.
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;   // 0: a free port, see Server::port()
  std::size_t threads = 0;  // I/O threads, at most max_server_threads; 0: one per hardware thread
  std::size_t max_frame_bytes = default_max_frame_bytes;
  bool serve_tcp = true;
  bool serve_udp = true;  // on the same port number as TCP
  // The largest UDP datagram taken or sent (at most 65,507, the IPv4 limit; e.g. 1,200 to stay
  // under a path MTU). Larger requests are dropped; larger replies become FRAME_TOO_LARGE.
  std::size_t max_datagram_bytes = max_udp_payload_bytes;
  // The most sessions open at once. A connection beyond it gets an ERROR envelope
  // (ERROR_CODE_OVERLOADED, id 0) and is closed; the sessions already open are untouched.
  std::size_t max_sessions = 10000;
  // Backpressure: a session stops reading its socket while this many bytes of its replies and
  // events wait to be written (a peer that sends but does not read), or while this many of its
  // coroutine handlers run; it reads again once the replies drain. The peer is held back by TCP;
  // nothing is dropped. Events pushed to a session that lets twice this many bytes pile up
  // unread close it instead (ServerStats::sessions_too_slow).
  std::size_t max_write_queue_bytes = 8 * 1024 * 1024;
  std::size_t max_requests_in_flight = 1024;
  // A frame whose first bytes have arrived must be complete within this time, or the session is
  // closed (after the replies already due): a peer trickling a frame byte by byte (slow loris)
  // cannot hold a session forever.
  std::chrono::milliseconds frame_timeout{30000};
  // A session that has read nothing for this long, with nothing in flight for it, is closed.
  // 0 (the default): never.
  std::chrono::milliseconds idle_timeout{0};
  // How much each read asks the socket for.
  std::size_t read_bytes = 64 * 1024;
  // stop() tells every session it is shutting down (a msgframe.v1.ShuttingDown event), answers
  // requests read later with ERROR_CODE_SHUTTING_DOWN, and closes each session once its peer
  // has closed and its replies are written (msgframe's client closes as soon as its calls are
  // answered), or after this long at most (0 to 4,294,967,295 ms).
  std::chrono::milliseconds drain_timeout{5000};
  // TLS on every TCP connection (and then no UDP unless tls->plaintext_udp). The handshake
  // must finish within frame_timeout. Bad files: the constructor throws std::invalid_argument.
  std::optional<TlsServerOptions> tls;
  // Receives one line per notable event (a session closed for a protocol error, an accept
  // failure), naming the peer. Called from I/O threads; empty: no logging.
  std::function<void(const std::string&)> log;
};

// Counters since start(); a snapshot, read with relaxed ordering.
struct ServerStats {
  std::uint64_t sessions_accepted = 0;
  std::uint64_t sessions_open = 0;
  std::uint64_t requests = 0;         // requests dispatched to a handler or refused
  std::uint64_t errors_sent = 0;      // ERROR envelopes sent
  std::uint64_t one_way_errors = 0;   // failures of id-0 requests, which get no reply
  std::uint64_t frames_dropped = 0;   // RESPONSE, ERROR and EVENT envelopes sent to the server
  std::uint64_t sessions_failed = 0;  // sessions closed for an oversized or malformed prefix
  std::uint64_t writes = 0;           // socket writes: replies that are ready together share one
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_dropped = 0;     // not envelopes, over the limit, or replies not sent
  std::uint64_t sessions_refused = 0;      // connections over max_sessions, told OVERLOADED
  std::uint64_t reads_paused = 0;          // times a session stopped reading for backpressure
  std::uint64_t frames_timed_out = 0;      // sessions closed for a frame past frame_timeout
  std::uint64_t sessions_too_slow = 0;     // closed with 2 x max_write_queue_bytes of events unread
  std::uint64_t sessions_idle_closed = 0;  // closed after idle_timeout without a read
  std::uint64_t tls_handshakes_failed = 0;  // refused: not TLS, no or an untrusted certificate
};

// Not for use in a forked child: sessions' read buffers may be mapped in the parent only.
class Server {
 public:
  // Throws std::invalid_argument for invalid options.
  explicit Server(ServerOptions options);
  ~Server();  // stop()s

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The router: register handlers before start().
  Router& router() noexcept;

  // Shorthand for router().handle<Request>(handler).
  template <class Request, class Handler>
  void handle(Handler handler) {
    router().handle<Request>(std::move(handler));
  }

  // Calls handler(session_id) once a session has closed, for whatever reason (the peer left, a
  // protocol error, stop()), with its RequestContext::session_id: services that keep state per
  // session drop it there. Runs on the session's I/O thread; it may push() to other sessions.
  // Register before start(); a later call replaces the handler.
  void on_session_closed(std::function<void(std::uint64_t session_id)> handler);

  // Binds every address of options.host and starts the I/O threads. On failure (the port is
  // taken, the host does not resolve) returns the error and leaves the server stopped.
  [[nodiscard]] boost::system::error_code start();

  // The bound port (the chosen one when options.port was 0); 0 before start().
  std::uint16_t port() const noexcept;
  std::vector<boost::asio::ip::tcp::endpoint> local_endpoints() const;

  // Sends a KIND_EVENT envelope to one session, or to all. Thread-safe, but not while stop()
  // runs; a session that is gone is skipped. Events pushed to one session arrive in the order of
  // the push() and broadcast() calls that sent them. Returns false when session_id is not open.
  // Throws std::invalid_argument for an event larger than the max frame.
  bool push(std::uint64_t session_id, const google::protobuf::MessageLite& event);
  // The same event to each of the sessions, serialized once (a chat room, say).
  void push(std::span<const std::uint64_t> session_ids, const google::protobuf::MessageLite& event);
  void broadcast(const google::protobuf::MessageLite& event);

  // Stops cleanly: no new connections; every session is sent a ShuttingDown event, requests
  // already read are answered and later ones get ERROR_CODE_SHUTTING_DOWN; sessions close as
  // their peers leave, and the rest after drain_timeout. Blocks until the I/O threads have ended,
  // so it must not be called from a handler. Idempotent; the destructor calls it.
  void stop();

  ServerStats stats() const noexcept;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace msgframe
