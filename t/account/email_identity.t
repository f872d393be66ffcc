# One address, one account, beyond ASCII: emails are folded (NFC, then
# lowercased by ICU in the database: email_key, sql/003) for uniqueness,
# storage and login; invisible, bidirectional-control and other look-alike
# code points are refused; the local part's 64 characters are characters.
use lib 't/lib';
use Test::Redeem;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a non-ASCII capital registers, stored and answered lowercased
--- request
POST /api/register
--- request_json
{"email": "\u00c4rger@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- response_json
{"user": {"email": "\u00e4rger@example.test"}}
--- db_check
SELECT email = U&'\00E4rger@example.test' FROM users WHERE id = (SELECT max(id) FROM users)
--- db_check_out
t



=== TEST 2: the same address in lower case is taken (it used to register a second account)
--- request
POST /api/register
--- request_json
{"email": "\u00e4rger@example.test", "password": "Passw0rd123"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}
--- db_check
SELECT count(*) FROM users WHERE email_key(email) = email_key(U&'\00E4rger@example.test')
--- db_check_out
1



=== TEST 3: ... and so is its decomposed form (A + combining diaeresis)
--- request
POST /api/register
--- request_json
{"email": "a\u0308rger@example.test", "password": "Passw0rd123"}
--- error_code: 409



=== TEST 4: login with another case and form of the address
--- request
POST /api/login
--- request_json
{"email": "A\u0308RGER@EXAMPLE.TEST", "password": "Passw0rd123"}
--- error_code: 200
--- response_json
{"user": {"email": "\u00e4rger@example.test"}}



=== TEST 5: a right-to-left override is refused
--- request
POST /api/register
--- request_json
{"email": "moc.elpmaxe\u202e@evil.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json_exact
{"error": "Invalid email: contains spaces, invisible or forbidden characters"}



=== TEST 6: a zero-width space is refused
--- request
POST /api/register
--- request_json
{"email": "ali\u200bce@example.test", "password": "Passw0rd123"}
--- error_code: 400



=== TEST 7: a no-break space is refused
--- request
POST /api/register
--- request_json
{"email": "ali\u00a0ce@example.test", "password": "Passw0rd123"}
--- error_code: 400



=== TEST 8: a local part of 64 two-byte characters is accepted (64 characters, 128 bytes)
--- request
POST /api/register
--- request_json eval
'{"email": "' . ("\\u00e9" x 64) . '@example.test", "password": "Passw0rd123"}'
--- error_code: 201



=== TEST 9: ... 65 are refused
--- request
POST /api/register
--- request_json eval
'{"email": "' . ("\\u00e9" x 65) . '@example.test", "password": "Passw0rd123"}'
--- error_code: 400
--- response_json_exact
{"error": "Invalid email: local part longer than 64 characters"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE '%example.test' AND NOT is_admin
--- db_check_out
2



=== TEST 10: an address of 205 characters whose key is 405 (NFC takes U+0958 apart into two): 400, nothing stored
--- request
POST /api/register
--- request_json eval
'{"email": "a@' . ("\\u0958" x 200) . '.in", "password": "Passw0rd123"}'
--- error_code: 400
--- response_json_exact
{"error": "Invalid email: longer than 254 characters once normalized"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'a@%.in'
--- db_check_out
0



=== TEST 11: ... logging in with it is the usual 401, not a failure
--- request
POST /api/login
--- request_json eval
'{"email": "a@' . ("\\u0958" x 200) . '.in", "password": "Passw0rd123"}'
--- error_code: 401
--- response_json_exact
{"error": "Invalid email or password"}



=== TEST 12: one whose key grows but stays within 254 characters (105 → 205) is accepted, stored as its key
--- request
POST /api/register
--- request_json eval
'{"email": "b@' . ("\\u0958" x 100) . '.in", "password": "Passw0rd123"}'
--- error_code: 201
--- db_check
SELECT length(email), email = normalize(email, NFC) FROM users WHERE email LIKE 'b@%.in'
--- db_check_out
205|t



=== TEST 13: a shorthand format control (U+1BCA0, invisible) is refused like the other invisible characters
--- request
POST /api/register
--- request_json
{"email": "ab\ud82f\udca0c@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json_exact
{"error": "Invalid email: contains spaces, invisible or forbidden characters"}



=== TEST 14: the Greek question mark (U+037E), which the database's folding turns into ';', is refused as ';' is; nothing stored
--- request
POST /api/register
--- request_json
{"email": "a\u037eb@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json_exact
{"error": "Invalid email: contains spaces, invisible or forbidden characters"}
--- db_check
SELECT count(*) FROM users WHERE email LIKE '%;%' OR email LIKE U&'%\037E%'
--- db_check_out
0



=== TEST 15: ... and the Greek varia (U+1FEF), which folds into '`', allowed ASCII, registers, stored as its fold
--- request
POST /api/register
--- request_json
{"email": "a\u1fefb@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- response_json
{"user": {"email": "a`b@example.test"}}
