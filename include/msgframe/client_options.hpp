// How a msgframe::Client connects, times out, retries and falls back, and what it counts.
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "msgframe/frame_options.hpp"
#include "msgframe/tls_options.hpp"
#include "msgframe/transport.hpp"

namespace msgframe {

struct ClientOptions {
  Transport transport = Transport::tcp;
  std::size_t max_frame_bytes = default_max_frame_bytes;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds call_timeout{10000};  // the deadline of calls that set none
  std::size_t read_bytes = 64 * 1024;
  // The client's handlers run one at a time, on a strand. Set this when the executor given to
  // the client is an io_context's that one thread runs (Asio's implicit strand): the client
  // then uses it as it is, sparing every read, write and posted call a strand's lock and queue.
  // Set for an io_context that several threads run, it is a data race. Ignored for any other
  // executor, and for the client with an I/O thread of its own, which is always so.
  bool executor_is_single_threaded = false;
  // UDP: the largest datagram sent (requests over it fail at once with frame_too_large), how
  // long to wait for a reply before resending the same id, and how many resends at most.
  std::size_t max_datagram_bytes = 65507;
  std::chrono::milliseconds udp_resend_interval{250};
  int udp_resends = 3;
  // The most calls waiting for replies at once (over TCP and UDP together). A call beyond it
  // fails at once with error::too_many_pending_calls, or, with wait_for_room, waits unsent
  // until a reply makes room, in the order the calls were made, or until its deadline.
  std::size_t max_pending_calls = 100000;
  bool wait_for_room = false;
  // TCP: after a lost connection (not after close()), connect again in the background until it
  // works, waiting reconnect_backoff_min, doubling up to the max, each wait jittered down by up
  // to half so that the clients of a restarted server spread out. Meanwhile calls fail at once
  // with not_connected. Transport::automatic always reconnects.
  bool reconnect = false;
  // How long to wait before trying TCP again, doubling up to the max.
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{5000};
  // TLS on the TCP connection (connect() fails when the handshake does: an untrusted or
  // misnamed server certificate, say). Never downgraded: with TLS, Transport::automatic does
  // not fall back to UDP (it reconnects TCP instead), and Transport::udp is refused.
  std::optional<TlsClientOptions> tls;
  // Called on the client's strand when calls start going over another transport.
  std::function<void(Transport)> on_transport_change;
  // Called on the client's strand when an established TCP connection is lost (the server
  // closed it, reset it, or broke the protocol), not when close() closes it; pending TCP calls
  // have then completed with `reason`. A server that stops sends a ShuttingDown event first: the
  // client then fails new calls at once with error::shutting_down, and once the calls in flight
  // are answered closes the connection itself, with `reason` error::shutting_down. With
  // Transport::automatic, calls move to UDP after it.
  std::function<void(boost::system::error_code reason)> on_disconnect;
};

// Counters since construction; a snapshot.
struct ClientStats {
  std::uint64_t calls_over_tcp = 0;
  std::uint64_t calls_over_udp = 0;
  std::uint64_t udp_resends = 0;
  std::uint64_t fallbacks_to_udp = 0;  // times TCP was lost or refused and UDP took over
  std::uint64_t tcp_reconnects = 0;    // times TCP came back after a fallback
  // Plaintext TCP writes the socket could not take at once (the server reads slower than we
  // send): the rest went out as the socket made room, and later calls waited behind them.
  std::uint64_t writes_deferred = 0;
};

}  // namespace msgframe
