// The "msgframe" error category and the words it uses for each error.
#include "msgframe/error.hpp"

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
  switch (value) {
    case error::frame_too_large:
      return out << "frame_too_large";
    case error::bad_length_prefix:
      return out << "bad_length_prefix";
  }
  return out << "msgframe::error(" << static_cast<int>(value) << ")";
}

}  // namespace msgframe
