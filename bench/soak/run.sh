#!/usr/bin/env bash
# Soak: the release API and a verifier under a mixed load at about 80 % of the maximum the
# machine reaches with both loaded at once, for DURATION (10 minutes by default). Checks:
# no error of any kind; resident memory of both processes flat within 10 % after the
# warm-up; no growth of open files, threads or live tokio tasks (read from their `/metrics`:
# process_resident_memory_bytes, process_open_fds, process_threads, runtime_alive_tasks).
#
#   bench/soak/run.sh                       # SQLite in a temp dir, 10 minutes
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/soak/run.sh
#   DURATION=60 WARMUP=20 bench/soak/run.sh # a quick try
#   CSV=bench/results/soak.csv              # the samples (one line per 10 s)
#
# Load: wrk -t1 with the cycle of bench/load/mixed.lua (signIn, refreshSession, updateProfile,
# me) against the API and wrk -t1 with bench/load/verify.lua against the verifier, both at
# once. First both run flat out for 10 s (the maximum); then each connection pauses between
# requests (LOAD_DELAY_MS) so that each stream runs at 80 % of its maximum, set in two 10 s
# calibration runs; then the soak, sampled every 10 s.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
DURATION=${DURATION:-600}     # seconds
WARMUP=${WARMUP:-60}          # seconds of the soak before the reference sample
SHARE=${SHARE:-0.8}
API_CONNS=${API_CONNS:-16}
VERIFIER_CONNS=${VERIFIER_CONNS:-16}
USERS=${USERS:-64}
CSV=${CSV:-}
need wrk
build auth-api auth-verifier
use_database soak
# Access tokens outlive the run; the limiter counts but never refuses.
export AUTH_ACCESS_TTL_SECONDS=$((DURATION * 2 + 3600))
start_api
start_verifier
gql() { curl -fsS "http://127.0.0.1:$ap/graphql" -H 'content-type: application/json' -d "$1"; }
sign_up soak "$USERS" "$work/access.txt"
# Refresh tokens: one fresh session per connection before every run (a run that ends cuts
# off refreshes in flight, and a token already spent must not be presented again).
fresh_sessions() { refresh_tokens "$API_CONNS" "$work/refresh.txt"; }
export LOAD_DIR="$root/bench/load" LOAD_WORK="$work" LOAD_THREADS=1

# load SECONDS API_DELAY_MS VERIFIER_DELAY_MS: both streams at once; prints "api_rps verifier_rps errors".
load() {
  fresh_sessions
  LOAD_DELAY_MS=$2 wrk -t1 -c"$API_CONNS" -d"$1"s --timeout 10s -s bench/load/mixed.lua "http://127.0.0.1:$ap" >"$work/api.wrk" 2>"$work/api.err" &
  local a=$!
  LOAD_DELAY_MS=$3 wrk -t1 -c"$VERIFIER_CONNS" -d"$1"s --timeout 10s -s bench/load/verify.lua "http://127.0.0.1:$vp" >"$work/ver.wrk" 2>"$work/ver.err" &
  local v=$!
  wait "$a" "$v"
  local ar vr ae ve
  ar=$(sed -n 's/^RESULT .* rps=\([0-9.]*\) .*/\1/p' "$work/api.wrk"); vr=$(sed -n 's/^RESULT .* rps=\([0-9.]*\) .*/\1/p' "$work/ver.wrk")
  ae=$(sed -n 's/^RESULT .* errors=\([0-9]*\) http_errors=\([0-9]*\).*/\1 \2/p' "$work/api.wrk" | awk '{print $1 + $2}')
  ve=$(sed -n 's/^RESULT .* errors=\([0-9]*\) http_errors=\([0-9]*\).*/\1 \2/p' "$work/ver.wrk" | awk '{print $1 + $2}')
  echo "$ar $vr $((ae + ve))"
}
# The delay that brings a stream from RATE to TARGET with CONNS connections at DELAY now.
retune() { awk -v d="$1" -v c="$2" -v r="$3" -v t="$4" 'BEGIN { x = d + 1000 * c * (1 / t - 1 / r); if (x < 1) x = 1; printf "%d", x }'; }

echo "== $database: maximum, both streams flat out for 10 s (wrk -t1 -c$API_CONNS mixed, -c$VERIFIER_CONNS /verify)"
read -r api_max ver_max errs < <(load 10 0 0)
test "$errs" -eq 0 || { echo "errors at full load: $(cat "$work/api.err" "$work/ver.err")" >&2; exit 1; }
api_target=$(awk -v m="$api_max" -v s="$SHARE" 'BEGIN {print m * s}'); ver_target=$(awk -v m="$ver_max" -v s="$SHARE" 'BEGIN {print m * s}')
echo "maximum: API $api_max req/s, verifier $ver_max req/s; target $SHARE of each: $api_target, $ver_target"
ad=$(retune 0 "$API_CONNS" "$api_max" "$api_target"); vd=$(retune 0 "$VERIFIER_CONNS" "$ver_max" "$ver_target")
for step in 1 2; do
  read -r ar vr errs < <(load 10 "$ad" "$vd")
  echo "calibration $step: delays $ad / $vd ms → API $ar req/s, verifier $vr req/s"
  ad=$(retune "$ad" "$API_CONNS" "$ar" "$api_target"); vd=$(retune "$vd" "$VERIFIER_CONNS" "$vr" "$ver_target")
done

gauge() { curl -fs "$1/metrics" | awk -v n="$2" '$1 == n {printf "%d", $2}'; }
sample() { # T
  local t=$1 line
  line="$t,$(gauge "http://127.0.0.1:$ap" process_resident_memory_bytes),$(gauge "http://127.0.0.1:$ap" process_open_fds),$(gauge "http://127.0.0.1:$ap" process_threads),$(gauge "http://127.0.0.1:$ap" runtime_alive_tasks)"
  line="$line,$(gauge "http://127.0.0.1:$vp" process_resident_memory_bytes),$(gauge "http://127.0.0.1:$vp" process_open_fds),$(gauge "http://127.0.0.1:$vp" process_threads),$(gauge "http://127.0.0.1:$vp" runtime_alive_tasks)"
  echo "$line" >> "$work/samples.csv"
}
echo "t,api_rss,api_fds,api_threads,api_tasks,verifier_rss,verifier_fds,verifier_threads,verifier_tasks" > "$work/samples.csv"
echo "== soak: $DURATION s at delays $ad / $vd ms; load $(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
load "$DURATION" "$ad" "$vd" > "$work/soak.result" &
soak=$!
while kill -0 "$soak" 2>/dev/null; do
  sample $(( $(date +%s) - started ))
  for _ in $(seq 1 100); do kill -0 "$soak" 2>/dev/null || break; sleep 0.1; done
done
wait "$soak"
sample $(( $(date +%s) - started ))
read -r ar vr errs < "$work/soak.result"
[ -n "$CSV" ] && { [ -s "$CSV" ] || head -n 1 "$work/samples.csv" | sed 's/^/database,date,/' > "$CSV"; tail -n +2 "$work/samples.csv" | sed "s/^/$database,$(date -u +%Y-%m-%dT%H:%MZ),/" >> "$CSV"; }
api_lat=$(grep -A1 'Latency' "$work/api.wrk" | head -n 1 | awk '{print "mean " $2 ", max " $4}')
echo "soak: API $ar req/s ($(awk -v a="$ar" -v m="$api_max" 'BEGIN {printf "%.0f", 100 * a / m}') % of its maximum; latency $api_lat), verifier $vr req/s ($(awk -v a="$vr" -v m="$ver_max" 'BEGIN {printf "%.0f", 100 * a / m}') %), errors $errs"
python3 - "$work/samples.csv" "$WARMUP" <<'PY'
import csv, sys
rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
warm = next((r for r in rows if r["t"] >= int(sys.argv[2])), rows[0])
after = [r for r in rows if r["t"] >= warm["t"]]
bad = []
for who in ("api", "verifier"):
    rss = [r[f"{who}_rss"] for r in after]
    growth = (rss[-1] - warm[f"{who}_rss"]) / warm[f"{who}_rss"]
    peak = (max(rss) - warm[f"{who}_rss"]) / warm[f"{who}_rss"]
    print(f"{who}: RSS {warm[f'{who}_rss'] / 2**20:.1f} MiB at {warm['t']} s, {rss[-1] / 2**20:.1f} MiB at the end "
          f"({100 * growth:+.1f} %, peak {100 * peak:+.1f} %); open files {warm[f'{who}_fds']} → {after[-1][f'{who}_fds']} "
          f"(max {max(r[f'{who}_fds'] for r in after)}), threads {warm[f'{who}_threads']} → {after[-1][f'{who}_threads']}, "
          f"tasks {warm[f'{who}_tasks']} → {after[-1][f'{who}_tasks']} (max {max(r[f'{who}_tasks'] for r in after)})")
    if abs(growth) > 0.10 or peak > 0.10:
        bad.append(f"{who} RSS moved more than 10 %")
    for g in ("fds", "threads", "tasks"):
        # Connections come and go within a sample; growth is what stays.
        if after[-1][f"{who}_{g}"] > warm[f"{who}_{g}"] + 4:
            bad.append(f"{who} {g} grew")
print(f"{len(rows)} samples")
if bad:
    print("FAILED: " + "; ".join(bad)); sys.exit(1)
PY
test "$errs" -eq 0 || { echo "FAILED: $errs errors"; head -c 600 "$work/api.err" "$work/ver.err"; exit 1; }
echo "soak passed ($database)"
