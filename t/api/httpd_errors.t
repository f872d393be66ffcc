# The answers httpd makes itself on the API's paths come out as the API's
# JSON (the shipped configuration points their ErrorDocument at the module's
# redeem-error handler), with the status the client gets, and the access log
# records that status.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;

# httpd logs a request after it has sent the answer (and closed the
# connection): the line may come a moment after the client has read it.
sub access_status {
    my ($request_line) = @_;
    my @lines;
    for (1 .. 30) {
        open my $fh, '<', var('SERVROOT') . '/access.log' or die $!;
        @lines = grep { index($_, $request_line) >= 0 } <$fh>;
        last if @lines;
        Time::HiRes::sleep(0.1);
    }
    die "no access log line for $request_line" unless @lines;
    return $lines[-1] =~ /" (\d{3}) / ? $1 : die "no status in $lines[-1]";
}

# Sends $request on a connection of its own and reads until the server closes
# it: exactly one response, whose body is its Content-Length and no more.
sub only_one_answer {
    my ($request) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT'), Timeout => 10)
      or die "connect: $!\n";
    print $sock $request;
    local $/;
    my $all = <$sock> // '';
    my ($head, $body) = split /\r\n\r\n/, $all, 2;
    my ($length) = $head =~ /^Content-Length: (\d+)\r?$/mi or die "no Content-Length in:\n$head\n";
    die "more than one answer: " . length($body) . " bytes after the head, Content-Length $length:\n$all\n"
      unless length($body) == $length;
    return 1;
}

# An operator's maintenance answer over one path: httpd's own 503 there.
our $MAINTENANCE = qq(LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
<Location "/api/profile">
  Redirect 503
</Location>
);

run_tests();

__DATA__

=== TEST 1: an encoded slash in the path: 404 in JSON
--- request
GET /api%2Fhealth
--- error_code: 404
--- response_json_exact
{"error": "Not found"}
--- response_headers
X-Content-Type-Options: nosniff
--- check_eval
access_status('GET /api%2Fhealth') == 404



=== TEST 2: a header field over LimitRequestFieldSize: 400 in JSON
--- request
GET /api/health
--- more_headers eval
'X-Big: ' . ('b' x 20000)
--- error_code: 400
--- response_json_exact
{"error": "Malformed request"}



=== TEST 3: a URI over 8190 bytes: 414 in JSON
--- request eval
'GET /api/health?' . ('q' x 9000)
--- error_code: 414
--- response_json_exact
{"error": "URI too long"}



=== TEST 3b: a path longer than a file name may be, under the request line's limit: the API's 404, not httpd's 403 (it mapped the path to a file under DocumentRoot first and failed: File name too long), and nothing logged as an error
--- request eval
'GET /api/' . ('a' x 4100)
--- error_code: 404
--- response_json_exact
{"error": "Not found"}
--- response_headers
X-Content-Type-Options: nosniff
--- no_error_log
AH00127
:error]



=== TEST 4: a body over LimitRequestBody (the module's own cap set higher): 413 in JSON
--- config
RedeemMaxBodySize 1000000
--- request
POST /api/register
--- request_json eval
'{"email": "big@example.test", "password": "Passw0rd123", "pad": "' . ('p' x 70000) . '"}'
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}
--- check_eval
access_status('POST /api/register') == 413



=== TEST 5: the error handler asked for directly is nothing: 404
--- request
GET /.redeem/error
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 6: an expectation httpd does not know (only 100-continue is one): 417 in JSON
--- raw_request eval
my $body = '{"email": "e6@example.test", "password": "Passw0rd123"}';
"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: foo\r\n"
  . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body"
--- error_code: 417
--- response_json_exact
{"error": "Expectation failed"}
--- response_headers
X-Content-Type-Options: nosniff
--- check_eval
access_status('POST /api/login') == 417



=== TEST 7: a GET whose body is over LimitRequestBody: httpd's 413 in JSON, and one answer on the wire (the module writes none of its own after httpd's; before, it wrote one that httpd dropped, so this guards the wire, not that change)
--- raw_request eval
"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 70000\r\n\r\n"
  . ('x' x 70000)
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}
--- check_eval
only_one_answer("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                . "Content-Length: 70000\r\n\r\n" . ('x' x 70000))



=== TEST 7b: a GET whose body is over RedeemMaxBodySize but under LimitRequestBody: the module's 413 (it was read whole and dropped, bounded by LimitRequestBody alone)
--- config
LimitRequestBody 10000000
--- raw_request eval
"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 20000\r\n\r\n"
  . ('x' x 20000)
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}



=== TEST 7c: ... and a chunked one: 413 once the cap is passed
--- config
LimitRequestBody 10000000
--- raw_request eval
"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
  . join('', map { sprintf("%x\r\n%s\r\n", 4000, 'y' x 4000) } 1 .. 5) . "0\r\n\r\n"
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}



=== TEST 7c2: a GET of an authenticated path with no token and a body over RedeemMaxBodySize: 401, not 413 (the token comes first; the connection still closes)
--- request
GET /api/profile
--- raw_body eval
'x' x 20000
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
Connection: ^close$
--- response_json_exact
{"error": "Authentication required"}



=== TEST 7c3: ... a non-admin's GET of an admin path: 403, not 413
--- login: plain7c3
--- request
GET /admin/codes
--- raw_body eval
'x' x 20000
--- error_code: 403
--- response_headers_like
Connection: ^close$
--- response_json_exact
{"error": "Admin access required"}



=== TEST 7c4: ... a user's own GET with such a body: 413 once the caller is allowed
--- login: plain7c3
--- request
GET /api/profile
--- raw_body eval
'x' x 20000
--- error_code: 413
--- response_json_exact
{"error": "Request body too large"}



=== TEST 7d: a GET with a small body: the body is dropped and the GET answered
--- raw_request eval
"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 100\r\n\r\n" . ('z' x 100)
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 8: a GET whose body is not well framed (a broken chunk size): 400
--- raw_request eval
"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
  . "zz\r\nxx\r\n0\r\n\r\n"
--- error_code: 400
--- response_json_exact
{"error": "Malformed request"}
--- check_eval
only_one_answer("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                . "Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n")



=== TEST 9: a request line without a version (HTTP/0.9, whose answers have no header): refused (HttpProtocolOptions Require1.0 in the shipped configurations), in JSON with the API's headers
--- raw_request eval
"GET /api/health\r\n"
--- error_code: 400
--- response_headers
X-Content-Type-Options: nosniff
--- response_json
{"error": "Malformed request"}



=== TEST 10: a 503 httpd makes itself on the API's paths (here a Redirect 503, as an operator may put up for maintenance): in JSON, with the Retry-After the contract wants on every 503 (before, none)
--- config eval
$MAINTENANCE
--- request
GET /api/profile
--- error_code: 503
--- response_headers
Retry-After: 5
X-Content-Type-Options: nosniff
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- check_eval
access_status('GET /api/profile') == 503



=== TEST 11: ... the same 503 when the refusal set its own Retry-After: that one is kept
--- config eval
"$MAINTENANCE" . 'LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
Header always set Retry-After 120 early'
--- request
GET /api/profile
--- error_code: 503
--- response_headers
Retry-After: 120
--- response_json_exact
{"error": "Service temporarily unavailable"}
