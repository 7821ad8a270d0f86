// The `raw` system's server: an echo of 4-byte-length-prefixed frames written straight on
// Boost.Asio, with no framework between the socket and the frames.
#include "raw_echo.hpp"
#include "raw_frame_buffer.hpp"

namespace bench {

namespace raw {
namespace {

// One TCP connection: read, echo every whole frame of the read in one write, read again only
// when the write is done (the peer's sending is held back by TCP, not by our memory).
class EchoConnection : public std::enable_shared_from_this<EchoConnection> {
 public:
  EchoConnection(tcp::socket socket, tcp::endpoint peer)
      : socket_(std::move(socket)),
        peer_(std::move(peer)),
        buffer_(read_bytes, prefix_bytes + max_body_bytes) {}

  // Waits for the first bytes before the first read: the buffer is taken only then.
  void start() {
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this()](const error_code& error) {
                         if (error) return self->report(error);
                         self->read();
                       });
  }

 private:
  void read() {
    if (!buffer_.prepare_read()) {
      std::cerr << "raw: closing the connection from " << peer_
                << ": it sent a frame larger than 4 MiB\n";
      return;
    }
    socket_.async_read_some(buffer_.free_space(), [self = shared_from_this()](
                                                      const error_code& error, std::size_t bytes) {
      if (error) return self->report(error);
      self->buffer_.commit(bytes);
      self->echo();
    });
  }

  void echo() {
    // The echo of whole frames is the very bytes received: write them from the read buffer.
    const auto frames = buffer_.take_whole_frames();
    if (frames.empty()) return read();
    asio::async_write(socket_, asio::buffer(frames.data(), frames.size()),
                      [self = shared_from_this()](const error_code& error, std::size_t) {
                        if (error) return self->report(error);
                        self->read();
                      });
  }

  // The connection closes when the last handler holding it returns.
  void report(const error_code& error) const {
    if (error == asio::error::eof || error == asio::error::connection_reset ||
        error == asio::error::broken_pipe || error == asio::error::operation_aborted) {
      return;  // the peer left, or we are stopping: the normal ends
    }
    std::cerr << "raw: closing the connection from " << peer_ << ": " << error.message() << '\n';
  }

  tcp::socket socket_;
  tcp::endpoint peer_;
  FrameBuffer buffer_;
};

// The UDP side: each datagram goes back to its sender as is.
class DatagramEcho {
 public:
  explicit DatagramEcho(udp::socket socket)
      : socket_(std::move(socket)), datagram_(max_datagram_bytes) {
    // Echoes are sent without waiting: a full send buffer drops one, as the network may.
    error_code ignored;
    socket_.non_blocking(true, ignored);
  }

  void start() {
    socket_.async_receive_from(asio::buffer(datagram_), sender_,
                               [this](const error_code& error, std::size_t bytes) {
                                 if (error == asio::error::operation_aborted) return;
                                 if (!socket_.is_open()) return;
                                 // Any other error concerns one peer: keep serving the others.
                                 if (!error) echo(bytes);
                                 start();
                               });
  }

 private:
  void echo(std::size_t bytes) {
    error_code error;
    socket_.send_to(asio::buffer(datagram_.data(), bytes), sender_, 0, error);
    if (error && error != asio::error::would_block) {
      std::cerr << "raw: cannot echo a datagram to " << sender_ << ": " << error.message() << '\n';
    }
  }

  udp::socket socket_;
  udp::endpoint sender_;
  std::vector<char> datagram_;
};

// Binds TCP, then UDP on the port TCP got.
error_code bind_both(tcp::acceptor& acceptor, udp::socket& datagrams, const tcp::endpoint& where) {
  error_code error;
  if (acceptor.open(where.protocol(), error)) return error;
  acceptor.set_option(tcp::acceptor::reuse_address(true), error);
  if (acceptor.bind(where, error)) return error;
  if (acceptor.listen(asio::socket_base::max_listen_connections, error)) return error;
  const udp::endpoint udp_where(where.address(), acceptor.local_endpoint().port());
  if (datagrams.open(udp_where.protocol(), error)) return error;
  datagrams.bind(udp_where, error);
  return error;
}

// I/O threads with one io_context each; the first also runs the acceptor, the UDP echo and the
// signal handler, and hands new connections round-robin to them all.
class EchoServer {
 public:
  explicit EchoServer(std::size_t threads)
      : contexts_(make_contexts(std::max<std::size_t>(threads, 1))),
        acceptor_(contexts_.front()),
        accept_retry_(contexts_.front()),
        signals_(contexts_.front(), SIGINT, SIGTERM) {}

  error_code bind(const ServeSettings& settings) {
    error_code error;
    tcp::resolver resolver(contexts_.front());
    const auto addresses =
        resolver.resolve(settings.host, std::to_string(settings.port),
                         tcp::resolver::passive | tcp::resolver::numeric_service, error);
    if (error) return error;
    // A free TCP port may be taken for UDP: with port 0, try a few others before giving up.
    for (int attempt = 0; attempt < (settings.port == 0 ? 5 : 1); ++attempt) {
      udp::socket datagrams(contexts_.front());
      error = bind_both(acceptor_, datagrams, addresses.begin()->endpoint());
      if (!error) {
        datagrams_.emplace(std::move(datagrams));
        return error;
      }
      error_code ignored;
      acceptor_.close(ignored);
      if (error != asio::error::address_in_use) break;
    }
    return error;
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Serves until SIGINT or SIGTERM.
  void run() {
    signals_.async_wait([this](const error_code& error, int) {
      if (error) return;
      for (auto& context : contexts_) context.stop();
    });
    accept();
    datagrams_->start();
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
    std::vector<std::jthread> threads;
    for (std::size_t index = 1; index < contexts_.size(); ++index) {
      keep_running.push_back(asio::make_work_guard(contexts_[index]));
      threads.emplace_back([&context = contexts_[index]] { context.run(); });
    }
    contexts_.front().run();
  }

 private:
  // Each context is run by one thread: tell Asio, which then takes fewer locks.
  static std::deque<asio::io_context> make_contexts(std::size_t count) {
    std::deque<asio::io_context> contexts;
    for (std::size_t index = 0; index < count; ++index) contexts.emplace_back(1);
    return contexts;
  }

  void accept() {
    auto& context = contexts_[next_context_++ % contexts_.size()];
    acceptor_.async_accept(context, [this, &context](const error_code& error, tcp::socket socket) {
      if (error == asio::error::operation_aborted) return;
      if (error) {
        // EMFILE and friends: back off rather than spin, and keep serving open connections.
        std::cerr << "raw: accept failed: " << error.message() << "; retrying in 100 ms\n";
        accept_retry_.expires_after(std::chrono::milliseconds(100));
        accept_retry_.async_wait([this](const error_code& wait_error) {
          if (!wait_error) accept();
        });
        return;
      }
      error_code peer_error;
      auto peer = socket.remote_endpoint(peer_error);
      socket.set_option(tcp::no_delay(true), peer_error);
      auto connection = std::make_shared<EchoConnection>(std::move(socket), std::move(peer));
      // The connection lives on its own thread from the start.
      asio::post(context, [connection] { connection->start(); });
      accept();
    });
  }

  // First member: the sockets below, and the connections its handlers own, go before it.
  std::deque<asio::io_context> contexts_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  std::optional<DatagramEcho> datagrams_;
  asio::signal_set signals_;
  std::size_t next_context_ = 0;
};

}  // namespace
}  // namespace raw

int serve_raw(const ServeSettings& settings) {
  try {
    // The signal handler is in place before "listening on": a signal sent on reading it
    // must find it, not the default action.
    raw::EchoServer server(settings.threads);
    if (const auto error = server.bind(settings)) {
      std::cerr << "raw: cannot listen on " << settings.host << ':' << settings.port << ": "
                << error.message() << '\n';
      return 1;
    }
    std::cout << "listening on " << server.port() << '\n' << std::flush;
    server.run();
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "raw: " << error.what() << '\n';
    return 1;
  }
}

}  // namespace bench
