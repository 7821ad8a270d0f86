// Serving envelopes over UDP: receive, dispatch through the router, reply to the sender.
#include "udp_endpoint.hpp"

#include <boost/asio/buffer.hpp>

#include "msgframe/envelope.hpp"

namespace msgframe {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// The reply path of one datagram request: where its reply goes, held by async handlers.
class DatagramReply final : public ReplyChannel {
 public:
  DatagramReply(std::shared_ptr<UdpEndpoint> endpoint, udp::endpoint peer)
      : endpoint_(std::move(endpoint)), peer_(std::move(peer)) {}

  void send_reply(std::uint64_t request_id, std::string_view type,
                  const google::protobuf::MessageLite& response) override {
    endpoint_->send_reply(peer_, {request_id, v1::KIND_RESPONSE, type, &response, nullptr});
  }
  void send_serialized_reply(std::uint64_t request_id, std::string_view type,
                             std::span<const std::byte> response) override {
    endpoint_->send_reply(peer_, {request_id, v1::KIND_RESPONSE, type, nullptr, nullptr, response});
  }
  void send_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message) override {
    endpoint_->send_error(peer_, request_id, code, message);
  }
  asio::any_io_executor executor() override { return endpoint_->executor(); }
  std::shared_ptr<ReplyChannel> keep_alive() override {
    // A handler on the stack below dispatch() is not shared yet: make a copy that is.
    return std::make_shared<DatagramReply>(endpoint_, peer_);
  }
  void on_async_handler(bool started) override { endpoint_->async_handler(started); }

 private:
  std::shared_ptr<UdpEndpoint> endpoint_;
  udp::endpoint peer_;
};

}  // namespace

UdpEndpoint::UdpEndpoint(Server::Impl& server, udp::socket socket)
    : server_(server),
      socket_(std::move(socket)),
      datagram_(server.options.max_datagram_bytes + 1) {
  // Replies are sent without waiting: a full send buffer drops the reply (counted), as the
  // network may, rather than block an I/O thread.
  boost::system::error_code ignored;
  socket_.non_blocking(true, ignored);
}

void UdpEndpoint::start() { receive(); }

void UdpEndpoint::close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

void UdpEndpoint::receive() {
  socket_.async_receive_from(
      asio::buffer(datagram_), sender_,
      [self = shared_from_this()](const boost::system::error_code& error, std::size_t bytes) {
        if (error == asio::error::operation_aborted) return;
        if (!self->socket_.is_open()) return;
        // Other errors (an ICMP error reported on this socket, say)
        // concern one peer: keep serving everyone else.
        if (!error) self->on_datagram(bytes);
        self->receive();
      });
}

void UdpEndpoint::on_datagram(std::size_t bytes) {
  ++server_.counters.datagrams_received;
  // The buffer holds one byte more than the limit: filling it means the datagram was larger
  // (and truncated by the kernel), so it is dropped unparsed.
  if (bytes > server_.options.max_datagram_bytes) {
    ++server_.counters.datagrams_dropped;
    return;
  }
  EnvelopeView envelope;
  if (parse_envelope(std::span(datagram_).first(bytes), envelope) ||
      envelope.kind != v1::KIND_REQUEST) {
    ++server_.counters.datagrams_dropped;  // no reply: never reflect garbage to a sender
    return;
  }
  ++server_.counters.requests;
  RequestContext context;
  context.request_id = envelope.id;
  context.peer_address = sender_.address();
  context.peer_port = sender_.port();
  context.server = &server_.owner;
  DatagramReply channel(shared_from_this(), sender_);
  server_.router.dispatch(envelope.type, envelope.payload, context, channel);
}

void UdpEndpoint::send_reply(const udp::endpoint& peer, const OutgoingEnvelope& reply) {
  if (reply.id == 0) return;
  send(peer, reply);
}

void UdpEndpoint::send_error(const udp::endpoint& peer, std::uint64_t request_id,
                             v1::ErrorCode code, std::string_view message) {
  if (request_id == 0) {
    ++server_.counters.one_way_errors;
    return;
  }
  v1::Error error;
  error.set_code(code);
  error.set_message(std::string(message));
  ++server_.counters.errors_sent;
  send(peer, {request_id, v1::KIND_ERROR, {}, nullptr, &error});
}

void UdpEndpoint::send(const udp::endpoint& peer, const OutgoingEnvelope& envelope) {
  if (!socket_.is_open()) return;
  const std::size_t size = envelope_size(envelope);
  if (size > server_.options.max_datagram_bytes && envelope.kind == v1::KIND_ERROR) {
    ++server_.counters.datagrams_dropped;  // an ERROR too big for the datagram limit
    return;
  }
  if (size > server_.options.max_datagram_bytes) {
    send_error(peer, envelope.id, v1::ERROR_CODE_FRAME_TOO_LARGE,
               "the reply exceeds the max datagram of " +
                   std::to_string(server_.options.max_datagram_bytes) + " bytes");
    return;
  }
  reply_.clear();
  append_envelope(reply_, envelope, size);
  boost::system::error_code error;
  socket_.send_to(asio::buffer(reply_), peer, 0, error);
  if (error) ++server_.counters.datagrams_dropped;
}

}  // namespace msgframe
