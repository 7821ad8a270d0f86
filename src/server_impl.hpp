// Server internals shared by the server and its sessions (not installed).
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "msgframe/frame_encoder.hpp"
#include "msgframe/server.hpp"
#include "tls_context.hpp"

namespace msgframe {

class Session;
class UdpEndpoint;

struct ServerCounters {
  std::atomic<std::uint64_t> sessions_accepted{0};
  std::atomic<std::uint64_t> sessions_open{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors_sent{0};
  std::atomic<std::uint64_t> one_way_errors{0};
  std::atomic<std::uint64_t> frames_dropped{0};
  std::atomic<std::uint64_t> sessions_failed{0};
  std::atomic<std::uint64_t> sessions_refused{0};
  std::atomic<std::uint64_t> reads_paused{0};
  std::atomic<std::uint64_t> frames_timed_out{0};
  std::atomic<std::uint64_t> sessions_too_slow{0};
  std::atomic<std::uint64_t> sessions_idle_closed{0};
  std::atomic<std::uint64_t> tls_handshakes_failed{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> datagrams_received{0};
  std::atomic<std::uint64_t> datagrams_dropped{0};
};

class Server::Impl {
 public:
  Impl(Server& owner, ServerOptions options);

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // Coroutine handlers running, on any transport: stop() waits for them (within its deadline).
  void async_handler(bool started);
  enum class Admission { admitted, stopping, full };
  // Registers the session, unless stop() has begun or max_sessions are open: the caller then
  // closes it (telling the peer OVERLOADED when full).
  Admission add_session(const std::shared_ptr<Session>& session);
  void remove_session(std::uint64_t session_id);
  std::vector<std::shared_ptr<Session>> open_sessions();
  // Those of session_ids that are open, in that order.
  std::vector<std::shared_ptr<Session>> open_sessions(std::span<const std::uint64_t> session_ids);

  Server& owner;
  const ServerOptions options;
  const FrameOptions frame_options;
  const FrameEncoder encoder;
  const std::unique_ptr<boost::asio::ssl::context> tls_context;  // null: plaintext
  // Before the contexts: handlers still queued there refer to routes when they are destroyed.
  Router router;
  std::function<void(std::uint64_t)> session_closed_handler;
  ServerCounters counters;

  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;
  std::vector<std::shared_ptr<UdpEndpoint>> udp_endpoints;
  std::atomic<std::size_t> next_context{0};
  std::atomic<std::uint64_t> next_session_id{1};
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<bool> running{false};

  std::mutex sessions_mutex;
  std::condition_variable sessions_changed;
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions;
  bool accepting = false;           // under sessions_mutex: sessions may register
  std::int64_t async_handlers = 0;  // under sessions_mutex

 private:
  friend class Server;
  boost::system::error_code bind_all(const boost::asio::ip::tcp::resolver::results_type& addresses);
  void accept(boost::asio::ip::tcp::acceptor& acceptor);
  void retry_accept_later(boost::asio::ip::tcp::acceptor& acceptor);
  boost::asio::io_context& pick_context();
};

}  // namespace msgframe
