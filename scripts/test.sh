#!/usr/bin/env bash
# `make test`: the private PostgreSQL, a freshly migrated template database,
# then every test file under t/ (each file gets its own database and httpd).
set -euo pipefail
. "$(dirname "$0")/env.sh"

"$REDEEM_ROOT/scripts/pg.sh" start redeem >/dev/null
export REDEEM_TEMPLATE_DB=redeem_template
psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $REDEEM_TEMPLATE_DB WITH (FORCE)"
psql -XqAt -d postgres -c "CREATE DATABASE $REDEEM_TEMPLATE_DB"
"$REDEEM_ROOT/scripts/migrate.sh" "$REDEEM_TEMPLATE_DB" >/dev/null

export REDEEM_MODULE=${REDEEM_MODULE:-$REDEEM_BUILD/mod_redeem.so}
cd "$REDEEM_ROOT"
prove -r ${PROVE_FLAGS:-} "${@:-t/}"
