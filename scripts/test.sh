#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the unit tests in the default and the
# sanitizer (ASan + UBSan) builds, the client and server tests under ThreadSanitizer, then each
# fuzz target for a share of MSGFRAME_FUZZ_SECONDS (default 60 in total; tests/fuzz/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
for preset in default asan tsan; do
  echo "== $preset build and tests"
  cmake --preset "$preset"
  cmake --build --preset "$preset"
  ctest --preset "$preset" -j "$(nproc)"
done

echo "== fuzz build and bounded fuzz run"
cmake --preset fuzz -DMSGFRAME_FUZZ_SECONDS="${MSGFRAME_FUZZ_SECONDS:-60}"
cmake --build --preset fuzz
ctest --preset fuzz
