// Terminal: the chat client's screen. On a terminal it reads keys in raw mode and keeps the line
// being typed at the bottom, printing incoming lines above it; on pipes and files it reads and
// writes plain lines, so the client can be scripted.
#pragma once

#include <termios.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "line_editor.hpp"

namespace chat {

class Terminal {
 public:
  // Raw mode when standard input and output are both terminals.
  explicit Terminal(const boost::asio::any_io_executor& executor);
  ~Terminal();  // restores the terminal's mode
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  bool interactive() const noexcept { return interactive_; }

  // Prints `text` as a line of its own, above the line being typed.
  void print(std::string_view text);
  // The prompt before the line being typed (interactive only).
  void set_prompt(std::string prompt);

  // The next line typed, or nothing at the end of input (EOF, Ctrl-D on an empty line, Ctrl-C).
  boost::asio::awaitable<std::optional<std::string>> next_line();

 private:
  boost::asio::awaitable<std::size_t> read_some(char* data, std::size_t size);
  void take(std::string_view bytes);
  void redraw_input_line();
  static void write_out(std::string_view bytes);

  bool interactive_ = false;
  std::optional<termios> saved_mode_;
  int saved_input_flags_ = -1;
  boost::asio::posix::stream_descriptor input_;
  bool input_pollable_ = false;  // false for a regular file: read it directly, it never blocks
  LineEditor editor_;
  std::string prompt_;
  std::string partial_line_;  // non-interactive: bytes after the last newline
  std::deque<std::string> lines_;
  bool ended_ = false;
};

}  // namespace chat
