// The msgframe system of msgframe-bench: the library's server with its Echo service, and
// msgframe::Client connections calling it.
#pragma once

#include "load.hpp"

namespace bench {

int serve_msgframe(const ServeSettings& settings);
LoadResult load_msgframe(const Scenario& scenario, const LoadSettings& settings);

}  // namespace bench
