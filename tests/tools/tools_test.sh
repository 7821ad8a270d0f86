#!/usr/bin/env bash
# The tools as a person uses them: msgframe-server on a free loopback port, msgframe-client's
# commands and interactive mode against it, exit codes, a bind failure, and a clean SIGTERM stop.
#   tools_test.sh SERVER_BINARY CLIENT_BINARY
set -euo pipefail
server_binary=$1
client_binary=$2
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
passes=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then
    echo "ok: $1"
    passes=$((passes + 1))
  else
    echo "FAILED: $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  fi
}

mkfifo "$work/server.out"
"$server_binary" --host 127.0.0.1 --port 0 --threads 2 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec 3<"$work/server.out"
read -r -t 10 listening <&3 || { echo "FAILED: no 'listening on' line within 10 s"; exit 1; }
port=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$listening" | cut -d: -f2)
check "server announces its port" "listening on 127.0.0.1:$port" \
  "$(grep -o "listening on 127\.0\.0\.1:[0-9]*" <<<"$listening")"

client=("$client_binary" --host 127.0.0.1 --port "$port" --timeout 5000)
check "echo" "hello there" "$("${client[@]}" echo hello there)"
check "echo --upper" "HELLO, WORLD 123 é" "$("${client[@]}" echo --upper "hello, world 123 é")"
time_line=$("${client[@]}" time)
check "time is RFC 3339 with 9 digits" "1" \
  "$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z \([0-9]+ ns' <<<"$time_line")"
check "echo over UDP" "over udp" "$("${client[@]}" --udp echo over udp)"
udp_time=$("${client[@]}" time --udp)
check "time over UDP" "1" "$(grep -cE '^[0-9]{4}-.*Z \(' <<<"$udp_time")"
check "echo with --transport auto" "auto" "$("${client[@]}" --transport auto echo auto)"
interactive=$(printf 'one\ntwo words\nq\nnever sent\n' | "${client[@]}")
check "interactive echoes each line until q" \
  "connected to 127.0.0.1:$port over tcp; type a line to echo it, q to quit|>> one|>> two words|>> " \
  "$(tr '\n' '|' <<<"$interactive" | sed 's/|$//')"
check "interactive ends at end of input" "0" "$(printf 'x\n' | "${client[@]}" >/dev/null; echo $?)"

set +e
"${client[@]}" frobnicate >/dev/null 2>"$work/client.err"
check "unknown command exits 2" "2" "$?"
"${client[@]}" --transport carrier-pigeon time >/dev/null 2>"$work/client.err"
check "unknown transport exits 2" "2" "$?"
"$client_binary" --host 127.0.0.1 --port 1 --udp --timeout 600 time >/dev/null 2>"$work/client.err"
check "UDP with no server times out and exits 1" "1" "$?"
"$client_binary" --host 127.0.0.1 --port 1 --timeout 2000 time >/dev/null 2>"$work/client.err"
check "refused connection exits 1" "1" "$?"
check "refused connection says why" "1" "$(grep -c 'cannot connect to 127.0.0.1:1' "$work/client.err")"
"$server_binary" --host 127.0.0.1 --port "$port" >/dev/null 2>"$work/bind.err"
check "bind failure exits 1" "1" "$?"
check "bind failure says why" "1" "$(grep -c "cannot listen on 127.0.0.1:$port" "$work/bind.err")"
"$server_binary" --max-frame 0 >/dev/null 2>"$work/options.err"
check "invalid option exits 2" "2" "$?"

kill -TERM "$server_pid"
wait "$server_pid"
check "SIGTERM stops the server with status 0" "0" "$?"
server_pid=""
set -e
check "server reports its stop" "1" "$(grep -c 'stopped after' "$work/server.err")"

echo "tools: $passes checks passed, $failures failed"
[ "$failures" -eq 0 ]
