// libFuzzer target for the frame decoder: any mismatch between decodings aborts with a reason.
#include <cstdio>
#include <cstdlib>

#include "frame_decoder_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem = msgframe::test::check_frame_decoder({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "frame decoder property broken: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
