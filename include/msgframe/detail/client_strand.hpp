// Where a client's handlers run, one at a time (not for users): a strand of its own over the
// executor the client was given or, for an io_context that a single thread runs, that executor
// itself, whose one thread already runs one handler at a time (Asio's implicit strand).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <optional>

namespace msgframe::detail {

class ClientStrand {
 public:
  // `one_thread`: `executor` runs one handler at a time. Believed for an io_context's executor
  // only; any other executor gets a strand.
  ClientStrand(const boost::asio::any_io_executor& executor, bool one_thread) {
    const auto* io_context = executor.target<boost::asio::io_context::executor_type>();
    if (one_thread && io_context != nullptr) {
      io_context_ = *io_context;
      executor_ = *io_context;
    } else {
      strand_.emplace(executor);
      executor_ = *strand_;
    }
  }

  // What the client's sockets, timers and posts use: the strand or the io_context's executor.
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  bool running_in_this_thread() const noexcept {
    return io_context_ ? io_context_->running_in_this_thread() : strand_->running_in_this_thread();
  }

 private:
  // Exactly one of the two is set: the concrete executors, so that running_in_this_thread(),
  // asked on every call, costs no type-erased lookup.
  std::optional<boost::asio::io_context::executor_type> io_context_;
  std::optional<boost::asio::strand<boost::asio::any_io_executor>> strand_;
  boost::asio::any_io_executor executor_;
};

}  // namespace msgframe::detail
