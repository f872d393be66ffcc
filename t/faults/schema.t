# A database whose schema is not the module's version: behind (migrations
# not yet applied) or ahead (a newer module migrated it). Every new
# connection checks the version before it prepares anything; a mismatch
# answers 503 with Retry-After and says which migration to apply (RDM0103)
# or that the module is older (RDM0104), and the site heals by itself once
# the versions agree again. A database with no version table at all is
# 503 too (RDM0102), with what PostgreSQL said.
use lib 't/lib';
use Test::Redeem;

# Every session of the module's ended, so that its next one checks anew.
our $END_SESSIONS = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
  . " WHERE datname = current_database() AND pid <> pg_backend_pid();\n";

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the versions agree: the profile is served
--- login: alice
--- request
GET /api/profile
--- error_code: 200



=== TEST 2: the schema one migration behind: 503 with Retry-After, and the log names the migration to apply and the tool that applies it
--- login: alice
--- db_init eval
"UPDATE schema_migrations SET version = -version WHERE version = (SELECT max(version) FROM schema_migrations);\n"
  . $END_SESSIONS
--- request
GET /api/profile
--- error_code: 503
--- response_headers_like
Retry-After: ^\d+$
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- error_log
/RDM0103: database schema is at version \d+, mod_redeem needs \d+: apply sql/0\d\d_\w+\.sql and the migrations after it \(redeem-migrate applies them in order\)/



=== TEST 2b: twenty requests more within seconds: each is 503 and checks again, but each child logs RDM0103 at error level once in ten seconds (at most ServerLimit 8 lines for the 21 requests; it was a line a request)
--- login: alice
--- request
GET /api/profile
--- error_code: 503
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('alice');
for my $i (1 .. 20) {
    my $res = api_request('GET', '/api/profile', undef, $auth);
    $res->{status} == 503 or die "request $i: $res->{status}\n";
}
open my $log, '<', var('SERVROOT') . '/error.log' or die $!;
my $lines = grep { /\[redeem:error\].*RDM0103/ } <$log>;
$lines >= 1 && $lines <= 8 or die "RDM0103 at error level $lines times for 22 requests\n";
1



=== TEST 3: the migration applied: served again, without a restart
--- login: alice
--- db_init
UPDATE schema_migrations SET version = -version WHERE version < 0;
--- request
GET /api/profile
--- error_code: 200



=== TEST 4: the schema newer than the module: 503, and the log says to upgrade the module
--- login: alice
--- db_init eval
"INSERT INTO schema_migrations (version) SELECT max(version) + 1 FROM schema_migrations;\n" . $END_SESSIONS
--- request
GET /api/profile
--- error_code: 503
--- error_log
/RDM0104: database schema is at version \d+, newer than this mod_redeem \(\d+\): upgrade the module/



=== TEST 5: back to the module's version: served again
--- login: alice
--- db_init
DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations);
--- request
GET /api/profile
--- error_code: 200



=== TEST 6: no schema at all (its version table gone): 503, and the log says so with PostgreSQL's own words, not "(null)"
--- login: alice
--- db_init eval
"ALTER TABLE schema_migrations RENAME TO schema_migrations_away;\n" . $END_SESSIONS
--- request
GET /api/profile
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- error_log
/RDM0102: database has no mod_redeem schema \(relation "schema_migrations" does not exist\): apply sql/001_\w+\.sql/
--- no_error_log
(null)



=== TEST 7: the version table back: served again, without a restart
--- login: alice
--- db_init
ALTER TABLE schema_migrations_away RENAME TO schema_migrations;
--- request
GET /api/profile
--- error_code: 200
