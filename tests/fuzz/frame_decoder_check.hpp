// The frame decoder's fuzz property, shared by the libFuzzer target and the corpus replay test:
// decoding one input whole and in chunks chosen by the input itself gives the same frames, error
// and pending bytes, within the memory bound, and frames re-encode to the stream they came from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"
#include "support/decode_stream.hpp"

namespace msgframe::test {

// Input layout: [format][max_frame low][max_frame high][chunk seed] stream...
// Returns an empty string when every property holds, else what broke.
inline std::string check_frame_decoder(std::span<const std::uint8_t> input) {
  if (input.size() < 4) return {};
  const auto format = static_cast<LengthPrefix>(input[0] % 8);
  const std::size_t max_frame = 1 + (input[1] | (input[2] << 8)) %
                                        std::min<std::uint64_t>(4096, max_encodable_length(format));
  const FrameOptions options{format, max_frame};
  const std::uint8_t chunk_seed = input[3];
  const auto stream = std::as_bytes(input.subspan(4));

  FrameDecoder whole_decoder(options);
  const Decoded whole = decode_whole(whole_decoder, stream);

  // Chunk sizes and spare room come from the stream's own bytes, so the fuzzer steers the splits.
  std::vector<std::size_t> chunks;
  for (std::size_t total = 0, index = chunk_seed; total < stream.size(); ++index) {
    chunks.push_back(1 + std::to_integer<std::size_t>(stream[index % stream.size()]) % 37);
    total += chunks.back();
  }
  FrameDecoder chunked_decoder(options);
  const std::size_t extra_room = chunk_seed % 16;
  const Decoded chunked =
      decode_in_chunks(chunked_decoder, stream, chunks, FeedMethod::prepare_commit, extra_room);

  if (whole.error != chunked.error) return "whole and chunked decoding disagree on the error";
  if (whole.pending_bytes != chunked.pending_bytes) return "pending bytes differ";
  if (whole.frames != chunked.frames) return "whole and chunked decoding yield different frames";
  if (whole.error && whole.pending_bytes != 0) return "a failed decoder still holds bytes";
  for (const auto& frame : whole.frames) {
    if (frame.size() > max_frame) return "a frame over max_frame_bytes was yielded";
  }
  if (chunked.peak_capacity > max_frame + max_length_prefix_bytes + 37 + extra_room) {
    return "the buffer grew past one frame plus one read";
  }

  // Fixed-width prefixes have one encoding, so the frames must re-encode to the stream's start.
  if (format != LengthPrefix::varint) {
    Bytes reencoded;
    const FrameEncoder encoder(options);
    for (const auto& frame : whole.frames) {
      if (encoder.append_frame(reencoded, frame)) return "a yielded frame does not re-encode";
    }
    const auto consumed = stream.first(std::min(reencoded.size(), stream.size()));
    if (reencoded.size() > stream.size() ||
        !std::equal(reencoded.begin(), reencoded.end(), consumed.begin())) {
      return "frames do not re-encode to the stream they were decoded from";
    }
    if (!whole.error && reencoded.size() + whole.pending_bytes != stream.size()) {
      return "frames and pending bytes do not add up to the stream";
    }
  }

  // A failed decoder stays failed; after reset() it decodes the same input the same way.
  if (whole.error) {
    whole_decoder.feed(stream);
    if (whole_decoder.next() || whole_decoder.pending_bytes() != 0) return "failure did not stick";
  }
  whole_decoder.reset();
  if (!(decode_whole(whole_decoder, stream) == whole)) return "reset() did not restore a new state";
  return {};
}

}  // namespace msgframe::test
