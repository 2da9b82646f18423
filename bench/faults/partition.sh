#!/usr/bin/env bash
# A network partition between a verifier and the API: the verifier runs in a network
# namespace of its own, joined to the host by a veth pair (made and removed here). The
# partition poisons the neighbour (ARP) entries on both ends, so every packet between the two
# is silently dropped while the link stays up, as a cut cable or a dropping firewall would.
#
#  1. a short partition (5 s, inside the feed's 12 s idle timeout): the stream survives, and a
#     revocation made meanwhile reaches the verifier once TCP retransmits after healing;
#  2. a long one: the verifier notices the silent stream (idle timeout), stays ready and
#     verifying (degraded) until the staleness limit, then refuses; a revocation made
#     meanwhile is known as soon as it is back.
#
#   bench/faults/partition.sh     # LIMIT=20 (VERIFIER_STALENESS_LIMIT_SECONDS) PROFILE=debug|release
# Needs root (ip netns).
source "$(dirname "$0")/lib.sh"
LIMIT=${LIMIT:-20}
[ "$(id -u)" = 0 ] || fail "needs root for ip netns"
build
net=10.216.$(($$ % 250)).
H=${net}1; N=${net}2
NS=f16p$$; VH=f16h$$; VN=f16n$$
ip netns add "$NS"; at_exit "ip netns del $NS"
ip link add "$VH" type veth peer name "$VN"; at_exit "ip link del $VH"
ip link set "$VN" netns "$NS"
ip addr add "$H/30" dev "$VH"; ip link set "$VH" up
ip netns exec "$NS" ip addr add "$N/30" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up
mac_h=$(cat "/sys/class/net/$VH/address")
mac_n=$(ip netns exec "$NS" cat "/sys/class/net/$VN/address")
partition() {
  ip neigh replace "$N" lladdr 02:00:00:00:16:01 dev "$VH" nud permanent
  ip netns exec "$NS" ip neigh replace "$H" lladdr 02:00:00:00:16:02 dev "$VN" nud permanent
}
heal() {
  ip neigh replace "$N" lladdr "$mac_n" dev "$VH" nud reachable
  ip netns exec "$NS" ip neigh replace "$H" lladdr "$mac_h" dev "$VN" nud reachable
}

db="sqlite://$WORK/auth.db"
port=$(free_port); vport=$(free_port)
API_HOST=$H start_api api "$db" "$port"
base=http://$H:$port
token=$(api_token "$db")
ip netns exec "$NS" env VERIFIER_LISTEN="127.0.0.1:$vport" VERIFIER_API_URL="$base" \
  VERIFIER_API_TOKEN="$token" VERIFIER_STALENESS_LIMIT_SECONDS="$LIMIT" RUST_LOG=info \
  "$BIN/auth-verifier" >>"$WORK/verifier.log" 2>&1 &
PIDS+=($!)
vcurl() { ip netns exec "$NS" curl -s -m 3 "$@" || true; }
vcode() { vcurl -o /dev/null -w '%{http_code}' "$@"; }
verify() { vcode "http://127.0.0.1:$vport/verify" -H "Authorization: Bearer $1"; }
for _ in $(seq 1 200); do [ "$(vcode "http://127.0.0.1:$vport/readyz")" = 200 ] && break; sleep 0.1; done
[ "$(vcode "http://127.0.0.1:$vport/readyz")" = 200 ] || fail "verifier in the namespace not ready"
sign_up() {
  curl -fs "$base/graphql" -H 'content-type: application/json' -d "{\"query\":
    \"mutation { signUp(input: {email: \\\"$1\\\", password: \\\"correct horse battery staple\\\"}) { accessToken } }\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["signUp"]["accessToken"])'
}
sign_out() {
  curl -fs "$base/graphql" -H 'content-type: application/json' -H "Authorization: Bearer $1" \
    -d '{"query": "mutation { signOut }"}' >/dev/null
}
kept=$(sign_up kept@example.com); short=$(sign_up short@example.com); long=$(sign_up long@example.com)
for t in "$kept" "$short" "$long"; do [ "$(verify "$t")" = 200 ] || fail "token not accepted before"; done
ok "verifier in namespace $NS follows the API at $base"

say "1. a 5 s partition; a sign-out during it"
partition
sleep 1
sign_out "$short"
[ "$(verify "$short")" = 200 ] || fail "the verifier heard of the sign-out through the partition?"
sleep 4
heal
healed=$(ms_now)
until [ "$(verify "$short")" = 401 ]; do
  [ $(($(ms_now) - healed)) -lt 15000 ] || fail "the sign-out made during the short partition never arrived"
  sleep 0.05
done
ok "the sign-out made during the partition refused $(($(ms_now) - healed)) ms after healing ($(vcurl "http://127.0.0.1:$vport/metrics" | awk '/^verifier_feed_reconnects_total/ {n=$2} END {print n+0}') reconnects: the stream survived)"

say "2. a long partition; staleness limit $LIMIT s"
sleep 6 # a ping or two, so the stream is fresh
partition
cut=$(ms_now)
sign_out "$long"
degraded_at=""; refused_at=""
while [ -z "$refused_at" ]; do
  el=$(($(ms_now) - cut))
  [ "$el" -lt $(((LIMIT + 20) * 1000)) ] || fail "still verifying $el ms into the partition"
  body=$(vcurl "http://127.0.0.1:$vport/readyz")
  st=$(verify "$kept")
  if [ -z "$degraded_at" ] && [[ $body == *'"status":"degraded"'* ]]; then degraded_at=$el; fi
  if [ "$st" = 401 ]; then
    refused_at=$el
  else
    [ "$st" = 200 ] || fail "verify answered $st"
    [[ $body == *'"ready":true'* ]] || fail "not ready at $el ms, before refusing: $body"
  fi
  sleep 0.2
done
[ -n "$degraded_at" ] || fail "never degraded"
[[ $(vcurl "http://127.0.0.1:$vport/readyz") == *'"ready":false'* ]] || fail "refusing but ready"
ok "connected (silent stream) until ${degraded_at} ms, then degraded and ready; refusing and not ready from ${refused_at} ms into the partition"
[ "$refused_at" -le $(((LIMIT + 1) * 1000)) ] || fail "refused only after $refused_at ms (limit $LIMIT s from the last ping)"
heal
healed=$(ms_now)
until [ "$(verify "$kept")" = 200 ]; do
  [ $(($(ms_now) - healed)) -lt 10000 ] || fail "not back 10 s after healing"
  sleep 0.05
done
back=$(($(ms_now) - healed))
[ "$(verify "$long")" = 401 ] || fail "the sign-out made during the long partition was lost"
[ "$(verify "$short")" = 401 ] || fail "the earlier sign-out was lost"
ok "verifying again $back ms after healing; both sign-outs made during partitions refused"
say "partition passed"
