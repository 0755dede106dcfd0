#!/usr/bin/env bash
# `make run`: start lookaheadd on a socket in the cache dir, ask one GSM8K question through
# lookaheadctl (streaming), then stop the daemon — or leave it serving with KEEP=1.
set -euo pipefail
BIN="$1"; shift
QUESTION="$*"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd"
SOCKET="${LOOKAHEAD_SOCKET:-$CACHE_ROOT/demo.sock}"
mkdir -p "$CACHE_ROOT"

"$BIN/lookaheadd" --socket "$SOCKET" --state-dir "$CACHE_ROOT/state" &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null || true; wait $DAEMON 2>/dev/null || true' EXIT
printf '==> waiting for lookaheadd to load the models (pid %s, socket %s)\n' "$DAEMON" "$SOCKET" >&2
for _ in $(seq 1 600); do
  "$BIN/lookaheadctl" --socket "$SOCKET" status >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "error: lookaheadd exited during start-up" >&2; exit 1; }
  sleep 0.2
done
printf '==> lookaheadctl ask %q\n\n' "$QUESTION" >&2
"$BIN/lookaheadctl" --socket "$SOCKET" ask "$QUESTION"
if [ "${KEEP:-0}" = 1 ]; then
  printf '\n==> lookaheadd keeps serving on %s (Ctrl-C stops it); try:\n    %s/lookaheadctl --socket %s status\n' "$SOCKET" "$BIN" "$SOCKET" >&2
  trap - EXIT
  wait $DAEMON
fi
