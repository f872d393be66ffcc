# GET /api/health: the liveness answer and its headers.
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: health answers 200 with the contract's body
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}
--- response_headers
X-Content-Type-Options: nosniff
--- response_headers_like
Content-Type: ^application/json

=== TEST 2: health takes no credentials and ignores a bad token
--- request
GET /api/health
--- more_headers
Authorization: Bearer not.a.token
--- error_code: 200
--- response_json
{"status": "healthy"}

=== TEST 3: POST to health is 405 with Allow naming GET
--- request
POST /api/health
--- request_json
{}
--- error_code: 405
--- response_headers_like
Allow: \bGET\b
X-Content-Type-Options: ^nosniff$
--- response_json
{"error": "/./"}

=== TEST 4: HEAD of health is allowed and has no body
--- request
HEAD /api/health
--- error_code: 200
--- response_body
