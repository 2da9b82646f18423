#!/usr/bin/env bash
# Instructions per password sign-in, counted by valgrind's callgrind, beside the floor's bare
# argon2id verify (`bare-argon2`, the same parameters): what a sign-in executes beyond the
# hash, in a figure a busy machine or a slow host does not move (bench/signin/run.sh's ratio
# moves with both). Each server runs under callgrind; after a warm-up its counters are
# zeroed, wrk sends sign-ins one at a time, the counters are dumped, and the total is divided
# by the sign-ins wrk completed. Everything the API process executes in that window counts
# (every thread: tokio's workers, the blocking pool's hash, sqlx's SQLite threads, the feed
# poller's tick), not the kernel and not a PostgreSQL server's own processes.
#
#   bench/signin/callgrind.sh                                            # SQLite
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/signin/callgrind.sh  # PostgreSQL
#   DURATION=40s CSV=bench/results/signin-callgrind.csv ANNOTATE=/tmp/signin.txt bench/signin/callgrind.sh
#
# Printed: instructions per request, and the share of them outside argon2's memory-hard core
# (`fill_blocks`, the same work in both): the server around the hash. The API hashes into a
# reused block buffer, the floor calls the crate's plain verify, which zeroes a fresh 19 MiB
# each time (most of what it executes around the core); the figure to watch is the API's.
#   BUILD=0 API_BIN=/tmp/auth-api-before bench/signin/callgrind.sh       # another build
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
DURATION=${DURATION:-30s}
CSV=${CSV:-}
need wrk
need valgrind
build auth-api auth-bench
use_database signin_cg

ap=$(free_port); bp=$(free_port)
export AUTH_MASTER_KEY; AUTH_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export AUTH_LISTEN="127.0.0.1:$ap" AUTH_ISSUER="http://127.0.0.1:$ap" \
  AUTH_RATE_LIMIT_FACTOR=1000000 RUST_LOG=warn
"$API_BIN" migrate >/dev/null 2>&1 || true
cg api "$API_BIN" 2>"$work/api.vg" & api_pid=$!; pids+=($api_pid)
cg bare "$bin/bare-argon2" "127.0.0.1:$bp" 2>"$work/bare.vg" & bare_pid=$!; pids+=($bare_pid)
wait_up_valgrind "http://127.0.0.1:$bp/"
wait_up_valgrind "http://127.0.0.1:$ap/readyz"
curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' \
  -d '{"query":"mutation { signUp(input: {email: \"user1@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}' \
  | grep -q accessToken || { echo "sign-up failed" >&2; exit 1; }
echo user1@example.com > "$work/emails.txt"
export LOAD_DIR="$root/bench/load" LOAD_WORK="$work"

# count LABEL PID URL: instructions per request over one wrk run of sign-ins (the process's
# dumps are LABEL.PID.*), after a warm-up of a few.
count() {
  local label=$1 pid=$2 url=$3 out n errors total
  wrk -t1 -c1 -d5s --timeout 30s -s bench/load/signin.lua "$url" >/dev/null   # warm-up
  callgrind_control -z "$pid" >/dev/null
  out=$(wrk -t1 -c1 -d"$DURATION" --timeout 30s -s bench/load/signin.lua "$url")
  callgrind_control -d "$pid" >/dev/null
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  errors=$(echo "$out" | awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["errors"] + v["http_errors"] }')
  [ "${errors:-1}" -eq 0 ] && [ "${n:-0}" -gt 0 ] || { echo "$label: $n requests, errors: $out" >&2; exit 1; }
  total=$(grep -h '^totals:' "$(ls -t "$work/$label.$pid".* | head -n 1)" | awk '{print $2}')
  echo "$label $n $total" | awk '{printf "%-6s %5d requests  %14d instructions  %12.0f per request\n", $1, $2, $3, $3 / $2}' >&2
  echo "$total $n"
}
# hash FILE: the instructions of argon2's memory-hard core (`fill_blocks`, inclusive), the
# same work in both servers; what is left is the server around it. (The request counts have a
# request in flight at either end of the window; the share below does not depend on them.)
hash() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null \
    | awk '!done && /argon2::Argon2::fill_blocks / && $1 ~ /^[0-9,]+$/ { gsub(",", "", $1); print $1; done = 1 }'
}
echo "== instructions per sign-in ($database; callgrind, wrk -t1 -c1, $DURATION)"
read -r bt bn < <(count bare "$bare_pid" "http://127.0.0.1:$bp")
read -r at an < <(count api "$api_pid" "http://127.0.0.1:$ap")
[ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/api.* "$work"/bare.* "$KEEP"/
bh=$(hash "$(ls -t "$work/bare.$bare_pid".* | head -n 1)")
ah=$(hash "$(ls -t "$work/api.$api_pid".* | head -n 1)")
if [ -n "${ANNOTATE:-}" ]; then
  callgrind_annotate --inclusive=no --threshold=99.9 "$(ls -t "$work/api.$api_pid".* | head -n 1)" > "$ANNOTATE" 2>&1 || true
fi
# Per request, and the work around the core as a share of the core.
awk -v bt="$bt" -v bn="$bn" -v bh="$bh" -v at="$at" -v an="$an" -v ah="$ah" -v db="$database" 'BEGIN {
  printf "bare verify: %.0f instructions per request, %.2f %% of them around the argon2 core\n", bt / bn, (bt - bh) * 100 / bt
  printf "signIn:      %.0f instructions per request, %.2f %% of them around the argon2 core (%s)\n", at / an, (at - ah) * 100 / at, db
  printf "around the core, per request: signIn %.0f, bare verify %.0f\n", (at - ah) / an, (bt - bh) / bn }'
[ -n "$CSV" ] && echo "signin-callgrind,$database,$bn,$((bt / bn)),$((bh / bn)),$an,$((at / an)),$((ah / an)),$(date -u +%Y-%m-%dT%H:%MZ)" >> "$CSV"
exit 0
