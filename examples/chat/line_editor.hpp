// LineEditor: turns the keys typed at a raw-mode terminal into the line being edited and the
// lines finished with Enter. Knows nothing of the terminal itself, so it can be tested alone.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chat {

class LineEditor {
 public:
  struct Typed {
    std::vector<std::string> lines;  // finished with Enter, in order
    bool quit = false;               // Ctrl-C, or Ctrl-D on an empty line: stop reading
  };

  // Takes the bytes the terminal sent: printable text (UTF-8) is added to the line; Backspace
  // removes a whole character; Ctrl-U clears the line; escape sequences (arrow keys) and other
  // control keys are ignored.
  Typed feed(std::string_view keys);

  // What is typed so far on the current line.
  const std::string& line() const noexcept { return line_; }

 private:
  enum class State { text, escape, control_sequence };
  void erase_last_character();

  std::string line_;
  State state_ = State::text;
};

}  // namespace chat
