// The chat service: what each request does to the rooms, and the events it pushes.
#include "chat_service.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "msgframe/envelope.hpp"

namespace chat {

namespace {

msgframe::HandlerError refuse(std::string message) {
  return {msgframe::v1::ERROR_CODE_BAD_PAYLOAD, std::move(message)};
}

std::int64_t now_unix_nanos() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
}

// Why `name` cannot be a nickname or room name, or nothing when it can.
std::optional<std::string> name_problem(std::string_view what, std::string_view name) {
  if (name.empty()) return std::string(what) + " is empty";
  if (name.size() > max_name_bytes) {
    return std::string(what) + " is longer than " + std::to_string(max_name_bytes) + " bytes";
  }
  if (!msgframe::is_valid_utf8(name)) return std::string(what) + " is not valid UTF-8";
  const bool has_space_or_control = std::any_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7f;
  });
  if (has_space_or_control) return std::string(what) + " has spaces or control characters";
  if (name.front() == '#' || name.front() == '/') {
    return std::string(what) + " starts with '" + name.front() + "'";
  }
  return std::nullopt;
}

// A room may be named with or without its '#'.
std::string_view without_hash(std::string_view room) {
  if (!room.empty() && room.front() == '#') room.remove_prefix(1);
  return room;
}

}  // namespace

ChatService::ChatService(msgframe::Server& server) : server_(server) {
  using msgframe::RequestContext;
  server.handle<v1::JoinRequest>([this](const v1::JoinRequest& request, RequestContext& context) {
    return join(request, context.session_id);
  });
  server.handle<v1::LeaveRequest>([this](const v1::LeaveRequest&, RequestContext& context) {
    return leave(context.session_id);
  });
  server.handle<v1::SayRequest>([this](const v1::SayRequest& request, RequestContext& context) {
    return say(request, context.session_id);
  });
  server.handle<v1::WhoRequest>(
      [this](const v1::WhoRequest&, RequestContext& context) { return who(context.session_id); });
  server.handle<v1::NickRequest>([this](const v1::NickRequest& request, RequestContext& context) {
    return nick(request, context.session_id);
  });
  server.on_session_closed([this](std::uint64_t session_id) { on_session_closed(session_id); });
}

ChatService::~ChatService() { server_.stop(); }

msgframe::HandlerResult<v1::JoinResponse> ChatService::join(const v1::JoinRequest& request,
                                                            std::uint64_t session_id) {
  if (session_id == 0) return refuse("chat needs a TCP session");
  const std::string room_name(without_hash(request.room()));
  if (auto problem = name_problem("the nickname", request.nickname())) return refuse(*problem);
  if (auto problem = name_problem("the room name", room_name)) return refuse(*problem);

  const std::lock_guard lock(mutex_);
  const auto holder = sessions_.find(request.nickname());
  if (holder != sessions_.end() && holder->second != session_id) {
    return refuse("the nickname \"" + request.nickname() + "\" is taken; choose another");
  }
  const auto member = members_.find(session_id);
  const bool already_there = member != members_.end() && member->second.room == room_name &&
                             member->second.nickname == request.nickname();
  Room* room = nullptr;
  if (already_there) {
    room = &rooms_[room_name];
  } else {
    if (member != members_.end()) remove_from_room(session_id, "moved to #" + room_name);
    members_[session_id] = {request.nickname(), room_name};
    sessions_[request.nickname()] = session_id;
    room = &rooms_[room_name];

    v1::MemberJoined joined;
    joined.set_room(room_name);
    joined.set_nickname(request.nickname());
    joined.set_unix_nanos(now_unix_nanos());
    push_to_room(*room, joined);  // before the joiner is in: it learns from the response
    room->sessions.insert(session_id);
  }

  v1::JoinResponse response;
  response.set_room(room_name);
  response.set_nickname(request.nickname());
  for (auto& nickname : nicknames_in(*room)) response.add_members(std::move(nickname));
  for (const auto& message : room->history) *response.add_history() = message;
  return response;
}

msgframe::HandlerResult<v1::LeaveResponse> ChatService::leave(std::uint64_t session_id) {
  const std::lock_guard lock(mutex_);
  if (!members_.contains(session_id)) return refuse("you are not in a room");
  remove_from_room(session_id, "left");
  return v1::LeaveResponse{};
}

msgframe::HandlerResult<v1::SayResponse> ChatService::say(const v1::SayRequest& request,
                                                          std::uint64_t session_id) {
  const std::string& text = request.text();
  if (text.empty()) return refuse("the message is empty");
  if (text.size() > max_text_bytes) {
    return refuse("the message has " + std::to_string(text.size()) + " bytes; at most " +
                  std::to_string(max_text_bytes) + " are allowed");
  }
  if (!msgframe::is_valid_utf8(text)) return refuse("the message is not valid UTF-8");

  const std::lock_guard lock(mutex_);
  const auto member = members_.find(session_id);
  if (member == members_.end()) return refuse("you are not in a room; join one first");
  Room& room = rooms_[member->second.room];

  v1::MessageSaid said;
  said.set_room(member->second.room);
  said.set_sequence(++room.last_sequence);
  said.set_nickname(member->second.nickname);
  said.set_text(text);
  said.set_unix_nanos(now_unix_nanos());
  push_to_room(room, said);
  room.history.push_back(said);
  if (room.history.size() > history_length) room.history.pop_front();

  v1::SayResponse response;
  response.set_sequence(said.sequence());
  return response;
}

msgframe::HandlerResult<v1::WhoResponse> ChatService::who(std::uint64_t session_id) {
  const std::lock_guard lock(mutex_);
  const auto member = members_.find(session_id);
  if (member == members_.end()) return refuse("you are not in a room");
  v1::WhoResponse response;
  response.set_room(member->second.room);
  for (auto& nickname : nicknames_in(rooms_[member->second.room])) {
    response.add_members(std::move(nickname));
  }
  return response;
}

msgframe::HandlerResult<v1::NickResponse> ChatService::nick(const v1::NickRequest& request,
                                                            std::uint64_t session_id) {
  if (auto problem = name_problem("the nickname", request.nickname())) return refuse(*problem);
  const std::lock_guard lock(mutex_);
  const auto member = members_.find(session_id);
  if (member == members_.end()) return refuse("you are not in a room; join one first");
  const auto holder = sessions_.find(request.nickname());
  if (holder != sessions_.end() && holder->second != session_id) {
    return refuse("the nickname \"" + request.nickname() + "\" is taken; choose another");
  }
  v1::MemberRenamed renamed;
  renamed.set_room(member->second.room);
  renamed.set_old_nickname(member->second.nickname);
  renamed.set_new_nickname(request.nickname());
  renamed.set_unix_nanos(now_unix_nanos());

  sessions_.erase(member->second.nickname);
  sessions_[request.nickname()] = session_id;
  member->second.nickname = request.nickname();
  push_to_room(rooms_[member->second.room], renamed);

  v1::NickResponse response;
  response.set_nickname(request.nickname());
  return response;
}

void ChatService::on_session_closed(std::uint64_t session_id) {
  const std::lock_guard lock(mutex_);
  if (members_.contains(session_id)) remove_from_room(session_id, "connection lost");
}

void ChatService::announce_shutdown(const std::string& reason) {
  v1::ServerShutdown shutdown;
  shutdown.set_reason(reason);
  server_.broadcast(shutdown);
}

void ChatService::remove_from_room(std::uint64_t session_id, const std::string& reason) {
  const auto member = members_.find(session_id);
  const auto room = rooms_.find(member->second.room);
  room->second.sessions.erase(session_id);

  v1::MemberLeft left;
  left.set_room(member->second.room);
  left.set_nickname(member->second.nickname);
  left.set_reason(reason);
  left.set_unix_nanos(now_unix_nanos());
  push_to_room(room->second, left);

  if (room->second.sessions.empty()) rooms_.erase(room);  // its history goes with it
  sessions_.erase(member->second.nickname);
  members_.erase(member);
}

void ChatService::push_to_room(const Room& room, const google::protobuf::MessageLite& event) {
  const std::vector<std::uint64_t> sessions(room.sessions.begin(), room.sessions.end());
  server_.push(sessions, event);
}

std::vector<std::string> ChatService::nicknames_in(const Room& room) const {
  std::vector<std::string> nicknames;
  for (const auto session_id : room.sessions) nicknames.push_back(members_.at(session_id).nickname);
  std::sort(nicknames.begin(), nicknames.end());
  return nicknames;
}

}  // namespace chat
