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
  function rate(text,   value, unit) {  # "65.7G/s" -> 65.7e9
    value = text + 0; unit = substr(text, length(value "") + 1, 1)
    return value * (unit == "k" ? 1e3 : unit == "M" ? 1e6 : unit == "G" ? 1e9 : 1)
  }
  /^BM_.*_median / {
    name = $1; sub(/_median$/, "", name)
    for (i = 1; i <= NF; ++i) {
      if ($i ~ /^frames_per_second=/) fps[name] = substr($i, 19)
      if ($i ~ /^bytes_per_second=/) bps[name] = rate(substr($i, 18))
    }
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
        if (("BM_" kind "/" s) in bps && ("BM_Copy/" s) in bps)
          printf "  %5s-byte bodies: %.3f   frames/s %s\n", s,
                 bps["BM_" kind "/" s] / bps["BM_Copy/" s], fps["BM_" kind "/" s]
      }
    }
  }'
