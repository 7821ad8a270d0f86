// Transport names.
#include "msgframe/transport.hpp"

namespace msgframe {

std::string_view to_string(Transport transport) noexcept {
  switch (transport) {
    case Transport::tcp:
      return "tcp";
    case Transport::udp:
      return "udp";
    case Transport::automatic:
      break;
  }
  return "auto";
}

std::optional<Transport> parse_transport(std::string_view name) noexcept {
  if (name == "tcp") return Transport::tcp;
  if (name == "udp") return Transport::udp;
  if (name == "auto") return Transport::automatic;
  return std::nullopt;
}

}  // namespace msgframe
