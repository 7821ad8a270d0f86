// The client's deadlines, earliest first (not for users).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <new>
#include <queue>
#include <utility>
#include <vector>

namespace msgframe::detail {

// Calls that share a timeout reach it in the order they started: their deadlines go to the back
// of a ring in constant time, with no allocation once it has grown to the calls in flight (a
// std::deque allocates a block every 32 entries, and frees one). Only a deadline earlier than the
// last one queued (a shorter timeout, a UDP resend) goes into a heap.
class DeadlineQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using Entry = std::pair<Clock::time_point, std::uint64_t>;  // when, call id

  bool empty() const noexcept { return in_order_count_ == 0 && out_of_order_.empty(); }
  std::size_t size() const noexcept { return in_order_count_ + out_of_order_.size(); }

  void push(Clock::time_point when, std::uint64_t id) {
    if (in_order_count_ == 0 || when >= in_order_back().first) {
      if (in_order_count_ == in_order_.size()) {
        resize_ring(std::max(min_ring_entries, 2 * in_order_.size()));
      }
      in_order_[(in_order_head_ + in_order_count_) & mask()] = {when, id};
      ++in_order_count_;
    } else {
      out_of_order_.emplace(when, id);
    }
  }

  // The earliest entry. Not on an empty queue.
  const Entry& top() const {
    return top_is_in_order() ? in_order_[in_order_head_] : out_of_order_.top();
  }

  void pop() {
    if (top_is_in_order()) {
      in_order_head_ = (in_order_head_ + 1) & mask();
      --in_order_count_;
      // After a burst of calls, the ring shrinks as it empties: when memory allows, for a pop
      // must not fail (a call completing would be lost).
      if (in_order_.size() > shrink_above_entries && 8 * in_order_count_ < in_order_.size()) {
        try {
          resize_ring(in_order_.size() / 2);
        } catch (const std::bad_alloc&) {
        }
      }
    } else {
      out_of_order_.pop();
    }
  }

  void clear() {
    std::vector<Entry>().swap(in_order_);  // `= {}` would keep the burst's capacity
    in_order_head_ = 0;
    in_order_count_ = 0;
    out_of_order_ = {};
  }

 private:
  static constexpr std::size_t min_ring_entries = 16;  // a power of two, as every size is
  static constexpr std::size_t shrink_above_entries = 256;

  std::size_t mask() const noexcept { return in_order_.size() - 1; }
  const Entry& in_order_back() const {
    return in_order_[(in_order_head_ + in_order_count_ - 1) & mask()];
  }
  bool top_is_in_order() const {
    return out_of_order_.empty() ||
           (in_order_count_ != 0 && in_order_[in_order_head_].first <= out_of_order_.top().first);
  }

  void resize_ring(std::size_t entries) {
    std::vector<Entry> resized(entries);
    for (std::size_t index = 0; index < in_order_count_; ++index) {
      resized[index] = in_order_[(in_order_head_ + index) & mask()];
    }
    in_order_.swap(resized);
    in_order_head_ = 0;
  }

  std::vector<Entry> in_order_;  // a ring of in_order_count_ entries from in_order_head_
  std::size_t in_order_head_ = 0;
  std::size_t in_order_count_ = 0;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> out_of_order_;
};

}  // namespace msgframe::detail
