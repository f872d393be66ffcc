# A graceful restart under load loses nothing. Eight clients redeem fresh
# codes, each on keep-alive connections of its own (as browsers and proxies
# do), while httpd is restarted gracefully (SIGUSR1, what `apachectl
# graceful` sends, as a log rotation or a configuration change does) three
# times. The old children finish what they have begun and close their idle
# connections; a request sent on a connection just as it closes is never
# read, and its client sees the connection end with no answer.
#
# So each redemption ends one of two ways, and the database must say which:
# answered (200), its code used by that client's user and audited once; or
# never answered, its code unused. A code used without its answer would be
# a redemption lost in the restart. No other answer is allowed (not 503
# either: the database is fine all along), each client must have had its
# connection closed by every restart (so the restarts did meet the load),
# and the clients are answered after the last restart without doing
# anything but reconnect. A hard restart (SIGHUP, which kills the children
# at once) fails this test: codes used whose clients got no answer.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;
use POSIX ();

our $CLIENTS = 8;
our $RESTARTS = 3;
our $BETWEEN = 1.5;    # seconds of load before, between and after the restarts
our $CONF = <<'CONF';
StartServers 3
ServerLimit 6
ThreadsPerChild 10
MinSpareThreads 20
MaxSpareThreads 40
MaxRequestWorkers 60
DBDMin 4
DBDKeep 4
DBDMax 4
KeepAliveTimeout 5
MaxKeepAliveRequests 0
CONF

# One HTTP/1.1 exchange on a kept connection: (status, the response's
# Connection header), or ('unanswered') when the connection ended before
# any byte of an answer, or ('partial') when it ended inside one.
sub exchange {
    my ($sock, $request) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $sent = syswrite($sock, $request);
    return ('unanswered') unless defined $sent && $sent == length $request;
    my $buf = '';
    my $deadline = Time::HiRes::time() + 15;
    until ($buf =~ /\r\n\r\n/) {
        return ('timeout') if Time::HiRes::time() > $deadline;
        my $n = sysread($sock, $buf, 65536, length $buf);
        return ($buf eq '' ? 'unanswered' : 'partial') unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d{3}) } or return ('partial');
    my ($length) = $head =~ /^Content-Length: (\d+)\r?$/mi;
    my ($connection) = $head =~ /^Connection: (\S+)\r?$/mi;
    return ('partial') unless defined $length;
    while (length $body < $length) {
        return ('timeout') if Time::HiRes::time() > $deadline;
        my $n = sysread($sock, $body, $length - length $body, length $body) or return ('partial');
    }
    return ($status, lc($connection // ''));
}

# Client $k: redeems codes $k, $k + $CLIENTS, ... as user restart$k until
# the file $stop exists, and writes "code outcome seconds" lines (and "-
# connected seconds" for each connection) to its file in servroot.
sub client {
    my ($k, $codes, $token, $stop) = @_;
    my $port = var('PORT');
    my $until = Time::HiRes::time() + 300;
    open my $out, '>', var('SERVROOT') . "/restart.$k" or POSIX::_exit(1);
    $out->autoflush(1);
    my $sock;
    for (my $i = $k; $i < @$codes && !-e $stop; $i += $CLIENTS) {
        until ($sock) {
            $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
            printf $out "- %s %.3f\n", $sock ? 'connected' : 'refused', Time::HiRes::time();
            Time::HiRes::sleep(0.01) unless $sock;
            POSIX::_exit(2) if !$sock && Time::HiRes::time() > $until;
        }
        my $body = qq({"card_code":"$codes->[$i]"});
        my $request = "POST /redeem HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nAuthorization: Bearer $token\r\n"
          . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
        my ($outcome, $connection) = exchange($sock, $request);
        printf $out "%s %s %.3f\n", $codes->[$i], $outcome, Time::HiRes::time();
        if ($outcome !~ /^\d+$/ || $connection eq 'close') {
            close $sock;
            undef $sock;
        }
    }
    close $out;
    POSIX::_exit(0);
}

no_shuffle();
default_config($CONF);
run_tests();

__DATA__

=== TEST 1: the codes to redeem, and a user for each client
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 60000}
--- error_code: 201
--- timeout: 60
--- save_json
CODES=codes
BATCH=batch_id
--- check_eval
user_token("restart$_") for 0 .. $CLIENTS - 1;
1



=== TEST 2: three graceful restarts under load: every redemption answered 200 or never read, none lost
--- request
GET /api/health
--- error_code: 200
--- timeout: 120
--- check_eval
my $codes = JSON::PP::decode_json(var('CODES'));
my $stop = var('SERVROOT') . '/restart.stop';
my @pids;
for my $k (0 .. $CLIENTS - 1) {
    my $token = user_token("restart$k");
    my $pid = fork // die "fork: $!\n";
    client($k, $codes, $token, $stop) unless $pid;
    push @pids, $pid;
}
my $last_restart;
for (1 .. $RESTARTS) {
    Time::HiRes::sleep($BETWEEN);
    graceful_restart();    # returns a second after the new generation is up
    $last_restart = Time::HiRes::time();
}
Time::HiRes::sleep($BETWEEN);
open my $touch, '>', $stop or die "$stop: $!\n";
close $touch;
for my $pid (@pids) {
    waitpid $pid, 0;
    $? == 0 or die "client $pid exited with $?\n";
}
my (%outcome, %user_of, %count, %connections, $after_last);
for my $k (0 .. $CLIENTS - 1) {
    open my $in, '<', var('SERVROOT') . "/restart.$k" or die "client $k: no results\n";
    while (<$in>) {
        my ($code, $outcome, $when) = split;
        if ($code eq '-') {
            $count{$outcome}++;
            $connections{$k}++ if $outcome eq 'connected';
            next;
        }
        $outcome{$code} = $outcome;
        $user_of{$code} = user_id("restart$k");
        $count{$outcome}++;
        $after_last++ if $outcome eq '200' && $when > $last_restart;
    }
}
Test::More::diag('restart.t: ' . join(', ', map { "$_ $count{$_}" } sort keys %count));
my @wrong = grep { !/^(?:200|unanswered|connected)$/ } keys %count;
die "answers other than 200 or none: @wrong\n" if @wrong;
($count{200} // 0) > 500 or die "too few redemptions: " . ($count{200} // 0) . "\n";
$after_last or die "no redemption answered after the last restart\n";
# Each restart closed every client's connection: the clients did meet them.
for my $k (0 .. $CLIENTS - 1) {
    ($connections{$k} // 0) > $RESTARTS
      or die "client $k connected " . ($connections{$k} // 0) . " times over $RESTARTS restarts\n";
}
# What the database holds of every code the clients sent: the batch as the
# admin listing reads it (the codes are stored sealed and hashed), and the
# successful audit rows of each.
my (%row, $after);
my $admin = 'Authorization: Bearer ' . user_token('admin');
do {
    my $res = api_request('GET', '/admin/codes?batch_id=' . var('BATCH') . '&per_page=500'
                          . (defined $after ? "&after_id=$after" : ''), undef, $admin);
    $res->{status} == 200 or die "listing: $res->{status} $res->{body}\n";
    $row{ $_->{code} } = $_ for @{ $res->{json}{codes} };
    $after = $res->{json}{next_after_id};
} while (defined $after);
my %audited = map { split /\|/ } split /\n/, sql(
    "SELECT substr(target, 6), count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'"
    . " AND target LIKE 'code %' GROUP BY 1");
for my $code (sort keys %outcome) {
    my $row = $row{$code} or die "$code is not in its batch's listing\n";
    if ($outcome{$code} eq '200') {
        $row->{is_used} or die "$code answered 200 but unused\n";
        $row->{used_by} == $user_of{$code} or die "$code used by $row->{used_by}, not $user_of{$code}\n";
        ($audited{ $row->{id} } // 0) == 1 or die "$code audited " . ($audited{ $row->{id} } // 0) . " times\n";
    }
    else {
        !$row->{is_used} && !$audited{ $row->{id} }
          or die "$code used, but its client never got an answer: a redemption lost\n";
    }
}
1
