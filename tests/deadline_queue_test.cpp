// The client's deadline queue: entries come out earliest first, whatever order they went in.
#define BOOST_TEST_MODULE deadline_queue
#include "msgframe/detail/deadline_queue.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <random>

using msgframe::detail::DeadlineQueue;

BOOST_AUTO_TEST_CASE(entries_come_out_earliest_first) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> jitter(-50, 50);
  const DeadlineQueue::Clock::time_point start{};
  DeadlineQueue queue;
  std::vector<DeadlineQueue::Entry> pushed;
  // Mostly rising deadlines (calls sharing a timeout), a fifth earlier ones, popped now and then.
  std::vector<DeadlineQueue::Entry> popped;
  for (std::uint64_t id = 1; id <= 10'000; ++id) {
    const int offset =
        id % 5 == 0 ? static_cast<int>(id) + jitter(random) - 400 : static_cast<int>(id);
    const auto when = start + std::chrono::milliseconds(offset);
    queue.push(when, id);
    pushed.emplace_back(when, id);
    if (id % 3 == 0) {
      popped.push_back(queue.top());
      queue.pop();
    }
  }
  BOOST_TEST(queue.size() == pushed.size() - popped.size());
  // Whatever was popped early was the earliest then: every entry still queued comes after it.
  std::vector<DeadlineQueue::Entry> rest;
  while (!queue.empty()) {
    rest.push_back(queue.top());
    queue.pop();
  }
  BOOST_TEST(std::is_sorted(rest.begin(), rest.end()));
  std::vector<DeadlineQueue::Entry> all = popped;
  all.insert(all.end(), rest.begin(), rest.end());
  std::sort(all.begin(), all.end());
  std::sort(pushed.begin(), pushed.end());
  BOOST_TEST((all == pushed));
}

BOOST_AUTO_TEST_CASE(an_earlier_deadline_after_later_ones_comes_out_first) {
  const DeadlineQueue::Clock::time_point start{};
  DeadlineQueue queue;
  queue.push(start + std::chrono::seconds(10), 1);
  queue.push(start + std::chrono::seconds(10), 2);
  queue.push(start + std::chrono::milliseconds(200), 3);  // a UDP resend
  queue.push(start + std::chrono::seconds(11), 4);
  std::vector<std::uint64_t> order;
  while (!queue.empty()) {
    order.push_back(queue.top().second);
    queue.pop();
  }
  BOOST_TEST(order == (std::vector<std::uint64_t>{3, 1, 2, 4}), boost::test_tools::per_element());
  queue.push(start, 5);
  queue.clear();
  BOOST_TEST(queue.empty());
}

// Rising deadlines come out first in, first out while the ring wraps around, grows for a burst
// (its entries wrapped: the head is off zero) and shrinks as the burst drains.
BOOST_AUTO_TEST_CASE(rising_deadlines_come_out_in_order_through_wraps_bursts_and_drains) {
  const DeadlineQueue::Clock::time_point start{};
  DeadlineQueue queue;
  std::uint64_t next_id = 1;
  std::uint64_t expected_id = 1;
  bool in_order = true;
  const auto push = [&](int count) {
    for (int entry = 0; entry < count; ++entry, ++next_id) {
      queue.push(start + std::chrono::microseconds(next_id), next_id);
    }
  };
  const auto pop = [&](int count) {
    for (int entry = 0; entry < count; ++entry) {
      in_order = in_order && queue.top().second == expected_id++;
      queue.pop();
    }
  };
  const auto push_and_pop = [&](int count) {
    for (int entry = 0; entry < count; ++entry) {
      push(1);
      pop(1);
    }
  };
  push(10);
  push_and_pop(10'007);  // ten in flight, the ring wrapping
  push(5'000);           // a burst
  pop(4'990);            // drained, shrinking
  push_and_pop(1'003);
  BOOST_TEST(queue.size() == 20u);  // ten, and ten of the burst
  pop(20);
  BOOST_TEST(queue.empty());
  BOOST_TEST(in_order);
  BOOST_TEST(expected_id == next_id);
}
