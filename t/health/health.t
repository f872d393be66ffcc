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



=== TEST 5: the database unreachable: health says 503 unhealthy
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- request
GET /api/health
--- error_code: 503
--- response_json_exact
{"status": "unhealthy", "message": "Database unavailable"}
--- response_headers
X-Content-Type-Options: nosniff
--- response_body_unlike
(?i)connect|postgres|libpq|sql|port



=== TEST 6: the database unreachable: register is 503 with Retry-After, nothing leaked
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- request
POST /api/register
--- request_json
{"email": "down@example.test", "password": "Passw0rd123"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$
--- response_body_unlike
(?i)connect|postgres|libpq|sql|port



=== TEST 7: the database unreachable: login is 503, not a failed login
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- request
POST /api/login
--- request_json
{"email": "$ADMIN_EMAIL", "password": "$ADMIN_PASSWORD"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$



=== TEST 8: the database unreachable: a valid token gets 503, not 401
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- token_eval
jwt_forge({alg => 'HS256', typ => 'JWT'},
          {sub => '1', user_id => 1, email => 'admin@example.test', admin => JSON::PP::true,
           iat => now(), exp => now() + 3600, jti => 'down-1', aud => site_aud()}, jwt_secret())
--- request
GET /api/profile
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$



=== TEST 9: the database back: healthy again
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 10: while a statement succeeded less than half a second ago, health asks the database nothing
--- config
StartServers 1
ServerLimit 1
<Location "/metrics">
  SetHandler redeem-metrics
</Location>
--- login: hal
--- request
GET /api/profile
--- error_code: 200
--- check_eval
my $acquires = sub {
    api_request('GET', '/metrics')->{body} =~ /^redeem_db_acquires_total (\d+)$/m ? $1 : die 'no metric';
};
my $before = $acquires->();
my $res = api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('hal'));
$res->{status} == 200 or die 'profile';
my $after_profile = $acquires->();
my $health = api_request('GET', '/api/health');
$health->{status} == 200 or die "health: $health->{status}";
my $after_health = $acquires->();
$after_profile == $before + 1 or die "a profile takes one connection: $before -> $after_profile";
$after_health == $after_profile or die "health asked the database: $after_profile -> $after_health";
Time::HiRes::sleep(0.6);
api_request('GET', '/api/health')->{status} == 200 or die 'stale health';
$acquires->() == $after_health + 1 or die 'after half a second, health asks the database';
