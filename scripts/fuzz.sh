#!/usr/bin/env bash
# Runs one fuzz target for longer than the test command does:
#   scripts/fuzz.sh [TARGET] [SECONDS]   TARGET: frame_decoder (default), envelope or session;
#                                        SECONDS: 3600
#   scripts/fuzz.sh SECONDS              the frame decoder, as before
# New inputs collect in build/fuzz/tests/fuzz/corpus/TARGET/; a crash lands in .../artifacts/ and
# should be copied into tests/fuzz/corpus/TARGET/ (named regression-*) with its fix, so every
# build replays it from then on (fuzz_corpus_test, session_corpus_test).
set -euo pipefail
cd "$(dirname "$0")/.."

target=frame_decoder
if [[ $# -gt 0 && ! $1 =~ ^[0-9]+$ ]]; then
  target=$1
  shift
fi
seconds="${1:-3600}"
case "$target" in
  frame_decoder) extra=() ;;
  envelope) extra=(-max_len=512) ;;
  # One TCP connection per input to a server whose max frame is 4 KiB (see tests/fuzz/CMakeLists.txt).
  session) extra=(-max_len=8192 -timeout=60) ;;
  *) echo "unknown fuzz target '$target': frame_decoder, envelope or session" >&2; exit 2 ;;
esac

scripts/install-deps.sh
cmake --preset fuzz
cmake --build --preset fuzz
fuzz_dir=build/fuzz/tests/fuzz
mkdir -p "$fuzz_dir/corpus/$target" "$fuzz_dir/artifacts"
"$fuzz_dir/${target}_fuzz" -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}" \
  -artifact_prefix="$fuzz_dir/artifacts/" "$fuzz_dir/corpus/$target" "tests/fuzz/corpus/$target"
