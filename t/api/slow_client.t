# Clients that send slowly. A body that stops arriving is answered 408 with
# the API's JSON once mod_reqtimeout's limit for bodies runs out (make run's
# configuration: `RequestReadTimeout ... body=10,MinRate=500`; Debian's
# default 20 s; here 2 s, so that the test is quick), and nothing it
# carried is acted on: no account,
# no code used. A body trickled too slowly is cut the same way. A request
# head that stops arriving is httpd's to answer (408 from mod_reqtimeout,
# in the API's JSON). Meanwhile such a client holds a thread and nothing
# else: no pooled connection (an admin's body is read before the admin's
# rights are, since that read keeps its connection until the request
# ends), so a child with a single connection goes on answering.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => "RequestReadTimeout header=2 body=2,MinRate=500\n")
      unless defined $block->config;
});

# A connection that sent $head and $sent_body of its body, waiting.
sub stalled {
    my ($bytes) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT'), Timeout => 10)
      or die "connect: $!\n";
    syswrite($sock, $bytes) == length $bytes or die "write: $!\n";
    return $sock;
}

# Everything the server sends on $sock until it closes it (or $seconds pass).
sub answer_of {
    my ($sock, $seconds) = @_;
    my ($all, $deadline) = ('', Time::HiRes::time() + $seconds);
    my $sel = IO::Select->new($sock);
    while ($sel->can_read($deadline - Time::HiRes::time())) {
        sysread($sock, $all, 65536, length $all) or last;
    }
    return $all;
}

# Everything the server answers to $first, then $rest sent $pause seconds
# later (a slow client within the limits).
sub sent_in_two {
    my ($first, $rest, $pause) = @_;
    my $sock = stalled($first);
    Time::HiRes::sleep($pause);
    syswrite($sock, $rest) == length $rest or die "write: $!\n";
    return answer_of($sock, 10);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a registration whose body stops half-way: 408 in JSON after the body's limit, no account
--- raw_request eval
my $body = '{"email": "slow1@example.test", "password": "Passw0rd123"}';
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Content-Length: " . length($body) . "\r\n\r\n" . substr($body, 0, 30)
--- error_code: 408
--- response_body
{"error":"Request body timed out"}
--- response_headers
Connection: close
X-Content-Type-Options: nosniff
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed > 1.5 && $elapsed < 6 or die "answered after $elapsed s, not about 2\n";
1
--- db_check
SELECT count(*) FROM users WHERE email = 'slow1@example.test'
--- db_check_out
0



=== TEST 2: a redemption whose body stops before its end: 408, and the code stays unused
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- check_eval
my $token = user_token('slow2');
my $body = '{"card_code": "' . response()->{json}{codes}[0] . '"}';
my $sock = stalled("POST /redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    . "Authorization: Bearer $token\r\nContent-Length: " . length($body) . "\r\n\r\n"
    . substr($body, 0, length($body) - 2));
my $answer = answer_of($sock, 8);
$answer =~ m{^HTTP/1\.1 408 } or die "not 408:\n$answer\n";
$answer =~ /\r\n\r\n\{"error":"Request body timed out"\}\z/ or die "not the JSON error:\n$answer\n";
# The whole request, sent now, redeems: the code was not touched.
my $res = api_request('POST', '/redeem', $body, "Authorization: Bearer $token");
$res->{status} == 200 or die "the code after the stalled request: $res->{status} $res->{body}\n";
1
--- db_check
SELECT count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'
--- db_check_out
1



=== TEST 3: a body trickled a byte every 200 ms (5 bytes/s, under MinRate=500): cut with 408 once the limit runs out
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $body = '{"email": "slow3@example.test", "password": "Passw0rd123"}';
my $sock = stalled("POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n");
my $start = Time::HiRes::time();
local $SIG{PIPE} = 'IGNORE';
my $sel = IO::Select->new($sock);
for my $i (0 .. length($body) - 1) {
    last if $sel->can_read(0);    # answered (and about to be closed)
    syswrite($sock, substr($body, $i, 1)) or last;
    Time::HiRes::sleep(0.2);
}
my $answer = answer_of($sock, 8);
my $elapsed = Time::HiRes::time() - $start;
$answer =~ m{^HTTP/1\.1 408 } or die "not 408 after $elapsed s:\n$answer\n";
$elapsed < 8 or die "408 only after $elapsed s\n";
1
--- db_check
SELECT count(*) FROM users WHERE email = 'slow3@example.test'
--- db_check_out
0



=== TEST 4: a request head that stops arriving: httpd's 408, in the API's JSON
--- raw_request eval
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
--- error_code: 408
--- response_json
{"error": "/./"}
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed > 1.5 && $elapsed < 6 or die "answered after $elapsed s, not about 2\n";
1



=== TEST 5: a child of one pooled connection, twelve of its threads held by stalled bodies (login, registration, redemption, an admin's generation of codes): a request that needs the database is answered at once
--- config
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
DBDMin 1
DBDKeep 1
DBDMax 1
RequestReadTimeout header=2 body=2,MinRate=500
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('slow5');
my %head = (
    '/api/login' => '',
    '/api/register' => '',
    '/redeem' => "Authorization: Bearer $token\r\n",
    '/admin/generate-codes' => "Authorization: Bearer " . user_token('admin') . "\r\n",
);
my @held = map {
    my $path = $_;
    map {
        stalled("POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n$head{$path}"
            . "Content-Length: 100\r\n\r\n{\"email\":")
    } 1 .. 3
} sort keys %head;
Time::HiRes::sleep(0.3);
for (1 .. 5) {
    my $res = api_request('GET', '/api/profile', undef, "Authorization: Bearer $token");
    $res->{status} == 200 && $res->{elapsed} < 1
      or die "a profile beside stalled bodies: $res->{status} in $res->{elapsed} s\n";
}
my @answers = map { answer_of($_, 8) } @held;
my @not408 = grep { !m{^HTTP/1\.1 408 } } @answers;
!@not408 or die scalar(@not408) . " stalled bodies not answered 408:\n$not408[0]\n";
1



=== TEST 6: a stalled body with a bad token: 401 at once, the body not waited for (the token needs no database, so it is checked first)
--- raw_request eval
"POST /admin/generate-codes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Authorization: Bearer not.a.token\r\nContent-Length: 40\r\n\r\n{\"count\":"
--- error_code: 401
--- response_body
{"error":"Invalid or expired token"}
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed < 1 or die "answered after $elapsed s: the body was waited for\n";
1



=== TEST 7: a stalled body of the wrong media type: 415 at once, the connection closed after it
--- raw_request eval
"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
  . "Content-Length: 60\r\n\r\n{\"email\":"
--- error_code: 415
--- response_body
{"error":"Content-Type must be application/json"}
--- response_headers
Connection: close
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed < 1 or die "answered after $elapsed s: the body was waited for\n";
1



=== TEST 8: a stalled body on an unknown path: 404 at once, the connection closed after it
--- raw_request eval
"POST /api/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Content-Length: 60\r\n\r\n{\"email\":"
--- error_code: 404
--- response_body
{"error":"Not found"}
--- response_headers
Connection: close
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed < 1 or die "answered after $elapsed s: the body was waited for\n";
1



=== TEST 9: a stalled body with a method its path does not take: 405 at once, the connection closed after it
--- raw_request eval
"PUT /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Content-Length: 60\r\n\r\n{\"email\":"
--- error_code: 405
--- response_body
{"error":"Method not allowed"}
--- response_headers
Allow: POST
Connection: close
--- check_eval
my $elapsed = response()->{elapsed};
$elapsed < 1 or die "answered after $elapsed s: the body was waited for\n";
1



=== TEST 10: a GET whose body stalls: 408 in JSON after the body's limit (a GET's body is read, and dropped, before a pooled connection is taken)
--- raw_request eval
"GET /api/profile HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " . user_token('slow10') . "\r\n"
  . "Content-Length: 60\r\n\r\n{\"email\":"
--- error_code: 408
--- response_body
{"error":"Request body timed out"}
--- response_headers
Connection: close



=== TEST 11: a body sent 1.5 s after its head, within the body's limit (2 s) but past RedeemDBTimeout (1 s): the database's time counts from when the body is in, so 201, not 503
--- config
RequestReadTimeout header=2 body=2,MinRate=500
RedeemDBTimeout 1000
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $body = '{"email": "slow11@example.test", "password": "Passw0rd123"}';
my $answer = sent_in_two("POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    . "Connection: close\r\nContent-Length: " . length($body) . "\r\n\r\n", $body, 1.5);
$answer =~ m{^HTTP/1\.1 201 } or die "answered:\n$answer\n";
1
--- db_check
SELECT count(*) FROM users WHERE email = 'slow11@example.test'
--- db_check_out
1



=== TEST 12: a request head finished 1.5 s after its first line (within header=2): the token's user read is given its whole RedeemDBTimeout (1 s), so 200, not 503
--- config
RequestReadTimeout header=2 body=2,MinRate=500
RedeemDBTimeout 1000
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $rest = "Authorization: Bearer " . user_token('slow12') . "\r\nConnection: close\r\n\r\n";
my $answer = sent_in_two("GET /api/profile HTTP/1.1\r\nHost: 127.0.0.1\r\n", $rest, 1.5);
$answer =~ m{^HTTP/1\.1 200 } or die "answered:\n$answer\n";
$answer =~ /"slow12\@example\.test"/ or die "not the user's profile:\n$answer\n";
1
