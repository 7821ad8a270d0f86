// The client's deadlines, earliest first (not for users).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

namespace msgframe::detail {

// Calls that share a timeout reach it in the order they started: their deadlines go to the back
// of a queue in constant time. Only a deadline earlier than the last one queued (a shorter
// timeout, a UDP resend) goes into a heap.
class DeadlineQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using Entry = std::pair<Clock::time_point, std::uint64_t>;  // when, call id

  bool empty() const noexcept { return in_order_.empty() && out_of_order_.empty(); }
  std::size_t size() const noexcept { return in_order_.size() + out_of_order_.size(); }

  void push(Clock::time_point when, std::uint64_t id) {
    if (in_order_.empty() || when >= in_order_.back().first) {
      in_order_.emplace_back(when, id);
    } else {
      out_of_order_.emplace(when, id);
    }
  }

  // The earliest entry. Not on an empty queue.
  const Entry& top() const { return top_is_in_order() ? in_order_.front() : out_of_order_.top(); }

  void pop() {
    if (top_is_in_order()) {
      in_order_.pop_front();
    } else {
      out_of_order_.pop();
    }
  }

  void clear() {
    in_order_ = {};
    out_of_order_ = {};
  }

 private:
  bool top_is_in_order() const {
    return out_of_order_.empty() ||
           (!in_order_.empty() && in_order_.front().first <= out_of_order_.top().first);
  }

  std::deque<Entry> in_order_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> out_of_order_;
};

}  // namespace msgframe::detail
