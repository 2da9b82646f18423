#!/usr/bin/env bash
# PostgreSQL stopped for 30 s under load, then started again. The API answers errors
# promptly (nothing waits past DATABASE_ACQUIRE_TIMEOUT_SECONDS, no panic), `/readyz` says
# not ready within a second of being asked, failures are logged one line each and at most
# one a second per kind, and service resumes without a restart; a verifier keeps answering
# for the tokens it can check locally.
#
#   bench/faults/pg-outage.sh     # OUTAGE=30 THREADS=4 PROFILE=debug|release
#
# Runs on a PostgreSQL cluster of its own (pg_createcluster, free port), never the shared one.
source "$(dirname "$0")/lib.sh"
OUTAGE=${OUTAGE:-30}
THREADS=${THREADS:-4}
ACQUIRE=${DATABASE_ACQUIRE_TIMEOUT_SECONDS:-3}
build
pg_cluster
port=$(free_port); vport=$(free_port)
start_api api "$PG_URL" "$port" DATABASE_ACQUIRE_TIMEOUT_SECONDS="$ACQUIRE"
base=http://127.0.0.1:$port
token=$(api_token "$PG_URL")
start_verifier verifier "$base" "$vport" "$token"
access=$(curl -fs "$base/graphql" -H 'content-type: application/json' -d '{"query":
  "mutation { signUp(input: {email: \"pg@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["signUp"]["accessToken"])')
[ "$(http_code "http://127.0.0.1:$vport/verify" -H "Authorization: Bearer $access")" = 200 ] || fail "verifier does not accept the token"

total=$((OUTAGE + 25))
say "load: $THREADS threads of me (and a sign-in every tenth request) for $total s; PostgreSQL down at 8 s for $OUTAGE s"
$DRIVER probe "$base" "$WORK/probe.csv" --seconds "$total" --threads "$THREADS" \
  --token "$access" --sign-in pg@example.com &
driver=$!
# /readyz of the API and /verify of the verifier, every 200 ms, with a 5 s client timeout.
(
  end=$(($(date +%s) + total))
  while [ "$(date +%s)" -lt "$end" ]; do
    t=$(ms_now)
    r=$(curl -s -o /dev/null -m 5 -w '%{http_code} %{time_total}' "$base/readyz" || true)
    v=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H "Authorization: Bearer $access" "http://127.0.0.1:$vport/verify" || true)
    echo "$t $r $v" >>"$WORK/readyz.txt"
    sleep 0.2
  done
) &
prober=$!
sleep 8
stop_at=$(ms_now)
pg_stop
stopped_at=$(ms_now)
echo "   PostgreSQL stopped ($((stopped_at - stop_at)) ms to stop)"
sleep "$OUTAGE"
start_at=$(ms_now)
pg_start
echo "   PostgreSQL started again after $(((start_at - stopped_at) / 1000)) s"
wait "$driver"; wait "$prober"

python3 - "$WORK" "$stopped_at" "$start_at" "$ACQUIRE" "$stop_at" <<'PY'
import sys
work, down, up, acquire = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
stopping = int(sys.argv[5])
reqs = [l.strip().split(",", 2) for l in open(work + "/probe.csv")]
reqs = [(int(t), float(ms), o) for t, ms, o in reqs]
ready = [l.split() for l in open(work + "/readyz.txt")]
ready = [(int(t), s, float(d) * 1000, v) for t, s, d, v in ready]
fails = []
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        fails.append(what)
during = [r for r in reqs if r[0] >= down and r[0] + r[1] <= up]
before = [r for r in reqs if r[0] + r[1] < stopping]
after_up = [r for r in reqs if r[0] >= up]
check(before and all(o == "ok" for _, _, o in before), "before the outage every request succeeded (%d)" % len(before))
worst = max((ms for _, ms, _ in during), default=0)
check(during and all(o != "ok" for _, _, o in during), "during the outage every request failed (%d): %s" % (len(during), sorted(set(o for _, _, o in during))))
check(worst <= acquire * 1000 + 1000, "slowest answer during the outage %.0f ms (acquire timeout %.0f s)" % (worst, acquire))
first_fail = min((t + ms for t, ms, o in reqs if o != "ok" and t + ms >= stopping), default=None)
print("   first error answered %.0f ms after the stop began (the fast shutdown took %d ms)" % ((first_fail or stopping) - stopping, down - stopping))
first_ok = min((t + ms for t, ms, o in after_up if o == "ok"), default=None)
check(first_ok is not None, "service resumed without a restart, first success %.0f ms after PostgreSQL started" % ((first_ok or up) - up))
last = [o for t, _, o in reqs if t > up + 10000]
check(last and all(o == "ok" for o in last), "from 10 s after the start every request succeeds (%d)" % len(last))
r_during = [r for r in ready if r[0] >= down + 500 and r[0] + r[2] <= up]
check(r_during and all(s == "503" for _, s, _, _ in r_during), "/readyz 503 during the outage (%d probes)" % len(r_during))
rmax = max((d for _, _, d, _ in r_during), default=0)
check(rmax < 1000, "/readyz answered within %.0f ms at worst during the outage" % rmax)
r_after = [r for r in ready if r[0] >= up + 10000]
check(r_after and all(s == "200" for _, s, _, _ in r_after), "/readyz 200 again after the start")
check(all(v == "200" for *_, v in ready), "the verifier answered 200 for the token throughout (%d probes)" % len(ready))
sys.exit(1 if fails else 0)
PY

# One line per failure, at most one a second per kind; no panic, no backtrace.
log=$WORK/api.log
errors=$(grep -c ' ERROR ' "$log" || true)
limit=$(( (OUTAGE + 5) * 6 ))
echo "   API log: $errors ERROR lines over the outage; kinds: $(grep ' ERROR ' "$log" | sed -E 's/.* ERROR ([^:]*).*/\1/' | sed -E 's/ suppressed=.*//' | sort | uniq -c | tr '\n' ';')"
[ "$errors" -le "$limit" ] || fail "$errors ERROR lines (more than $limit)"
! grep -q 'panicked' "$log" || fail "the API panicked"
! grep -qE '^ +[0-9]+: |stack backtrace' "$log" || fail "a backtrace in the log"
ok "API log: $errors ERROR lines (rate-limited), no panic, no backtrace"
say "pg-outage passed"
