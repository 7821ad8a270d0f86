// msgframe-server: the reference server, serving Echo and Time (docs/PROTOCOL.md §5).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <csignal>
#include <iostream>
#include <sstream>
#include <thread>

#include "msgframe/echo_service.hpp"
#include "msgframe/server.hpp"
#include "msgframe/time_service.hpp"

namespace options = boost::program_options;

namespace {

std::string host_port(const boost::asio::ip::tcp::endpoint& endpoint) {
  std::ostringstream out;
  if (endpoint.address().is_v6()) {
    out << '[' << endpoint.address().to_string() << "]:" << endpoint.port();
  } else {
    out << endpoint.address().to_string() << ':' << endpoint.port();
  }
  return out.str();
}

int serve(const msgframe::ServerOptions& server_options) {
  // Before the 'listening on' line: a SIGINT or SIGTERM sent as soon as it is read must find
  // our handler, not the default one that kills the process. Signals before async_wait queue.
  boost::asio::io_context signals_context;
  boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);

  msgframe::Server server(server_options);
  msgframe::add_echo_service(server.router());
  msgframe::add_time_service(server.router());
  if (const auto error = server.start()) {
    std::cerr << "msgframe-server: cannot listen on " << server_options.host << ':'
              << server_options.port << ": " << error.message() << '\n';
    return 1;
  }
  std::cout << "msgframe-server listening on";
  for (const auto& endpoint : server.local_endpoints()) std::cout << ' ' << host_port(endpoint);
  std::cout << " ("
            << (server_options.threads ? server_options.threads
                                       : std::max(1u, std::thread::hardware_concurrency()))
            << " I/O threads, TCP and UDP, max frame " << server_options.max_frame_bytes
            << " bytes, max datagram " << server_options.max_datagram_bytes << " bytes)"
            << std::endl;

  int stop_signal = 0;
  signals.async_wait([&](const boost::system::error_code&, int signal) { stop_signal = signal; });
  signals_context.run();

  std::cerr << "msgframe-server: " << (stop_signal == SIGINT ? "SIGINT" : "SIGTERM")
            << ", stopping\n";
  server.stop();
  const auto stats = server.stats();
  std::cerr << "msgframe-server: stopped after " << stats.sessions_accepted << " sessions, "
            << stats.requests << " requests, " << stats.errors_sent << " errors sent\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  msgframe::ServerOptions server_options;
  msgframe::TlsServerOptions tls;
  options::options_description description("msgframe-server options");
  description.add_options()("help", "show this help")(
      "host", options::value(&server_options.host)->default_value(server_options.host),
      "address or host name to listen on (e.g. 127.0.0.1, ::1, localhost)")(
      "port", options::value(&server_options.port)->default_value(7700),
      "TCP port; 0 picks a free one")("threads",
                                      options::value(&server_options.threads)->default_value(0),
                                      "I/O threads; 0 for one per hardware thread")(
      "max-frame",
      options::value(&server_options.max_frame_bytes)
          ->default_value(server_options.max_frame_bytes),
      "largest request body accepted, in bytes")(
      "max-sessions",
      options::value(&server_options.max_sessions)->default_value(server_options.max_sessions),
      "most connections served at once; one more is told OVERLOADED and closed")(
      "max-datagram",
      options::value(&server_options.max_datagram_bytes)
          ->default_value(server_options.max_datagram_bytes),
      "largest UDP datagram taken or sent, in bytes (at most 65507)")(
      "tls-cert", options::value(&tls.certificate_file),
      "serve TCP over TLS with this certificate chain (PEM); needs --tls-key")(
      "tls-key", options::value(&tls.private_key_file), "the certificate's private key (PEM)")(
      "tls-client-ca", options::value(&tls.client_ca_file),
      "mutual TLS: let in only clients with a certificate signed by these CAs (PEM)")(
      "tls-plaintext-udp", options::bool_switch(&tls.plaintext_udp),
      "with TLS, serve plaintext UDP too (off: no UDP)");
  try {
    options::variables_map values;
    options::store(options::parse_command_line(argc, argv, description), values);
    options::notify(values);
    if (values.count("help")) {
      std::cout << description;
      return 0;
    }
    if (!tls.certificate_file.empty() || !tls.private_key_file.empty() ||
        !tls.client_ca_file.empty() || tls.plaintext_udp) {
      server_options.tls = tls;
    }
    server_options.log = [](const std::string& line) {
      std::cerr << "msgframe-server: " << line << '\n';
    };
    return serve(server_options);
  } catch (const options::error& error) {
    std::cerr << "msgframe-server: " << error.what() << "\n" << description;
    return 2;
  } catch (const std::invalid_argument& error) {
    std::cerr << "msgframe-server: " << error.what() << '\n';
    return 2;
  }
}
