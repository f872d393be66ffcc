# The database connections killed under the server (pg_terminate_backend on
# every backend of the file's database): the requests right after succeed,
# whatever they are; the module reconnects the pooled connections the server
# closed and prepares its statements again.
#
# pg_terminate_backend only signals a backend, so db_init then waits until
# every one has gone (its "terminating connection" message sent): the
# connections are dead, not dying, when the request comes. Without the wait a
# request can reach a backend that has the signal but has not acted on it yet;
# that failed with 503 in about one run of this file in ten (the case of a
# connection that dies as it is used is t/faults/stale.t).
use lib 't/lib';
use Test::Redeem;

sub code_at { return JSON::PP::decode_json(var('CODES'))->[$_[0]] }

# Every block with `--- kill` terminates the database's other backends first
# and waits (at most 20 s) until they are gone. (pg_terminate_backend's own
# timeout polls every 100 ms, one backend after the other.)
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless defined $block->kill;
    # Only the backends that were killed are waited for: a child httpd
    # starts meanwhile (its pool opens new connections) must not count.
    $block->set_value(db_init => <<'SQL');
CREATE TEMP TABLE killed AS
  SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid();
SELECT count(pg_terminate_backend(pid)) FROM killed;
DO $$
BEGIN
  FOR i IN 1 .. 2000 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity JOIN killed USING (pid));
    PERFORM pg_sleep(0.01);
  END LOOP;
  PERFORM pg_stat_clear_snapshot();
  IF EXISTS (SELECT FROM pg_stat_activity JOIN killed USING (pid)) THEN
    RAISE EXCEPTION 'killed backends still alive after 20 s';
  END IF;
END
$$;
SQL
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: warm-up: codes generated (the admin's connection is pooled)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 10}
--- error_code: 201
--- save_json
CODES=codes



=== TEST 2: warm-up: many requests at once, so both children pool several connections
--- login: alice
--- request
GET /api/profile
--- concurrency: 30
--- error_code_counts
200: 30
--- db_check
SELECT count(*) > 2 FROM pg_stat_activity WHERE datname = current_database() AND usename = 'redeem_app'
--- db_check_out
t



=== TEST 3: every connection killed: health right after is 200, the module reconnected
--- kill
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 4: then the profile
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 5: then a redemption
--- login: alice
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => code_at(0)})
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully"}



=== TEST 6: then a login
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
--- response_json
{"message": "Login successful"}



=== TEST 7: then 30 requests at once, over every pooled connection
--- login: alice
--- request
GET /api/subscription
--- concurrency: 30
--- error_code_counts
200: 30



=== TEST 8: killed again: the first request is a redemption
--- kill
--- login: bob
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => code_at(1)})
--- error_code: 200
--- db_check
SELECT outcome FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
success



=== TEST 9: killed again: the first request is a login
--- kill
--- request
POST /api/login
--- request_json
{"email": "bob@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
--- response_json
{"message": "Login successful"}



=== TEST 10: killed again: the first requests are 20 redemptions at once, of 8 codes
--- kill
--- login: carol
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => code_at(2 + var('CLIENT_INDEX') % 8)})
--- concurrency: 20
--- error_code_counts
200: 8
409: 12
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_carol
--- db_check_out
8



=== TEST 11: killed again: an admin listing, then generation, all fine
--- kill
--- login: admin
--- request
GET /admin/codes?used=true
--- error_code: 200
--- response_json
{"total": 10}



=== TEST 12: and a generation right after
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 3}
--- error_code: 201



=== TEST 13: no request failed for the database in the whole file
--- request
GET /api/health
--- error_code: 200
--- check_eval
open my $fh, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
my @bad = grep { /RDM0101|RDM0105|RDM0107|\[redeem:error\]/ } <$fh>;
die "@bad" if @bad;
my $reconnects = () = do { seek $fh, 0, 0; grep { /RDM0106/ } <$fh> };
$reconnects >= 5 or die "only $reconnects reconnections logged\n";
