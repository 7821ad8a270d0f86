// libFuzzer target for the Envelope parser: any disagreement with the reference parser aborts
// with a reason.
#include <cstdio>
#include <cstdlib>

#include "envelope_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem = msgframe::test::check_envelope({data, size});
  if (!problem.empty()) {
    std::fprintf(stderr, "envelope parser disagrees with the reference: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
