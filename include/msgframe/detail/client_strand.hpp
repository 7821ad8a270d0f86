// Where a client's handlers run, one at a time (not for users): a strand of its own over the
// executor the client was given or, for an io_context that a single thread runs, that executor
// itself, whose one thread already runs one handler at a time (Asio's implicit strand).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

namespace msgframe::detail {

class ClientStrand {
 public:
  // `one_thread`: `executor` runs one handler at a time. Believed for an io_context's executor
  // only; any other executor gets a strand.
  ClientStrand(const boost::asio::any_io_executor& executor, bool one_thread)
      : executor_(one_thread && executor.target<IoContextExecutor>() != nullptr
                      ? executor
                      : boost::asio::any_io_executor(boost::asio::make_strand(executor))),
        io_context_(executor_.target<IoContextExecutor>()),
        strand_(executor_.target<Strand>()) {}
  // io_context_ or strand_ points into executor_.
  ClientStrand(const ClientStrand&) = delete;
  ClientStrand& operator=(const ClientStrand&) = delete;

  // What the client's sockets, timers and posts use: the strand or the io_context's executor.
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  bool running_in_this_thread() const noexcept {
    return io_context_ != nullptr ? io_context_->running_in_this_thread()
                                  : strand_->running_in_this_thread();
  }

 private:
  using IoContextExecutor = boost::asio::io_context::executor_type;
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  boost::asio::any_io_executor executor_;
  // executor_'s target, whichever it is, so that running_in_this_thread(), asked on every call,
  // costs no type-erased lookup.
  const IoContextExecutor* io_context_;
  const Strand* strand_;
};

}  // namespace msgframe::detail
