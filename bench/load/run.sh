#!/usr/bin/env bash
# Load benchmark of the API's hot operations and of the verifier, with wrk (Lua scripts in
# this directory) against the real release binaries on loopback: sign-up, sign-in, refresh,
# me, a profile update, the verifier's /verify, and RFC 7662 /introspect of the API and of
# the verifier; each at every connection count of CONNS, bounded by DURATION per run.
#
#   bench/load/run.sh                                   # SQLite in a temp dir
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/load/run.sh   # a fresh database there
#   SCENARIOS="signin me verify" CONNS="2 16 64" DURATION=10s USERS=128 CSV=out.csv bench/load/run.sh
#   PROFILE=debug CONNS=2 DURATION=2s USERS=8 bench/load/run.sh      # a quick try of the scripts
#
# Prints one CSV line per run (scenario,database,connections,rps,p50_us,p99_us,errors) and a
# Markdown table; GraphQL errors (an answer with "errors") count as errors beside wrk's own.
# Rate limits are off for the run (AUTH_RATE_LIMIT_FACTOR=0): what is measured is the work.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
SCENARIOS=${SCENARIOS:-"signup signin refresh me profile verify introspect introspect-verifier"}
CONNS=${CONNS:-"2 16 64"}
DURATION=${DURATION:-10s}
USERS=${USERS:-128}
THREADS=${THREADS:-2}
CSV=${CSV:-}
PROFILE=${PROFILE:-release}   # debug: to try the scripts quickly (figures mean nothing then)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ "$PROFILE" = release ]; then cargo build --release -q -p auth-api -p auth-verifier; else cargo build -q -p auth-api -p auth-verifier; fi
bin=${CARGO_TARGET_DIR:-target}/$PROFILE

work=$(mktemp -d)
pids=()
db_name=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 300); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

if [ -n "${PG_URL:-}" ]; then
  db_name="auth_load_$$"
  psql "$PG_URL/postgres" -qc "CREATE DATABASE $db_name" >/dev/null
  export DATABASE_URL="$PG_URL/$db_name" database=postgres
else
  export DATABASE_URL="sqlite://$work/auth.db" database=sqlite
fi
ap=$(free_port); vp=$(free_port)
export AUTH_MASTER_KEY; AUTH_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export AUTH_LISTEN="127.0.0.1:$ap" AUTH_ISSUER="http://127.0.0.1:$ap" AUTH_RATE_LIMIT_FACTOR=0 \
  AUTH_ACCESS_TTL_SECONDS=7200 RUST_LOG=warn
"$bin/auth-api" migrate >/dev/null 2>&1 || true
machine=$("$bin/auth-api" token create --scope verify 2>/dev/null | awk '/^secret:/ {print $2}')
test -n "$machine" || { echo "no machine token" >&2; exit 1; }
"$bin/auth-api" >"$work/api.log" 2>&1 & api_pid=$!; pids+=($api_pid)
wait_up "http://127.0.0.1:$ap/readyz"
VERIFIER_LISTEN="127.0.0.1:$vp" VERIFIER_API_URL="http://127.0.0.1:$ap" VERIFIER_API_TOKEN="$machine" \
  "$bin/auth-verifier" >"$work/verifier.log" 2>&1 & ver_pid=$!; pids+=($ver_pid)
wait_up "http://127.0.0.1:$vp/readyz"

echo "== $USERS users signed up ($database)" >&2
seq 1 "$USERS" | xargs -P 4 -I{} curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' \
  -d '{"query":"mutation { signUp(input: {email: \"user{}@example.com\", password: \"correct horse battery staple\"}) { accessToken refreshToken } }"}' \
  > "$work/signups.json"
grep -o '"accessToken":"[^"]*"' "$work/signups.json" | cut -d'"' -f4 > "$work/access.txt"
seq 1 "$USERS" | sed 's/.*/user&@example.com/' > "$work/emails.txt"
test "$(wc -l < "$work/access.txt")" -eq "$USERS" || { echo "sign-ups failed: $(head -c 300 "$work/signups.json")" >&2; exit 1; }

export LOAD_DIR="$root/bench/load" LOAD_WORK="$work" LOAD_THREADS="$THREADS" LOAD_MACHINE_TOKEN="$machine"
rows=""
run() { # SCENARIO CONNS
  local scenario=$1 conns=$2 script url
  case $scenario in
    signup) script=signup.lua url="http://127.0.0.1:$ap" ;;
    signin) script=signin.lua url="http://127.0.0.1:$ap" ;;
    refresh)
      # Fresh sessions for every refresh run: two per connection.
      : > "$work/refresh.txt"
      for i in $(seq 1 $((conns * 2))); do echo "user$(( (i % USERS) + 1 ))@example.com"; done \
        | xargs -P 4 -I{} curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' \
          -d '{"query":"mutation { signIn(input: {email: \"{}\", password: \"correct horse battery staple\"}) { refreshToken } }"}' \
        | grep -o '"refreshToken":"[^"]*"' | cut -d'"' -f4 > "$work/refresh.txt"
      script=refresh.lua url="http://127.0.0.1:$ap" ;;
    me) script=me.lua url="http://127.0.0.1:$ap" ;;
    profile) script=profile.lua url="http://127.0.0.1:$ap" ;;
    verify) script=verify.lua url="http://127.0.0.1:$vp" ;;
    introspect) script=introspect.lua url="http://127.0.0.1:$ap" ;;
    introspect-verifier) script=introspect.lua url="http://127.0.0.1:$vp" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  export LOAD_RUN="$scenario-$conns-$$"
  local threads=$THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  local out; out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" -s "$root/bench/load/$script" "$url" 2>"$work/wrk.err")
  local result; result=$(echo "$out" | grep '^RESULT' || true)
  test -n "$result" || { echo "$out"; cat "$work/wrk.err"; exit 1; }
  eval "$(echo "$result" | sed 's/^RESULT //')"
  local all_errors=$((errors + http_errors))
  local line="$scenario,$database,$conns,$rps,$p50_us,$p99_us,$all_errors"
  echo "$line"; [ -n "$CSV" ] && echo "$line" >> "$CSV"
  [ "$all_errors" -gt 0 ] && sed 's/^/  /' "$work/wrk.err" >&2
  rows="$rows| $scenario | $conns | $rps | $p50_us | $p99_us | $all_errors |"$'\n'
}
echo "scenario,database,connections,rps,p50_us,p99_us,errors"
for scenario in $SCENARIOS; do
  for conns in $CONNS; do run "$scenario" "$conns"; done
done
cat <<MD

$database, $(nproc) cores, wrk -t$THREADS, $DURATION per run, $(date -u +%Y-%m-%dT%H:%MZ), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)

| operation | connections | req/s | p50 µs | p99 µs | errors |
| --- | ---: | ---: | ---: | ---: | ---: |
$rows
MD
