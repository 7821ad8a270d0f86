// Replays every input of the frame decoder's and the Envelope parser's fuzz corpora (seeds and
// crashes kept as regressions) through their fuzz properties, so normal and sanitizer builds
// check them without libFuzzer.
#define BOOST_TEST_MODULE fuzz_corpus
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "fuzz/envelope_check.hpp"
#include "fuzz/frame_decoder_check.hpp"
#include "fuzz/large_frames_check.hpp"

namespace {

// Calls check(input) for every file in CORPUS_ROOT/name (the root is the last argument);
// returns how many there were.
std::size_t for_each_input(const std::string& name,
                           const std::function<void(const std::vector<std::uint8_t>&)>& check) {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_TEST_REQUIRE(suite.argc >= 2, "usage: fuzz_corpus_test -- CORPUS_ROOT");
  const std::filesystem::path corpus = std::filesystem::path(suite.argv[suite.argc - 1]) / name;
  BOOST_TEST_REQUIRE(std::filesystem::is_directory(corpus), "no corpus folder at " << corpus);
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream file(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> input(std::istreambuf_iterator<char>(file), {});
    BOOST_TEST_CONTEXT(entry.path().filename()) { check(input); }
    ++inputs;
  }
  return inputs;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_corpus_input_keeps_the_decoder_properties) {
  const auto inputs = for_each_input("frame_decoder", [](const std::vector<std::uint8_t>& input) {
    BOOST_TEST(msgframe::test::check_frame_decoder(input) == "");
    BOOST_TEST(msgframe::test::check_large_frames(input) == "");
  });
  BOOST_TEST(inputs >= 10u);
}

BOOST_AUTO_TEST_CASE(every_corpus_input_parses_as_the_reference_parses_it) {
  const auto inputs = for_each_input("envelope", [](const std::vector<std::uint8_t>& input) {
    BOOST_TEST(msgframe::test::check_envelope(input) == "");
  });
  BOOST_TEST(inputs >= 20u);
}
