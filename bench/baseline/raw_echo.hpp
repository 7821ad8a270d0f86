// The `raw` system: a minimal hand-written Boost.Asio echo of 4-byte-length-prefixed frames and
// its load client, the floor msgframe is measured against.
#pragma once

#include "load.hpp"

namespace bench {

// TCP: echoes every frame ([uint32 big-endian body length][body], bodies up to 4 MiB) back
// unchanged, all the frames of one read in one write. UDP, on the same port: echoes each
// datagram to its sender as is. See ServeFunction for the process contract.
int serve_raw(const ServeSettings& settings);

// Drives `scenario` against a serve_raw server, speaking the same frames (TCP) or datagrams
// (UDP). See LoadFunction.
LoadResult load_raw(const Scenario& scenario, const LoadSettings& settings);

}  // namespace bench
