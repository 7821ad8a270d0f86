// The server: I/O threads (one io_context each), acceptors, the session registry, clean stop.
#include "msgframe/server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>
#include <future>
#include <limits>
#include <stdexcept>
#include <string>

#include "msgframe/envelope.hpp"
#include "msgframe/v1/lifecycle.pb.h"
#include "server_impl.hpp"
#include "session.hpp"
#include "udp_endpoint.hpp"

namespace msgframe {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

FrameOptions frame_options_of(const ServerOptions& options) {
  if (options.read_bytes == 0) throw std::invalid_argument("ServerOptions: read_bytes is 0");
  if (options.threads > max_server_threads) {
    throw std::invalid_argument("ServerOptions: threads must be 0 (one per hardware thread) to " +
                                std::to_string(max_server_threads));
  }
  if (options.max_datagram_bytes == 0 || options.max_datagram_bytes > max_udp_payload_bytes) {
    throw std::invalid_argument("ServerOptions: max_datagram_bytes must be 1 to 65507");
  }
  if (options.max_sessions == 0) throw std::invalid_argument("ServerOptions: max_sessions is 0");
  if (options.idle_timeout.count() < 0) {
    throw std::invalid_argument("ServerOptions: idle_timeout is negative (0 turns it off)");
  }
  if (options.drain_timeout.count() < 0 ||
      options.drain_timeout.count() > std::numeric_limits<std::uint32_t>::max()) {
    throw std::invalid_argument("ServerOptions: drain_timeout must be 0 to 4,294,967,295 ms");
  }
  if (options.frame_timeout.count() <= 0) {
    throw std::invalid_argument("ServerOptions: frame_timeout must be positive");
  }
  if (options.max_write_queue_bytes == 0 || options.max_requests_in_flight == 0) {
    throw std::invalid_argument(
        "ServerOptions: max_write_queue_bytes and max_requests_in_flight must be at least 1");
  }
  if (options.tls && !options.serve_tcp) {
    throw std::invalid_argument("ServerOptions: tls is set but serve_tcp is off");
  }
  if (!options.serve_tcp && !options.serve_udp) {
    throw std::invalid_argument("ServerOptions: serve_tcp and serve_udp are both off");
  }
  return protocol_framing(options.max_frame_bytes);
}

std::size_t thread_count(const ServerOptions& options) {
  if (options.threads > 0) return options.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

// TLS protects TCP only: with TLS, plaintext UDP only when asked for by name.
bool serves_udp(const ServerOptions& options) {
  return options.serve_udp && (!options.tls || options.tls->plaintext_udp);
}

}  // namespace

Server::Impl::Impl(Server& owner, ServerOptions server_options)
    : owner(owner),
      options(std::move(server_options)),
      frame_options(frame_options_of(options)),
      encoder(frame_options),
      tls_context(options.tls
                      ? std::make_unique<asio::ssl::context>(make_server_tls_context(*options.tls))
                      : nullptr) {}

asio::io_context& Server::Impl::pick_context() {
  return *contexts[next_context++ % contexts.size()];
}

void Server::Impl::accept(tcp::acceptor& acceptor) {
  acceptor.async_accept(pick_context(), [this, &acceptor](const boost::system::error_code& error,
                                                          tcp::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (error) {
      // EMFILE and friends: back off rather than spin, and keep serving open sessions.
      log("accept failed: " + error.message() + "; retrying in 100 ms");
      retry_accept_later(acceptor);
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    ++counters.sessions_accepted;
    // The session lives on its own thread from the start: begin there, not on the acceptor's.
    auto session = std::make_shared<Session>(*this, std::move(socket), next_session_id++);
    asio::post(session->executor(), [session] { session->start(); });
    accept(acceptor);
  });
}

void Server::Impl::retry_accept_later(tcp::acceptor& acceptor) {
  auto timer =
      std::make_shared<asio::steady_timer>(acceptor.get_executor(), std::chrono::milliseconds(100));
  timer->async_wait([this, &acceptor, timer](const boost::system::error_code& error) {
    if (!error && acceptor.is_open()) accept(acceptor);
  });
}

void Server::Impl::async_handler(bool started) {
  {
    const std::lock_guard lock(sessions_mutex);
    async_handlers += started ? 1 : -1;
  }
  if (!started) sessions_changed.notify_all();
}

// `accepting` is read under the mutex that stop() takes for its snapshot of the sessions: a
// session registers before that snapshot (and is shut down with the rest) or is refused.
Server::Impl::Admission Server::Impl::add_session(const std::shared_ptr<Session>& session) {
  {
    const std::lock_guard lock(sessions_mutex);
    if (!accepting) return Admission::stopping;
    if (sessions.size() >= options.max_sessions) {
      ++counters.sessions_refused;
      return Admission::full;
    }
    sessions.emplace(session->id(), session);
  }
  ++counters.sessions_open;
  return Admission::admitted;
}

void Server::Impl::remove_session(std::uint64_t session_id) {
  {
    const std::lock_guard lock(sessions_mutex);
    if (sessions.erase(session_id) == 0) return;
  }
  --counters.sessions_open;
  sessions_changed.notify_all();
  if (session_closed_handler) session_closed_handler(session_id);
}

std::vector<std::shared_ptr<Session>> Server::Impl::open_sessions(
    std::span<const std::uint64_t> session_ids) {
  std::vector<std::shared_ptr<Session>> out;
  out.reserve(session_ids.size());
  const std::lock_guard lock(sessions_mutex);
  for (const auto session_id : session_ids) {
    const auto found = sessions.find(session_id);
    if (found == sessions.end()) continue;
    if (auto session = found->second.lock()) out.push_back(std::move(session));
  }
  return out;
}

std::vector<std::shared_ptr<Session>> Server::Impl::open_sessions() {
  std::vector<std::shared_ptr<Session>> out;
  const std::lock_guard lock(sessions_mutex);
  out.reserve(sessions.size());
  for (const auto& [id, weak] : sessions) {
    if (auto session = weak.lock()) out.push_back(std::move(session));
  }
  return out;
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(*this, std::move(options))) {}

Server::~Server() { stop(); }

Router& Server::router() noexcept { return impl_->router; }

void Server::on_session_closed(std::function<void(std::uint64_t)> handler) {
  impl_->session_closed_handler = std::move(handler);
}

// Binds TCP and UDP on every address of the host, on one port number: the first socket bound
// picks it when options.port is 0.
boost::system::error_code Server::Impl::bind_all(
    const asio::ip::tcp::resolver::results_type& addresses) {
  boost::system::error_code error;
  std::uint16_t port = options.port;
  for (const auto& address : addresses) {
    const tcp::endpoint endpoint(address.endpoint().address(), port);
    if (options.serve_tcp) {
      auto acceptor = std::make_unique<tcp::acceptor>(*contexts.front());
      if (acceptor->open(endpoint.protocol(), error)) return error;
      acceptor->set_option(tcp::acceptor::reuse_address(true), error);
      if (endpoint.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), error);
      if (acceptor->bind(endpoint, error)) return error;
      if (acceptor->listen(asio::socket_base::max_listen_connections, error)) return error;
      port = acceptor->local_endpoint().port();
      acceptors.push_back(std::move(acceptor));
    }
    if (serves_udp(options)) {
      asio::ip::udp::socket socket(*contexts.front());
      const asio::ip::udp::endpoint udp_endpoint(endpoint.address(), port);
      if (socket.open(udp_endpoint.protocol(), error)) return error;
      if (endpoint.address().is_v6()) socket.set_option(asio::ip::v6_only(true), error);
      if (socket.bind(udp_endpoint, error)) return error;
      port = socket.local_endpoint().port();
      udp_endpoints.push_back(std::make_shared<UdpEndpoint>(*this, std::move(socket)));
    }
  }
  if (acceptors.empty() && udp_endpoints.empty()) return asio::error::host_not_found;
  bound_port = port;
  return {};
}

boost::system::error_code Server::start() {
  auto& impl = *impl_;
  if (impl.running) return {};
  const std::size_t threads = thread_count(impl.options);
  for (std::size_t index = 0; index < threads; ++index) {
    impl.contexts.push_back(std::make_unique<asio::io_context>(1));
  }

  impl.async_handlers = 0;  // those abandoned by an earlier stop() never finished
  boost::system::error_code error;
  tcp::resolver resolver(*impl.contexts.front());
  const auto addresses =
      resolver.resolve(impl.options.host, std::to_string(impl.options.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, error);
  // A free TCP port may be taken for UDP: with port 0, try a few other ports before giving up.
  const int attempts = impl.options.port == 0 ? 5 : 1;
  for (int attempt = 0; attempt < attempts && !error; ++attempt) {
    error = impl.bind_all(addresses);
    if (!error || error != asio::error::address_in_use) break;
    impl.acceptors.clear();
    impl.udp_endpoints.clear();
  }
  if (error) {
    impl.acceptors.clear();
    impl.udp_endpoints.clear();
    impl.contexts.clear();
    impl.bound_port = 0;
    return error;
  }

  {
    // Before the first accept: a session accepted at once must not find the server stopping.
    const std::lock_guard lock(impl.sessions_mutex);
    impl.accepting = true;
  }
  for (auto& acceptor : impl.acceptors) impl.accept(*acceptor);
  for (auto& endpoint : impl.udp_endpoints) endpoint->start();
  for (auto& context : impl.contexts) {
    impl.work.push_back(asio::make_work_guard(*context));
    impl.threads.emplace_back([&context = *context] { context.run(); });
  }
  impl.running = true;
  return {};
}

std::uint16_t Server::port() const noexcept { return impl_->bound_port; }

std::vector<tcp::endpoint> Server::local_endpoints() const {
  std::vector<tcp::endpoint> out;
  for (const auto& acceptor : impl_->acceptors) {
    boost::system::error_code ignored;
    out.push_back(acceptor->local_endpoint(ignored));
  }
  return out;
}

namespace {

std::shared_ptr<const std::vector<std::byte>> event_frame(
    const FrameEncoder& encoder, const google::protobuf::MessageLite& event) {
  auto frame = std::make_shared<std::vector<std::byte>>();
  const std::string type = event.GetTypeName();
  if (append_envelope_frame(*frame, encoder, {0, v1::KIND_EVENT, type, &event, nullptr})) {
    throw std::invalid_argument("Server: the event " + type + " exceeds the max frame");
  }
  return frame;
}

}  // namespace

bool Server::push(std::uint64_t session_id, const google::protobuf::MessageLite& event) {
  const auto sessions = impl_->open_sessions({&session_id, 1});
  if (sessions.empty()) return false;
  sessions.front()->push_frame(event_frame(impl_->encoder, event));
  return true;
}

void Server::push(std::span<const std::uint64_t> session_ids,
                  const google::protobuf::MessageLite& event) {
  const auto frame = event_frame(impl_->encoder, event);
  for (const auto& session : impl_->open_sessions(session_ids)) session->push_frame(frame);
}

void Server::broadcast(const google::protobuf::MessageLite& event) {
  auto frame = event_frame(impl_->encoder, event);
  for (auto& session : impl_->open_sessions()) session->push_frame(frame);
}

void Server::stop() {
  auto& impl = *impl_;
  if (!impl.running.exchange(false)) return;

  // From here on no session registers (see add_session). Then close the acceptors and UDP
  // sockets on their thread, and wait for that.
  {
    const std::lock_guard lock(impl.sessions_mutex);
    impl.accepting = false;
  }
  std::promise<void> listeners_closed;
  asio::post(*impl.contexts.front(), [&impl, &listeners_closed] {
    for (auto& acceptor : impl.acceptors) {
      boost::system::error_code ignored;
      acceptor->close(ignored);
    }
    for (auto& endpoint : impl.udp_endpoints) endpoint->close();
    listeners_closed.set_value();
  });
  listeners_closed.get_future().wait();
  v1::ShuttingDown notice;
  notice.set_drain_timeout_ms(static_cast<std::uint32_t>(impl.options.drain_timeout.count()));
  const auto notice_frame = event_frame(impl.encoder, notice);
  for (auto& session : impl.open_sessions()) {
    asio::post(session->executor(), [session, notice_frame] { session->drain(notice_frame); });
  }
  bool drained = false;
  {
    std::unique_lock lock(impl.sessions_mutex);
    drained = impl.sessions_changed.wait_for(lock, impl.options.drain_timeout, [&impl] {
      return impl.sessions.empty() && impl.async_handlers == 0;
    });
  }
  if (!drained) {
    // Past the deadline: close what is left, and abandon handlers that never finish (a coroutine
    // awaiting forever, on TCP or UDP) rather than let them hold stop() hostage. Each context
    // runs its queue in order, so the closes happen before the stop.
    impl.log("stop: drain timeout; closing the sessions still open");
    for (auto& session : impl.open_sessions()) {
      asio::post(session->executor(), [session] { session->force_close(); });
    }
  }
  // What is left is not a session's: connections refused while full still in their handshake,
  // sessions waiting out their closing linger. They end with the contexts, not after them.
  for (auto& context : impl.contexts) {
    asio::post(*context, [&context = *context] { context.stop(); });
  }
  impl.work.clear();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
  impl.acceptors.clear();
  impl.udp_endpoints.clear();
  impl.contexts.clear();
  impl.bound_port = 0;
}

ServerStats Server::stats() const noexcept {
  const auto& counters = impl_->counters;
  const auto read = [](const std::atomic<std::uint64_t>& value) {
    return value.load(std::memory_order_relaxed);
  };
  return {read(counters.sessions_accepted),
          read(counters.sessions_open),
          read(counters.requests),
          read(counters.errors_sent),
          read(counters.one_way_errors),
          read(counters.frames_dropped),
          read(counters.sessions_failed),
          read(counters.writes),
          read(counters.datagrams_received),
          read(counters.datagrams_dropped),
          read(counters.sessions_refused),
          read(counters.reads_paused),
          read(counters.frames_timed_out),
          read(counters.sessions_too_slow),
          read(counters.sessions_idle_closed),
          read(counters.tls_handshakes_failed)};
}

}  // namespace msgframe
