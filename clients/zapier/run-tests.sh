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
"$PYTHON" test/live_server.py "$receiver_port" >"$ready" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$ready"' EXIT

for _ in $(seq 1 600); do
  if [ -s "$ready" ]; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "zapier: the live server failed to start" >&2; exit 1; fi
  sleep 0.1
done
[ -s "$ready" ] || { echo "zapier: the live server did not become ready" >&2; exit 1; }

config="$(head -n1 "$ready")"
field() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$config" "$1"; }
ALBEDO_BASE_URL="$(field base_url)" ALBEDO_API_KEY="$(field api_key)" \
ALBEDO_CONTROL_URL="$(field control_url)" ALBEDO_RECEIVER_PORT="$receiver_port" \
  NODE_ENV=test node --test test/
