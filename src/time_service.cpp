// The Time service.
#include "msgframe/time_service.hpp"

#include <chrono>
#include <cstdio>

namespace msgframe {

std::string format_rfc3339_nanos(std::int64_t unix_nanos) {
  using namespace std::chrono;
  const sys_time<nanoseconds> instant{nanoseconds(unix_nanos)};
  const auto day = floor<days>(instant);  // floor: instants before 1970 land on the right day
  const year_month_day date{day};
  const hh_mm_ss time_of_day{instant - day};
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%09lldZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(time_of_day.hours().count()),
                static_cast<int>(time_of_day.minutes().count()),
                static_cast<int>(time_of_day.seconds().count()),
                static_cast<long long>(time_of_day.subseconds().count()));
  return text;
}

v1::TimeResponse time_at(std::int64_t unix_nanos) {
  v1::TimeResponse response;
  response.set_unix_nanos(unix_nanos);
  response.set_rfc3339(format_rfc3339_nanos(unix_nanos));
  return response;
}

v1::TimeResponse current_time() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return time_at(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
}

void add_time_service(Router& router) {
  router.handle<v1::TimeRequest>([](const v1::TimeRequest&) { return current_time(); });
}

}  // namespace msgframe
