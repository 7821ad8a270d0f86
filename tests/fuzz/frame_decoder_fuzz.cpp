// libFuzzer target for the frame decoder: any mismatch between decodings aborts with a reason.
// Each input is checked as a stream and as the description of a stream of large frames.
#include <cstdio>
#include <cstdlib>

#include "frame_decoder_check.hpp"
#include "large_frames_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string problem = msgframe::test::check_frame_decoder({data, size});
  if (problem.empty()) problem = msgframe::test::check_large_frames({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "frame decoder property broken: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
