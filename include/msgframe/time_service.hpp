// The built-in Time service: the server's clock, in nanoseconds and as RFC 3339 UTC text.
#pragma once

#include <cstdint>
#include <string>

#include "msgframe/router.hpp"
#include "msgframe/v1/time.pb.h"

namespace msgframe {

// The time now (system clock, UTC).
v1::TimeResponse current_time();

// The TimeResponse for an instant given in nanoseconds since the Unix epoch.
v1::TimeResponse time_at(std::int64_t unix_nanos);

// RFC 3339 in UTC with exactly 9 fraction digits, e.g. "2026-11-24T19:56:00.123456789Z".
std::string format_rfc3339_nanos(std::int64_t unix_nanos);

void add_time_service(Router& router);

}  // namespace msgframe
