#!/usr/bin/env bash
# Scale-out: two API replicas and two verifiers on one PostgreSQL (a cluster of this
# script's own). A revocation through either replica is refused by both verifiers within a
# second (measured); mail queued through both replicas is sent once, not twice (the outbox
# claim); sign-in through one replica keeps working when the other is killed (kill -9).
#
#   bench/faults/scale-out.sh     # ROUNDS=10 MAILS=20 PROFILE=debug|release
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-10}
MAILS=${MAILS:-20}
build
pg_cluster
sport=$(free_port)
sink=$WORK/received.txt; : >"$sink"
$DRIVER smtp "$sport" "$sink" >>"$WORK/sink.log" 2>&1 &
PIDS+=($!)
p1=$(free_port); p2=$(free_port); v1=$(free_port); v2=$(free_port)
start_api api1 "$PG_URL" "$p1" SMTP_URL="smtp://127.0.0.1:$sport"; api1=$API_PID
start_api api2 "$PG_URL" "$p2" SMTP_URL="smtp://127.0.0.1:$sport"; api2=$API_PID
token=$(api_token "$PG_URL")
start_verifier v1 "http://127.0.0.1:$p1" "$v1" "$token"
start_verifier v2 "http://127.0.0.1:$p2" "$v2" "$token"
gql() { # PORT BODY [TOKEN]
  curl -fs "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' \
    ${3:+-H "Authorization: Bearer $3"} -d "$2"
}
auth() { # PORT MUTATION EMAIL → access token
  gql "$1" "{\"query\": \"mutation { $2(input: {email: \\\"$3\\\", password: \\\"correct horse battery staple\\\"}) { accessToken } }\"}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(list(d.values())[0]["accessToken"])'
}
verify() { http_code "http://127.0.0.1:$1/verify" -H "Authorization: Bearer $2"; }
auth "$p1" signUp scale@example.com >/dev/null

say "revocation to refusal by both verifiers, $ROUNDS rounds alternating the replica"
worst=0; all=()
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then via=$p1; else via=$p2; fi
  t=$(auth "$via" signIn scale@example.com)
  for _ in $(seq 1 100); do [ "$(verify "$v1" "$t")" = 200 ] && [ "$(verify "$v2" "$t")" = 200 ] && break; sleep 0.02; done
  [ "$(verify "$v1" "$t")" = 200 ] && [ "$(verify "$v2" "$t")" = 200 ] || fail "token not accepted by both"
  t0=$(ms_now)
  gql "$via" '{"query": "mutation { signOut }"}' "$t" >/dev/null
  answered=$(($(ms_now) - t0))
  d1=""; d2=""
  while [ -z "$d1" ] || [ -z "$d2" ]; do
    el=$(($(ms_now) - t0))
    [ "$el" -lt 3000 ] || fail "round $r: not refused by both within 3 s"
    [ -z "$d1" ] && [ "$(verify "$v1" "$t")" = 401 ] && d1=$el
    [ -z "$d2" ] && [ "$(verify "$v2" "$t")" = 401 ] && d2=$el
  done
  all+=("$d1" "$d2")
  [ "$d1" -gt "$worst" ] && worst=$d1; [ "$d2" -gt "$worst" ] && worst=$d2
  echo "   round $r via :$via: verifier 1 $d1 ms, verifier 2 $d2 ms from sending signOut (answered in $answered ms; each check is a curl of a few ms)"
done
median=$(printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
[ "$worst" -lt 1000 ] || fail "a revocation took $worst ms to be refused by both"
ok "refused by both verifiers within $worst ms at worst (median $median ms, signOut's own round trip included)"

say "$MAILS password resets through both replicas: each mail sent once"
emails=()
for i in $(seq 1 "$MAILS"); do
  e="mail$i@example.com"; emails+=("$e")
  if [ $((i % 2)) = 1 ]; then via=$p1; else via=$p2; fi
  auth "$via" signUp "$e" >/dev/null
done
for i in $(seq 1 "$MAILS"); do
  if [ $((i % 2)) = 1 ]; then via=$p1; else via=$p2; fi
  $DRIVER reset "http://127.0.0.1:$via" "${emails[$((i - 1))]}"
done
deadline=$(($(date +%s) + 30))
until [ "$(wc -l <"$sink")" -ge "$MAILS" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "only $(wc -l <"$sink") of $MAILS mails arrived"
  sleep 0.2
done
sleep 3
for e in "${emails[@]}"; do
  n=$(grep -c " $e " "$sink" || true); [ "$n" = 1 ] || fail "$e received $n mails"
done
[ "$(wc -l <"$sink")" = "$MAILS" ] || fail "$(wc -l <"$sink") mails for $MAILS resets"
unsent=$(psql_q "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
[ "$unsent" = 0 ] || fail "$unsent outbox rows unsent"
ok "$MAILS mails, each received once (outbox: $(psql_q "SELECT count(*) FROM mail_outbox WHERE attempts = 1") sent at the first attempt)"

say "replica 1 killed (kill -9) under sign-in and me load on replica 2"
t=$(auth "$p2" signIn scale@example.com)
$DRIVER probe "http://127.0.0.1:$p2" "$WORK/probe.csv" --seconds 12 --threads 2 \
  --token "$t" --sign-in scale@example.com &
driver=$!
sleep 4
kill -9 "$api1"; wait "$api1" 2>/dev/null || true
killed=$(ms_now)
wait "$driver"
bad=$(awk -F, '$3 != "ok"' "$WORK/probe.csv" | wc -l)
n=$(wc -l <"$WORK/probe.csv")
after=$(awk -F, -v k="$killed" '$1 > k && $3 == "ok"' "$WORK/probe.csv" | wc -l)
[ "$bad" = 0 ] || fail "$bad of $n requests to replica 2 failed: $(awk -F, '$3 != "ok" {print $3}' "$WORK/probe.csv" | sort | uniq -c | tr '\n' ' ')"
[ "$after" -gt 0 ] || fail "no request after the kill"
ok "replica 2 answered all $n requests ($after after the kill), none failed"
t=$(auth "$p2" signIn scale@example.com)
[ "$(verify "$v2" "$t")" = 200 ] || fail "verifier 2 does not accept a token from replica 2"
t0=$(ms_now); gql "$p2" '{"query": "mutation { signOut }"}' "$t" >/dev/null
until [ "$(verify "$v2" "$t")" = 401 ]; do [ $(($(ms_now) - t0)) -lt 1000 ] || fail "not refused by verifier 2 within a second"; done
ok "with replica 1 gone, a sign-out through replica 2 refused by verifier 2 in $(($(ms_now) - t0)) ms"
body=$(curl -s "http://127.0.0.1:$v1/readyz")
echo "   verifier 1 (following the killed replica): $body"
say "scale-out passed"
