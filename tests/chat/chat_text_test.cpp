// The terminal client's pure parts: the line editor's keys, command parsing, safe display text.
#define BOOST_TEST_MODULE chat_text
#include <boost/test/unit_test.hpp>

#include "chat_text.hpp"
#include "line_editor.hpp"

namespace command = chat::command;

BOOST_AUTO_TEST_CASE(typed_keys_become_lines) {
  chat::LineEditor editor;
  auto typed = editor.feed("hello");
  BOOST_TEST(typed.lines.empty());
  BOOST_TEST(editor.line() == "hello");
  typed = editor.feed(" world\rnext");  // Enter in raw mode is CR
  BOOST_TEST(typed.lines == std::vector<std::string>{"hello world"});
  BOOST_TEST(editor.line() == "next");
  typed = editor.feed("\n");
  BOOST_TEST(typed.lines == std::vector<std::string>{"next"});
  BOOST_TEST(!typed.quit);
}

BOOST_AUTO_TEST_CASE(backspace_removes_a_whole_character_and_ctrl_u_the_line) {
  chat::LineEditor editor;
  editor.feed("caf\xC3\xA9!");  // "café!"
  editor.feed("\x7f\x7f");      // DEL twice: "!" then the two-byte "é"
  BOOST_TEST(editor.line() == "caf");
  editor.feed("\x08");  // Backspace
  BOOST_TEST(editor.line() == "ca");
  editor.feed("\x7f\x7f\x7f");  // more than there is
  BOOST_TEST(editor.line() == "");
  editor.feed("gone\x15kept");
  BOOST_TEST(editor.line() == "kept");
}

BOOST_AUTO_TEST_CASE(escape_sequences_and_control_keys_are_ignored) {
  chat::LineEditor editor;
  editor.feed(
      "a\x1b[Ab\x1b[1;5Cc\x1bOd\x1b"
      "xe\tf\x01");  // arrows, Alt+x, Tab, Ctrl-A
  BOOST_TEST(editor.line() == "abcef");
  // A sequence split across reads is still skipped.
  editor.feed("\x1b");
  editor.feed("[");
  editor.feed("Dg");
  BOOST_TEST(editor.line() == "abcefg");
}

BOOST_AUTO_TEST_CASE(ctrl_c_quits_and_ctrl_d_quits_only_on_an_empty_line) {
  chat::LineEditor editor;
  auto typed = editor.feed("text\x04");
  BOOST_TEST(!typed.quit);
  BOOST_TEST(editor.line() == "text");
  typed = editor.feed("\r\x04more");
  BOOST_TEST(typed.lines == std::vector<std::string>{"text"});
  BOOST_TEST(typed.quit);
  BOOST_TEST(editor.line() == "");  // nothing after the quit is taken
  chat::LineEditor other;
  BOOST_TEST(other.feed("half\x03").quit);
}

BOOST_AUTO_TEST_CASE(lines_parse_into_commands) {
  BOOST_TEST(std::get<command::Say>(chat::parse_command("hello /all")).text == "hello /all");
  BOOST_TEST(std::get<command::Say>(chat::parse_command("//join me")).text == "/join me");
  BOOST_TEST(std::get<command::Join>(chat::parse_command("/join  kitchen ")).room == "kitchen");
  BOOST_TEST(std::get<command::Nick>(chat::parse_command("/nick carol")).nickname == "carol");
  BOOST_TEST(std::holds_alternative<command::Who>(chat::parse_command("/who")));
  BOOST_TEST(std::holds_alternative<command::Quit>(chat::parse_command("/quit")));
  BOOST_TEST(std::holds_alternative<command::Help>(chat::parse_command("/help")));
  BOOST_TEST(std::holds_alternative<command::Nothing>(chat::parse_command("   ")));
  BOOST_TEST(std::get<command::Unknown>(chat::parse_command("/join")).text == "usage: /join ROOM");
  BOOST_TEST(std::get<command::Unknown>(chat::parse_command("/nick a b")).text ==
             "usage: /nick NICKNAME");
  BOOST_TEST(std::get<command::Unknown>(chat::parse_command("/dance")).text ==
             "unknown command /dance; /help lists them");
}

BOOST_AUTO_TEST_CASE(what_others_send_cannot_drive_the_terminal) {
  const std::string replacement = "\xEF\xBF\xBD";
  BOOST_TEST(chat::printable("plain text, caf\xC3\xA9") == "plain text, caf\xC3\xA9");
  BOOST_TEST(chat::printable("\x1b[2Jcleared") == replacement + "[2Jcleared");
  BOOST_TEST(chat::printable("bell\x07") == "bell" + replacement);
  BOOST_TEST(chat::printable("\xC2\x9B"
                             "31m") == replacement + "31m");      // C1 CSI
  BOOST_TEST(chat::printable("\xC2\xA0nbsp") == "\xC2\xA0nbsp");  // U+00A0 is text

  chat::v1::MessageSaid said;
  said.set_nickname("eve");
  said.set_text("hi\r\n\x1b]0;pwned\x07");
  said.set_unix_nanos(0);
  const auto line = chat::describe(said);
  BOOST_TEST(line.find('\x1b') == std::string::npos);
  BOOST_TEST(line.find('\n') == std::string::npos);
  BOOST_TEST(line.find("<eve> hi") != std::string::npos);
}
