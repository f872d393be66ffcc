# The RedeemAdmin bootstrap, a step of its own: run once per child, right
# after a request first opens the database (httpd/call.c), never by opening a
# connection and never for a request refused before the database (a bad
# token). It creates the account, promotes an ordinary one only with that
# account's own password, and is idempotent.
use lib 't/lib';
use Test::Redeem;

sub log_has {
    my ($re) = @_;
    open my $fh, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
    return scalar grep { /$re/ } <$fh>;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a request refused before the database (no token) does not create the admin
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
--- request
GET /api/profile
--- error_code: 401
--- db_check
SELECT count(*) FROM users WHERE email = 'first@example.test';
--- db_check_out
0



=== TEST 2: the first request that uses the database creates it, before its handler runs
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
--- request
POST /api/login
--- request_json
{"email": "first@example.test", "password": "FirstPassw0rd1"}
--- error_code: 200
--- response_json
{"user": {"email": "first@example.test"}}
--- error_log
admin account first@example.test created (RedeemAdmin)
--- db_check
SELECT is_admin FROM users WHERE email = 'first@example.test';
--- db_check_out
t



=== TEST 3: a restart creates nothing more and logs no creation
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
# restarted: this comment makes the config differ
--- request
GET /api/health
--- error_code: 200
--- no_error_log
created (RedeemAdmin)
--- db_check
SELECT count(*) FROM users WHERE email = 'first@example.test';
--- db_check_out
1



=== TEST 4: carol registers as an ordinary user
--- login: carol
--- request
GET /api/users
--- error_code: 403



=== TEST 5: RedeemAdmin with another password does not promote the account of that email
--- config
RedeemAdmin "carol@example.test" "SomeOtherPass1"
--- login: carol
--- request
GET /api/users
--- error_code: 403
--- check_eval
# The bootstrap ran when the restarted server answered its first request.
log_has(qr/RedeemAdmin carol\@example\.test: an ordinary account with this email exists/);
--- db_check
SELECT is_admin FROM users WHERE email = 'carol@example.test';
--- db_check_out
f



=== TEST 6: RedeemAdmin with the account's own password promotes it, keeping the password
--- config
RedeemAdmin "carol@example.test" "TestPassw0rd1"
--- login: carol
--- request
GET /api/users
--- error_code: 200
--- check_eval
log_has(qr/account carol\@example\.test made admin/);
--- db_check
SELECT is_admin FROM users WHERE email = 'carol@example.test';
--- db_check_out
t



=== TEST 7: the bootstrap is idempotent: one admin row after every restart
--- config
RedeemAdmin "admin@example.test" "AdminPass12345"
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT count(*) FROM users WHERE lower(email) = 'admin@example.test' AND is_admin;
--- db_check_out
1



=== TEST 8: the well-known default password makes httpd warn
--- config
RedeemAdmin "admin@example.test" "AdminPassword123"
--- request
GET /api/health
--- error_code: 200
--- check_eval
log_has(qr/RDM0003: RedeemAdmin uses the well-known default password/);
