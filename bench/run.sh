#!/usr/bin/env bash
# `make bench` (issue 9): from a fresh clone, starts its own PostgreSQL, Redis
# and httpd (the module as built, with the settings of bench/httpd-bench.conf),
# fills users and codes in bulk through SQL, mints tokens, measures the
# ceilings (pgbench with the module's own statements, a trivial handler in the
# same httpd, raw argon2id; and the trivial handler after one read of a user,
# the floor of a read per request), then every endpoint, and prints one table:
# endpoint, requests/s, p50, p99, errors, ceiling, share, target, met. The
# table, with the machine's description, goes to bench/results/DATE-HOST.md
# (and the medians to .tsv, which a scale run compares against).
#
# The machine is shared and noisy: a figure counts only as a ratio to a
# ceiling measured in the same run, each figure is the median of
# BENCH_REPEAT short runs, and a figure and its ceiling are measured in turn
# (A B, B A, A B, ...: the order rotates), never one block after the other.
#
# Environment (default):
#   USERS (100000)          users filled by SQL; 10000000 for the scale run
#   CODES (100000)          codes filled by SQL (pgbench's codes, more are
#                           added when it needs them); 10000000 for the scale run
#   BENCH_SECONDS (3)       length of one short run
#   BENCH_PG_WARM (0.5)     seconds of each pgbench run not counted: its new
#                           connections' first statements (the module's
#                           pooled connections are warmed before it is measured)
#   BENCH_LIMITS_REPEAT (3 x BENCH_REPEAT)  turns of the rate-limit rows: their
#                           targets are a few percent, inside one turn's noise
#   BENCH_REPEAT (5)        short runs per figure, each in turn with its
#                           ceiling (the median of the pairs' ratios counts)
#   BENCH_CONNECTIONS (16)  wrk connections and pgbench clients of the main rows
#   BENCH_MANY_CONNECTIONS (1000)  the keep-alive row of /api/profile
#   BENCH_LOGIN_CONNECTIONS (2 x nproc)  concurrent logins, and the threads of
#                           the raw argon2id ceiling (the same parallelism)
#   BENCH_THREADS (2)       wrk -t
#   BENCH_PGBENCH_THREADS (BENCH_CONNECTIONS)  pgbench -j
#   BENCH_ONLY (all)        comma list of parts: redeem, get (trivial handler
#                           and its one-read twin, /bench/roundtrip;
#                           health, profile, subscription, the 1000-connection
#                           row), login, codes, limits, memory; also the row
#                           names profile, subscription, health, many
#   BENCH_MEM_REQUESTS (300000), BENCH_MEM_LOGINS (1000)   the memory row; the
#                           issue's figure is 1000000 and 10000 (the default
#                           when USERS >= 1000000), about 8 minutes more
#   BENCH_TOKEN_USERS (10000)  distinct users (and tokens) the load spreads over
#   BENCH_ARGON2 ("19456 2 1")  RedeemArgon2 of the server and of the ceiling
#   BENCH_HTTPD_CONF (bench/httpd-bench.conf)  the httpd settings measured
#   BENCH_MPM (event)       event or worker: the MPM of every httpd of the run,
#                           the trivial handler's included (conf/dev-server.conf);
#                           a worker run's results are DATE-HOST-worker.*
#   BENCH_LOG_LEVEL (warn)  httpd's LogLevel
#   BENCH_HTTPD_ENV ()      VAR=VALUE ... set for httpd only (e.g. GLIBC_TUNABLES=...)
#   BENCH_PORT (5091)       httpd ports PORT (rate limits on, shm), PORT+1 (off),
#                           PORT+2 (the Redis-limited httpd, by Redis's Unix
#                           socket), PORT+3 (the same by TCP)
#   BENCH_PG_PORT (54339), BENCH_REDIS_PORT (63799)   the bench's own servers
#   BENCH_SHARED_BUFFERS (2GB)  PostgreSQL's shared_buffers
#   BENCH_HUGE_PAGES (1)    1: PostgreSQL's shared memory in 2 MB huge pages
#                           (huge_pages = on), which the bench reserves
#                           (vm.nr_hugepages, as root) for its run only and
#                           gives back at the end; 0: huge_pages = off. Where
#                           the pages cannot be had it measures with them off
#                           and says so.
#   BENCH_DB_SOCKET (1)     1: the module and pgbench reach PostgreSQL by its
#                           Unix socket (as make run does), 0: by 127.0.0.1 (TCP)
#   BENCH_TWIN (1 when USERS >= 1000000, else 0)  the scale bar measured in
#                           this run: a twin database of BENCH_TWIN_SIZE
#                           (100000) users and codes in the same cluster, its
#                           own httpds (the same settings, ports PORT+4 to
#                           PORT+7: the API, rate limits off, Redis, Redis
#                           over TCP), and every figure of the codes, redeem,
#                           get, login and limits parts measured on both in
#                           turn (the twin's keys are small_...); each figure
#                           over its twin's, the median of the turns, must be
#                           within 15%
#   BENCH_COMPARE (at USERS >= 1000000: the newest bench/results/*.tsv of a run
#                           at 100000 users)  medians to compare with: shown
#                           beside the twin's, judged only for a figure
#                           without a twin (none when BENCH_TWIN=1)
#   BENCH_RESULTS (bench/results)   where the results go; BENCH_NO_RESULTS=1: nowhere
#   BENCH_KEEP (0)          1: leave the servers running at the end (the twin's
#                           too, on PORT+4 to PORT+7, for turns by hand), and the huge
#                           pages reserved for them, which the next run gives back
#   BENCH_PERF (0)          1: also `perf record -g` httpd and postgres for
#                           BENCH_SECONDS during /api/profile and POST /redeem
#                           (reports in build/bench/perf-*.txt)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The bench's own cluster, Redis and secrets: apart from `make run`'s and the
# tests' (build/pg, port 54329), which may be running at the same time.
export REDEEM_BUILD=$root/build/bench
export REDEEM_PG_PORT=${BENCH_PG_PORT:-54339}
export REDEEM_REDIS_PORT=${BENCH_REDIS_PORT:-63799}
. "$root/scripts/env.sh"

users=${USERS:-100000}
codes=${CODES:-100000}
secs=${BENCH_SECONDS:-3}
repeat=${BENCH_REPEAT:-5}
limits_repeat=${BENCH_LIMITS_REPEAT:-$((3 * repeat))}
conns=${BENCH_CONNECTIONS:-16}
many=${BENCH_MANY_CONNECTIONS:-1000}
login_conns=${BENCH_LOGIN_CONNECTIONS:-$((2 * $(nproc)))}
threads=${BENCH_THREADS:-2}
only=${BENCH_ONLY:-all}
if [ "$users" -ge 1000000 ]; then
  mem_requests=${BENCH_MEM_REQUESTS:-1000000}
  mem_logins=${BENCH_MEM_LOGINS:-10000}
else
  mem_requests=${BENCH_MEM_REQUESTS:-300000}
  mem_logins=${BENCH_MEM_LOGINS:-1000}
fi
token_users=${BENCH_TOKEN_USERS:-10000}
pg_warm=${BENCH_PG_WARM:-0.5}
argon2=${BENCH_ARGON2:-19456 2 1}
httpd_conf=$(realpath "${BENCH_HTTPD_CONF:-$root/bench/httpd-bench.conf}")
mpm=${BENCH_MPM:-event}
case $mpm in
  event) mpm_define=() ;;
  worker) mpm_define=(-DREDEEM_MPM_WORKER) ;;
  *) echo "bench: BENCH_MPM must be event or worker, not '$mpm'" >&2; exit 2 ;;
esac
port=${BENCH_PORT:-5091}
main_port=$port # $port is the twin's while a command runs on it (swap_twin)
off_port=$((port + 1))
redis_port=$((port + 2))
redis_tcp_port=$((port + 3))
twin_port=$((port + 4))
# The twin's httpds of the limits phase, as off_port, redis_port and
# redis_tcp_port are the main run's.
twin_off_port=$((port + 5))
twin_redis_port=$((port + 6))
twin_redis_tcp_port=$((port + 7))
results_dir=${BENCH_RESULTS:-$root/bench/results}
db=redeem_bench
twin=0
[ "$users" -ge 1000000 ] && twin=1
twin=${BENCH_TWIN:-$twin}
twin_size=${BENCH_TWIN_SIZE:-100000}
db_twin=redeem_bench_small
key_prefix= pg_suffix= # the main run's (the twin's: small_, -twin)
work=$REDEEM_BUILD
samples=$work/samples.tsv
facts=$work/facts.txt
password=BenchPassw0rd1
module=$root/build/mod_redeem.so
t0=$(date +%s)

say() { printf 'bench [%4ds] %s\n' $(($(date +%s) - t0)) "$*"; }
die() { echo "bench: $*" >&2; exit 1; }
fact() { printf '%s\t%s\n' "$1" "$2" >>"$facts"; }
calc() { perl -e "printf '%.${2:-0}f', $1"; }

# Which parts run: "all", or a comma list (row names map to their part).
want() {
  [ "$only" = all ] && return 0
  local part
  for part in ${only//,/ }; do
    case $part in profile | subscription | health | many | trivial) part=get ;; esac
    [ "$part" = "$1" ] && return 0
  done
  return 1
}

[ -f "$module" ] || die "no $module: run 'make build' first (make bench does)"
# A results file names the commit it measured: of a tree with changes not
# committed it would name code that was not what ran.
if [ "${BENCH_NO_RESULTS:-0}" != 1 ] && git -C "$root" rev-parse --git-dir >/dev/null 2>&1 &&
  ! git -C "$root" diff --quiet HEAD; then
  die "the tree has changes not committed (git status): commit them first, or set BENCH_NO_RESULTS=1"
fi
# The code measured is the tree as it starts: an edit while the run goes on
# (a note, a doc) does not change what the module was built from.
module_rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo '+changes')"
for tool in wrk pgbench perl curl gcc apxs redis-server; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
[ -f "$httpd_conf" ] || die "no $httpd_conf"
mkdir -p "$work" "$work/pgbench"
# Each row's latencies over all its runs ("µs count" lines; table.pl's p50
# and p99 are of these, not medians of the runs' own).
rm -rf "$work/hist"
mkdir -p "$work/hist"
# The audit check counts the access logs' lines: none of an earlier run.
rm -f "$work"/*/access.log
: >"$samples"
: >"$facts"
fact pg_warm "$pg_warm"

# Huge pages: at 10 million codes an insert into the unique index of random
# hashes is a descent over gigabytes of shared memory, and with 4 kB pages
# each one pays TLB misses and, in a backend new to those pages, page faults:
# 100,000 codes into 10 million took 4.5-5.4 s with them and 2.1-2.8 s in
# huge pages (docs/performance.md). The pages are reserved before PostgreSQL
# starts (it asks for the exact number it needs: shared_memory_size_in_huge_pages)
# and given back when it stops at the end.
hugepages_before=
hugepages_give_back() {
  [ -n "$hugepages_before" ] || return 0
  echo "$hugepages_before" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  hugepages_before=
}
hugepages_free() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }

# ---- Servers we start are stopped on the way out (unless BENCH_KEEP=1).
started_httpd=()
started_redis=0
cleanup() {
  local rc=$?
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    say "servers left running (BENCH_KEEP=1)"
    # The next run gives them back (below), once its PostgreSQL no longer
    # holds them: to it they would look like the machine's own.
    if [ -n "$hugepages_before" ]; then
      echo "$hugepages_before" >"$work/hugepages-before"
      say "PostgreSQL's huge pages stay reserved: vm.nr_hugepages $(cat /proc/sys/vm/nr_hugepages), $hugepages_before before the bench (the next run gives them back)"
    fi
    exit $rc
  fi
  local dir pid
  for dir in "${started_httpd[@]}"; do
    pid=$(cat "$dir/httpd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  [ "$started_redis" = 1 ] && "$root/scripts/redis.sh" stop
  # The filled database goes (5 GB at 10M users and codes); the cluster stays.
  psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $db_twin WITH (FORCE)" >/dev/null 2>&1 || true
  "$root/scripts/pg.sh" stop >/dev/null || true
  hugepages_give_back
  exit $rc
}
trap cleanup EXIT

# ---- Helpers built here: the trivial handler, raw argon2id, the SQL dump.
say "building bench/mod_bench_trivial.c, bench/argon2_bench.c, bench/sql_dump.c into $work"
apxs_inc="-I$(apxs -q INCLUDEDIR) $(apxs -q EXTRA_INCLUDES) $(apr-1-config --cppflags)"
# shellcheck disable=SC2086
gcc -std=gnu11 -O2 -g -fPIC -shared -Wall -Wextra $apxs_inc \
  -I"$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)" \
  -o "$work/mod_bench_trivial.so" "$root/bench/mod_bench_trivial.c" -lpq
gcc -std=gnu11 -O2 -g -Wall -Wextra -o "$work/argon2_bench" "$root/bench/argon2_bench.c" -largon2 -pthread
gcc -std=gnu11 -O2 -Wall -I"$root/mod_redeem" -o "$work/sql_dump" "$root/bench/sql_dump.c"
# sql_of NAME: the SQL of the module's statement NAME (statements.h).
sql_of() { awk -F'\t' -v n="$1" '$1 == n { print $2 }' <(cd "$work" && ./sql_dump); }
users_by_id_sql=$(sql_of users_by_id)

# ---- PostgreSQL: the private cluster of scripts/pg.sh in build/bench/pg,
# with bench/postgresql-bench.conf included, restarted with it.
pgdata=$REDEEM_PG_DIR/data
# Connections the run may hold at once: its httpds (three, and the twin's
# three) of ServerLimit children with DBDMax each, the one-read handler's
# pool of $conns in every child of the two that measure it, pgbench's
# $conns, and psql's. Never below bench/postgresql-bench.conf's 500.
bench_max_connections() {
  local children dbd_max need httpds=3
  [ "$twin" = 1 ] && httpds=6
  children=$(awk '$1 == "ServerLimit" { n = $2 } END { print n + 0 }' "$root/conf/tuning.conf")
  dbd_max=$(awk '$1 == "DBDMax" { n = $2 } END { print n + 0 }' "$root/conf/tuning.conf")
  need=$((httpds * children * dbd_max + 2 * children * conns + conns + 50))
  echo $((need > 500 ? need : 500))
}
write_bench_conf() {
  {
    cat "$root/bench/postgresql-bench.conf"
    echo "shared_buffers = ${BENCH_SHARED_BUFFERS:-2GB}"
    echo "max_connections = $(bench_max_connections)"
  } >"$work/postgresql-bench.conf"
  install -o "$REDEEM_PG_OWNER" -m 0644 "$work/postgresql-bench.conf" "$pgdata/bench.conf"
  grep -q "^include_if_exists = 'bench.conf'" "$pgdata/postgresql.conf" ||
    echo "include_if_exists = 'bench.conf'" >>"$pgdata/postgresql.conf"
}
# (Before scripts/pg.sh starts an existing cluster too: the settings of an
# earlier run of the bench must not keep it from starting.)
[ -f "$pgdata/PG_VERSION" ] && write_bench_conf
"$root/scripts/pg.sh" start - >/dev/null # the cluster and the role; the databases come below
write_bench_conf
# Its Unix socket (scripts/pg.sh starts it with one, in a directory httpd's
# user reaches): the module's way to it unless BENCH_DB_SOCKET=0.
pgsock=$REDEEM_PG_SOCKET
pg_ctl_bench() { as_pg_owner "$REDEEM_PG_BIN/pg_ctl" -D "$pgdata" -l "$REDEEM_PG_DIR/postgresql.log" -w -t 120 "$@" >/dev/null; }
# Restarted with the settings above, and huge_pages on its command line (a
# start by scripts/pg.sh, which knows nothing of the pages, keeps the default).
huge_pages=off
[ "${BENCH_HUGE_PAGES:-1}" = 1 ] && huge_pages=on
pg_ctl_bench stop
# Pages a kept run (BENCH_KEEP=1) reserved: given back at the end of this
# one, to what the machine had before that run.
if [ -f "$work/hugepages-before" ]; then
  hugepages_before=$(cat "$work/hugepages-before")
  rm -f "$work/hugepages-before"
fi
if [ "$huge_pages" = on ]; then
  need=$(as_pg_owner "$REDEEM_PG_BIN/postgres" -D "$pgdata" -C shared_memory_size_in_huge_pages 2>/dev/null || echo -1)
  if [ "$need" -gt 0 ] && [ "$(hugepages_free)" -lt "$need" ] && [ -w /proc/sys/vm/nr_hugepages ]; then
    [ -n "$hugepages_before" ] || hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
    echo $((hugepages_before + need - $(hugepages_free))) >/proc/sys/vm/nr_hugepages || true
  fi
  if [ "$need" -le 0 ] || [ "$(hugepages_free)" -lt "$need" ]; then
    say "huge pages: $need of 2 MB wanted, $(hugepages_free) to be had: PostgreSQL runs with huge_pages = off"
    hugepages_give_back
    huge_pages=off
  fi
fi
pg_ctl_bench -o "-k $pgsock -c huge_pages=$huge_pages" start
say "PostgreSQL $(psql -XqAt -d postgres -c 'SHOW server_version') on 127.0.0.1:$PGPORT ($pgdata)"
# Any database an earlier run left (BENCH_KEEP=1, or killed) goes.
psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP DATABASE IF EXISTS $db_twin WITH (FORCE)"

# ---- The fill: users (one argon2id hash of the configured cost for all) and
# codes whose code_hash is sha256('bench-' || n), the secondary indexes made
# after the rows (the same definitions), then VACUUM ANALYZE and a checkpoint.
read -r a2m a2t a2p <<<"$argon2"
user_hash=$("$work/argon2_bench" hash "$a2m" "$a2t" "$a2p" "$password")
# fill_db DB USERS CODES: a new database, migrated and filled.
fill_db() {
  psql -XqAt -d postgres -c "CREATE DATABASE $1"
  "$root/scripts/migrate.sh" "$1" >/dev/null
  psql -XqAt -d "$1" -v ON_ERROR_STOP=1 -v users="$2" -v codes="$3" -v hash="$user_hash" <<'SQL'
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;
CREATE TEMP TABLE saved AS
SELECT c.relname AS tbl, ic.relname AS idx, pg_get_indexdef(i.indexrelid) AS idxdef,
       con.conname, pg_get_constraintdef(con.oid) AS condef
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
 WHERE c.relname IN ('users', 'redeem_codes') AND c.relnamespace = 'public'::regnamespace
   AND NOT i.indisprimary;
SELECT CASE WHEN conname IS NULL THEN format('DROP INDEX %I', idx)
            ELSE format('ALTER TABLE %I DROP CONSTRAINT %I', tbl, conname) END FROM saved \gexec
INSERT INTO users (email, password_hash)
SELECT 'bench' || i || '@example.test', :'hash' FROM generate_series(1, :users) AS i;
INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
SELECT sha256(('bench-' || n)::bytea),
       substring(sha256(('s' || n)::bytea) || sha256(('t' || n)::bytea) FROM 1 FOR 52),
       '00000000-0000-4000-8000-000000000000'
  FROM generate_series(1, :codes) AS n;
SELECT CASE WHEN conname IS NULL THEN idxdef
            ELSE format('ALTER TABLE %I ADD CONSTRAINT %I %s', tbl, conname, condef) END FROM saved \gexec
VACUUM ANALYZE;
-- The fill's dirty pages written now (5 GB at 10M): left to the checkpointer,
-- they are written during the first rows measured.
CHECKPOINT;
SQL
}
say "filling $users users and $codes codes"
fill_start=$(date +%s)
fill_db "$db" "$users" "$codes"
fill_s=$(($(date +%s) - fill_start))
say "filled in ${fill_s} s ($(psql -XqAt -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))"))"
fact fill "$users users and $codes codes filled in $fill_s s"
if [ "$twin" = 1 ]; then
  fill_db "$db_twin" "$twin_size" "$twin_size"
  say "the twin: $db_twin, $twin_size users and $twin_size codes"
  fact twin_size "$twin_size"
fi
pg_filled=$codes # bench codes 1..pg_filled exist
pg_next=1        # the first one pgbench has not used

# ---- httpd: conf/dev-server.conf + build/bench/<run>/extra.conf, which
# includes bench/httpd-bench.conf and adds the bench's own pieces.
redeem_secret code_mac_key 32 >/dev/null
redeem_secret code_enc_key 32 >/dev/null
export REDEEM_MODULE=$module REDEEM_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn} REDEEM_ARGON2=$argon2
db_host=127.0.0.1
[ "${BENCH_DB_SOCKET:-1}" = 1 ] && db_host=$pgsock
export REDEEM_DB_PARAMS="host=$db_host port=$PGPORT dbname=$db user=$REDEEM_APP_USER password=$REDEEM_APP_PASSWORD gssencmode=disable"
export JWT_SECRET_KEY=$(redeem_secret bench_jwt_secret 32) REDEEM_JWT_SECRET_FILE=/nonexistent
export ADMIN_EMAIL=bench-admin@example.test ADMIN_PASSWORD=BenchAdmin123
export REDEEM_CODE_MAC_KEY_FILE=$REDEEM_SECRETS/code_mac_key REDEEM_CODE_ENC_KEY_FILE=$REDEEM_SECRETS/code_enc_key
limits_on="redeem-user redeem-ip login-email login-ip register-ip"

# start_httpd NAME PORT STORE(shm|redis|redis_tcp) [OFF_PORT]: the httpds
# named twin... serve the twin database.
start_httpd() {
  local name=$1 p=$2 store=$3 offp=${4:-} dir=$work/$1 scope dbname=$db
  [[ $name = twin* ]] && dbname=$db_twin
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$REDEEM_USER" "$dir"
  {
    echo "# Written by bench/run.sh: the measured settings, then the bench's own."
    echo "Include \"$httpd_conf\""
    echo "LoadModule bench_trivial_module \"$work/mod_bench_trivial.so\""
    # /bench/roundtrip: the trivial handler after one read of the user, the
    # floor of any endpoint that reads the database once per request.
    # A connection for each of the bench's connections, in every child: a
    # child may take most of them, and none waits for a database connection.
    # Only where the GET phase measures it (main, twin).
    if [ "$name" = main ] || [ "$name" = twin ]; then
      echo "BenchRoundtripDB \"\${REDEEM_DB_PARAMS}\" \"$users_by_id_sql\""
      echo "BenchRoundtripPool $conns"
    fi
    echo "# Rate limits checked on every request but never reached: a burst of a"
    echo "# million, then 1000 a second (the most whole milliseconds allow)."
    for scope in $limits_on; do echo "RedeemRateLimit $scope 1000000 1000"; done
    # A Redis on this host: by its Unix socket, as with PostgreSQL (less
    # kernel work on both sides); TCP for the reference row.
    [ "$store" = redis ] && echo "RedeemRateLimitStore unix://$(redeem_redis_socket)?db=0"
    [ "$store" = redis_tcp ] && echo "RedeemRateLimitStore redis://127.0.0.1:$REDEEM_REDIS_PORT/0"
    # The module's counters, for the facts below the table.
    echo '<Location "/bench/metrics">'
    echo '  SetHandler redeem-metrics'
    echo '</Location>'
    if [ -n "$offp" ]; then
      echo "Listen 127.0.0.1:$offp"
      echo "<VirtualHost 127.0.0.1:$offp>"
      echo "  # The same API with rate limits off."
      for scope in $limits_on; do echo "  RedeemRateLimit $scope 0 60"; done
      echo "</VirtualHost>"
    fi
  } >"$dir/extra.conf"
  local -a env=(REDEEM_PORT="$p" REDEEM_RUN_DIR="$dir" REDEEM_EXTRA_CONF="$dir/extra.conf"
    REDEEM_TUNING_CONF="$dir/none.conf" REDEEM_DB_PARAMS="${REDEEM_DB_PARAMS/dbname=$db /dbname=$dbname }")
  rm -f "$dir/error.log" "$dir/access.log"
  # shellcheck disable=SC2086
  env "${env[@]}" ${BENCH_HTTPD_ENV:-} /usr/sbin/apache2 -f "$root/conf/dev-server.conf" -DREDEEM_JWT_FROM_ENV "${mpm_define[@]}" -k start
  started_httpd+=("$dir")
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$p/api/health" && return 0
    sleep 0.1
  done
  die "httpd $name did not answer on port $p (see $dir/error.log)"
}
stop_httpd() {
  local dir=$work/$1 pid
  pid=$(cat "$dir/httpd.pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

say "httpd settings from $httpd_conf"
fact httpd_conf "$httpd_conf"
start_httpd main "$port" shm "$off_port"
base=http://127.0.0.1:$port
curl -sf -o /dev/null "$base/bench/trivial" || die "the trivial handler does not answer"
curl -sf -o /dev/null "$base/bench/roundtrip?1" || die "the one-round-trip handler does not answer"

# ---- Tokens and logins, minted here with the server's secret, naming the
# site as the server's own tokens do (aud: read from one login's token, on
# the main port: the port without rate limits is a <VirtualHost>, whose
# hashing slots are its own, and a login there left a fifth argon2 block in
# a child, over the memory phase's bound of one server's slots).
issued=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"email\":\"bench1@example.test\",\"password\":\"$password\"}" \
  "$base/api/login") || die "the login that reads the site's name failed"
site_aud=$(perl -MJSON::PP -MMIME::Base64=decode_base64url -e \
  'my $t = decode_json($ARGV[0])->{access_token}; print decode_json(decode_base64url((split /\./, $t)[1]))->{aud} // ""' \
  "$issued")
[ -n "$site_aud" ] || die "the server's token names no site (aud)"
tokens=$work/tokens.txt
perl "$root/bench/tokens.pl" "$JWT_SECRET_KEY" "$users" "$token_users" 21600 "$site_aud" >"$tokens"
logins=$work/logins.txt
perl "$root/bench/tokens.pl" --logins "$users" 1000 "$password" >"$logins"
say "minted $(wc -l <"$tokens") tokens"
first_token=$(head -n 1 "$tokens" | cut -d' ' -f2)
curl -sf -o /dev/null -H "Authorization: Bearer $first_token" "$base/api/profile" ||
  die "a minted token is refused by /api/profile"
if [ "$twin" = 1 ]; then
  start_httpd twin "$twin_port" shm "$twin_off_port"
  perl "$root/bench/tokens.pl" "$JWT_SECRET_KEY" "$twin_size" "$token_users" 21600 "$site_aud" \
    >"$work/tokens-twin.txt"
  curl -sf -o /dev/null -H "Authorization: Bearer $(head -n 1 "$work/tokens-twin.txt" | cut -d' ' -f2)" \
    "http://127.0.0.1:$twin_port/api/profile" || die "the twin refuses a minted token"
  perl "$root/bench/tokens.pl" --logins "$twin_size" 1000 "$password" >"$work/logins-twin.txt"
fi

# ---- Samples: "key rps p50_ms p99_ms errors requests" per short run.
sample() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$samples"; }

# counter NAME [PORT]: one of the module's counters on the httpd of PORT (the
# main one's by default).
counter() {
  local url=$base
  [ -n "${2:-}" ] && url=http://127.0.0.1:$2
  curl -sf "$url/bench/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

# wrk_run KEY PORT CONNECTIONS MODE PATH [VAR=VALUE ...]; sets $wrk_used.
# Its percentiles are wrk's, which wrk corrects for coordinated omission
# before the script reads them (stats_correct, with the run's mean interval
# between a connection's requests): a request that took L adds samples of
# L less one interval, less two, ... as if the requests a stall kept from
# being sent had been sent on time. One stall of 200 ms that holds all 16
# connections (a global one, e.g. a WAL flush behind the kernel's
# writeback) then makes about 1% of a 3 s run's samples, and its p99 reads
# 120-160 ms while the access log's %D has 16 slow requests.
wrk_run() {
  local key=$key_prefix$1 p=$2 c=$3 mode=$4 path=$5 out line
  shift 5
  local t=$threads
  [ "$c" -lt "$t" ] && t=$c
  out=$(env BENCH_MODE="$mode" BENCH_PATH="$path" BENCH_THREADS="$t" BENCH_TOKENS="$tokens" \
    BENCH_LOGINS="$logins" BENCH_HIST="$work/hist/$key.txt" "$@" \
    wrk -t"$t" -c"$c" -d"${secs}s" -s "$root/bench/wrk.lua" "http://127.0.0.1:$p" 2>&1) ||
    die "wrk failed for $key: $out"
  line=$(grep '^BENCH_RESULT' <<<"$out") || die "wrk printed no result for $key: $out"
  local -A v=()
  local kv
  for kv in ${line#BENCH_RESULT }; do v[${kv%%=*}]=${kv#*=}; done
  local errors=$((v[connect] + v[read] + v[write] + v[status] + v[timeout]))
  sample "$key" "${v[rps]}" "${v[p50_ms]}" "${v[p99_ms]}" "$errors" "${v[requests]}"
  wrk_used=$((v[used] * t))
  last_rps=${v[rps]} last_p99=${v[p99_ms]}
  local detail=""
  if [ "$errors" -gt 0 ]; then
    detail=" (connect ${v[connect]}, read ${v[read]}, write ${v[write]}, status>=400 ${v[status]}, timeout ${v[timeout]})"
    local nrun
    nrun=$(grep -c "^$key	" "$samples")
    fact "errors_${key}_$nrun" "run $nrun: $errors$detail"
  fi
  printf '  %-16s %9.1f req/s  p50 %7.2f ms  p99 %8.2f ms  errors %d%s\n' "$key" "${v[rps]}" "${v[p50_ms]}" "${v[p99_ms]}" "$errors" "$detail"
}

# ---- pgbench with the module's own statements ($work/sql_dump), their
# parameters $1, $2, ... replaced by pgbench expressions.
# bind SQL EXPR...: $i becomes the i-th EXPR (every one must be used).
bind() {
  perl -e 'my $sql = shift; my @e = @ARGV; my %used;
           $sql =~ s{\$(\d+)}{ $used{$1} = 1; defined $e[$1 - 1] ? "(" . $e[$1 - 1] . ")" : die "no expression for \$$1\n" }ge;
           die "unused expressions\n" if keys %used != @e; print $sql, "\n"' "$@"
}
code_expr="encode(sha256(('bench-' || :n)::bytea), 'hex')"
redeem_sql=$(bind "$(sql_of redeem)" "$code_expr" ":uid" "'127.0.0.1'" "'pgbench-' || :n" "0" "'bench' || :uid || '@example.test'" "253402300799000000")
# The token's user as a request alone reads it (user_reads.c): its id
# repeated to 16 array elements.
user_sql=$(bind "$users_by_id_sql" "'{' || repeat((:uid)::text || ',', 15) || (:uid)::text || '}'")
next_code='\set k :k + 1
\set n :base + :client_id + :nc * :k'
# The users are those the tokens were minted for (tokens.pl's spread): which
# users, and how often each, decides how many updates of users are HOT.
# pgbench_scripts SUFFIX USERS TOKENS: redeem, user_by_id and pair for a
# database of USERS users, whose tokens are in the file TOKENS.
pgbench_scripts() {
  local token_count pick_user
  token_count=$(wc -l <"$3")
  pick_user="\\set uid 1 + (random(0, $((token_count - 1))) * $2) / $token_count"
  printf '%s\n%s\n%s;\n' "$next_code" "$pick_user" "$redeem_sql" >"$work/pgbench/redeem$1.sql"
  printf '%s\n%s;\n' "$pick_user" "$user_sql" >"$work/pgbench/user_by_id$1.sql"
  printf '%s\n%s\n%s;\n%s;\n' "$next_code" "$pick_user" "$user_sql" "$redeem_sql" >"$work/pgbench/pair$1.sql"
}
pgbench_scripts "" "$users" "$tokens"
[ "$twin" = 1 ] && pgbench_scripts -twin "$twin_size" "$work/tokens-twin.txt"

# topup_pg_codes NEED: at least NEED unused bench codes after pg_next.
topup_pg_codes() {
  local need=$1
  [ $((pg_filled - pg_next)) -ge "$need" ] && return 0
  local upto=$((pg_next + need + 20000))
  psql -XqAt -d "$db" -v ON_ERROR_STOP=1 -c "INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
    SELECT sha256(('bench-' || n)::bytea),
           substring(sha256(('s' || n)::bytea) || sha256(('t' || n)::bytea) FROM 1 FOR 52),
           '00000000-0000-4000-8000-000000000000'
      FROM generate_series($((pg_filled + 1)), $upto) AS n" >/dev/null
  pg_filled=$upto
}

# pgbench_run KEY SCRIPT: prepared statements, $conns clients, as the module's
# role, one pgbench thread a client (BENCH_PGBENCH_THREADS): with two threads
# for 16 clients, a loaded machine starved pgbench's client side, and
# POST /redeem (two statements) came out at 120-160% of SQL_REDEEM alone.
pg_threads=${BENCH_PGBENCH_THREADS:-$conns}
pg_rate=4000 # a guess of pgbench's rate, corrected after each run
pg_redeemed=0 # transactions of the scripts that redeem a code
pgbench_run() {
  local key=$key_prefix$1 script=$2 consumes=0
  case $script in redeem | pair) consumes=1 ;; esac
  # Fresh bench codes for every transaction (topped up before the phase;
  # here only when a run went faster than foreseen).
  [ $consumes = 1 ] && topup_pg_codes $((pg_rate * secs * 2 + 100 * conns))
  rm -f "$work"/pgbench/log.*
  local out
  out=$(cd "$work/pgbench" && PGHOST=$db_host PGUSER=$REDEEM_APP_USER PGPASSWORD=$REDEEM_APP_PASSWORD \
    pgbench -n -M prepared -c "$conns" -j "$pg_threads" -T "$secs" -f "$script$pg_suffix.sql" \
    -D k=-1 -D base="$pg_next" -D nc="$conns" -l --log-prefix=log "$db" 2>&1) ||
    die "pgbench failed for $key: $out"
  local failed
  failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' <<<"$out")
  # The rate of the run's steady state, as the module's is measured: each
  # pgbench opens its clients' connections anew, and a new backend's first
  # statements are slow (its caches; PostgreSQL plans a prepared statement's
  # first five runs afresh: 5.6-7.1 ms for the first, 0.9-2.1 ms for the 2nd
  # to 5th, against 0.41-0.53 ms warm), where the module's pooled
  # connections were warmed before any measured run. So the transactions
  # that completed (the log's time_epoch and time_us) in the last
  # $secs - BENCH_PG_WARM seconds count, over that window; their latencies
  # (µs, third column) go to the row's histogram. Also the most
  # transactions of one client, and all of them (the audit's count).
  local stats
  stats=$(cat "$work"/pgbench/log.* | perl -ane '
    BEGIN { ($warm, $hist) = splice @ARGV, 0, 2 }
    my $end = $F[4] * 1e6 + $F[5]; push @t, [$end, $F[2]];
    $first = $end - $F[2] if !defined $first || $end - $F[2] < $first;
    $last = $end if !defined $last || $end > $last;
    $m{$F[0]} = $F[1] if !defined $m{$F[0]} || $F[1] > $m{$F[0]};
    END { my $from = $first + $warm * 1e6; my (@l, %h);
          for (@t) { next if $_->[0] < $from; push @l, $_->[1]; $h{$_->[1]}++ }
          my $n = @l; @l = sort { $a <=> $b } @l; my $top = 0;
          for (values %m) { $top = $_ if $_ > $top }
          open my $fh, ">>", $hist or die "$hist: $!"; print $fh "$_ $h{$_}\n" for keys %h;
          printf "%.1f %.3f %.3f %d %d %d", $n / (($last - $from) / 1e6), $l[int(($n - 1) * 0.5)] / 1000,
            $l[int(($n - 1) * 0.99)] / 1000, $top + 1, $n, scalar @t }' "$pg_warm" "$work/hist/$key.txt")
  local tps p50 p99 most count all
  read -r tps p50 p99 most count all <<<"$stats"
  [ -n "$all" ] && [ "$count" -gt 0 ] || die "no transactions in pgbench's log for $key: $out"
  if [ $consumes = 1 ]; then
    pg_next=$((pg_next + conns * (most + 2)))
    pg_rate=$(calc "$tps")
    # Each transaction redeems one code: the audit check counts them.
    pg_redeemed=$((pg_redeemed + all))
  fi
  sample "$key" "$tps" "$p50" "$p99" "${failed:-0}" "$count"
  printf '  %-16s %9.1f tx/s   p50 %7.2f ms  p99 %8.2f ms  failed %d\n' "$key" "$tps" "$p50" "$p99" "${failed:-0}"
}

# ---- Codes through the API: the timed 100,000 (median of BENCH_REPEAT)
# and the supply of POST /redeem (each request a fresh code).
admin_token=$(curl -sf -X POST "$base/api/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
codes_file=$work/codes.txt
: >"$codes_file"
api_next=0 # lines of codes.txt already handed to wrk
generate_codes() { # COUNT [KEY]: appends to codes.txt; KEY: record the time
  local count=$1 key=${2:+$key_prefix$2} ms
  ms=$(curl -sf -o "$work/generated.json" -w '%{time_total}' -X POST "$base/admin/generate-codes" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $admin_token" \
    -d "{\"count\":$count}") || die "POST /admin/generate-codes failed"
  perl -MJSON::PP -0777 -ne 'print "$_\n" for @{decode_json($_)->{codes}}' "$work/generated.json" >>"$codes_file"
  if [ -n "$key" ]; then
    sample "$key" "$(calc "$count / $ms" 1)" "$(calc "$ms * 1000" 1)" "$(calc "$ms * 1000" 1)" 0 1
    printf '  %-16s %d codes in %.3f s\n' "$key" "$count" "$ms"
  fi
}
# ensure_codes RATE: enough fresh codes for one run at RATE/s.
ensure_codes() {
  local need
  need=$(calc "$1 * $secs * 1.5 + 2000")
  while [ $(($(wc -l <"$codes_file") - api_next)) -lt "$need" ]; do
    generate_codes 100000
  done
}
# redeem_run KEY PORT [CONNECTIONS]: the rate at the measured connections
# sizes the next run's supply.
redeem_rate=3000
redeem_run() {
  local c=${3:-$conns}
  ensure_codes "$redeem_rate"
  # wrk formats a request per code it is given, before the clock starts:
  # give it three times what the last rate needs, not the whole supply.
  local limit=$(($(wc -l <"$codes_file") - api_next)) enough
  enough=$(calc "$redeem_rate * $secs * 3 + 4000")
  [ "$limit" -le "$enough" ] || limit=$enough
  # The row's runs are also timed inside httpd (server_time), with the
  # time their requests waited for one of their child's pooled connections.
  local log="" from=0 waited0 acquires0 waited1 acquires1
  if [ "$1" = redeem ]; then
    log=$work/main/access.log
    [ -n "$key_prefix" ] && log=$work/twin/access.log
    from=$(wc -l <"$log")
    waited0=$(counter redeem_db_acquire_wait_seconds_total "$2") acquires0=$(counter redeem_db_acquires_total "$2")
  fi
  wrk_run "$1" "$2" "$c" redeem - BENCH_CODES="$codes_file" BENCH_OFFSET="$api_next" BENCH_LIMIT="$limit"
  api_next=$((api_next + wrk_used))
  if [ "$c" = "$conns" ]; then redeem_rate=$(calc "$last_rps"); fi
  [ -z "$log" ] && return 0
  waited1=$(counter redeem_db_acquire_wait_seconds_total "$2") acquires1=$(counter redeem_db_acquires_total "$2")
  server_time "$log" "$from" "${key_prefix}redeem_server" \
    "$(calc "(${waited1:-0} - ${waited0:-0}) * 1000 / ((${acquires1:-0} - ${acquires0:-0}) || 1)" 2)" "$last_p99"
}

# server_time LOG FROM KEY WAIT WRK_P99: the p50, p99 and p99.9 (ms) of the
# time httpd itself took for the POST /redeem lines of its access log after
# line FROM (%D: from the request line read to the response sent), the share
# of them the busiest child served (%P), WAIT (the mean ms a request waited
# for a pooled connection) and wrk's p99 of the run, appended to
# $work/KEY.txt. Against wrk's figures of the same run they tell what is
# httpd's and PostgreSQL's from what is the client's side of the loopback
# and the scheduling of both ends; the share and the wait show a run whose
# connections crowded into one child, which then has more busy connections
# than database connections (docs/performance.md).
server_time() {
  tail -n +"$(($2 + 1))" "$1" | awk '$3 == "/redeem" { print $(NF - 1), $NF }' | sort -n |
    awk -v wait="$4" -v client="$5" '{ v[NR] = $1; n[$2]++ } END { if (!NR) exit; for (p in n) if (n[p] > top) top = n[p];
         printf "%.2f %.2f %.2f %.0f %s %s\n", v[int((NR - 1) * 0.5) + 1] / 1000, v[int((NR - 1) * 0.99) + 1] / 1000,
         v[int((NR - 1) * 0.999) + 1] / 1000, 100 * top / NR, wait, client }' >>"$work/$3.txt"
}
# server_time_fact KEY: the medians of server_time's runs and each run's
# figures, as a fact.
server_time_fact() {
  [ -s "$work/$1.txt" ] || return 0
  fact "$1" "$(perl -ane 'push @{$c[$_]}, $F[$_] for 0 .. 2; push @runs, sprintf "%.1f/%.1f ms, %d%%, %.2f ms", @F[5, 1, 3, 4];
    END { my @m = map { my @s = sort { $a <=> $b } @$_; $s[$#s / 2] } @c;
          printf "p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms (medians of %d runs); each run\x27s p99 at wrk/inside httpd, "
            . "the busiest child\x27s share of its requests, and their mean wait for a pooled connection: %s",
            @m, scalar @{$c[0]}, join "; ", @runs }' "$work/$1.txt")"
}

# warm_redeem PORT PHASE: runs of /redeem at four times the connections, not
# measured (its sample is named warm_redeem and no table row reads it): the
# first redemptions on each pooled connection of a freshly started httpd are
# slow in PostgreSQL (a new backend's caches of the tables, partitions and
# triggers the statement touches, the plans of its first runs), which at 12
# connections a child cost the first runs a p99 of 130-190 ms against 14-20
# ms once warm; a warm-up of /api/profile, which makes every connection
# ready but redeems nothing, did not help (docs/performance.md).
# Again until every pooled connection has been used (its backend readied:
# redeem_db_backends_readied_total against the pool's size): a child that had
# few of a run's connections leaves some of its pooled connections unused,
# and their first use in a measured run is slow (74-139 ms p99s in such
# runs). The counter also counts a backend opened anew for a pooled
# connection (a reconnect), so it equals first uses only where none is
# reopened: the settings measured keep every connection (DBDExptime 0).
# Where the pool's size is unknown, until a run readies none.
warm_redeem() {
  local ready before tries size
  size=$(pool_size "$1")
  ready=$(counter redeem_db_backends_readied_total "$1")
  for tries in 1 2 3 4 5 6 7 8; do
    before=$ready
    redeem_run warm_redeem "$1" $((conns * 4))
    ready=$(counter redeem_db_backends_readied_total "$1")
    ready=${ready:-0}
    if [ -n "$size" ]; then
      [ "$ready" -ge "$size" ] && break
    elif [ "$tries" -gt 1 ] && [ "$ready" = "$before" ]; then
      break
    fi
  done
  # Keyed by phase too: the main httpd is warmed before the redeem phase and
  # again before the limits phase, and each warm-up is worth its own line.
  fact "${key_prefix}warm_$2_$1" "$ready backends readied (of ${size:-?} pooled) after $tries warm-up runs"
}

# pool_size PORT: the database connections the httpd serving PORT pools, its
# children times the DBDMax of the settings measured ($httpd_conf and the
# files it includes); nothing when that is not known.
pool_size() {
  local name per children
  case $(($1 - main_port)) in
    0 | 1) name=main ;; 2) name=redis ;; 3) name=redis_tcp ;; 4 | 5) name=twin ;;
    6) name=twin_redis ;; 7) name=twin_redis_tcp ;; *) return 0 ;;
  esac
  per=$(sed "s|\${REDEEM_ROOT}|$root|g" "$httpd_conf" |
    awk '$1 == "Include" { f = $2; gsub(/"/, "", f); while ((getline l < f) > 0) print l; next } { print }' |
    awk '$1 == "DBDMax" { m = $2 } END { print m }')
  [ -n "$per" ] && [ -f "$work/$name/httpd.pid" ] || return 0
  children=$(ps --ppid "$(cat "$work/$name/httpd.pid")" -o pid= | wc -l)
  echo $((children * per))
}

# settle_writes: every write of the phases before on disk (a checkpoint, then
# the kernel's dirty pages), before a phase whose latency is measured. The
# kernel writes dirty pages back 30 s after they were dirtied
# (vm.dirty_expire_centisecs): 100,000 codes made just before left 170 MB,
# whose writeback then held PostgreSQL's WAL fdatasync 170 ms in the
# measured runs (bpftrace: blkdev_issue_flush under ext4_sync_file), every
# commit with it, and wrk's p99 of the run went to 120-150 ms (see
# wrk_run: its correction for the requests a stall kept from being sent).
settle_writes() {
  psql -XqAt -d "$db" -c "CHECKPOINT" >/dev/null
  sync
}

. "$root/bench/turns.sh" # in_turn

# ---- The twin (BENCH_TWIN): the scale run's database of BENCH_TWIN_SIZE
# users and codes, with its own httpd, tokens, codes and counters. on_twin
# CMD runs CMD with the twin's in place of the main ones (its samples are
# small_KEY); both I CMD... runs the commands in turn (in_turn) and, with a
# twin, each on the twin too, in the same rotation.
twin_vars="db port off_port redis_port redis_tcp_port base admin_token tokens logins codes_file api_next pg_next pg_filled pg_rate pg_redeemed redeem_rate key_prefix pg_suffix"
if [ "$twin" = 1 ]; then
  twin_db=$db_twin twin_base=http://127.0.0.1:$twin_port twin_tokens=$work/tokens-twin.txt
  twin_logins=$work/logins-twin.txt
  twin_admin_token=$(curl -sf -X POST "$twin_base/api/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  twin_codes_file=$work/codes-twin.txt twin_api_next=0 twin_pg_next=1 twin_pg_filled=$twin_size
  twin_pg_rate=$pg_rate twin_pg_redeemed=0 twin_redeem_rate=$redeem_rate twin_key_prefix=small_ twin_pg_suffix=-twin
  : >"$twin_codes_file"
fi
swap_twin() {
  local v t
  for v in $twin_vars; do
    t=${!v}
    eval "$v=\$twin_$v"
    printf -v "twin_$v" '%s' "$t"
  done
}
on_twin() {
  swap_twin
  eval "$1"
  swap_twin
}
both() {
  local i=$1 c
  shift
  local -a cmds=()
  for c in "$@"; do
    cmds+=("$c")
    # Each figure's twin right after it: the pair's ratio sees the least drift.
    [ "$twin" = 1 ] && cmds+=("on_twin $(printf %q "$c")")
  done
  in_turn "$i" "${cmds[@]}"
}

if want codes || want redeem || want limits || want memory; then
  say "POST /admin/generate-codes, 100000 codes a call"
  # BENCH_REPEAT calls (each side, in a scale run), as every figure: with
  # three, one slow call of either side moved the scale bar's median.
  for i in $(seq "$repeat"); do both "$i" 'generate_codes 100000 codes100k'; done
fi

# Optional profiles: perf record of httpd's children and postgres during a load.
perf_during() { # NAME: records system-wide call graphs for BENCH_SECONDS
  [ "${BENCH_PERF:-0}" = 1 ] || return 0
  perf record -q -g -a -o "$work/perf-$1.data" -- sleep "$secs" >/dev/null 2>&1 &
  perf_pid=$!
}
perf_report() {
  [ "${BENCH_PERF:-0}" = 1 ] || return 0
  wait "$perf_pid" || true
  # Only our processes: other httpds and PostgreSQLs may run on the machine.
  local httpd_pids pg_pids report
  httpd_pids=$(ps --ppid "$(cat "$work/main/httpd.pid")" -o pid= | paste -sd,)
  pg_pids=$(ps --ppid "$(head -n 1 "$pgdata/postmaster.pid")" -o pid= | paste -sd,)
  report() { perf report -i "$work/perf-$1.data" --no-children -g none --stdio "${@:2}" 2>/dev/null | grep -v '^#' | sed '/^$/d'; }
  {
    echo "## CPU of the whole machine by command (others' work included)"
    report "$1" --sort comm | head -n 12
    echo "## our httpd's children, by library (share of their CPU)"
    report "$1" --pid "$httpd_pids" --percentage relative --sort dso | head -n 16
    echo "## our httpd's children, hottest symbols"
    report "$1" --pid "$httpd_pids" --percentage relative --sort dso,sym | head -n 40
    echo "## our PostgreSQL, hottest symbols"
    report "$1" --pid "$pg_pids" --percentage relative --sort dso,sym | head -n 40
  } >"$work/perf-$1.txt" || true
  say "perf profile of $1: $work/perf-$1.txt"
}

# ---- Phase: POST /redeem against pgbench of its own statement.
if want redeem; then
  # Every code the phase will redeem exists and is vacuumed before it starts
  # (rows inserted during a run would bring autovacuum into the measurement).
  redeem_ready() {
    topup_pg_codes $((repeat * 2 * secs * pg_rate * 3 / 2))
    ensure_codes $((redeem_rate * (repeat + 2)))
    warm_redeem "$port" redeem
    psql -XqAt -d "$db" -c "VACUUM ANALYZE redeem_codes" >/dev/null
    settle_writes
  }
  say "POST /redeem: the connections of each freshly started httpd warmed ($((conns * 4)) connections, ${secs}s, not measured)"
  redeem_ready
  [ "$twin" = 1 ] && on_twin redeem_ready
  say "POST /redeem vs pgbench of SQL_REDEEM, $conns connections, $repeat x ${secs}s in turn"
  rm -f "$work/redeem_server.txt" "$work/small_redeem_server.txt"
  for i in $(seq "$repeat"); do
    both "$i" 'pgbench_run pg_redeem redeem' 'redeem_run redeem "$port"' 'pgbench_run pg_pair pair'
  done
  server_time_fact redeem_server
  [ "$twin" = 1 ] && server_time_fact small_redeem_server
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    perf_during redeem
    redeem_run perf_redeem "$port"
    perf_report redeem
  fi
fi

# ---- Phase: the cheap GETs against the trivial handler; /api/profile at
# 16 and at 1000 connections in the same turns.
if want get; then
  say "GET endpoints vs the trivial handler, $conns connections ($many for /api/profile many), $repeat x ${secs}s in turn"
  reads0=$(counter redeem_user_reads_total) statements0=$(counter redeem_user_read_statements_total)
  for i in $(seq "$repeat"); do
    both "$i" 'wrk_run trivial "$port" "$conns" get /bench/trivial' \
      'wrk_run roundtrip "$port" "$conns" get /bench/roundtrip?1' \
      'wrk_run health "$port" "$conns" get /api/health' \
      'wrk_run profile "$port" "$conns" token /api/profile' \
      'wrk_run subscription "$port" "$conns" token /api/subscription' \
      'wrk_run profile_many "$port" "$many" token /api/profile' \
      'pgbench_run pg_user user_by_id'
  done
  reads=$(($(counter redeem_user_reads_total) - reads0))
  statements=$(($(counter redeem_user_read_statements_total) - statements0))
  fact user_reads "$reads requests read their token's user in $statements statements ($(calc "$reads / ($statements || 1)" 2) a statement; user_reads.c)"
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    perf_during profile
    wrk_run perf_profile "$port" "$conns" token /api/profile
    perf_report profile
  fi
fi

# ---- Phase: logins against raw argon2id at the same parallelism.
if want login; then
  say "POST /api/login vs raw argon2id ($argon2), $login_conns at once, $repeat x ${secs}s in turn"
  argon2_run() {
    local out rate
    out=$("$work/argon2_bench" verify "$login_conns" "$secs" "$a2m" "$a2t" "$a2p")
    rate=$(sed -nE 's/.*rate=([0-9.]+).*/\1/p' <<<"$out")
    sample argon2 "$rate" 0 0 0 "$(sed -nE 's/^verifications=([0-9]+).*/\1/p' <<<"$out")"
    printf '  %-16s %9.1f verifications/s\n' argon2 "$rate"
  }
  # With a twin, its logins in the same turns (argon2id alone reads no
  # database: it has no twin).
  login_one='wrk_run login "$port" "$login_conns" login -'
  login_cmds=(argon2_run "$login_one")
  [ "$twin" = 1 ] && login_cmds+=("on_twin $(printf %q "$login_one")")
  for i in $(seq "$repeat"); do
    in_turn "$i" "${login_cmds[@]}"
  done
fi

# ---- Phase: the cost of rate limiting on POST /redeem: off, shm, Redis.
if want limits; then
  "$root/scripts/redis.sh" start
  started_redis=1
  start_httpd redis "$redis_port" redis
  start_httpd redis_tcp "$redis_tcp_port" redis_tcp
  if [ "$twin" = 1 ]; then
    start_httpd twin_redis "$twin_redis_port" redis
    start_httpd twin_redis_tcp "$twin_redis_tcp_port" redis_tcp
  fi
  say "POST /redeem: the connections of each httpd warmed ($((conns * 4)) connections, ${secs}s, not measured)"
  limits_ready() {
    ensure_codes $((redeem_rate * (limits_repeat * 4 + 8)))
    for p in "$port" "$off_port" "$redis_port" "$redis_tcp_port"; do warm_redeem "$p" limits; done
    psql -XqAt -d "$db" -c "VACUUM ANALYZE redeem_codes" >/dev/null
  }
  limits_ready
  [ "$twin" = 1 ] && on_twin limits_ready
  settle_writes
  say "POST /redeem: limits off vs shm vs Redis (Unix socket, TCP), $conns connections, $limits_repeat x ${secs}s in turn"
  calls0=$(counter redeem_ratelimit_redis_calls_total "$redis_port")
  trips0=$(counter redeem_ratelimit_redis_round_trips_total "$redis_port")
  for i in $(seq "$limits_repeat"); do
    both "$i" 'redeem_run limit_off "$off_port"' 'redeem_run limit_shm "$port"' \
      'redeem_run limit_redis "$redis_port"' 'redeem_run limit_redis_tcp "$redis_tcp_port"'
  done
  calls=$(($(counter redeem_ratelimit_redis_calls_total "$redis_port") - ${calls0:-0}))
  trips=$(($(counter redeem_ratelimit_redis_round_trips_total "$redis_port") - ${trips0:-0}))
  fact redis_round_trips "the Redis limiter by its socket: $calls checks sent in $trips round trips ($(calc "$calls / ($trips || 1)" 2) a round trip; redis.c)"
  # BENCH_KEEP=1 keeps them for bench/cpu.sh (BENCH_PORT=PORT+2 or +3).
  if [ "${BENCH_KEEP:-0}" != 1 ]; then
    stop_httpd redis
    stop_httpd redis_tcp
  fi
fi
# The twin's httpds have nothing more to measure (BENCH_KEEP=1 keeps them for
# turns by hand).
if [ "$twin" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
  for name in twin twin_redis twin_redis_tcp; do stop_httpd "$name"; done
fi

# ---- Every redemption attempt has its audit row, exactly (after the memory
# phase too, whose /redeem of a used code is refused 409). API.md: a row for
# each attempt; a malformed one (400) and one answered without a database
# (503, 429 after a key's first) have none.
# audit_check: on the database of the run (or of the twin, on_twin), against
# the access logs of the httpds that served it: the API's 'success' rows are
# the /redeem lines answered 200, each used code of the API has exactly one,
# its refusals' rows are the lines answered 403, 404, 409 or 410; pgbench's
# 'success' rows are its redeeming transactions, and it has no other.
audit_check() {
  local logs=() log names=(main redis redis_tcp) name
  [ -n "$key_prefix" ] && names=(twin twin_redis twin_redis_tcp)
  for name in "${names[@]}"; do
    log=$work/$name/access.log
    [ -f "$log" ] && logs+=("$log")
  done
  local ok_lines refused_lines other_lines
  read -r ok_lines refused_lines other_lines <<<"$(cat "${logs[@]}" |
    awk '$3 == "/redeem" { if ($5 == 200) ok++; else if ($5 ~ /^(403|404|409|410)$/) refused++; else other++ }
         END { print ok + 0, refused + 0, other + 0 }')"
  local success refused not_one used_codes pg_success pg_other
  read -r success refused not_one used_codes pg_success pg_other <<<"$(psql -XqAt -F' ' -d "$db" -v ON_ERROR_STOP=1 -c "
    WITH api AS (SELECT outcome, target FROM audit_log WHERE event = 'redeem' AND request_id NOT LIKE 'pgbench%'),
         rows_of AS (SELECT target, count(*) AS n FROM api WHERE outcome = 'success' GROUP BY target)
    SELECT (SELECT count(*) FROM api WHERE outcome = 'success'),
           (SELECT count(*) FROM api WHERE outcome <> 'success'),
           (SELECT count(*) FROM redeem_codes c LEFT JOIN rows_of r ON r.target = 'code ' || c.id
             WHERE c.used_at IS NOT NULL AND c.batch_id <> '00000000-0000-4000-8000-000000000000'
               AND coalesce(r.n, 0) <> 1),
           (SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL AND batch_id <> '00000000-0000-4000-8000-000000000000'),
           (SELECT count(*) FROM audit_log WHERE event = 'redeem' AND request_id LIKE 'pgbench%' AND outcome = 'success'),
           (SELECT count(*) FROM audit_log WHERE event = 'redeem' AND request_id LIKE 'pgbench%' AND outcome <> 'success')")"
  local wrong=()
  [ "$success" = "$ok_lines" ] || wrong+=("success rows $success, 200s $ok_lines")
  [ "$not_one" = 0 ] || wrong+=("$not_one used codes without exactly one success row")
  [ "$success" = "$used_codes" ] || wrong+=("success rows $success, codes used $used_codes")
  [ "$refused" = "$refused_lines" ] || wrong+=("refusal rows $refused, 403/404/409/410s $refused_lines")
  [ "$pg_success" = "$pg_redeemed" ] || wrong+=("pgbench: success rows $pg_success, transactions $pg_redeemed")
  [ "$pg_other" = 0 ] || wrong+=("pgbench: $pg_other rows not success")
  local verdict=ok
  [ ${#wrong[@]} = 0 ] || verdict=$(IFS=';'; echo "${wrong[*]}")
  fact "${key_prefix}audit" "API: $success success rows for $ok_lines /redeem lines answered 200 and $used_codes codes used, each with one; $refused refusal rows for $refused_lines lines answered 403/404/409/410 ($other_lines other lines: no row due); pgbench: $pg_success success rows for $pg_redeemed transactions, $pg_other others"
  fact "${key_prefix}audit_verdict" "$verdict"
  say "audit of $db: $verdict"
}

# ---- Phase: resident memory of each child over mixed requests and logins.
# Prints "pid rss_kib hashing_kib" of the main httpd's children: hashing_kib
# is the resident part of the hashing slots' argon2 blocks (mappings of
# exactly the argon2 memory, which each slot keeps and reuses; at most
# RedeemHashConcurrency of them), told apart so that growth elsewhere shows.
rss_children() {
  local parent pid rss
  parent=$(cat "$work/main/httpd.pid")
  ps --ppid "$parent" -o pid=,rss= | while read -r pid rss; do
    echo "$pid $rss $(awk -v m="$a2m" '$1 == "Size:" { hit = ($2 == m) } $1 == "Rss:" && hit { s += $2 } END { print s + 0 }' "/proc/$pid/smaps" 2>/dev/null || echo 0)"
  done
}
if want memory; then
  say "memory: $mem_requests mixed requests ($conns connections) and $mem_logins logins ($login_conns) at once"
  used_code=$(head -n 1 "$work/codes.txt")
  # Warm-up (a run of this phase alone): every worker thread of every child
  # serves (BENCH_MANY_CONNECTIONS at once), so that their stacks, pools and
  # connections reach their working size before the first measurement.
  env BENCH_MODE=mixed BENCH_THREADS="$threads" BENCH_TOKENS="$work/tokens.txt" BENCH_USED_CODE="$used_code" \
    wrk -t"$threads" -c"$many" -d"$((secs * 2))s" -s "$root/bench/wrk.lua" "$base" >/dev/null 2>&1 &
  env BENCH_MODE=login BENCH_THREADS=1 BENCH_LOGINS="$work/logins.txt" \
    wrk -t1 -c"$login_conns" -d"${secs}s" -s "$root/bench/wrk.lua" "$base" >/dev/null 2>&1
  wait
  rss_children >"$work/rss-before.txt"
  : >"$work/mem-logins.txt"
  : >"$work/rss-series.txt"
  (
    n=0
    while [ "$n" -lt "$mem_logins" ]; do
      out=$(env BENCH_MODE=login BENCH_THREADS=1 BENCH_LOGINS="$work/logins.txt" \
        wrk -t1 -c"$login_conns" -d"${secs}s" -s "$root/bench/wrk.lua" "$base" 2>&1)
      r=$(sed -nE 's/^BENCH_RESULT requests=([0-9]+).*/\1/p' <<<"$out")
      e=$(sed -nE 's/.* status=([0-9]+).*/\1/p' <<<"$out")
      n=$((n + ${r:-0}))
      echo "$r $e" >>"$work/mem-logins.txt"
    done
  ) &
  logins_pid=$!
  n=0 errors=0
  while [ "$n" -lt "$mem_requests" ]; do
    out=$(env BENCH_MODE=mixed BENCH_THREADS="$threads" BENCH_TOKENS="$work/tokens.txt" BENCH_USED_CODE="$used_code" \
      wrk -t"$threads" -c"$conns" -d"$((secs * 2))s" -s "$root/bench/wrk.lua" "$base" 2>&1)
    r=$(sed -nE 's/^BENCH_RESULT requests=([0-9]+).*/\1/p' <<<"$out")
    n=$((n + ${r:-0}))
    echo "$n $(rss_children | awk '{ printf "%s:%s ", $1, $2 }')" >>"$work/rss-series.txt"
  done
  wait "$logins_pid"
  logins_done=$(awk '{ s += $1 } END { print s + 0 }' "$work/mem-logins.txt")
  login_errors=$(awk '{ s += $2 } END { print s + 0 }' "$work/mem-logins.txt")
  rss_children >"$work/rss-after.txt"
  # Per child present before and after: RSS before, after, growth (KiB).
  # pid, RSS before, after, growth outside the hashing blocks, the blocks after (KiB)
  mem=$(join <(sort "$work/rss-before.txt") <(sort "$work/rss-after.txt") |
    awk '{ printf "%s %s %s %d %s\n", $1, $2, $4, ($4 - $5) - ($2 - $3), $5 }')
  fact mem_children "$(tr '\n' ';' <<<"$mem")"
  # The bound of the hashing blocks: RedeemHashConcurrency (the module's
  # default 4 unless the measured settings say otherwise) times the memory.
  slots=$({ grep -hoE '^\s*RedeemHashConcurrency\s+[0-9]+' "$httpd_conf" "$root/conf/tuning.conf" 2>/dev/null || true; } | awk '{ print $2 }' | tail -n 1)
  fact mem_hash_bound_kib "$((${slots:-4} * a2m))"
  fact mem_counts "$n mixed requests, $logins_done logins ($login_errors refused)"
  fact mem_before "$(tr '\n' ';' <"$work/rss-before.txt")"
  fact mem_after "$(tr '\n' ';' <"$work/rss-after.txt")"
  say "memory: $n mixed requests, $logins_done logins; per child pid, RSS before, after, growth outside the hashing blocks, the blocks (KiB):"
  sed 's/^/  /' <<<"$mem"
fi

if want redeem || want limits || want memory; then
  audit_check
  if [ "$twin" = 1 ] && { want redeem || want limits; }; then on_twin audit_check; fi
fi

# ---- The table, the machine, the results file.
host=$(hostname -s)
stamp=$(date -u +%Y-%m-%dT%H%MZ)
machine=$(
  echo "- host: $host, $(nproc) CPUs ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | sort -u | paste -sd/)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory"
  echo "- kernel $(uname -r); $(/usr/sbin/apache2 -v | sed -nE 's/^Server version: //p') ($mpm MPM); PostgreSQL $(psql -XqAt -d postgres -c 'SHOW server_version'); $(redis-server --version | awk '{ print $1, $3 }'); $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'); libargon2 $(dpkg-query -W -f='${Version}' libargon2-1 2>/dev/null)"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (wrk, pgbench, httpd and PostgreSQL share the machine; other work on it is noise)"
  echo "- database reached at $db_host (module and pgbench alike); PostgreSQL's shared_buffers $(psql -XqAt -d postgres -c 'SHOW shared_buffers'), huge_pages $(psql -XqAt -d postgres -c 'SHOW huge_pages') (bench/postgresql-bench.conf, BENCH_HUGE_PAGES)"
  echo "- USERS=$users CODES=$codes BENCH_SECONDS=$secs BENCH_REPEAT=$repeat connections $conns / $many; logins $login_conns at once; RedeemArgon2 $argon2; BENCH_ONLY=$only"
  if [ "$twin" = 1 ]; then
    echo "- the twin (BENCH_TWIN): $twin_size users and $twin_size codes in the same cluster, its own httpds of the same settings; the codes, redeem, get, login and limits parts measured on both in turn"
  fi
  echo "- httpd settings: $httpd_conf (module $module_rev)"
)
compare=${BENCH_COMPARE:-}
if [ -z "$compare" ] && [ "$users" -ge 1000000 ]; then
  # A run of the same MPM: only a worker run's files carry its name.
  compare=$(grep -l '^#users	100000$' "$results_dir"/*.tsv 2>/dev/null | sort |
    if [ "$mpm" = event ]; then grep -v -- '-worker\.tsv$'; else grep -- "-$mpm\.tsv\$"; fi | tail -n 1 || true)
fi
table=$(perl "$root/bench/table.pl" --samples "$samples" --facts "$facts" --conns "$conns" --many "$many" \
  --login-conns "$login_conns" --users "$users" --codes "$codes" --argon2 "$argon2" \
  --tsv "$work/medians.tsv" --hist "$work/hist" ${compare:+--compare "$compare"})
echo
echo "$table"
if [ "${BENCH_NO_RESULTS:-0}" != 1 ]; then
  mkdir -p "$results_dir"
  out=$results_dir/$stamp-$host
  [ "$mpm" = event ] || out=$out-$mpm
  {
    echo "# make bench, $stamp"
    echo
    echo "$machine"
    echo
    echo "$table"
    echo
    echo "## httpd settings measured ($(basename "$httpd_conf"))"
    echo
    echo '```apache'
    grep -v '^\s*#' "$httpd_conf" | sed '/^\s*$/d'
    echo '```'
  } >"$out.md"
  cp "$work/medians.tsv" "$out.tsv"
  echo
  say "results: $out.md"
fi
say "done in $(($(date +%s) - t0)) s"
