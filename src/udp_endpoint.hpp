// The server's UDP side: one socket per listening address, one envelope per datagram, replies
// sent back from the same socket to the sender (not installed).
#pragma once

#include <boost/asio/ip/udp.hpp>
#include <memory>
#include <vector>

#include "msgframe/envelope.hpp"
#include "msgframe/router.hpp"
#include "server_impl.hpp"

namespace msgframe {

// Touched only on its io_context's single thread.
class UdpEndpoint final : public std::enable_shared_from_this<UdpEndpoint> {
 public:
  UdpEndpoint(Server::Impl& server, boost::asio::ip::udp::socket socket);

  void start();
  void close();

  // Sends one reply or ERROR datagram to `peer`; replies too big for a datagram become
  // ERROR_CODE_FRAME_TOO_LARGE. Ids of 0 (one-way requests) send nothing.
  void send_reply(const boost::asio::ip::udp::endpoint& peer, const OutgoingEnvelope& reply);
  void send_error(const boost::asio::ip::udp::endpoint& peer, std::uint64_t request_id,
                  v1::ErrorCode code, std::string_view message);
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }
  void async_handler(bool started) { server_.async_handler(started); }

 private:
  void receive();
  void on_datagram(std::size_t bytes);
  void send(const boost::asio::ip::udp::endpoint& peer, const OutgoingEnvelope& envelope);

  Server::Impl& server_;
  boost::asio::ip::udp::socket socket_;
  std::vector<std::byte> datagram_;  // one byte over the limit, to tell oversized ones apart
  std::vector<std::byte> reply_;     // reused for every reply
  boost::asio::ip::udp::endpoint sender_;
};

}  // namespace msgframe
