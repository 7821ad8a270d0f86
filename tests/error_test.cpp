// The msgframe error category: its name, and a distinct, actionable message for every error.
#define BOOST_TEST_MODULE error
#include "msgframe/error.hpp"

#include <boost/test/unit_test.hpp>
#include <set>
#include <sstream>

BOOST_AUTO_TEST_CASE(codes_belong_to_the_msgframe_category) {
  const boost::system::error_code code = msgframe::error::frame_too_large;
  BOOST_TEST(code.category().name() == std::string("msgframe"));
  BOOST_TEST(code == msgframe::error::frame_too_large);
  BOOST_TEST(code != msgframe::error::bad_length_prefix);
  BOOST_TEST(static_cast<bool>(code));
}

BOOST_AUTO_TEST_CASE(messages_say_what_happened_and_what_to_do) {
  const auto too_large = make_error_code(msgframe::error::frame_too_large).message();
  const auto malformed = make_error_code(msgframe::error::bad_length_prefix).message();
  BOOST_TEST(too_large.find("max_frame_bytes") != std::string::npos);
  BOOST_TEST(malformed.find("prefix") != std::string::npos);
  BOOST_TEST(too_large != malformed);
}

BOOST_AUTO_TEST_CASE(unknown_values_still_get_a_message) {
  const boost::system::error_code code(999, msgframe::error_category());
  BOOST_TEST(code.message().find("999") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_error_has_its_own_message_and_name) {
  std::set<std::string> messages;
  std::set<std::string> names;
  constexpr int last = static_cast<int>(msgframe::error::too_many_pending_calls);
  for (int value = 1; value <= last; ++value) {
    const auto error = static_cast<msgframe::error>(value);
    messages.insert(make_error_code(error).message());
    std::ostringstream name;
    name << error;
    BOOST_TEST(name.str().find("msgframe::error(") == std::string::npos);
    names.insert(name.str());
  }
  BOOST_TEST(messages.size() == static_cast<std::size_t>(last));
  BOOST_TEST(names.size() == static_cast<std::size_t>(last));
}
