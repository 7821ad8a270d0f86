// Running user code (a completion handler, an event handler, a callback) inside the client's own
// work.
#pragma once

#include <boost/asio/post.hpp>
#include <exception>
#include <utility>

namespace msgframe::detail {

// Throws `failure` from a step posted to `executor`.
template <class Executor>
[[gnu::cold, gnu::noinline]] void throw_later(const Executor& executor,
                                              std::exception_ptr failure) {
  boost::asio::post(executor, [failure] { std::rethrow_exception(failure); });
}

// Runs `code`. An exception it throws is thrown again from a step posted to `executor`: it still
// leaves io_context::run(), as one from any handler does, but only once the work around it is
// done (the rest of a read's replies and the next read, the other calls of a lost connection and
// the reconnect, a close), so that the client goes on when run() is called again.
template <class Executor, class UserCode>
void run_user_code(const Executor& executor, UserCode&& code) {
  try {
    std::forward<UserCode>(code)();
  } catch (...) {
    throw_later(executor, std::current_exception());
  }
}

}  // namespace msgframe::detail
