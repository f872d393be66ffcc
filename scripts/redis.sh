#!/usr/bin/env bash
# The private Redis of `make test` (and of `make run` with REDIS_URL unset it
# is not used): Debian's redis-server on 127.0.0.1:$REDEEM_REDIS_PORT, no
# persistence, its files in build/redis. It also listens on a Unix socket
# (redeem_redis_socket in env.sh: build/redis/redis.sock where httpd's children
# can reach it), mode 0777 like the loopback port every local user can reach:
# it holds rate-limit counters, no secret.
#   redis.sh start   start it unless it runs (exit 0 either way)
#   redis.sh stop    stop it if it runs
#   redis.sh status  exit 0 when it runs
set -euo pipefail
. "$(dirname "$0")/env.sh"

dir=$REDEEM_BUILD/redis
pidfile=$dir/redis.pid

running() {
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  running && return 0
  mkdir -p "$dir"
  local socket
  socket=$(redeem_redis_socket)
  mkdir -p "$(dirname "$socket")"
  chmod 0755 "$(dirname "$socket")"
  redis-server --bind 127.0.0.1 --port "$REDEEM_REDIS_PORT" --save '' --appendonly no \
    --unixsocket "$socket" --unixsocketperm 777 \
    --daemonize yes --pidfile "$pidfile" --dir "$dir" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$REDEEM_REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis: did not start on 127.0.0.1:$REDEEM_REDIS_PORT (see $dir/redis.log)" >&2
  return 1
}

stop() {
  running || return 0
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 start | stop | status" >&2; exit 2 ;;
esac
