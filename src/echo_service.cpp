// The Echo service.
#include "msgframe/echo_service.hpp"

#include <string>

namespace msgframe {

namespace {

void uppercase_ascii(std::string& text) {
  for (auto& byte : text) {
    if (byte >= 'a' && byte <= 'z') byte = static_cast<char>(byte - 'a' + 'A');
  }
}

}  // namespace

v1::EchoResponse echo(const v1::EchoRequest& request) {
  v1::EchoResponse response;
  response.set_payload(request.payload());
  if (request.uppercase()) uppercase_ascii(*response.mutable_payload());
  return response;
}

void add_echo_service(Router& router) {
  // The served echo neither copies nor allocates: the payload moves from the router's reused
  // request into a reused response by swapping buffers, which then serve the next request.
  router.handle<v1::EchoRequest>([](v1::EchoRequest& request) -> const v1::EchoResponse& {
    thread_local v1::EchoResponse response;
    response.mutable_payload()->swap(*request.mutable_payload());
    if (request.uppercase()) uppercase_ascii(*response.mutable_payload());
    return response;
  });
}

}  // namespace msgframe
