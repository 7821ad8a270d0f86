// detail::CallTable, the client's calls in flight by id: held to std::unordered_map over random
// operations, on ids as a client makes them (a counter) and on ids that share slots on purpose.
#define BOOST_TEST_MODULE call_table
#include "msgframe/detail/call_table.hpp"

#include <boost/test/unit_test.hpp>
#include <memory>
#include <random>
#include <unordered_map>

using msgframe::detail::CallTable;

namespace {

// A value that owns memory, as the client's entries do: moves must carry it, erases free it.
using Value = std::unique_ptr<std::uint64_t>;

void check_same(CallTable<Value>& table,
                const std::unordered_map<std::uint64_t, std::uint64_t>& oracle,
                std::uint64_t largest_id) {
  BOOST_TEST_REQUIRE(table.size() == oracle.size());
  for (std::uint64_t id = 0; id <= largest_id + 1; ++id) {
    const auto* found = table.find(id);
    const auto expected = oracle.find(id);
    BOOST_TEST_REQUIRE((found != nullptr) == (expected != oracle.end()), "id " << id);
    if (found != nullptr) BOOST_TEST_REQUIRE(**found == expected->second);
  }
  std::size_t visited = 0;
  table.for_each([&](std::uint64_t id, const Value& value) {
    ++visited;
    BOOST_TEST_REQUIRE(oracle.contains(id));
    BOOST_TEST_REQUIRE(*value == oracle.at(id));
  });
  BOOST_TEST_REQUIRE(visited == oracle.size());
}

// Random inserts of new ids drawn by `next_id` and erases of random present ones.
template <class NextId>
void run_against_oracle(NextId next_id, std::uint32_t seed, int steps, int insert_percent) {
  std::mt19937 random(seed);
  CallTable<Value> table;
  std::unordered_map<std::uint64_t, std::uint64_t> oracle;
  std::vector<std::uint64_t> present;
  std::uint64_t largest_id = 0;
  for (int step = 0; step < steps; ++step) {
    if (present.empty() || static_cast<int>(random() % 100) < insert_percent) {
      const std::uint64_t id = next_id(random);
      if (id == 0 || oracle.contains(id)) continue;
      const std::uint64_t value = random();
      table.emplace(id, std::make_unique<std::uint64_t>(value));
      oracle.emplace(id, value);
      present.push_back(id);
      largest_id = std::max(largest_id, id);
    } else {
      const std::size_t pick = random() % present.size();
      const std::uint64_t id = present[pick];
      present[pick] = present.back();
      present.pop_back();
      table.erase(id);
      oracle.erase(id);
    }
    if (step % 97 == 0) check_same(table, oracle, largest_id);
  }
  check_same(table, oracle, largest_id);
  for (const auto id : present) table.erase(id);
  BOOST_TEST(table.empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(ids_from_a_counter_completing_in_any_order) {
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    std::uint64_t counter = 0;
    run_against_oracle([&counter](std::mt19937&) { return ++counter; }, seed, 20'000, 55);
  }
}

BOOST_AUTO_TEST_CASE(ids_that_share_slots_go_to_the_overflow_and_back) {
  // Multiples of 64 share one slot in every table up to 64 slots, and ids near them others:
  // most go to the overflow map, and move between it and the slots as the table is resized.
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    run_against_oracle(
        [](std::mt19937& random) {
          return (random() % 40) * 64 + (random() % 3 == 0 ? random() % 8 + 56 : 0);
        },
        seed, 5'000, 60);
  }
}

BOOST_AUTO_TEST_CASE(a_burst_grows_the_table_and_its_end_shrinks_it_back) {
  CallTable<Value> table;
  for (std::uint64_t id = 1; id <= 10'000; ++id)
    table.emplace(id, std::make_unique<std::uint64_t>(id));
  BOOST_TEST(table.size() == 10'000u);
  BOOST_TEST(table.slot_count() >= 20'000u);  // at most half full
  for (std::uint64_t id = 1; id <= 10'000; id += 2) table.erase(id);
  for (std::uint64_t id = 2; id <= 10'000; id += 2) {
    BOOST_TEST_REQUIRE(table.find(id) != nullptr);
    BOOST_TEST_REQUIRE(**table.find(id) == id);
  }
  for (std::uint64_t id = 2; id <= 10'000; id += 2) table.erase(id);
  BOOST_TEST(table.empty());
  BOOST_TEST(table.slot_count() <= 64u);
  table.erase(5);  // absent: nothing happens
  BOOST_TEST(!table.contains(0));
  table.emplace(7, std::make_unique<std::uint64_t>(7));
  BOOST_TEST(table.contains(7));
}

// insert() hands out an empty entry to fill in place, in its slot or, when an older id holds
// that slot, in the overflow map; a slot freed by erase() comes back empty.
BOOST_AUTO_TEST_CASE(entries_inserted_empty_are_filled_in_place) {
  CallTable<Value> table;
  auto& first = table.insert(3);
  BOOST_TEST(!first);
  first = std::make_unique<std::uint64_t>(3);
  const std::uint64_t same_slot = 3 + table.slot_count();  // 3's slot is taken
  auto& overflowed = table.insert(same_slot);
  BOOST_TEST(!overflowed);
  overflowed = std::make_unique<std::uint64_t>(same_slot);
  BOOST_TEST(table.size() == 2u);
  BOOST_TEST_REQUIRE(table.find(3) != nullptr);
  BOOST_TEST(**table.find(3) == 3u);
  BOOST_TEST_REQUIRE(table.find(same_slot) != nullptr);
  BOOST_TEST(**table.find(same_slot) == same_slot);
  table.erase(3);
  BOOST_TEST(!table.insert(3 + 2 * table.slot_count()));  // 3's slot again, empty
}
