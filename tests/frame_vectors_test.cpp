// The shared framing vectors (shared/vectors/frames.json): every case, fed whole, split at every
// offset and fed a byte at a time, yields exactly the listed frames, error and pending bytes.
#define BOOST_TEST_MODULE frame_vectors
#include <boost/json.hpp>
#include <boost/json/src.hpp>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "msgframe/error.hpp"
#include "msgframe/frame_decoder.hpp"
#include "support/decode_stream.hpp"

namespace json = boost::json;
using msgframe::FrameDecoder;
using msgframe::FrameOptions;
using msgframe::test::Bytes;
using msgframe::test::Decoded;
using msgframe::test::FeedMethod;

namespace {

struct VectorCase {
  std::string name;
  FrameOptions options;
  Bytes stream;
  Decoded expected;
};

// The vectors file is given after "--" on the command line (ctest passes MSGFRAME_VECTORS_DIR).
std::string vectors_path() {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  if (suite.argc < 2) {
    throw std::runtime_error("usage: frame_vectors_test -- PATH/frames.json");
  }
  return suite.argv[suite.argc - 1];
}

Bytes from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("odd-length hex string in vectors");
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

boost::system::error_code error_named(const json::value& name) {
  if (name.is_null()) return {};
  if (name.as_string() == "frame_too_large") return msgframe::error::frame_too_large;
  if (name.as_string() == "bad_length_prefix") return msgframe::error::bad_length_prefix;
  throw std::runtime_error("unknown error name in vectors: " + std::string(name.as_string()));
}

std::vector<VectorCase> load_vectors() {
  const std::string path = vectors_path();
  std::ifstream file(path);
  if (!file) {
    throw std::runtime_error("cannot open the framing vectors at " + path +
                             ": check out shared/ beside the repository, or configure with "
                             "-DMSGFRAME_VECTORS_DIR=<folder holding frames.json>");
  }
  std::stringstream text;
  text << file.rdbuf();
  const json::value document = json::parse(text.str());

  std::vector<VectorCase> cases;
  for (const auto& entry : document.at("cases").as_array()) {
    const auto& object = entry.as_object();
    VectorCase vector_case;
    vector_case.name = object.at("name").as_string();
    const auto prefix = msgframe::parse_length_prefix(object.at("prefix").as_string());
    if (!prefix) throw std::runtime_error("unknown prefix in vector " + vector_case.name);
    vector_case.options.length_prefix = *prefix;
    vector_case.options.max_frame_bytes = json::value_to<std::size_t>(object.at("max_frame"));
    vector_case.stream = from_hex(object.at("stream").as_string());
    for (const auto& frame : object.at("frames").as_array()) {
      vector_case.expected.frames.push_back(from_hex(frame.as_string()));
    }
    vector_case.expected.error = error_named(object.at("error"));
    vector_case.expected.pending_bytes = json::value_to<std::size_t>(object.at("pending_bytes"));
    cases.push_back(std::move(vector_case));
  }
  return cases;
}

void check_decoding(const VectorCase& vector_case, const Decoded& actual) {
  BOOST_TEST(actual.frames.size() == vector_case.expected.frames.size());
  const auto count = std::min(actual.frames.size(), vector_case.expected.frames.size());
  for (std::size_t index = 0; index < count; ++index) {
    BOOST_TEST((actual.frames[index] == vector_case.expected.frames[index]),
               "frame " << index << " differs: " << actual.frames[index].size() << " bytes, "
                        << vector_case.expected.frames[index].size() << " expected");
  }
  BOOST_TEST(actual.error == vector_case.expected.error);
  BOOST_TEST(actual.pending_bytes == vector_case.expected.pending_bytes);
}

}  // namespace

BOOST_AUTO_TEST_CASE(vectors_file_holds_cases) {
  const auto cases = load_vectors();
  BOOST_TEST(cases.size() >= 30u);
}

BOOST_AUTO_TEST_CASE(every_vector_fed_whole) {
  for (const auto& vector_case : load_vectors()) {
    BOOST_TEST_CONTEXT("vector " << vector_case.name) {
      FrameDecoder decoder(vector_case.options);
      check_decoding(vector_case, msgframe::test::decode_whole(decoder, vector_case.stream));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_vector_split_at_every_offset) {
  for (const auto& vector_case : load_vectors()) {
    for (std::size_t offset = 0; offset <= vector_case.stream.size(); ++offset) {
      for (const auto method : {FeedMethod::feed, FeedMethod::prepare_commit}) {
        BOOST_TEST_CONTEXT("vector " << vector_case.name << " split at " << offset) {
          FrameDecoder decoder(vector_case.options);
          const std::size_t chunks[] = {offset};
          check_decoding(vector_case, msgframe::test::decode_in_chunks(decoder, vector_case.stream,
                                                                       chunks, method, 7));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_vector_one_byte_at_a_time) {
  for (const auto& vector_case : load_vectors()) {
    BOOST_TEST_CONTEXT("vector " << vector_case.name) {
      FrameDecoder decoder(vector_case.options);
      const std::vector<std::size_t> single_bytes(vector_case.stream.size(), 1);
      check_decoding(vector_case,
                     msgframe::test::decode_in_chunks(decoder, vector_case.stream, single_bytes));
    }
  }
}
