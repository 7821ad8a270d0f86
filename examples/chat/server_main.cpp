// msgframe-chat-server: the chat example's server (rooms, nicknames, history), over TCP.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <csignal>
#include <iostream>

#include "chat_service.hpp"
#include "msgframe/server.hpp"

namespace options = boost::program_options;

namespace {

int serve(msgframe::ServerOptions server_options) {
  server_options.serve_udp = false;  // chat lives in sessions: it needs TCP
  msgframe::Server server(server_options);
  chat::ChatService chat(server);

  // Before start(): a signal that comes early must not kill the process uncleanly.
  boost::asio::io_context signals_context;
  boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
  if (const auto error = server.start()) {
    std::cerr << "msgframe-chat-server: cannot listen on " << server_options.host << ':'
              << server_options.port << ": " << error.message() << '\n';
    return 1;
  }
  std::cout << "msgframe-chat-server listening on";
  for (const auto& endpoint : server.local_endpoints()) {
    const bool v6 = endpoint.address().is_v6();
    std::cout << ' ' << (v6 ? "[" : "") << endpoint.address().to_string() << (v6 ? "]" : "") << ':'
              << endpoint.port();
  }
  std::cout << std::endl;

  int stop_signal = 0;
  signals.async_wait([&](const boost::system::error_code&, int signal) { stop_signal = signal; });
  signals_context.run();

  std::cerr << "msgframe-chat-server: " << (stop_signal == SIGINT ? "SIGINT" : "SIGTERM")
            << ", stopping\n";
  chat.announce_shutdown("the server is shutting down");
  server.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  msgframe::ServerOptions server_options;
  server_options.port = 7710;
  options::options_description description("msgframe-chat-server options");
  description.add_options()("help", "show this help")(
      "host", options::value(&server_options.host)->default_value(server_options.host),
      "address or host name to listen on (e.g. 127.0.0.1, ::1, 0.0.0.0)")(
      "port", options::value(&server_options.port)->default_value(server_options.port),
      "TCP port; 0 picks a free one")("threads",
                                      options::value(&server_options.threads)->default_value(0),
                                      "I/O threads; 0 for one per hardware thread");
  try {
    options::variables_map values;
    options::store(options::parse_command_line(argc, argv, description), values);
    options::notify(values);
    if (values.count("help")) {
      std::cout << description;
      return 0;
    }
    server_options.log = [](const std::string& line) {
      std::cerr << "msgframe-chat-server: " << line << '\n';
    };
    return serve(server_options);
  } catch (const options::error& error) {
    std::cerr << "msgframe-chat-server: " << error.what() << "\n" << description;
    return 2;
  }
}
