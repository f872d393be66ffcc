#!/usr/bin/env bash
# `make run`: serve the API from the freshly built module on 127.0.0.1:$PORT in
# the foreground, against the private PostgreSQL started by `scripts/pg.sh`.
set -euo pipefail
. "$(dirname "$0")/env.sh"

export REDEEM_PORT=${PORT:-5000}
export REDEEM_RUN_DIR=$REDEEM_BUILD/run
export REDEEM_MODULE=${REDEEM_MODULE:-$REDEEM_BUILD/mod_redeem.so}
export REDEEM_LOG_LEVEL=${REDEEM_LOG_LEVEL:-"warn redeem:info"}
export REDEEM_ARGON2=${REDEEM_ARGON2:-"19456 2 1"}
export REDEEM_EXTRA_CONF=${REDEEM_EXTRA_CONF:-$REDEEM_RUN_DIR/none.conf}
export REDEEM_TUNING_CONF=${REDEEM_TUNING_CONF:-$REDEEM_ROOT/conf/tuning.conf}
export REDEEM_DB_PARAMS="host=$(redeem_db_host) port=$REDEEM_PG_PORT dbname=redeem user=$REDEEM_APP_USER password=$REDEEM_APP_PASSWORD gssencmode=disable"
export ADMIN_EMAIL=${ADMIN_EMAIL:-admin@example.com}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-AdminPassword123}
mkdir -p "$REDEEM_RUN_DIR"

defines=()
if [ -n "${JWT_SECRET_KEY:-}" ]; then
  defines+=(-DREDEEM_JWT_FROM_ENV)
  export REDEEM_JWT_SECRET_FILE=/nonexistent
  echo "run: JWT secret taken from JWT_SECRET_KEY"
else
  redeem_secret jwt_secret 48 >/dev/null
  export REDEEM_JWT_SECRET_FILE=$REDEEM_SECRETS/jwt_secret
  echo "run: JWT secret generated once into $REDEEM_JWT_SECRET_FILE"
fi
if [ -n "${REDIS_URL:-}" ]; then
  defines+=(-DREDEEM_REDIS)
  export REDIS_URL
  echo "run: rate limits counted in Redis at $REDIS_URL"
else
  echo "run: rate limits counted in this host's shared memory (set REDIS_URL for Redis)"
fi
redeem_secret code_mac_key 32 >/dev/null
redeem_secret code_enc_key 32 >/dev/null
export REDEEM_CODE_MAC_KEY_FILE=$REDEEM_SECRETS/code_mac_key
export REDEEM_CODE_ENC_KEY_FILE=$REDEEM_SECRETS/code_enc_key
echo "run: redeem-code keys generated once into $REDEEM_SECRETS (code_mac_key, code_enc_key)"
[ "$(id -u)" -eq 0 ] && chown "$REDEEM_USER" "$REDEEM_RUN_DIR"

conf=$REDEEM_ROOT/conf/dev-server.conf
/usr/sbin/apache2 -f "$conf" "${defines[@]}" -t >/dev/null
echo "run: serving http://127.0.0.1:$REDEEM_PORT (error log: $REDEEM_RUN_DIR/error.log; Ctrl-C or 'make stop' ends it)"
# The private cluster's superuser login (env.sh) is not httpd's business:
# the module connects as the application role (REDEEM_DB_PARAMS).
unset PGPASSWORD PGUSER
exec /usr/sbin/apache2 -f "$conf" "${defines[@]}" -DFOREGROUND
