// The non-template part of msgframe::Client: construction, its own I/O thread, blocking connect.
#include "msgframe/client.hpp"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace msgframe {

namespace {

const ClientOptions& validated(const ClientOptions& options) {
  validate(protocol_framing(options.max_frame_bytes));
  if (options.read_bytes == 0) throw std::invalid_argument("ClientOptions: read_bytes is 0");
  if (options.max_datagram_bytes == 0 || options.max_datagram_bytes > 65507) {
    throw std::invalid_argument("ClientOptions: max_datagram_bytes must be 1 to 65507");
  }
  if (options.udp_resends < 0 || options.udp_resend_interval.count() <= 0 ||
      options.reconnect_backoff_min.count() <= 0 ||
      options.reconnect_backoff_max < options.reconnect_backoff_min) {
    throw std::invalid_argument(
        "ClientOptions: udp_resends must be >= 0, intervals positive, backoff max >= min");
  }
  if (options.max_pending_calls == 0) {
    throw std::invalid_argument("ClientOptions: max_pending_calls is 0 (no call could be made)");
  }
  if (options.tls && options.transport == Transport::udp) {
    throw std::invalid_argument("ClientOptions: TLS protects TCP only; it cannot go over UDP");
  }
  return options;
}

// The I/O threads of clients destroyed on them (in one of their own completion handlers). Each
// ends once its last completions have run; the next client made or destroyed elsewhere joins it,
// and so does the exit of the program, so that none is still running while statics are destroyed.
class ThreadReaper {
 public:
  static void adopt(std::thread thread) {
    auto& reaper = instance();  // made on first use: destroyed before the statics made before it
    const std::lock_guard lock(reaper.mutex_);
    reaper.threads_.push_back(std::move(thread));
    used_ = true;
  }

  static void join_finished_elsewhere() {
    if (used_) instance().join_all_but_this_one();
  }

  ThreadReaper(const ThreadReaper&) = delete;
  ThreadReaper& operator=(const ThreadReaper&) = delete;
  ~ThreadReaper() { join_all_but_this_one(); }

 private:
  ThreadReaper() = default;

  static ThreadReaper& instance() {
    static ThreadReaper reaper;
    return reaper;
  }

  // A thread cannot join itself: one of these threads making a client keeps its own entry.
  void join_all_but_this_one() {
    std::vector<std::thread> joining;
    {
      const std::lock_guard lock(mutex_);
      const auto mine = std::partition(threads_.begin(), threads_.end(), [](const auto& thread) {
        return thread.get_id() == std::this_thread::get_id();
      });
      joining.assign(std::make_move_iterator(mine), std::make_move_iterator(threads_.end()));
      threads_.erase(mine, threads_.end());
    }
    for (auto& thread : joining) thread.join();
  }

  static inline std::atomic<bool> used_{false};
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

}  // namespace

Client::Client(boost::asio::any_io_executor executor, ClientOptions options)
    : options_(options),
      call_timeout_(options.call_timeout),
      core_(std::make_shared<detail::ClientCore>(executor, validated(options),
                                                 options.executor_is_single_threaded)) {
  ThreadReaper::join_finished_elsewhere();
}

Client::Client(ClientOptions options)
    : options_(options),
      own_context_(std::make_shared<boost::asio::io_context>(1)),
      call_timeout_(options.call_timeout) {
  ThreadReaper::join_finished_elsewhere();
  // Its one thread is the strand.
  core_ =
      std::make_shared<detail::ClientCore>(own_context_->get_executor(), validated(options), true);
  own_work_.emplace(own_context_->get_executor());
  // The thread keeps the context alive, for a client destroyed on it (see ~Client).
  own_thread_ = std::thread([context = own_context_] { context->run(); });
}

Client::~Client() {
  // In one of the client's own completion handlers, close at once: replies read with the one
  // being handled must not complete (into messages their owner may be destroying) after this
  // returns. The completions it causes are posted, never run inside the destructor.
  if (core_->on_strand()) {
    core_->enter([](detail::ClientCore& core) { core.close(msgframe::error::connection_lost); });
  }
  close();  // also posted: behind an async_connect() posted before it, which it must end
  if (own_context_) {
    // The thread ends once the close and the completions it causes have run.
    own_work_.reset();
    // On that thread itself, joining would throw (and terminate): the thread runs on, frees the
    // context once it has run out of work, and is joined later.
    if (own_thread_.get_id() == std::this_thread::get_id()) {
      ThreadReaper::adopt(std::move(own_thread_));
    } else {
      own_thread_.join();
      ThreadReaper::join_finished_elsewhere();
    }
  }
}

void Client::close() {
  // Posted even on the strand, behind an async_connect() made before it (also posted), which it
  // must end.
  boost::asio::post(core_->executor(),
                    [core = core_] { core->close(msgframe::error::connection_lost); });
}

void Client::expect_other_thread() const {
  if (core_->on_strand()) {
    throw std::logic_error(
        "msgframe::Client: a blocking call from the client's own executor would wait forever; "
        "use async_call there");
  }
}

boost::system::error_code Client::connect(const std::string& host, std::uint16_t port) {
  expect_other_thread();
  std::promise<boost::system::error_code> done;
  auto result = done.get_future();
  async_connect(host, port, [&done](boost::system::error_code error) { done.set_value(error); });
  return result.get();
}

}  // namespace msgframe
