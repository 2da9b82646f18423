#!/usr/bin/env bash
# Load benchmark of auth-verifier (release build) with wrk, beside a bare hyper server that
# answers 200 with nothing else: same machine, same connections, same run. The verifier
# follows a stand-in issuer (verifier-bench issuer) with its own key, so 100,000 distinct
# tokens can be minted in a second; both helpers are binaries of the auth-bench crate (bench/).
# Prints the figures as a Markdown table (and writes it to $OUT if set);
# bench/verifier/RESULTS.md collects the runs.
#
#   bench/verifier/run.sh     # DURATION=10s CONNS=64 ROUNDS=2 TOKENS=100000 SAMPLES=200 OUT=
#
# Fairness: both servers get the same wrk settings (threads, connections, duration) and the
# same request, Authorization header included (the bare server ignores it). Each round runs
# bare, verifier, verifier, bare, so that a change of machine load during the round weighs on
# both alike; the ratio of a round is the verifier's total over the bare server's. For
# comparison with earlier runs, each round also measures the bare server sent no header.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
TOKENS=${TOKENS:-100000}
SAMPLES=${SAMPLES:-200}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-}
need wrk

# The verifier as deployed, and the bench crate's drivers (bench/src/bin: bare-hyper,
# verifier-bench), which are never linked into it.
build auth-verifier auth-bench

ip=$(free_port); vp=$(free_port); bp=$(free_port)
"$bin/verifier-bench" issuer "127.0.0.1:$ip" "$work/tokens.txt" "$TOKENS" & pids+=($!)
wait_up "http://127.0.0.1:$ip/.well-known/jwks.json"
RUST_LOG=warn VERIFIER_LISTEN="127.0.0.1:$vp" VERIFIER_API_URL="http://127.0.0.1:$ip" \
  "$bin/auth-verifier" & vpid=$!; pids+=($vpid)
"$bin/bare-hyper" "127.0.0.1:$bp" 2>/dev/null & bpid=$!; pids+=($bpid)
wait_up "http://127.0.0.1:$vp/readyz"; wait_up "http://127.0.0.1:$bp/"

token=$(head -n 1 "$work/tokens.txt")
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$vp/verify")" = 200

p99() { awk '$1=="99%" {print $2}'; }
auth="Authorization: Bearer $token"
# One wrk run; prints "req/s server-CPU-µs-per-request" (user+system time of the server
# process from /proc, which other load on the machine disturbs much less than req/s).
measure() { # URL PID [wrk header args…]
  local url=$1 pid=$2; shift 2
  local t0 t1 out; t0=$(ticks "$pid"); out=$(wrk -t2 -c"$CONNS" -d"$DURATION" "$@" "$url"); t1=$(ticks "$pid")
  echo "$out" | awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.1f\n", r, t * 1e6 / hz / n}'
}
bare() { measure "http://127.0.0.1:$bp/" "$bpid" -H "$auth"; }
bare_nohdr() { measure "http://127.0.0.1:$bp/" "$bpid"; }
ver() { measure "http://127.0.0.1:$vp/verify" "$vpid" -H "$auth"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN {print a+b}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
echo "== throughput, $CONNS connections, $DURATION each, $ROUNDS rounds (warm-up 2s first); load: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t2 -c"$CONNS" -d2s -H "$auth" "http://127.0.0.1:$bp/" >/dev/null
wrk -t2 -c"$CONNS" -d2s -H "$auth" "http://127.0.0.1:$vp/verify" >/dev/null
rounds=""; ratios=""; cpus=""
for r in $(seq 1 "$ROUNDS"); do
  read -r b1 bc1 < <(bare); read -r n1 _ < <(bare_nohdr); read -r v1 vc1 < <(ver)
  read -r v2 vc2 < <(ver); read -r n2 _ < <(bare_nohdr); read -r b2 bc2 < <(bare)
  ratio=$(div "$(sum "$v1" "$v2")" "$(sum "$b1" "$b2")")
  ratio_nohdr=$(div "$(sum "$v1" "$v2")" "$(sum "$n1" "$n2")")
  cpu_ratio=$(div "$(sum "$bc1" "$bc2")" "$(sum "$vc1" "$vc2")")
  line="round $r: bare $b1 / $b2, verifier $v1 / $v2 req/s: **$ratio ×**; server CPU per request bare $bc1 / $bc2 µs, verifier $vc1 / $vc2 µs ($cpu_ratio ×); bare sent no header: $n1 / $n2 req/s, $ratio_nohdr ×; load $(cut -d' ' -f1 /proc/loadavg)"
  echo "$line"; rounds="$rounds${rounds:+<br>}$line"; ratios="$ratios${ratios:+, }$ratio"; cpus="$cpus${cpus:+, }$cpu_ratio"
done

echo "== latency at 2 connections"
bare_p99=$(wrk -t1 -c2 -d"$DURATION" --latency -H "$auth" "http://127.0.0.1:$bp/" | p99)
ver_lat=$(wrk -t1 -c2 -d"$DURATION" --latency -H "$auth" "http://127.0.0.1:$vp/verify")
ver_p99=$(echo "$ver_lat" | p99); ver_p50=$(echo "$ver_lat" | awk '$1=="50%" {print $2}')
echo "verifier p50 $ver_p50, p99 $ver_p99 (bare hyper p99 $bare_p99)"

echo "== resident memory with $TOKENS distinct cached tokens"
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$vpid/status)
fill=$("$bin/verifier-bench" fill "http://127.0.0.1:$vp" "$work/tokens.txt")
echo "$fill"
sleep 2
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$vpid/status)
cached=$(curl -s "http://127.0.0.1:$vp/metrics" | awk '/^verifier_cache_entries/ {print $2}')
echo "RSS before ${rss_before} kB, after ${rss_after} kB, cache entries $cached"

echo "== revocation to refusal"
lat=$("$bin/verifier-bench" latency "http://127.0.0.1:$vp" "http://127.0.0.1:$ip" "$SAMPLES")
echo "$lat"

table=$(cat <<MD
Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg).

| figure | target | measured |
| --- | --- | --- |
| \`/verify\` with a cached token, $CONNS connections, wrk -t2 | ≥ 0.9 × bare hyper | req/s ratio by round: $ratios; bare CPU per request ÷ verifier CPU per request: $cpus<br>$rounds |
| p99 latency at 2 connections (wrk -t1 -c2) | < 1 ms | **$ver_p99** (p50 $ver_p50; bare hyper p99 $bare_p99) |
| resident memory with $TOKENS distinct cached tokens | < 64 MB | **$((rss_after / 1024)) MB** (${rss_after} kB; ${rss_before} kB before; cache entries $cached) |
| revocation to refusal | < 100 ms p99 | $lat |
MD
)
echo; echo "$table"
if [ -n "$OUT" ]; then echo "$table" > "$OUT"; echo "written $OUT"; fi
