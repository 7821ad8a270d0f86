// TLS contexts and streams for the server and the client (not installed).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "msgframe/tls_options.hpp"

namespace msgframe {

// A TLS stream over a socket owned elsewhere, so the socket stays the session's (or the
// client's) to connect, time out and close.
using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

// Both throw std::invalid_argument naming the file that cannot be used, and why.
boost::asio::ssl::context make_server_tls_context(const TlsServerOptions& options);
boost::asio::ssl::context make_client_tls_context(const TlsClientOptions& options);

}  // namespace msgframe
