# POST /admin/generate-codes: the 201 body, the code format, validation of
# count / expires_at / duration_months, who may call it, and the audit trail.
# Every refused request must leave no code row and no audit row.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;
use IO::Select;

our $CODE_RE = qr/\A[0-9A-HJKMNP-TV-Z]{12}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{8}\z/;

# The response's codes: $n of them, each in the format, all different.
sub codes_ok {
    my ($n) = @_;
    my $codes = response()->{json}{codes};
    die "codes is not an array\n" unless ref $codes eq 'ARRAY';
    die 'expected ' . $n . ' codes, got ' . @$codes . "\n" unless @$codes == $n;
    my %seen;
    for my $code (@$codes) {
        die "not a code: $code\n" unless $code =~ $CODE_RE;
        die "twice: $code\n" if $seen{$code}++;
    }
    return 1;
}

# A refused request (4xx) writes nothing: no code, no audit row.
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless ($block->error_code // '') =~ /^4/ && !defined $block->db_check;
    $block->set_value(db_check => "SELECT (SELECT count(*) FROM redeem_codes WHERE created_at >= '\$REQUEST_TIME'),"
                                . " (SELECT count(*) FROM audit_log WHERE occurred_at >= '\$REQUEST_TIME'),"
                                . " (SELECT sum(total) FROM code_counts) = (SELECT count(*) FROM redeem_codes)");
    $block->set_value(db_check_out => "0|0|t");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: five codes: 201 with the contract's body
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 201
--- response_json_exact
{"message": "Successfully generated 5 redeem codes", "count": 5,
 "batch_id": "/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/",
 "codes": ["/./", "/./", "/./", "/./", "/./"],
 "duration_months": 1, "expires_at": null}
--- check_eval
codes_ok(5)
--- response_headers
Cache-Control: no-store
--- save_json
BATCH1=batch_id
CODES1=codes
--- db_check
SELECT count(*), count(DISTINCT code_hash), min(duration_months), max(duration_months),
       bool_and(expires_at IS NULL), bool_and(used_at IS NULL AND used_by IS NULL)
  FROM redeem_codes WHERE batch_id = '$BATCH1';
SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME';
--- db_check_out
5|5|1|1|t|t
5



=== TEST 2: the generation's audit row: event, actor, outcome, request id, client address
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2}
--- error_code: 201
--- save_json
BATCH2=batch_id
--- db_check
SELECT event, actor_id = $USER_ID_admin, outcome, request_id IS NOT NULL AND request_id <> '',
       client_addr, target LIKE '%$BATCH2%'
  FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
codes_generated|t|success|t|127.0.0.1|t
--- error_log
/RDM0401: audit: event=codes_generated actor=$USER_ID_admin target=\S*.*$BATCH2.* client=127\.0\.0\.1 outcome=success request=\S+/



=== TEST 3: the error log's audit line and the audit row carry the same request id
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- check_eval
my $batch = response()->{json}{batch_id};
my $row = sql("SELECT request_id FROM audit_log WHERE event = 'codes_generated' AND target LIKE '%$batch%'");
die "no audit row for batch $batch\n" unless length $row;
open my $fh, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
my @lines = grep { /RDM0401: audit: event=codes_generated .*\Q$batch\E/ } <$fh>;
die "expected one audit line for $batch, got " . @lines . "\n" unless @lines == 1;
$lines[0] =~ /request=(\S+)/ && $1 eq $row or die "log line $lines[0] vs request_id $row\n";



=== TEST 4: two batches never share a batch id or a code
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 201
--- check_eval
my $json = response()->{json};
die "same batch id\n" if $json->{batch_id} eq var('BATCH1');
my %first = map { $_ => 1 } @{ JSON::PP::decode_json(var('CODES1')) };
!grep { $first{$_} } @{ $json->{codes} };
--- db_check
SELECT count(DISTINCT batch_id), count(*), count(DISTINCT code_hash) FROM redeem_codes
--- db_check_out
4|13|13



=== TEST 5: count 0 is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 0}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 6: a negative count is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": -1}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 7: count as a string is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": "5"}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 8: count as a float is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1.5}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 9: count 5.0 (a JSON number, not an integer) is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 5.0}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 10: count as a boolean is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": true}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 11: count null is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": null}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 12: a missing count is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"duration_months": 1}
--- error_code: 400
--- response_json_exact
{"error": "Missing field: count"}



=== TEST 13: count over the default maximum (100000) is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 100001}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 14: a count beyond 64 bits is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 99999999999999999999999}
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 15: a count beyond 32 bits is refused, not wrapped
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 4294967297}
--- error_code: 400
--- response_json_exact
{"error": "/count/"}



=== TEST 16: RedeemMaxCodesPerRequest 10: 10 codes are fine
--- config
RedeemMaxCodesPerRequest 10
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10}
--- error_code: 201
--- response_json
{"message": "Successfully generated 10 redeem codes", "count": 10}
--- check_eval
codes_ok(10)
--- db_check
SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME'
--- db_check_out
10



=== TEST 17: RedeemMaxCodesPerRequest 10: 11 codes are refused
--- config
RedeemMaxCodesPerRequest 10
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 11}
--- error_code: 400
--- response_json_exact
{"error": "/count.*\\b10\\b/"}



=== TEST 18: RedeemMaxCodesPerRequest 10: one code is fine
--- config
RedeemMaxCodesPerRequest 10
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- check_eval
codes_ok(1)



=== TEST 19: expires_at without a time is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 20: expires_at without a time zone is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01T00:00:00"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 21: expires_at that is not a date is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "tomorrow"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 22: expires_at on a day that does not exist is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-02-30T00:00:00Z"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 23: expires_at in the past is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2020-01-01T00:00:00Z"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 24: expires_at a second ago is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json eval
my @t = gmtime(now() - 1);
sprintf '{"count": 1, "expires_at": "%04d-%02d-%02dT%02d:%02d:%02dZ"}',
        $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 25: expires_at as a number is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": 1924992000}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 26: a valid future expires_at is stored and answered in the API's format
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 3, "expires_at": "2031-06-15T12:30:00Z"}
--- error_code: 201
--- response_json
{"count": 3, "expires_at": "2031-06-15T12:30:00.000000Z"}
--- save_json
BATCH_EXP=batch_id
--- db_check
SELECT count(*), min(api_ts(expires_at)), max(api_ts(expires_at))
  FROM redeem_codes WHERE batch_id = '$BATCH_EXP'
--- db_check_out
3|2031-06-15T12:30:00.000000Z|2031-06-15T12:30:00.000000Z



=== TEST 27: expires_at with an offset and a fraction is stored as that instant
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-06-15T12:30:00.25+02:00"}
--- error_code: 201
--- response_json
{"count": 1, "expires_at": "2031-06-15T10:30:00.250000Z"}
--- save_json
BATCH_OFF=batch_id
--- db_check
SELECT api_ts(expires_at) FROM redeem_codes WHERE batch_id = '$BATCH_OFF'
--- db_check_out
2031-06-15T10:30:00.250000Z



=== TEST 27b: expires_at with more than nine digits of fraction (RFC 3339 sets no bound; they were 400): the first six kept, the rest cut
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-06-15T12:30:00.123456789012+02:00"}
--- error_code: 201
--- response_json
{"count": 1, "expires_at": "2031-06-15T10:30:00.123456Z"}
--- save_json
BATCH_LONG_FRACTION=batch_id
--- db_check
SELECT api_ts(expires_at) FROM redeem_codes WHERE batch_id = '$BATCH_LONG_FRACTION'
--- db_check_out
2031-06-15T10:30:00.123456Z



=== TEST 28: duration_months 0 is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": 0}
--- error_code: 400
--- response_json_exact
{"error": "/duration_months/"}



=== TEST 29: duration_months 37 is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": 37}
--- error_code: 400
--- response_json_exact
{"error": "/duration_months/"}



=== TEST 30: duration_months as a string is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": "2"}
--- error_code: 400
--- response_json_exact
{"error": "/duration_months/"}



=== TEST 31: duration_months -1 is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": -1}
--- error_code: 400
--- response_json_exact
{"error": "/duration_months/"}



=== TEST 32: duration_months null is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": null}
--- error_code: 400
--- response_json_exact
{"error": "/duration_months/"}



=== TEST 33: duration_months 36 is stored
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2, "duration_months": 36}
--- error_code: 201
--- response_json
{"count": 2, "duration_months": 36}
--- save_json
BATCH36=batch_id
--- db_check
SELECT count(*), min(duration_months), max(duration_months)
  FROM redeem_codes WHERE batch_id = '$BATCH36'
--- db_check_out
2|36|36



=== TEST 34: duration_months 7 is stored
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2, "duration_months": 7}
--- error_code: 201
--- save_json
BATCH7=batch_id
--- db_check
SELECT count(*), min(duration_months), max(duration_months)
  FROM redeem_codes WHERE batch_id = '$BATCH7'
--- db_check_out
2|7|7



=== TEST 35: an unknown field is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "batch_id": "00000000-0000-4000-8000-000000000000"}
--- error_code: 400
--- response_json_exact
{"error": "Unknown field: batch_id"}



=== TEST 36: a duplicate count key is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "count": 2}
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 37: a body that is not JSON is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
count=5
--- error_code: 400
--- response_json_exact
{"error": "/^Malformed JSON/"}



=== TEST 38: a body that is not application/json is 415
--- login: admin
--- request
POST /admin/generate-codes
{"count": 1}
--- error_code: 415
--- response_json_exact
{"error": "/./"}



=== TEST 39: a user who is not an admin gets 403
--- login: alice
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 403
--- response_json_exact
{"error": "Admin access required"}



=== TEST 40: a token that claims admin does not make an admin (rights come from the database)
--- token_eval
my $claims = jwt_claims('alice');
$claims->{admin} = JSON::PP::true;
jwt_forge({alg => 'HS256', typ => 'JWT'}, $claims, jwt_secret())
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 403
--- response_json_exact
{"error": "Admin access required"}



=== TEST 41: no token: 401 with WWW-Authenticate
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Authentication required"}



=== TEST 42: an invalid token: 401
--- more_headers
Authorization: Bearer abc.def.ghi
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}



=== TEST 42b: a user who is not an admin, with a body over the cap: 403, not 413 (who may call comes first); the body was not all read, so the connection closes after the one answer (a request pipelined behind it is not read as part of it)
--- login: alice
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $body = '{"count": 1, "x": "' . ('a' x 17000) . '"}';
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT'), Timeout => 10)
  or die "connect: $!\n";
local $SIG{PIPE} = 'IGNORE';
syswrite($sock, "POST /admin/generate-codes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    . 'Authorization: Bearer ' . user_token('alice') . "\r\nContent-Length: " . length($body) . "\r\n\r\n"
    . $body . "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
my ($all, $sel) = ('', IO::Select->new($sock));
while ($sel->can_read(5)) { sysread($sock, $all, 65536, length $all) or last }
my @answers = $all =~ m{^HTTP/1\.1 (\d{3}) }mg;
"@answers" eq '403' or die "answers: @answers\n$all\n";
$all =~ /\r\nConnection: close\r\n/ or die "not closed:\n$all\n";
$all =~ /\r\n\r\n\{"error":"Admin access required"\}\z/ or die "not the 403's JSON:\n$all\n";
--- db_check
SELECT (SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME'),
       (SELECT count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME')
--- db_check_out
0|0



=== TEST 42c: ... and a chunked one (no length declared: read to the cap): 403
--- login: alice
--- request
POST /admin/generate-codes
--- raw_body eval
my $json = '{"count": 1, "x": "' . ('a' x 17000) . '"}';
my $chunked = '';
$chunked .= sprintf("%x\r\n%s\r\n", length $1, $1) while $json =~ /(.{1,4000})/gs;
"${chunked}0\r\n\r\n"
--- more_headers
Content-Type: application/json
Transfer-Encoding: chunked
!Content-Length
--- error_code: 403
--- response_json_exact
{"error": "Admin access required"}



=== TEST 42d: a deleted user's token with a body over the cap: 401, not 413
--- login: gone42d
--- db_init
DELETE FROM users WHERE email = 'gone42d@example.test';
--- request
POST /admin/generate-codes
--- request_json eval
'{"count": 1, "x": "' . ('a' x 17000) . '"}'
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Invalid or expired token"}



=== TEST 42e: (control) the admin's body over the cap: 413
--- login: admin
--- request
POST /admin/generate-codes
--- request_json eval
'{"count": 1, "x": "' . ('a' x 17000) . '"}'
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}



=== TEST 43: GET is 405 with Allow: POST
--- login: admin
--- request
GET /admin/generate-codes
--- error_code: 405
--- response_headers
Allow: POST
--- response_json_exact
{"error": "/./"}



=== TEST 44: all or nothing: an insert that fails at the 6th row leaves no code and no audit row
--- db_init
CREATE SEQUENCE t_insert_rows;
CREATE FUNCTION t_fail_sixth() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF nextval('t_insert_rows') >= 6 THEN
    RAISE EXCEPTION 't_fail_sixth: refusing row %', currval('t_insert_rows');
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER t_fail_sixth BEFORE INSERT ON redeem_codes FOR EACH ROW EXECUTE FUNCTION t_fail_sixth();
CREATE TABLE t_before AS SELECT (SELECT count(*) FROM redeem_codes) AS codes,
                                (SELECT sum(total) FROM code_counts) AS counted;
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 20}
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- response_body_unlike
t_fail_sixth|refusing|INSERT|redeem_codes
--- db_check
SELECT last_value FROM t_insert_rows;
SELECT (SELECT count(*) FROM redeem_codes) - codes, (SELECT sum(total) FROM code_counts) - counted
  FROM t_before;
SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME';
SELECT count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
--- db_check_out
6
0|0
0
0
--- error_log
/RDM0401: audit: event=codes_generated actor=$USER_ID_admin .* outcome=failed/



=== TEST 45: the trigger dropped, generation works again
--- db_init
DROP TRIGGER t_fail_sixth ON redeem_codes;
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 20}
--- error_code: 201
--- check_eval
codes_ok(20)
--- db_check
SELECT (SELECT count(*) FROM redeem_codes) - codes, (SELECT sum(total) FROM code_counts) - counted
  FROM t_before;
SELECT count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME' AND event = 'codes_generated';
--- db_check_out
20|20
1



=== TEST 46: an offset beyond PostgreSQL's +-15:59 (RFC 3339 allows hours to 23) is stored as its instant: the database gets it in UTC (it was refused with 400; before that it reached the database as it came: 500)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01T00:00:00+16:00"}
--- error_code: 201
--- response_json
{"expires_at": "2030-12-31T08:00:00.000000Z"}
--- save_json
BATCH_46=batch_id
--- db_check
SELECT api_ts(expires_at) FROM redeem_codes WHERE batch_id = '$BATCH_46'
--- db_check_out
2030-12-31T08:00:00.000000Z



=== TEST 47: ... and so is -23:59
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01T00:00:00-23:59"}
--- error_code: 201
--- response_json
{"expires_at": "2031-01-01T23:59:00.000000Z"}



=== TEST 47b: an offset of 24 hours is no RFC 3339 offset: 400
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01T00:00:00+24:00"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 47c: a leap second (23:59:60) is read as the next second, not refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2030-12-31T23:59:60.5Z"}
--- error_code: 201
--- response_json
{"expires_at": "2031-01-01T00:00:00.500000Z"}



=== TEST 47d: ... but a second of 61 is refused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2030-12-31T23:59:61Z"}
--- error_code: 400
--- response_json_exact
{"error": "/expires_at/"}



=== TEST 48: +15:59 (the largest offset PostgreSQL itself takes) is stored as the same instant
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-01-01T15:59:00+15:59"}
--- error_code: 201
--- response_json
{"expires_at": "2031-01-01T00:00:00.000000Z"}



=== TEST 49: digits past the sixth are cut as the module checked them, not rounded by PostgreSQL into the next year (9999 into 10000, which is no RFC 3339 year)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "9999-12-31T23:59:59.9999999Z"}
--- error_code: 201
--- response_json
{"expires_at": "9999-12-31T23:59:59.999999Z"}
--- save_json
BATCH_LAST=batch_id
--- db_check
SELECT api_ts(expires_at) FROM redeem_codes WHERE batch_id = '$BATCH_LAST'
--- db_check_out
9999-12-31T23:59:59.999999Z



=== TEST 50: ... and not into the next second
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "expires_at": "2031-06-30T23:59:59.999999999-00:30"}
--- error_code: 201
--- response_json
{"expires_at": "2031-07-01T00:29:59.999999Z"}



=== TEST 51: the admin demoted while its batch waits for its row (after the token and the user's read passed: another session holds the row, demotes it, commits a second later): the batch's audit statement (its last) sees the demotion once it has the row, and the batch is refused, 403, nothing stored, no row
--- login: admin
--- db_init eval
my $id = user_id('admin');
sql_in_background("BEGIN; UPDATE users SET is_admin = false WHERE id = $id; SELECT pg_sleep(1); COMMIT");
sql_until('the admin row held', q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'
             AND query LIKE 'BEGIN; UPDATE users SET is_admin = false%'});
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 403
--- response_json_exact
{"error": "Admin access required"}
--- error_log
/RDM0505: batch [0-9a-f-]{36} refused: user \d+ is no longer an admin/
--- no_error_log
RDM0401



=== TEST 52: an admin again, its batch is stored
--- login: admin
--- db_init eval
'UPDATE users SET is_admin = true WHERE id = ' . user_id('admin')
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 201
--- check_eval
codes_ok(5)
--- save_json
CODE52=codes.0



=== TEST 52b: the admin's own redemption while its batch of 30,000 waits inside the database (its first codes_insert held 2 s on code_batches by another session; the batch's deadline is RedeemDBTimeout and 100 us a code): 200 at once, not a wait behind the batch, which holds the admin's row only from its last statement to its commit (held from its first, the redemption waited for the row past its 1 s: 503); the batch then stores, 201
--- config
RedeemDBTimeout 1000
--- login: admin
--- db_init eval
our $HELD = hold_lock('code_batches', 'SHARE', 2);
our $BATCH = request_in_background('POST', '/admin/generate-codes', '{"count": 30000}',
                                   'Authorization: Bearer ' . user_token('admin'));
lock_waiters('code_batches', 1);
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE52"}
--- error_code: 200
--- check_eval
my $batch = request_result(our $BATCH);
die "the batch: @$batch\n" unless $batch->[0] eq '201';
waitpid our $HELD, 0;
1
--- db_check
SELECT count(*) FROM redeem_codes WHERE batch_id IN (SELECT substring(target FROM 'batch (\S+)')::uuid
  FROM audit_log WHERE event = 'codes_generated' AND target LIKE '% (30000 codes)');
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_admin AND used_at >= '$REQUEST_TIME';
--- db_check_out
30000
1



=== TEST 53: the admin's tokens revoked while its batch waits for its row: 401, nothing stored, no row (the last block with the admin's token)
--- login: admin
--- db_init eval
my $id = user_id('admin');
sql_in_background("BEGIN; UPDATE users SET token_generation = token_generation + 1 WHERE id = $id; SELECT pg_sleep(1); COMMIT");
sql_until('the admin row held', q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'
             AND query LIKE 'BEGIN; UPDATE users SET token_generation%'});
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- error_log
RDM0203
--- no_error_log
RDM0401
