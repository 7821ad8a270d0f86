// The `raw` system's load client: keeps calls in flight on plain Asio sockets and checks every
// echo, the floor msgframe's client is measured against.
#include "raw_echo.hpp"
#include "raw_frame_buffer.hpp"

namespace bench {

namespace raw {
namespace {

// What TCP and UDP runs share: the io_context, the window and its deadline, the result.
class LoadRun {
 public:
  LoadRun(const Scenario& scenario, const LoadSettings& settings)
      : scenario_(scenario), settings_(settings), deadline_timer_(io_), grace_timer_(io_) {}
  virtual ~LoadRun() = default;

  bool sending() const noexcept { return sending_; }
  bool stopped() const noexcept { return stopped_; }

  void record_reply(Clock::time_point sent_at, Clock::time_point replied_at, bool correct) {
    if (!correct) {
      ++result_.wrong_replies;
    } else if (replied_at <= deadline_) {
      ++result_.calls;
      result_.payload_bytes += scenario_.payload_bytes;
      result_.latency.record(
          std::chrono::duration_cast<std::chrono::nanoseconds>(replied_at - sent_at));
    }
  }

  // Keeps the first failure, and stops.
  void fail(std::string message) {
    if (result_.failure.empty()) result_.failure = std::move(message);
    stop();
  }

  // Closes every socket and cancels every timer: the io_context then runs out of work.
  void stop() {
    stopped_ = true;
    sending_ = false;
    deadline_timer_.cancel();
    grace_timer_.cancel();
    close_all();
  }

 protected:
  // Starts the clock: calls are sent until settings.duration has passed.
  void open_window() {
    deadline_ = Clock::now() + settings_.duration;
    sending_ = true;
    deadline_timer_.expires_at(deadline_);
    deadline_timer_.async_wait([this](const error_code& error) {
      if (error || stopped_) return;
      sending_ = false;
      grace_timer_.expires_at(deadline_ + reply_grace);
      grace_timer_.async_wait([this](const error_code& grace_error) {
        if (grace_error || stopped_) return;
        fail(std::to_string(unanswered()) + " calls were still unanswered 5 s after the window");
      });
      on_window_closed();
    });
  }

  LoadResult finish() {
    result_.window = settings_.duration;
    return std::move(result_);
  }

  virtual void on_window_closed() = 0;
  virtual std::uint64_t unanswered() const = 0;
  virtual void close_all() = 0;

  const Scenario& scenario_;
  const LoadSettings& settings_;
  asio::io_context io_{1};
  LoadResult result_;

 private:
  asio::steady_timer deadline_timer_;
  asio::steady_timer grace_timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool sending_ = false;
  bool stopped_ = false;
};

class TcpLoad;

// One client connection: keeps its calls in flight, all the free ones sent in one write, and
// checks the replies, which come back in order.
class CallerConnection {
 public:
  CallerConnection(TcpLoad& load, asio::io_context& io, const Scenario& scenario);

  tcp::socket& socket() noexcept { return socket_; }
  std::uint64_t unanswered() const noexcept { return next_sequence_ - expected_sequence_; }
  void start() {
    send();
    read();
  }
  void close() {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  void send();
  void read();
  void on_replies();

  TcpLoad& load_;
  tcp::socket socket_;
  std::size_t in_flight_;
  std::size_t payload_bytes_;
  std::vector<char> requests_;  // in_flight_ frames, rewritten for each write
  FrameBuffer replies_;
  std::vector<Clock::time_point> sent_at_;  // by sequence % in_flight_
  std::uint64_t next_sequence_ = 0;
  std::uint64_t expected_sequence_ = 0;
  bool writing_ = false;
};

class TcpLoad final : public LoadRun {
 public:
  TcpLoad(const Scenario& scenario, const LoadSettings& settings)
      : LoadRun(scenario, settings), connect_timer_(io_) {}

  LoadResult run() {
    if (scenario_.payload_bytes > max_body_bytes) return failed("the payload exceeds 4 MiB");
    if (scenario_.connections == 0 || scenario_.in_flight_per_connection == 0) {
      return failed("the scenario asks for no connection or no call in flight");
    }
    error_code error;
    tcp::resolver resolver(io_);
    const auto addresses = resolver.resolve(settings_.host, std::to_string(settings_.port),
                                            tcp::resolver::numeric_service, error);
    if (error) return failed("cannot resolve " + settings_.host + ": " + error.message());
    server_ = addresses.begin()->endpoint();
    for (std::size_t index = 0; index < scenario_.connections; ++index) {
      connections_.emplace_back(*this, io_, scenario_);
    }
    connect_timer_.expires_after(connect_timeout);
    connect_timer_.async_wait([this](const error_code& wait_error) {
      if (wait_error || stopped()) return;
      fail("only " + std::to_string(connected_) + " of " + std::to_string(connections_.size()) +
           " connections opened in 30 s");
    });
    for (std::size_t index = 0; index < std::min(max_connecting, connections_.size()); ++index) {
      connect_next();
    }
    io_.run();
    return finish();
  }

  // A connection whose calls are all answered after the window closes.
  void on_connection_done(CallerConnection& connection) {
    connection.close();
    if (++done_ == connections_.size()) stop();
  }

 private:
  LoadResult failed(std::string message) {
    result_.failure = std::move(message);
    return finish();
  }

  void connect_next() {
    const std::size_t index = next_to_connect_++;
    auto& socket = connections_[index].socket();
    socket.async_connect(server_, [this, index, &socket](const error_code& error) {
      if (stopped()) return;
      if (error) {
        return fail("connection " + std::to_string(index + 1) + " of " +
                    std::to_string(connections_.size()) + " to " + settings_.host + ':' +
                    std::to_string(settings_.port) + " failed: " + error.message());
      }
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (++connected_ == connections_.size()) return on_all_connected();
      if (next_to_connect_ < connections_.size()) connect_next();
    });
  }

  void on_all_connected() {
    connect_timer_.cancel();
    if (settings_.on_connected) settings_.on_connected();
    open_window();
    for (auto& connection : connections_) connection.start();
  }

  void on_window_closed() override {
    for (auto& connection : connections_) {
      if (connection.socket().is_open() && connection.unanswered() == 0) {
        on_connection_done(connection);
      }
    }
  }

  std::uint64_t unanswered() const override {
    std::uint64_t total = 0;
    for (const auto& connection : connections_) total += connection.unanswered();
    return total;
  }

  void close_all() override {
    connect_timer_.cancel();
    for (auto& connection : connections_) connection.close();
  }

  asio::steady_timer connect_timer_;
  tcp::endpoint server_;
  std::deque<CallerConnection> connections_;
  std::size_t next_to_connect_ = 0;
  std::size_t connected_ = 0;
  std::size_t done_ = 0;
};

CallerConnection::CallerConnection(TcpLoad& load, asio::io_context& io, const Scenario& scenario)
    : load_(load),
      socket_(io),
      in_flight_(scenario.in_flight_per_connection),
      payload_bytes_(scenario.payload_bytes),
      requests_(in_flight_ * (prefix_bytes + payload_bytes_)),
      // At most in_flight_ replies are ever due: the buffer never needs more.
      replies_(in_flight_ * (prefix_bytes + payload_bytes_), prefix_bytes + payload_bytes_),
      sent_at_(in_flight_) {}

void CallerConnection::send() {
  const std::size_t free_slots = in_flight_ - static_cast<std::size_t>(unanswered());
  if (writing_ || free_slots == 0 || !load_.sending()) return;
  const std::size_t frame_bytes = prefix_bytes + payload_bytes_;
  const std::uint64_t first_sequence = next_sequence_;
  for (std::size_t slot = 0; slot < free_slots; ++slot) {
    char* frame = requests_.data() + slot * frame_bytes;
    write_prefix(frame, static_cast<std::uint32_t>(payload_bytes_));
    write_payload(frame + prefix_bytes, payload_bytes_, next_sequence_++);
  }
  const auto now = Clock::now();
  for (auto sequence = first_sequence; sequence < next_sequence_; ++sequence) {
    sent_at_[sequence % in_flight_] = now;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(requests_.data(), free_slots * frame_bytes),
                    [this](const error_code& error, std::size_t) {
                      writing_ = false;
                      if (!socket_.is_open()) return;
                      if (error) return load_.fail("sending calls failed: " + error.message());
                      send();
                    });
}

void CallerConnection::read() {
  if (!replies_.prepare_read()) return load_.fail("the server sent a frame longer than any call");
  socket_.async_read_some(replies_.free_space(),
                          [this](const error_code& error, std::size_t bytes) {
                            if (!socket_.is_open()) return;
                            if (error) {
                              return load_.fail("receiving replies failed: " + error.message());
                            }
                            replies_.commit(bytes);
                            on_replies();
                          });
}

void CallerConnection::on_replies() {
  const auto now = Clock::now();
  while (const auto body = replies_.take_frame()) {
    if (unanswered() == 0) return load_.fail("the server sent a reply to no call");
    const auto sequence = expected_sequence_++;
    const bool correct =
        body->size() == payload_bytes_ && payload_matches(body->data(), body->size(), sequence);
    load_.record_reply(sent_at_[sequence % in_flight_], now, correct);
  }
  if (load_.sending()) {
    send();
  } else if (unanswered() == 0) {
    return load_.on_connection_done(*this);
  }
  read();
}

// The UDP scenario: one call at a time on a connected socket, resent when its echo is late.
class DatagramLoad final : public LoadRun {
 public:
  DatagramLoad(const Scenario& scenario, const LoadSettings& settings)
      : LoadRun(scenario, settings),
        socket_(io_),
        resend_timer_(io_),
        request_(scenario.payload_bytes),
        reply_(max_datagram_bytes + 1) {
    resent_sequences_.reserve(max_resends);
  }

  LoadResult run() {
    if (scenario_.payload_bytes > max_datagram_bytes) {
      result_.failure = "the payload does not fit in a datagram";
      return finish();
    }
    error_code error;
    udp::resolver resolver(io_);
    const auto addresses = resolver.resolve(settings_.host, std::to_string(settings_.port),
                                            udp::resolver::numeric_service, error);
    if (!error) socket_.connect(addresses.begin()->endpoint(), error);
    if (error) {
      result_.failure = "cannot reach " + settings_.host + " over UDP: " + error.message();
      return finish();
    }
    if (settings_.on_connected) settings_.on_connected();
    receive();
    open_window();
    start_call();
    io_.run();
    return finish();
  }

 private:
  void start_call() {
    // The buffer may still be in a resend's hands: write the next call once it is sent.
    if (transmitting_) {
      call_after_transmit_ = true;
      return;
    }
    write_payload(request_.data(), request_.size(), ++sequence_);
    sent_at_ = Clock::now();
    awaiting_reply_ = true;
    transmit();
  }

  void transmit() {
    transmitting_ = true;
    socket_.async_send(asio::buffer(request_), [this](const error_code& error, std::size_t) {
      transmitting_ = false;
      if (stopped()) return;
      if (error) return fail("sending a datagram failed: " + error.message());
      if (call_after_transmit_) {
        call_after_transmit_ = false;
        return start_call();
      }
      if (awaiting_reply_) resend_later();
    });
  }

  void resend_later() {
    resend_timer_.expires_after(resend_after);
    resend_timer_.async_wait([this, sequence = sequence_](const error_code& error) {
      if (error || stopped() || !awaiting_reply_ || sequence != sequence_) return;
      if (++resends_ > max_resends) {
        return fail("more than 5 datagrams went unanswered for 200 ms on the way to " +
                    settings_.host + " and back");
      }
      if (resent_sequences_.empty() || resent_sequences_.back() != sequence_) {
        resent_sequences_.push_back(sequence_);
      }
      transmit();
    });
  }

  void receive() {
    socket_.async_receive(asio::buffer(reply_), [this](const error_code& error, std::size_t bytes) {
      if (stopped()) return;
      if (error) return fail("receiving a datagram failed: " + error.message());
      on_datagram(bytes);
      if (!stopped()) receive();
    });
  }

  void on_datagram(std::size_t bytes) {
    const auto now = Clock::now();
    if (awaiting_reply_ && bytes == request_.size() &&
        payload_matches(reply_.data(), bytes, sequence_)) {
      awaiting_reply_ = false;
      record_reply(sent_at_, now, true);
      if (sending()) return start_call();
      return stop();
    }
    // An echo of a resent call's first copy arrives twice: count it once, as answered.
    const bool late_copy =
        bytes == request_.size() &&
        std::any_of(resent_sequences_.begin(), resent_sequences_.end(),
                    [&](auto sequence) { return payload_matches(reply_.data(), bytes, sequence); });
    if (!late_copy) record_reply(sent_at_, now, false);
  }

  void on_window_closed() override {
    if (!awaiting_reply_) stop();
  }
  std::uint64_t unanswered() const override { return awaiting_reply_ ? 1 : 0; }
  void close_all() override {
    resend_timer_.cancel();
    error_code ignored;
    socket_.close(ignored);
  }

  udp::socket socket_;
  asio::steady_timer resend_timer_;
  std::vector<char> request_;
  std::vector<char> reply_;  // one byte more than a datagram holds: a longer one shows
  std::vector<std::uint64_t> resent_sequences_;
  std::uint64_t sequence_ = 0;
  int resends_ = 0;
  Clock::time_point sent_at_;
  bool awaiting_reply_ = false;
  bool transmitting_ = false;
  bool call_after_transmit_ = false;
};

}  // namespace
}  // namespace raw

LoadResult load_raw(const Scenario& scenario, const LoadSettings& settings) {
  try {
    if (scenario.carrier == Carrier::udp) return raw::DatagramLoad(scenario, settings).run();
    return raw::TcpLoad(scenario, settings).run();
  } catch (const std::exception& error) {
    LoadResult result;
    result.failure = std::string("the raw load client stopped: ") + error.what();
    return result;
  }
}

}  // namespace bench
