#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts msgframe-server on a free loopback port,
# runs msgframe-client against it (echo, uppercase echo, time over TCP and UDP, a scripted
# interactive session),
# then stops the server by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset default
cmake --build --preset default --target msgframe-server msgframe-client
bin=build/default/examples

work=$(mktemp -d)
mkfifo "$work/server.out"
"$bin/msgframe-server" --host 127.0.0.1 --port 0 >"$work/server.out" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
exec 3<"$work/server.out"
if ! read -r -t 10 listening <&3; then
  echo "run.sh: msgframe-server did not report a port within 10 s" >&2
  exit 1
fi
echo "$listening"
port=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$listening" | head -n 1 | cut -d: -f2)

set -x
"$bin/msgframe-client" --host 127.0.0.1 --port "$port" echo "Hello, msgframe!"
"$bin/msgframe-client" --host 127.0.0.1 --port "$port" echo --upper "Hello, msgframe!"
"$bin/msgframe-client" --host 127.0.0.1 --port "$port" time
"$bin/msgframe-client" --host 127.0.0.1 --port "$port" time --udp
printf 'first line\nsecond line\nq\n' | "$bin/msgframe-client" --host 127.0.0.1 --port "$port"
{ set +x; } 2>/dev/null

kill -TERM "$server_pid"
wait "$server_pid"
trap 'rm -rf "$work"' EXIT
echo "run.sh: server stopped cleanly"
