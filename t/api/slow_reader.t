# A client that does not read its response holds no database connection
# while the response waits on it: a request's connection goes back to
# mod_dbd's pool before its response is written (response.c), not when the
# request ends, which for a response its client never reads is httpd's
# Timeout later. With fewer pooled connections than threads (the shipped
# configurations keep 12 for 1,000), a handful of such clients otherwise
# left every other request of the child 503 (RDM0118) while most threads
# idled. Here: one child, one pooled connection, an admin's 200,000 new
# codes (about 6 MB of JSON) asked for by a client that never reads, and a
# profile meanwhile. The response stalls only once it fills the kernel's
# socket buffers (on loopback, Linux's default tcp_wmem lets a sender queue
# up to 4 MB): on a host tuned for larger buffers this test would pass
# without the early release too.
use lib 't/lib';
use Test::Redeem;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);

# Sends $bytes on a connection of its own whose receive buffer is small,
# and reads nothing: the connection, to close when done.
sub unread_request {
    my ($bytes) = @_;
    socket(my $sock, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 2048) or die "SO_RCVBUF: $!";
    connect($sock, pack_sockaddr_in(var('PORT'), inet_aton('127.0.0.1'))) or die "connect: $!";
    syswrite($sock, $bytes) == length $bytes or die "send: $!";
    return $sock;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: while a response of 200,000 codes waits on a client that reads nothing, the child's one pooled connection serves a profile: 200, not 503 after RedeemDBTimeout
--- config eval
one_connection_config(3000) . "RedeemMaxCodesPerRequest 200000\n"
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- timeout: 120
--- check_eval
my $admin = user_token('admin');
my $reader = user_token('reader');
my $body = '{"count": 200000}';
my $sock = main::unread_request("POST /admin/generate-codes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  . "Authorization: Bearer $admin\r\nContent-Type: application/json\r\n"
  . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
sql_until('the codes stored', 'SELECT count(*) = 200000 FROM redeem_codes', 60);
# The response is being written now, and stalls on the unread connection.
Time::HiRes::sleep(1);
my $res = api_request('GET', '/api/profile', undef, "Authorization: Bearer $reader");
close $sock;
$res->{status} == 200
  or die "a profile while the codes' response waits on its client: $res->{status} after $res->{elapsed} s\n";
$res->{json}{user}{email} eq 'reader@example.test' or die "profile: $res->{body}\n";
1
