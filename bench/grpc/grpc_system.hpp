// The grpc system of msgframe-bench: an Echo server and load client on gRPC's asynchronous unary
// API (Debian's gRPC C++), the RPC stack msgframe is most often weighed against.
#pragma once

#include <string>

#include "load.hpp"

namespace bench {

// gRPC's server with the Echo service of grpc_echo.proto, one completion queue and thread per
// settings.threads. See ServeFunction for the process contract.
int serve_grpc(const ServeSettings& settings);

// Drives `scenario` with one gRPC channel (and TCP connection) per scenario connection, its calls
// polled from one completion queue on the calling thread. See LoadFunction.
LoadResult load_grpc(const Scenario& scenario, const LoadSettings& settings);

// Why the grpc system cannot run `scenario` (gRPC has no UDP transport, ...); empty when it can.
std::string grpc_cannot_run(const Scenario& scenario);

}  // namespace bench
