#!/bin/bash
# CPU time per request of one endpoint, split between httpd's children,
# PostgreSQL's backends and wrk: where a request's cost goes, which a ratio
# of throughputs does not say. Runs against the servers a `BENCH_KEEP=1 make
# bench` (or bench/run.sh) left running.
#
#   bench/cpu.sh [PATH [MODE [SECONDS [CONNECTIONS]]]]
#     PATH /api/profile, MODE token (wrk.lua's modes: get, token, ...),
#     SECONDS 5, CONNECTIONS 16
#
# Prints requests/s and microseconds of user and system CPU per request of
# each side (from /proc/PID/stat of httpd's children and the postmaster's
# children, and wrk's own rusage).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/build/bench
path=${1:-/api/profile} mode=${2:-token} secs=${3:-5} conns=${4:-16}
port=${BENCH_PORT:-5091}
[ -f "$work/main/httpd.pid" ] || { echo "cpu.sh: no bench httpd running (BENCH_KEEP=1 make bench)" >&2; exit 1; }
hz=$(getconf CLK_TCK)

# ticks PID...: "user system" clock ticks summed over the processes.
ticks() {
  local u=0 s=0 pid a b
  for pid in "$@"; do
    read -r a b < <(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
    u=$((u + a)) s=$((s + b))
  done
  echo "$u $s"
}
httpd_pids=$(ps --ppid "$(cat "$work/main/httpd.pid")" -o pid=)
pg_pids=$(ps --ppid "$(head -n 1 "$work/pg/data/postmaster.pid")" -o pid=)
# shellcheck disable=SC2086
read -r hu0 hs0 < <(ticks $httpd_pids)
# shellcheck disable=SC2086
read -r pu0 ps0 < <(ticks $pg_pids)
out=$(env BENCH_MODE="$mode" BENCH_PATH="$path" BENCH_THREADS=2 BENCH_TOKENS="$work/tokens.txt" \
  BENCH_LOGINS="$work/logins.txt" /usr/bin/time -f 'WRK_CPU %U %S' \
  wrk -t2 -c"$conns" -d"${secs}s" -s "$root/bench/wrk.lua" "http://127.0.0.1:$port" 2>&1)
# shellcheck disable=SC2086
read -r hu1 hs1 < <(ticks $httpd_pids)
# shellcheck disable=SC2086
read -r pu1 ps1 < <(ticks $pg_pids)
requests=$(grep -o 'requests=[0-9]*' <<<"$out" | cut -d= -f2)
rps=$(grep -o 'rps=[0-9.]*' <<<"$out" | cut -d= -f2)
read -r wu ws < <(awk '/^WRK_CPU/ { print $2, $3 }' <<<"$out")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || { echo "cpu.sh: wrk made no request: $out" >&2; exit 1; }
perl -e '
  my ($n, $hz, $rps, $path, @v) = @ARGV;
  my $us = sub { $_[0] * 1e6 / $hz / $n };
  printf "%s: %d requests, %.0f/s; CPU per request (us): httpd user %.1f sys %.1f | postgres user %.1f sys %.1f | wrk user %.1f sys %.1f\n",
    $path, $n, $rps, $us->($v[0]), $us->($v[1]), $us->($v[2]), $us->($v[3]), $v[4] * 1e6 / $n, $v[5] * 1e6 / $n;
' "$requests" "$hz" "$rps" "$path" $((hu1 - hu0)) $((hs1 - hs0)) $((pu1 - pu0)) $((ps1 - ps0)) "$wu" "$ws"
