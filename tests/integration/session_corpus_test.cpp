// Replays every input of the session fuzz corpus (seeds and crashes kept as regressions) through
// the session fuzz property, against a real server, so normal and sanitizer builds check them
// without libFuzzer.
#define BOOST_TEST_MODULE session_corpus
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "fuzz/session_check.hpp"

BOOST_AUTO_TEST_CASE(every_corpus_input_gets_the_replies_the_protocol_promises) {
  const std::filesystem::path corpus = MSGFRAME_SESSION_CORPUS_DIR;
  BOOST_TEST_REQUIRE(std::filesystem::is_directory(corpus), "no corpus folder at " << corpus);
  msgframe::test::SessionFuzzServer server;

  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream file(entry.path(), std::ios::binary);
    const std::vector<char> input(std::istreambuf_iterator<char>(file), {});
    BOOST_TEST_CONTEXT(entry.path().filename()) {
      BOOST_TEST(server.check(std::as_bytes(std::span(input))) == "");
    }
    ++inputs;
  }
  BOOST_TEST(inputs >= 6u);
}
