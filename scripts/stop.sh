#!/usr/bin/env bash
# `make stop`: stop what `make run` started (httpd, then PostgreSQL).
set -uo pipefail
. "$(dirname "$0")/env.sh"
pidfile=$REDEEM_BUILD/run/httpd.pid

# Waits up to $1 tenths of a second for the httpd of $2 to exit: 0 once gone.
wait_gone() {
  for _ in $(seq "$1"); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

if [ -s "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
  # A graceful stop first: requests in flight end, and the event MPM's
  # ungraceful stop can crash a child that is closing a connection (httpd's
  # close_worker_sockets race; see _stop_group in t/lib/Test/Redeem.pm). A
  # stop still waiting after 10 s is made ungraceful.
  kill -WINCH "$pid"
  if ! wait_gone 100 "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    wait_gone 50 "$pid" || { echo "stop: httpd (pid $pid) still runs after SIGTERM" >&2; exit 1; }
  fi
  echo "stop: httpd stopped"
fi
"$REDEEM_ROOT/scripts/pg.sh" stop
