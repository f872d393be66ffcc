# Response headers: X-Content-Type-Options: nosniff on every response, JSON
# content type, Cache-Control: no-store where a token or personal data is
# sent, and never a password hash or a server secret in a body.
use lib 't/lib';
use Test::Redeem;

# Every block: nosniff, a JSON content type, and no hash or secret.
add_block_preprocessor(sub {
    my ($block) = @_;
    my $headers = $block->response_headers // '';
    $block->set_value(response_headers => "X-Content-Type-Options: nosniff\n$headers");
    my $like = $block->response_headers_like // '';
    $block->set_value(response_headers_like => "Content-Type: ^application/json\\b\n$like")
      unless $block->request =~ /^HEAD/;
    # $JWT_SECRET is expanded (to letters and digits): no backslash before it,
    # or a leading digit would make the pattern a backreference.
    $block->set_value(response_body_unlike => '\$argon2|$JWT_SECRET|' . "TestPassw0rd1\n");
});

run_tests();

__DATA__

=== TEST 1: 201 of a registration: no-store
--- request
POST /api/register
--- request_json
{"email": "hdr@example.test", "password": "TestPassw0rd1"}
--- error_code: 201
--- response_headers
Cache-Control: no-store



=== TEST 2: 200 of a login: no-store
--- request
POST /api/login
--- request_json
{"email": "hdr@example.test", "password": "TestPassw0rd1"}
--- error_code: 200
--- response_headers
Cache-Control: no-store



=== TEST 3: 200 of the profile: no-store
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- response_headers
Cache-Control: no-store



=== TEST 4: 200 of the user list: no-store
--- login: admin
--- request
GET /api/users
--- error_code: 200
--- response_headers
Cache-Control: no-store



=== TEST 5: 200 of health
--- request
GET /api/health
--- error_code: 200



=== TEST 6: HEAD of health
--- request
HEAD /api/health
--- error_code: 200



=== TEST 7: 401 of a failed login
--- request
POST /api/login
--- request_json
{"email": "hdr@example.test", "password": "WrongPassw0rd"}
--- error_code: 401



=== TEST 8: 401 without a token
--- request
GET /api/profile
--- error_code: 401



=== TEST 9: 403 of a user on the admin list
--- login: alice
--- request
GET /api/users
--- error_code: 403



=== TEST 10: 404
--- request
GET /api/nothing-here
--- error_code: 404



=== TEST 11: 405
--- request
GET /api/login
--- error_code: 405



=== TEST 12: 415
--- request
POST /api/login
--- raw_body
{"email": "hdr@example.test", "password": "TestPassw0rd1"}
--- more_headers
Content-Type: text/plain
--- error_code: 415



=== TEST 13: 400
--- request
POST /api/login
--- request_json
{"email": "hdr@example.test"
--- error_code: 400



=== TEST 14: 409
--- request
POST /api/register
--- request_json
{"email": "hdr@example.test", "password": "TestPassw0rd1"}
--- error_code: 409



=== TEST 15: 413
--- request
POST /api/register
--- request_json eval
'{"email": "big@example.test", "password": "' . ('A1' x 9000) . '"}'
--- error_code: 413



=== TEST 16: a token is never sent with a cacheable response: login with a query string
--- request
POST /api/login?cache=yes
--- request_json
{"email": "hdr@example.test", "password": "TestPassw0rd1"}
--- more_headers
Cache-Control: max-age=3600
--- error_code: 200
--- response_headers
Cache-Control: no-store



=== TEST 17: a Range request gets the whole JSON document: 200, never a 206 cut out of it
--- request
GET /api/health
--- more_headers
Range: bytes=0-4
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}
--- response_headers
!Content-Range



=== TEST 18: ... nor a multipart/byteranges 206 of pieces of it
--- login: hdr
--- request
GET /api/profile
--- more_headers
Range: bytes=0-0,2-2
--- error_code: 200
--- response_json
{"user": {"email": "hdr@example.test"}}
--- response_headers
!Content-Range



=== TEST 19: ... nor httpd's 416 for a range past its end
--- request
GET /api/health
--- more_headers
Range: bytes=99999-
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}
