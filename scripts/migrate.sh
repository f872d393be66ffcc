#!/usr/bin/env bash
# Applies the migrations in sql/ that database $1 has not had yet, each in one
# transaction, in order, for the login role redeem_app (which must exist). Uses
# the libpq environment (PGHOST, PGUSER, ...). The work is done by
# scripts/redeem-migrate, the command the Debian package installs.
set -euo pipefail
db=${1:?usage: migrate.sh DATABASE}
exec "$(dirname "$0")/redeem-migrate" "$db"
