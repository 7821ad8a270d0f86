// The time for a batch of completions: read once, by the first completion of the batch, and kept
// until the io_context has run it and every completion the same handler ran inline (a client's
// replies from one read). The raw load client reads the clock once per read of replies, too;
// a reading per reply would cost the msgframe client ~25 ns a call that raw's does not pay.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>

namespace bench {

class BatchClock {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BatchClock(boost::asio::io_context& io) : io_(io) {}

  // On the io_context's thread only.
  Clock::time_point now() {
    if (!valid_) {
      reading_ = Clock::now();
      valid_ = true;
      // Runs once the handler running now returns: the next batch reads the clock again.
      boost::asio::post(io_, [this] { valid_ = false; });
    }
    return reading_;
  }

 private:
  boost::asio::io_context& io_;
  Clock::time_point reading_;
  bool valid_ = false;
};

}  // namespace bench
