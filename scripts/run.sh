#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the framing demo (a message stream
# split at random points as TCP may, de-framed intact).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset default
cmake --build --preset default --target msgframe-split-demo
build/default/examples/msgframe-split-demo "$@"
