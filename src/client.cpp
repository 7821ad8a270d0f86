// The non-template part of msgframe::Client: construction, its own I/O thread, blocking connect.
#include "msgframe/client.hpp"

#include <stdexcept>

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

}  // namespace

Client::Client(boost::asio::any_io_executor executor, ClientOptions options)
    : options_(options),
      core_(std::make_shared<detail::ClientCore>(executor, validated(options),
                                                 options.executor_is_single_threaded)) {}

Client::Client(ClientOptions options)
    : options_(options), own_context_(std::make_shared<boost::asio::io_context>(1)) {
  // Its one thread is the strand.
  core_ =
      std::make_shared<detail::ClientCore>(own_context_->get_executor(), validated(options), true);
  own_work_.emplace(own_context_->get_executor());
  // The thread keeps the context alive, for a client destroyed on it (see ~Client).
  own_thread_ = std::thread([context = own_context_] { context->run(); });
}

Client::~Client() {
  close();
  if (own_context_) {
    // The thread ends once the close and the completions it causes have run.
    own_work_.reset();
    // On that thread itself, joining would throw (and terminate): the thread runs on, and frees
    // the context once it has run out of work.
    if (own_thread_.get_id() == std::this_thread::get_id()) {
      own_thread_.detach();
    } else {
      own_thread_.join();
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
