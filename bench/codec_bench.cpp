// Google Benchmark of the frame decoder against a bare copy of the same reads: how much framing
// costs on top of getting the bytes into memory at all.
//
// Both benchmarks walk one pre-encoded stream in 64 KiB reads, copying each read into a buffer as
// a socket read would. BM_Decode reads into the decoder's prepare() region and visits every body;
// BM_Copy only copies into a plain buffer. Compare them within one run.
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"

namespace {

constexpr std::size_t read_bytes = 64 * 1024;
constexpr std::size_t stream_bytes = 4 * 1024 * 1024;

struct EncodedStream {
  std::vector<std::byte> bytes;
  std::size_t frames = 0;
};

enum class Sizes { same, mixed };

// A stream of whole frames, about stream_bytes long, with protocol options: bodies of body_bytes
// each, or (mixed) of sizes drawn evenly from [body_bytes / 2, body_bytes * 3 / 2) with a fixed
// seed, so that no two neighbours are likely to match.
const EncodedStream& stream_of(std::size_t body_bytes, Sizes sizes = Sizes::same) {
  static std::map<std::pair<std::size_t, Sizes>, EncodedStream> streams;
  auto& stream = streams[{body_bytes, sizes}];
  if (stream.frames == 0) {
    const msgframe::FrameEncoder encoder;
    std::mt19937_64 random(body_bytes);
    std::uniform_int_distribution<std::size_t> mixed_size(body_bytes / 2, body_bytes * 3 / 2 - 1);
    std::vector<std::byte> body(body_bytes * 3 / 2, std::byte{0x5A});
    while (stream.bytes.size() < stream_bytes) {
      const std::size_t size = sizes == Sizes::same ? body_bytes : mixed_size(random);
      (void)encoder.append_frame(stream.bytes, std::span(body).first(size));
      ++stream.frames;
    }
  }
  return stream;
}

void report(benchmark::State& state, const EncodedStream& stream) {
  const auto passes = static_cast<double>(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.bytes.size()));
  state.counters["frames_per_second"] =
      benchmark::Counter(passes * static_cast<double>(stream.frames), benchmark::Counter::kIsRate);
}

void decode(benchmark::State& state, Sizes sizes) {
  const auto& stream = stream_of(static_cast<std::size_t>(state.range(0)), sizes);
  msgframe::FrameDecoder decoder;
  std::size_t visited_frames = 0;
  std::size_t visited_bytes = 0;
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < stream.bytes.size(); offset += read_bytes) {
      const std::size_t size = std::min(read_bytes, stream.bytes.size() - offset);
      auto region = decoder.prepare(read_bytes);
      std::memcpy(region.data(), stream.bytes.data() + offset, size);
      decoder.commit(size);
      // Visit each body (its size and first byte) without forcing the decoder out to memory.
      while (auto body = decoder.next()) {
        visited_bytes += body->empty() ? 0 : std::to_integer<std::size_t>(body->front());
        ++visited_frames;
      }
      benchmark::DoNotOptimize(visited_bytes);
    }
  }
  if (visited_frames != state.iterations() * stream.frames || decoder.error()) {
    state.SkipWithError("decoder did not yield every frame");
  }
  report(state, stream);
}

void BM_Decode(benchmark::State& state) { decode(state, Sizes::same); }

// The same with sizes that change from frame to frame: no help from repeated sizes.
void BM_DecodeMixed(benchmark::State& state) { decode(state, Sizes::mixed); }

void BM_Copy(benchmark::State& state) {
  const auto& stream = stream_of(static_cast<std::size_t>(state.range(0)));
  std::vector<std::byte> buffer(read_bytes);
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < stream.bytes.size(); offset += read_bytes) {
      const std::size_t size = std::min(read_bytes, stream.bytes.size() - offset);
      std::memcpy(buffer.data(), stream.bytes.data() + offset, size);
      benchmark::DoNotOptimize(buffer.data());
      benchmark::ClobberMemory();
    }
  }
  report(state, stream);
}

}  // namespace

BENCHMARK(BM_Decode)->Arg(16)->Arg(1024)->Arg(65536);
BENCHMARK(BM_DecodeMixed)->Arg(16)->Arg(1024)->Arg(65536);
BENCHMARK(BM_Copy)->Arg(16)->Arg(1024)->Arg(65536);

BENCHMARK_MAIN();
