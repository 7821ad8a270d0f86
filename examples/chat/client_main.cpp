// msgframe-chat: a terminal chat client. Typed lines are said to the room; /join, /who, /nick,
// /quit and /help are commands; what others say appears above the line being typed.
//
// Exit codes: 0 after /quit or the end of input; 1 when the server refuses the nickname or room;
// 2 for a bad command line or a server that cannot be reached; 3 when the server goes away.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/program_options.hpp>
#include <csignal>
#include <iostream>
#include <string>

#include "chat_text.hpp"
#include "msgframe/client.hpp"
#include "terminal.hpp"

namespace asio = boost::asio;
namespace options = boost::program_options;

namespace {

struct Settings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7710;
  std::string nickname;
  std::string room = "lobby";
};

enum ExitCode { ok = 0, refused = 1, unreachable = 2, server_gone = 3 };

class ChatClient {
 public:
  ChatClient(asio::io_context& io, Settings settings)
      : io_(io), settings_(std::move(settings)), terminal_(io.get_executor()) {
    msgframe::ClientOptions client_options;
    client_options.connect_timeout = std::chrono::seconds(5);
    client_options.executor_is_single_threaded = true;  // main() runs `io` on its one thread
    client_options.on_disconnect = [this](boost::system::error_code reason) {
      terminal_.print("*** lost the connection to the server (" + reason.message() + ")");
      finish(server_gone);
    };
    client_.emplace(io.get_executor(), client_options);
    subscribe();
  }

  int exit_code() const noexcept { return exit_code_; }

  asio::awaitable<void> run() {
    if (auto [error] = co_await client_->async_connect(settings_.host, settings_.port,
                                                       asio::as_tuple(asio::use_awaitable));
        error) {
      terminal_.print("*** cannot connect to " + settings_.host + ":" +
                      std::to_string(settings_.port) + ": " + error.message());
      co_return finish(unreachable);
    }
    if (!co_await join(settings_.nickname, settings_.room)) co_return finish(refused);
    terminal_.print("*** type to talk; /help lists the commands");
    while (!finished_) {
      auto line = co_await terminal_.next_line();
      if (!line || finished_) break;
      if (!co_await obey(chat::parse_command(*line))) break;
    }
    if (!finished_) {
      co_await call<chat::v1::LeaveResponse>(chat::v1::LeaveRequest{});
      finish(ok);
    }
  }

  void stop_on_signal() { finish(ok); }

 private:
  template <class Event>
  void show() {
    client_->on_event<Event>(
        [this](const Event& event) { terminal_.print(chat::describe(event)); });
  }

  void subscribe() {
    show<chat::v1::MessageSaid>();
    show<chat::v1::MemberJoined>();
    show<chat::v1::MemberLeft>();
    show<chat::v1::MemberRenamed>();
    show<chat::v1::ServerShutdown>();
  }

  // Calls the server; on failure prints the server's reason and returns nothing.
  template <class Response, class Request>
  asio::awaitable<std::optional<Response>> call(const Request& request) {
    std::string reason;
    auto [error, response] = co_await client_->async_call<Response>(
        request, msgframe::CallOptions{.error_message = &reason},
        asio::as_tuple(asio::use_awaitable));
    if (!error) co_return response;
    if (!finished_) terminal_.print("*** " + (reason.empty() ? error.message() : reason));
    co_return std::nullopt;
  }

  asio::awaitable<bool> join(const std::string& nickname, const std::string& room) {
    chat::v1::JoinRequest request;
    request.set_nickname(nickname);
    request.set_room(room);
    const auto joined = co_await call<chat::v1::JoinResponse>(request);
    if (!joined) co_return false;
    nickname_ = joined->nickname();
    room_ = joined->room();
    for (const auto& said : joined->history()) terminal_.print(chat::describe(said));
    std::string members;
    for (const auto& member : joined->members()) members += " " + chat::printable(member);
    terminal_.print("*** you are " + chat::printable(nickname_) + " in #" + chat::printable(room_) +
                    "; here:" + members);
    update_prompt();
    co_return true;
  }

  // Returns false when the person asked to quit.
  asio::awaitable<bool> obey(const chat::Command& command) {
    namespace cmd = chat::command;
    if (const auto* say = std::get_if<cmd::Say>(&command)) {
      chat::v1::SayRequest request;
      request.set_text(say->text);
      co_await call<chat::v1::SayResponse>(request);  // the room's echo shows it
    } else if (const auto* join_room = std::get_if<cmd::Join>(&command)) {
      co_await join(nickname_, join_room->room);
    } else if (const auto* nick = std::get_if<cmd::Nick>(&command)) {
      chat::v1::NickRequest request;
      request.set_nickname(nick->nickname);
      if (const auto renamed = co_await call<chat::v1::NickResponse>(request)) {
        nickname_ = renamed->nickname();
        update_prompt();
      }
    } else if (std::holds_alternative<cmd::Who>(command)) {
      if (const auto who = co_await call<chat::v1::WhoResponse>(chat::v1::WhoRequest{})) {
        std::string members;
        for (const auto& member : who->members()) members += " " + chat::printable(member);
        terminal_.print("*** in #" + chat::printable(who->room()) + ":" + members);
      }
    } else if (std::holds_alternative<cmd::Help>(command)) {
      terminal_.print(chat::help_text());
    } else if (const auto* unknown = std::get_if<cmd::Unknown>(&command)) {
      terminal_.print("*** " + unknown->text);
    } else if (std::holds_alternative<cmd::Quit>(command)) {
      co_return false;
    }
    co_return true;
  }

  void update_prompt() {
    terminal_.set_prompt("#" + chat::printable(room_) + " " + chat::printable(nickname_) + "> ");
  }

  void finish(ExitCode code) {
    if (finished_) return;
    finished_ = true;
    exit_code_ = code;
    io_.stop();
  }

  asio::io_context& io_;
  Settings settings_;
  chat::Terminal terminal_;
  std::optional<msgframe::Client> client_;
  std::string nickname_;
  std::string room_;
  bool finished_ = false;
  int exit_code_ = ok;
};

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  options::options_description description("msgframe-chat options");
  description.add_options()("help", "show this help")(
      "host", options::value(&settings.host)->default_value(settings.host),
      "chat server's host name or address")(
      "port", options::value(&settings.port)->default_value(settings.port), "chat server's port")(
      "nick", options::value(&settings.nickname)->required(), "your nickname")(
      "room", options::value(&settings.room)->default_value(settings.room), "room to join");
  try {
    options::variables_map values;
    options::store(options::parse_command_line(argc, argv, description), values);
    if (values.count("help")) {
      std::cout << description;
      return ok;
    }
    options::notify(values);
  } catch (const options::error& error) {
    std::cerr << "msgframe-chat: " << error.what() << "\n" << description;
    return unreachable;
  }

  asio::io_context io(1);
  ChatClient chat(io, settings);
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([&chat](const boost::system::error_code& error, int) {
    if (!error) chat.stop_on_signal();
  });
  asio::co_spawn(io, chat.run(), asio::detached);
  io.run();
  return chat.exit_code();
}
