# Concurrent redemptions: of one code by 50 users or by one user, exactly
# one 200 and 49 409s, one success in the audit trail, one extension; of 10
# codes by one user, every month counted (no lost update).
use lib 't/lib';
use Test::Redeem;

# Code $i of the saved batch.
sub code_at { return JSON::PP::decode_json(var('CODES'))->[$_[0]] }
sub body { return JSON::PP->new->encode({card_code => $_[0]}) }

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the admin generates 22 codes of one month
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 22}
--- error_code: 201
--- save_json
CODES=codes



=== TEST 2: 50 users redeem one code at once: one 200, 49 409s
--- token_eval
user_token('racer' . var('CLIENT_INDEX'))
--- request
POST /redeem
--- request_json eval
body(code_at(0))
--- concurrency: 50
--- timeout: 60
--- error_code_counts
200: 1
409: 49
--- db_check
SELECT outcome, count(*), count(DISTINCT actor_id), count(DISTINCT target)
  FROM audit_log WHERE occurred_at >= '$REQUEST_TIME' GROUP BY outcome ORDER BY outcome;
SELECT count(DISTINCT actor_id), count(DISTINCT target) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;
SELECT count(*) FROM users WHERE email LIKE 'racer%' AND subscription_expires_at IS NOT NULL;
-- the winner: the one who used the code, got the month, and has the success row
SELECT u.id = c.used_by, u.subscription_expires_at = c.used_at + interval '1 month',
       a.actor_id = c.used_by, a.target = 'code ' || c.id
  FROM users u, redeem_codes c, audit_log a
 WHERE u.email LIKE 'racer%' AND u.subscription_expires_at IS NOT NULL AND c.used_at IS NOT NULL
   AND a.occurred_at >= '$REQUEST_TIME' AND a.outcome = 'success';
SELECT sum(used) FROM code_counts;
--- db_check_out
success|1|1|1
used|49|49|1
50|1
1
1
t|t|t|t
1
--- no_error_log
/:(?:error|crit|alert|emerg)\]/



=== TEST 3: one user redeems one code 50 times at once: one 200, one month
--- login: solo
--- request
POST /redeem
--- request_json eval
body(code_at(1))
--- concurrency: 50
--- timeout: 60
--- error_code_counts
200: 1
409: 49
--- db_check
SELECT outcome, count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
 GROUP BY outcome ORDER BY outcome;
SELECT u.subscription_expires_at = c.used_at + interval '1 month'
  FROM users u JOIN redeem_codes c ON c.used_by = u.id WHERE u.id = $USER_ID_solo;
--- db_check_out
success|1
used|49
t
--- no_error_log
/:(?:error|crit|alert|emerg)\]/



=== TEST 4: one user redeems 10 codes at once, the subscription already running: exactly 10 months more
--- login: tenner
--- db_init
-- A fixed instant a month or two ahead, on the 4th: every extension starts
-- from the running expiry, and no month is shortened by a 29th-31st.
CREATE TABLE t_base AS
  SELECT date_trunc('month', now()) + interval '2 months 3 days 04:05:06.789' AS base;
UPDATE users SET subscription_expires_at = (SELECT base FROM t_base) WHERE id = $USER_ID_tenner;
--- request
POST /redeem
--- request_json eval
body(code_at(2 + var('CLIENT_INDEX')))
--- concurrency: 10
--- timeout: 60
--- error_code_counts
200: 10
--- db_check
SELECT u.subscription_expires_at = b.base + interval '10 months', api_ts(u.subscription_expires_at)
  FROM users u, t_base b WHERE u.id = $USER_ID_tenner;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_tenner;
SELECT outcome, count(*), count(DISTINCT target) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
 GROUP BY outcome;
--- db_check_like
\At\|\S+\n10\nsuccess\|10\|10\z
--- no_error_log
/:(?:error|crit|alert|emerg)\]/



=== TEST 5: one user never subscribed redeems 10 codes at once: the first one's time plus 10 months
--- login: fresh
--- request
POST /redeem
--- request_json eval
body(code_at(12 + var('CLIENT_INDEX')))
--- concurrency: 10
--- timeout: 60
--- error_code_counts
200: 10
--- db_check
-- The first extension starts from its own now() (= its used_at); each
-- later one from the expiry before it: ten calendar months added in turn.
-- (Two of the ten may share a used_at to the microsecond: hence > 0.)
SELECT count(*) > 0 FROM redeem_codes c, users u
 WHERE c.used_by = u.id AND u.id = $USER_ID_fresh
   AND u.subscription_expires_at = c.used_at + interval '1 month' + interval '1 month'
       + interval '1 month' + interval '1 month' + interval '1 month' + interval '1 month'
       + interval '1 month' + interval '1 month' + interval '1 month' + interval '1 month';
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_fresh;
--- db_check_out
t
10
--- no_error_log
/:(?:error|crit|alert|emerg)\]/



=== TEST 6: the racers' code is listed as used once, by the winner
--- login: admin
--- request
GET /admin/codes?used=true&per_page=500
--- error_code: 200
--- response_json
{"total": 22}
--- check_eval
my @used = grep { $_->{code} eq code_at(0) } @{ response()->{json}{codes} };
die 'listed ' . @used . " times\n" unless @used == 1;
$used[0]{used_by} == sql("SELECT used_by FROM redeem_codes WHERE used_at IS NOT NULL ORDER BY id LIMIT 1");



=== TEST 7: a redemption while another transaction stores new codes in every counter shard is not held up by it: 200, not 503 at RedeemDBTimeout
--- config
RedeemDBTimeout 2000
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- check_eval
my $code = response()->{json}{codes}[0];
# 128 codes, ids in every shard of the counters, counted by the insert's
# trigger and held uncommitted for 5 s (then rolled back).
my $held = sql_in_background(q{BEGIN;
INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
SELECT sha256(convert_to('held ' || g, 'UTF8')), decode(repeat('00', 52), 'hex'), gen_random_uuid()
  FROM generate_series(1, 128) g;
SELECT pg_sleep(5); ROLLBACK});
sql_until('the held codes counted', q{SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
  WHERE c.relname = 'code_counts' AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()});
my $res = api_request('POST', '/redeem', body($code), 'Authorization: Bearer ' . user_token('holdout'));
waitpid $held, 0;
$res->{status} eq '200'
  or die "expected 200 beside the held codes, got $res->{status} after $res->{elapsed} s: $res->{body}\n";



=== TEST 8: a database whose sessions default to another isolation level (an operator's setting, here serializable in DBDParams): the admin generates ten more codes
--- config eval
qq{DBDParams "\${REDEEM_DB_PARAMS} options='-c default_transaction_isolation=serializable'"\n}
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10}
--- error_code: 201
--- save_json
MORE_CODES=codes



=== TEST 9: there, one user redeems the ten codes at once: every one 200 and counted (the module's sessions run at read committed, as its statements are written for; at serializable or repeatable read the racers failed to serialize and got 503)
--- config eval
qq{DBDParams "\${REDEEM_DB_PARAMS} options='-c default_transaction_isolation=serializable'"\n}
--- login: isolated
--- request
POST /redeem
--- request_json eval
body(JSON::PP::decode_json(var('MORE_CODES'))->[var('CLIENT_INDEX')])
--- concurrency: 10
--- timeout: 60
--- error_code_counts
200: 10
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_isolated;
SELECT count(*) > 0 FROM redeem_codes c, users u
 WHERE c.used_by = u.id AND u.id = $USER_ID_isolated
   AND u.subscription_expires_at = c.used_at + interval '1 month' + interval '1 month'
       + interval '1 month' + interval '1 month' + interval '1 month' + interval '1 month'
       + interval '1 month' + interval '1 month' + interval '1 month' + interval '1 month';
--- db_check_out
10
t
