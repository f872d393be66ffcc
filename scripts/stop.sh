#!/usr/bin/env bash
# `make stop`: stop what `make run` started (httpd, then PostgreSQL).
set -uo pipefail
. "$(dirname "$0")/env.sh"
pidfile=$REDEEM_BUILD/run/httpd.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")"
  for _ in $(seq 50); do kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
  echo "stop: httpd stopped"
fi
"$REDEEM_ROOT/scripts/pg.sh" stop
