// The frame decoder's contract beyond the shared vectors: boundaries, failing and resetting,
// zero-copy reads, and memory that follows the bytes that arrived, not the lengths announced.
#define BOOST_TEST_MODULE frame_decoder
#include "msgframe/frame_decoder.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <random>

#include "msgframe/error.hpp"
#include "msgframe/frame_encoder.hpp"
#include "support/decode_stream.hpp"
#include "support/process_resources.hpp"

using msgframe::FrameDecoder;
using msgframe::FrameEncoder;
using msgframe::FrameOptions;
using msgframe::LengthPrefix;
using msgframe::test::Bytes;
using msgframe::test::bytes_of;

namespace {

Bytes encode(const FrameOptions& options, std::initializer_list<Bytes> bodies) {
  const FrameEncoder encoder(options);
  Bytes stream;
  for (const auto& body : bodies) BOOST_REQUIRE(!encoder.append_frame(stream, body));
  return stream;
}

Bytes u32_be(std::uint32_t value) {
  return {std::byte(value >> 24), std::byte(value >> 16), std::byte(value >> 8), std::byte(value)};
}

struct LargeFrameRun {
  bool bodies_intact = true;
  std::size_t frames = 0;
  std::size_t peak_capacity = 0;
  std::size_t peak_ring_bytes = 0;  // in the process, from /proc/self/maps
  bool said_ring = false;           // buffer_is_ring() was true after some read
};

// 64 KiB bodies, each filled with its own index, read 64 KiB at a time as a transport would:
// every read ends inside a frame, so each one leaves a partial frame of up to 64 KiB behind.
LargeFrameRun stream_large_frames() {
  constexpr std::size_t body_bytes = 64 * 1024;
  constexpr std::size_t read_bytes = 64 * 1024;
  constexpr std::size_t frame_count = 100;
  const FrameOptions options;
  const FrameEncoder encoder(options);
  Bytes stream;
  for (std::size_t index = 0; index < frame_count; ++index) {
    if (encoder.append_frame(stream, Bytes(body_bytes, std::byte(index)))) return {false};
  }
  FrameDecoder decoder(options);
  LargeFrameRun run;
  for (std::size_t offset = 0; offset < stream.size(); offset += read_bytes) {
    const std::size_t size = std::min(read_bytes, stream.size() - offset);
    std::memcpy(decoder.prepare(read_bytes).data(), stream.data() + offset, size);
    decoder.commit(size);
    run.peak_capacity = std::max(run.peak_capacity, decoder.buffer_capacity());
    run.peak_ring_bytes = std::max(run.peak_ring_bytes, msgframe::test::decoder_ring_bytes());
    run.said_ring = run.said_ring || decoder.buffer_is_ring();
    while (const auto body = decoder.next()) {
      run.bodies_intact = run.bodies_intact && body->size() == body_bytes &&
                          std::all_of(body->begin(), body->end(),
                                      [&](std::byte b) { return b == std::byte(run.frames); });
      ++run.frames;
    }
  }
  run.bodies_intact = run.bodies_intact && run.frames == frame_count && !decoder.error() &&
                      decoder.pending_bytes() == 0;
  return run;
}

}  // namespace

BOOST_AUTO_TEST_CASE(empty_body_is_a_frame) {
  FrameDecoder decoder;
  decoder.feed(u32_be(0));
  const auto body = decoder.next();
  BOOST_TEST_REQUIRE(body.has_value());
  BOOST_TEST(body->empty());
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.pending_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(max_is_accepted_and_max_plus_one_refused_from_the_prefix) {
  const FrameOptions options{LengthPrefix::u32_be, 1000};
  FrameDecoder at_max(options);
  at_max.feed(encode(options, {Bytes(1000, std::byte{7})}));
  const auto body = at_max.next();
  BOOST_TEST_REQUIRE(body.has_value());
  BOOST_TEST(body->size() == 1000u);

  FrameDecoder over_max(options);
  over_max.feed(u32_be(1001));  // the prefix alone, no body byte
  BOOST_TEST(!over_max.next().has_value());
  BOOST_TEST(over_max.error() == msgframe::error::frame_too_large);
}

BOOST_AUTO_TEST_CASE(all_ones_prefix_is_too_large_and_allocates_nothing_for_it) {
  FrameDecoder decoder;  // protocol defaults: u32_be, 4 MiB
  decoder.feed(u32_be(0xFFFFFFFF));
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.error() == msgframe::error::frame_too_large);
  BOOST_TEST(decoder.buffer_capacity() < 64u);
}

BOOST_AUTO_TEST_CASE(a_large_declared_length_grows_nothing_until_bytes_arrive) {
  FrameDecoder decoder;
  decoder.feed(u32_be(4 * 1024 * 1024));  // allowed, but only the prefix arrived
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(!decoder.error());
  BOOST_TEST(decoder.pending_bytes() == 4u);
  BOOST_TEST(decoder.buffer_capacity() < 64u);
}

BOOST_AUTO_TEST_CASE(partial_prefix_at_end_of_input_waits) {
  FrameDecoder decoder({LengthPrefix::u64_le, 100});
  decoder.feed(Bytes(7, std::byte{0}));
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(!decoder.error());
  BOOST_TEST(decoder.pending_bytes() == 7u);
  decoder.feed(Bytes{std::byte{0}, std::byte{'x'}});  // completes a 0-length frame, then 1 byte
  BOOST_TEST(decoder.next().has_value());
  BOOST_TEST(decoder.pending_bytes() == 1u);
}

BOOST_AUTO_TEST_CASE(frames_before_a_bad_prefix_are_delivered_then_the_error_sticks) {
  const FrameOptions options{LengthPrefix::u32_be, 16};
  Bytes stream = encode(options, {bytes_of("one"), bytes_of("two")});
  const Bytes bad = u32_be(17);
  stream.insert(stream.end(), bad.begin(), bad.end());

  FrameDecoder decoder(options);
  decoder.feed(stream);
  BOOST_TEST((decoder.next() && !decoder.error()));
  BOOST_TEST((decoder.next() && !decoder.error()));
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.error() == msgframe::error::frame_too_large);
  BOOST_TEST(decoder.pending_bytes() == 0u);

  // New bytes, even a valid frame, are dropped while failed.
  decoder.feed(encode(options, {bytes_of("three")}));
  auto region = decoder.prepare(8);
  std::memcpy(region.data(), u32_be(0).data(), 4);
  decoder.commit(4);
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.pending_bytes() == 0u);
  BOOST_TEST(decoder.error() == msgframe::error::frame_too_large);

  decoder.reset();
  BOOST_TEST(!decoder.error());
  decoder.feed(encode(options, {bytes_of("four")}));
  const auto body = decoder.next();
  BOOST_TEST_REQUIRE(body.has_value());
  BOOST_TEST((Bytes(body->begin(), body->end()) == bytes_of("four")));
}

BOOST_AUTO_TEST_CASE(overlong_varint_is_malformed) {
  FrameDecoder decoder({LengthPrefix::varint, 1 << 20});
  Bytes overlong(10, std::byte{0x80});
  decoder.feed(std::span(overlong).first(9));
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(!decoder.error());  // 9 continuation bytes may still end well
  decoder.feed(std::span(overlong).subspan(9));
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.error() == msgframe::error::bad_length_prefix);
}

BOOST_AUTO_TEST_CASE(non_minimal_varint_is_accepted) {
  FrameDecoder decoder({LengthPrefix::varint, 100});
  decoder.feed(
      Bytes{std::byte{0x82}, std::byte{0x80}, std::byte{0x00}, std::byte{'a'}, std::byte{'b'}});
  const auto body = decoder.next();
  BOOST_TEST_REQUIRE(body.has_value());
  BOOST_TEST(body->size() == 2u);
}

BOOST_AUTO_TEST_CASE(varint_beyond_64_bits_is_too_large) {
  FrameDecoder decoder({LengthPrefix::varint, 1 << 20});
  Bytes prefix(9, std::byte{0x80});
  prefix.push_back(std::byte{0x02});  // bit 64: no uint64 holds it
  decoder.feed(prefix);
  BOOST_TEST(!decoder.next().has_value());
  BOOST_TEST(decoder.error() == msgframe::error::frame_too_large);
}

BOOST_AUTO_TEST_CASE(bodies_are_views_into_the_read_region) {
  const FrameOptions options{LengthPrefix::u32_be, 1024};
  const Bytes stream = encode(options, {bytes_of("alpha"), bytes_of("beta")});
  FrameDecoder decoder(options);
  auto region = decoder.prepare(4096);
  std::memcpy(region.data(), stream.data(), stream.size());
  decoder.commit(stream.size());

  const auto first = decoder.next();
  const auto second = decoder.next();
  BOOST_TEST_REQUIRE((first && second));
  BOOST_TEST(first->data() == region.data() + 4);
  BOOST_TEST(second->data() == region.data() + 4 + 5 + 4);
  // Both views stay valid together until the next prepare().
  BOOST_TEST((Bytes(first->begin(), first->end()) == bytes_of("alpha")));
  BOOST_TEST((Bytes(second->begin(), second->end()) == bytes_of("beta")));
}

BOOST_AUTO_TEST_CASE(a_partial_frame_is_moved_intact_and_completed_in_place) {
  const FrameOptions options{LengthPrefix::u32_be, 1 << 20};
  Bytes body(3000);
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = std::byte(i * 31);
  const Bytes stream = encode(options, {bytes_of("head"), body});

  FrameDecoder decoder(options);
  const std::size_t first_read = 8 + 1000;  // "head" frame and part of the big one
  auto region = decoder.prepare(1024);
  std::memcpy(region.data(), stream.data(), first_read);
  decoder.commit(first_read);
  BOOST_TEST(decoder.next().has_value());
  BOOST_TEST(!decoder.next().has_value());

  const std::size_t rest = stream.size() - first_read;
  region = decoder.prepare(rest);
  std::memcpy(region.data(), stream.data() + first_read, rest);
  decoder.commit(rest);
  const auto whole = decoder.next();
  BOOST_TEST_REQUIRE(whole.has_value());
  BOOST_TEST((Bytes(whole->begin(), whole->end()) == body));
  BOOST_TEST(whole->data() + whole->size() == region.data() + rest);  // read in place
}

// Hostile streams of prefixes announcing up to the max, fed in reads of 4 KiB and drained after
// each: the buffer never exceeds one frame plus one read, whatever the input.
BOOST_AUTO_TEST_CASE(memory_stays_within_one_frame_plus_one_read) {
  constexpr std::size_t max_frame = 64 * 1024;
  constexpr std::size_t read_size = 4096;
  std::mt19937_64 random(20261125);
  for (const auto format : {LengthPrefix::u32_be, LengthPrefix::u16_le, LengthPrefix::varint}) {
    for (int round = 0; round < 20; ++round) {
      const FrameOptions options{format, format == LengthPrefix::u16_le ? 65535 : max_frame};
      const FrameEncoder encoder(options);
      Bytes stream;
      while (stream.size() < 1024 * 1024) {
        const std::size_t length =
            std::uniform_int_distribution<std::size_t>(0, options.max_frame_bytes)(random);
        BOOST_REQUIRE(!encoder.append_frame(stream, Bytes(length, std::byte{1})));
      }
      FrameDecoder decoder(options);
      std::vector<std::size_t> reads;
      for (std::size_t total = 0; total < stream.size(); total += reads.back()) {
        reads.push_back(std::uniform_int_distribution<std::size_t>(1, read_size)(random));
      }
      const auto decoded = msgframe::test::decode_in_chunks(
          decoder, stream, reads, msgframe::test::FeedMethod::prepare_commit, 0);
      BOOST_TEST(!decoded.error);
      BOOST_TEST(decoded.peak_capacity <=
                 options.max_frame_bytes + msgframe::max_length_prefix_bytes + read_size);
    }
  }
}

BOOST_AUTO_TEST_CASE(small_frames_keep_a_small_buffer) {
  const FrameOptions options;  // 4 MiB max, but every frame is tiny
  const FrameEncoder encoder(options);
  Bytes stream;
  for (int i = 0; i < 20000; ++i) BOOST_REQUIRE(!encoder.append_frame(stream, bytes_of("ping")));
  FrameDecoder decoder(options);
  const std::vector<std::size_t> reads(stream.size() / 1000 + 1, 1000);
  const auto decoded = msgframe::test::decode_in_chunks(
      decoder, stream, reads, msgframe::test::FeedMethod::prepare_commit, 4096 - 1000);
  BOOST_TEST(decoded.frames.size() == 20000u);
  BOOST_TEST(decoded.peak_capacity <= 2u * 4096);
}

// next() advances by the last size while sizes repeat: runs of one size, sizes that alternate,
// a change right after a run, and a partial frame of the repeated size right after it.
BOOST_AUTO_TEST_CASE(repeated_and_changing_sizes_decode_alike) {
  const FrameOptions options;
  const std::vector<std::size_t> sizes{5, 5, 5, 5, 9,   5,   9,   5, 5, 0,
                                       0, 0, 7, 7, 300, 300, 300, 6, 6};
  const FrameEncoder encoder(options);
  Bytes stream;
  std::vector<Bytes> bodies;
  for (std::size_t index = 0; index < sizes.size(); ++index) {
    bodies.emplace_back(sizes[index], std::byte(index));
    BOOST_REQUIRE(!encoder.append_frame(stream, bodies.back()));
  }
  const Bytes partial_tail = encode(options, {Bytes(6, std::byte{0xEE})});
  stream.insert(stream.end(), partial_tail.begin(), partial_tail.end() - 1);

  for (const std::size_t read_size : {std::size_t{1}, std::size_t{7}, stream.size()}) {
    FrameDecoder decoder(options);
    std::vector<Bytes> decoded;
    for (std::size_t offset = 0; offset < stream.size(); offset += read_size) {
      decoder.feed(std::span(stream).subspan(offset, std::min(read_size, stream.size() - offset)));
      while (const auto body = decoder.next()) decoded.emplace_back(body->begin(), body->end());
    }
    BOOST_TEST((decoded == bodies), "reads of " << read_size << " bytes");
    BOOST_TEST(decoder.pending_bytes() == partial_tail.size() - 1);
    BOOST_TEST(!decoder.error());
  }
}

// Large partial frames are never moved: the buffer turns into a ring mapped twice in a row, so
// a frame that runs past its end is still contiguous. It stays at about two reads (moving
// partial frames instead would cost up to a frame per read, and growing to dodge that, megabytes).
BOOST_AUTO_TEST_CASE(large_frames_stream_through_a_small_ring) {
  const auto run = stream_large_frames();
  BOOST_TEST(run.bodies_intact);
  BOOST_TEST(run.frames == 100u);
  BOOST_TEST(run.peak_capacity >= 2u * 64 * 1024);
  BOOST_TEST(run.peak_capacity <= 3u * 64 * 1024);
  BOOST_TEST(run.peak_ring_bytes == run.peak_capacity, "the buffer was not a ring");
  BOOST_TEST(run.said_ring);
  BOOST_TEST(msgframe::test::decoder_ring_bytes() == 0u, "the ring outlived its decoder");
}

// Small partial frames are moved, not worth a ring: frames of up to 2 KiB fed a byte at a time,
// or in reads that split most of them, never map one.
BOOST_AUTO_TEST_CASE(small_frames_never_make_a_ring) {
  const FrameOptions options;
  Bytes stream;
  for (int i = 0; i < 500; ++i) {
    const auto frame = encode(options, {Bytes(1 + i % 2000, std::byte(i))});
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  for (const std::size_t read_size : {std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
    FrameDecoder decoder(options);
    std::size_t frames = 0;
    for (std::size_t offset = 0; offset < stream.size(); offset += read_size) {
      decoder.feed(std::span(stream).subspan(offset, std::min(read_size, stream.size() - offset)));
      while (decoder.next()) ++frames;
    }
    BOOST_TEST(frames == 500u);
    // A ring, once made, stays until the decoder goes: looking at the end is enough.
    BOOST_TEST(msgframe::test::decoder_ring_bytes() == 0u, "reads of " << read_size);
    BOOST_TEST(!decoder.buffer_is_ring(), "reads of " << read_size);
  }
}

// Without a file descriptor to spare (EMFILE), no ring can be made: the decoder keeps to plain
// memory, growing instead, and loses nothing. Run in a child whose descriptor limit is zero.
BOOST_AUTO_TEST_CASE(refused_rings_fall_back_to_plain_memory) {
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit no_descriptors{0, 0};
    if (::setrlimit(RLIMIT_NOFILE, &no_descriptors) != 0) ::_exit(2);
    const auto run = stream_large_frames();
    // Plain memory grows past what a ring needs, instead of moving large partial frames.
    ::_exit(run.bodies_intact && run.peak_capacity > 3u * 64 * 1024 && !run.said_ring ? 0 : 1);
  }
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0, "exit status 1: lost bytes or never grew; 2: no rlimit");
}

BOOST_AUTO_TEST_CASE(a_moved_decoder_keeps_its_state) {
  FrameDecoder decoder({LengthPrefix::u8, 10});
  decoder.feed(Bytes{std::byte{2}, std::byte{'o'}});
  FrameDecoder moved = std::move(decoder);
  moved.feed(Bytes{std::byte{'k'}});
  const auto body = moved.next();
  BOOST_TEST_REQUIRE(body.has_value());
  BOOST_TEST((Bytes(body->begin(), body->end()) == bytes_of("ok")));
}

BOOST_AUTO_TEST_CASE(release_if_empty_frees_a_large_idle_buffer_only) {
  const FrameOptions options;
  const Bytes large(100000, std::byte{7});
  const auto stream = encode(options, {large, Bytes{std::byte{1}}});
  FrameDecoder decoder(options);
  decoder.feed(std::span(stream).first(stream.size() - 2));  // the second frame is partial
  BOOST_TEST_REQUIRE(decoder.next().has_value());
  decoder.release_if_empty(1024);
  BOOST_TEST(decoder.buffer_capacity() >= 100000u, "a buffer holding a partial frame was freed");

  decoder.feed(std::span(stream).last(2));
  const auto small = decoder.next();
  BOOST_TEST_REQUIRE(small.has_value());
  BOOST_TEST((Bytes(small->begin(), small->end()) == Bytes{std::byte{1}}));
  const auto capacity = decoder.buffer_capacity();
  decoder.release_if_empty(capacity);  // not over `keep`: kept
  BOOST_TEST(decoder.buffer_capacity() == capacity);
  decoder.release_if_empty(1024);
  BOOST_TEST(decoder.buffer_capacity() == 0u);

  decoder.feed(stream);  // and it decodes on, from a new buffer
  BOOST_TEST(decoder.next()->size() == large.size());
  BOOST_TEST(decoder.next()->size() == 1u);
}
