// The chat client's screen: raw mode, the input line kept intact, plain lines on pipes.
#include "terminal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

namespace chat {

namespace asio = boost::asio;

namespace {

constexpr std::string_view erase_line = "\r\x1b[K";  // to column 0, clear to the end of the line

}  // namespace

Terminal::Terminal(const asio::any_io_executor& executor) : input_(executor) {
  interactive_ = ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1;
  if (interactive_) {
    termios mode{};
    if (::tcgetattr(STDIN_FILENO, &mode) == 0) {
      saved_mode_ = mode;
      // No line buffering, no echo (the editor draws the line), Ctrl-C and Ctrl-Z as keys. Output
      // processing stays on, so "\n" still starts a new line at column 0.
      mode.c_lflag &= ~(ICANON | ECHO | ISIG | IEXTEN);
      mode.c_iflag &= ~(IXON | ICRNL);
      mode.c_cc[VMIN] = 1;
      mode.c_cc[VTIME] = 0;
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &mode);
    } else {
      interactive_ = false;
    }
  }
  saved_input_flags_ = ::fcntl(STDIN_FILENO, F_GETFL);
  // epoll refuses regular files; those are read directly, since a read of one never waits.
  const int input = ::dup(STDIN_FILENO);
  boost::system::error_code error;
  input_.assign(input, error);
  input_pollable_ = !error;
  if (error) ::close(input);
}

Terminal::~Terminal() {
  // Asio made the input non-blocking, and with it the terminal the shell will read from next.
  if (saved_input_flags_ >= 0) ::fcntl(STDIN_FILENO, F_SETFL, saved_input_flags_);
  if (saved_mode_) {
    write_out(erase_line);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &*saved_mode_);
  }
}

void Terminal::print(std::string_view text) {
  std::string out;
  if (interactive_) out += erase_line;
  out += text;
  out += '\n';
  if (interactive_) out += prompt_ + editor_.line();
  write_out(out);
}

void Terminal::set_prompt(std::string prompt) {
  prompt_ = std::move(prompt);
  redraw_input_line();
}

void Terminal::redraw_input_line() {
  if (interactive_) write_out(std::string(erase_line) + prompt_ + editor_.line());
}

asio::awaitable<std::optional<std::string>> Terminal::next_line() {
  std::array<char, 4096> buffer{};
  while (lines_.empty() && !ended_) {
    const std::size_t bytes = co_await read_some(buffer.data(), buffer.size());
    if (bytes == 0) {
      ended_ = true;
      if (!partial_line_.empty()) lines_.push_back(std::move(partial_line_));
      break;
    }
    take({buffer.data(), bytes});
  }
  if (lines_.empty()) co_return std::nullopt;
  std::string line = std::move(lines_.front());
  lines_.pop_front();
  co_return line;
}

asio::awaitable<std::size_t> Terminal::read_some(char* data, std::size_t size) {
  if (input_pollable_) {
    boost::system::error_code error;
    const std::size_t bytes = co_await input_.async_read_some(
        asio::buffer(data, size), asio::redirect_error(asio::use_awaitable, error));
    co_return error ? 0 : bytes;  // EOF, or input that cannot be read: the end either way
  }
  ssize_t bytes = 0;
  do {
    bytes = ::read(STDIN_FILENO, data, size);
  } while (bytes < 0 && errno == EINTR);
  co_return bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
}

void Terminal::take(std::string_view bytes) {
  if (interactive_) {
    auto typed = editor_.feed(bytes);
    for (auto& line : typed.lines) lines_.push_back(std::move(line));
    if (typed.quit) ended_ = true;
    redraw_input_line();
    return;
  }
  for (const char c : bytes) {
    if (c != '\n') {
      partial_line_.push_back(c);
      continue;
    }
    if (!partial_line_.empty() && partial_line_.back() == '\r') partial_line_.pop_back();
    lines_.push_back(std::move(partial_line_));
    partial_line_.clear();
  }
}

void Terminal::write_out(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0 && errno == EAGAIN) {  // a terminal shared with the non-blocking input
      pollfd output{STDOUT_FILENO, POLLOUT, 0};
      ::poll(&output, 1, -1);
      continue;
    }
    if (written <= 0) return;  // the screen is gone: nothing more to show
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
}

}  // namespace chat
