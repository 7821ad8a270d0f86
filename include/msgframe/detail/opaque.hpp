// A value the compiler must treat as unknown, so that it cannot fold it into an equal one.
#pragma once

namespace msgframe::detail {

template <class Integer>
inline void opaque(Integer& value) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  asm("" : "+r"(value));
#else
  static_cast<void>(value);
#endif
}

}  // namespace msgframe::detail
