#!/usr/bin/env bash
# `make test`: the private PostgreSQL and Redis, a freshly migrated template
# database, then every test file under t/ (each file gets its own database
# and httpd). REDEEM_ASAN=1 runs the suite against the AddressSanitizer build
# instead. What this script starts it stops again; what already ran, it leaves.
set -euo pipefail
. "$(dirname "$0")/env.sh"

started=()
cleanup() {
  for service in "${started[@]}"; do "$REDEEM_ROOT/scripts/$service.sh" stop >/dev/null || true; done
}
trap cleanup EXIT
if ! "$REDEEM_ROOT/scripts/pg.sh" status; then started+=(pg); fi
if ! "$REDEEM_ROOT/scripts/redis.sh" status; then started+=(redis); fi
"$REDEEM_ROOT/scripts/pg.sh" start redeem >/dev/null
"$REDEEM_ROOT/scripts/redis.sh" start
export TEST_REDEEM_REDIS_PORT=$REDEEM_REDIS_PORT
TEST_REDEEM_REDIS_SOCKET=$(redeem_redis_socket)
export TEST_REDEEM_REDIS_SOCKET
export REDEEM_TEMPLATE_DB=redeem_template
psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $REDEEM_TEMPLATE_DB WITH (FORCE)"
psql -XqAt -d postgres -c "CREATE DATABASE $REDEEM_TEMPLATE_DB"
"$REDEEM_ROOT/scripts/migrate.sh" "$REDEEM_TEMPLATE_DB" >/dev/null

if [ "${REDEEM_ASAN:-0}" = 1 ]; then
  export REDEEM_MODULE=$REDEEM_BUILD/asan/mod_redeem.so
  log=$REDEEM_BUILD/test-asan.log
  echo "test: the suite again, with the module built with AddressSanitizer and UBSan"
else
  export REDEEM_MODULE=${REDEEM_MODULE:-$REDEEM_BUILD/mod_redeem.so}
  log=$REDEEM_BUILD/test.log
fi
cd "$REDEEM_ROOT"
# The whole output is kept; a failure's own lines are printed again at the
# end, after prove's summary, where a log cut to its last lines still has them.
status=0
mkdir -p "$REDEEM_BUILD"
prove -r ${PROVE_FLAGS:-} "${@:-t/}" 2>&1 | tee "$log" || status=$?
if [ "$status" != 0 ]; then
  echo "test: what the first failed tests said (the whole output is in $log):"
  awk '/^not ok|# +Failed test/ { n = 8 } n > 0 && /^(not ok|#)/ { print; n--; next } { n = 0 }' \
    "$log" | head -n 40
  sed -n '/^Test Summary Report/,$p' "$log"
fi
exit "$status"
