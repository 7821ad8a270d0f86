// TLS for msgframe's TCP connections: certificates and what each side verifies.
#pragma once

#include <string>

namespace msgframe {

// TLS 1.2 or newer only; files are PEM.
struct TlsServerOptions {
  std::string certificate_file;  // the server's certificate chain, leaf first
  std::string private_key_file;
  // Mutual TLS: when set, a client must present a certificate signed by one of these CAs, or it
  // is refused during the handshake.
  std::string client_ca_file;
  // TLS protects TCP only. A server with TLS serves no UDP unless this says so (and then serves
  // plaintext to anyone who sends a datagram).
  bool plaintext_udp = false;
};

struct TlsClientOptions {
  // The CAs the server's certificate must chain to; empty: the system's trust store.
  std::string ca_file;
  // Verifying the server (its chain, and that it is issued for server_name) is on by default;
  // turning it off leaves the connection open to anyone in the middle.
  bool verify_server = true;
  // The name the certificate must be issued for, also sent as SNI; empty: the host given to
  // connect() (a host name or an IP address).
  std::string server_name;
  // A client certificate, for servers that ask for one (mutual TLS).
  std::string certificate_file;
  std::string private_key_file;
};

}  // namespace msgframe
