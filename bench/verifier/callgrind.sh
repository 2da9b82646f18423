#!/usr/bin/env bash
# Instructions per `/verify` request, counted by valgrind's callgrind, beside the bare hyper
# server: a figure that is the same on a busy machine (instructions, not seconds), so that a
# regression of the hot path shows without a quiet machine. Each server runs under callgrind;
# after a warm-up its counters are zeroed, wrk sends requests on one connection, the counters
# are dumped, and the total is divided by the number of requests wrk completed. Everything
# the process executes in that window counts (hyper, tokio, the allocator, the syscalls'
# user-space side), not the kernel's TCP.
#
#   bench/verifier/callgrind.sh        # DURATION=5s TOKENS=20000 CSV=
#   ANNOTATE=/tmp/hit.txt bench/verifier/callgrind.sh   # and where the cached-token run's
#                                                        # instructions go (callgrind_annotate)
#
# Three figures: the bare server, the verifier with a cached token (the hot path: one cache
# lookup), and the verifier with a distinct token per request (a miss: the Ed25519 signature
# and the claims checked, then cached).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
DURATION=${DURATION:-5s}
TOKENS=${TOKENS:-20000}
CSV=${CSV:-}
need wrk
need valgrind
build auth-verifier auth-bench

ip=$(free_port); vp=$(free_port); bp=$(free_port)
"$bin/verifier-bench" issuer "127.0.0.1:$ip" "$work/tokens.txt" "$TOKENS" & pids+=($!)
wait_up "http://127.0.0.1:$ip/.well-known/jwks.json"
RUST_LOG=warn VERIFIER_LISTEN="127.0.0.1:$vp" VERIFIER_API_URL="http://127.0.0.1:$ip" \
  cg verifier "$bin/auth-verifier" 2>"$work/verifier.vg" & vpid=$!; pids+=($vpid)
cg bare "$bin/bare-hyper" "127.0.0.1:$bp" 2>"$work/bare.vg" & bpid=$!; pids+=($bpid)
wait_up_valgrind "http://127.0.0.1:$bp/"
wait_up_valgrind "http://127.0.0.1:$vp/readyz"

mkdir -p "$work/hit" "$work/miss-warm" "$work/miss"
head -n 1 "$work/tokens.txt" > "$work/hit/access.txt"
sed -n "2,$((TOKENS / 2))p" "$work/tokens.txt" > "$work/miss-warm/access.txt"
tail -n +$((TOKENS / 2 + 1)) "$work/tokens.txt" > "$work/miss/access.txt"
export LOAD_DIR="$PWD/bench/load"
# count LABEL FILE PID URL TOKENS_DIR [WARM_UP_TOKENS_DIR]: instructions per request over
# one wrk run (the process's dumps are FILE.PID.*).
count() {
  local label=$1 name=$2 pid=$3 url=$4 dir=$5 warm=${6:-$5} out n total
  LOAD_WORK=$warm wrk -t1 -c1 -d2s -s bench/load/verify.lua "$url" >/dev/null   # warm-up
  callgrind_control -z "$pid" >/dev/null
  out=$(LOAD_WORK=$dir wrk -t1 -c1 -d"$DURATION" -s bench/load/verify.lua "$url")
  callgrind_control -d "$pid" >/dev/null
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  if echo "$out" | grep -q 'Non-2xx'; then echo "$label: answers other than 200: $out" >&2; exit 1; fi
  # The newest dump of that process; its "totals:" line is the instructions since the zeroing.
  total=$(grep -h '^totals:' "$(ls -t "$work/$name.$pid".* | head -n 1)" | awk '{print $2}')
  echo "$label $n $total" | awk '{printf "%-16s %7d requests  %12d instructions  %8.0f per request\n", $1, $2, $3, $3 / $2}'
  [ -n "$CSV" ] && echo "$label,$n,$total,$(awk -v t="$total" -v n="$n" 'BEGIN {printf "%.0f", t / n}'),$(date -u +%Y-%m-%dT%H:%MZ)" >> "$CSV"
  return 0
}
# The bare server answers whatever it is sent: the same script (and so the same header).
echo "== instructions per request (callgrind, wrk -t1 -c1, $DURATION)"
count bare bare "$bpid" "http://127.0.0.1:$bp" "$work/hit"
count verifier verifier "$vpid" "http://127.0.0.1:$vp" "$work/hit"
if [ -n "${ANNOTATE:-}" ]; then
  callgrind_annotate --inclusive=yes "$(ls -t "$work/verifier.$vpid".* | head -n 1)" > "$ANNOTATE" 2>&1 || true
fi
# A miss per request: the script walks tokens not seen before, each once.
count verifier-miss verifier "$vpid" "http://127.0.0.1:$vp" "$work/miss" "$work/miss-warm"
