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
  // A frame body that is not a valid msgframe.v1.Envelope.
  bad_envelope,
  // The peer has no handler for the request's type (ERROR_CODE_UNKNOWN_TYPE).
  unknown_type,
  // A payload that does not parse as its type (ERROR_CODE_BAD_PAYLOAD).
  bad_payload,
  // The server refused the request for lack of capacity (ERROR_CODE_OVERLOADED).
  overloaded,
  // The server's handler failed (ERROR_CODE_INTERNAL).
  internal,
  // No reply came before the call's deadline (ERROR_CODE_TIMEOUT, or the client's own deadline).
  timeout,
  // The server is shutting down (ERROR_CODE_SHUTTING_DOWN).
  shutting_down,
  // An ERROR envelope with a code this peer does not know.
  unknown_server_error,
  // The connection closed while the call waited for its reply.
  connection_lost,
  // A call was made on a client that is not connected.
  not_connected,
  // The reply's type is not the response type the caller asked for.
  unexpected_response_type,
  // The client already has ClientOptions::max_pending_calls calls waiting for replies.
  too_many_pending_calls,
};

// The "msgframe" category shared by every msgframe error code.
const boost::system::error_category& error_category() noexcept;

boost::system::error_code make_error_code(error value) noexcept;

// Writes the error's name, e.g. "frame_too_large", for logs and test output.
std::ostream& operator<<(std::ostream& out, error value);

}  // namespace msgframe

template <>
struct boost::system::is_error_code_enum<msgframe::error> : std::true_type {};
