#!/usr/bin/env bash
# The Zapier app's tests against a live local server. Needs node >= 18, npm (registry
# reachable), and the repository's .venv (make test creates it). From the repository root:
#   clients/zapier/run-tests.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-../../.venv/bin/python}"

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >/dev/null; else npm install --no-audit --no-fund >/dev/null; fi

receiver_port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ready="$(mktemp)"
server=""
# Whatever ends this script (success, a failing test, Ctrl-C, a kill), the live server gets
# SIGTERM and is waited for: it stops its worker, web servers and stand-in provider, then
# its embedded Redis (it removes its instance folder too), so nothing is left running.
stop_server() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -f "$ready"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" test/live_server.py "$receiver_port" >"$ready" &
server=$!

for _ in $(seq 1 600); do
  if [ -s "$ready" ]; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "zapier: the live server failed to start" >&2; exit 1; fi
  sleep 0.1
done
[ -s "$ready" ] || { echo "zapier: the live server did not become ready" >&2; exit 1; }

# One JSON line: base_url, api_key, control_url and the seeded agent, policy and key prefix.
ALBEDO_LIVE="$(head -n1 "$ready")" ALBEDO_RECEIVER_PORT="$receiver_port" \
  NODE_ENV=test node --test --test-concurrency=1 test/
