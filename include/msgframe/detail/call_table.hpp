// The client's calls in flight, by id: a table that costs a call neither an allocation nor a
// search, where std::unordered_map costs it a node and a modulo by a prime for each lookup.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace msgframe::detail {

// Each id has one slot, id modulo a power of two, kept at least twice the entries. Call ids
// come from a counter, so the ids in flight, a window of consecutive numbers, take slots of
// their own; an id whose slot is taken (a call that outlived the window) goes to an overflow
// map. Lookups, inserts and erases touch one slot, and the map only while it holds something.
// Id 0 is never a key (it marks an empty slot; no call has it). Value must be
// default-constructible and movable.
template <class Value>
class CallTable {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t slot_count() const noexcept { return slots_.size(); }

  // The entry of `id`, or null. Valid until the next emplace() or erase().
  Value* find(std::uint64_t id) noexcept {
    if (id != 0 && !slots_.empty()) {
      auto& slot = slots_[id & mask()];
      if (slot.id == id) return &slot.value;
    }
    if (overflow_.empty()) return nullptr;
    const auto found = overflow_.find(id);
    return found == overflow_.end() ? nullptr : &found->second;
  }
  bool contains(std::uint64_t id) noexcept { return find(id) != nullptr; }

  // Adds `id`, which must not be present (nor 0).
  void emplace(std::uint64_t id, Value value) { insert(id) = std::move(value); }

  // Adds `id`, which must not be present (nor 0), with a default Value, to be filled in place:
  // a Value built apart and moved in is reloaded over the stores that built it, a stall.
  Value& insert(std::uint64_t id) {
    if (2 * (size_ + 1) > slots_.size()) resize(std::max(min_slots, 2 * slots_.size()));
    auto& slot = slots_[id & mask()];
    Value* value = nullptr;
    if (slot.id != 0) {
      value = &overflow_[id];  // may throw: counted only once added
    } else {
      slot.id = id;
      value = &slot.value;
    }
    ++size_;
    return *value;
  }

  // Removes the entry of `id`, if there is one.
  void erase(std::uint64_t id) {
    if (id != 0 && !slots_.empty() && slots_[id & mask()].id == id) {
      slots_[id & mask()] = Slot{};
    } else if (overflow_.empty() || overflow_.erase(id) == 0) {
      return;
    }
    --size_;
    if (slots_.size() > shrink_above_slots && 8 * size_ < slots_.size()) {
      resize(slots_.size() / 2);
    }
  }

  // Calls f(id, value) for every entry, in no particular order. f must not change the table.
  template <class F>
  void for_each(F&& f) {
    for (auto& slot : slots_) {
      if (slot.id != 0) f(slot.id, slot.value);
    }
    for (auto& [id, value] : overflow_) f(id, value);
  }

  void clear() noexcept {
    slots_.clear();
    mask_ = 0;
    overflow_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t id = 0;
    Value value{};
  };
  static constexpr std::size_t min_slots = 8;  // a power of two, as every size is
  // After a burst of calls, a table over this size shrinks as it empties.
  static constexpr std::size_t shrink_above_slots = 64;

  // Kept, not computed from slots_.size(): that divides by the size of a Slot, which is not a
  // power of two.
  std::size_t mask() const noexcept { return mask_; }

  void place(std::uint64_t id, Value value) {
    auto& slot = slots_[id & mask()];
    if (slot.id == 0) {
      slot.id = id;
      slot.value = std::move(value);
    } else {
      overflow_.emplace(id, std::move(value));
    }
  }

  void resize(std::size_t slot_count) {
    std::vector<Slot> old_slots(slot_count);
    old_slots.swap(slots_);
    mask_ = slot_count - 1;
    auto old_overflow = std::move(overflow_);
    overflow_.clear();
    for (auto& slot : old_slots) {
      if (slot.id != 0) place(slot.id, std::move(slot.value));
    }
    for (auto& [id, value] : old_overflow) place(id, std::move(value));
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;  // slots_.size() - 1 (0 while empty: find() looks at slots_ first)
  std::unordered_map<std::uint64_t, Value> overflow_;
  std::size_t size_ = 0;
};

}  // namespace msgframe::detail
