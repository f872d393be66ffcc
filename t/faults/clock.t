# The database's clock against this host's: a redemption's time limit is
# read by the database's clock (statements.h, too_late). A clock far ahead
# refuses every redemption (503, nothing written, RDM0702), and each new
# backend's first question says how far it is (RDM0120). The clock is moved
# for the module's sessions alone: their search_path finds this test's
# clock_timestamp(), an hour ahead, before pg_catalog's.
use lib 't/lib';
use Test::Redeem;

# SQL that ends the module's sessions, so that its next ones take the role's
# settings afresh.
our $END_SESSIONS = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
  . " WHERE datname = current_database() AND pid <> pg_backend_pid();\n";

sub first_code { return JSON::PP::decode_json(var('CODES'))->[0] }

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the admin makes codes; a clock in step says nothing
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2}
--- error_code: 201
--- save_json
CODES=codes
--- no_error_log
RDM0120



=== TEST 2: the database's clock an hour ahead: the redemption is refused as too late (503, the code unused, no audit row, no month), and the new backend warned of its clock
--- db_init eval
"CREATE SCHEMA t_skew;\n"
  . "CREATE FUNCTION t_skew.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE"
  . " RETURN pg_catalog.clock_timestamp() + interval '1 hour';\n"
  . "GRANT USAGE ON SCHEMA t_skew TO \"$ENV{REDEEM_APP_USER}\";\n"
  . "ALTER ROLE \"$ENV{REDEEM_APP_USER}\" IN DATABASE \"" . var('DB_NAME') . "\" SET search_path = t_skew, pg_catalog, public;\n"
  . $main::END_SESSIONS
--- login: alice
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . main::first_code() . '"}'
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- error_log
/RDM0120: the database's clock is at least 3\d{6} ms ahead of this host's/
/RDM0702: redemption refused by the database as too late, \d+ ms before its time was up by this host's clock/
--- db_check
SELECT count(used_at) FROM redeem_codes;
SELECT count(*) FROM audit_log WHERE event = 'redeem';
SELECT subscription_expires_at IS NULL FROM users WHERE email = 'alice@example.test';
--- db_check_out
0
0
t



=== TEST 3: the clock back in step: the same code redeems
--- db_init eval
"ALTER ROLE \"$ENV{REDEEM_APP_USER}\" IN DATABASE \"" . var('DB_NAME') . "\" RESET search_path;\n"
  . "DROP SCHEMA t_skew CASCADE;\n" . $main::END_SESSIONS
--- login: alice
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . main::first_code() . '"}'
--- error_code: 200
--- db_check
SELECT count(used_at) FROM redeem_codes;
--- db_check_out
1
