#!/usr/bin/env bash
# The sessionEvents benchmark: COUNT (10000) idle subscriptions, one WebSocket connection
# each, on one release auth-api process (SQLite in a temp dir): the API's extra resident
# memory, and how long one event (a sign-in of the user) takes to reach all of them.
#
#   bench/subscriptions/run.sh            # COUNT=10000 PORT=18080
#   CONNECT_ONLY=1 bench/subscriptions/run.sh   # connections acknowledged, no subscription
#
# The server allows COUNT subscriptions per session for the run (they all belong to one
# session, so that one event concerns every one of them); rate limits are off.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
count="${COUNT:-10000}"
port="${PORT:-18080}"
cd "$root"
cargo build --release -q -p auth-api -p auth-bench --bin auth-api --bin subscriptions-bench
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
dir="$(mktemp -d)"
DATABASE_URL="sqlite://$dir/auth.db" AUTH_LISTEN="127.0.0.1:$port" AUTH_ISSUER="http://127.0.0.1:$port" \
  AUTH_SUBSCRIPTIONS_PER_SESSION="$count" AUTH_SUBSCRIPTIONS_MAX="$((count * 2))" \
  AUTH_RATE_LIMIT_FACTOR=0 RUST_LOG=warn "${CARGO_TARGET_DIR:-target}"/release/auth-api >"$dir/api.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
"${CARGO_TARGET_DIR:-target}"/release/subscriptions-bench "http://127.0.0.1:$port" "$pid" "$count"
