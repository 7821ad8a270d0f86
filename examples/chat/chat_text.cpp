// Parsing typed lines and describing events for the terminal client.
#include "chat_text.hpp"

#include <chrono>
#include <ctime>

namespace chat {

namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t index = 0; index < text.size(); ++index) {
    const auto byte = static_cast<unsigned char>(text[index]);
    const bool c0_or_delete = byte < 0x20 || byte == 0x7f;
    // U+0080..U+009F, the C1 controls: some terminals take U+009B as the start of a sequence.
    const bool c1 = byte == 0xC2 && index + 1 < text.size() &&
                    static_cast<unsigned char>(text[index + 1]) < 0xA0;
    if (c0_or_delete || c1) {
      out += "\xEF\xBF\xBD";
      if (c1) ++index;
    } else {
      out += static_cast<char>(byte);
    }
  }
  return out;
}

Command parse_command(std::string_view line) {
  if (trim(line).empty()) return command::Nothing{};
  if (line.front() != '/') return command::Say{std::string(line)};
  if (line.starts_with("//")) return command::Say{std::string(line.substr(1))};

  const auto space = line.find(' ');
  const std::string_view name = line.substr(0, space);
  const std::string_view argument =
      space == std::string_view::npos ? std::string_view{} : trim(line.substr(space + 1));
  if (name == "/quit" || name == "/exit") return command::Quit{};
  if (name == "/help") return command::Help{};
  if (name == "/who") return command::Who{};
  if (name == "/join" || name == "/nick") {
    if (argument.empty() || argument.find(' ') != std::string_view::npos) {
      return command::Unknown{"usage: " + std::string(name) +
                              (name == "/join" ? " ROOM" : " NICKNAME")};
    }
    if (name == "/join") return command::Join{std::string(argument)};
    return command::Nick{std::string(argument)};
  }
  return command::Unknown{"unknown command " + std::string(name) + "; /help lists them"};
}

std::string_view help_text() {
  return "commands: /join ROOM  /who  /nick NAME  /quit  /help\n"
         "anything else is said to the room (start it with // to say a line starting with /)";
}

// "[HH:MM:SS] " in local time, the start of every line a room shows.
std::string time_stamp(std::int64_t unix_nanos) {
  const std::time_t seconds = static_cast<std::time_t>(unix_nanos / 1'000'000'000);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char text[16];
  std::strftime(text, sizeof text, "[%H:%M:%S] ", &local);
  return text;
}

std::string describe(const v1::MessageSaid& said) {
  return time_stamp(said.unix_nanos()) + "<" + printable(said.nickname()) + "> " +
         printable(said.text());
}

std::string describe(const v1::MemberJoined& joined) {
  return time_stamp(joined.unix_nanos()) + "* " + printable(joined.nickname()) + " joined #" +
         printable(joined.room());
}

std::string describe(const v1::MemberLeft& left) {
  return time_stamp(left.unix_nanos()) + "* " + printable(left.nickname()) + " left #" +
         printable(left.room()) + " (" + printable(left.reason()) + ")";
}

std::string describe(const v1::MemberRenamed& renamed) {
  return time_stamp(renamed.unix_nanos()) + "* " + printable(renamed.old_nickname()) +
         " is now known as " + printable(renamed.new_nickname());
}

std::string describe(const v1::ServerShutdown& shutdown) {
  return "*** " + printable(shutdown.reason());
}

}  // namespace chat
