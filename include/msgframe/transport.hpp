// Which transport a client uses: TCP frames, UDP datagrams, or TCP with automatic UDP fallback.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace msgframe {

enum class Transport : std::uint8_t {
  tcp,        // length-prefixed frames over one TCP connection
  udp,        // one envelope per datagram, resent with the same id until answered
  automatic,  // TCP; while TCP is down, calls that fit a datagram go over UDP
};

// "tcp", "udp", "auto" — the names the command-line tools take.
std::string_view to_string(Transport transport) noexcept;
std::optional<Transport> parse_transport(std::string_view name) noexcept;

}  // namespace msgframe
