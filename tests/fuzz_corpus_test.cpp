// Replays every input of the frame decoder's fuzz corpus (seeds and crashes kept as regressions)
// through the fuzz property, so normal and sanitizer builds check them without libFuzzer.
#define BOOST_TEST_MODULE fuzz_corpus
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/frame_decoder_check.hpp"
#include "fuzz/large_frames_check.hpp"

BOOST_AUTO_TEST_CASE(every_corpus_input_keeps_the_decoder_properties) {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_TEST_REQUIRE(suite.argc >= 2, "usage: fuzz_corpus_test -- CORPUS_DIR");
  const std::filesystem::path corpus = suite.argv[suite.argc - 1];
  BOOST_TEST_REQUIRE(std::filesystem::is_directory(corpus), "no corpus folder at " << corpus);

  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream file(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> input(std::istreambuf_iterator<char>(file), {});
    BOOST_TEST_CONTEXT(entry.path().filename()) {
      BOOST_TEST(msgframe::test::check_frame_decoder(input) == "");
      BOOST_TEST(msgframe::test::check_large_frames(input) == "");
    }
    ++inputs;
  }
  BOOST_TEST(inputs >= 10u);
}
