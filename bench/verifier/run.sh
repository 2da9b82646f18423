#!/usr/bin/env bash
# Load benchmark of auth-verifier (release build) with wrk, beside a bare hyper server that
# answers 200 with nothing else: same machine, same connections, same run. The verifier
# follows a stand-in issuer (verifier-bench issuer) with its own key, so 100,000 distinct
# tokens can be minted in a second. Writes the figures to bench/verifier/RESULTS.md.
#
#   bench/verifier/run.sh            # DURATION=10s CONNS=64 TOKENS=100000 SAMPLES=200
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
TOKENS=${TOKENS:-100000}
SAMPLES=${SAMPLES:-200}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

cargo build --release -q -p auth-verifier --bins
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

ip=$(free_port); vp=$(free_port); bp=$(free_port)
"$bin/verifier-bench" issuer "127.0.0.1:$ip" "$work/tokens.txt" "$TOKENS" & pids+=($!)
wait_up "http://127.0.0.1:$ip/.well-known/jwks.json"
RUST_LOG=warn VERIFIER_LISTEN="127.0.0.1:$vp" VERIFIER_API_URL="http://127.0.0.1:$ip" \
  "$bin/auth-verifier" & vpid=$!; pids+=($vpid)
"$bin/bare-hyper" "127.0.0.1:$bp" 2>/dev/null & pids+=($!)
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$vp/readyz" >/dev/null && break; sleep 0.05; done
wait_up "http://127.0.0.1:$vp/readyz"; wait_up "http://127.0.0.1:$bp/"

token=$(head -n 1 "$work/tokens.txt")
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$vp/verify")" = 200

rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {print $2}'; }
echo "== throughput, $CONNS connections, $DURATION each (warm-up 2s first)"
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$bp/" >/dev/null
wrk -t2 -c"$CONNS" -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$vp/verify" >/dev/null
bare=$(wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$bp/" | tee "$work/bare.txt" | rps)
ver=$(wrk -t2 -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $token" "http://127.0.0.1:$vp/verify" | tee "$work/ver.txt" | rps)
ratio=$(awk -v a="$ver" -v b="$bare" 'BEGIN {printf "%.2f", a/b}')
echo "bare hyper $bare req/s, verifier $ver req/s, ratio $ratio"

echo "== latency at 2 connections"
bare_p99=$(wrk -t1 -c2 -d"$DURATION" --latency "http://127.0.0.1:$bp/" | p99)
ver_lat=$(wrk -t1 -c2 -d"$DURATION" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$vp/verify")
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

cat > bench/verifier/RESULTS.md <<MD
# auth-verifier benchmark

Measured by \`bench/verifier/run.sh\` on $(nproc) cores ($(date -u +%Y-%m-%d)), release build,
wrk and the servers on the same machine. The verifier follows a stand-in issuer
(\`verifier-bench issuer\`, its own Ed25519 key, the same feed format as \`auth-api\`).

| figure | target | measured |
| --- | --- | --- |
| \`/verify\` with a cached token, $CONNS connections, wrk -t2 | ≥ 0.8 × bare hyper | $ver req/s vs bare hyper $bare req/s: **$ratio ×** |
| p99 latency at 2 connections (wrk -t1 -c2) | < 2 ms | **$ver_p99** (p50 $ver_p50; bare hyper p99 $bare_p99) |
| resident memory with $TOKENS distinct cached tokens | < 64 MB | **$((rss_after / 1024)) MB** (${rss_before} kB before; cache entries $cached) |
| revocation to refusal | < 100 ms p99 | $lat |

Revocation to refusal is timed from the start of the issuer's revoke call to the first 401
from \`/verify\` (polled back to back), so it includes one HTTP round trip to the issuer,
the SSE push and the poll.
MD
echo "written bench/verifier/RESULTS.md"
