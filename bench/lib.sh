# shellcheck shell=bash
# What the benchmark scripts share (bench/{load,signin,soak,verifier}/run.sh,
# bench/{signin,verifier}/callgrind.sh): the repository root as working directory; a work directory,
# the started processes and a PostgreSQL database of their own, all removed on exit; ports;
# waiting for a server; a fresh database; the API and verifier started on loopback; CPU time
# from /proc. Sourced, not run. The fault scripts have their own (bench/faults/lib.sh): they
# make a PostgreSQL cluster of their own and check what they break.
#
# Settings every script takes: PROFILE (release, or debug to try a script quickly), BUILD=0
# (the binaries as they are), API_BIN (another auth-api, e.g. an older build side by side),
# PG_URL (a PostgreSQL server to make the run's database on; SQLite otherwise).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PROFILE=${PROFILE:-release}
bin=${CARGO_TARGET_DIR:-$root/target}/$PROFILE
API_BIN=${API_BIN:-$bin/auth-api}
work=$(mktemp -d)
pids=()
db_name=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$db_name" ]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# need COMMAND [PACKAGE]: install the Debian package when the command is missing.
need() {
  command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${2:-$1}" >/dev/null; }
}

# build PACKAGE…: cargo build of those workspace packages in PROFILE, unless BUILD=0.
build() {
  [ "${BUILD:-1}" = 0 ] && return 0
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  if [ "$PROFILE" = release ]; then cargo build --release -q "${args[@]}"; else cargo build -q "${args[@]}"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_up URL [SECONDS]: until the URL answers 2xx (30 s by default), else exit.
wait_up() {
  local deadline=$(($(date +%s) + ${2:-30}))
  until curl -fs -o /dev/null -m 2 "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not up: $1" >&2; exit 1; }
    sleep 0.05
  done
}

# cg NAME COMMAND…: the shell replaced by COMMAND under valgrind's callgrind, dumps to
# $work/NAME.<pid>.*; run it in the background (`cg … & pid=$!`), and $! is the process
# callgrind_control talks to (exec: no subshell between).
cg() { exec valgrind --tool=callgrind --callgrind-out-file="$work/$1.%p" "${@:2}"; }

# wait_up_valgrind URL: wait_up for a server under valgrind, which starts in seconds, not
# milliseconds, and answers slowly (three minutes; its $work/*.vg logs shown on failure).
wait_up_valgrind() {
  local deadline=$(($(date +%s) + 180))
  until curl -fs -o /dev/null -m 5 "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not up under valgrind: $1" >&2; tail -n 20 "$work"/*.vg >&2; exit 1; }
    sleep 0.5
  done
}

# use_database NAME: export DATABASE_URL (and `database`, its kind) for a fresh database:
# auth_NAME_<pid> on the PostgreSQL server of PG_URL (dropped on exit), else SQLite in the
# work directory.
use_database() {
  if [ -n "${PG_URL:-}" ]; then
    db_name="auth_$1_$$"
    psql "$PG_URL/postgres" -qc "CREATE DATABASE $db_name" >/dev/null
    export DATABASE_URL="$PG_URL/$db_name" database=postgres
  else
    export DATABASE_URL="sqlite://$work/auth.db" database=sqlite
  fi
}

# start_api [RATE_LIMIT_FACTOR]: the API on a free loopback port ($ap, pid $api_pid, log
# $work/api.log) with a fresh master key, waited for. The factor defaults to 1000000: the
# limiter counts every attempt, as in production, but never refuses (0 turns it off).
# Variables exported before (AUTH_ACCESS_TTL_SECONDS, …) are passed on.
start_api() {
  ap=$(free_port)
  export AUTH_MASTER_KEY; AUTH_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
  export AUTH_LISTEN="127.0.0.1:$ap" AUTH_ISSUER="http://127.0.0.1:$ap" \
    AUTH_RATE_LIMIT_FACTOR=${1:-1000000} RUST_LOG=${RUST_LOG:-warn}
  "$API_BIN" migrate >/dev/null 2>&1 || true
  "$API_BIN" >"$work/api.log" 2>&1 & api_pid=$!; pids+=("$api_pid")
  wait_up "http://127.0.0.1:$ap/readyz"
}

# start_verifier: a verifier following the API of start_api ($vp, pid $ver_pid, log
# $work/verifier.log) with a machine token of scope verify ($machine) made by the CLI.
start_verifier() {
  vp=$(free_port)
  machine=$("$API_BIN" token create --scope verify 2>/dev/null | awk '/^secret:/ {print $2}')
  test -n "$machine" || { echo "no machine token" >&2; exit 1; }
  VERIFIER_LISTEN="127.0.0.1:$vp" VERIFIER_API_URL="http://127.0.0.1:$ap" VERIFIER_API_TOKEN="$machine" \
    RUST_LOG=${RUST_LOG:-warn} "$bin/auth-verifier" >"$work/verifier.log" 2>&1 & ver_pid=$!; pids+=("$ver_pid")
  wait_up "http://127.0.0.1:$vp/readyz"
}

# sign_up PREFIX N FILE: sign up PREFIX1@example.com … PREFIXN@example.com with the
# benchmark's password; the answers' access tokens to FILE (one per line, in no particular
# order) and the addresses to $work/emails.txt. Exits unless all N succeeded.
sign_up() {
  local prefix=$1 n=$2 out=$3
  seq 1 "$n" | xargs -P 2 -I{} curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' \
    -d '{"query":"mutation { signUp(input: {email: \"'"$prefix"'{}@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}' \
    | grep -o '"accessToken":"[^"]*"' | cut -d'"' -f4 > "$out" || true
  test "$(wc -l < "$out")" -eq "$n" || { echo "sign-ups failed: $(wc -l < "$out") of $n" >&2; tail -n 5 "$work/api.log" >&2; exit 1; }
  seq 1 "$n" | sed "s/.*/$prefix&@example.com/" > "$work/emails.txt"
}

# refresh_tokens N FILE: N fresh sessions of the users of $work/emails.txt in turn (sign_up
# made it); their refresh tokens to FILE. A refresh run needs its own: a run that ends cuts off
# refreshes in flight, and a token already spent must not be presented again.
refresh_tokens() {
  local users; users=$(wc -l < "$work/emails.txt")
  for i in $(seq 1 "$1"); do sed -n "$(( (i % users) + 1 ))p" "$work/emails.txt"; done \
    | xargs -P 2 -I{} curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' \
      -d '{"query":"mutation { signIn(input: {email: \"{}\", password: \"correct horse battery staple\"}) { refreshToken } }"}' \
    | grep -o '"refreshToken":"[^"]*"' | cut -d'"' -f4 > "$2"
}

# ticks PID: the process's CPU time so far (user + system, in clock ticks).
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
