#!/bin/bash
# CPU time per request of one endpoint, split between httpd's children,
# PostgreSQL's backends and wrk: where a request's cost goes, which a ratio
# of throughputs does not say. Runs against the servers a `BENCH_KEEP=1 make
# bench` (or bench/run.sh) left running.
#
#   bench/cpu.sh [PATH [MODE [SECONDS [CONNECTIONS]]]]
#     PATH /api/profile, MODE token (wrk.lua's modes: get, token, ...),
#     SECONDS 5, CONNECTIONS 16; MODE redeem (PATH is then /redeem) mints
#     its own fresh codes first, 5,000 a second of the run.
#   BENCH_SERVER (main): off (main's virtual host with rate limits off),
#     redis or redis_tcp (the Redis limiter by its Unix socket or TCP), twin
#
# Prints requests/s and microseconds of user and system CPU per request of
# each side (from /proc/PID/stat of httpd's children, the postmaster's
# children and the bench's redis-server, and wrk's own rusage).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/build/bench
path=${1:-/api/profile} mode=${2:-token} secs=${3:-5} conns=${4:-16}
server=${BENCH_SERVER:-main} port=${BENCH_PORT:-5091} name=main
case $server in
  main) ;;
  off) port=$((port + 1)) ;;
  redis) port=$((port + 2)) name=redis ;;
  redis_tcp) port=$((port + 3)) name=redis_tcp ;;
  twin) port=$((port + 4)) name=twin ;;
  *) echo "cpu.sh: BENCH_SERVER is main, off, redis, redis_tcp or twin" >&2; exit 2 ;;
esac
[ -f "$work/$name/httpd.pid" ] || { echo "cpu.sh: no bench httpd $name running (BENCH_KEEP=1 make bench)" >&2; exit 1; }
hz=$(getconf CLK_TCK)
codes=()
if [ "$mode" = redeem ]; then
  base=http://127.0.0.1:$port
  admin_token=$(curl -sf -X POST "$base/api/login" -H 'Content-Type: application/json' \
    -d '{"email":"bench-admin@example.test","password":"BenchAdmin123"}' |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  : >"$work/cpu-codes.txt"
  for _ in $(seq $(((secs * 5000 + 99999) / 100000))); do
    curl -sf -X POST "$base/admin/generate-codes" -H 'Content-Type: application/json' \
      -H "Authorization: Bearer $admin_token" -d '{"count":100000}' |
      perl -MJSON::PP -0777 -ne 'print "$_\n" for @{decode_json($_)->{codes}}' >>"$work/cpu-codes.txt"
  done
  codes=(BENCH_CODES="$work/cpu-codes.txt" BENCH_OFFSET=0 BENCH_LIMIT=$((secs * 5000)))
fi

# ticks PID...: "user system" clock ticks summed over the processes.
ticks() {
  local u=0 s=0 pid a b
  for pid in "$@"; do
    read -r a b < <(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
    u=$((u + a)) s=$((s + b))
  done
  echo "$u $s"
}
httpd_pids=$(ps --ppid "$(cat "$work/$name/httpd.pid")" -o pid=)
pg_pids=$(ps --ppid "$(head -n 1 "$work/pg/data/postmaster.pid")" -o pid=)
redis_pid=$(cat "$work/redis/redis.pid" 2>/dev/null || true)
# shellcheck disable=SC2086
read -r hu0 hs0 < <(ticks $httpd_pids)
# shellcheck disable=SC2086
read -r pu0 ps0 < <(ticks $pg_pids)
# shellcheck disable=SC2086
read -r ru0 rs0 < <(ticks $redis_pid)
out=$(env BENCH_MODE="$mode" BENCH_PATH="$path" BENCH_THREADS=2 BENCH_TOKENS="$work/tokens.txt" \
  BENCH_LOGINS="$work/logins.txt" "${codes[@]}" /usr/bin/time -f 'WRK_CPU %U %S' \
  wrk -t2 -c"$conns" -d"${secs}s" -s "$root/bench/wrk.lua" "http://127.0.0.1:$port" 2>&1)
# shellcheck disable=SC2086
read -r hu1 hs1 < <(ticks $httpd_pids)
# shellcheck disable=SC2086
read -r pu1 ps1 < <(ticks $pg_pids)
# shellcheck disable=SC2086
read -r ru1 rs1 < <(ticks $redis_pid)
requests=$(grep -o 'requests=[0-9]*' <<<"$out" | cut -d= -f2)
rps=$(grep -o 'rps=[0-9.]*' <<<"$out" | cut -d= -f2)
read -r wu ws < <(awk '/^WRK_CPU/ { print $2, $3 }' <<<"$out")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || { echo "cpu.sh: wrk made no request: $out" >&2; exit 1; }
perl -e '
  my ($n, $hz, $rps, $path, @v) = @ARGV;
  my $us = sub { $_[0] * 1e6 / $hz / $n };
  printf "%s: %d requests, %.0f/s; CPU per request (us): httpd user %.1f sys %.1f | postgres user %.1f sys %.1f | redis-server user %.1f sys %.1f | wrk user %.1f sys %.1f\n",
    $path, $n, $rps, $us->($v[0]), $us->($v[1]), $us->($v[2]), $us->($v[3]), $us->($v[4]), $us->($v[5]), $v[6] * 1e6 / $n, $v[7] * 1e6 / $n;
' "$requests" "$hz" "$rps" "$path" $((hu1 - hu0)) $((hs1 - hs0)) $((pu1 - pu0)) $((ps1 - ps0)) $((ru1 - ru0)) $((rs1 - rs0)) "$wu" "$ws"
