#!/usr/bin/env bash
# Two builds of msgframe side by side: msgframe-bench of each revision, alternated in one sitting
# so that this VM's drift between minutes hits both alike.
#   scripts/bench-compare.sh OLD_REV [NEW_REV] [ROUNDS] [SECONDS] [SCENARIOS]
# NEW_REV defaults to the work tree, ROUNDS to 3, SECONDS to 3, SCENARIOS to pipelined,fanin.
# Each revision is built (release preset) in a worktree under build/compare/; prints each run's
# RESULT line, tagged with the revision, then the median calls/s per revision and scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/bench-compare.sh OLD_REV [NEW_REV] [ROUNDS] [SECONDS] [SCENARIOS]}
new=${2:-}
rounds=${3:-3}
seconds=${4:-3}
scenarios=${5:-pipelined,fanin}

bench_of() {  # REV (empty: the work tree) -> path of its msgframe-bench
  local source=.
  if [ -n "$1" ]; then
    source=build/compare/$(git rev-parse --short "$1")
    [ -d "$source" ] || git worktree add --detach "$source" "$1" >/dev/null
  fi
  cmake -S "$source" -B "$source/build/compare-release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DMSGFRAME_BUILD_TESTS=OFF -DMSGFRAME_VECTORS_DIR="$PWD/../shared/vectors" >/dev/null
  cmake --build "$source/build/compare-release" --target msgframe-bench >/dev/null
  echo "$source/build/compare-release/bench/msgframe-bench"
}

old_bench=$(bench_of "$old")
new_bench=$(bench_of "$new")
old_name=$(git rev-parse --short "$old")
new_name=${new:+$(git rev-parse --short "$new")}
new_name=${new_name:-worktree}
results=$(mktemp)
for round in $(seq "$rounds"); do
  for side in old new; do
    bench=${side}_bench
    name=${side}_name
    "${!bench}" --system msgframe --scenario "$scenarios" --seconds "$seconds" |
      grep '^RESULT' | sed "s/^/${!name} round $round: /" | tee -a "$results"
  done
done
echo "median msgs/s:"
for name in "$old_name" "$new_name"; do
  for scenario in ${scenarios//,/ }; do
    median=$(grep "^$name round" "$results" | grep "scenario=$scenario " |
      grep -o 'msgs_per_s=[0-9.]*' | cut -d= -f2 | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    echo "  $name $scenario $median"
  done
done
rm -f "$results"
