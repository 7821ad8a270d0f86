// Property tests with fixed seeds: random frames under every option, encoded into one stream and
// fed in random chunks, decode to exactly what was encoded; a cut stream yields the whole frames
// before the cut and keeps the rest pending.
#define BOOST_TEST_MODULE frame_roundtrip
#include <boost/test/unit_test.hpp>
#include <random>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"
#include "support/decode_stream.hpp"

using msgframe::FrameDecoder;
using msgframe::FrameEncoder;
using msgframe::FrameOptions;
using msgframe::LengthPrefix;
using msgframe::test::Bytes;
using msgframe::test::FeedMethod;

namespace {

constexpr int streams_per_format = 400;

class RandomStreams {
 public:
  explicit RandomStreams(std::uint64_t seed) : random_(seed) {}

  std::size_t uniform(std::size_t low, std::size_t high) {
    return std::uniform_int_distribution<std::size_t>(low, high)(random_);
  }

  FrameOptions options(LengthPrefix format) {
    const std::size_t choices[] = {1, 127, 128, 300, 4096, 70000};
    std::size_t max = choices[uniform(0, std::size(choices) - 1)];
    max = std::min<std::size_t>(max, msgframe::max_encodable_length(format));
    return {format, max};
  }

  // Mostly small bodies, sometimes empty or exactly the max, as real traffic and edge cases mix.
  std::vector<Bytes> bodies(std::size_t max_frame) {
    std::vector<Bytes> out(uniform(0, 40));
    for (auto& body : out) {
      const std::size_t kind = uniform(0, 9);
      const std::size_t size = kind == 0   ? 0
                               : kind == 1 ? max_frame
                                           : uniform(0, std::min<std::size_t>(max_frame, 200));
      body.resize(size);
      for (auto& byte : body) byte = static_cast<std::byte>(uniform(0, 255));
    }
    return out;
  }

  std::vector<std::size_t> chunks(std::size_t stream_size) {
    std::vector<std::size_t> out;
    const std::size_t largest = uniform(0, 3) == 0 ? 3 : 5000;
    for (std::size_t total = 0; total < stream_size; total += out.back()) {
      out.push_back(uniform(1, largest));
    }
    return out;
  }

 private:
  std::mt19937_64 random_;
};

Bytes encode(const FrameOptions& options, const std::vector<Bytes>& bodies) {
  const FrameEncoder encoder(options);
  Bytes stream;
  for (const auto& body : bodies) BOOST_REQUIRE(!encoder.append_frame(stream, body));
  return stream;
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_streams_in_random_chunks_decode_to_what_was_encoded) {
  RandomStreams random(0x6d7367667261);
  for (const auto format : msgframe::all_length_prefixes) {
    for (int round = 0; round < streams_per_format; ++round) {
      const auto options = random.options(format);
      const auto bodies = random.bodies(options.max_frame_bytes);
      const Bytes stream = encode(options, bodies);
      const auto method = round % 2 == 0 ? FeedMethod::feed : FeedMethod::prepare_commit;
      BOOST_TEST_CONTEXT(to_string(format)
                         << " max " << options.max_frame_bytes << " round " << round) {
        FrameDecoder decoder(options);
        const auto chunks = random.chunks(stream.size());
        const auto decoded = msgframe::test::decode_in_chunks(decoder, stream, chunks, method,
                                                              random.uniform(0, 64));
        BOOST_TEST(!decoded.error);
        BOOST_TEST(decoded.pending_bytes == 0u);
        BOOST_TEST_REQUIRE(decoded.frames.size() == bodies.size());
        BOOST_TEST((decoded.frames == bodies));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_cut_stream_yields_whole_frames_and_keeps_the_rest_pending) {
  RandomStreams random(0x637574);
  for (const auto format : msgframe::all_length_prefixes) {
    for (int round = 0; round < streams_per_format; ++round) {
      const auto options = random.options(format);
      const auto bodies = random.bodies(options.max_frame_bytes);
      const Bytes stream = encode(options, bodies);
      const std::size_t cut = random.uniform(0, stream.size());

      // The frames that end at or before the cut, found by re-encoding one at a time.
      std::size_t whole_frames = 0;
      std::size_t whole_bytes = 0;
      for (const auto& body : bodies) {
        const std::size_t frame_bytes = encode(options, {body}).size();
        if (whole_bytes + frame_bytes > cut) break;
        whole_bytes += frame_bytes;
        ++whole_frames;
      }

      BOOST_TEST_CONTEXT(to_string(format) << " round " << round << " cut at " << cut) {
        FrameDecoder decoder(options);
        const auto chunks = random.chunks(cut);
        const auto decoded = msgframe::test::decode_in_chunks(
            decoder, std::span(stream).first(cut), chunks, FeedMethod::prepare_commit, 16);
        BOOST_TEST(!decoded.error);
        BOOST_TEST(decoded.frames.size() == whole_frames);
        BOOST_TEST(decoded.pending_bytes == cut - whole_bytes);
        BOOST_TEST((std::equal(decoded.frames.begin(), decoded.frames.end(), bodies.begin())));
      }
    }
  }
}
