# GET /api/profile and GET /api/users: who may see what, and pagination.
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: the profile of the token's user, exactly the contract's fields
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- response_json_exact
{"user": {"id": $USER_ID_alice, "email": "alice@example.test",
          "created_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"}}
--- response_headers
Cache-Control: no-store
X-Content-Type-Options: nosniff
--- response_headers_like
Content-Type: ^application/json
--- save_json: ALICE_CREATED=user.created_at
--- db_check
SELECT api_ts(created_at) = '$ALICE_CREATED' FROM users WHERE id = $USER_ID_alice
--- db_check_out
t



=== TEST 2: another user sees their own profile
--- login: bob
--- request
GET /api/profile
--- error_code: 200
--- response_json
{"user": {"id": $USER_ID_bob, "email": "bob@example.test"}}



=== TEST 3: no Authorization header: 401 with WWW-Authenticate: Bearer
--- request
GET /api/profile
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer\b
--- response_json
{"error": "/./"}
--- response_headers
X-Content-Type-Options: nosniff



=== TEST 4: another scheme than Bearer
--- request
GET /api/profile
--- more_headers
Authorization: Basic YWxpY2VAZXhhbXBsZS50ZXN0OlRlc3RQYXNzdzByZDE=
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer\b
--- response_json
{"error": "/./"}



=== TEST 5: Bearer without a token
--- request
GET /api/profile
--- more_headers
Authorization: Bearer
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer\b



=== TEST 6: the token alone, without a scheme
--- request
GET /api/profile
--- more_headers
Authorization: $TOKEN_alice
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer\b



=== TEST 7: a token in the query string is not a credential
--- request
GET /api/profile?access_token=$TOKEN_alice
--- error_code: 401



=== TEST 8: the user list is for admins: a user gets 403
--- login: alice
--- request
GET /api/users
--- error_code: 403
--- response_json
{"error": "/./"}
--- response_body_unlike
bob@example\.test
--- response_headers
X-Content-Type-Options: nosniff



=== TEST 9: the user list without a token: 401
--- request
GET /api/users
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer\b



=== TEST 10: the admin lists every user, with exactly the contract's fields
--- login: admin
--- request
GET /api/users
--- error_code: 200
--- response_json_exact
{"users": [
   {"id": "/^\\d+$/", "email": "/^(admin|alice|bob)@example\\.test$/", "created_at": "/Z$/"},
   {"id": "/^\\d+$/", "email": "/^(admin|alice|bob)@example\\.test$/", "created_at": "/Z$/"},
   {"id": "/^\\d+$/", "email": "/^(admin|alice|bob)@example\\.test$/", "created_at": "/Z$/"}],
 "total": 3, "pages": 1, "current_page": 1, "per_page": 50}
--- response_headers
Cache-Control: no-store
--- response_body_unlike
argon2|password|is_admin
--- check_eval
my @emails = sort map { $_->{email} } @{ response()->{json}{users} };
"@emails" eq 'admin@example.test alice@example.test bob@example.test'
  or die "users listed: @emails\n";



=== TEST 11: add carol and dave for the pages
--- login: carol
--- request
GET /api/profile?user=$USER_ID_dave
--- error_code: 200
--- response_json
{"user": {"email": "carol@example.test"}}



=== TEST 12: page 1 of 3 with per_page=2
--- login: admin
--- request
GET /api/users?per_page=2
--- error_code: 200
--- response_json
{"users": [{"id": "/^\\d+$/"}, {"id": "/^\\d+$/"}],
 "total": 5, "pages": 3, "current_page": 1, "per_page": 2}
--- save_json
P1_A=users.0.email
P1_B=users.1.email



=== TEST 13: page 2 of 3 holds other users
--- login: admin
--- request
GET /api/users?page=2&per_page=2
--- error_code: 200
--- response_json
{"users": [{"id": "/^\\d+$/"}, {"id": "/^\\d+$/"}],
 "total": 5, "pages": 3, "current_page": 2, "per_page": 2}
--- check_eval
my @page = map { $_->{email} } @{ response()->{json}{users} };
my %seen = map { $_ => 1 } var('P1_A'), var('P1_B');
!grep({ $seen{$_} } @page) or die "page 2 repeats page 1: @page\n";



=== TEST 14: the last page has the remaining user
--- login: admin
--- request
GET /api/users?page=3&per_page=2
--- error_code: 200
--- response_json
{"users": [{"id": "/^\\d+$/"}], "total": 5, "pages": 3, "current_page": 3, "per_page": 2}



=== TEST 15: a page past the end is empty, not an error
--- login: admin
--- request
GET /api/users?page=9&per_page=2
--- error_code: 200
--- response_json_exact
{"users": [], "total": 5, "pages": 3, "current_page": 9, "per_page": 2}



=== TEST 16: per_page 500 is the maximum
--- login: admin
--- request
GET /api/users?per_page=500
--- error_code: 200
--- response_json
{"total": 5, "pages": 1, "per_page": 500}



=== TEST 17: per_page above 500 is refused (as for /admin/codes)
--- login: admin
--- request
GET /api/users?per_page=501
--- error_code: 400
--- response_json
{"error": "/per_page/"}



=== TEST 18: per_page=0
--- login: admin
--- request
GET /api/users?per_page=0
--- error_code: 400
--- response_json
{"error": "/per_page/"}



=== TEST 19: a negative per_page
--- login: admin
--- request
GET /api/users?per_page=-1
--- error_code: 400
--- response_json
{"error": "/per_page/"}



=== TEST 20: page=0
--- login: admin
--- request
GET /api/users?page=0
--- error_code: 400
--- response_json
{"error": "/page/"}



=== TEST 21: a page that is not a number
--- login: admin
--- request
GET /api/users?page=abc
--- error_code: 400
--- response_json
{"error": "/page/"}



=== TEST 22: a page that is not an integer
--- login: admin
--- request
GET /api/users?page=1.5
--- error_code: 400
--- response_json
{"error": "/page/"}



=== TEST 23: a huge per_page never returns everything
--- login: admin
--- request
GET /api/users?per_page=10000000
--- error_code: 400



=== TEST 24: admin rights come from the database: carol made admin lists users
--- login: carol
--- db_init
UPDATE users SET is_admin = true WHERE email = 'carol@example.test';
--- request
GET /api/users?per_page=1
--- error_code: 200
--- response_json
{"total": 5, "per_page": 1}



=== TEST 25: and carol no longer admin gets 403 with the same token
--- login: carol
--- db_init
UPDATE users SET is_admin = false WHERE email = 'carol@example.test';
--- request
GET /api/users
--- error_code: 403



=== TEST 26: the user list is GET only
--- login: admin
--- request
POST /api/users
--- request_json
{}
--- error_code: 405
--- response_headers_like
Allow: \bGET\b



=== TEST 27: the profile is GET only
--- login: alice
--- request
DELETE /api/profile
--- error_code: 405
--- response_headers_like
Allow: \bGET\b
--- db_check
SELECT count(*) FROM users WHERE email = 'alice@example.test'
--- db_check_out
1
