#!/usr/bin/env bash
# bench/scale/run.sh: auth-api on PostgreSQL at a million users beside an empty database.
#   bench/scale/run.sh generate   # two databases: auth_scale (USERS users, 3 sessions each,
#                                 # refresh tokens, addresses, audit events) and
#                                 # auth_scale_empty (schema only); indexes built after
#                                 # the load
#   bench/scale/run.sh explain    # EXPLAIN (ANALYZE, BUFFERS) of the hot statements and of
#                                 # the janitor's purges on auth_scale -> bench/scale/plans.txt
#   bench/scale/run.sh measure    # an API on each database, the scale-bench driver alternating
#                                 # rounds between them: p50/p95 of signIn, refreshSession, me,
#                                 # users(search) and auditLog(userId), and the ratios
# Settings (environment): PG (server URL, default postgres://postgres@127.0.0.1:5432),
# USERS (default 1000000), AUTH_API (the binary, default target/release/auth-api), ROUNDS
# (default 6) and N (requests per operation per round, default 30).
set -euo pipefail
cd "$(dirname "$0")/../.."
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
USERS="${USERS:-1000000}"
AUTH_API="${AUTH_API:-target/release/auth-api}"
BIG="$PG/auth_scale"
EMPTY="$PG/auth_scale_empty"
PASSWORD="correct horse battery staple"
export AUTH_MASTER_KEY="${AUTH_MASTER_KEY:-$(printf 'scale-bench-master-key-32-bytes!' | base64)}"
export RUST_LOG="${RUST_LOG:-warn}"

api() { # api URL PORT: an API on URL listening on PORT, until the script ends
    DATABASE_URL="$1" AUTH_LISTEN="127.0.0.1:$2" AUTH_ISSUER="http://127.0.0.1:$2" \
        AUTH_ADMIN_EMAILS=admin@example.com AUTH_RATE_LIMIT_FACTOR=1000 \
        DATABASE_MAX_CONNECTIONS=8 "$AUTH_API" serve &
    pids+=("$!")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return; sleep 0.2; done
    echo "API on port $2 did not start" >&2; exit 1
}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

gql() { # gql PORT JSON
    curl -sf -H 'content-type: application/json' --data "$2" "http://127.0.0.1:$1/graphql"
}

sign_up() { # sign_up PORT EMAIL: an account with the benchmark password
    gql "$1" "{\"query\":\"mutation(\$e: String!, \$p: String!) { signUp(input: {email: \$e, password: \$p}) { user { id } } }\",\"variables\":{\"e\":\"$2\",\"p\":\"$PASSWORD\"}}" >/dev/null
}

generate() {
    for db in auth_scale auth_scale_empty; do
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
        DATABASE_URL="$PG/$db" "$AUTH_API" migrate
    done
    # A real argon2id hash of the benchmark password, made by the API, for every user.
    api "$EMPTY" 18181
    sign_up 18181 hash@example.com
    hash="$(psql -tA "$EMPTY" -c "SELECT password_hash FROM users LIMIT 1")"
    psql -q "$EMPTY" -c "DELETE FROM users"
    local started=$SECONDS
    psql -v users="$USERS" -v hash="$hash" -f bench/scale/generate.sql "$BIG"
    echo "generated in $((SECONDS - started)) s"
}

explain() {
    local tenant user out=bench/scale/plans.txt
    tenant="$(psql -tA "$BIG" -c "SELECT id FROM tenants WHERE slug = 'default'")"
    user="$(psql -tA "$BIG" -c "SELECT user_id FROM user_emails WHERE email = 'user500000@example.com'")"
    local now=$(( $(date +%s) * 1000 ))
    {
        echo "# EXPLAIN (ANALYZE, BUFFERS) on auth_scale ($USERS users), $(date -u +%FT%TZ)"
        psql "$BIG" -c "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE n_live_tup > 1000 ORDER BY 2 DESC"
        while IFS= read -r sql; do
            [ -z "$sql" ] && continue
            echo "## $sql"
            # The purges run in a transaction rolled back, so the data stays as generated.
            psql -q "$BIG" -v tenant="$tenant" -v user="$user" -v now="$now" <<SQL
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $sql;
ROLLBACK;
SQL
        done <<'LIST'
SELECT u.id FROM user_emails e JOIN users u ON u.id = e.user_id WHERE e.tenant_id = :'tenant' AND e.email = 'user123456@example.com' AND e.state = 'active'
SELECT id, session_id, used_at FROM refresh_tokens WHERE token_hash = encode(sha256('r123.0'::bytea), 'hex')
SELECT s.id, u.tokens_valid_after FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.tenant_id = :'tenant' AND s.id = md5('s123.0')::uuid::text
SELECT id FROM sessions WHERE tenant_id = :'tenant' AND user_id = :'user' AND revoked_at IS NULL AND expires_at > :now ORDER BY created_at DESC
SELECT u.id FROM users u WHERE u.tenant_id = :'tenant' AND u.id IN (SELECT e.user_id FROM user_emails e WHERE e.tenant_id = :'tenant' AND e.state = 'active' AND e.email LIKE '%user12345%' ESCAPE '\' UNION SELECT n.id FROM users n WHERE n.tenant_id = :'tenant' AND lower(COALESCE(n.name_display, '') || ' ' || COALESCE(n.name_first, '') || ' ' || COALESCE(n.name_last, '')) LIKE '%user12345%' ESCAPE '\') ORDER BY u.created_at DESC, u.id DESC LIMIT 21
SELECT COUNT(*) FROM users u WHERE u.tenant_id = :'tenant'
SELECT id FROM audit_events WHERE tenant_id = :'tenant' AND user_id = :'user' ORDER BY at DESC, id DESC LIMIT 21
UPDATE refresh_tokens SET successor = NULL WHERE id IN (SELECT id FROM refresh_tokens WHERE successor IS NOT NULL AND used_at < :now - 10000 LIMIT 1000)
DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < :now - 86400000 LIMIT 1000)
DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE revoked_at < :now - 86400000 LIMIT 1000)
DELETE FROM sessions WHERE expires_at < :now - 86400000 OR revoked_at < :now - 86400000
UPDATE refresh_tokens SET successor = NULL WHERE successor IS NOT NULL AND used_at < :now - 10000
LIST
    } > "$out" 2>&1
    echo "plans in $out"
}

measure() {
    api "$BIG" 18281
    api "$EMPTY" 18282
    for port in 18281 18282; do
        sign_up "$port" admin@example.com
        sign_up "$port" bench@example.com
    done
    for db in "$BIG" "$EMPTY"; do
        psql -q "$db" -c "UPDATE user_emails SET verified_at = created_at WHERE email = 'admin@example.com'"
    done
    cargo run -q --profile "${CARGO_PROFILE:-release}" -p auth-bench --bin scale-bench -- \
        --big http://127.0.0.1:18281 --empty http://127.0.0.1:18282 \
        --users "$USERS" --rounds "${ROUNDS:-6}" --n "${N:-30}" --password "$PASSWORD"
}

case "${1:-}" in
    generate) generate ;;
    explain) explain ;;
    measure) measure ;;
    *) echo "usage: $0 generate|explain|measure" >&2; exit 2 ;;
esac
