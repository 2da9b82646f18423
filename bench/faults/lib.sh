# shellcheck shell=bash
# Shared helpers of the fault scripts (bench/faults/*.sh): build, ports, processes, a
# PostgreSQL cluster of their own, clean-up on exit. Sourced, not run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PROFILE=${PROFILE:-debug}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/$PROFILE
DRIVER="python3 $ROOT/bench/faults/driver.py"
WORK=$(mktemp -d /tmp/faults.XXXXXX)
PIDS=()
CLEANUPS=()
KEEP=${KEEP:-}

cleanup() {
  local status=$?
  set +e
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" >/dev/null 2>&1; done
  if [ "$status" -ne 0 ]; then
    echo "== FAILED ($status); last log lines:" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "-- $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  if [ -n "$KEEP" ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run this (a shell command) on exit, after the processes are gone; last registered first.
at_exit() { CLEANUPS+=("$*"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
say() { echo "== $*"; }
ms_now() { date +%s%3N; }

build() {
  say "building auth-api and auth-verifier ($PROFILE)"
  if [ "$PROFILE" = release ]; then
    cargo build --release -q -p auth-api -p auth-verifier
  else
    cargo build -q -p auth-api -p auth-verifier
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_up URL [SECONDS]: until the URL answers 2xx.
wait_up() {
  local deadline=$(($(date +%s) + ${2:-30}))
  until curl -fs -m 1 "$1" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "not up: $1"
    sleep 0.05
  done
}

# http_code URL [curl args…]: the status (000 when nothing answered).
http_code() { local url=$1; shift; curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" "$url" || true; }

MASTER_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')

# start_api NAME DATABASE_URL PORT [VAR=value…]: an auth-api on 127.0.0.1:PORT (log
# $WORK/NAME.log); sets API_PID. Every replica of a script shares the issuer of the first.
# API_HOST (default 127.0.0.1) is the address it listens on.
start_api() {
  local name=$1 db=$2 port=$3 host=${API_HOST:-127.0.0.1}; shift 3
  ISSUER=${ISSUER:-http://$host:$port}
  env DATABASE_URL="$db" AUTH_LISTEN="$host:$port" AUTH_ISSUER="$ISSUER" \
    AUTH_MASTER_KEY="$MASTER_KEY" AUTH_RATE_LIMIT_FACTOR=0 RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 \
    "$@" "$BIN/auth-api" >>"$WORK/$name.log" 2>&1 &
  API_PID=$!
  PIDS+=("$API_PID")
  wait_up "http://$host:$port/healthz" 60
}

# api_token DATABASE_URL: a machine token with scopes verify and platform.
api_token() {
  env DATABASE_URL="$1" AUTH_MASTER_KEY="$MASTER_KEY" RUST_LOG=warn \
    "$BIN/auth-api" token create --scope verify,platform --name faults 2>/dev/null |
    awk '/^secret:/ {print $2}'
}

# start_verifier NAME API_URL PORT TOKEN [VAR=value…]: sets VERIFIER_PID.
start_verifier() {
  local name=$1 api=$2 port=$3 token=$4; shift 4
  env VERIFIER_LISTEN="127.0.0.1:$port" VERIFIER_API_URL="$api" VERIFIER_API_TOKEN="$token" \
    RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$@" "$BIN/auth-verifier" >>"$WORK/$name.log" 2>&1 &
  VERIFIER_PID=$!
  PIDS+=("$VERIFIER_PID")
  wait_up "http://127.0.0.1:$port/readyz" 60
}

PG_VERSION=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)

# pg_cluster: a PostgreSQL cluster of this script's own (not the shared one on 5432), on a
# free port, trust on loopback, dropped on exit. Sets PG_NAME, PG_PORT, PG_URL.
pg_cluster() {
  [ -n "$PG_VERSION" ] || fail "PostgreSQL is not installed (apt-get install postgresql)"
  PG_NAME=faults$$
  PG_PORT=$(free_port)
  pg_createcluster -q "$PG_VERSION" "$PG_NAME" -p "$PG_PORT" >/dev/null
  at_exit "pg_dropcluster --stop $PG_VERSION $PG_NAME"
  sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$PG_VERSION/$PG_NAME/pg_hba.conf"
  pg_start
  PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
}
pg_start() {
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_NAME" start
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0; sleep 0.1; done
  fail "PostgreSQL did not start"
}
pg_stop() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_NAME" stop -m fast; }
psql_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc "$1"; }
