// Integration test support: a real msgframe::Server on 127.0.0.1 with the built-in services,
// started on a free port and stopped at the end of the test.
#pragma once

#include <boost/test/unit_test.hpp>

#include "msgframe/echo_service.hpp"
#include "msgframe/server.hpp"
#include "msgframe/time_service.hpp"

namespace msgframe::test {

inline ServerOptions loopback_options(std::size_t threads = 2) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = threads;
  return options;
}

class TestServer {
 public:
  explicit TestServer(ServerOptions options = loopback_options()) : server(std::move(options)) {
    add_echo_service(server.router());
    add_time_service(server.router());
  }
  void start() {
    const auto error = server.start();
    BOOST_TEST_REQUIRE(!error, "server did not start: " << error.message());
  }
  std::uint16_t port() const { return server.port(); }

  Server server;
};

}  // namespace msgframe::test
