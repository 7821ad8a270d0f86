// A system's server in a child process of its own (msgframe-bench --serve SYSTEM), pinned to
// core 0: started, asked for its port and memory, and stopped by its PID.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "load.hpp"

namespace bench {

void pin_this_process_to_core(int core);

class ServerProcess {
 public:
  // Starts the server and waits (at most 10 s) for its "listening on PORT" line.
  ServerProcess(const std::string& system, const ServeSettings& settings, bool pin);
  ~ServerProcess();  // stops it if stop() was not called
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Why the server could not be started; empty when it runs.
  const std::string& error() const noexcept { return error_; }
  std::uint16_t port() const noexcept { return port_; }
  // The server's resident memory now (VmRSS), in KiB; 0 when it cannot be read.
  std::uint64_t rss_kb() const;
  // SIGTERM, then waits at most 10 s for a clean exit (SIGKILL after that). Returns what went
  // wrong, or nothing when it exited with status 0.
  std::string stop();

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
};

}  // namespace bench
