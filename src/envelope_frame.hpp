// Writing a frame into memory made ready for it (not for users): for the client, which appends
// many small frames to one buffer and makes the room for them once.
#pragma once

#include <cstddef>

#include "msgframe/envelope.hpp"
#include "msgframe/frame_encoder.hpp"

namespace msgframe {

// Writes the frame of `envelope` (its prefix, then the envelope) at `out`, which has room for
// max_length_prefix_bytes + size bytes; the bytes written. `size`: envelope_size(envelope), within
// the encoder's max_frame_bytes.
std::size_t write_envelope_frame(std::byte* out, const FrameEncoder& encoder,
                                 const OutgoingEnvelope& envelope, std::size_t size);

}  // namespace msgframe
