// The client's calls in flight, by id: a table that costs a call neither an allocation nor a
// division, where std::unordered_map costs it a node and a modulo by a prime for each lookup.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace msgframe::detail {

// Open addressing with linear probing, deletion by backward shift (no tombstones), a power-of-two
// number of slots at most half full. Call ids come from a counter, so the ids in flight, a
// window of consecutive numbers, mostly fall in slots of their own. Id 0 is never a key (it
// marks an empty slot; no call has it). Value must be default-constructible and movable.
template <class Value>
class CallTable {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t slot_count() const noexcept { return slots_.size(); }

  // The entry of `id`, or null. Valid until the next emplace() or erase().
  Value* find(std::uint64_t id) noexcept {
    const std::size_t index = index_of(id);
    return index == npos ? nullptr : &slots_[index].value;
  }
  bool contains(std::uint64_t id) const noexcept { return index_of(id) != npos; }

  // Adds `id`, which must not be present (nor 0).
  void emplace(std::uint64_t id, Value value) {
    if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? min_slots : 2 * slots_.size());
    place(id, std::move(value));
    ++size_;
  }

  // Removes the entry of `id`, if there is one.
  void erase(std::uint64_t id) {
    std::size_t index = index_of(id);
    if (index == npos) return;
    // Backward shift: later entries of the probe run move up into the hole, unless their own
    // home slot lies (cyclically) after it, so that every entry stays reachable from its home.
    for (std::size_t next = (index + 1) & mask(); slots_[next].id != 0;
         next = (next + 1) & mask()) {
      const std::size_t home = slots_[next].id & mask();
      if (((next - home) & mask()) >= ((next - index) & mask())) {
        slots_[index] = std::move(slots_[next]);
        index = next;
      }
    }
    slots_[index] = Slot{};
    --size_;
    if (slots_.size() > shrink_above_slots && 8 * size_ < slots_.size()) rehash(slots_.size() / 2);
  }

  // Calls f(id, value) for every entry, in no particular order. f must not change the table.
  template <class F>
  void for_each(F&& f) {
    for (auto& slot : slots_) {
      if (slot.id != 0) f(slot.id, slot.value);
    }
  }

  void clear() noexcept {
    slots_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t id = 0;
    Value value{};
  };
  static constexpr std::size_t min_slots = 8;
  // After a burst of calls, a table over this size shrinks as it empties.
  static constexpr std::size_t shrink_above_slots = 64;

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  std::size_t mask() const noexcept { return slots_.size() - 1; }

  std::size_t index_of(std::uint64_t id) const noexcept {
    if (id == 0 || slots_.empty()) return npos;
    for (std::size_t index = id & mask();; index = (index + 1) & mask()) {
      if (slots_[index].id == id) return index;
      if (slots_[index].id == 0) return npos;
    }
  }

  void place(std::uint64_t id, Value value) {
    std::size_t index = id & mask();
    while (slots_[index].id != 0) index = (index + 1) & mask();
    slots_[index].id = id;
    slots_[index].value = std::move(value);
  }

  void rehash(std::size_t slot_count) {
    std::vector<Slot> old(std::bit_ceil(slot_count));
    old.swap(slots_);
    for (auto& slot : old) {
      if (slot.id != 0) place(slot.id, std::move(slot.value));
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace msgframe::detail
