# POST /api/login: sessions for registered accounts, one answer for every
# failed login, and passwords that are never truncated.
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: register lena
--- request
POST /api/register
--- request_json
{"email": "lena@example.test", "password": "LenaPassw0rd"}
--- error_code: 201
--- save_json: LENA_ID=user.id



=== TEST 2: login: 200 with exactly the contract's fields
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "LenaPassw0rd"}
--- error_code: 200
--- response_json_exact
{"message": "Login successful",
 "user": {"id": $LENA_ID, "email": "lena@example.test",
          "created_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"},
 "access_token": "/^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$/",
 "token_type": "Bearer",
 "expires_in": 3600}
--- response_headers
Cache-Control: no-store
X-Content-Type-Options: nosniff
--- response_body_unlike
argon2|LenaPassw0rd
--- save_json: LENA_TOKEN=access_token



=== TEST 3: the login token works and names lena
--- request
GET /api/profile
--- more_headers
Authorization: Bearer $LENA_TOKEN
--- error_code: 200
--- response_json
{"user": {"id": $LENA_ID, "email": "lena@example.test"}}



=== TEST 4: the login token's claims
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "LenaPassw0rd"}
--- error_code: 200
--- check_eval
my ($header, $claims) = jwt_decode(response()->{json}{access_token});
json_match($header, {alg => 'HS256', typ => 'JWT'}, 'exact');
json_match($claims, {sub => var('LENA_ID') . '', user_id => var('LENA_ID') + 0,
                     email => 'lena@example.test', admin => JSON::PP::false,
                     iat => qr/^\d+$/, exp => qr/^\d+$/, jti => qr/./, gen => 0, aud => site_aud()}, 'exact');
$claims->{exp} == $claims->{iat} + 3600 or die "exp is not iat + 3600\n";



=== TEST 5: the email is matched case-insensitively
--- request
POST /api/login
--- request_json
{"email": "LENA@Example.Test", "password": "LenaPassw0rd"}
--- error_code: 200
--- response_json
{"user": {"id": $LENA_ID, "email": "lena@example.test"}}



=== TEST 6: the email is trimmed
--- request
POST /api/login
--- request_json
{"email": "  lena@example.test ", "password": "LenaPassw0rd"}
--- error_code: 200
--- response_json
{"user": {"id": $LENA_ID}}



=== TEST 7: a wrong password: 401 with the contract's message
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "WrongPassw0rd"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}
--- response_body_unlike
access_token



=== TEST 8: the password is case-sensitive
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "lenapassw0rd"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}



=== TEST 8b: a wrong password the registration policy would refuse (short, no digit): the same 401, not the policy's 400 (a login is no place to judge a password)
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "abc"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}



=== TEST 9: an unknown email: the same 401 as a wrong password
--- request
POST /api/login
--- request_json
{"email": "nobody@example.test", "password": "LenaPassw0rd"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}
--- response_headers
Cache-Control: no-store
X-Content-Type-Options: nosniff
--- db_check
SELECT count(*) FROM users WHERE email = 'nobody@example.test'
--- db_check_out
0



=== TEST 10: the admin of RedeemAdmin can log in and is admin
--- request
POST /api/login
--- request_json
{"email": "$ADMIN_EMAIL", "password": "$ADMIN_PASSWORD"}
--- error_code: 200
--- response_json
{"user": {"email": "$ADMIN_EMAIL"}, "token_type": "Bearer"}
--- check_eval
my (undef, $claims) = jwt_decode(response()->{json}{access_token});
json_match($claims, {admin => JSON::PP::true, email => var('ADMIN_EMAIL')});



=== TEST 11: register a user with a 100-character password
--- request
POST /api/register
--- request_json eval
my $password = 'Aa1' . join('', map { chr(ord('a') + $_ % 26) } 1 .. 97);
qq({"email": "long\@example.test", "password": "$password"})
--- error_code: 201



=== TEST 12: the first 72 characters of that password do not log in (no truncation)
--- request
POST /api/login
--- request_json eval
my $password = 'Aa1' . join('', map { chr(ord('a') + $_ % 26) } 1 .. 97);
$password = substr($password, 0, 72);
qq({"email": "long\@example.test", "password": "$password"})
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}



=== TEST 13: the whole password logs in
--- request
POST /api/login
--- request_json eval
my $password = 'Aa1' . join('', map { chr(ord('a') + $_ % 26) } 1 .. 97);
qq({"email": "long\@example.test", "password": "$password"})
--- error_code: 200
--- response_json
{"user": {"email": "long@example.test"}}



=== TEST 14: the whole password and one more character do not
--- request
POST /api/login
--- request_json eval
my $password = 'Aa1' . join('', map { chr(ord('a') + $_ % 26) } 1 .. 97) . 'x';
qq({"email": "long\@example.test", "password": "$password"})
--- error_code: 401



=== TEST 15: a missing password is a malformed request, not a failed login
--- request
POST /api/login
--- request_json
{"email": "lena@example.test"}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}



=== TEST 16: a password that is not a string
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": 12345678}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}



=== TEST 17: an unknown field
--- request
POST /api/login
--- request_json
{"email": "lena@example.test", "password": "LenaPassw0rd", "remember": true}
--- error_code: 400
--- response_json
{"error": "/remember/"}



=== TEST 18: login is POST only
--- request
GET /api/login
--- error_code: 405
--- response_headers_like
Allow: \bPOST\b
--- response_json
{"error": "/./"}



=== TEST 19: a failed login writes nothing
--- request
POST /api/login
--- request_json
{"email": "ghost@example.test", "password": "Passw0rd123"}
--- error_code: 401
--- db_check
SELECT count(*) FROM users WHERE NOT is_admin
--- db_check_out
2



=== TEST 20: with a production Argon2 cost, register a user to time
--- config
RedeemArgon2 19456 2 1
--- request
POST /api/register
--- request_json
{"email": "timing@example.test", "password": "TimingPassw0rd"}
--- error_code: 201



=== TEST 21: an unknown email takes about as long as a wrong password
--- config
RedeemArgon2 19456 2 1
--- request
GET /api/health
--- error_code: 200
--- check_eval
# Seven logins each, taking turns: a known email with a wrong password, and
# an unknown email (verified against a dummy hash, so not much faster). The
# fastest of each is compared: a hashing slot's first hash also faults in its
# argon2 memory (slow under ASan), and which login meets a fresh slot is
# chance; an unknown email that skipped the hash would still be far faster.
my %fastest;
for my $turn (1 .. 7) {
    for my $email ('timing@example.test', 'unknown-timing@example.test') {
        my $res = api_request(POST => '/api/login',
                              qq({"email": "$email", "password": "WrongPassw0rd"}));
        $res->{status} == 401 or die "login of $email: $res->{status}\n";
        $fastest{$email} = $res->{elapsed}
          if !defined $fastest{$email} || $res->{elapsed} < $fastest{$email};
    }
}
my ($known, $unknown) = @fastest{'timing@example.test', 'unknown-timing@example.test'};
my $ratio = $unknown / $known;
$ratio > 1 / 3 && $ratio < 3
  or die sprintf "unknown email %.1f ms, wrong password %.1f ms\n", 1000 * $unknown, 1000 * $known;



=== TEST 22: with another Argon2 cost, register hera: her hash is made at that cost
--- config
RedeemArgon2 2048 1 1
--- request
POST /api/register
--- request_json
{"email": "hera@example.test", "password": "HeraPassw0rd1"}
--- error_code: 201
--- db_check
SELECT split_part(password_hash, '$', 4) FROM users WHERE email = 'hera@example.test'
--- db_check_out
m=2048,t=1,p=1



=== TEST 23: back at the suite's cost, a wrong password for hera changes nothing
--- request
POST /api/login
--- request_json
{"email": "hera@example.test", "password": "WrongPassw0rd1"}
--- error_code: 401
--- db_check
SELECT split_part(password_hash, '$', 4) FROM users WHERE email = 'hera@example.test'
--- db_check_out
m=2048,t=1,p=1
--- no_error_log
RDM0309



=== TEST 24: hera logs in: her hash is made again at the configured cost, and her password still logs in
--- request
POST /api/login
--- request_json
{"email": "hera@example.test", "password": "HeraPassw0rd1"}
--- error_code: 200
--- db_check
SELECT split_part(password_hash, '$', 4) FROM users WHERE email = 'hera@example.test'
--- db_check_out
m=1024,t=1,p=1
--- error_log
/RDM0309: the password hash of user \d+ made again at RedeemArgon2's cost/
--- check_eval
my $res = api_request(POST => '/api/login', '{"email": "hera@example.test", "password": "HeraPassw0rd1"}');
$res->{status} == 200 or die "the second login: $res->{status}\n";
my $wrong = api_request(POST => '/api/login', '{"email": "hera@example.test", "password": "HeraPassw0rd2"}');
$wrong->{status} == 401 or die "a wrong password after the rehash: $wrong->{status}\n";



=== TEST 25: a hash at the configured cost is left as it is
--- db_init
CREATE TABLE IF NOT EXISTS hera_hash AS SELECT password_hash FROM users WHERE email = 'hera@example.test';
--- request
POST /api/login
--- request_json
{"email": "hera@example.test", "password": "HeraPassw0rd1"}
--- error_code: 200
--- db_check
SELECT u.password_hash = h.password_hash FROM users u, hera_hash h WHERE u.email = 'hera@example.test'
--- db_check_out
t
--- no_error_log
RDM0309



=== TEST 25b: with another Argon2 cost, register iris
--- config
RedeemArgon2 2048 1 1
--- request
POST /api/register
--- request_json
{"email": "iris@example.test", "password": "IrisPassw0rd1"}
--- error_code: 201



=== TEST 25c: iris's password reset while her login makes her hash again: the login is 200 and the reset stays (the rehash writes only over the hash it verified; it overwrote the reset, and her old password logged in again)
--- request
GET /api/health
--- error_code: 200
--- check_eval
# The hash an operator's reset of iris's password writes: a second
# account's, at the configured cost (a login with it makes nothing again).
my $res = api_request(POST => '/api/register', '{"email": "iris-reset@example.test", "password": "IrisResetPassw0rd1"}');
$res->{status} == 201 or die "the second account: $res->{status}\n";
# The reset holds iris's row from before her login's read until her
# login's rehash waits for it, then writes the new hash and commits: the
# rehash runs after the reset, on the hash the login read.
my $reset = sql_in_background(<<'SQL');
BEGIN;
SELECT 1 FROM users WHERE email = 'iris@example.test' FOR UPDATE;
DO $$
BEGIN
  FOR i IN 1 .. 1000 LOOP
    IF EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted) THEN
      RETURN;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RAISE EXCEPTION 'no rehash waited for the reset';
END $$;
UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE email = 'iris-reset@example.test')
  WHERE email = 'iris@example.test';
COMMIT;
SQL
sql_until("iris's row held by the reset",
          "SELECT xmax::text <> '0' FROM users WHERE email = 'iris\@example.test'");
my $login = request_result(request_in_background(POST => '/api/login',
  '{"email": "iris@example.test", "password": "IrisPassw0rd1"}'));
waitpid $reset, 0;
$? == 0 or die "the reset failed (exit $?): no rehash waited for it\n";
$login->[0] == 200 or die "the login read the hash before the reset: $login->[0]\n";
sql("SELECT u.password_hash = r.password_hash FROM users u, users r WHERE u.email = 'iris\@example.test'"
    . " AND r.email = 'iris-reset\@example.test'") eq 't'
  or die "the rehash overwrote the reset\n";
my $new = api_request(POST => '/api/login', '{"email": "iris@example.test", "password": "IrisResetPassw0rd1"}');
$new->{status} == 200 or die "the reset password: $new->{status}\n";
my $old = api_request(POST => '/api/login', '{"email": "iris@example.test", "password": "IrisPassw0rd1"}');
$old->{status} == 401 or die "the old password after the reset: $old->{status}\n";
1;
--- no_error_log
RDM0309



=== TEST 25d: with another Argon2 cost, register juno
--- config
RedeemArgon2 2048 1 1
--- request
POST /api/register
--- request_json
{"email": "juno@example.test", "password": "JunoPassw0rd1"}
--- error_code: 201



=== TEST 25e: juno logs in where making her hash again outlasts RedeemDBTimeout (0.25 s; a RedeemArgon2 of 0.7 s on the Intel machines of make bench, 1.3 s on the AMD ones): the login is 200, the new hash is not sent, and the old one stays (the rehash's statement, too late, left its result unset, and the child freed what its stack held: a crash)
--- config
RedeemDBTimeout 250
RedeemArgon2 32768 40 1
--- request
POST /api/login
--- request_json
{"email": "juno@example.test", "password": "JunoPassw0rd1"}
--- error_code: 200
--- response_json
{"message": "Login successful"}
--- error_log
/RDM0114: statement user_rehash: not sent, RedeemDBTimeout \(250 ms\) ran out before it/
/RDM0308: the password hash of user \d+, made at another cost than RedeemArgon2's, could not be made again \(503\): kept as it is/
--- db_check
SELECT split_part(password_hash, '$', 4) FROM users WHERE email = 'juno@example.test'
--- db_check_out
m=2048,t=1,p=1
--- no_error_log
RDM0309
