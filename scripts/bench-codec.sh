#!/usr/bin/env bash
# Runs the codec benchmark as docs/PERFORMANCE.md reports it: release build, pinned to one core,
# Decode and Copy interleaved at random over repetitions, medians and Decode/Copy ratios printed.
#   scripts/bench-codec.sh [REPETITIONS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

repetitions="${1:-10}"
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target msgframe_codec_bench
taskset -c 1 build/release/bench/msgframe_codec_bench --benchmark_min_time=0.3 \
  --benchmark_repetitions="$repetitions" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true 2>&1 | tee /dev/stderr | awk '
  /^BM_.*_median / {
    name = $1; sub(/_median$/, "", name); time[name] = $2
    for (i = 1; i <= NF; ++i) if ($i ~ /^frames_per_second=/) fps[name] = substr($i, 19)
  }
  END {
    split("16 1024 65536", sizes, " ")
    split("Decode DecodeMixed", kinds, " ")
    for (k = 1; k <= 2; ++k) {
      kind = kinds[k]
      printf "\n%s vs Copy (bytes/s ratio of medians%s):\n", kind,
             kind == "Decode" ? "; target >= 0.90 for 1024 and 65536" : ", sizes that keep changing"
      for (i = 1; i <= 3; ++i) {
        s = sizes[i]
        if (("BM_" kind "/" s) in time && ("BM_Copy/" s) in time)
          printf "  %5s-byte bodies: %.3f   frames/s %s\n", s,
                 time["BM_Copy/" s] / time["BM_" kind "/" s], fps["BM_" kind "/" s]
      }
    }
  }'
