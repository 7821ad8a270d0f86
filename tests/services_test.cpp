// The built-in services: Echo's ASCII-only uppercasing, Time's exact RFC 3339 form.
#define BOOST_TEST_MODULE services
#include <boost/test/unit_test.hpp>
#include <cctype>
#include <chrono>

#include "msgframe/echo_service.hpp"
#include "msgframe/time_service.hpp"

namespace v1 = msgframe::v1;

BOOST_AUTO_TEST_CASE(echo_returns_the_payload_unchanged) {
  v1::EchoRequest request;
  request.set_payload(std::string("any bytes \0\xff here", 17));
  BOOST_TEST(msgframe::echo(request).payload() == request.payload());
}

BOOST_AUTO_TEST_CASE(echo_uppercases_ascii_letters_only) {
  v1::EchoRequest request;
  request.set_payload("abc xyz ABC 123 caf\xc3\xa9 {}`");
  request.set_uppercase(true);
  // é stays two untouched UTF-8 bytes; `{` and the backtick sit right beside a-z in ASCII.
  BOOST_TEST(msgframe::echo(request).payload() == "ABC XYZ ABC 123 CAF\xc3\xa9 {}`");
}

BOOST_AUTO_TEST_CASE(rfc3339_has_nine_fraction_digits_and_a_z) {
  BOOST_TEST(msgframe::format_rfc3339_nanos(0) == "1970-01-01T00:00:00.000000000Z");
  BOOST_TEST(msgframe::format_rfc3339_nanos(1795550160123456789) ==
             "2026-11-24T19:56:00.123456789Z");
  BOOST_TEST(msgframe::format_rfc3339_nanos(951782400000000001) ==
             "2000-02-29T00:00:00.000000001Z");  // a leap day
  BOOST_TEST(msgframe::format_rfc3339_nanos(-1) == "1969-12-31T23:59:59.999999999Z");
}

BOOST_AUTO_TEST_CASE(current_time_is_now_and_both_fields_agree) {
  const auto before = std::chrono::system_clock::now();
  const auto response = msgframe::current_time();
  const auto after = std::chrono::system_clock::now();
  const auto nanos = [](auto point) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(point.time_since_epoch()).count();
  };
  BOOST_TEST(response.unix_nanos() >= nanos(before));
  BOOST_TEST(response.unix_nanos() <= nanos(after));
  BOOST_TEST(response.rfc3339() == msgframe::format_rfc3339_nanos(response.unix_nanos()));
  // YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ
  const std::string& text = response.rfc3339();
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
  BOOST_TEST_REQUIRE(text.size() == shape.size());
  for (std::size_t index = 0; index < shape.size(); ++index) {
    const bool fits = shape[index] == 'd' ? std::isdigit(static_cast<unsigned char>(text[index]))
                                          : text[index] == shape[index];
    BOOST_TEST(fits, "rfc3339 " << text << " at " << index);
  }
}
