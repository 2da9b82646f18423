#!/usr/bin/env bash
# The API stopped while two verifiers run: they keep verifying and stay ready, saying
# "degraded" on /readyz and /metrics, refuse tokens once the staleness limit has passed (and
# turn not ready), and when the API is back reconnect within a second and catch up on the
# revocation made while they were away (through a second API process on the same database).
#
#   bench/faults/api-stop.sh     # LIMIT=10 (VERIFIER_STALENESS_LIMIT_SECONDS) PROFILE=debug|release
source "$(dirname "$0")/lib.sh"
LIMIT=${LIMIT:-10}
build
db="sqlite://$WORK/auth.db"
port=$(free_port); v1=$(free_port); v2=$(free_port)
start_api api "$db" "$port"
base=http://127.0.0.1:$port
token=$(api_token "$db")
start_verifier v1 "$base" "$v1" "$token" VERIFIER_STALENESS_LIMIT_SECONDS="$LIMIT"
start_verifier v2 "$base" "$v2" "$token" VERIFIER_STALENESS_LIMIT_SECONDS="$LIMIT"
sign() { # EMAIL MUTATION → access token
  curl -fs "$base/graphql" -H 'content-type: application/json' -d "{\"query\":
    \"mutation { $2(input: {email: \\\"$1\\\", password: \\\"correct horse battery staple\\\"}) { accessToken } }\"}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(list(d.values())[0]["accessToken"])'
}
kept=$(sign keep@example.com signUp)
gone=$(sign gone@example.com signUp)
verify() { http_code "http://127.0.0.1:$1/verify" -H "Authorization: Bearer $2"; }
for v in $v1 $v2; do
  [ "$(verify "$v" "$kept")" = 200 ] && [ "$(verify "$v" "$gone")" = 200 ] || fail "tokens not accepted before the stop"
done

say "API stopped (SIGTERM); staleness limit $LIMIT s"
kill "$API_PID"; wait "$API_PID" 2>/dev/null || true
stopped=$(ms_now)
degraded_at=""; refused_at=""; notready_at=""
while :; do
  now=$(ms_now); el=$((now - stopped))
  [ "$el" -lt $(((LIMIT + 8) * 1000)) ] || fail "no refusal $((LIMIT + 8)) s after the stop"
  body=$(curl -s -m 2 "http://127.0.0.1:$v1/readyz"); code=$(http_code "http://127.0.0.1:$v1/readyz")
  st=$(verify "$v1" "$kept"); st2=$(verify "$v2" "$kept")
  if [ -z "$degraded_at" ] && [[ $body == *'"status":"degraded"'* ]]; then
    degraded_at=$el
    [ "$code" = 200 ] || fail "degraded but readyz $code"
    curl -s "http://127.0.0.1:$v1/metrics" | grep -q '^verifier_feed_degraded 1' || fail "metrics do not say degraded"
  fi
  if [ "$st" = 401 ] && [ -z "$refused_at" ]; then refused_at=$el; fi
  if [ "$code" = 503 ] && [ -z "$notready_at" ]; then notready_at=$el; fi
  if [ -z "$refused_at" ]; then
    [ "$st" = 200 ] && [ "$st2" = 200 ] || fail "refused ($st/$st2) after $el ms, before the limit"
    [ "$code" = 200 ] || fail "not ready after $el ms, within the limit: $body"
  fi
  [ -n "$refused_at" ] && [ -n "$notready_at" ] && break
  sleep 0.1
done
[ -n "$degraded_at" ] || fail "never said degraded"
ok "verifying and ready (degraded from $degraded_at ms) until the limit; refused from $refused_at ms, /readyz 503 from $notready_at ms after the stop"
# The stop is timed after the process has exited; its streams ended as it began to shut down.
[ "$refused_at" -ge $((LIMIT * 1000 - 2000)) ] || fail "refused before the limit"
curl -s "http://127.0.0.1:$v1/metrics" | grep -q '^verifier_feed_stale 1' || fail "metrics do not say stale"

say "a revocation while the verifiers are away, through a second API process"
p2=$(free_port)
ISSUER=http://127.0.0.1:$port start_api api2 "$db" "$p2"
curl -fs "http://127.0.0.1:$p2/graphql" -H 'content-type: application/json' \
  -H "Authorization: Bearer $gone" -d '{"query": "mutation { signOut }"}' >/dev/null
kill "$API_PID"; wait "$API_PID" 2>/dev/null || true

say "the API back on its address"
start_api api "$db" "$port"
back=$(ms_now)
r1=""; r2=""
while [ -z "$r1" ] || [ -z "$r2" ]; do
  el=$(($(ms_now) - back))
  [ "$el" -lt 10000 ] || fail "verifiers not back 10 s after the API"
  [ -z "$r1" ] && [ "$(verify "$v1" "$kept")" = 200 ] && r1=$el
  [ -z "$r2" ] && [ "$(verify "$v2" "$kept")" = 200 ] && r2=$el
  sleep 0.02
done
ok "verifiers verifying again $r1 ms and $r2 ms after the API answered /healthz"
[ "$r1" -lt 1000 ] && [ "$r2" -lt 1000 ] || fail "reconnection took a second or more"
for v in $v1 $v2; do
  [ "$(verify "$v" "$gone")" = 401 ] || fail "the revocation made while away is not known to :$v"
  [ "$(http_code "http://127.0.0.1:$v/readyz")" = 200 ] || fail "not ready after the API is back"
done
ok "both verifiers refuse the token signed out while they were away, and are ready"
say "api-stop passed"
