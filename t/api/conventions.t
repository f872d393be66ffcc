# The API's conventions: JSON errors for unknown paths, 405 with Allow, 415,
# 413 over the body cap, and 400 for every kind of malformed body. Every
# rejected request must leave the database as it was: each block that does
# not say otherwise also checks that no user was written.
use lib 't/lib';
use Test::Redeem;

add_block_preprocessor(sub {
    my ($block) = @_;
    return if defined $block->db_check;
    $block->set_value(db_check => "SELECT count(*) FROM users WHERE NOT is_admin\n");
    $block->set_value(db_check_out => "0\n");
});

run_tests();

__DATA__

=== TEST 1: an unknown path: 404 with the contract's JSON
--- request
GET /api/nope
--- error_code: 404
--- response_json_exact
{"error": "Not found"}
--- response_headers
X-Content-Type-Options: nosniff



=== TEST 2: the root: 404 JSON
--- request
GET /
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 3: a known path with a trailing segment is unknown
--- request
POST /api/register/extra
--- request_json
{"email": "c3@example.test", "password": "Passw0rd123"}
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 4: an unknown path asked for HTML still answers JSON
--- request
GET /api/nope.html
--- more_headers
Accept: text/html
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 5: GET on a POST endpoint: 405 with Allow
--- request
GET /api/register
--- error_code: 405
--- response_headers_like
Allow: ^POST$
--- response_json
{"error": "/./"}



=== TEST 6: PUT on a POST endpoint: 405, and the body is not used
--- request
PUT /api/register
--- request_json
{"email": "c6@example.test", "password": "Passw0rd123"}
--- error_code: 405
--- response_headers_like
Allow: \bPOST\b
--- response_json
{"error": "/./"}



=== TEST 7: DELETE on a GET endpoint: 405 with Allow naming GET
--- request
DELETE /api/health
--- error_code: 405
--- response_headers_like
Allow: \bGET\b



=== TEST 8: a text/plain body: 415
--- request
POST /api/register
--- raw_body
{"email": "c8@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_json
{"error": "/./"}
--- response_headers
X-Content-Type-Options: nosniff



=== TEST 9: no Content-Type at all: 415
--- request
POST /api/register
--- raw_body
{"email": "c9@example.test", "password": "Passw0rd123"}
--- error_code: 415
--- response_json
{"error": "/./"}



=== TEST 10: a form body: 415
--- request
POST /api/register
--- raw_body
email=c10%40example.test&password=Passw0rd123
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415



=== TEST 11: a look-alike media type: 415
--- request
POST /api/register
--- raw_body
{"email": "c11@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Type: application/jsonx
--- error_code: 415



=== TEST 12: a body over the 16 KiB cap: 413
--- request
POST /api/register
--- request_json eval
my $body = '{"email": "c12@example.test", "password": "Passw0rd123", "pad": "' ;
$body . ('x' x (16384 - length($body) - 2 + 1)) . '"}'    # 16385 bytes
--- error_code: 413
--- response_json
{"error": "/./"}
--- response_headers
X-Content-Type-Options: nosniff



=== TEST 13: a body of exactly 16 KiB is read (and refused for its content)
--- request
POST /api/register
--- request_json eval
my $body = '{"email": "c13@example.test", "password": "' ;
my $json = $body . ('A1' x 10000);
substr($json, 0, 16384 - 2) . '"}'    # 16384 bytes, a far too long password
--- error_code: 400
--- response_json
{"error": "/(?i)password/"}



=== TEST 14: a chunked body over the cap (no Content-Length): 413
--- request
POST /api/register
--- raw_body eval
my $json = '{"email": "c14@example.test", "password": "Passw0rd123", "pad": "' . ('y' x 20000) . '"}';
my $chunked = '';
$chunked .= sprintf("%x\r\n%s\r\n", length $1, $1) while $json =~ /(.{1,4000})/gs;
"${chunked}0\r\n\r\n"
--- more_headers
Content-Type: application/json
Transfer-Encoding: chunked
!Content-Length
--- error_code: 413
--- response_json
{"error": "/./"}



=== TEST 15: not JSON
--- request
POST /api/register
--- request_json
{"email": "c15@example.test", "password": "Passw0rd123"
--- error_code: 400
--- response_json
{"error": "/(?i)json/"}



=== TEST 16: an empty body
--- request
POST /api/register
--- request_json eval
''
--- error_code: 400
--- response_json
{"error": "/(?i)json|empty|body/"}



=== TEST 17: JSON followed by garbage
--- request
POST /api/register
--- request_json
{"email": "c17@example.test", "password": "Passw0rd123"} trailing
--- error_code: 400
--- response_json
{"error": "/(?i)json/"}



=== TEST 18: two JSON objects in one body
--- request
POST /api/register
--- request_json
{"email": "c18@example.test", "password": "Passw0rd123"}{"email": "c18b@example.test", "password": "Passw0rd123"}
--- error_code: 400



=== TEST 19: not an object: an array
--- request
POST /api/register
--- request_json
["c19@example.test", "Passw0rd123"]
--- error_code: 400
--- response_json
{"error": "/(?i)object/"}



=== TEST 20: not an object: a string
--- request
POST /api/register
--- request_json
"c20@example.test"
--- error_code: 400
--- response_json
{"error": "/(?i)object/"}



=== TEST 21: not an object: null
--- request
POST /api/register
--- request_json
null
--- error_code: 400
--- response_json
{"error": "/(?i)object/"}



=== TEST 22: wrong type: the email a number
--- request
POST /api/register
--- request_json
{"email": 22, "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/email/"}



=== TEST 23: wrong type: the password a number
--- request
POST /api/register
--- request_json
{"email": "c23@example.test", "password": 12345678}
--- error_code: 400
--- response_json
{"error": "/password/"}



=== TEST 24: wrong type: the email null
--- request
POST /api/register
--- request_json
{"email": null, "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/email/"}



=== TEST 25: wrong type: the password an array
--- request
POST /api/register
--- request_json
{"email": "c25@example.test", "password": ["Passw0rd123"]}
--- error_code: 400
--- response_json
{"error": "/password/"}



=== TEST 26: wrong type: the email an object
--- request
POST /api/register
--- request_json
{"email": {"address": "c26@example.test"}, "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/email/"}



=== TEST 27: wrong type: the password a boolean
--- request
POST /api/register
--- request_json
{"email": "c27@example.test", "password": true}
--- error_code: 400
--- response_json
{"error": "/password/"}



=== TEST 28: duplicate keys
--- request
POST /api/register
--- request_json
{"email": "c28@example.test", "email": "c28b@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)duplicate/"}



=== TEST 29: duplicate keys with equal values
--- request
POST /api/register
--- request_json
{"email": "c29@example.test", "password": "Passw0rd123", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)duplicate/"}



=== TEST 30: an unknown field: is_admin
--- request
POST /api/register
--- request_json
{"email": "c30@example.test", "password": "Passw0rd123", "is_admin": true}
--- error_code: 400
--- response_json
{"error": "/is_admin/"}



=== TEST 31: an unknown field: id
--- request
POST /api/register
--- request_json
{"id": 1, "email": "c31@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/\\bid\\b/"}



=== TEST 32: \u0000 in the password
--- request
POST /api/register
--- request_json
{"email": "c32@example.test", "password": "Passw0rd\u0000123"}
--- error_code: 400
--- response_json
{"error": "/(?i)u0000|\\bnul/"}



=== TEST 33: \u0000 in the email
--- request
POST /api/register
--- request_json
{"email": "c33\u0000@example.test", "password": "Passw0rd123"}
--- error_code: 400
--- response_json
{"error": "/(?i)u0000|\\bnul/"}



=== TEST 33b: ... and the message is the API's, not jansson's (it named jansson's flag: "\u0000 is not allowed without JSON_ALLOW_NUL")
--- request
POST /api/register
--- request_json
{"email": "a\u0000b@x.test", "password": "Passw0rd123"}
--- error_code: 400
--- check_eval
my $error = response()->{json}{error};
$error =~ /\AMalformed JSON: \\u0000 is not allowed(?: \(at byte \d+\))?\z/ or die "message: $error\n";



=== TEST 33c: a lone surrogate escape: named without quoting the client's escape (it said "invalid Unicode '\uD834'")
--- request
POST /api/register
--- request_json
{"email": "c33c@example.test", "password": "Passw0rd\uD834123"}
--- error_code: 400
--- check_eval
my $error = response()->{json}{error};
$error =~ /\AMalformed JSON: invalid Unicode escape: a surrogate without its pair \(at byte \d+\)\z/ or die "message: $error\n";



=== TEST 34: a raw NUL byte in the body
--- request
POST /api/register
--- request_json eval
qq({"email": "c34\0\@example.test", "password": "Passw0rd123"})
--- error_code: 400
--- response_json
{"error": "/(?i)json|nul|control/"}



=== TEST 34b: a raw NUL byte after a number (jansson drops it and took the rest: 201 and a code made): 400, nothing made
--- login: admin
--- request
POST /admin/generate-codes
--- request_json eval
qq({"count": 1\0})
--- error_code: 400
--- response_json_exact
{"error": "Malformed JSON: a NUL byte (at byte 12)"}
--- db_check
SELECT count(*) FROM redeem_codes
--- db_check_out
0



=== TEST 35: invalid UTF-8: a stray 0xFF byte
--- request
POST /api/register
--- request_json eval
qq({"email": "c35\xff\@example.test", "password": "Passw0rd123"})
--- error_code: 400
--- response_json
{"error": "/(?i)utf-?8|unicode|byte/"}



=== TEST 36: invalid UTF-8: an overlong encoding of '/'
--- request
POST /api/register
--- request_json eval
qq({"email": "c36\@example.test", "password": "Passw0rd123\xc0\xaf"})
--- error_code: 400
--- response_json
{"error": "/(?i)utf-?8|unicode|byte/"}



=== TEST 37: invalid UTF-8: a truncated sequence
--- request
POST /api/register
--- request_json eval
qq({"email": "c37\@example.test", "password": "Passw0rd123\xe2\x82"})
--- error_code: 400
--- response_json
{"error": "/(?i)utf-?8|unicode|byte/"}



=== TEST 38: an escaped lone surrogate
--- request
POST /api/register
--- request_json
{"email": "c38@example.test", "password": "Passw0rd123\ud800"}
--- error_code: 400
--- response_json
{"error": "/(?i)unicode|surrogate|utf|\\\\u/"}



=== TEST 39: too deep: 5000 nested arrays
--- request
POST /api/register
--- request_json eval
'{"email": ' . ('[' x 5000) . (']' x 5000) . ', "password": "Passw0rd123"}'
--- error_code: 400
--- response_json
{"error": "/(?i)deep|depth|nest/"}



=== TEST 40: moderately deep: a nested value where a string belongs
--- request
POST /api/register
--- request_json eval
'{"email": "c40@example.test", "password": ' . ('{"a":' x 100) . '1' . ('}' x 100) . '}'
--- error_code: 400
--- response_json
{"error": "/password/"}



=== TEST 41: a UTF-8 BOM before the JSON
--- request
POST /api/register
--- request_json eval
qq(\xef\xbb\xbf{"email": "c41\@example.test", "password": "Passw0rd123"})
--- error_code: 400



=== TEST 42: malformed JSON on login
--- request
POST /api/login
--- request_json
{"email": "x@example.test", "password":
--- error_code: 400
--- response_json
{"error": "/(?i)json/"}



=== TEST 43: raw HTTP/1.0 without a Host header still gets the JSON answer
--- raw_request
GET /api/health HTTP/1.0
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 44: a Content-Length that is not a number: 400, nothing written
--- raw_request eval
my $body = '{"email": "c44@example.test", "password": "Passw0rd123"}';
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
  . "Content-Type: application/json\r\nContent-Length: abc\r\n\r\n$body"
--- error_code: 400
--- response_json_exact
{"error": "Malformed request"}



=== TEST 45: a broken chunk size: 400, nothing written
--- raw_request eval
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
  . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
  . "zz\r\n{\"email\": \"c45\@example.test\"}\r\n0\r\n\r\n"
--- error_code: 400
--- response_json_exact
{"error": "Malformed request"}



=== TEST 46: a declared length over the cap is refused before the body arrives
--- raw_request eval
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
  . "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"email\": "
--- timeout: 5
--- error_code: 413
--- response_json
{"error": "/./"}



=== TEST 47: a charset parameter is still JSON: 201
--- request
POST /api/register
--- raw_body
{"email": "c43@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Type: application/json; charset=utf-8
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'c43@example.test'
--- db_check_out
1



=== TEST 47b: ... so is charset="UTF-8" quoted, among other parameters: 201
--- request
POST /api/register
--- raw_body
{"email": "c47b@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Type: application/json; x=y; charset="UTF-8"
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'c47b@example.test'
--- db_check_out
1



=== TEST 47c: a charset parameter names no encoding the body may use: a body of UTF-8 alone is JSON (RFC 8259), so an ASCII body declared us-ascii registers
--- request
POST /api/register
--- raw_body
{"email": "c47c@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Type: application/json; charset=us-ascii
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'c47c@example.test'
--- db_check_out
1



=== TEST 47d: ... and Latin-1 bytes declared iso-8859-1 are not UTF-8: 400, and nothing made
--- request
POST /api/register
--- raw_body eval
qq({"email": "c47d\@example.test", "password": "P\xe9ssw0rd123"})
--- more_headers
Content-Type: application/json; charset=iso-8859-1
--- error_code: 400
--- response_json
{"error": "/^Malformed JSON: /"}
--- db_check
SELECT count(*) FROM users WHERE email = 'c47d@example.test'
--- db_check_out
0



=== TEST 48: an unknown field with a long name: named up to 64 characters, then its length
--- request
POST /api/register
--- request_json eval
'{"email": "c48@example.test", "password": "Passw0rd123", "' . ('\u00e4' x 2000) . '": 1}'
--- error_code: 400
--- response_body eval
'{"error":"Unknown field: ' . ("\xc3\xa4" x 64) . '... (2000 characters)"}'
--- db_check
SELECT count(*) FROM users WHERE email = 'c48@example.test'
--- db_check_out
0



=== TEST 49: a body declared larger than RedeemMaxBodySize (16384 here, under LimitRequestBody) is refused at once with 413, before a byte of it is read or sent (the client waits for nothing)
--- request
GET /api/health
--- error_code: 200
--- check_eval
use IO::Socket::INET;
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT'), Timeout => 5) or die "connect: $!\n";
print $sock "POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Content-Length: 20000\r\n\r\n";
my $line;
eval {
    local $SIG{ALRM} = sub { die "no answer within 3 s\n" };
    alarm 3;
    $line = <$sock>;
    alarm 0;
};
alarm 0;
die $@ if $@;
defined $line && $line =~ m{^HTTP/1\.1 413 } or die 'answered: ' . ($line // 'nothing') . "\n";
--- db_check
SELECT count(*) FROM users WHERE created_at >= '$REQUEST_TIME'
--- db_check_out
0



=== TEST 50: a gzip-encoded JSON body: 415 (the module decodes no content coding; RFC 9110 15.5.16), with Accept-Encoding naming the one it takes, not 400 "Malformed JSON"
--- request
POST /api/register
--- raw_body eval
use IO::Compress::Gzip qw(gzip);
my ($in, $out) = ('{"email": "c50@example.test", "password": "Passw0rd123"}');
gzip(\$in => \$out) or die "gzip\n";
$out
--- more_headers
Content-Type: application/json
Content-Encoding: gzip
--- error_code: 415
--- response_json_exact
{"error": "Content-Encoding must be identity"}
--- response_headers
Accept-Encoding: identity
--- db_check
SELECT count(*) FROM users WHERE email = 'c50@example.test'
--- db_check_out
0



=== TEST 50b: ... a body declared gzip that is plain JSON is not read as JSON either: 415
--- request
POST /api/register
--- request_json
{"email": "c50b@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Encoding: GZIP
--- error_code: 415
--- response_json_exact
{"error": "Content-Encoding must be identity"}
--- db_check
SELECT count(*) FROM users WHERE email = 'c50b@example.test'
--- db_check_out
0



=== TEST 50c: ... nor one of two codings with identity among them: 415
--- request
POST /api/register
--- request_json
{"email": "c50c@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Encoding: identity, br
--- error_code: 415
--- response_json_exact
{"error": "Content-Encoding must be identity"}
--- db_check
SELECT count(*) FROM users WHERE email = 'c50c@example.test'
--- db_check_out
0



=== TEST 50d: ... on an admin endpoint too (its body read before its caller's rights): 415
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- more_headers
Content-Encoding: deflate
--- error_code: 415
--- response_json_exact
{"error": "Content-Encoding must be identity"}
--- db_check
SELECT count(*) FROM redeem_codes
--- db_check_out
0



=== TEST 50e1: a body in a transfer coding under chunked (gzip, chunked): 501 (httpd takes off the chunks only, and the module decodes no other transfer coding; RFC 9112 6.1), not 400 "Malformed JSON"
--- raw_request eval
use IO::Compress::Gzip qw(gzip);
my ($in, $out) = ('{"email": "c50e1@example.test", "password": "Passw0rd123"}');
gzip(\$in => \$out) or die "gzip\n";
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
  . "Transfer-Encoding: gzip, chunked\r\n\r\n" . sprintf("%x\r\n%s\r\n", length $out, $out) . "0\r\n\r\n"
--- error_code: 501
--- response_json_exact
{"error": "Transfer-Encoding other than chunked is not supported"}
--- db_check
SELECT count(*) FROM users WHERE email = 'c50e1@example.test'
--- db_check_out
0



=== TEST 50e2: ... chunked alone, in any case, is read as JSON: 201
--- raw_request eval
my $json = '{"email": "c50e2@example.test", "password": "Passw0rd123"}';
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
  . "Transfer-Encoding: Chunked\r\n\r\n" . sprintf("%x\r\n%s\r\n", length $json, $json) . "0\r\n\r\n"
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'c50e2@example.test'
--- db_check_out
1



=== TEST 50e: Content-Encoding: identity (no coding) is read as JSON: 201
--- request
POST /api/register
--- request_json
{"email": "c50e@example.test", "password": "Passw0rd123"}
--- more_headers
Content-Encoding: Identity
--- error_code: 201
--- response_headers
!Accept-Encoding
--- db_check
SELECT count(*) FROM users WHERE email = 'c50e@example.test'
--- db_check_out
1
