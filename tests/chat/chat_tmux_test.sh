#!/usr/bin/env bash
# Two real msgframe-chat processes in tmux panes talk through a real msgframe-chat-server, typed
# with send-keys and read with capture-pane: what a person at the keyboard sees.
#   chat_tmux_test.sh CHAT_SERVER_BINARY CHAT_CLIENT_BINARY
# Exits 77 (ctest: skipped) when tmux is missing; scripts/install-deps.sh installs it.
set -euo pipefail
server_binary=$1
client_binary=$2
if ! command -v tmux >/dev/null; then
  echo "SKIPPED: tmux is not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

work=$(mktemp -d)
socket="msgframe-chat-test-$$"
tmux_() { tmux -L "$socket" -f /dev/null "$@"; }
server_pid=""
cleanup() {
  tmux_ kill-server 2>/dev/null || true
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
passes=0
pass() { echo "ok: $1"; passes=$((passes + 1)); }
fail() { echo "FAILED: $1"; failures=$((failures + 1)); }

screen() { tmux_ capture-pane -p -t "$1"; }
# wait_for PANE PATTERN NAME: polls the pane's screen (at most 10 s) until a line matches.
wait_for() {
  local pane=$1 pattern=$2 name=$3
  for _ in $(seq 100); do
    if screen "$pane" | grep -qE -- "$pattern"; then pass "$name"; return 0; fi
    sleep 0.1
  done
  fail "$name: no line matching [$pattern] in pane $pane:"
  screen "$pane" | sed 's/^/    | /'
  return 1
}
# The pane's bottom line that is not blank: where the person types (tmux drops trailing spaces).
input_line() { screen "$1" | grep -v '^ *$' | tail -n 1; }
# Each client runs under sh, which writes its exit status to a file when it ends.
run_client() {  # run_client NICK: the command for a pane
  echo "$client --nick $1; echo \$? > $work/$1.status"
}
wait_for_exit() {  # wait_for_exit NICK EXPECTED_STATUS NAME
  local nick=$1 expected=$2 name=$3
  for _ in $(seq 100); do
    if [ -s "$work/$nick.status" ]; then
      local status
      status=$(cat "$work/$nick.status")
      [ "$status" = "$expected" ] && pass "$name" || fail "$name: exit status $status"
      return 0
    fi
    sleep 0.1
  done
  fail "$name: the client did not exit within 10 s"
}

mkfifo "$work/server.out"
"$server_binary" --host 127.0.0.1 --port 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec 3<"$work/server.out"
read -r -t 10 listening <&3 || { echo "FAILED: no 'listening on' line within 10 s"; exit 1; }
port=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$listening" | cut -d: -f2)

client="$client_binary --host 127.0.0.1 --port $port"
alice=$(tmux_ new-session -d -P -F '#{pane_id}' -x 100 -y 30 -s chat "$(run_client alice)")
tmux_ set-option -g remain-on-exit on  # a pane whose client ended can still be read
wait_for "$alice" '^\*\*\* you are alice in #lobby; here: alice$' "alice joins #lobby"
bob=$(tmux_ split-window -d -P -F '#{pane_id}' -t chat "$(run_client bob)")
wait_for "$bob" '^\*\*\* you are bob in #lobby; here: alice bob$' "bob joins and sees alice"
wait_for "$alice" '^\[[0-9:]{8}\] \* bob joined #lobby$' "alice sees bob arrive"
[ "$(input_line "$alice")" = "#lobby alice>" ] && pass "alice has a prompt" ||
  fail "alice's prompt: [$(input_line "$alice")]"

tmux_ send-keys -t "$alice" "hello from alice" Enter
wait_for "$bob" '^\[[0-9:]{8}\] <alice> hello from alice$' "bob reads what alice typed"
wait_for "$alice" '^\[[0-9:]{8}\] <alice> hello from alice$' "alice sees her own line"

# Bob is in the middle of a line when alice talks: his line must survive, intact, at the bottom.
tmux_ send-keys -t "$bob" "half typed"
wait_for "$bob" '^#lobby bob> half typed$' "bob's typing shows"
tmux_ send-keys -t "$alice" "interrupting you" Enter
wait_for "$bob" '^\[[0-9:]{8}\] <alice> interrupting you$' "alice's line arrives while bob types"
[ "$(input_line "$bob")" = "#lobby bob> half typed" ] && pass "bob's half-typed line is intact" ||
  fail "bob's input line after an incoming message: [$(input_line "$bob")]"
tmux_ send-keys -t "$bob" BSpace BSpace BSpace BSpace BSpace "said" Enter
wait_for "$alice" '^\[[0-9:]{8}\] <bob> half said$' "bob finishes his edited line"

tmux_ send-keys -t "$bob" "/who" Enter
wait_for "$bob" '^\*\*\* in #lobby: alice bob$' "/who lists the room"
tmux_ send-keys -t "$bob" "/nick robert" Enter
wait_for "$alice" '^\[[0-9:]{8}\] \* bob is now known as robert$' "/nick is announced"
tmux_ send-keys -t "$alice" "/bogus" Enter
wait_for "$alice" '^\*\*\* unknown command /bogus; /help lists them$' "an unknown command is explained"
tmux_ send-keys -t "$alice" "/help" Enter
wait_for "$alice" '^commands: /join ROOM' "/help shows the commands"

tmux_ send-keys -t "$bob" "/quit" Enter
wait_for "$alice" '^\[[0-9:]{8}\] \* robert left #lobby \(left\)$' "/quit is announced"
wait_for_exit bob 0 "/quit exits with status 0"

# Scripted through a pipe: plain lines out, no prompt, and the exit codes the usage documents.
scripted=$(printf 'scripted hello\n/who\n' | $client --nick scripter)
wait_for "$alice" '^\[[0-9:]{8}\] <scripter> scripted hello$' "a piped line is said"
grep -qE '^\[[0-9:]{8}\] <scripter> scripted hello$' <<<"$scripted" &&
  grep -qx '\*\*\* in #lobby: alice scripter' <<<"$scripted" &&
  pass "piped output is plain lines" || fail "piped output: [$scripted]"
wait_for "$alice" '^\[[0-9:]{8}\] \* scripter left #lobby \(left\)$' "the end of input leaves"
set +e
taken=$(printf '' | $client --nick alice 2>&1)
status=$?
set -e
[ "$status" = 1 ] && grep -q '"alice" is taken' <<<"$taken" && pass "a taken nickname exits 1" ||
  fail "taken nickname: status $status, output [$taken]"
set +e
unreachable=$(printf '' | "$client_binary" --host 127.0.0.1 --port 1 --nick x 2>&1)
status=$?
set -e
[ "$status" = 2 ] && grep -q 'cannot connect to 127.0.0.1:1' <<<"$unreachable" &&
  pass "an unreachable server exits 2" || fail "unreachable: status $status, [$unreachable]"

# The server goes away: alice is told, and the client exits with status 3.
kill -TERM "$server_pid"
wait "$server_pid" && pass "the server stops cleanly on SIGTERM" || fail "server exit status $?"
server_pid=""
wait_for "$alice" '^\*\*\* the server is shutting down$' "alice hears of the shutdown"
wait_for "$alice" '^\*\*\* lost the connection to the server' "alice is told the server is gone"
wait_for_exit alice 3 "the client exits with status 3 when the server is gone"

echo "chat tmux: $passes checks passed, $failures failed"
[ "$failures" -eq 0 ]
