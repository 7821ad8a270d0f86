// The client's connection: batched writes, the read loop, replies matched to calls by id,
// deadlines from one timer.
#include "msgframe/detail/client_core.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

namespace msgframe::detail {

namespace asio = boost::asio;

ClientCore::ClientCore(asio::any_io_executor executor, FrameOptions frame_options,
                       std::size_t read_bytes)
    : strand_(asio::make_strand(executor)),
      socket_(strand_),
      resolver_(strand_),
      deadline_timer_(strand_),
      read_bytes_(read_bytes),
      decoder_(frame_options),
      encoder_(frame_options) {}

void ClientCore::on_connected() {
  boost::system::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  decoder_.reset();
  close_reason_.clear();
  connected_ = true;
  read();
  flush();
}

void ClientCore::start_call(std::uint64_t id, std::vector<std::byte> frame,
                            Clock::time_point deadline, std::unique_ptr<PendingCall> call) {
  if (!connected_) {
    call->complete(msgframe::error::not_connected, nullptr);
    return;
  }
  pending_.emplace(id, std::move(call));
  deadlines_.emplace(deadline, id);
  if (deadline < armed_for_) arm_deadline_timer();
  send(std::move(frame));
}

void ClientCore::send(std::vector<std::byte> frame) {
  if (!connected_) return;
  queued_.push_back(std::move(frame));
  flush();
}

void ClientCore::subscribe(std::string type,
                           std::function<void(std::span<const std::byte>)> handler) {
  events_.insert_or_assign(std::move(type), std::move(handler));
}

// Every frame queued while a write is in progress goes out in the next single gather write.
void ClientCore::flush() {
  if (writing_ || queued_.empty() || !connected_) return;
  writing_ = true;
  std::swap(queued_, sending_);
  send_buffers_.clear();
  for (const auto& frame : sending_) send_buffers_.emplace_back(frame.data(), frame.size());
  asio::async_write(
      socket_, send_buffers_,
      [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
        self->writing_ = false;
        self->sending_.clear();
        if (error) return self->close(msgframe::error::connection_lost);
        self->flush();
      });
}

void ClientCore::read() {
  auto space = decoder_.prepare(read_bytes_);
  socket_.async_read_some(
      asio::buffer(space.data(), space.size()),
      [self = shared_from_this()](const boost::system::error_code& error, std::size_t bytes) {
        self->on_read(error, bytes);
      });
}

void ClientCore::on_read(const boost::system::error_code& error, std::size_t bytes) {
  if (!connected_) return;
  if (error) return close(close_reason_ ? close_reason_ : msgframe::error::connection_lost);
  decoder_.commit(bytes);
  while (const auto body = decoder_.next()) on_frame(*body);
  if (decoder_.error()) return close(decoder_.error());
  read();
}

void ClientCore::on_frame(std::span<const std::byte> body) {
  EnvelopeView envelope;
  if (parse_envelope(body, envelope)) return;  // nothing to match it to: dropped
  if (envelope.kind == v1::KIND_EVENT) {
    if (const auto handler = events_.find(envelope.type); handler != events_.end()) {
      handler->second(envelope.payload);
    }
    return;
  }
  if (envelope.kind != v1::KIND_RESPONSE && envelope.kind != v1::KIND_ERROR) return;
  if (envelope.id == 0 && envelope.error) {
    // A connection-level error (the server is about to close): the reason pending calls fail.
    close_reason_ = from_wire_error(envelope.error->code());
    return;
  }
  const auto call = pending_.find(envelope.id);
  if (call == pending_.end()) return;  // late (timed out) or never asked for: dropped
  auto pending = std::move(call->second);
  pending_.erase(call);
  pending->complete({}, &envelope);
}

void ClientCore::arm_deadline_timer() {
  armed_for_ = deadlines_.top().first;
  deadline_timer_.expires_at(armed_for_);
  deadline_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (error != asio::error::operation_aborted) self->on_deadline_timer();
  });
}

void ClientCore::on_deadline_timer() {
  armed_for_ = Clock::time_point::max();
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    const auto id = deadlines_.top().second;
    deadlines_.pop();
    if (const auto call = pending_.find(id); call != pending_.end()) {
      auto pending = std::move(call->second);
      pending_.erase(call);
      pending->complete(msgframe::error::timeout, nullptr);
    }
  }
  if (!deadlines_.empty()) arm_deadline_timer();
}

void ClientCore::close(boost::system::error_code reason) {
  connected_ = false;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  deadline_timer_.cancel();
  armed_for_ = Clock::time_point::max();
  deadlines_ = {};
  queued_.clear();
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, call] : pending) call->complete(reason, nullptr);
}

}  // namespace msgframe::detail
