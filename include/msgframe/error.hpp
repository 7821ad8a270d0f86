// msgframe's error codes: what went wrong on the wire, as boost::system::error_code values.
#pragma once

#include <boost/system/error_code.hpp>
#include <iosfwd>
#include <type_traits>

namespace msgframe {

// Each value's message (error_category().message) says what happened and what to do about it.
enum class error {
  // A length prefix announced a body longer than the decoder's max_frame_bytes.
  frame_too_large = 1,
  // A length prefix that is not well formed: a varint longer than 10 bytes.
  bad_length_prefix,
};

// The "msgframe" category shared by every msgframe error code.
const boost::system::error_category& error_category() noexcept;

boost::system::error_code make_error_code(error value) noexcept;

// Writes the error's name, e.g. "frame_too_large", for logs and test output.
std::ostream& operator<<(std::ostream& out, error value);

}  // namespace msgframe

template <>
struct boost::system::is_error_code_enum<msgframe::error> : std::true_type {};
