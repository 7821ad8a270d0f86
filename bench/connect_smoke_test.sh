#!/usr/bin/env bash
# msgframe-bench --connect: the load client against a server it did not start (msgframe-server,
# the reference server, stopped by its PID), and the arguments it refuses.
#   connect_smoke_test.sh BENCH_BINARY SERVER_BINARY
set -euo pipefail
bench=$1
server_binary=$2
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then
    echo "ok: $1"
  else
    echo "FAILED: $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  fi
}

mkfifo "$work/server.out"
"$server_binary" --host 127.0.0.1 --port 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec 3<"$work/server.out"
read -r -t 10 listening <&3 || { echo "FAILED: no 'listening on' line within 10 s"; exit 1; }
port=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$listening" | cut -d: -f2)

set +e
"$bench" --connect "127.0.0.1:$port" --system msgframe --scenario pingpong,pipelined,udp-pingpong \
  --seconds 0.3 --no-pin >"$work/bench.out" 2>"$work/bench.err"
check "a run against msgframe-server exits 0" "0" "$?"
check "one RESULT line per scenario" "3" "$(grep -c '^RESULT system=msgframe scenario=' "$work/bench.out")"
check "every scenario ok" "3" "$(grep -cE '^msgframe +[a-z-]+ +[1-9][0-9]* .* ok$' "$work/bench.out")"
"$bench" --connect "127.0.0.1:$port" --system msgframe,raw --seconds 0.1 >/dev/null 2>"$work/two.err"
check "two systems against one server exit 2" "2" "$?"
check "and say why" "1" "$(grep -c 'needs exactly one --system' "$work/two.err")"
"$bench" --connect "127.0.0.1" --system msgframe --seconds 0.1 >/dev/null 2>"$work/address.err"
check "an address without a port exits 2" "2" "$?"
"$bench" --connect "127.0.0.1:65536" --system msgframe --seconds 0.1 >/dev/null 2>&1
check "a port over 65535 exits 2" "2" "$?"
kill -TERM "$server_pid"
timeout 20 cat <&3 >/dev/null
wait "$server_pid"
check "msgframe-server stops cleanly after the runs" "0" "$?"
server_pid=""
"$bench" --connect "127.0.0.1:$port" --system msgframe --scenario pingpong --seconds 0.1 \
  --no-pin >"$work/refused.out" 2>&1
check "no server there exits 1" "1" "$?"
check "and says the connect failed" "1" "$(grep -c 'FAILED: connect:' "$work/refused.out")"
set -e

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
