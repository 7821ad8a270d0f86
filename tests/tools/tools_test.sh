#!/usr/bin/env bash
# The tools as a person uses them: msgframe-server on a free loopback port, msgframe-client's
# commands and interactive mode against it, exit codes, a bind failure, and clean SIGTERM and
# SIGINT stops (the SIGINT as soon as the server says it listens).
#   tools_test.sh SERVER_BINARY CLIENT_BINARY
set -euo pipefail
server_binary=$1
client_binary=$2
work=$(mktemp -d)
server_pid=""
second_pid=""
tls_pid=""
cleanup() {
  [ -n "$tls_pid" ] && kill -KILL "$tls_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  [ -n "$second_pid" ] && kill -KILL "$second_pid" 2>/dev/null || true
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
wait_for_exit() {  # wait_for_exit PID FD: sets $status to the exit status of the server PID,
  # whose stdout we read on FD: its end says the server exited. KILLed (137) if not within 20 s.
  timeout 20 cat <&"$2" >/dev/null || kill -KILL "$1" 2>/dev/null
  status=0
  wait "$1" || status=$?
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
# -1 wraps around to SIZE_MAX threads; unrefused, it would try to start them all.
timeout 20 "$server_binary" --port 0 --threads -1 >/dev/null 2>"$work/threads.err"
check "--threads -1 exits 2" "2" "$?"
check "--threads -1 says why" "1" "$(grep -c 'threads must be 0' "$work/threads.err")"

# TLS, with throw-away certificates.
"$(dirname "$0")/../integration/make_test_certs.sh" "$work/certs" >/dev/null 2>&1
mkfifo "$work/tls.out"
"$server_binary" --host 127.0.0.1 --port 0 --threads 1 --tls-cert "$work/certs/server.crt" \
  --tls-key "$work/certs/server.key" >"$work/tls.out" 2>"$work/tls.err" &
tls_pid=$!
exec 5<"$work/tls.out"
read -r -t 10 tls_listening <&5 || echo "FAILED: no 'listening on' line from the TLS server"
tls_port=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$tls_listening" | cut -d: -f2)
tls_client=("$client_binary" --host 127.0.0.1 --port "$tls_port" --timeout 5000)
check "echo over TLS" "secret" "$("${tls_client[@]}" --tls-ca "$work/certs/ca.crt" echo secret)"
"${tls_client[@]}" --tls-ca "$work/certs/rogue-ca.crt" echo x >/dev/null 2>"$work/tls-client.err"
check "an untrusted server certificate exits 1" "1" "$?"
check "an untrusted server certificate says why" "1" \
  "$(grep -c 'certificate verify failed' "$work/tls-client.err")"
"${tls_client[@]}" echo plaintext >/dev/null 2>&1
check "plaintext to a TLS server exits 1" "1" "$?"
"${tls_client[@]}" --tls-ca "$work/certs/missing.crt" echo x >/dev/null 2>"$work/tls-client.err"
check "a missing CA file exits 2" "2" "$?"
"$server_binary" --port 0 --tls-cert "$work/certs/missing.crt" --tls-key "$work/certs/server.key" \
  >/dev/null 2>"$work/tls-options.err"
check "a missing certificate file exits 2" "2" "$?"
check "a missing certificate file is named" "1" "$(grep -c 'missing.crt' "$work/tls-options.err")"
kill -TERM "$tls_pid"
wait_for_exit "$tls_pid" 5
check "SIGTERM stops the TLS server with status 0" "0" "$status"
tls_pid=""

kill -TERM "$server_pid"
wait_for_exit "$server_pid" 3
check "SIGTERM stops the server with status 0" "0" "$status"
server_pid=""

# A signal sent the moment the 'listening on' line is written must stop the server cleanly. That
# moment is a race with the server's start, so a few servers try it, one at a time. The line is
# one write to the pipe: its first byte means all of it is there, and bash's `read` of the whole
# line, a byte at a time, would give the server time it must not need. (A background job of a
# script starts with SIGINT ignored: only the server's own handler can see it.)
sigint_status=0
sigint_reported=1
for round in $(seq 40); do
  rm -f "$work/second.out"
  mkfifo "$work/second.out"
  "$server_binary" --host 127.0.0.1 --port 0 --threads 1 >"$work/second.out" \
    2>"$work/second.err" &
  second_pid=$!
  exec 4<"$work/second.out"
  if ! read -r -N 1 -t 10 first_byte <&4; then
    sigint_status="no 'listening on' line within 10 s in round $round"
    break
  fi
  kill -INT "$second_pid"
  read -r -t 10 rest_of_line <&4
  if [[ "$first_byte$rest_of_line" != *"listening on 127.0.0.1:"* ]]; then
    sigint_status="round $round: the signal followed [$first_byte$rest_of_line]"
    break
  fi
  wait_for_exit "$second_pid" 4
  second_pid=""
  exec 4<&-
  sigint_reported=$(grep -c 'SIGINT, stopping' "$work/second.err")
  if [ "$status" != 0 ] || [ "$sigint_reported" != 1 ]; then
    sigint_status="status $status in round $round"
    break
  fi
done
check "SIGINT right after 'listening on' stops the server with status 0" "0" "$sigint_status"
check "the server stopped by SIGINT says so" "1" "$sigint_reported"
set -e
check "server reports its stop" "1" "$(grep -c 'stopped after' "$work/server.err")"

echo "tools: $passes checks passed, $failures failed"
[ "$failures" -eq 0 ]
