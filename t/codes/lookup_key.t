# The lookup key (migration 008): a code is found by the first 64 bits of
# its keyed hash, through a unique index, and the whole hash is compared. A
# new code whose key is taken makes its batch again, which is rolled back
# whole in between; three refusals in a row fail the request, storing
# nothing. A database of version 7 migrates to it, and its codes redeem.
use lib 't/lib';
use Test::Redeem;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the schema: one unique index on the 64-bit key, none on the whole hash
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT indexrelid::regclass, indisunique, pg_get_indexdef(indexrelid) LIKE '%code_lookup_key(code_hash)%'
  FROM pg_index WHERE indrelid = 'redeem_codes'::regclass
   AND (pg_get_indexdef(indexrelid) LIKE '%code_hash%') ORDER BY 1;
SELECT code_lookup_key('\x0000000000000001ff'::bytea), code_lookup_key('\xffffffffffffffff00'::bytea),
       code_lookup_key('\x8000000000000000'::bytea);
SELECT count(*) FROM schema_migrations WHERE version = 8;
--- db_check_out
redeem_codes_lookup_key|t|t
1|-1|-9223372036854775808
1



=== TEST 2: a batch of one code
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
CODE=codes.0
BATCH=batch_id



=== TEST 3: its row's hash changed past the first 8 bytes: the key still finds the row, the whole hash does not match, so the code is unknown and nothing changes
--- db_init
CREATE TABLE t_saved AS SELECT id, code_hash FROM redeem_codes WHERE batch_id = '$BATCH';
UPDATE redeem_codes SET code_hash = substring(code_hash FROM 1 FOR 8) || substring(sha256(code_hash) FROM 1 FOR 24)
 WHERE batch_id = '$BATCH';
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- db_check
SELECT count(*), count(used_at) FROM redeem_codes WHERE batch_id = '$BATCH';
SELECT count(*) FROM redeem_codes c JOIN t_saved s USING (id)
 WHERE code_lookup_key(c.code_hash) = code_lookup_key(s.code_hash) AND c.code_hash <> s.code_hash;
--- db_check_out
1|0
1



=== TEST 4: the hash put back: the same code redeems (the control of the test before)
--- db_init
UPDATE redeem_codes c SET code_hash = s.code_hash FROM t_saved s WHERE c.id = s.id;
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 200
--- db_check
SELECT count(used_at) FROM redeem_codes WHERE batch_id = '$BATCH';
--- db_check_out
1



=== TEST 5: a second hash with the same first 8 bytes is refused by the index (the key is unique)
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
CREATE TEMP TABLE t_outcome (x text);
DO $$
BEGIN
  INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
  SELECT substring(s.code_hash FROM 1 FOR 8) || substring(sha256(s.code_hash) FROM 1 FOR 24),
         substring(sha256(s.code_hash) || sha256(s.code_hash) FROM 1 FOR 52), gen_random_uuid()
    FROM t_saved s;
  INSERT INTO t_outcome VALUES ('stored');
EXCEPTION WHEN unique_violation THEN
  INSERT INTO t_outcome VALUES ('refused');
END $$;
SELECT x FROM t_outcome;
SELECT count(*) FROM redeem_codes;
--- db_check_out
refused
1



=== TEST 6: the first statement of a batch refused as a taken key (a trigger stands in for the odds): the batch is made again and stored whole, once
--- db_init
CREATE SEQUENCE t_refusals;
CREATE FUNCTION t_key_taken() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF nextval('t_refusals') <= (SELECT n FROM t_refuse) THEN
    RAISE unique_violation USING MESSAGE = 't_key_taken: key (code_lookup_key(code_hash)) already exists',
      CONSTRAINT = (SELECT index_name FROM t_refuse);
  END IF;
  RETURN NULL;
END $$;
CREATE TABLE t_refuse (n integer, index_name text);
INSERT INTO t_refuse VALUES (1, 'redeem_codes_lookup_key');
CREATE TRIGGER t_key_taken BEFORE INSERT ON redeem_codes FOR EACH STATEMENT EXECUTE FUNCTION t_key_taken();
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 12000}
--- timeout: 60
--- error_code: 201
--- response_json
{"message": "Successfully generated 12000 redeem codes", "count": 12000}
--- save_json
BATCH2=batch_id
FIRST2=codes.0
SECOND2=codes.1
--- error_log
RDM0115
/RDM0503: batch [-0-9a-f]+: a new code's lookup key was taken, the batch is made again \(attempt 2 of 3\)/
--- no_error_log
attempt 3 of 3
--- db_check
SELECT last_value FROM t_refusals;
SELECT count(*), count(DISTINCT batch_id), (SELECT sum(total) FROM code_counts) FROM redeem_codes;
SELECT count(*) FROM redeem_codes WHERE batch_id = '$BATCH2';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND outcome = 'success';
--- db_check_out
4
12001|2|12001
12000
2



=== TEST 7: the batch's first code, from the attempt that was stored, redeems
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$FIRST2"}
--- error_code: 200



=== TEST 8: every attempt refused: 500 after three, nothing stored, no success audited
--- db_init
UPDATE t_refuse SET n = 1000000;
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10}
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- response_body_unlike
t_key_taken|code_lookup_key|unique
--- error_log
attempt 3 of 3
/RDM0504: batch [-0-9a-f]+: a new code's lookup key was taken in each of 3 attempts: nothing stored/
--- db_check
SELECT last_value FROM t_refusals;
SELECT count(*), (SELECT sum(total) FROM code_counts) FROM redeem_codes;
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND outcome = 'success';
--- db_check_out
7
12001|12001
2



=== TEST 9: a key taken in another unique index is no reason to make the batch again: one attempt, 500, logged as an error
--- db_init
UPDATE t_refuse SET index_name = 'redeem_codes_pkey';
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10}
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- error_log
/RDM0101: database pipeline, statement 2 of 3 failed: t_key_taken/
--- no_error_log
RDM0115
RDM0503
--- db_check
SELECT last_value FROM t_refusals;
SELECT count(*) FROM redeem_codes;
DROP TRIGGER t_key_taken ON redeem_codes;
--- db_check_out
8
12001



=== TEST 10: the redemption statement, as a prepared statement's generic plan, finds the code through the key's index
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check eval
"SET plan_cache_mode = force_generic_plan;\nPREPARE t_redeem AS " . statement_sql('SQL_REDEEM')
  . ";\nEXPLAIN (COSTS OFF) EXECUTE t_redeem('00', 1, '127.0.0.1', 'x', 0, 'a\@example.test', 0);\n"
--- db_check_like
Index Scan using redeem_codes_lookup_key on redeem_codes



=== TEST 11: a database of version 7 with codes (the unique index of 002 on the whole hash, no key) migrated by sql/008: its codes redeem
--- db_init
ALTER TABLE redeem_codes ADD CONSTRAINT redeem_codes_code_hash_key UNIQUE (code_hash);
DROP INDEX redeem_codes_lookup_key;
DROP FUNCTION code_lookup_key(bytea);
DELETE FROM schema_migrations WHERE version = 8;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
\i sql/008_code_lookup_key.sql
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$SECOND2"}
--- error_code: 200
--- db_check
SELECT indexrelid::regclass, indisunique FROM pg_index
 WHERE indrelid = 'redeem_codes'::regclass AND pg_get_indexdef(indexrelid) LIKE '%code_hash%';
SELECT count(*) FROM schema_migrations WHERE version = 8;
SELECT count(used_at) FROM redeem_codes WHERE batch_id = '$BATCH2';
--- db_check_out
redeem_codes_lookup_key|t
1
2



=== TEST 12: the redemption statement and its run again write nothing once the time the module gave them is up (too_late, for a code that exists and is unused: no claim, no month, no audit row); in time, the same statement redeems that code
--- login: alice
--- request
GET /api/health
--- error_code: 200
--- db_check eval
"PREPARE t_first AS " . statement_sql('SQL_REDEEM') . ";\n"
  . "PREPARE t_rerun AS " . statement_sql('SQL_REDEEM_RERUN') . ";\n" . <<'SQL'
SELECT encode(code_hash, 'hex') AS hash FROM redeem_codes WHERE used_at IS NULL ORDER BY id DESC LIMIT 1 \gset
SELECT id AS uid, email, token_generation AS gen FROM users WHERE email = 'alice@example.test' \gset
SELECT (SELECT count(*) FROM audit_log WHERE event = 'redeem') AS audits,
       (SELECT subscription_expires_at FROM users WHERE id = :uid) AS expiry,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - 1 AS past,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 60000000 AS soon \gset
EXECUTE t_first(:'hash', :uid, '127.0.0.1', 't-late-1', :gen, :'email', :past) \gset first_
EXECUTE t_rerun(:'hash', :uid, '127.0.0.1', 't-late-1', :gen, :'email', :past) \gset rerun_
SELECT :'first_result', :'rerun_result';
SELECT used_at IS NULL FROM redeem_codes WHERE code_hash = decode(:'hash', 'hex');
SELECT count(*) - :audits FROM audit_log WHERE event = 'redeem';
SELECT subscription_expires_at IS NOT DISTINCT FROM nullif(:'expiry', '')::timestamptz FROM users WHERE id = :uid;
EXECUTE t_first(:'hash', :uid, '127.0.0.1', 't-late-2', :gen, :'email', :soon) \gset first_
SELECT :'first_result';
SELECT used_at IS NOT NULL FROM redeem_codes WHERE code_hash = decode(:'hash', 'hex');
SELECT count(*) - :audits FROM audit_log WHERE event = 'redeem';
SQL
--- db_check_out
too_late|too_late
t
0
t
success
t
1



=== TEST 13: a refusal's audit row is written once a request (the runs again after a lost reply find its first run's row: sql/015), and once for each request: a request refused and run again has one row, another request refused the same way its own, a missing code likewise; a first run looks for no earlier row (the id may be a client's choice): one under an id used before writes its own; the module's role may ask audit_request_logged() but still not read audit_log
--- login: alice
--- request
GET /api/health
--- error_code: 200
--- db_check eval
"PREPARE t_first AS " . statement_sql('SQL_REDEEM') . ";\n"
  . "PREPARE t_again AS " . statement_sql('SQL_REDEEM_AGAIN') . ";\n"
  . "PREPARE t_rerun AS " . statement_sql('SQL_REDEEM_RERUN') . ";\n" . <<'SQL'
SELECT encode(code_hash, 'hex') AS hash FROM redeem_codes WHERE used_at IS NOT NULL ORDER BY id DESC LIMIT 1 \gset
SELECT id AS uid, email, token_generation AS gen FROM users WHERE email = 'alice@example.test' \gset
SELECT (SELECT count(*) FROM audit_log WHERE event = 'redeem') AS audits,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 60000000 AS soon \gset
EXECUTE t_first(:'hash', :uid, '127.0.0.1', 't-refused-1', :gen, :'email', :soon) \gset a_
EXECUTE t_again(:'hash', :uid, '127.0.0.1', 't-refused-1', :gen, :'email', :soon) \gset b_
EXECUTE t_first(:'hash', :uid, '127.0.0.1', 't-refused-2', :gen, :'email', :soon) \gset c_
EXECUTE t_first(repeat('ab', 32), :uid, '127.0.0.1', 't-missing-1', :gen, :'email', :soon) \gset d_
EXECUTE t_rerun(repeat('ab', 32), :uid, '127.0.0.1', 't-missing-1', :gen, :'email', :soon) \gset e_
EXECUTE t_first(:'hash', :uid, '127.0.0.1', 't-refused-2', :gen, :'email', :soon) \gset f_
SELECT :'a_result', :'b_result', :'c_result', :'d_result', :'e_result', :'f_result';
SELECT request_id, outcome, count(*) FROM audit_log WHERE event = 'redeem' AND request_id LIKE 't-%'
 GROUP BY 1, 2 ORDER BY 1;
SELECT count(*) - :audits FROM audit_log WHERE event = 'redeem';
SELECT has_function_privilege('redeem_app', 'audit_request_logged(text, text, bigint)', 'EXECUTE'),
       has_function_privilege('public', 'audit_request_logged(text, text, bigint)', 'EXECUTE'),
       has_table_privilege('redeem_app', 'audit_log', 'SELECT'),
       (SELECT prosecdef FROM pg_proc WHERE oid = 'audit_request_logged(text, text, bigint)'::regprocedure);
SQL
--- db_check_out
used|used|used|not_found|not_found|used
t-late-2|success|1
t-missing-1|not_found|1
t-refused-1|used|1
t-refused-2|used|2
4
t|f|f|t



=== TEST 14: audit_request_logged() reads public.audit_log whatever its caller keeps in pg_temp (a temporary view of the module's role named audit_log is not read with the function owner's rights), and so does every function that runs as its owner (sql/014)
--- login: alice
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace
   AND NOT coalesce('search_path=pg_catalog, public, pg_temp' = ANY (p.proconfig), false)
   AND p.proname NOT LIKE 't\_%';
SELECT count(*) > 10 FROM pg_proc p WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace;
SET ROLE redeem_app;
CREATE TEMP VIEW audit_log AS SELECT now() AS occurred_at, 'redeem'::text AS event,
  1::bigint AS actor_id, 'used'::text AS outcome, 't-shadow'::text AS request_id;
SELECT audit_request_logged('t-shadow', 'redeem', 1);
CREATE TEMP TABLE row_counts (name text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO row_counts VALUES ('users', 0);
SELECT n AS before FROM public.row_counts WHERE name = 'users' \gset
BEGIN;
INSERT INTO users (email, password_hash) VALUES ('t-shadow@example.test', 'x');
SELECT (SELECT n FROM public.row_counts WHERE name = 'users') - :before, (SELECT n FROM pg_temp.row_counts);
ROLLBACK;
--- db_check_out
t
f
1|0
