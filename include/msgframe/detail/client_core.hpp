// The client's connection state machine (not for users): one socket, the calls waiting for
// replies by id, their deadlines, and event subscriptions. Touched only on its strand.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "msgframe/envelope.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"

namespace msgframe::detail {

// A call waiting for its reply; completed exactly once, on the strand.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  // `reply` is the RESPONSE or ERROR envelope, or null when the call failed locally.
  virtual void complete(boost::system::error_code error, const EnvelopeView* reply) = 0;
};

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  using Clock = std::chrono::steady_clock;
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  ClientCore(boost::asio::any_io_executor executor, FrameOptions frame_options,
             std::size_t read_bytes);

  Strand& strand() noexcept { return strand_; }
  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }
  boost::asio::ip::tcp::resolver& resolver() noexcept { return resolver_; }
  const FrameEncoder& encoder() const noexcept { return encoder_; }

  // Any thread.
  std::uint64_t next_call_id() noexcept { return next_call_id_++; }
  bool is_connected() const noexcept { return connected_; }

  // Strand only.
  void on_connected();
  void start_call(std::uint64_t id, std::vector<std::byte> frame, Clock::time_point deadline,
                  std::unique_ptr<PendingCall> call);
  void send(std::vector<std::byte> frame);
  void subscribe(std::string type, std::function<void(std::span<const std::byte>)> handler);
  // Closes the connection; every pending call completes with `reason`.
  void close(boost::system::error_code reason);

 private:
  void read();
  void on_read(const boost::system::error_code& error, std::size_t bytes);
  void on_frame(std::span<const std::byte> body);
  void flush();
  void arm_deadline_timer();
  void on_deadline_timer();

  Strand strand_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer deadline_timer_;
  const std::size_t read_bytes_;
  FrameDecoder decoder_;
  const FrameEncoder encoder_;
  // Frames as the callers serialized them, sent in one gather write: no copy into a queue.
  std::vector<std::vector<std::byte>> queued_;
  std::vector<std::vector<std::byte>> sending_;
  std::vector<boost::asio::const_buffer> send_buffers_;
  bool writing_ = false;
  boost::system::error_code close_reason_;  // from an ERROR envelope with id 0
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> next_call_id_{1};

  std::unordered_map<std::uint64_t, std::unique_ptr<PendingCall>> pending_;
  // Deadlines, earliest first; entries of calls already completed are skipped when they come up.
  using Deadline = std::pair<Clock::time_point, std::uint64_t>;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  Clock::time_point armed_for_ = Clock::time_point::max();

  std::map<std::string, std::function<void(std::span<const std::byte>)>, std::less<>> events_;
};

}  // namespace msgframe::detail
