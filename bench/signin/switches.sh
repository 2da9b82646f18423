#!/usr/bin/env bash
# Context switches of the release API per password sign-in, by thread name, under wrk -t2 -c4
# for DURATION (after a 3 s warm-up): voluntary (a thread waiting: a parked tokio worker, sqlx's
# SQLite worker waiting for its next command) and involuntary (a running thread preempted,
# usually the hash, by a thread that woke). Tokio's blocking pool, where the hash runs, is
# named like its workers (`tokio-rt-worker`). Read beside bench/signin/run.sh's ratio: the
# floor hashes on its two workers and switches about 5 times per request in all.
#
#   bench/signin/switches.sh                                            # SQLite
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/signin/switches.sh  # PostgreSQL
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
DURATION=${DURATION:-10s}
need wrk
build auth-api
use_database switches
start_api
sign_up user 16 "$work/access.txt"
export LOAD_DIR="$root/bench/load" LOAD_WORK="$work"
# snap: per thread name, the sums of voluntary and involuntary switches so far.
snap() {
  for t in /proc/"$api_pid"/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {print v, n}' "$t/status")"
  done | awk '{v[$1] += $2; n[$1] += $3} END {for (k in v) print k, v[k], n[k]}' | sort
}
wrk -t2 -c4 -d3s -s bench/load/signin.lua "http://127.0.0.1:$ap" >/dev/null
snap > "$work/before"
out=$(wrk -t2 -c4 -d"$DURATION" -s bench/load/signin.lua "http://127.0.0.1:$ap")
snap > "$work/after"
n=$(echo "$out" | awk '/requests in/ {print $1}')
echo "== context switches per sign-in by thread ($database, wrk -t2 -c4, $DURATION, $n sign-ins)"
join -a2 "$work/before" "$work/after" | awk -v n="$n" '{
  if (NF == 5) { v = $4 - $2; i = $5 - $3 } else { v = $2; i = $3 }
  printf "%-20s voluntary %6.1f  involuntary %6.1f\n", $1, v / n, i / n }'
