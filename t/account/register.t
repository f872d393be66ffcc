# POST /api/register: the account, its token, email and password rules.
# (Malformed bodies are in conventions.t; concurrent duplicates in concurrent.t.)
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: a new account: 201 with exactly the contract's fields
--- request
POST /api/register
--- request_json
{"email": "reg1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- response_json_exact
{"message": "User registered successfully",
 "user": {"id": "/^[1-9][0-9]*$/", "email": "reg1@example.test",
          "created_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"},
 "access_token": "/^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$/",
 "token_type": "Bearer",
 "expires_in": 3600}
--- response_headers
Cache-Control: no-store
X-Content-Type-Options: nosniff
--- response_body_unlike
argon2|Passw0rd123
--- save_json
REG1_TOKEN=access_token
REG1_ID=user.id
REG1_CREATED=user.created_at
--- db_check
SELECT email, is_admin, password_hash LIKE '$argon2id$%', password_hash LIKE '%Passw0rd123%'
  FROM users WHERE email = 'reg1@example.test'
--- db_check_out
reg1@example.test|f|t|f



=== TEST 2: the answer's id and created_at are the stored ones
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT id = $REG1_ID, api_ts(created_at) = '$REG1_CREATED', created_at > now() - interval '5 minutes'
  FROM users WHERE email = 'reg1@example.test'
--- db_check_out
t|t|t



=== TEST 3: the token of the registration works
--- request
GET /api/profile
--- more_headers
Authorization: Bearer $REG1_TOKEN
--- error_code: 200
--- response_json_exact
{"user": {"id": $REG1_ID, "email": "reg1@example.test", "created_at": "$REG1_CREATED"}}



=== TEST 4: the token: HS256, and exactly the contract's claims
--- request
POST /api/register
--- request_json
{"email": "reg2@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my $body = response()->{json};
my ($header, $claims) = jwt_decode($body->{access_token});
my $id = $body->{user}{id};
json_match($header, {alg => 'HS256', typ => 'JWT'}, 'exact');
json_match($claims, {sub => "$id", user_id => $id + 0, email => 'reg2@example.test',
                     admin => JSON::PP::false, iat => qr/^\d+$/, exp => qr/^\d+$/,
                     jti => qr/^\S{8,}$/, gen => 0, aud => site_aud()}, 'exact');
abs($claims->{iat} - now()) < 60 or die "iat $claims->{iat} is not now\n";
$claims->{exp} == $claims->{iat} + 3600 or die "exp is not iat + 3600\n";
1



=== TEST 5: two registrations get different token ids (jti)
--- request
POST /api/register
--- request_json
{"email": "reg3@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my (undef, $mine) = jwt_decode(response()->{json}{access_token});
my (undef, $other) = jwt_decode(var('REG1_TOKEN'));
$mine->{jti} ne $other->{jti} or die "jti repeated: $mine->{jti}\n";



=== TEST 6: the email is trimmed and lowercased
--- request
POST /api/register
--- request_json
{"email": "  Reg4.Mixed@EXAMPLE.Test \t", "password": "Passw0rd123"}
--- error_code: 201
--- response_json
{"user": {"email": "reg4.mixed@example.test"}}
--- db_check
SELECT email FROM users WHERE lower(email) = 'reg4.mixed@example.test'
--- db_check_out
reg4.mixed@example.test



=== TEST 7: the same email again: 409 with the contract's message
--- request
POST /api/register
--- request_json
{"email": "reg1@example.test", "password": "OtherPassw0rd"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}
--- db_check
SELECT count(*), bool_and(password_hash NOT LIKE '%OtherPassw0rd%') FROM users
 WHERE lower(email) = 'reg1@example.test'
--- db_check_out
1|t



=== TEST 8: the same email in another case: 409
--- request
POST /api/register
--- request_json
{"email": "REG1@Example.TEST", "password": "Passw0rd123"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}
--- db_check
SELECT count(*) FROM users WHERE lower(email) = 'reg1@example.test'
--- db_check_out
1



=== TEST 9: the same email with blanks around it: 409
--- request
POST /api/register
--- request_json
{"email": " reg1@example.test ", "password": "Passw0rd123"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}



=== TEST 10: an email of 254 characters is accepted
--- request
POST /api/register
--- request_json eval
my $domain = join('.', ('d' x 60) x 4) . '.abcde';   # 248 characters
die "length" unless length("user\@$domain") == 254;
qq({"email": "user\@$domain", "password": "Passw0rd123"})
--- error_code: 201
--- db_check
SELECT length(email) FROM users WHERE email LIKE 'user@ddd%'
--- db_check_out
254



=== TEST 11: an email of 255 characters is refused
--- request
POST /api/register
--- request_json eval
my $domain = join('.', ('e' x 60) x 4) . '.abcdef';
qq({"email": "user\@$domain", "password": "Passw0rd123"})
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'user@eee%'
--- db_check_out
0



=== TEST 12: email without @
--- request
POST /api/register
--- request_json
{"email": "bad1.example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'bad%'
--- db_check_out
0



=== TEST 13: email with two @
--- request
POST /api/register
--- request_json
{"email": "bad2@x@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'bad%'
--- db_check_out
0



=== TEST 14: email whose domain has no dot
--- request
POST /api/register
--- request_json
{"email": "bad3@localhost", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'bad%'
--- db_check_out
0



=== TEST 15: email with a space inside
--- request
POST /api/register
--- request_json
{"email": "bad 4@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'bad%'
--- db_check_out
0



=== TEST 16: email with nothing before the @
--- request
POST /api/register
--- request_json
{"email": "@bad5.example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE '%bad5%'
--- db_check_out
0



=== TEST 17: email with nothing after the @
--- request
POST /api/register
--- request_json
{"email": "bad6@", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'bad%'
--- db_check_out
0



=== TEST 18: empty and blank emails
--- request
POST /api/register
--- request_json
{"email": "   ", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}
--- db_check
SELECT count(*) FROM users WHERE NOT is_admin
--- db_check_out
5



=== TEST 19: a password of 8 characters is accepted
--- request
POST /api/register
--- request_json
{"email": "pw8@example.test", "password": "Abcdefg1"}
--- error_code: 201



=== TEST 20: a password of 7 characters is refused
--- request
POST /api/register
--- request_json
{"email": "pw7@example.test", "password": "Abcdef1"}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pw7@example.test'
--- db_check_out
0



=== TEST 21: a password of 128 characters is accepted
--- request
POST /api/register
--- request_json eval
my $password = 'A1' . ('b' x 126);
qq({"email": "pw128\@example.test", "password": "$password"})
--- error_code: 201



=== TEST 22: a password of 129 characters is refused (not truncated)
--- request
POST /api/register
--- request_json eval
my $password = 'A1' . ('b' x 127);
qq({"email": "pw129\@example.test", "password": "$password"})
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pw129@example.test'
--- db_check_out
0



=== TEST 23: lengths count characters: 128 two-byte characters are accepted
--- request
POST /api/register
--- request_json eval
my $password = 'a1' . ("\xc3\xa9" x 126);   # 128 characters, 254 bytes of UTF-8
qq({"email": "pwutf8\@example.test", "password": "$password"})
--- error_code: 201



=== TEST 24: lengths count characters: 129 of them are refused
--- request
POST /api/register
--- request_json eval
my $password = 'a1' . ("\xc3\xa9" x 127);
qq({"email": "pwutf8b\@example.test", "password": "$password"})
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pwutf8b@example.test'
--- db_check_out
0



=== TEST 25: lengths count characters: 7 characters in 13 bytes are refused
--- request
POST /api/register
--- request_json eval
my $password = "\xc3\xa9" x 6 . '1';
qq({"email": "pwutf8c\@example.test", "password": "$password"})
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}



=== TEST 26: a password without a digit is refused
--- request
POST /api/register
--- request_json
{"email": "pwnodigit@example.test", "password": "PasswordOnly"}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pwnodigit@example.test'
--- db_check_out
0



=== TEST 27: a password without a letter is refused
--- request
POST /api/register
--- request_json
{"email": "pwnoletter@example.test", "password": "1234567890"}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pwnoletter@example.test'
--- db_check_out
0



=== TEST 27b: a password whose only other characters are a symbol (€) has no letter: refused
--- request
POST /api/register
--- request_json
{"email": "pweuro@example.test", "password": "\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac1"}
--- error_code: 400
--- response_json
{"error": "Password must contain at least one letter and one digit"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pweuro@example.test'
--- db_check_out
0



=== TEST 27c: nor has one of digits and a space (U+2003) or a lone combining accent (U+0301): refused
--- request
POST /api/register
--- request_json
{"email": "pwmark@example.test", "password": "12345678\u0301\u2003"}
--- error_code: 400
--- response_json
{"error": "Password must contain at least one letter and one digit"}
--- db_check
SELECT count(*) FROM users WHERE email = 'pwmark@example.test'
--- db_check_out
0



=== TEST 27d: a letter of another script is one: Cyrillic and a digit, accepted
--- request
POST /api/register
--- request_json
{"email": "pwcyrillic@example.test", "password": "\u043f\u0430\u0440\u043e\u043b\u044c12"}
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'pwcyrillic@example.test'
--- db_check_out
1



=== TEST 28: an empty password is refused
--- request
POST /api/register
--- request_json
{"email": "pwempty@example.test", "password": ""}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}



=== TEST 29: "is_admin": true is an unknown field, not a way to become admin
--- request
POST /api/register
--- request_json
{"email": "sneaky@example.test", "password": "Passw0rd123", "is_admin": true}
--- error_code: 400
--- response_json
{"error": "/is_admin/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'sneaky@example.test'
--- db_check_out
0



=== TEST 30: a missing password
--- request
POST /api/register
--- request_json
{"email": "nopw@example.test"}
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}
--- db_check
SELECT count(*) FROM users WHERE email = 'nopw@example.test'
--- db_check_out
0



=== TEST 31: a missing email
--- request
POST /api/register
--- request_json
{"password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)email/"}



=== TEST 32: an empty object
--- request
POST /api/register
--- request_json
{}
--- error_code: 400
--- response_json
{"error": "/(?i)email|password/"}
--- db_check
SELECT count(*) FROM users WHERE NOT is_admin
--- db_check_out
9



=== TEST 33: the admin account cannot be registered again
--- request
POST /api/register
--- request_json
{"email": "$ADMIN_EMAIL", "password": "Passw0rd123"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}
--- db_check
SELECT count(*), bool_and(is_admin) FROM users WHERE lower(email) = '$ADMIN_EMAIL'
--- db_check_out
1|t
