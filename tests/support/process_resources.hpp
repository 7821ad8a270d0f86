// Test support: what the test process holds (resident memory, heap in use, open descriptors),
// for tests that bound an in-process server's memory or look for what it leaks.
#pragma once

#include <dirent.h>
#include <malloc.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <fstream>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#define MSGFRAME_TEST_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSGFRAME_TEST_ADDRESS_SANITIZER 1
#endif
#endif

#ifdef MSGFRAME_TEST_ADDRESS_SANITIZER
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else  // GCC ships the runtime without its interface headers: the declaration, as clang's has it
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif
#endif

namespace msgframe::test {

// Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) and every
// mapping has shadow memory, so the resident size says little about what the program holds:
// tests measure the heap in use there instead.
#ifdef MSGFRAME_TEST_ADDRESS_SANITIZER
inline constexpr bool under_address_sanitizer = true;
#else
inline constexpr bool under_address_sanitizer = false;
#endif

// The resident set size: the second field of /proc/self/statm, in pages.
inline std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t total_pages = 0;
  std::size_t resident_pages = 0;
  statm >> total_pages >> resident_pages;
  return resident_pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Bytes the program has allocated and not freed: what it asked for, not what the allocator
// keeps around it (free lists, the sanitizer's quarantine).
inline std::size_t heap_bytes_in_use() {
#ifdef MSGFRAME_TEST_ADDRESS_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  const auto info = ::mallinfo2();
  return info.uordblks + info.hblkhd;  // arena chunks in use, and chunks mapped on their own
#endif
}

// Bytes in the frame decoders' rings (detail::MirroredBuffer), which are mapped outside the heap:
// the mappings of their memory files in /proc/self/maps, each ring counted once, not twice.
inline std::size_t decoder_ring_bytes() {
  std::ifstream maps("/proc/self/maps");
  std::size_t mapped = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("memfd:msgframe-decoder") == std::string::npos) continue;
    std::size_t begin = 0;
    std::size_t end = 0;
    if (std::sscanf(line.c_str(), "%zx-%zx", &begin, &end) == 2) mapped += end - begin;
  }
  return mapped / 2;
}

// Open file descriptors, from /proc/self/fd, not counting the one that lists them.
inline std::size_t open_descriptor_count() {
  DIR* directory = ::opendir("/proc/self/fd");
  if (directory == nullptr) return 0;
  std::size_t count = 0;
  const std::string own = std::to_string(::dirfd(directory));
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] != '.' && own != entry->d_name) ++count;
  }
  ::closedir(directory);
  return count;
}

// "12.3 MiB", for messages.
inline std::string mebibytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return text;
}

}  // namespace msgframe::test
