// Test support: decode a whole stream through a FrameDecoder, fed in chosen chunks, and collect
// everything it yields, so tests can compare decodings of the same stream split differently.
#pragma once

#include <algorithm>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "msgframe/frame_decoder.hpp"

namespace msgframe::test {

using Bytes = std::vector<std::byte>;

struct Decoded {
  std::vector<Bytes> frames;
  boost::system::error_code error;
  std::size_t pending_bytes = 0;
  std::size_t peak_capacity = 0;  // the decoder's largest buffer during the run

  bool operator==(const Decoded& other) const {
    return frames == other.frames && error == other.error && pending_bytes == other.pending_bytes;
  }
};

// How bytes reach the decoder: a copy with feed(), or a read into prepare()'s region that is
// `extra_room` bytes larger than the chunk, as a socket read that returns less than asked.
enum class FeedMethod { feed, prepare_commit };

inline void drain(FrameDecoder& decoder, Decoded& out) {
  while (auto body = decoder.next()) out.frames.emplace_back(body->begin(), body->end());
}

// Feeds `stream` in chunks of the given sizes (the last chunk takes whatever remains).
inline Decoded decode_in_chunks(FrameDecoder& decoder, std::span<const std::byte> stream,
                                std::span<const std::size_t> chunk_sizes,
                                FeedMethod method = FeedMethod::feed, std::size_t extra_room = 0) {
  Decoded out;
  std::size_t offset = 0;
  std::size_t chunk_index = 0;
  while (offset < stream.size()) {
    std::size_t size = stream.size() - offset;
    if (chunk_index < chunk_sizes.size()) size = std::min(size, chunk_sizes[chunk_index++]);
    const auto chunk = stream.subspan(offset, size);
    if (method == FeedMethod::feed) {
      decoder.feed(chunk);
    } else {
      auto region = decoder.prepare(size + extra_room);
      std::memcpy(region.data(), chunk.data(), size);
      decoder.commit(size);
    }
    drain(decoder, out);
    out.peak_capacity = std::max(out.peak_capacity, decoder.buffer_capacity());
    offset += size;
  }
  out.error = decoder.error();
  out.pending_bytes = decoder.pending_bytes();
  return out;
}

inline Decoded decode_whole(FrameDecoder& decoder, std::span<const std::byte> stream) {
  return decode_in_chunks(decoder, stream, {});
}

inline Bytes bytes_of(std::string_view text) {
  Bytes out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

}  // namespace msgframe::test
