#!/usr/bin/env bash
# Password sign-in against its floor, with wrk as the client: the release auth-api's signIn
# over HTTP beside `bare-argon2` (bench/src/bin), a hyper server doing one bare argon2id
# verify per request with the service's parameters (the crate's plain verify, one per core).
# Same machine, same wrk settings, alternating rounds (bare, API in odd rounds; API, bare in
# even ones); the ratio of a round is the API's req/s over the floor's, and the figure is the
# median of the rounds. Besides req/s each run records the server process's CPU time per
# request (user + system from /proc), the machine's context switches per request (/proc/stat)
# and, on PostgreSQL, the CPU time of the server's own processes per sign-in (every process
# of the postgres user: backends, WAL writer, …).
#
#   bench/signin/run.sh                                            # SQLite in a temp dir
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/signin/run.sh  # a fresh database there
#   ROUNDS=5 DURATION=10s CONNS=4 USERS=16 CSV=bench/results/signin.csv bench/signin/run.sh
#   BUILD=0 API_BIN=/tmp/auth-api-before bench/signin/run.sh       # another build, side by side
#
# The limiter counts every attempt, as in production, but never refuses
# (AUTH_RATE_LIMIT_FACTOR=1000000): what is measured is the work of a sign-in.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-4}
USERS=${USERS:-16}
CSV=${CSV:-}
need wrk
build auth-api auth-bench
use_database signin
start_api
bp=$(free_port)
"$bin/bare-argon2" "127.0.0.1:$bp" 2>/dev/null & bare_pid=$!; pids+=($bare_pid)
wait_up "http://127.0.0.1:$bp/"
sign_up user "$USERS" "$work/access.txt"
export LOAD_DIR="$root/bench/load" LOAD_WORK="$work"

# CPU ticks of the PostgreSQL server's processes (0 on SQLite).
pg_ticks() {
  local t=0 p
  [ "$database" = postgres ] || { echo 0; return; }
  for p in $(pgrep -u postgres); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done
  echo "$t"
}

# The machine's context switches so far (every process: the server's threads, wrk's, …).
switches() { awk '/^ctxt/ {print $2}' /proc/stat; }

measure() { # URL PID → "req/s CPU-µs-per-request errors PostgreSQL-CPU-µs-per-request context-switches-per-request"
  local url=$1 pid=$2 t0 t1 p0 p1 c0 c1 out
  t0=$(ticks "$pid"); p0=$(pg_ticks); c0=$(switches)
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$root/bench/load/signin.lua" "$url" 2>"$work/wrk.err")
  t1=$(ticks "$pid"); p1=$(pg_ticks); c1=$(switches)
  echo "$out" | awk -v t=$((t1 - t0)) -v pg=$((p1 - p0)) -v cs=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '
    /^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "%s %.0f %d %.0f %.0f\n", v["rps"], t * 1e6 / hz / v["requests"], v["errors"] + v["http_errors"], pg * 1e6 / hz / v["requests"], cs / v["requests"] }'
}
api() { measure "http://127.0.0.1:$ap" "$api_pid"; }
bare() { measure "http://127.0.0.1:$bp" "$bare_pid"; }
# A short warm-up of both (the API's first sign-ins fill its pools and caches).
DURATION=3s bare >/dev/null; DURATION=3s api >/dev/null

echo "== sign-in vs bare argon2id verify, $database, wrk -t2 -c$CONNS, $DURATION per run, $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then read -r b bc be _ bcs < <(bare); read -r a ac ae apg acs < <(api)
  else read -r a ac ae apg acs < <(api); read -r b bc be _ bcs < <(bare); fi
  [ "$ae" -eq 0 ] && [ "$be" -eq 0 ] || { echo "errors: api $ae, bare $be" >&2; sed 's/^/  /' "$work/wrk.err" >&2; exit 1; }
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')
  beyond=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", 1000 / a - 1000 / b}')
  ratios+=("$ratio")
  echo "round $r: bare $b/s (${bc} µs CPU each, $bcs context switches), signIn $a/s (${ac} µs CPU each$([ "$database" = postgres ] && echo ", PostgreSQL ${apg} µs"), $acs context switches): $ratio ×, $beyond ms per sign-in beyond the hash; load $(cut -d' ' -f1 /proc/loadavg)"
  [ -n "$CSV" ] && echo "signin,$database,$CONNS,$r,$b,$a,$ratio,$bc,$ac,$(date -u +%Y-%m-%dT%H:%MZ),$apg,$bcs,$acs" >> "$CSV"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')
echo "median ratio ($database): $median"
