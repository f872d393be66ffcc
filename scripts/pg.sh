#!/usr/bin/env bash
# The private PostgreSQL cluster of `make run` / `make test`.
#   pg.sh start [DB]   create the cluster once, start it, create DB (default redeem)
#                      and apply the migrations in sql/ to it; DB "-": none
#   pg.sh stop         stop the cluster
#   pg.sh restart      restart it (fast: every session ended), for t/faults/restart.t
#   pg.sh status       exit 0 when it runs
set -euo pipefail
. "$(dirname "$0")/env.sh"

pgdir=$REDEEM_PG_DIR
data=$pgdir/data
log=$pgdir/postgresql.log

pg_ctl() { as_pg_owner "$REDEEM_PG_BIN/pg_ctl" "$@"; }

# -k: the Unix socket httpd's children use (a world-traversable directory).
# TimeZone UTC whatever the host's (initdb writes the host's into the
# cluster): the tests' own SQL works out expiries by calendar months as the
# module does, in UTC, and in a zone with daylight saving time ten months
# on from now differ by an hour. A database's own setting still wins
# (redeem.t TEST 50g sets one).
server_options() { printf '%s' "-k $REDEEM_PG_SOCKET -c TimeZone=UTC"; }

create_cluster() {
  echo "pg: creating a private cluster in $data"
  local pwfile=$pgdir/pwfile
  (umask 077 && printf '%s\n' "$PGPASSWORD" >"$pwfile")
  [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
  as_pg_owner "$REDEEM_PG_BIN/initdb" -D "$data" -U postgres --pwfile="$pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$pgdir/initdb.log"
  rm -f "$pwfile"
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $REDEEM_PG_PORT
unix_socket_directories = ''
max_connections = 300
shared_buffers = 512MB
log_min_messages = warning
CONF
}

start() {
  local db=${1:-redeem}
  [ -f "$data/PG_VERSION" ] || create_cluster
  if ! pg_ctl -D "$data" status >/dev/null 2>&1; then
    touch "$log"
    mkdir -p "$REDEEM_PG_SOCKET"
    chmod 0755 "$REDEEM_PG_SOCKET"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$log" "$REDEEM_PG_SOCKET"
    pg_ctl -D "$data" -l "$log" -w -t 60 -o "$(server_options)" start >/dev/null
    echo "pg: started on 127.0.0.1:$REDEEM_PG_PORT (log: $log)"
  fi
  # The password on stdin, not on psql's command line (ps shows that).
  psql -XqAt -d postgres -v ON_ERROR_STOP=1 -v app="$REDEEM_APP_USER" <<SQL
\\set pw '$REDEEM_APP_PASSWORD'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SQL
  [ "$db" = - ] && return 0
  if [ -z "$(psql -XqAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    psql -XqAt -d postgres -c "CREATE DATABASE \"$db\""
  fi
  "$REDEEM_ROOT/scripts/migrate.sh" "$db"
}

stop() {
  if [ -f "$data/PG_VERSION" ] && pg_ctl -D "$data" status >/dev/null 2>&1; then
    pg_ctl -D "$data" -m fast -w stop >/dev/null
    echo "pg: stopped"
  fi
}

restart() {
  pg_ctl -D "$data" -l "$log" -m fast -w -t 60 -o "$(server_options)" restart >/dev/null
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  restart) restart ;;
  status) [ -f "$data/PG_VERSION" ] && pg_ctl -D "$data" status >/dev/null 2>&1 ;;
  *) echo "usage: $0 start [DB] | stop | restart | status" >&2; exit 2 ;;
esac
