// msgframe-client: calls Echo and Time on a msgframe server, once or interactively.
//   msgframe-client --host H --port P echo [--upper] TEXT
//   msgframe-client --host H --port P time
//   msgframe-client --host H --port P          (interactive: each line is echoed; q quits)
//   --udp or --transport tcp|udp|auto chooses the transport (default tcp).
#include <boost/program_options.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "msgframe/client.hpp"
#include "msgframe/v1/echo.pb.h"
#include "msgframe/v1/time.pb.h"

namespace options = boost::program_options;
namespace v1 = msgframe::v1;

namespace {

struct Settings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7700;
  bool upper = false;
  msgframe::Transport transport = msgframe::Transport::tcp;
  std::chrono::milliseconds timeout{5000};
  std::optional<msgframe::TlsClientOptions> tls;
  std::string command;
  std::vector<std::string> words;
};

// Prints why a call failed, with the server's own words when it sent some.
int report(const char* what, boost::system::error_code error, const std::string& message) {
  std::cerr << "msgframe-client: " << what << " failed: " << error.message();
  if (!message.empty()) std::cerr << " (server: " << message << ")";
  std::cerr << '\n';
  return 1;
}

int echo(msgframe::Client& client, const Settings& settings, const std::string& text) {
  v1::EchoRequest request;
  request.set_payload(text);
  request.set_uppercase(settings.upper);
  boost::system::error_code error;
  std::string message;
  const auto reply = client.call<v1::EchoResponse>(request, settings.timeout, error, &message);
  if (error) return report("echo", error, message);
  std::cout << reply.payload() << std::endl;
  return 0;
}

int time(msgframe::Client& client, const Settings& settings) {
  boost::system::error_code error;
  std::string message;
  const auto reply =
      client.call<v1::TimeResponse>(v1::TimeRequest{}, settings.timeout, error, &message);
  if (error) return report("time", error, message);
  std::cout << reply.rfc3339() << " (" << reply.unix_nanos() << " ns since the Unix epoch)"
            << std::endl;
  return 0;
}

int interactive(msgframe::Client& client, const Settings& settings) {
  std::cout << "connected to " << settings.host << ':' << settings.port << " over "
            << msgframe::to_string(client.transport()) << "; type a line to echo it, q to quit"
            << std::endl;
  std::string line;
  while (true) {
    std::cout << ">> " << std::flush;
    if (!std::getline(std::cin, line)) {
      std::cout << std::endl;
      return 0;  // EOF
    }
    if (line == "q") return 0;
    if (const int status = echo(client, settings, line); status != 0) return status;
  }
}

int run(Settings settings) {
  msgframe::ClientOptions client_options;
  client_options.transport = settings.transport;
  client_options.connect_timeout = settings.timeout;
  client_options.call_timeout = settings.timeout;
  client_options.tls = settings.tls;
  msgframe::Client client(client_options);
  if (const auto error = client.connect(settings.host, settings.port)) {
    std::cerr << "msgframe-client: cannot connect to " << settings.host << ':' << settings.port
              << ": " << error.message() << '\n';
    return 1;
  }
  if (settings.command.empty()) return interactive(client, settings);
  if (settings.command == "time") return time(client, settings);
  if (settings.command == "echo") {
    std::string text;
    for (const auto& word : settings.words) text += (text.empty() ? "" : " ") + word;
    return echo(client, settings, text);
  }
  std::cerr << "msgframe-client: unknown command '" << settings.command
            << "' (use echo, time, or none for interactive mode)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  int timeout_ms = 5000;
  bool udp = false;
  std::string transport_name = "tcp";
  bool use_tls = false;
  msgframe::TlsClientOptions tls;
  options::options_description description(
      "usage: msgframe-client [options] [echo [--upper] TEXT | time]\n"
      "without a command: interactive echo, one line at a time (q or end of input quits)\n"
      "options");
  description.add_options()("help", "show this help")(
      "host", options::value(&settings.host)->default_value(settings.host), "server host")(
      "port", options::value(&settings.port)->default_value(settings.port), "server port")(
      "upper", options::bool_switch(&settings.upper), "echo: ask for ASCII uppercase")(
      "udp", options::bool_switch(&udp), "call over UDP (the same as --transport udp)")(
      "transport", options::value(&transport_name)->default_value(transport_name),
      "tcp, udp, or auto (TCP, falling back to UDP while TCP is unreachable)")(
      "timeout", options::value(&timeout_ms)->default_value(timeout_ms),
      "connect and call deadline, in milliseconds")("tls", options::bool_switch(&use_tls),
                                                    "TLS, trusting the system's CAs")(
      "tls-ca", options::value(&tls.ca_file), "TLS, trusting these CAs (PEM) instead")(
      "tls-server-name", options::value(&tls.server_name),
      "the name the server's certificate must carry (default: --host)")(
      "tls-cert", options::value(&tls.certificate_file),
      "a client certificate (PEM), for servers that ask for one")(
      "tls-key", options::value(&tls.private_key_file), "the client certificate's key (PEM)");
  options::options_description hidden;
  hidden.add_options()("command", options::value(&settings.command))(
      "words", options::value(&settings.words)->multitoken());
  options::positional_options_description positional;
  positional.add("command", 1).add("words", -1);
  options::options_description all;
  all.add(description).add(hidden);
  try {
    options::variables_map values;
    options::store(
        options::command_line_parser(argc, argv).options(all).positional(positional).run(), values);
    options::notify(values);
    if (values.count("help")) {
      std::cout << description;
      return 0;
    }
  } catch (const options::error& error) {
    std::cerr << "msgframe-client: " << error.what() << "\n" << description;
    return 2;
  }
  if (timeout_ms <= 0) {
    std::cerr << "msgframe-client: --timeout must be positive\n";
    return 2;
  }
  settings.timeout = std::chrono::milliseconds(timeout_ms);
  const auto transport = msgframe::parse_transport(udp ? "udp" : transport_name);
  if (!transport) {
    std::cerr << "msgframe-client: --transport must be tcp, udp or auto\n";
    return 2;
  }
  settings.transport = *transport;
  if (use_tls || !tls.ca_file.empty() || !tls.certificate_file.empty() ||
      !tls.server_name.empty()) {
    settings.tls = tls;
  }
  try {
    return run(std::move(settings));
  } catch (const std::invalid_argument& error) {
    std::cerr << "msgframe-client: " << error.what() << '\n';
    return 2;
  }
}
