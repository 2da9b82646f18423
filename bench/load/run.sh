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
PROFILE=${PROFILE:-release}   # debug: to try the scripts quickly (figures mean nothing then)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
SCENARIOS=${SCENARIOS:-"signup signin refresh me profile verify introspect introspect-verifier"}
CONNS=${CONNS:-"2 16 64"}
DURATION=${DURATION:-10s}
USERS=${USERS:-128}
THREADS=${THREADS:-2}
CSV=${CSV:-}
need wrk
build auth-api auth-verifier
use_database load
export AUTH_ACCESS_TTL_SECONDS=7200
start_api 0
start_verifier

echo "== $USERS users signed up ($database)" >&2
sign_up user "$USERS" "$work/access.txt"

export LOAD_DIR="$root/bench/load" LOAD_WORK="$work" LOAD_THREADS="$THREADS" LOAD_MACHINE_TOKEN="$machine"
rows=""
run() { # SCENARIO CONNS
  local scenario=$1 conns=$2 script url
  case $scenario in
    signup) script=signup.lua url="http://127.0.0.1:$ap" ;;
    signin) script=signin.lua url="http://127.0.0.1:$ap" ;;
    refresh)
      # Fresh sessions for every refresh run: two per connection.
      refresh_tokens $((conns * 2)) "$work/refresh.txt"
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
