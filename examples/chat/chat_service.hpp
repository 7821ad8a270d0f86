// ChatService: rooms, unique nicknames, ordered messages and history, served by a msgframe::Server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "chat.pb.h"
#include "msgframe/server.hpp"

namespace chat {

inline constexpr std::size_t max_text_bytes = 4096;
inline constexpr std::size_t max_name_bytes = 32;
inline constexpr std::size_t history_length = 50;

// Registers the chat's handlers on a server and keeps the rooms. Every change of a room happens
// under one lock, and its events are pushed before the lock is released: the server writes events
// to a session in the order they were pushed, so every member sees the same order.
class ChatService {
 public:
  // Registers on `server`, which must not have started and must outlive the service.
  explicit ChatService(msgframe::Server& server);
  // Stops the server: its handlers and session-close notices call into this service.
  ~ChatService();
  ChatService(const ChatService&) = delete;
  ChatService& operator=(const ChatService&) = delete;

  // Tells every session the server is going away; call it just before server.stop().
  void announce_shutdown(const std::string& reason);

 private:
  struct Member {
    std::string nickname;
    std::string room;
  };
  struct Room {
    std::set<std::uint64_t> sessions;
    std::deque<v1::MessageSaid> history;
    std::uint64_t last_sequence = 0;
  };

  msgframe::HandlerResult<v1::JoinResponse> join(const v1::JoinRequest& request,
                                                 std::uint64_t session_id);
  msgframe::HandlerResult<v1::LeaveResponse> leave(std::uint64_t session_id);
  msgframe::HandlerResult<v1::SayResponse> say(const v1::SayRequest& request,
                                               std::uint64_t session_id);
  msgframe::HandlerResult<v1::WhoResponse> who(std::uint64_t session_id);
  msgframe::HandlerResult<v1::NickResponse> nick(const v1::NickRequest& request,
                                                 std::uint64_t session_id);
  void on_session_closed(std::uint64_t session_id);

  // Under mutex_.
  void remove_from_room(std::uint64_t session_id, const std::string& reason);
  void push_to_room(const Room& room, const google::protobuf::MessageLite& event);
  std::vector<std::string> nicknames_in(const Room& room) const;

  msgframe::Server& server_;
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, Member> members_;        // by session id
  std::unordered_map<std::string, std::uint64_t> sessions_;  // by nickname
  std::map<std::string, Room> rooms_;
};

}  // namespace chat
