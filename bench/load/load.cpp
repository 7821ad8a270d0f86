// The scenarios, the latency histogram and the payload pattern shared by every system.
#include "load.hpp"

#include <algorithm>
#include <cstring>

namespace bench {

const std::vector<Scenario>& all_scenarios() {
  static const std::vector<Scenario> scenarios{
      {"pingpong", Carrier::tcp, 1, 1, 64},      {"pipelined", Carrier::tcp, 4, 32, 64},
      {"bulk", Carrier::tcp, 1, 1, 1024 * 1024}, {"fanin", Carrier::tcp, 1000, 1, 64},
      {"fanin-10k", Carrier::tcp, 10000, 1, 64}, {"udp-pingpong", Carrier::udp, 1, 1, 64},
  };
  return scenarios;
}

// Buckets: exact below 64 ns, then 32 per power of two, so a percentile is at most 1/32 (3%)
// under the true value; 32 * 42 buckets reach 2^41 ns, about 37 minutes.
namespace {
constexpr std::size_t sub_bucket_bits = 6;
constexpr std::size_t sub_buckets = std::size_t{1} << sub_bucket_bits;
constexpr std::size_t powers = 21;  // sub_buckets * powers == 32 * 42
}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(sub_buckets * powers, 0) {}

// Values below 64 have a bucket each; above, a value with its top bit at position 5 + shift falls
// in bucket shift * 32 + (value >> shift), the value's top six bits.
std::size_t LatencyHistogram::bucket_of(std::uint64_t nanoseconds) noexcept {
  if (nanoseconds < sub_buckets) return static_cast<std::size_t>(nanoseconds);
  const auto shift =
      static_cast<std::size_t>(63 - __builtin_clzll(nanoseconds)) - (sub_bucket_bits - 1);
  const auto bucket = shift * (sub_buckets / 2) + static_cast<std::size_t>(nanoseconds >> shift);
  return std::min(bucket, sub_buckets * powers - 1);
}

std::uint64_t LatencyHistogram::bucket_floor(std::size_t bucket) noexcept {
  if (bucket < sub_buckets) return bucket;
  const std::size_t shift = bucket / (sub_buckets / 2) - 1;
  return static_cast<std::uint64_t>(bucket - shift * (sub_buckets / 2)) << shift;
}

void LatencyHistogram::record(std::chrono::nanoseconds latency) noexcept {
  const auto nanoseconds = static_cast<std::uint64_t>(std::max<std::int64_t>(latency.count(), 0));
  ++buckets_[bucket_of(nanoseconds)];
  ++count_;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t index = 0; index < buckets_.size(); ++index) {
    buckets_[index] += other.buckets_[index];
  }
  count_ += other.count_;
}

double LatencyHistogram::percentile_us(double fraction) const {
  if (count_ == 0) return 0;
  const auto wanted = static_cast<std::uint64_t>(fraction * static_cast<double>(count_ - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t bucket = 0; bucket < buckets_.size(); ++bucket) {
    seen += buckets_[bucket];
    if (seen >= wanted) return static_cast<double>(bucket_floor(bucket)) / 1000.0;
  }
  return static_cast<double>(bucket_floor(buckets_.size() - 1)) / 1000.0;
}

void write_payload(char* out, std::size_t bytes, std::uint64_t sequence) noexcept {
  const std::size_t stamped = std::min<std::size_t>(bytes, sizeof sequence);
  std::memcpy(out, &sequence, stamped);
  if (bytes > stamped) std::memset(out + stamped, 'm', bytes - stamped);
}

bool payload_matches(const char* data, std::size_t bytes, std::uint64_t sequence) noexcept {
  const std::size_t stamped = std::min<std::size_t>(bytes, sizeof sequence);
  if (stamped == sizeof sequence) {
    // One load and a compare, not memcmp against `sequence` just stored on the stack: its wide
    // (masked) loads cannot take the value from that store, and wait for it to be written (both
    // load clients paid up to ~5 ns a reply, varying with the stack's address).
    std::uint64_t stamp = 0;
    std::memcpy(&stamp, data, sizeof stamp);
    if (stamp != sequence) return false;
  } else if (std::memcmp(data, &sequence, stamped) != 0) {
    return false;
  }
  // Differences gathered without a branch, eight bytes at a time: a loop that returns at the
  // first wrong byte is not vectorised, and cost both load clients ~15 ns a 64-byte reply.
  constexpr std::uint64_t filler_word = 0x0101010101010101ULL * static_cast<unsigned char>('m');
  std::uint64_t difference = 0;
  std::size_t index = stamped;
  for (; index + sizeof filler_word <= bytes; index += sizeof filler_word) {
    std::uint64_t word = 0;
    std::memcpy(&word, data + index, sizeof word);
    difference |= word ^ filler_word;
  }
  for (; index < bytes; ++index) difference |= static_cast<unsigned char>(data[index]) ^ 'm';
  return difference == 0;
}

}  // namespace bench
