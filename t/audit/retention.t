# The audit trail in monthly partitions (sql/004_audit_partitions.sql): the
# layout a new database gets, where rows land (their month's partition, else
# the default one, moved out when the month is prepared), who may do what
# (the module's role only INSERTs; the maintenance role only calls
# audit_prepare() and audit_drop_before(); nobody UPDATEs or DELETEs), whole
# months dropped and recorded, the current month never, redeem-retention end
# to end, and the migration of an audit table that already has rows.
#
# db_init and db_check run as the superuser; SET ROLE makes them act as
# redeem_app or redeem_maint. t_try(sql) runs a statement as the current role
# and rolls it back, answering 'ok' or 'SQLSTATE: message'. Months are named
# relative to the current one (UTC): t_month(-2) is audit_log_YYYY_MM of two
# months ago, t_month_start(-2) its first instant, t_day(-2) its first day.
use lib 't/lib';
use Test::Redeem;

sub retention { return "$ENV{REDEEM_ROOT}/scripts/redeem-retention" }
sub migrate { return "$ENV{REDEEM_ROOT}/scripts/redeem-migrate" }

# The database of the blocks about migrating a table that has rows.
sub legacy_db { return var('DB_NAME') . '_legacy' }

# The name, first day and last day of the month $k months from the current one.
sub month { return sql("SELECT t_month($_[0])") }
sub first_day { return sql("SELECT t_day($_[0])") }
sub last_day { return sql("SELECT t_day($_[0] + 1)::date - 1") }

# $got must be $want, line by line.
sub lines_are {
    my ($got, @want) = @_;
    my $want = join("\n", @want) . "\n";
    die "got:\n${got}wanted:\n$want" unless $got eq $want;
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a new database: audit_log partitioned by range of occurred_at, its migration's month and three more, a default partition
--- db_init
CREATE FUNCTION t_try(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  BEGIN
    EXECUTE q;
    RAISE SQLSTATE 'T0001';
  EXCEPTION WHEN SQLSTATE 'T0001' THEN
    RETURN 'ok';
  END;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;
CREATE FUNCTION t_month_start(k integer) RETURNS timestamptz LANGUAGE sql STABLE
  RETURN (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k)) AT TIME ZONE 'UTC';
CREATE FUNCTION t_month(k integer) RETURNS text LANGUAGE sql STABLE
  RETURN 'audit_log_' || to_char(t_month_start(k) AT TIME ZONE 'UTC', 'YYYY_MM');
CREATE FUNCTION t_day(k integer) RETURNS text LANGUAGE sql STABLE
  RETURN to_char(t_month_start(k) AT TIME ZONE 'UTC', 'YYYY-MM-DD');
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT p.partstrat, a.attname, p.partdefid::regclass
  FROM pg_partitioned_table p
  JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
 WHERE p.partrelid = 'audit_log'::regclass;
WITH m AS (SELECT date_trunc('month', applied_at AT TIME ZONE 'UTC') AS m FROM schema_migrations WHERE version = 4)
SELECT string_agg(partition_name || ' ' || to_char(range_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
                  || ' ' || to_char(range_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ',' ORDER BY range_from)
       = (SELECT string_agg('audit_log_' || to_char(s, 'YYYY_MM') || ' ' || to_char(s, 'YYYY-MM-DD HH24:MI:SS')
                            || ' ' || to_char(s + interval '1 month', 'YYYY-MM-DD HH24:MI:SS'), ',' ORDER BY s)
            FROM m, generate_series(m.m, m.m + interval '3 months', interval '1 month') s)
  FROM audit_partitions() WHERE NOT is_default;
SELECT count(*) FROM pg_class WHERE relname IN ('audit_log_legacy');
--- db_check_out
r|occurred_at|audit_log_default
t
0



=== TEST 2: every partition has PRIMARY KEY (id), its part of the index on occurred_at and the append-only row trigger; audit_log keeps its identity and both triggers
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT count(*) FILTER (WHERE pk AND occurred AND trig), count(*) FROM (
  SELECT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = 'id'
                  WHERE i.indrelid = c.oid AND i.indisprimary AND i.indkey::text = a.attnum::text) AS pk,
         EXISTS (SELECT FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid
                  WHERE h.inhparent = 'audit_log_occurred_at'::regclass AND i.indrelid = c.oid) AS occurred,
         EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'audit_log_append_only_row'
                    AND t.tgenabled = 'O') AS trig
    FROM audit_partitions() p JOIN pg_class c ON c.oid = p.partition_name::regclass) x;
SELECT attidentity FROM pg_attribute WHERE attrelid = 'audit_log'::regclass AND attname = 'id';
SELECT tgname, tgtype & 1 FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass ORDER BY 1;
--- db_check_out
5|5
a
audit_log_append_only|0
audit_log_append_only_row|1



=== TEST 3: redeem_app: INSERT of the module's columns of audit_log and nothing else (not occurred_at, not id: migration 013), no right on any partition, not a member of redeem_maint
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT coalesce(string_agg(p, ','), 'none') FROM unnest('{SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER}'::text[]) p
 WHERE has_table_privilege('redeem_app', 'audit_log', p);
SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'audit_log'::regclass AND attnum > 0 AND NOT attisdropped
   AND has_column_privilege('redeem_app', 'audit_log', attname, 'INSERT');
SELECT count(*) FROM audit_partitions() a, unnest('{SELECT,INSERT,UPDATE,DELETE,TRUNCATE}'::text[]) p
 WHERE has_table_privilege('redeem_app', a.partition_name, p);
SELECT pg_has_role('redeem_app', 'redeem_maint', 'MEMBER'), pg_has_role('redeem_maint', 'redeem_app', 'MEMBER');
--- db_check_out
none
event,actor_id,target,client_addr,outcome,request_id
0
f|f



=== TEST 4: redeem_maint: a NOLOGIN role with no right on any table, EXECUTE on the three functions; they run as audit_log's owner; PUBLIC may call none
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolbypassrls FROM pg_roles WHERE rolname = 'redeem_maint';
SELECT count(*) FROM pg_class c, unnest('{SELECT,INSERT,UPDATE,DELETE,TRUNCATE}'::text[]) p
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
   AND has_table_privilege('redeem_maint', c.oid, p);
SELECT f, has_function_privilege('redeem_app', f, 'EXECUTE'), has_function_privilege('redeem_maint', f, 'EXECUTE'),
       p.prosecdef, p.proowner = (SELECT relowner FROM pg_class WHERE oid = 'audit_log'::regclass),
       EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0)
  FROM unnest('{audit_prepare(integer),audit_drop_before(date),audit_partitions(),audit_create_months(timestamptz[])}'::text[]) f
  JOIN pg_proc p ON p.oid = f::regprocedure;
--- db_check_out
f|f|f|f|t|f
0
audit_prepare(integer)|f|t|t|t|f
audit_drop_before(date)|f|t|t|t|f
audit_partitions()|f|t|f|t|f
audit_create_months(timestamptz[])|f|f|f|t|f



=== TEST 5: the module's audit row (codes generated) lands in the current month's partition
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 3}
--- error_code: 201
--- save_json
CODE1=codes.0
--- db_check
SELECT tableoid::regclass::text = t_month(0), event, outcome FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
--- db_check_out
t|codes_generated|success



=== TEST 6: so does a redemption's, written by the same statement that claims the code
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE1"}
--- error_code: 200
--- db_check
SELECT tableoid::regclass::text = t_month(0), event, outcome, actor_id = $USER_ID_alice
  FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
--- db_check_out
t|redeem|success|t



=== TEST 7: redeem_app cannot DELETE, UPDATE or TRUNCATE, through audit_log or a partition, nor write a row's time or id (migration 013): only the facts the module writes
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_app;
SELECT t_try('DELETE FROM audit_log');
SELECT t_try('UPDATE audit_log SET outcome = ''forged''');
SELECT t_try('TRUNCATE audit_log');
SELECT t_try('DELETE FROM audit_log_default');
SELECT replace(t_try(format('UPDATE %I SET outcome = ''forged''', t_month(0))), t_month(0), 'MONTH');
SELECT replace(t_try(format('TRUNCATE %I', t_month(0))), t_month(0), 'MONTH');
SELECT t_try('INSERT INTO audit_log (occurred_at, event, outcome) VALUES (now() - interval ''2 years'', ''t_backdated'', ''forged'')');
SELECT t_try('INSERT INTO audit_log (id, event, outcome) OVERRIDING SYSTEM VALUE VALUES (1, ''t_forged_id'', ''forged'')');
SELECT t_try('INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id) VALUES (''t_probe'', 1, ''t'', ''127.0.0.1'', ''ok'', ''r'')');
--- db_check_out
42501: permission denied for table audit_log
42501: permission denied for table audit_log
42501: permission denied for table audit_log
42501: permission denied for table audit_log_default
42501: permission denied for table MONTH
42501: permission denied for table MONTH
42501: permission denied for table audit_log
42501: permission denied for table audit_log
ok



=== TEST 8: redeem_app cannot DROP, ALTER, DETACH, touch the triggers, add a partition, or call the functions
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_app;
SELECT t_try('DROP TABLE audit_log');
SELECT t_try('DROP TABLE audit_log_default');
SELECT t_try('ALTER TABLE audit_log DETACH PARTITION audit_log_default');
SELECT t_try('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
SELECT t_try('DROP TRIGGER audit_log_append_only_row ON audit_log');
SELECT t_try('ALTER TABLE audit_log ADD COLUMN note text');
SELECT split_part(t_try('CREATE TABLE t_mine PARTITION OF audit_log FOR VALUES FROM (''2001-01-01'') TO (''2001-02-01'')'), ':', 1);
SELECT t_try('SELECT audit_prepare(1)');
SELECT t_try('SELECT audit_drop_before(''2001-01-01'')');
SELECT t_try('SELECT audit_partitions()');
SELECT t_try('SELECT audit_create_months(ARRAY[now()])');
--- db_check_out
42501: must be owner of table audit_log
42501: must be owner of table audit_log_default
42501: must be owner of table audit_log
42501: must be owner of table audit_log
42501: must be owner of relation audit_log
42501: must be owner of table audit_log
42501
42501: permission denied for function audit_prepare
42501: permission denied for function audit_drop_before
42501: permission denied for function audit_partitions
42501: permission denied for function audit_create_months



=== TEST 9: not even the owner may UPDATE or DELETE: the statement trigger on audit_log, the row trigger on a partition
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT t_try('DELETE FROM audit_log WHERE false');
SELECT t_try('UPDATE audit_log SET outcome = ''forged''');
SELECT t_try(format('DELETE FROM %I', t_month(0)));
SELECT t_try(format('UPDATE %I SET outcome = ''forged''', t_month(0)));
SELECT count(*) FROM audit_log WHERE event IN ('codes_generated', 'redeem') AND outcome = 'success';
--- db_check_out
P0001: audit_log is append-only
P0001: audit_log is append-only
P0001: audit_log is append-only
P0001: audit_log is append-only
2



=== TEST 10: redeem_maint can only call its functions: no SELECT, INSERT, DELETE, DROP, no internal function
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_maint;
SELECT t_try('SELECT count(*) FROM audit_log');
SELECT t_try('INSERT INTO audit_log (event, outcome) VALUES (''x'', ''y'')');
SELECT t_try('DELETE FROM audit_log');
SELECT t_try('DROP TABLE audit_log_default');
SELECT t_try('ALTER TABLE audit_log DETACH PARTITION audit_log_default');
SELECT t_try('SELECT audit_create_months(ARRAY[now()])');
SELECT t_try('SELECT audit_prepare(1)');
--- db_check_out
42501: permission denied for table audit_log
42501: permission denied for table audit_log
42501: permission denied for table audit_log
42501: must be owner of table audit_log_default
42501: must be owner of table audit_log
42501: permission denied for function audit_create_months
ok



=== TEST 11: an INSERT (by the owner: redeem_app may not date its rows) for months that have no partition lands in the default partition
--- db_init
INSERT INTO audit_log (occurred_at, event, outcome)
VALUES (t_month_start(-7) + interval '3 days', 't_old', 'a'),
       (t_month_start(-5), 't_old', 'b'),
       (t_month_start(-4) - interval '1 microsecond', 't_old', 'c');
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT tableoid::regclass, outcome FROM audit_log WHERE event = 't_old' ORDER BY outcome;
--- db_check_out
audit_log_default|a
audit_log_default|b
audit_log_default|c



=== TEST 12: the maintenance never ran: the module's row of a month without partition lands in the default partition
--- db_init
DO $$
DECLARE
  before text;
BEGIN
  EXECUTE format('DROP TABLE IF EXISTS %I, %I', t_month(0), t_month(1));
  -- A template migrated in an earlier month than this block (a run that
  -- crossed a month's end) has partitions before the current month: the
  -- blocks below count only the months they make.
  FOR before IN SELECT partition_name FROM audit_partitions()
                 WHERE NOT is_default AND range_to <= t_month_start(0) LOOP
    EXECUTE format('DROP TABLE %I', before);
  END LOOP;
END $$;
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- db_check
SELECT tableoid::regclass, event FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
SELECT count(*) FROM audit_partitions() WHERE partition_name IN (t_month(0), t_month(1));
--- db_check_out
audit_log_default|codes_generated
0



=== TEST 13: audit_prepare (as redeem_maint) creates the months ahead and those rows wait for, and moves the rows into them, ids kept
--- db_init
CREATE TABLE t_waiting AS SELECT id, occurred_at, event FROM audit_log_default;
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_maint;
SELECT (SELECT k FROM generate_series(-24, 24) k WHERE t_month(k) = p.partition_name) AS k,
       range_to = range_from + interval '1 month', moved_rows
  FROM audit_prepare(2) p ORDER BY range_from;
SELECT count(*) FROM audit_prepare(2);
RESET ROLE;
SELECT count(*) FROM audit_log_default;
SELECT count(*), count(*) FILTER (WHERE a.tableoid::regclass::text = 'audit_log_' || to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY_MM'))
  FROM t_waiting w JOIN audit_log a USING (id, occurred_at, event);
SELECT count(*) FROM audit_partitions() p JOIN pg_class c ON c.oid = p.partition_name::regclass
 WHERE NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
    OR NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'audit_log_append_only_row');
--- db_check_out
-7|t|1
-5|t|2
0|t|1
1|t|0
0
0
4|4
0



=== TEST 14: the module's rows go to the current month's new partition, ids going on from the moved ones
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- db_check
SELECT tableoid::regclass::text = t_month(0), id > (SELECT max(id) FROM t_waiting)
  FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
--- db_check_out
t|t



=== TEST 15: audit_drop_before (as redeem_maint) drops the months wholly before the cutoff, and records each drop in audit_log
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_maint;
SELECT (SELECT k FROM generate_series(-24, 24) k WHERE t_month(k) = p.partition_name), dropped_rows
  FROM audit_drop_before(t_day(-5)::date) p;
SELECT count(*) FROM audit_drop_before(t_day(-5)::date + 20);
RESET ROLE;
SELECT string_agg(outcome, ',' ORDER BY outcome) FROM audit_log WHERE event = 't_old';
SELECT count(*) FROM pg_class WHERE relname = t_month(-7);
SELECT target = format('%s (%s to %s, 1 row)', t_month(-7), t_day(-7), t_day(-6)::date - 1),
       outcome, request_id, actor_id IS NULL, tableoid::regclass::text = t_month(0)
  FROM audit_log WHERE event = 'audit_retention';
--- db_check_out
-7|1
0
b,c
0
t|dropped|psql|t|t



=== TEST 16: the current month and later ones are refused; the first day of the current month is the latest cutoff
--- request
GET /api/health
--- error_code: 200
--- db_check
SET ROLE redeem_maint;
SELECT t_try(format('SELECT audit_drop_before(%L)', t_day(0)::date + 1))
     = format('P0001: audit_drop_before(%s): refused, the current month (%s) and later ones are kept',
              t_day(0)::date + 1, left(t_day(0), 7));
SELECT t_try(format('SELECT audit_drop_before(%L)', t_day(3))) LIKE 'P0001: audit_drop_before(%): refused, %';
SELECT t_try('SELECT audit_drop_before(NULL)');
SELECT t_try('SELECT audit_prepare(-1)');
SELECT (SELECT k FROM generate_series(-24, 24) k WHERE t_month(k) = p.partition_name), dropped_rows
  FROM audit_drop_before(t_day(0)::date) p;
RESET ROLE;
SELECT count(*) FROM audit_partitions() WHERE partition_name = t_month(0);
SELECT count(*) FROM audit_log WHERE event IN ('codes_generated', 'redeem') AND tableoid::regclass::text = t_month(0);
--- db_check_out
t
t
P0001: audit_drop_before(<NULL>): the cutoff must be a date
P0001: audit_prepare(-1): months_ahead must be 0 to 120
-5|2
1
2



=== TEST 17: redeem-retention --dry-run says what it would do and changes nothing
--- db_init
INSERT INTO audit_log (occurred_at, event, outcome)
VALUES (t_month_start(-9) + interval '1 day', 't_cmd', 'a'), (t_month_start(-9) + interval '2 days', 't_cmd', 'b'),
       (t_month_start(-3), 't_cmd', 'c'), (t_month_start(-1) + interval '5 hours', 't_cmd', 'd');
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = var('DB_NAME');
my ($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '2', '--prepare', '4', '--dry-run' ]);
die "exit $status: $out" if $status;
my $p = "redeem-retention: $db:";
lines_are($out,
    "$p would have created " . month(-9) . ' (' . first_day(-9) . ' to ' . last_day(-9) . '), moving into it 2 rows from the default partition',
    "$p would have created " . month(-3) . ' (' . first_day(-3) . ' to ' . last_day(-3) . '), moving into it 1 row from the default partition',
    "$p would have created " . month(-1) . ' (' . first_day(-1) . ' to ' . last_day(-1) . '), moving into it 1 row from the default partition',
    "$p would have created " . month(4) . ' (' . first_day(4) . ' to ' . last_day(4) . ')',
    "$p keeping the months from " . substr(first_day(-2), 0, 7) . ' on',
    "$p would have dropped " . month(-9) . ' (' . first_day(-9) . ' to ' . last_day(-9) . ', 2 rows)',
    "$p would have dropped " . month(-3) . ' (' . first_day(-3) . ' to ' . last_day(-3) . ', 1 row)',
    "$p dry run, nothing changed");
--- db_check
SELECT count(*) FROM audit_log_default;
SELECT count(*) FROM audit_partitions() WHERE partition_name IN (t_month(-9), t_month(-3), t_month(-1), t_month(4));
SELECT count(*) FROM audit_log WHERE event = 'audit_retention';
--- db_check_out
4
0
2



=== TEST 18: redeem-retention --keep-months 2 --prepare 4 (as postgres, acting as redeem_maint): months created and rows moved, months before the cutoff dropped and recorded
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = var('DB_NAME');
my ($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '2', '--prepare', '4', '--list' ]);
die "exit $status: $out" if $status;
my $p = "redeem-retention: $db:";
my @parts = map { month($_) . "\t" . first_day($_) . ' to ' . last_day($_) . "\t~" } -1 .. 4;
$out =~ s/\t~[-?0-9]+ rows$/\t~/mg;
lines_are($out,
    "$p created " . month(-9) . ' (' . first_day(-9) . ' to ' . last_day(-9) . '), moving into it 2 rows from the default partition',
    "$p created " . month(-3) . ' (' . first_day(-3) . ' to ' . last_day(-3) . '), moving into it 1 row from the default partition',
    "$p created " . month(-1) . ' (' . first_day(-1) . ' to ' . last_day(-1) . '), moving into it 1 row from the default partition',
    "$p created " . month(4) . ' (' . first_day(4) . ' to ' . last_day(4) . ')',
    "$p keeping the months from " . substr(first_day(-2), 0, 7) . ' on',
    "$p dropped " . month(-9) . ' (' . first_day(-9) . ' to ' . last_day(-9) . ', 2 rows)',
    "$p dropped " . month(-3) . ' (' . first_day(-3) . ' to ' . last_day(-3) . ', 1 row)',
    @parts, "audit_log_default\tdefault\t~");
--- db_check
SELECT string_agg(outcome || ' ' || (tableoid::regclass::text = t_month(-1)), ',' ORDER BY outcome)
  FROM audit_log WHERE event = 't_cmd';
SELECT count(*) FROM audit_log_default;
SELECT target = format('%s (%s to %s, %s)', t_month(k), t_day(k), t_day(k + 1)::date - 1, n), outcome, request_id
  FROM audit_log, (VALUES (-9, '2 rows', 1), (-3, '1 row', 2)) v(k, n, o)
 WHERE event = 'audit_retention' AND target LIKE t_month(k) || ' %' ORDER BY o;
--- db_check_out
d true
0
t|dropped|redeem-retention
t|dropped|redeem-retention



=== TEST 19: run again, redeem-retention has nothing to do
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = var('DB_NAME');
my ($status, $out) = run_cmd([ retention(), '-d', $db, '-k', '2', '-p', '4' ]);
die "exit $status: $out" if $status;
lines_are($out, "redeem-retention: $db: keeping the months from " . substr(first_day(-2), 0, 7) . ' on',
          "redeem-retention: $db: nothing to do");



=== TEST 20: redeem-retention refuses a retention of 0 months, and fails as another role than the maintenance one
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = var('DB_NAME');
my ($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '0' ]);
die "--keep-months 0: exit $status: $out" unless $status == 1 && $out eq "redeem-retention: --keep-months '0': give 1 to 1200\n";
($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '1', '--role', 'redeem_app' ]);
die "--role redeem_app: exit $status: $out"
  unless $status == 1 && $out =~ /\Aredeem-retention: \Q$db\E: ERROR:  permission denied for function audit_prepare\n\z/;
($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '1', '--prepare' ]);
die "--prepare without a value: exit $status: $out" unless $status == 2 && $out =~ /--prepare needs a value/;
# An empty --keep-months= (a variable unset in a cron line) meant "drop nothing" and exit 0.
for my $empty ('--keep-months=', '--prepare=', '--role=') {
    ($status, $out) = run_cmd([ retention(), '-d', $db, $empty ]);
    my ($name) = $empty =~ /^(--[a-z-]+)/;
    die "$empty: exit $status: $out" unless $status == 2 && $out =~ /\Q$name\E needs a value/;
}
1
--- db_check
SELECT count(*) FROM audit_log WHERE event = 'audit_retention';
SELECT count(*) FROM audit_partitions() WHERE partition_name = t_month(-1);
--- db_check_out
4
1



=== TEST 20b: redeem-retention counts the months it drops before audit_log is locked, in a dry run too (a dry run prepared its months in the transaction of its drops, and a month created holds audit_log's exclusive lock to the end of it: every audit row waited for the counts); audit_partitions(), which audit_drop_before calls as it counts and again once it has locked, is wrapped to say whether its session holds that lock
--- db_init
SELECT count(*) FROM audit_create_months(ARRAY[t_month_start(-12)]);
INSERT INTO audit_log (occurred_at, event, outcome) VALUES (t_month_start(-12) + interval '1 day', 't_lock', 'a');
ALTER FUNCTION audit_partitions() RENAME TO t_audit_partitions;
CREATE FUNCTION audit_partitions()
  RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz, is_default boolean, approx_rows bigint)
  LANGUAGE plpgsql AS $f$
DECLARE
  stack text;
BEGIN
  GET DIAGNOSTICS stack = PG_CONTEXT;
  IF stack LIKE '%function audit_drop_before(date)%' THEN
    RAISE NOTICE 'audit_log locked: %',
      EXISTS (SELECT FROM pg_catalog.pg_locks
               WHERE pid = pg_catalog.pg_backend_pid() AND relation = 'public.audit_log'::regclass
                 AND mode = 'AccessExclusiveLock' AND granted);
  END IF;
  RETURN QUERY SELECT * FROM public.t_audit_partitions();
END
$f$;
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = var('DB_NAME');
my $p = "redeem-retention: $db:";
my $old = month(-12) . ' (' . first_day(-12) . ' to ' . last_day(-12) . ', 1 row)';
for my $dry (1, 0) {
    my ($status, $out) = run_cmd([ retention(), '-d', $db, '--keep-months', '2', '--prepare', '6', $dry ? '--dry-run' : () ]);
    die "exit $status: $out" if $status;
    my $probes = join ' ', $out =~ /^NOTICE:  audit_log locked: (\w)$/mg;
    # Counted unlocked, then dropped locked (which shows the probe sees the lock).
    die "audit_log's lock as audit_drop_before counted, then dropped: '$probes', not 'f t': $out" unless $probes eq 'f t';
    my $would = $dry ? 'would have ' : '';
    die "not dropped: $out" unless $out =~ /^\Q$p $would\Edropped \Q$old\E$/m;
    die "month 6 not created: $out" unless $out =~ /^\Q$p $would\Ecreated \Q${\ month(6)}\E /m;
}
1
--- db_check
DROP FUNCTION audit_partitions();
ALTER FUNCTION t_audit_partitions() RENAME TO audit_partitions;
SELECT count(*) FROM pg_class WHERE relname = t_month(-12);
SELECT count(*) FROM audit_partitions() WHERE partition_name IN (t_month(5), t_month(6));
SELECT count(*) FROM audit_log WHERE event = 'audit_retention' AND target LIKE t_month(-12) || ' %';
--- db_check_out
0
2
1



=== TEST 21: migrating an audit table that has rows: every row kept, in the attached old table, ids going on, the new maintenance role (redeem-migrate -m)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = legacy_db();
psql_db('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE);\nCREATE DATABASE "$db";\nDROP ROLE IF EXISTS t_maint_legacy;\n});
# Up to 003 only, with rows in it and an id drawn but never used.
my $dir = var('SERVROOT') . '/sql_003';
mkdir $dir;
for my $f (qw(001_accounts.sql 002_codes.sql 003_email_identity.sql)) {
    run_ok([ 'cp', "$ENV{REDEEM_ROOT}/sql/$f", "$dir/$f" ]);
}
run_ok([ migrate(), $db ], undef, REDEEM_SQL_DIR => $dir);
psql_db($db, <<'SQL');
INSERT INTO audit_log (occurred_at, event, outcome)
SELECT date_trunc('month', now()) - interval '1 month' - make_interval(days => 20 * g), 'old', 'o' || g
  FROM generate_series(1, 12) g;
SELECT nextval(pg_get_serial_sequence('audit_log', 'id'));
CREATE TABLE t_rows AS SELECT * FROM audit_log;
SQL
my $out = run_ok([ migrate(), '-r', 'redeem_app', '-m', 't_maint_legacy', $db ]);
die "redeem-migrate said: $out"
  unless $out =~ /\Amigrate: \Q$db\E: applied 004_audit_partitions\.sql\n(?:migrate: \Q$db\E: applied 0\d\d_\w+\.sql\n)*\z/;
my $got = psql_db($db, <<'SQL');
SELECT count(*), count(a.id) FROM t_rows t LEFT JOIN audit_log a USING (id, occurred_at, event, outcome)
 WHERE a.tableoid = 'audit_log_legacy'::regclass OR a.id IS NULL;
SELECT count(*) FROM audit_log;
SET TimeZone = 'UTC';
SELECT partition_name, range_from IS NULL,
       coalesce(range_to = date_trunc('month', now()) + interval '1 month' AND range_from IS NULL
                OR range_to = range_from + interval '1 month', false)
  FROM audit_partitions();
INSERT INTO audit_log (occurred_at, event, outcome)
VALUES (date_trunc('month', now()) + interval '1 month', 'new', 'next')
RETURNING id, tableoid::regclass = 'audit_log_legacy'::regclass;
SQL
my @next = map { psql_db($db, "SET TimeZone = 'UTC'; SELECT 'audit_log_' || to_char(date_trunc('month', now()) + interval '$_ months', 'YYYY_MM')") } 1 .. 3;
lines_are("$got\n", '12|12', '12', 'audit_log_legacy|t|t', (map { "$_|f|t" } @next),
          'audit_log_default|t|f', '14|f');
--- db_check
SELECT 1;
--- db_check_out
1



=== TEST 22: the old table as a partition: its primary key and index kept (the index now part of audit_log's; migration 014's index of refusals added), append-only, no right for redeem_app; t_maint_legacy may maintain, redeem_maint not here
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = legacy_db();
my $got = psql_db($db, <<'SQL');
SELECT i.indexrelid::regclass, i.indisprimary,
       EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid AND h.inhparent = 'audit_log_occurred_at'::regclass)
  FROM pg_index i WHERE i.indrelid = 'audit_log_legacy'::regclass ORDER BY i.indexrelid::regclass::text;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log_legacy'::regclass ORDER BY 1;
SELECT has_any_column_privilege('redeem_app', 'audit_log', 'INSERT'),
       has_table_privilege('redeem_app', 'audit_log', 'DELETE'),
       has_table_privilege('redeem_app', 'audit_log_legacy', 'INSERT'),
       has_table_privilege('redeem_app', 'audit_log_legacy', 'SELECT');
SELECT rolcanlogin FROM pg_roles WHERE rolname = 't_maint_legacy';
SELECT has_function_privilege('t_maint_legacy', 'audit_drop_before(date)', 'EXECUTE'),
       has_function_privilege('redeem_maint', 'audit_drop_before(date)', 'EXECUTE');
CREATE FUNCTION pg_temp.t_try(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;
SELECT pg_temp.t_try('DELETE FROM audit_log_legacy');
SELECT pg_temp.t_try('UPDATE audit_log_legacy SET outcome = ''x''');
SET ROLE t_maint_legacy;
SELECT count(*) FROM audit_drop_before(date_trunc('month', now() AT TIME ZONE 'UTC')::date);
RESET ROLE;
SELECT count(*) FROM audit_log_legacy;
SQL
lines_are("$got\n", 'audit_log_legacy_occurred_at|f|t', 'audit_log_legacy_pkey|t|f',
          'audit_log_legacy_request_id_idx|f|f', 'audit_log_append_only_row',
          't|f|f|f', 'f', 't|f', 'P0001: audit_log is append-only', 'P0001: audit_log is append-only', '0', '12');
--- db_check
SELECT 1;
--- db_check_out
1



=== TEST 23: the old table goes whole once all its range is before the cutoff (here re-attached with an earlier bound), recorded as from the start
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = legacy_db();
my $got = psql_db($db, <<'SQL');
SET TimeZone = 'UTC';
SELECT format('ALTER TABLE audit_log DETACH PARTITION audit_log_legacy; '
              'ALTER TABLE audit_log ATTACH PARTITION audit_log_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
              date_trunc('month', now()) - interval '1 month') \gexec
SET ROLE t_maint_legacy;
SELECT partition_name, range_from IS NULL, dropped_rows FROM audit_drop_before(date_trunc('month', now())::date);
RESET ROLE;
SELECT target = format('audit_log_legacy (the start to %s, 12 rows)',
                       (date_trunc('month', now()) - interval '1 month' - interval '1 day')::date),
       outcome
  FROM audit_log WHERE event = 'audit_retention';
SELECT count(*) FROM pg_class WHERE relname = 'audit_log_legacy';
SQL
lines_are("$got\n", 'audit_log_legacy|t|12', 't|dropped', '0');
--- db_check
SELECT 1;
--- db_check_out
1



=== TEST 24: redeem-migrate refuses the module's role as the maintenance role; the other database and role go
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = legacy_db();
my ($status, $out) = run_cmd([ migrate(), '-r', 'redeem_app', '-m', 'redeem_app', $db ]);
die "exit $status: $out" unless $status == 1 && $out =~ /the maintenance role must be another role than the module's/;
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_maint_legacy;\n});
1
--- db_check
SELECT count(*) FROM pg_roles WHERE rolname = 't_maint_legacy';
--- db_check_out
0
