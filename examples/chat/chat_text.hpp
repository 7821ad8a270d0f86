// What the terminal client shows: typed lines parsed into commands, and events as lines of text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "chat.pb.h"

namespace chat {

namespace command {
struct Say {
  std::string text;
};
struct Join {
  std::string room;
};
struct Nick {
  std::string nickname;
};
struct Who {};
struct Quit {};
struct Help {};
struct Nothing {};  // an empty line
struct Unknown {
  std::string text;  // what to tell the person
};
}  // namespace command

using Command = std::variant<command::Say, command::Join, command::Nick, command::Who,
                             command::Quit, command::Help, command::Nothing, command::Unknown>;

// "/join ROOM", "/nick NAME", "/who", "/quit", "/help"; "//text" says "/text"; anything else is
// said as it is.
Command parse_command(std::string_view line);

std::string_view help_text();

// `text` with control characters (C0, DEL, C1) replaced by U+FFFD: what others send must not
// drive the terminal (clear it, move the cursor, retitle the window).
std::string printable(std::string_view text);

// "HH:MM:SS" in local time.
std::string clock_time(std::int64_t unix_nanos);

std::string describe(const v1::MessageSaid& said);         // [12:00:01] <alice> hello
std::string describe(const v1::MemberJoined& joined);      // [12:00:01] * bob joined #lobby
std::string describe(const v1::MemberLeft& left);          // [12:00:01] * bob left #lobby (left)
std::string describe(const v1::MemberRenamed& renamed);    // [12:00:01] * bob is now carol
std::string describe(const v1::ServerShutdown& shutdown);  // *** the server is shutting down

}  // namespace chat
