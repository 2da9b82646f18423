#!/usr/bin/env bash
# SMTP down for a minute: mail queued meanwhile is delayed, none is lost, none is sent twice.
# The SMTP server is a tiny sink in bench/faults/driver.py (`smtp`), restarted on its port.
#
#   bench/faults/smtp-down.sh     # DOWN=60 PROFILE=debug|release
source "$(dirname "$0")/lib.sh"
DOWN=${DOWN:-60}
build
sport=$(free_port); port=$(free_port)
sink=$WORK/received.txt; : >"$sink"
start_sink() {
  $DRIVER smtp "$sport" "$sink" >>"$WORK/sink.log" 2>&1 &
  SINK_PID=$!; PIDS+=("$SINK_PID")
  for _ in $(seq 1 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && return 0
    kill -0 "$SINK_PID" 2>/dev/null || fail "SMTP sink exited: $(tail -n 3 "$WORK/sink.log")"
    sleep 0.05
  done
  fail "SMTP sink not up after 20 s"
}
start_sink
db="sqlite://$WORK/auth.db"
start_api api "$db" "$port" SMTP_URL="smtp://127.0.0.1:$sport"
base=http://127.0.0.1:$port
sign_up() {
  curl -fs "$base/graphql" -H 'content-type: application/json' -d "{\"query\":
    \"mutation { signUp(input: {email: \\\"$1\\\", password: \\\"correct horse battery staple\\\"}) { accessToken } }\"}" >/dev/null
}
before=(); during=()
for i in 1 2 3; do before+=("before$i@example.com"); done
for i in $(seq 1 8); do during+=("during$i@example.com"); done
for e in "${before[@]}" "${during[@]}"; do sign_up "$e"; done
received() { grep -c " $1 " "$sink" || true; }
wait_for() { # SECONDS EMAILS… : until each has arrived
  local deadline=$(($(date +%s) + $1)); shift
  local e
  for e in "$@"; do
    until [ "$(received "$e")" -ge 1 ]; do
      [ "$(date +%s)" -lt "$deadline" ] || fail "no mail for $e"
      sleep 0.2
    done
  done
}

say "SMTP up: three resets"
$DRIVER reset "$base" "${before[@]}"
wait_for 20 "${before[@]}"
ok "delivered at once"

say "SMTP down for $DOWN s; eight resets during the first 30 s"
kill -9 "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
down_at=$(ms_now)
declare -A asked
for e in "${during[@]}"; do
  asked[$e]=$(ms_now)
  $DRIVER reset "$base" "$e"
  sleep 2.5
done
left=$((DOWN * 1000 - ($(ms_now) - down_at)))
[ "$left" -gt 0 ] && sleep "$(awk -v ms="$left" 'BEGIN {print ms / 1000}')"
[ "$(grep -c during "$sink" || true)" = 0 ] || fail "mail arrived with SMTP down?"
start_sink
up_at=$(ms_now)
echo "   SMTP back after $(((up_at - down_at) / 1000)) s"
wait_for $((DOWN * 2 + 30)) "${during[@]}"
last=0
for e in "${during[@]}"; do
  at=$(awk -v e="$e" '$2 == e {print $1; exit}' "$sink")
  d=$((at - asked[$e])); [ "$d" -gt "$last" ] && last=$d
  echo "   $e: asked at +$(((asked[$e] - down_at) / 1000)) s, delivered $((at - up_at)) ms after SMTP came back ($((d / 1000)) s after asking)"
done
sleep 5 # anything sent twice would show now
for e in "${before[@]}" "${during[@]}"; do
  n=$(received "$e"); [ "$n" = 1 ] || fail "$e received $n mails"
done
total=$(wc -l <"$sink")
[ "$total" = 11 ] || fail "$total mails for 11 resets"
unsent=$(sqlite3 "$WORK/auth.db" "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
[ "$unsent" = 0 ] || fail "$unsent outbox rows not sent"
attempts=$(sqlite3 "$WORK/auth.db" "SELECT max(attempts) FROM mail_outbox")
ok "every mail delivered exactly once ($total); longest delay $((last / 1000)) s; most attempts for one mail $attempts; outbox empty"
say "smtp-down passed"
