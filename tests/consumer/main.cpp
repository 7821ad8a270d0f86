// A user of msgframe: registers its own message type on a server and calls it with a client.
// Exits 0 when the round trip works.
#include <iostream>
#include <msgframe/client.hpp>
#include <msgframe/server.hpp>

#include "greeting.pb.h"

int main() {
  msgframe::Server server({.host = "127.0.0.1", .port = 0, .threads = 1});
  server.handle<consumer::GreetRequest>([](const consumer::GreetRequest& request) {
    consumer::GreetResponse response;
    response.set_greeting("hello, " + request.name() + " (" + request.echo().payload() + ")");
    return response;
  });
  if (const auto error = server.start()) {
    std::cerr << "consumer: server did not start: " << error.message() << '\n';
    return 1;
  }
  msgframe::Client client;
  if (const auto error = client.connect("127.0.0.1", server.port())) {
    std::cerr << "consumer: cannot connect: " << error.message() << '\n';
    return 1;
  }
  consumer::GreetRequest request;
  request.set_name("consumer");
  request.mutable_echo()->set_payload("imported");
  const auto response = client.call<consumer::GreetResponse>(request, std::chrono::seconds(10));
  std::cout << response.greeting() << '\n';
  return response.greeting() == "hello, consumer (imported)" ? 0 : 1;
}
