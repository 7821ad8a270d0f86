// msgframe-split-demo: frames a stream of messages, splits it at random points as TCP may
// (half packets and sticky packets), de-frames it with the decoder and shows what it found.
#include <boost/program_options.hpp>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "msgframe/msgframe.hpp"

namespace options = boost::program_options;

namespace {

struct Settings {
  int messages = 12;
  std::size_t max_chunk = 40;
  unsigned seed = 7;
  std::string prefix = "u32be";
};

std::string as_text(std::span<const std::byte> body) {
  return {reinterpret_cast<const char*>(body.data()), body.size()};
}

int run(const Settings& settings) {
  const auto prefix = msgframe::parse_length_prefix(settings.prefix);
  if (!prefix) {
    std::cerr << "unknown --prefix " << settings.prefix
              << " (use u8, u16be, u16le, u32be, u32le, u64be, u64le or varint)\n";
    return 2;
  }
  const msgframe::FrameOptions frame_options{
      *prefix, std::min<std::size_t>(msgframe::default_max_frame_bytes,
                                     msgframe::max_encodable_length(*prefix))};
  const msgframe::FrameEncoder encoder(frame_options);
  msgframe::FrameDecoder decoder(frame_options);

  std::vector<std::string> sent;
  std::vector<std::byte> stream;
  for (int index = 1; index <= settings.messages; ++index) {
    sent.push_back("message " + std::to_string(index) + ": " + std::string(index % 5 * 3, '*'));
    if (const auto error = encoder.append_frame(stream, std::as_bytes(std::span(sent.back())))) {
      std::cerr << "cannot frame message " << index << ": " << error.message() << "\n";
      return 1;
    }
  }
  std::cout << "framed " << sent.size() << " messages with " << settings.prefix
            << " length prefixes: " << stream.size() << " bytes\n";

  std::mt19937 random(settings.seed);
  std::vector<std::string> received;
  int chunk_number = 0;
  for (std::size_t offset = 0; offset < stream.size();) {
    const std::size_t size =
        std::min(stream.size() - offset,
                 std::uniform_int_distribution<std::size_t>(1, settings.max_chunk)(random));
    auto region = decoder.prepare(size);  // a transport would read the socket into this
    std::memcpy(region.data(), stream.data() + offset, size);
    decoder.commit(size);
    offset += size;

    std::cout << "chunk " << ++chunk_number << " (" << size << " bytes):";
    int found = 0;
    while (const auto body = decoder.next()) {
      received.push_back(as_text(*body));
      std::cout << (found++ ? ", " : " ") << '"' << received.back() << '"';
    }
    if (found == 0) std::cout << " no whole frame yet";
    std::cout << "  [" << decoder.pending_bytes() << " bytes pending]\n";
  }

  if (decoder.error()) {
    std::cerr << "decoder failed: " << decoder.error().message() << "\n";
    return 1;
  }
  if (received != sent) {
    std::cerr << "MISMATCH: sent " << sent.size() << " messages, recovered " << received.size()
              << "\n";
    return 1;
  }
  std::cout << "recovered all " << received.size() << " messages from " << chunk_number
            << " chunks, in order and byte for byte\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  options::options_description description("msgframe-split-demo options");
  description.add_options()("help", "show this help")(
      "messages", options::value(&settings.messages)->default_value(settings.messages),
      "number of messages to frame")(
      "max-chunk", options::value(&settings.max_chunk)->default_value(settings.max_chunk),
      "largest chunk the stream is split into (bytes)")(
      "seed", options::value(&settings.seed)->default_value(settings.seed),
      "random seed for the split points")(
      "prefix", options::value(&settings.prefix)->default_value(settings.prefix),
      "length prefix: u8, u16be, u16le, u32be, u32le, u64be, u64le or varint");
  try {
    options::variables_map values;
    options::store(options::parse_command_line(argc, argv, description), values);
    options::notify(values);
    if (values.count("help")) {
      std::cout << description;
      return 0;
    }
  } catch (const options::error& error) {
    std::cerr << "msgframe-split-demo: " << error.what() << "\n" << description;
    return 2;
  }
  if (settings.messages < 0 || settings.max_chunk == 0) {
    std::cerr << "msgframe-split-demo: --messages must be >= 0 and --max-chunk >= 1\n";
    return 2;
  }
  return run(settings);
}
