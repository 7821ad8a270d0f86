// A second fuzz property for the frame decoder, for frames too large for a fuzz input to hold:
// the input describes a stream of large frames instead of being one. Partial frames of 16 KiB
// or more turn the decoder's buffer into a ring (detail::MirroredBuffer); this drives it through
// growth, wrap-around and the oversized prefix that ends a stream.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"
#include "support/decode_stream.hpp"

namespace msgframe::test {

// Inputs whose first byte is under large_frames_marker are left to check_frame_decoder: the
// large streams cost far more per input, and would starve the fuzzing of ordinary ones.
inline constexpr std::uint8_t large_frames_marker = 0xF0;

// Input layout: [marker + format and room] then records of [size high][size low][fill][read], each
// a frame of (size * 5) bytes of `fill` (up to 320 KiB, over the 256 KiB max from 52,429 on), and
// the size of one read, (read * 271 + 1) bytes (up to 68 KiB). The stream stops at the first
// oversized frame (its prefix only: the decoder must refuse it from that) or past 1 MiB.
inline std::string check_large_frames(std::span<const std::uint8_t> input) {
  constexpr std::size_t max_frame = 256 * 1024;
  constexpr std::size_t max_stream = 1024 * 1024;
  constexpr std::size_t record_bytes = 4;
  if (input.size() < 1 + record_bytes || input[0] < large_frames_marker) return {};
  constexpr LengthPrefix formats[] = {LengthPrefix::u32_be, LengthPrefix::varint,
                                      LengthPrefix::u64_le};
  const std::uint8_t choice = input[0] - large_frames_marker;
  const FrameOptions options{formats[choice % 3], max_frame};
  const std::size_t extra_room = choice / 3 % 4 * 1000;

  const FrameEncoder encoder(options);
  const FrameEncoder unlimited({options.length_prefix, 64 * max_frame});
  Bytes stream;
  std::vector<Bytes> expected;
  std::vector<std::size_t> reads;
  bool oversized = false;
  for (std::size_t at = 1; at + record_bytes <= input.size() && stream.size() < max_stream;
       at += record_bytes) {
    const std::size_t size = (std::size_t{input[at]} << 8 | input[at + 1]) * 5;
    reads.push_back(std::size_t{input[at + 3]} * 271 + 1);
    Bytes body(size, std::byte{input[at + 2]});
    if (size > max_frame) {
      const auto prefix = unlimited.encode_prefix(size);
      if (!prefix) return "the unlimited encoder refused a prefix";
      stream.insert(stream.end(), prefix->bytes().begin(), prefix->bytes().end());
      oversized = true;
      break;
    }
    if (encoder.append_frame(stream, body)) return "the encoder refused a frame within the max";
    expected.push_back(std::move(body));
  }

  // The reads repeat until they cover the stream.
  std::vector<std::size_t> chunks;
  for (std::size_t total = 0; total < stream.size(); total += chunks.back()) {
    chunks.push_back(reads[chunks.size() % reads.size()]);
  }

  FrameDecoder whole_decoder(options);
  const Decoded whole = decode_whole(whole_decoder, stream);
  FrameDecoder chunked_decoder(options);
  const Decoded chunked =
      decode_in_chunks(chunked_decoder, stream, chunks, FeedMethod::prepare_commit, extra_room);

  if (!(whole == chunked)) return "large frames: whole and chunked decoding disagree";
  if (chunked.frames != expected) return "large frames: not the frames encoded";
  if (oversized != (chunked.error == make_error_code(error::frame_too_large))) {
    return "large frames: the oversized prefix was not refused (or one was refused wrongly)";
  }
  if (!oversized && chunked.pending_bytes != 0) return "large frames: bytes left over";
  const std::size_t largest_read = *std::max_element(reads.begin(), reads.end());
  if (chunked.peak_capacity > max_frame + max_length_prefix_bytes + largest_read + extra_room) {
    return "large frames: the buffer grew past one frame plus one read";
  }
  return {};
}

}  // namespace msgframe::test
