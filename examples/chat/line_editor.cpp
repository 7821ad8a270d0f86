// The line editor's key handling.
#include "line_editor.hpp"

namespace chat {

namespace {

constexpr char ctrl_c = 0x03;
constexpr char ctrl_d = 0x04;
constexpr char backspace = 0x08;
constexpr char ctrl_u = 0x15;
constexpr char escape = 0x1b;
constexpr char del = 0x7f;

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

LineEditor::Typed LineEditor::feed(std::string_view keys) {
  Typed typed;
  for (const char key : keys) {
    if (typed.quit) break;
    switch (state_) {
      case State::escape:  // ESC [ starts a control sequence; ESC and any other key: Alt+key
        state_ = key == '[' || key == 'O' ? State::control_sequence : State::text;
        continue;
      case State::control_sequence:  // parameters until a final byte in @..~
        if (key >= 0x40 && key <= 0x7e) state_ = State::text;
        continue;
      case State::text:
        break;
    }
    switch (key) {
      case '\r':
      case '\n':
        typed.lines.push_back(std::move(line_));
        line_.clear();
        break;
      case del:
      case backspace:
        erase_last_character();
        break;
      case ctrl_u:
        line_.clear();
        break;
      case ctrl_c:
        typed.quit = true;
        break;
      case ctrl_d:
        if (line_.empty()) typed.quit = true;
        break;
      case escape:
        state_ = State::escape;
        break;
      default:
        if (static_cast<unsigned char>(key) >= 0x20) line_.push_back(key);  // not a control key
    }
  }
  return typed;
}

void LineEditor::erase_last_character() {
  while (!line_.empty() && is_utf8_continuation(line_.back())) line_.pop_back();
  if (!line_.empty()) line_.pop_back();
}

}  // namespace chat
