// The built-in Echo service: answers an EchoRequest with its payload, ASCII-uppercased on request.
#pragma once

#include "msgframe/router.hpp"
#include "msgframe/v1/echo.pb.h"

namespace msgframe {

// ASCII a-z become A-Z when request.uppercase() is set; every other byte is returned unchanged.
v1::EchoResponse echo(const v1::EchoRequest& request);

void add_echo_service(Router& router);

}  // namespace msgframe
