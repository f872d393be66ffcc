# The database out of reach: health answers 503 unhealthy with Retry-After,
# every other endpoint 503 "Service temporarily unavailable" (no SQL or
# driver text); and all heals once the database is back, whether it came
# back through the configuration or while httpd kept running.
use lib 't/lib';
use Test::Redeem;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: (while the database is up: alice, the admin and a code)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json eval
user_token('alice');   # alice registered now, while she can be
'{"count": 3}'
--- error_code: 201
--- save_json
CODE0=codes.0
CODE1=codes.1
CODE2=codes.2



=== TEST 2: DBDParams at a closed port: health is 503 unhealthy with Retry-After
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- request
GET /api/health
--- error_code: 503
--- response_json_exact
{"status": "unhealthy", "message": "Database unavailable"}
--- response_headers_like
Retry-After: ^\d+$
--- response_body_unlike
(?i)connect|postgres|libpq|sql|refused|port



=== TEST 3: closed port: a redemption is 503, nothing leaked
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE0"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$
--- response_body_unlike
(?i)connect|postgres|libpq|sql|refused|port



=== TEST 3b: closed port: a redemption for another user's account (refused before any lookup, its audit row first) is 503, and its attempt is in the error log as failed
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- login: alice
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . var('CODE0') . '", "user_id": ' . (user_id('alice') + 1000) . '}'
--- error_code: 503
--- error_log
/RDM0401: audit: event=redeem actor=\d+ target=- client=127\.0\.0\.1 outcome=failed request=\S+/



=== TEST 3c: closed port: a forged code (refused before any lookup) is 503, and its attempt is in the error log as failed
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}
--- error_code: 503
--- error_log
/RDM0401: audit: event=redeem actor=\d+ target=- client=127\.0\.0\.1 outcome=failed request=\S+/



=== TEST 4: closed port: generating codes is 503
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$



=== TEST 5: closed port: the subscription is 503
--- config
DBDParams "host=127.0.0.1 port=1 dbname=nope user=nope password=nope connect_timeout=2"
--- login: alice
--- request
GET /subscription/$USER_ID_alice
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$



=== TEST 6: the configuration back: healthy
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}
--- response_headers
!Retry-After



=== TEST 7: and the code that could not be redeemed then redeems now
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE0"}
--- error_code: 200
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_alice
--- db_check_out
1



=== TEST 8: at run time the module may no longer connect (CONNECT revoked, backends killed): health 503
--- db_init
REVOKE CONNECT ON DATABASE "$DB_NAME" FROM PUBLIC;
SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- request
GET /api/health
--- error_code: 503
--- response_json_exact
{"status": "unhealthy", "message": "Database unavailable"}
--- response_headers_like
Retry-After: ^\d+$



=== TEST 9: still out of reach: a redemption is 503, the code untouched
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE1"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- response_headers_like
Retry-After: ^\d+$
--- response_body_unlike
(?i)connect|postgres|libpq|sql|permission|denied
--- error_log
/RDM0401: audit: event=redeem actor=\d+ target=- client=127\.0\.0\.1 outcome=failed request=\S+/
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL
--- db_check_out
1



=== TEST 10: still out of reach: a login is 503, not a failed login
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}



=== TEST 11: CONNECT granted again: healthy, without a restart
--- db_init
GRANT CONNECT ON DATABASE "$DB_NAME" TO PUBLIC;
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 12: and everything works again: a redemption
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE1"}
--- error_code: 200



=== TEST 13: many requests at once, over every connection of the pool
--- login: alice
--- request
GET /api/subscription
--- concurrency: 30
--- error_code_counts
200: 30



=== TEST 14: a login
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
