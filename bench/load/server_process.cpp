// Starting, measuring and stopping a system's server process.
#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>

namespace bench {

namespace {

// Waits at most `milliseconds` for the process to end, without a sleep loop: a pidfd becomes
// readable when its process exits.
bool wait_for_exit(pid_t pid, int milliseconds, int& status) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd exited{pidfd, POLLIN, 0};
    ::poll(&exited, 1, milliseconds);
    ::close(pidfd);
  }
  return ::waitpid(pid, &status, pidfd >= 0 ? WNOHANG : 0) == pid;
}

}  // namespace

void pin_this_process_to_core(int core) {
  cpu_set_t cores;
  CPU_ZERO(&cores);
  CPU_SET(core, &cores);
  ::sched_setaffinity(0, sizeof cores, &cores);
}

ServerProcess::ServerProcess(const std::string& system, const ServeSettings& settings, bool pin) {
  int output[2];
  if (::pipe2(output, O_CLOEXEC) != 0) {
    error_ = std::string("pipe: ") + std::strerror(errno);
    return;
  }
  const std::string threads = std::to_string(settings.threads);
  pid_ = ::fork();
  if (pid_ == 0) {
    if (pin) pin_this_process_to_core(0);
    ::dup2(output[1], STDOUT_FILENO);
    const char* arguments[] = {"msgframe-bench",   "--serve",       system.c_str(), "--port", "0",
                               "--server-threads", threads.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(arguments));
    ::_exit(127);
  }
  ::close(output[1]);
  if (pid_ < 0) {
    ::close(output[0]);
    error_ = std::string("fork: ") + std::strerror(errno);
    return;
  }
  // Read the ready line, 10 s at most.
  std::string line;
  pollfd readable{output[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && ::poll(&readable, 1, 10'000) == 1) {
    char chunk[128];
    const ssize_t bytes = ::read(output[0], chunk, sizeof chunk);
    if (bytes <= 0) break;
    line.append(chunk, static_cast<std::size_t>(bytes));
  }
  ::close(output[0]);
  constexpr std::string_view ready = "listening on ";
  if (line.rfind(ready, 0) != 0) {
    error_ = "the " + system + " server did not start (said: \"" + line + "\")";
    stop();
    return;
  }
  port_ = static_cast<std::uint16_t>(std::stoi(line.substr(ready.size())));
}

ServerProcess::~ServerProcess() { stop(); }

std::uint64_t ServerProcess::rss_kb() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

std::string ServerProcess::stop() {
  if (pid_ <= 0) return {};
  const pid_t pid = pid_;
  pid_ = -1;
  ::kill(pid, SIGTERM);
  int status = 0;
  if (!wait_for_exit(pid, 10'000, status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return "the server did not stop within 10 s of SIGTERM";
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "the server exited with status " + std::to_string(status);
  }
  return {};
}

}  // namespace bench
