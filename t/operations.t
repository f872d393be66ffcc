# Operating the module: key files refused at start-up, the schema version
# check, a failing statement answered 500 without driver text, and the bound
# on concurrent password hashing. (The RedeemAdmin bootstrap: t/account/admin.t.)
use lib 't/lib';
use Test::Redeem;
use File::Path qw(make_path);

# Key files for the blocks below, in this file's server directory.
sub key_file {
    my ($name, $content) = @_;
    my $dir = var('SERVROOT') . '/keys';
    make_path($dir);
    open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
    print $fh $content;
    close $fh;
    return "$dir/$name";
}

# One slow login in a child, then another 0.4 s later, while the first still
# hashes: with no wait the second finds the only slot busy (503); with a wait
# longer than a hash it gets the slot when the first is done (401).
sub second_login_while_first_hashes {
    my ($expected) = @_;
    my $body = '{"email":"nobody@example.test","password":"Whatever123"}';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $res = api_request('POST', '/api/login', $body);
        POSIX::_exit($res->{status} == 401 ? 0 : 1);
    }
    select(undef, undef, undef, 0.4);
    my $res = api_request('POST', '/api/login', $body);
    waitpid($pid, 0);
    my $first_ok = $? == 0;
    my %headers = map { lc($_->[0]) => $_->[1] } @{ $res->{headers} };
    die "first login did not answer 401\n" unless $first_ok;
    die "second login answered $res->{status}, not $expected\n" unless $res->{status} == $expected;
    return 1 if $expected != 503;
    die "no Retry-After on the 503\n" unless ($headers{'retry-after'} // '') =~ /^\d+$/;
    die "503 body: $res->{body}\n"
      unless $res->{body} eq '{"error":"Service temporarily unavailable"}';
    return 1;
}

run_tests();

__DATA__

=== TEST 1: a missing code MAC key file refuses to start
--- config
RedeemCodeMACKeyFile /nonexistent/mac_key
--- must_die
--- error_log
RedeemCodeMACKeyFile



=== TEST 2: a code MAC key shorter than 32 bytes refuses to start
--- config eval
"RedeemCodeMACKeyFile " . main::key_file('short_mac', '00112233445566778899aabbccddeeff') . "\n"
--- must_die
--- error_log
shorter than 32 bytes



=== TEST 3: the same key for MAC and encryption refuses to start
--- config eval
my $key = main::key_file('same', 'ab' x 32);
"RedeemCodeMACKeyFile $key\nRedeemCodeEncryptionKeyFile $key\n"
--- must_die
--- error_log
must differ



=== TEST 4: a code MAC key equal to the JWT secret refuses to start
--- config eval
"RedeemCodeMACKeyFile " . main::key_file('jwt_copy', main::jwt_secret()) . "\n"
--- must_die
--- error_log
must differ from the JWT secret



=== TEST 4b: a code encryption key equal to the JWT secret refuses to start
--- config eval
"RedeemCodeEncryptionKeyFile " . main::key_file('jwt_copy_enc', main::jwt_secret()) . "\n"
--- must_die
--- error_log
the code encryption key must differ from the JWT secret



=== TEST 4c: a code MAC key file holding the JWT secret spelled in hex refuses to start (the key used is the bytes the hex spells: the JWT secret's own; compared as text alone, it started)
--- config eval
"RedeemCodeMACKeyFile " . main::key_file('jwt_hex_mac', unpack('H*', main::jwt_secret())) . "\n"
--- must_die
--- error_log
the code MAC key must differ from the JWT secret



=== TEST 4d: the same for the code encryption key
--- config eval
"RedeemCodeEncryptionKeyFile " . main::key_file('jwt_hex_enc', unpack('H*', main::jwt_secret())) . "\n"
--- must_die
--- error_log
the code encryption key must differ from the JWT secret



=== TEST 5: control: no default-password warning with the test admin's password
--- request
GET /api/health
--- error_code: 200
--- check_eval
open my $fh, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
!grep { /RDM0003/ } <$fh>;



=== TEST 6: the database one migration behind: 503, and the log names the migration
--- login: alice
--- db_init
DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations);
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- request
GET /api/profile
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$
--- error_log
/apply sql/\d{3}_\w+\.sql and the migrations after it/



=== TEST 7: the migration applied again: the same connection heals
--- login: alice
--- db_init
INSERT INTO schema_migrations (version) SELECT max(version) + 1 FROM schema_migrations;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- request
GET /api/profile
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 8: a statement that fails: 500 with the contract's body, the reason only in the log
--- login: admin
--- db_init
REVOKE SELECT ON row_counts FROM redeem_app;
--- request
GET /api/users
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- response_body_unlike
(?i)permission|row_counts|relation|denied
--- error_log
permission denied
--- db_check
GRANT SELECT ON row_counts TO redeem_app;
SELECT has_table_privilege('redeem_app', 'row_counts', 'SELECT');
--- db_check_out
t



=== TEST 9: RedeemHashConcurrency 1, RedeemHashWait 0: a login while another hashes gets 503 with Retry-After
--- config
RedeemHashConcurrency 1
RedeemHashWait 0
RedeemArgon2 131072 12 1
# The bound is per child process: one child, so both logins meet in it.
StartServers 1
ServerLimit 1
MaxRequestWorkers 25
--- timeout: 60
--- request
GET /api/health
--- error_code: 200
--- check_eval
main::second_login_while_first_hashes(503);



=== TEST 9b: RedeemHashWait 20000: the same second login waits for the slot instead
--- config
RedeemHashConcurrency 1
RedeemHashWait 20000
RedeemArgon2 131072 12 1
StartServers 1
ServerLimit 1
MaxRequestWorkers 25
--- timeout: 60
--- request
GET /api/health
--- error_code: 200
--- check_eval
main::second_login_while_first_hashes(401);



=== TEST 14: a failing insert is logged without the row (no password hash in the log)
--- db_init
ALTER TABLE users ADD CONSTRAINT no_dave CHECK (email <> 'dave@example.test');
--- request
POST /api/register
--- request_json
{"email": "dave@example.test", "password": "DavePassw0rd1"}
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- error_log
violates check constraint "no_dave"
--- no_error_log
/argon2id/
DavePassw0rd1
--- db_check
ALTER TABLE users DROP CONSTRAINT no_dave;
SELECT count(*) FROM users WHERE email = 'dave@example.test';
--- db_check_out
0



=== TEST 15: statements cannot all be prepared (a table renamed under the server): 500
--- login: alice
--- db_init
ALTER TABLE audit_log RENAME TO audit_log_away;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- request
GET /api/profile
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- error_log
/prepare of [a-z_]+ failed/



=== TEST 16: the table back: every connection heals, half-prepared ones included
--- login: alice
--- db_init
ALTER TABLE audit_log_away RENAME TO audit_log;
--- request
GET /api/profile
--- concurrency: 12
--- error_code_counts
200: 12



=== TEST 17: a number past 64 bits in the query is a 400, not an overflow
--- login: admin
--- request
GET /api/users?page=9999999999999999999
--- error_code: 400
--- response_json
{"error": "/page/"}
