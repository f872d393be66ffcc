# POST /admin/generate-codes at the default maximum: 100000 codes in one
# request, every one in the response and in the database, all different,
# stored in the order of their lookup keys and answered in that order.
use lib 't/lib';
use Test::Redeem;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 100000 codes in one request
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 100000}
--- timeout: 180
--- error_code: 201
--- response_json
{"message": "Successfully generated 100000 redeem codes", "count": 100000}
--- check_eval
# One decode of the 2.9 MB body (JSON::PP takes about a second for it).
my $json = response()->{json};
json_match($json, {message => 'Successfully generated 100000 redeem codes', count => 100000,
                   batch_id => qr/^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/});
my $codes = $json->{codes};
die "codes is not an array\n" unless ref $codes eq 'ARRAY';
die 'got ' . @$codes . " codes\n" unless @$codes == 100000;
my $symbol = qr/[0-9A-HJKMNP-TV-Z]/;
my (%seen, @bad);
for my $code (@$codes) {
    push @bad, $code unless $code =~ /\A(?:$symbol){12}-(?:$symbol){4}-(?:$symbol){8}\z/;
    push @bad, "$code (twice)" if $seen{$code}++;
}
die "bad codes: @bad[0 .. ($#bad < 4 ? $#bad : 4)]\n" if @bad;
# The batch in the database is the one answered.
sql('SELECT DISTINCT batch_id FROM redeem_codes') eq $json->{batch_id}
  or die "the stored batch is not $json->{batch_id}\n";
our @ENDS = (join(' ', @$codes[0 .. 499]), join(' ', @$codes[-500 .. -1]));   # for TEST 2
--- db_check
SELECT count(*), count(DISTINCT code_hash), count(DISTINCT code_sealed), count(DISTINCT batch_id),
       count(*) FILTER (WHERE created_at >= '$REQUEST_TIME')
  FROM redeem_codes;
SELECT sum(total), sum(used) FROM code_counts;
SELECT event, outcome, target LIKE '%' || (SELECT min(batch_id::text) FROM redeem_codes) || '%'
  FROM audit_log;
-- Ids ascend with the key. Every key's first 4 bits are the bucket of the
-- hour the batch was made in (1 + hours since 1970 mod 15; core/code.h), so
-- the batch went to one sixteenth of the index; the other 60 bits are the
-- HMAC's, spread over their whole range. The batch was made after the
-- request was sent and before its transaction began (created_at): its
-- hour is that of one or the other.
SELECT count(*) FILTER (WHERE key < previous),
       count(*) FILTER (WHERE (key >> 60) & 15 NOT IN (
                          1 + (floor(extract(epoch FROM created_at))::bigint / 3600) % 15,
                          1 + (floor(extract(epoch FROM '$REQUEST_TIME'::timestamptz))::bigint / 3600) % 15)),
       count(*) FILTER (WHERE key & x'0800000000000000'::bigint <> 0) BETWEEN 45000 AND 55000
  FROM (SELECT code_lookup_key(code_hash) AS key, created_at,
               lag(code_lookup_key(code_hash)) OVER (ORDER BY id) AS previous
          FROM redeem_codes) AS stored;
--- db_check_out
100000|100000|100000|1|100000
100000|0
codes_generated|success|t
0|0|t



=== TEST 2: the listing of that batch counts them all, and lists its first and last 500 (by id) as they were answered
--- login: admin
--- request
GET /admin/codes?per_page=500
--- error_code: 200
--- response_json
{"total": 100000, "pages": 200, "current_page": 1, "per_page": 500}
--- check_eval
our @ENDS;
my $first = join ' ', map { $_->{code} } @{ response()->{json}{codes} };
$first eq $ENDS[0] or die "the first 500 listed are not the first 500 answered\n";
my $page = api_request('GET', '/admin/codes?per_page=500&page=200', undef,
                       'Authorization: Bearer ' . user_token('admin'))->{json};
my $last = join ' ', map { $_->{code} } @{ $page->{codes} };
$last eq $ENDS[1] or die "the last 500 listed are not the last 500 answered\n";



=== TEST 3: one more than the maximum is refused, and writes nothing
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 100001}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}
--- db_check
SELECT count(*) FROM redeem_codes;
SELECT count(*) FROM audit_log;
--- db_check_out
100000
1



=== TEST 4: all or nothing across statements: a batch is stored 5,000 codes a statement, and a refusal in the third (row 10,001 of 12,000) leaves no code, no count and no audit row
--- db_init
CREATE SEQUENCE t_insert_rows;
CREATE FUNCTION t_fail_late() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF nextval('t_insert_rows') > 10000 THEN
    RAISE EXCEPTION 't_fail_late: refusing row %', currval('t_insert_rows');
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER t_fail_late BEFORE INSERT ON redeem_codes FOR EACH ROW EXECUTE FUNCTION t_fail_late();
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 12000}
--- timeout: 60
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- response_body_unlike
t_fail_late|refusing|INSERT|redeem_codes
--- db_check
SELECT last_value FROM t_insert_rows;
SELECT count(*), (SELECT sum(total) FROM code_counts) FROM redeem_codes;
SELECT count(*) FROM audit_log;
--- db_check_out
10001
100000|100000
1
--- error_log
/RDM0101: database pipeline, statement 4 of 5 failed: t_fail_late: refusing row 10001/
/RDM0401: audit: event=codes_generated actor=$USER_ID_admin .* outcome=failed/



=== TEST 5: the trigger dropped, 10,001 codes (two full statements and one of a single code) are all stored, counted and audited once
--- db_init
DROP TRIGGER t_fail_late ON redeem_codes;
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10001}
--- timeout: 60
--- error_code: 201
--- response_json
{"message": "Successfully generated 10001 redeem codes", "count": 10001, "expires_at": null}
--- check_eval
my $codes = response()->{json}{codes};
@$codes == 10001 or die 'got ' . @$codes . " codes\n";
my %seen;
$seen{$_}++ and die "twice: $_\n" for @$codes;
1
--- save_json
FIRST=codes.0
LAST=codes.10000
--- db_check
SELECT count(*), (SELECT sum(total) FROM code_counts) FROM redeem_codes;
SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND occurred_at >= '$REQUEST_TIME';
--- db_check_out
110001|110001
10001
1



=== TEST 6: the first code of that batch (first statement) redeems
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$FIRST"}
--- error_code: 200



=== TEST 7: and so does its last (the third statement's only code)
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$LAST"}
--- error_code: 200



=== TEST 8: deleting codes in bulk (an operator's one statement: the first batch whole, and the used first code of the second) keeps the counts exact (migration 007: counted once a statement)
--- db_init
DELETE FROM redeem_codes
 WHERE batch_id = (SELECT batch_id FROM redeem_codes ORDER BY id LIMIT 1)
    OR id = (SELECT min(id) FROM redeem_codes WHERE used_at IS NOT NULL);
--- login: admin
--- request
GET /admin/codes?used=true&per_page=1
--- error_code: 200
--- response_json
{"total": 1, "pages": 1, "current_page": 1, "per_page": 1}
--- db_check
SELECT count(*), count(used_at), (SELECT sum(total) FROM code_counts),
       (SELECT sum(used) FROM code_counts) FROM redeem_codes;
SELECT tgname, tgtype & 1 FROM pg_trigger
 WHERE tgrelid = 'redeem_codes'::regclass AND tgname LIKE 'redeem_codes_count%' ORDER BY 1;
--- db_check_out
10000|1|10000|1
redeem_codes_count_change|1
redeem_codes_count_delete|0
redeem_codes_count_insert|0
