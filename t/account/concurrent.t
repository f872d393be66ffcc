# Concurrent registrations of one email: exactly one 201, the rest 409,
# never a 500, and one row.
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: twenty clients register one email at once
--- request
POST /api/register
--- request_json
{"email": "race@example.test", "password": "Passw0rd123"}
--- concurrency: 20
--- error_code_counts
201: 1
409: 19
--- db_check
SELECT count(*) FROM users WHERE lower(email) = 'race@example.test'
--- db_check_out
1
--- no_error_log
/:(?:error|crit|alert|emerg)\]/



=== TEST 2: twenty clients register one email in different cases at once
--- request
POST /api/register
--- request_json eval
# Each client sends the same bytes; the case differs from the first block's.
'{"email": "Race2@Example.Test", "password": "Passw0rd123"}'
--- concurrency: 20
--- error_code_counts
201: 1
409: 19
--- db_check
SELECT count(*), min(email) FROM users WHERE lower(email) = 'race2@example.test'
--- db_check_out
1|race2@example.test



=== TEST 3: the winner's account works: it logs in
--- request
POST /api/login
--- request_json
{"email": "race@example.test", "password": "Passw0rd123"}
--- error_code: 200



=== TEST 4: and a late registration of it is 409
--- request
POST /api/register
--- request_json
{"email": "RACE@example.test", "password": "Passw0rd123"}
--- error_code: 409
--- response_json_exact
{"error": "Email already registered"}
