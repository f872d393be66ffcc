# A batch's codes (migration 009): no index on batch_id; code_batches keeps
# each batch's lowest and highest id, written by triggers whoever inserts or
# moves codes, and GET /admin/codes?batch_id= reads that range of the primary
# key and keeps the batch's own rows, even where batches' ranges overlap. A
# database of version 8 migrates to it with its batches listed as before.
use lib 't/lib';
use Test::Redeem;

sub listed_codes { return [map { $_->{code} } @{ response()->{json}{codes} }] }

sub same_codes {
    my ($got, $want) = @_;
    my @got = sort @$got;
    my @want = sort @$want;
    die "listed @got\nwanted @want\n" unless "@got" eq "@want";
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the schema: no index of redeem_codes on batch_id, the batches' table (the module may read it, only the triggers write it, and no role may run a trigger function itself), version 9
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT count(*) FROM pg_index WHERE indrelid = 'redeem_codes'::regclass
   AND pg_get_indexdef(indexrelid) LIKE '%batch_id%';
SELECT count(*) FROM code_batches;
SELECT count(*) FROM schema_migrations WHERE version = 9;
SELECT has_table_privilege('redeem_app', 'code_batches', 'SELECT'),
       has_table_privilege('redeem_app', 'code_batches', 'INSERT, UPDATE, DELETE'),
       has_function_privilege('redeem_app', 'code_batches_extend(uuid, bigint, bigint)', 'EXECUTE');
SELECT p.proname, has_function_privilege('redeem_app', p.oid, 'EXECUTE')
  FROM pg_proc p WHERE p.prosecdef AND p.prorettype = 'trigger'::regtype
   AND p.pronamespace = 'public'::regnamespace ORDER BY 1;
--- db_check_out
0
0
1
t|f|f
code_batches_fold_moves|f
code_batches_insert|f
code_batches_note_move|f
code_counts_change|f
code_counts_delete|f
code_counts_insert|f
users_count_rows|f



=== TEST 2: batch A of 7 codes: its range is its lowest and highest id
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 7}
--- error_code: 201
--- save_json
BATCH_A=batch_id
CODES_A=codes
--- db_check
SELECT b.first_id = min(c.id), b.last_id = max(c.id), count(*)
  FROM code_batches b JOIN redeem_codes c USING (batch_id)
 WHERE batch_id = '$BATCH_A' GROUP BY b.first_id, b.last_id;
--- db_check_out
t|t|7



=== TEST 3: batch B of 5 codes, stored after A
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 201
--- save_json
BATCH_B=batch_id
CODES_B=codes
LAST_B=codes.4
--- db_check
SELECT (SELECT last_id FROM code_batches WHERE batch_id = '$BATCH_A')
     < (SELECT first_id FROM code_batches WHERE batch_id = '$BATCH_B');
--- db_check_out
t



=== TEST 4: B's last code moved to A by hand: A's range now spans all of B, and A lists its 7 and that one, none of B's other 4
--- db_init
UPDATE redeem_codes SET batch_id = '$BATCH_A'
 WHERE id = (SELECT max(id) FROM redeem_codes WHERE batch_id = '$BATCH_B');
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A
--- error_code: 200
--- response_json
{"total": 8, "pages": 1, "next_after_id": null}
--- check_eval
same_codes(listed_codes(), [@{ JSON::PP::decode_json(var('CODES_A')) }, var('LAST_B')]);
--- db_check
SELECT a.last_id = b.last_id FROM code_batches a, code_batches b
 WHERE a.batch_id = '$BATCH_A' AND b.batch_id = '$BATCH_B';
SELECT count(*) FROM code_batch_moves;
--- db_check_out
t
0



=== TEST 5: B, whose range lies inside A's, lists its other 4 only
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B
--- error_code: 200
--- response_json
{"total": 4, "pages": 1, "next_after_id": null}
--- check_eval
my @b = @{ JSON::PP::decode_json(var('CODES_B')) };
same_codes(listed_codes(), [@b[0 .. 3]]);



=== TEST 6: one of A's codes redeemed, for the used filter over the overlapping range
--- login: alice
--- request
POST /redeem
--- request_json eval
my $codes = JSON::PP::decode_json(var('CODES_A'));
qq({"card_code": "$codes->[2]"})
--- error_code: 200



=== TEST 7: A with used=true: that one code, total 1
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&used=true
--- error_code: 200
--- response_json
{"total": 1, "pages": 1}
--- check_eval
same_codes(listed_codes(), [JSON::PP::decode_json(var('CODES_A'))->[2]]);



=== TEST 8: A with used=false, five to a page: the first page of its 7 unused codes
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&used=false&per_page=5
--- error_code: 200
--- response_json
{"total": 7, "pages": 2}
--- save_json
A_PAGE1=codes
A_AFTER=next_after_id



=== TEST 9: the cursor's second page of A
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&used=false&per_page=5&after_id=$A_AFTER
--- error_code: 200
--- response_json
{"total": 7, "next_after_id": null}
--- check_eval
my @a = @{ JSON::PP::decode_json(var('CODES_A')) };
my @page1 = map { $_->{code} } @{ JSON::PP::decode_json(var('A_PAGE1')) };
same_codes([@page1, @{ listed_codes() }], [@a[0, 1, 3 .. 6], var('LAST_B')]);



=== TEST 10: codes stored by SQL, two statements of one transaction: the triggers give their batch one range over both; all of them moved to another batch in one statement: its range covers them, no note left
--- db_init
BEGIN;
INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
SELECT sha256(('t10-' || n)::bytea), substring(sha256(('s' || n)::bytea) || sha256(('u' || n)::bytea) FROM 1 FOR 52),
       '11111111-1111-4111-8111-111111111111' FROM generate_series(1, 300) AS n;
INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
SELECT sha256(('t10-' || n)::bytea), substring(sha256(('s' || n)::bytea) || sha256(('u' || n)::bytea) FROM 1 FOR 52),
       '11111111-1111-4111-8111-111111111111' FROM generate_series(301, 420) AS n;
COMMIT;
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT b.first_id = min(c.id), b.last_id = max(c.id), count(*)
  FROM code_batches b JOIN redeem_codes c USING (batch_id)
 WHERE batch_id = '11111111-1111-4111-8111-111111111111' GROUP BY b.first_id, b.last_id;
UPDATE redeem_codes SET batch_id = '22222222-2222-4222-8222-222222222222'
 WHERE batch_id = '11111111-1111-4111-8111-111111111111';
SELECT b.first_id = min(c.id), b.last_id = max(c.id), count(*)
  FROM code_batches b JOIN redeem_codes c USING (batch_id)
 WHERE batch_id = '22222222-2222-4222-8222-222222222222' GROUP BY b.first_id, b.last_id;
SELECT count(*) FROM code_batch_moves;
DELETE FROM redeem_codes WHERE batch_id = '22222222-2222-4222-8222-222222222222';
--- db_check_out
t|t|420
t|t|420
0



=== TEST 11: the batch's range is an index condition on the primary key in both statements' generic plans (sequential scans off: this table is too small for the plan a large one gets)
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check eval
"SET plan_cache_mode = force_generic_plan;\nSET enable_seqscan = off;\n"
  . "PREPARE t_page AS " . statement_sql('SQL_CODES_PAGE_BATCH') . ";\n"
  . "PREPARE t_count AS " . statement_sql('SQL_CODES_COUNT_BATCH') . ";\n"
  . "EXPLAIN (COSTS OFF) EXECUTE t_page('" . var('BATCH_A') . "', '{t,f}', 0, 50, 0);\n"
  . "EXPLAIN (COSTS OFF) EXECUTE t_count('" . var('BATCH_A') . "');\n"
--- db_check_like
(?s)(?:Index Scan using|Bitmap Index Scan on) redeem_codes_pkey(?: on redeem_codes(?: redeem_codes_\d+)?)?\n\s+Index Cond: \(\(id >= \$\d\) AND \(id <= \$\d\) AND \(id > \$3\)\).*(?:Index Scan using|Bitmap Index Scan on) redeem_codes_pkey(?: on redeem_codes(?: redeem_codes_\d+)?)?\n\s+Index Cond: \(\(id >= \$\d\) AND \(id <= \$\d\)\)



=== TEST 12: every code of B deleted: its listing is empty, its row kept
--- db_init
DELETE FROM redeem_codes WHERE batch_id = '$BATCH_B';
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B
--- error_code: 200
--- response_json_exact
{"codes": [], "total": 0, "pages": 0, "current_page": 1, "per_page": 50, "next_after_id": null}
--- db_check
SELECT count(*) FROM code_batches WHERE batch_id = '$BATCH_B';
--- db_check_out
1



=== TEST 13: a database of version 8 (the index on (batch_id, id), no code_batches) migrated by sql/009: A lists as before
--- db_init
DROP FUNCTION code_batches_insert() CASCADE;
DROP FUNCTION code_batches_note_move() CASCADE;
DROP FUNCTION code_batches_fold_moves() CASCADE;
DROP FUNCTION code_batches_extend(uuid, bigint, bigint);
DROP TABLE code_batches, code_batch_moves;
CREATE INDEX redeem_codes_batch_id ON redeem_codes (batch_id, id);
DELETE FROM schema_migrations WHERE version = 9;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
BEGIN;
\i sql/009_code_batches.sql
COMMIT;
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A
--- error_code: 200
--- response_json
{"total": 8, "pages": 1}
--- check_eval
same_codes(listed_codes(), [@{ JSON::PP::decode_json(var('CODES_A')) }, var('LAST_B')]);
--- db_check
SELECT count(*) FROM pg_index WHERE indrelid = 'redeem_codes'::regclass
   AND pg_get_indexdef(indexrelid) LIKE '%batch_id%';
SELECT count(*) FROM schema_migrations WHERE version = 9;
SELECT b.first_id = min(c.id), b.last_id = max(c.id), count(*)
  FROM code_batches b JOIN redeem_codes c USING (batch_id)
 WHERE batch_id = '$BATCH_A' GROUP BY b.first_id, b.last_id;
--- db_check_out
0
1
t|t|8
