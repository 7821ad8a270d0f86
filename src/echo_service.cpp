// The Echo service.
#include "msgframe/echo_service.hpp"

namespace msgframe {

v1::EchoResponse echo(const v1::EchoRequest& request) {
  v1::EchoResponse response;
  response.set_payload(request.payload());
  if (request.uppercase()) {
    for (auto& byte : *response.mutable_payload()) {
      if (byte >= 'a' && byte <= 'z') byte = static_cast<char>(byte - 'a' + 'A');
    }
  }
  return response;
}

void add_echo_service(Router& router) { router.handle<v1::EchoRequest>(echo); }

}  // namespace msgframe
