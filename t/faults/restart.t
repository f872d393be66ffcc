# Restarts under load lose nothing. Eight clients redeem fresh codes, each
# on keep-alive connections of its own (as browsers and proxies do), while
# the server is restarted under them.
#
# httpd restarted gracefully (SIGUSR1, what `apachectl graceful` sends, as
# a log rotation or a configuration change does) three times: the old
# children finish what they have begun and close their connections; a
# request sent on a connection just as it closes is never read, and its
# client sees the connection end with no answer. So each redemption ends
# one of two ways, and the database must say which: answered (200), its
# code used by that client's user and audited once; or never answered, its
# code unused. A code used without its answer would be a redemption lost in
# the restart. No other answer is allowed (not 503 either: the database is
# fine all along), each client must have had its connection closed by every
# restart (so the restarts did meet the load), and the clients are answered
# after the last restart without doing anything but reconnect. A hard
# restart (SIGHUP, which kills the children at once) fails this test: codes
# used whose clients got no answer.
#
# PostgreSQL restarted (`pg_ctl restart -m fast`, as a minor upgrade or a
# configuration change does: every session ended at once): meanwhile
# requests are 503 with Retry-After, never 500, and afterwards they are 200
# again with nothing but the module's own reconnecting. A 200 is a used
# code; a 503 leaves its code unused, but for a redemption that committed as
# its session was ended, whose answer the module could not get (then used
# and audited once, and counted in the diagnostics). Every user's
# subscription is the fold of the codes the user used.
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
# Retry-After on a 503 is left to the test's own pace: the point is what
# becomes of each request.
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

# The clients, redeeming codes of a batch of their own, while $disturb runs
# (after $BETWEEN seconds of load; it returns when the server should be
# whole again) and $BETWEEN seconds after: what became of each code.
sub under_load {
    my ($name, $disturb) = @_;
    my $made = api_request('POST', '/admin/generate-codes', '{"count": 100000}',
                           'Authorization: Bearer ' . user_token('admin'));
    $made->{status} == 201 or die "generation: $made->{status} $made->{body}\n";
    my $codes = $made->{json}{codes};
    my $stop = var('SERVROOT') . "/$name.stop";
    my @pids;
    for my $k (0 .. $CLIENTS - 1) {
        my $token = user_token("restart$k");
        my $pid = fork // die "fork: $!\n";
        client($k, $codes, $token, $stop) unless $pid;
        push @pids, $pid;
    }
    Time::HiRes::sleep($BETWEEN);
    $disturb->();
    my $whole_again = Time::HiRes::time();
    Time::HiRes::sleep($BETWEEN);
    open my $touch, '>', $stop or die "$stop: $!\n";
    close $touch;
    for my $pid (@pids) {
        waitpid $pid, 0;
        $? == 0 or die "client $pid exited with $?\n";
    }
    my %load = (batch => $made->{json}{batch_id}, outcome => {}, user_of => {}, count => {},
                connections => {}, after => 0);
    for my $k (0 .. $CLIENTS - 1) {
        open my $in, '<', var('SERVROOT') . "/restart.$k" or die "client $k: no results\n";
        while (<$in>) {
            my ($code, $outcome, $when) = split;
            $load{count}{$outcome}++;
            if ($code eq '-') {
                $load{connections}{$k}++ if $outcome eq 'connected';
                next;
            }
            $load{outcome}{$code} = $outcome;
            $load{user_of}{$code} = user_id("restart$k");
            $load{after}++ if $outcome eq '200' && $when > $whole_again;
        }
    }
    Test::More::diag("restart.t, $name: "
        . join(', ', map { "$_ $load{count}{$_}" } sort keys %{ $load{count} }));
    ($load{count}{200} // 0) > 500 or die "too few redemptions: " . ($load{count}{200} // 0) . "\n";
    $load{after} or die "no redemption answered once the server was whole again\n";
    return \%load;
}

# What the database holds of every code of $batch: the batch as the admin
# listing reads it (the codes are stored sealed and hashed), each row with
# the count of its successful audit rows.
sub codes_as_stored {
    my ($batch) = @_;
    my (%row, $after);
    my $admin = 'Authorization: Bearer ' . user_token('admin');
    do {
        my $res = api_request('GET', "/admin/codes?batch_id=$batch&per_page=500"
                              . (defined $after ? "&after_id=$after" : ''), undef, $admin);
        $res->{status} == 200 or die "listing: $res->{status} $res->{body}\n";
        $row{ $_->{code} } = $_ for @{ $res->{json}{codes} };
        $after = $res->{json}{next_after_id};
    } while (defined $after);
    my %audited = map { split /\|/ } split /\n/, sql(
        "SELECT substr(target, 6), count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'"
        . " AND target LIKE 'code %' GROUP BY 1");
    $_->{audited} = $audited{ $_->{id} } // 0 for values %row;
    return \%row;
}

# Each code's outcome against its row: a 200 used by its client's user and
# audited once; any other outcome unused and unaudited, or, where
# $may_have_committed allows it for that outcome, used and audited once.
# Returns how many codes of other outcomes were used.
sub check_codes {
    my ($load, %may_have_committed) = @_;
    my $rows = codes_as_stored($load->{batch});
    my $committed = 0;
    for my $code (sort keys %{ $load->{outcome} }) {
        my ($outcome, $user) = ($load->{outcome}{$code}, $load->{user_of}{$code});
        my $row = $rows->{$code} or die "$code is not in its batch's listing\n";
        if ($outcome eq '200') {
            $row->{is_used} or die "$code answered 200 but unused\n";
            $row->{used_by} == $user or die "$code used by $row->{used_by}, not $user\n";
            $row->{audited} == 1 or die "$code audited $row->{audited} times\n";
        }
        elsif ($row->{is_used} || $row->{audited}) {
            $may_have_committed{$outcome} && $row->{used_by} == $user && $row->{audited} == 1
              or die "$code used (by $row->{used_by}, audited $row->{audited} times), "
              . "but its client got $outcome: a redemption lost\n";
            $committed++;
        }
    }
    for my $k (0 .. $CLIENTS - 1) {
        sql(subscription_fold_sql(user_id("restart$k"))) eq 't'
          or die "restart$k\'s subscription is not the fold of the codes used\n";
    }
    return $committed;
}


no_shuffle();
default_config($CONF);
run_tests();

__DATA__

=== TEST 1: a user for each client
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token("restart$_") for 0 .. $CLIENTS - 1;
1



=== TEST 2: three graceful restarts under load: every redemption answered 200 or never read, none lost
--- request
GET /api/health
--- error_code: 200
--- timeout: 120
--- check_eval
my $load = under_load('graceful', sub {
    for my $n (1 .. $RESTARTS) {
        Time::HiRes::sleep($BETWEEN) if $n > 1;
        graceful_restart();    # returns a second after the new generation is up
    }
});
my @wrong = grep { !/^(?:200|unanswered|connected)$/ } keys %{ $load->{count} };
die "answers other than 200 or none: @wrong\n" if @wrong;
# Each restart closed every client's connection: the clients did meet them.
for my $k (0 .. $CLIENTS - 1) {
    ($load->{connections}{$k} // 0) > $RESTARTS
      or die "client $k connected " . ($load->{connections}{$k} // 0) . " times over $RESTARTS restarts\n";
}
check_codes($load);
1



=== TEST 3: PostgreSQL restarted under load (every session ended): 503 meanwhile, 200 again after, nothing lost
--- request
GET /api/health
--- error_code: 200
--- timeout: 180
--- check_eval
my $load = under_load('postgres', sub {
    system("$ENV{REDEEM_ROOT}/scripts/pg.sh", 'restart') == 0 or die "pg.sh restart failed\n";
});
my @wrong = grep { !/^(?:200|503|connected)$/ } keys %{ $load->{count} };
die "answers other than 200 or 503: @wrong\n" if @wrong;
($load->{count}{503} // 0) > 0 or die "no 503: the restart did not meet the load\n";
my $committed = check_codes($load, 503 => 1);
Test::More::diag("restart.t, postgres: $committed of the 503s had committed");
1
