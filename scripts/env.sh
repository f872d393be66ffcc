# Sourced by the other scripts: where things live and the settings of the
# private PostgreSQL and httpd that `make run` and `make test` start.
REDEEM_ROOT=${REDEEM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REDEEM_BUILD=${REDEEM_BUILD:-$REDEEM_ROOT/build}
REDEEM_PG_PORT=${REDEEM_PG_PORT:-54329}
REDEEM_REDIS_PORT=${REDEEM_REDIS_PORT:-63790}
REDEEM_PG_BIN=${REDEEM_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
REDEEM_SECRETS=$REDEEM_BUILD/secrets
export REDEEM_ROOT REDEEM_BUILD REDEEM_PG_PORT REDEEM_REDIS_PORT REDEEM_PG_BIN REDEEM_SECRETS

# Who runs the servers: initdb refuses root, and httpd's children drop to User/Group.
if [ "$(id -u)" -eq 0 ]; then
  REDEEM_PG_OWNER=postgres
  REDEEM_USER=nobody
  REDEEM_GROUP=nogroup
else
  REDEEM_PG_OWNER=$(id -un)
  REDEEM_USER=$(id -un)
  REDEEM_GROUP=$(id -gn)
fi
export REDEEM_USER REDEEM_GROUP

# A random secret, made once and kept (mode 0600) in the build directory or DIR.
redeem_secret() {
  local dir=${3:-$REDEEM_SECRETS}
  local file=$dir/$1 bytes=${2:-32}
  if [ ! -s "$file" ]; then
    mkdir -p "$dir"
    chmod 0700 "$dir"
    (umask 077 && head -c "$bytes" /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# The private cluster's data directory must be reachable by its owner; when the
# checkout lives where that user cannot go (e.g. under /root), keep it elsewhere.
redeem_pg_dir() {
  local dir=$REDEEM_BUILD/pg
  if [ "$REDEEM_PG_OWNER" = postgres ] && id postgres >/dev/null 2>&1; then
    mkdir -p "$dir"
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      dir=/var/lib/mod_redeem/$(printf '%s' "$REDEEM_BUILD" | sha256sum | cut -c1-16)/pg
      mkdir -p "$dir"
      chown postgres: "$dir"
    fi
  else
    mkdir -p "$dir"
  fi
  printf '%s\n' "$dir"
}

# The private Redis's Unix socket: beside its files, unless httpd's children
# (REDEEM_USER) cannot reach the checkout (e.g. under /root) or the path is
# too long for a socket; then under /var/lib/mod_redeem like the cluster.
redeem_redis_socket() {
  local dir=$REDEEM_BUILD/redis
  if [ "${#dir}" -gt 90 ] ||
    { [ "$(id -u)" -eq 0 ] && ! runuser -u "$REDEEM_USER" -- test -x "$REDEEM_BUILD" 2>/dev/null; }; then
    dir=/var/lib/mod_redeem/$(printf '%s' "$REDEEM_BUILD" | sha256sum | cut -c1-16)/redis
  fi
  printf '%s/redis.sock\n' "$dir"
}

# From / : the postgres user may not be allowed into the current directory.
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Connection settings for psql as the cluster's superuser. The cluster's
# passwords live beside it, so they always belong to the cluster there is.
REDEEM_PG_DIR=$(redeem_pg_dir)
# The cluster's Unix socket (pg.sh starts it there): httpd's children reach a
# local database through it rather than TCP loopback (fewer copies and no
# TCP stack: make bench measured about 15% more profile requests a second).
REDEEM_PG_SOCKET=$REDEEM_PG_DIR/socket
export PGHOST=127.0.0.1 PGPORT=$REDEEM_PG_PORT PGUSER=postgres REDEEM_PG_DIR REDEEM_PG_SOCKET

# The module's host= for the private cluster: its socket when it listens
# there, else 127.0.0.1 (a cluster started before the socket existed).
redeem_db_host() {
  if [ -S "$REDEEM_PG_SOCKET/.s.PGSQL.$REDEEM_PG_PORT" ]; then
    printf '%s\n' "$REDEEM_PG_SOCKET"
  else
    printf '127.0.0.1\n'
  fi
}
PGPASSWORD=$(redeem_secret superuser_password 24 "$REDEEM_PG_DIR/secrets")
REDEEM_APP_USER=redeem_app
REDEEM_APP_PASSWORD=$(redeem_secret app_password 24 "$REDEEM_PG_DIR/secrets")
export PGPASSWORD REDEEM_APP_USER REDEEM_APP_PASSWORD
