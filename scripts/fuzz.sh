#!/usr/bin/env bash
# Runs the frame decoder fuzzer for longer than the test command does:
#   scripts/fuzz.sh [SECONDS]   (default 3600)
# New inputs collect in build/fuzz/tests/fuzz/corpus/; a crash lands in .../artifacts/ and should
# be copied into tests/fuzz/corpus/frame_decoder/ (named regression-*) with its fix, so every
# build's fuzz_corpus_test replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-3600}"
scripts/install-deps.sh
cmake --preset fuzz
cmake --build --preset fuzz
fuzz_dir=build/fuzz/tests/fuzz
build/fuzz/tests/fuzz/frame_decoder_fuzz -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$fuzz_dir/artifacts/" "$fuzz_dir/corpus/frame_decoder" \
  tests/fuzz/corpus/frame_decoder
