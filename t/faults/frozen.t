# A database that stops answering: its processes frozen with SIGSTOP (a host
# that hangs), then the network to it dropping everything (a partition).
# Every request must be answered within RedeemDBTimeout (2 s here) plus the
# connect_timeout of a new connection (1 s here), with 503 and Retry-After;
# no thread may stay stuck; once the database answers again so does the API.
# The same with a pool smaller than the threads (the last three blocks), where
# requests also wait for a free connection.
#
# The partition is a relay of this test's between httpd and PostgreSQL that,
# on a signal, passes nothing either way and keeps the connections open
# (what a firewall's DROP does to a client). No iptables or nftables is on
# this machine and the cluster is shared with the harness, so the relay
# stands in for a DROP rule in a network namespace.
use lib 't/lib';
use Test::Redeem;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

our $DEADLINE = 2;       # RedeemDBTimeout, seconds
our $CONNECT = 2;        # connect_timeout of the pool's new connections (libpq's least)
our $SLACK = 1.5;        # the machine's own delays
our @FROZEN;
our ($RELAY_PID, $RELAY_PORT);

sub db_params {
    my ($port) = @_;
    return "host=127.0.0.1 port=$port dbname=" . var('DB_NAME')
      . " user=$ENV{REDEEM_APP_USER} password=$ENV{REDEEM_APP_PASSWORD}"
      . " connect_timeout=$CONNECT gssencmode=disable";
}

sub config_for {
    my ($port) = @_;
    return <<"CONF";
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
DBDMin 25
DBDMax 25
DBDKeep 25
RedeemDBTimeout ${\ ($DEADLINE * 1000)}
DBDParams "${\ db_params($port)}"
CONF
}

# Fewer connections than threads: a request may wait for a pooled one.
sub small_pool_config {
    my ($port) = @_;
    return config_for($port) =~ s/^ThreadsPerChild 25$/ThreadsPerChild 10/mr
      =~ s/^MaxRequestWorkers 25$/MaxRequestWorkers 10/mr =~ s/^MaxSpareThreads 25$/MaxSpareThreads 10/mr
      =~ s/^DBD(Min|Max|Keep) 25$/DBD$1 2/mgr;
}

# The cluster's postmaster and every process it started.
sub cluster_pids {
    open my $fh, '<', "$ENV{REDEEM_PG_DIR}/data/postmaster.pid" or die "postmaster.pid: $!";
    chomp(my $postmaster = <$fh>);
    my @children;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $st, '<', $stat or next;
        my $line = <$st> // next;
        push @children, $1 if $line =~ /^(\d+) \(.*\) \S (\d+)/ && $2 == $postmaster;
    }
    return ($postmaster, @children);
}

sub freeze { @FROZEN = cluster_pids(); kill 'STOP', @FROZEN; return 1 }
sub thaw   { kill 'CONT', @FROZEN if @FROZEN; @FROZEN = (); return 1 }
END { thaw(); stop_relay() }

# n clients at once, each one request: [status, seconds, Retry-After] each.
sub all_within {
    my ($want, $limit, @results) = @_;
    my @bad = grep { $_->[0] ne $want || $_->[1] > $limit || ($want eq '503' && $_->[2] !~ /^\d+$/) } @results;
    die "expected $want within $limit s with Retry-After on 503, got: "
      . join(', ', map { "@$_" } @results) . "\n" if @bad || !@results;
    return 1;
}

# The database frozen: $n profiles at once (and, with $health, 3 health
# checks after them) all get 503 with Retry-After within the deadline; then a
# second, so that the child tries the database again.
sub all_503_while_frozen {
    my ($n, $health) = @_;
    my $token = user_token('fay');
    freeze();
    my @profile = eval { burst($n, 'GET', '/api/profile', "Authorization: Bearer $token") };
    my $error = $@;
    my @checks = $health && !$error ? eval { burst(3, 'GET', '/api/health') } : ();
    $error ||= $@;
    thaw();
    die $error if $error;
    all_within('503', $DEADLINE + $CONNECT + $SLACK, @profile);
    all_within('503', $DEADLINE + $CONNECT + $SLACK, @checks) if $health;
    Time::HiRes::sleep(1.2);   # a child tries the database again once a second
    return 1;
}

# $n profiles at once, all 200 within 5 s.
sub all_200 {
    my ($n) = @_;
    my $token = user_token('fay');
    all_within('200', 5, burst($n, 'GET', '/api/profile', "Authorization: Bearer $token"));
}

# The relay: forwards 127.0.0.1:$RELAY_PORT to PostgreSQL; SIGUSR1 makes it
# a black hole (reads and drops, sends nothing), SIGUSR2 heals it.
sub start_relay {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 64,
                                       ReuseAddr => 1) or die "relay: $!";
    $RELAY_PORT = $listen->sockport;
    $RELAY_PID = fork // die;
    return $RELAY_PORT if $RELAY_PID;
    my $dropping = 0;
    local $SIG{USR1} = sub { $dropping = 1 };
    local $SIG{USR2} = sub { $dropping = 0 };
    my $sel = IO::Select->new($listen);
    my %peer;
    while (1) {
        for my $s ($sel->can_read(0.05)) {
            if ($s == $listen) {
                my $client = $listen->accept or next;
                my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{PGPORT})
                  or do { close $client; next };
                @peer{$client, $server} = ($server, $client);
                $sel->add($client, $server);
                next;
            }
            my $n = sysread($s, my $buf, 65536);
            if (!$n) {
                my $other = delete $peer{$s};
                delete $peer{$other} if $other;
                $sel->remove(grep { defined } $s, $other);
                close $_ for grep { defined } $s, $other;
                next;
            }
            next if $dropping;
            syswrite $peer{$s}, $buf if $peer{$s};
        }
    }
}

sub stop_relay {
    return unless $RELAY_PID;
    kill 'KILL', $RELAY_PID;
    waitpid $RELAY_PID, 0;
    undef $RELAY_PID;
}

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => config_for($ENV{PGPORT})) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: warm-up: 25 requests at once, so the pool holds connections
--- login: fay
--- request
GET /api/profile
--- concurrency: 25
--- error_code_counts
200: 25



=== TEST 2: the database frozen: 30 requests at once all get 503 with Retry-After within the deadline
--- request
GET /api/health
--- error_code: 200
--- check_eval
all_503_while_frozen(30, 'and health')
--- error_log
/RDM0111: database statement users_by_id: no answer within RedeemDBTimeout \(2000 ms\): connection dropped/



=== TEST 3: thawed: the pool heals by itself within a second, every thread answers again
--- request
GET /api/health
--- error_code: 200
--- check_eval
all_200(30)



=== TEST 3b: frozen for 13 s (RedeemDBTimeout 5 s here), a profile every quarter second: after the first wait runs out the child answers 503 at once but for its one try a second (the others do not wait in line behind the tries' reads), and it never says the database answers again while it is frozen (a pooled connection had without a word to the database is no answer)
--- config eval
config_for($ENV{PGPORT}) =~ s/^RedeemDBTimeout \d+$/RedeemDBTimeout 5000/mr
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
all_200(25);
my $token = user_token('fay');
freeze();
my $t0 = Time::HiRes::time();
my @sent;
my @results = eval {
    for (1 .. 52) {
        push @sent, [ Time::HiRes::time() - $t0,
                      request_in_background('GET', '/api/profile', undef, "Authorization: Bearer $token") ];
        Time::HiRes::sleep(0.25);
    }
    map { [ $_->[0], @{ request_result($_->[1]) } ] } @sent;
};
my $error = $@;
thaw();
die $error if $error;
Time::HiRes::sleep(1.2);
my @not_503 = grep { $_->[1] ne '503' } @results;
die "not 503 while frozen: " . join(', ', map { sprintf '%.2f s: %s', @$_[0, 1] } @not_503) . "\n" if @not_503;
# From 6 s on (the first wait ran out at 5 s): one try a second may wait;
# the rest answer at once.
my @late = grep { $_->[0] >= 6 } @results;
my @slow = grep { $_->[2] > 0.5 } @late;
die sprintf("%d of %d requests sent from 6 s on waited more than 0.5 s: %s\n", scalar @slow, scalar @late,
            join(', ', map { sprintf '%.2f s: %.2f s', @$_[0, 2] } @slow))
  if @slow > 8;
1
--- no_error_log
RDM0113



=== TEST 3d: ten pooled connections, every one used before the freeze (ten redemptions held at once on a lock), then frozen for 13 s with a profile every quarter second: a try that gets a connection needing no setting up has had no word from the database, and the child must not say it answers again (it did, about 9 s in, and let requests wait on the frozen database again)
--- config eval
config_for($ENV{PGPORT}) =~ s/^ThreadsPerChild 25$/ThreadsPerChild 12/mr =~ s/^MaxRequestWorkers 25$/MaxRequestWorkers 12/mr
  =~ s/^MaxSpareThreads 25$/MaxSpareThreads 12/mr =~ s/^DBD(Min|Max|Keep) 25$/DBD$1 10/mgr
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
my $token = user_token('fay');
my $locker = hold_lock('audit_log', 'ACCESS EXCLUSIVE', 1);
my @held = map {
    request_in_background('POST', '/redeem', '{"card_code": "ABCDEFGHJKMN-PQRS-TVWXYZ01"}',
                          "Authorization: Bearer $token")
} 1 .. 10;
my @warm = map { request_result($_) } @held;
waitpid $locker, 0;
my @not_answered = grep { $_->[0] !~ /^(?:400|404)$/ } @warm;
die "the warming redemptions: " . join(', ', map { "@$_" } @not_answered) . "\n" if @not_answered;
Time::HiRes::sleep(0.5);
freeze();
my @sent;
my @results = eval {
    for (1 .. 52) {
        push @sent, request_in_background('GET', '/api/profile', undef, "Authorization: Bearer $token");
        Time::HiRes::sleep(0.25);
    }
    map { request_result($_) } @sent;
};
my $error = $@;
thaw();
die $error if $error;
Time::HiRes::sleep(1.2);
my @not_503 = grep { $_->[0] ne '503' } @results;
die "not 503 while frozen: " . join(', ', map { "@$_" } @not_503) . "\n" if @not_503;
1
--- error_log
RDM0112
--- no_error_log
RDM0113



=== TEST 3c: thawed again: every thread answers again
--- request
GET /api/health
--- error_code: 200
--- check_eval
all_200(30)



=== TEST 3e: redemptions sent into the frozen database get 503 within the deadline, and once it thaws their statements, run at last, redeem nothing (each reached its backend after its time was up: too_late), write no audit row and extend no subscription; the codes redeem afterwards (they redeemed as the database woke, long after their clients were told 503)
--- request
GET /api/health
--- error_code: 200
--- timeout: 30
--- check_eval
my $res = api_request('POST', '/admin/generate-codes', '{"count": 3}', 'Authorization: Bearer ' . user_token('admin'));
die "generate-codes: $res->{status} $res->{body}\n" unless $res->{status} == 201;
my @codes = @{ JSON::PP->new->decode($res->{body})->{codes} };
my ($token, $id) = (user_token('gus'), user_id('gus'));
my $state = "SELECT (SELECT count(used_at) FROM redeem_codes) || ' ' || (SELECT count(*) FROM audit_log WHERE event = 'redeem')"
  . " || ' ' || (SELECT coalesce(subscription_expires_at::text, '-') FROM users WHERE id = $id)";
my $before = sql($state);
my $backends = "SELECT count(*) FROM pg_stat_activity WHERE usename = '$ENV{REDEEM_APP_USER}'";
my $backends_before = sql($backends);
freeze();
my @sent = map { request_in_background('POST', '/redeem', qq({"card_code": "$_"}), "Authorization: Bearer $token") } @codes;
my @results = map { request_result($_) } @sent;
thaw();
all_within('503', $DEADLINE + $CONNECT + $SLACK, @results);
# The backends read the statements waiting in their sockets as they thaw,
# run them, and then find their client gone and exit (the module dropped each
# connection as it timed out): once they are gone, whatever they committed is
# there to see.
sql_until('the dropped connections\' backends gone', "SELECT ($backends) <= $backends_before - " . scalar(@codes));
my $after = sql($state);
die "the thawed statements changed the database: before '$before', after '$after'\n" unless $after eq $before;
Time::HiRes::sleep(1.2);   # a child tries the database again once a second
for my $code (@codes) {
    my $r = api_request('POST', '/redeem', qq({"card_code": "$code"}), "Authorization: Bearer $token");
    die "the code afterwards: $r->{status} $r->{body}\n" unless $r->{status} == 200;
}
1
--- error_log
/RDM0111: database statement redeem: no answer within RedeemDBTimeout \(2000 ms\): connection dropped/



=== TEST 4: through the relay: warm-up
--- config eval
config_for(start_relay())
--- login: fay
--- request
GET /api/profile
--- concurrency: 10
--- error_code_counts
200: 10



=== TEST 5: the network drops everything: answers within the deadline, 503
--- config eval
config_for($RELAY_PORT)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('fay');
kill 'USR1', $RELAY_PID;
my @results = eval { burst(20, 'GET', '/api/profile', "Authorization: Bearer $token") };
my $error = $@;
kill 'USR2', $RELAY_PID;
die $error if $error;
all_within('503', $DEADLINE + $CONNECT + $SLACK, @results);
Time::HiRes::sleep(1.2);



=== TEST 6: the network back: served again, every connection dropped under the partition replaced
--- config eval
config_for($RELAY_PORT)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('fay');
my @results = burst(20, 'GET', '/api/profile', "Authorization: Bearer $token");
stop_relay();
all_within('200', 5, @results);



=== TEST 7: a pool smaller than the threads (2 connections for 10 threads, as tuning.conf keeps 48 for 2000): warm-up
--- config eval
small_pool_config($ENV{PGPORT})
--- login: fay
--- request
GET /api/profile
--- concurrency: 10
--- error_code_counts
200: 10



=== TEST 8: that pool, the database frozen: 30 requests at once all get 503 within the deadline
--- config eval
small_pool_config($ENV{PGPORT})
--- request
GET /api/health
--- error_code: 200
--- check_eval
all_503_while_frozen(30)



=== TEST 9: that pool, thawed: every thread answers again
--- config eval
small_pool_config($ENV{PGPORT})
--- request
GET /api/health
--- error_code: 200
--- check_eval
all_200(30)
