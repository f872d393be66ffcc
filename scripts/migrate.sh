#!/usr/bin/env bash
# Applies the migrations in sql/ that database $1 has not had yet, each in one
# transaction, in order. Uses the libpq environment (PGHOST, PGUSER, ...).
set -euo pipefail
db=${1:?usage: migrate.sh DATABASE}
sqldir=$(cd "$(dirname "$0")/../sql" && pwd)

applied() {
  psql -XqAt -d "$db" -c "SELECT version FROM schema_migrations" 2>/dev/null || true
}
done_versions=" $(applied | tr '\n' ' ') "
for file in "$sqldir"/[0-9][0-9][0-9]_*.sql; do
  version=$((10#$(basename "$file" | cut -c1-3)))
  case "$done_versions" in *" $version "*) continue ;; esac
  psql -XqAt -d "$db" -v ON_ERROR_STOP=1 --single-transaction -f "$file" >/dev/null
  echo "migrate: $db: applied $(basename "$file")"
done
