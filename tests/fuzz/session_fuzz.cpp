// libFuzzer target for a server session: arbitrary bytes go through a real msgframe::Server over
// TCP on loopback, and the replies must be exactly those the protocol promises for them.
#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "session_check.hpp"

namespace {

// protobuf logs every string field that is not UTF-8 it refuses to parse. The server reads the
// Envelope's `error` by hand and logs none of these, but this checker parses what inputs hold
// with protobuf itself; such lines would bury the output. Anything else protobuf says is printed.
void log_unless_utf8_refusal(google::protobuf::LogLevel level, const char* file, int line,
                             const std::string& message) {
  if (message.find("invalid UTF-8") != std::string::npos) return;
  std::fprintf(stderr, "[libprotobuf %d %s:%d] %s\n", static_cast<int>(level), file, line,
               message.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(&log_unless_utf8_refusal);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One server for the whole run, stopped when the process exits.
  static msgframe::test::SessionFuzzServer server;
  const std::string problem = server.check(std::as_bytes(std::span(data, size)));
  if (!problem.empty()) {
    std::fprintf(stderr, "session property broken: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
