# What HTTP/1.1 clients do besides one request per connection: pipelining
# (several requests written at once, answered in order, each as if alone)
# and `Expect: 100-continue` (curl's habit for larger bodies: the body is
# sent only once the server asks for it, and a request refused before its
# body is needed is answered without asking). After a 404 or a 401 the
# connection stays usable. After a 400 httpd closes it (as it does for 408,
# 411, 413, 414, 500, 501 and 503: ap_status_drops_connection), and so it
# must, after a 413 for a declared length over the cap, whose body was not
# read: a request pipelined behind either is not answered or acted on (its
# bytes could be the unread body's); the client sends it again.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;
use IO::Select;

sub connect_to_server {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT'), Timeout => 10)
      || die "connect: $!\n";
}

# Reads responses from $sock until it closes or $seconds pass: a list of
# {status, head, body} in the order they came.
sub read_responses {
    my ($sock, $seconds) = @_;
    my ($buf, $deadline, @responses) = ('', Time::HiRes::time() + $seconds);
    my $sel = IO::Select->new($sock);
    for (;;) {
        while ($buf =~ /\A(HTTP\/1\.1 (\d{3}) [^\r]*\r\n(?:[^\r]+\r\n)*)\r\n/) {
            my ($head, $status) = ($1, $2);
            my $length = $status =~ /^1/ ? 0 : $head =~ /^Content-Length: (\d+)\r?$/mi ? $1 : 0;
            last if length($buf) < length($head) + 2 + $length;
            push @responses, {status => $status, head => $head,
                              body => substr($buf, length($head) + 2, $length)};
            substr($buf, 0, length($head) + 2 + $length) = '';
        }
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        sysread($sock, $buf, 65536, length $buf) or last;
    }
    die "bytes after the last whole response: $buf\n" if length $buf;
    return @responses;
}

sub post {
    my ($path, $body, @headers) = @_;
    return "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n" . join('', map { "$_\r\n" } @headers)
      . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
}

sub get {
    my ($path, @headers) = @_;
    return "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n" . join('', map { "$_\r\n" } @headers) . "\r\n";
}

sub statuses { return join ' ', map { $_->{status} } @_ }

# $bytes, a request and one pipelined behind it, on a connection of their
# own: one answer of $status, with Connection: close, and nothing more.
sub answered_once_then_closed {
    my ($bytes, $status) = @_;
    my $sock = connect_to_server();
    syswrite $sock, $bytes;
    my @res = read_responses($sock, 10);
    statuses(@res) eq $status or die 'statuses: ' . statuses(@res) . "\n";
    $res[0]{head} =~ /^Connection: close\r?$/mi or die "$status without Connection: close:\n$res[0]{head}\n";
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: six requests pipelined in one write: six answers in order, each what it would be alone
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('pipe1');
my $sock = connect_to_server();
syswrite $sock, join '',
    post('/api/register', '{"email": "pipe1b@example.test", "password": "Passw0rd123"}'),
    post('/api/login', '{"email": "pipe1b@example.test", "password": "Passw0rd123"}'),
    get('/api/profile', "Authorization: Bearer $token"),
    post('/redeem', '{"card_code": "000000000000-0000-00000000"}', "Authorization: Bearer $token"),
    post('/api/login', '{"email": "pipe1b@example.test", "password": "wrong-Passw0rd"}'),
    get('/api/health', 'Connection: close');
my @res = read_responses($sock, 10);
statuses(@res) eq '201 200 200 404 401 200' or die 'statuses: ' . statuses(@res) . "\n";
my @json = map { JSON::PP::decode_json($_->{body}) } @res;
$json[0]{user}{email} eq 'pipe1b@example.test' or die "register answered $res[0]{body}\n";
$json[1]{access_token} or die "login answered $res[1]{body}\n";
$json[2]{user}{email} eq 'pipe1@example.test' or die "profile answered $res[2]{body}\n";
$json[3]{error} eq 'Invalid redeem code' or die "redeem answered $res[3]{body}\n";
$json[4]{error} eq 'Invalid email or password' or die "the bad login answered $res[4]{body}\n";
$json[5]{status} eq 'healthy' or die "health answered $res[5]{body}\n";
1



=== TEST 2: requests refused before their bodies are read (no token, a bad one, an unknown path, a method the path does not take), the bodies all sent: dropped, and the request pipelined behind answered
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $sock = connect_to_server();
syswrite $sock, join '',
    post('/redeem', '{"card_code": "000000000000-0000-00000000"}'),
    post('/admin/generate-codes', '{"count": 5}', 'Authorization: Bearer not.a.token'),
    post('/api/nope', '{"email": "pipe404@example.test", "password": "Passw0rd123"}'),
    post('/api/health', '{"email": "pipe405@example.test", "password": "Passw0rd123"}'),
    get('/api/health', 'Connection: close');
my @res = read_responses($sock, 10);
statuses(@res) eq '401 401 404 405 200' or die 'statuses: ' . statuses(@res) . "\n";
1



=== TEST 3: a malformed body pipelined before a request: 400 closes the connection (httpd's rule for 400), the next not acted on
--- request
GET /api/health
--- error_code: 200
--- check_eval
answered_once_then_closed(post('/api/register', '{"email": "pipe2@example.test", "password": }')
  . post('/api/register', '{"email": "pipe2@example.test", "password": "Passw0rd123"}'), 400);
--- db_check
SELECT count(*) FROM users WHERE email = 'pipe2@example.test'
--- db_check_out
0



=== TEST 4: a declared length over the cap, a request pipelined behind it: 413, the connection closed, the second not acted on
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $smuggled = post('/api/register', '{"email": "pipe3@example.test", "password": "Passw0rd123"}');
answered_once_then_closed("POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Content-Length: 100000\r\n\r\n" . $smuggled, 413);
--- db_check
SELECT count(*) FROM users WHERE email = 'pipe3@example.test'
--- db_check_out
0



=== TEST 5: the same before the body would be read (an unknown path, a redemption without a token): one 413, the connection closed, the request behind not acted on
--- request
GET /api/health
--- error_code: 200
--- check_eval
for my $head ("POST /api/nope HTTP/1.1", "POST /redeem HTTP/1.1") {
    my $smuggled = post('/api/register', '{"email": "pipe4@example.test", "password": "Passw0rd123"}');
    answered_once_then_closed("$head\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      . "Content-Length: 100000\r\n\r\n" . $smuggled, 413);
}
1
--- db_check
SELECT count(*) FROM users WHERE email = 'pipe4@example.test'
--- db_check_out
0



=== TEST 6: Expect: 100-continue: the server asks for the body, then registers
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $sock = connect_to_server();
my $body = '{"email": "expect4@example.test", "password": "Passw0rd123"}';
syswrite $sock, "POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Expect: 100-continue\r\nContent-Length: " . length($body) . "\r\n\r\n";
my $sel = IO::Select->new($sock);
$sel->can_read(5) or die "no 100 Continue within 5 s\n";
my $interim = '';
sysread($sock, $interim, 65536, length $interim) while $interim !~ /\r\n\r\n/ && $sel->can_read(5);
$interim =~ m{^HTTP/1\.1 100 Continue\r\n\r\n\z} or die "not 100 Continue first:\n$interim\n";
syswrite $sock, $body;
my @res = read_responses($sock, 10);
statuses(@res) eq '201' or die 'statuses after the body: ' . statuses(@res) . "\n";
1
--- db_check
SELECT count(*) FROM users WHERE email = 'expect4@example.test'
--- db_check_out
1



=== TEST 7: Expect: 100-continue on a redemption without a token: 401 at once, without asking for the body
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $sock = connect_to_server();
syswrite $sock, "POST /redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Expect: 100-continue\r\nContent-Length: 40\r\n\r\n";
my @res = read_responses($sock, 3);
statuses(@res) eq '401' or die 'statuses: ' . statuses(@res) . "\n";
$res[0]{body} eq '{"error":"Authentication required"}' or die "401 answered $res[0]{body}\n";
1



=== TEST 8: Expect: 100-continue on a redemption over its rate limit: 429 at once, without asking for the body
--- config
RedeemRateLimit redeem-user 1 60
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('expect6');
my $first = api_request('POST', '/redeem', '{"card_code": "ABCD"}', "Authorization: Bearer $token");
$first->{status} == 400 or die "the first redemption: $first->{status}\n";
my $sock = connect_to_server();
syswrite $sock, "POST /redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Authorization: Bearer $token\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n";
my @res = read_responses($sock, 3);
statuses(@res) eq '429' or die 'statuses: ' . statuses(@res) . "\n";
1



=== TEST 9: Expect: 100-continue with a body in a transfer coding under chunked (gzip, chunked): 501 at once, without asking for the body
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $sock = connect_to_server();
syswrite $sock, "POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Expect: 100-continue\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
my @res = read_responses($sock, 3);
statuses(@res) eq '501' or die 'statuses: ' . statuses(@res) . "\n";
$res[0]{body} eq '{"error":"Transfer-Encoding other than chunked is not supported"}'
  or die "501 answered $res[0]{body}\n";
1



=== TEST 9b: ... and on a redemption with a good token (whose body is otherwise read before its user): 501 at once
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('expect9b');
my $sock = connect_to_server();
syswrite $sock, "POST /redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
  . "Authorization: Bearer $token\r\nExpect: 100-continue\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
my @res = read_responses($sock, 3);
statuses(@res) eq '501' or die 'statuses: ' . statuses(@res) . "\n";
1
