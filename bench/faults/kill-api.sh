#!/usr/bin/env bash
# kill -9 of auth-api during a sign-up load, then a restart: every account whose sign-up was
# answered with success exists and signs in, none is half-written (no user without its
# address, no session without its refresh token), and the database needs no repair
# (SQLite: integrity and foreign-key checks clean; PostgreSQL: the API starts on it as it is).
#
#   bench/faults/kill-api.sh [sqlite|postgres|both]   # KILLS=2 THREADS=4 PROFILE=debug|release
#
# PostgreSQL runs on a cluster of the script's own (pg_createcluster, free port), dropped
# at the end.
source "$(dirname "$0")/lib.sh"
WHICH=${1:-both}
KILLS=${KILLS:-2}
THREADS=${THREADS:-4}
build

run_one() { # BACKEND DATABASE_URL
  local backend=$1 db=$2 port out
  port=$(free_port)
  out=$WORK/$backend-successes.txt
  : >"$out"
  say "$backend: sign-up load with $THREADS threads, $KILLS kill -9 of the API"
  start_api "api-$backend" "$db" "$port"
  $DRIVER signup "http://127.0.0.1:$port" "$out" --threads "$THREADS" \
    --seconds $((4 + KILLS * 5)) --prefix "kill-$backend" >"$WORK/$backend-driver.out" &
  local driver=$!
  for k in $(seq 1 "$KILLS"); do
    sleep 3
    local before; before=$(wc -l <"$out")
    kill -9 "$API_PID"
    wait "$API_PID" 2>/dev/null || true
    echo "   kill -9 #$k after $before successes so far"
    sleep 1
    start_api "api-$backend" "$db" "$port"
  done
  wait "$driver"
  echo "   driver: $(cat "$WORK/$backend-driver.out")"
  local n; n=$(wc -l <"$out")
  [ "$n" -gt 0 ] || fail "$backend: no sign-up succeeded"
  grep -q '"ok"' "$WORK/$backend-driver.out" || fail "$backend: driver saw no success"

  # Every success signs in.
  $DRIVER signin "http://127.0.0.1:$port" "$out" >"$WORK/$backend-signin.out" ||
    fail "$backend: accounts answered with success do not sign in: $(cat "$WORK/$backend-signin.out")"
  ok "$backend: all $n accounts answered with success sign in"

  local q_user="SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id)"
  local q_sess="SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)"
  local q_users="SELECT count(*) FROM users"
  local sql
  if [ "$backend" = sqlite ]; then
    sql() { sqlite3 "$WORK/auth.db" "$1"; }
    local integrity; integrity=$(sql "PRAGMA integrity_check")
    [ "$integrity" = ok ] || fail "sqlite integrity_check: $integrity"
    local fk; fk=$(sql "PRAGMA foreign_key_check")
    [ -z "$fk" ] || fail "sqlite foreign_key_check: $fk"
    ok "sqlite: integrity_check ok, foreign_key_check clean"
  else
    sql() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d faults_kill -Atqc "$1"; }
  fi
  local users half_users half_sessions
  users=$(sql "$q_users"); half_users=$(sql "$q_user"); half_sessions=$(sql "$q_sess")
  [ "$half_users" = 0 ] || fail "$backend: $half_users users without an address"
  [ "$half_sessions" = 0 ] || fail "$backend: $half_sessions sessions without a refresh token"
  [ "$users" -ge "$n" ] || fail "$backend: $users users for $n successes"
  # Every answered session is there.
  local missing=0 sid
  while read -r _ sid; do
    [ "$(sql "SELECT count(*) FROM sessions WHERE id = '$sid'")" = 1 ] || missing=$((missing + 1))
  done <"$out"
  [ "$missing" = 0 ] || fail "$backend: $missing answered sessions missing"
  ok "$backend: $users users ($n answered), none without an address, no session without a refresh token, every answered session present"
  kill "$API_PID"; wait "$API_PID" 2>/dev/null || true
}

if [ "$WHICH" = sqlite ] || [ "$WHICH" = both ]; then
  run_one sqlite "sqlite://$WORK/auth.db"
fi
if [ "$WHICH" = postgres ] || [ "$WHICH" = both ]; then
  pg_cluster
  psql_q "CREATE DATABASE faults_kill"
  run_one postgres "postgres://postgres@127.0.0.1:$PG_PORT/faults_kill"
fi
say "kill-api passed"
