// The "msgframe" error category and the words it uses for each error.
#include "msgframe/error.hpp"

#include <iterator>
#include <ostream>
#include <string>

namespace msgframe {
namespace {

class ErrorCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "msgframe"; }

  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::frame_too_large:
        return "frame too large: the length prefix announces more bytes than max_frame_bytes "
               "allows; send smaller messages or raise max_frame_bytes on both peers";
      case error::bad_length_prefix:
        return "malformed length prefix: a varint length is longer than 10 bytes; check that "
               "both peers use the same length prefix format";
      case error::bad_envelope:
        return "bad envelope: the frame is not a valid msgframe.v1.Envelope (or its kind is "
               "unspecified or unknown); check that the peer speaks msgframe protocol v1";
      case error::unknown_type:
        return "unknown type: the server has no handler for this request type; check the "
               "message's full name and that the server registers it";
      case error::bad_payload:
        return "bad payload: the payload does not parse as the message type it claims to be";
      case error::overloaded:
        return "overloaded: the server refused the request for lack of capacity; retry later";
      case error::internal:
        return "internal error: the server's handler failed; see the server's log";
      case error::timeout:
        return "timeout: no reply came before the deadline; the server may be slow or gone";
      case error::shutting_down:
        return "shutting down: the server is stopping and takes no new requests; reconnect "
               "later";
      case error::unknown_server_error:
        return "the server answered with an error code this client does not know";
      case error::connection_lost:
        return "connection lost: the connection closed before the reply arrived";
      case error::not_connected:
        return "not connected: connect the client before calling";
      case error::unexpected_response_type:
        return "unexpected response type: the reply is not the message type the call expected";
      case error::too_many_pending_calls:
        return "too many pending calls: the client has max_pending_calls calls waiting for "
               "replies; wait for some, raise the limit, or let calls wait for room";
    }
    return "unknown msgframe error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const ErrorCategory category;
  return category;
}

boost::system::error_code make_error_code(error value) noexcept {
  return {static_cast<int>(value), error_category()};
}

std::ostream& operator<<(std::ostream& out, error value) {
  static constexpr const char* names[] = {"frame_too_large",
                                          "bad_length_prefix",
                                          "bad_envelope",
                                          "unknown_type",
                                          "bad_payload",
                                          "overloaded",
                                          "internal",
                                          "timeout",
                                          "shutting_down",
                                          "unknown_server_error",
                                          "connection_lost",
                                          "not_connected",
                                          "unexpected_response_type",
                                          "too_many_pending_calls"};
  const auto index = static_cast<std::size_t>(value) - 1;
  if (index < std::size(names)) return out << names[index];
  return out << "msgframe::error(" << static_cast<int>(value) << ")";
}

}  // namespace msgframe
