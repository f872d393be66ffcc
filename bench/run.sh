#!/usr/bin/env bash
# `make bench`: redemptions per second through httpd + mod_redeem + PostgreSQL
# on this host, with the code table pre-filled so cost can be compared as it grows.
#   BENCH_FILL_CODES   codes inserted straight into the table first (default 1000000)
#   BENCH_CODES        codes generated through the API and redeemed (default 100000)
#   BENCH_USERS        users the redemptions are spread over (default 1000)
#   BENCH_SECONDS, BENCH_THREADS, BENCH_CONNECTIONS   wrk's load (default 15, 2, 64)
set -euo pipefail
. "$(dirname "$0")/../scripts/env.sh"

fill=${BENCH_FILL_CODES:-1000000}
codes=${BENCH_CODES:-100000}
users=${BENCH_USERS:-1000}
seconds=${BENCH_SECONDS:-15}
export BENCH_THREADS=${BENCH_THREADS:-2}
connections=${BENCH_CONNECTIONS:-64}
db=redeem_bench
work=$REDEEM_BUILD/bench
mkdir -p "$work"

"$REDEEM_ROOT/scripts/pg.sh" start redeem >/dev/null
psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql -XqAt -d postgres -c "CREATE DATABASE $db"
"$REDEEM_ROOT/scripts/migrate.sh" "$db" >/dev/null

echo "bench: filling $fill codes and $users users"
psql -XqAt -d "$db" -v fill="$fill" -v users="$users" <<'SQL'
INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
SELECT decode(md5(i::text) || md5('h' || i), 'hex'),
       decode(md5('s' || i) || md5('t' || i) || md5('u' || i) || substr(md5('v' || i), 1, 8), 'hex'),
       '00000000-0000-4000-8000-000000000000'
  FROM generate_series(1, :fill) AS i;
-- One argon2id hash for every bench user: logins are not what is measured.
INSERT INTO users (email, password_hash)
SELECT 'bench' || i || '@example.test', '$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$dGhpc2lzbm90YXJlYWxoYXNoYXRhbGxub3Q'
  FROM generate_series(1, :users) AS i;
VACUUM ANALYZE;
SQL

export REDEEM_PORT=${BENCH_PORT:-5099} REDEEM_RUN_DIR=$work/run REDEEM_MODULE=$REDEEM_BUILD/mod_redeem.so
export REDEEM_LOG_LEVEL=warn REDEEM_ARGON2="19456 2 1" REDEEM_EXTRA_CONF=$work/none.conf
export REDEEM_DB_PARAMS="host=127.0.0.1 port=$REDEEM_PG_PORT dbname=$db user=$REDEEM_APP_USER password=$REDEEM_APP_PASSWORD gssencmode=disable"
export JWT_SECRET_KEY=$(redeem_secret bench_jwt_secret 32) REDEEM_JWT_SECRET_FILE=/nonexistent
export ADMIN_EMAIL=bench-admin@example.test ADMIN_PASSWORD=BenchAdmin123
export REDEEM_CODE_MAC_KEY_FILE=$REDEEM_SECRETS/code_mac_key REDEEM_CODE_ENC_KEY_FILE=$REDEEM_SECRETS/code_enc_key
redeem_secret code_mac_key 32 >/dev/null
redeem_secret code_enc_key 32 >/dev/null
mkdir -p "$REDEEM_RUN_DIR"
[ "$(id -u)" -eq 0 ] && chown "$REDEEM_USER" "$REDEEM_RUN_DIR"
/usr/sbin/apache2 -f "$REDEEM_ROOT/conf/dev-server.conf" -DREDEEM_JWT_FROM_ENV -k start
trap '/usr/sbin/apache2 -f "$REDEEM_ROOT/conf/dev-server.conf" -DREDEEM_JWT_FROM_ENV -k stop' EXIT
base=http://127.0.0.1:$REDEEM_PORT
for _ in $(seq 50); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.2; done

admin_token=$(curl -sf -X POST "$base/api/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
echo "bench: generating $codes codes through POST /admin/generate-codes"
start=$(date +%s%N)
curl -sf -X POST "$base/admin/generate-codes" -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $admin_token" -d "{\"count\":$codes}" >"$work/codes.json"
end=$(date +%s%N)
echo "bench: generated $codes codes in $(( (end - start) / 1000000 )) ms"

# Tokens for the bench users, signed here with the server's secret.
first_user=$(psql -XqAt -d "$db" -c "SELECT min(id) FROM users WHERE email LIKE 'bench%'")
perl "$REDEEM_ROOT/bench/pairs.pl" "$JWT_SECRET_KEY" "$first_user" "$users" "$work/codes.json" >"$work/pairs.txt"

echo "bench: wrk -t$BENCH_THREADS -c$connections -d${seconds}s POST /redeem"
BENCH_PAIRS=$work/pairs.txt wrk -t"$BENCH_THREADS" -c"$connections" -d"${seconds}s" \
  -s "$REDEEM_ROOT/bench/redeem.lua" "$base" | tee "$work/wrk.txt"

# Listing cost on the filled table: page 1 under each filter, a deep offset
# page, and the keyset cursor near the end (best of 5, curl's total time).
total_codes=$(psql -XqAt -d "$db" -c "SELECT count(*) FROM redeem_codes")
batch=$(sed -E 's/.*"batch_id":"([^"]+)".*/\1/' "$work/codes.json")
echo "bench: GET /admin/codes on $total_codes codes (per_page=50, best of 5):"
for query in "page=1" "page=1&used=true" "page=1&used=false" "page=1&batch_id=$batch" \
             "page=1000" "after_id=$((total_codes - 100))"; do
  best=$(for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $admin_token" "$base/admin/codes?$query"
  done | sort -n | head -n 1)
  printf '  %-60s %s s\n' "$query" "$best"
done

used=$(psql -XqAt -d "$db" -c "SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL")
audited=$(psql -XqAt -d "$db" -c "SELECT count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'")
echo "bench: database: $used codes used, $audited successful redemptions audited"
