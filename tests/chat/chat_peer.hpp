// Test support for the chat example: an in-process chat server on a free loopback port, and a
// member (a msgframe::Client) that records every event it is pushed.
#pragma once

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "chat.pb.h"
#include "chat_service.hpp"
#include "msgframe/client.hpp"
#include "msgframe/server.hpp"

namespace chat::test {

inline constexpr auto generous = std::chrono::seconds(30);

class ChatServer {
 public:
  ChatServer() : server_(options()), service_(server_) {
    const auto error = server_.start();
    BOOST_TEST_REQUIRE(!error, "chat server did not start: " << error.message());
  }
  std::uint16_t port() const { return server_.port(); }
  ChatService& service() { return service_; }
  msgframe::Server& server() { return server_; }

 private:
  static msgframe::ServerOptions options() {
    msgframe::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.serve_udp = false;
    return options;
  }
  msgframe::Server server_;
  ChatService service_;
};

// What one member has been pushed, in arrival order.
struct Received {
  std::vector<v1::MessageSaid> said;
  std::vector<v1::MemberJoined> joined;
  std::vector<v1::MemberLeft> left;
  std::vector<v1::MemberRenamed> renamed;
  std::vector<v1::ServerShutdown> shutdowns;
};

class Member {
 public:
  explicit Member(std::uint16_t port, msgframe::ClientOptions options = {}) : client_(options) {
    record<v1::MessageSaid>(&Received::said);
    record<v1::MemberJoined>(&Received::joined);
    record<v1::MemberLeft>(&Received::left);
    record<v1::MemberRenamed>(&Received::renamed);
    record<v1::ServerShutdown>(&Received::shutdowns);
    const auto error = client_.connect("127.0.0.1", port);
    BOOST_TEST_REQUIRE(!error, "cannot connect: " << error.message());
  }

  // Calls and returns the error (with the server's message in *reason).
  template <class Response, class Request>
  boost::system::error_code call(const Request& request, Response& response,
                                 std::string* reason = nullptr) {
    boost::system::error_code error;
    response = client_.call<Response>(request, generous, error, reason);
    return error;
  }

  v1::JoinResponse join(const std::string& nickname, const std::string& room) {
    v1::JoinRequest request;
    request.set_nickname(nickname);
    request.set_room(room);
    v1::JoinResponse response;
    std::string reason;
    const auto error = call(request, response, &reason);
    BOOST_TEST_REQUIRE(!error, nickname << " could not join: " << reason);
    return response;
  }

  std::uint64_t say(const std::string& text) {
    v1::SayRequest request;
    request.set_text(text);
    v1::SayResponse response;
    std::string reason;
    const auto error = call(request, response, &reason);
    BOOST_TEST_REQUIRE(!error, "could not say: " << reason);
    return response.sequence();
  }

  // Waits until `done(received)` holds; false at the deadline.
  bool wait_until(const std::function<bool(const Received&)>& done,
                  std::chrono::milliseconds deadline = generous) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, deadline, [&] { return done(received_); });
  }

  Received received() {
    const std::lock_guard lock(mutex_);
    return received_;
  }

  msgframe::Client& client() { return client_; }

 private:
  template <class Event>
  void record(std::vector<Event> Received::*events) {
    client_.on_event<Event>([this, events](const Event& event) {
      const std::lock_guard lock(mutex_);
      (received_.*events).push_back(event);
      changed_.notify_all();
    });
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  Received received_;
  msgframe::Client client_;  // last: its thread, which records, ends before the rest goes
};

}  // namespace chat::test
