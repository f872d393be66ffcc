# A pool smaller than the threads (conf/tuning.conf keeps 48 connections for
# 2000 threads a child): a request that finds every connection held waits
# for one no longer than its RedeemDBTimeout allows (mod_dbd's own wait has
# no bound; the module counts what its requests hold against DBDMax and
# waits on a condition of its own), then gets 503 without having sent its
# statement. Sent late, a redemption would run while the client is told 503
# (the code used, the months added), the healthy connection would be
# dropped, and the child would answer 503 to everyone for a second as if the
# database were silent.
#
# Here one connection, held by a generation of codes that waits on a lock
# the test holds (inside the generation's own, longer deadline), while a
# redemption with a 300 ms deadline waits for that connection.
use lib 't/lib';
use Test::Redeem;
use POSIX ();

our $HOLD = 1.5;    # seconds the test's lock holds the generation (and the pool)
our $METRICS = qq{<Location "/metrics">\n  SetHandler redeem-metrics\n</Location>\n};

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => one_connection_config(300) . $METRICS) unless defined $block->config;
});

# $n new codes, generated as the admin.
sub new_codes {
    my ($n) = @_;
    my $res = api_request('POST', '/admin/generate-codes', qq{{"count": $n}},
                          'Authorization: Bearer ' . user_token('admin'));
    $res->{status} eq '201' or die "generation: $res->{status} $res->{body}\n";
    return @{ $res->{json}{codes} };
}

# The pool's one connection held by a generation of codes that waits on a
# lock the test holds for $seconds: the locking psql's pid and the
# generation's request, once the generation waits.
sub hold_the_connection {
    my ($seconds) = @_;
    my $locker = hold_lock('code_counts', 'EXCLUSIVE', $seconds);
    my $generation = request_in_background('POST', '/admin/generate-codes', '{"count": 20000}',
                                           'Authorization: Bearer ' . user_token('admin'));
    lock_waiters('code_counts', 1);
    return ($locker, $generation);
}

# The gate's counters: requests that waited for a connection, and those that gave up.
sub pool_counters {
    return map { metric_value($_) } qw(redeem_db_pool_waits_total redeem_db_pool_timeouts_total);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a code to redeem, the pool's one connection made ready
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
CODE=codes.0



=== TEST 2: the one connection busy past the redemption's deadline: 503 within that deadline (when less than a tenth of it is left), not once the connection is given back; nothing sent, the code still unused
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('fay');
my ($waits, $timeouts) = pool_counters();
my ($locker, $generation) = hold_the_connection($HOLD);
my $res = api_request('POST', '/redeem', '{"card_code": "' . var('CODE') . '"}',
                      "Authorization: Bearer $token");
my $generated = request_result($generation);
waitpid $locker, 0;
die "the redemption waited for the pool: expected 503 with Retry-After, got $res->{status} $res->{body}\n"
  unless $res->{status} eq '503' && $res->{json} && $res->{json}{error}
  && grep { lc $_->[0] eq 'retry-after' && $_->[1] =~ /^\d+$/ } @{ $res->{headers} || [] };
# Well past the deadline, for a loaded machine, and well before the
# connection comes free (1.5 s after the lock began).
die "the redemption waited past its 300 ms deadline: answered after $res->{elapsed} s\n"
  if $res->{elapsed} > 1;
die "the generation that held the pool: expected 201, got @$generated\n" unless $generated->[0] eq '201';
my $used = sql("SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL");
die "a redemption answered 503 ran anyway: $used codes used\n" unless $used eq '0';
my ($waited, $gave_up) = pool_counters();
$waited == $waits + 1 or die "expected one wait for the pool more\n";
$gave_up == $timeouts + 1 or die "expected one wait given up more\n";
--- error_log
/RDM0118: no pooled connection came free before less than a tenth of RedeemDBTimeout \(300 ms\) was left: this child's requests held all 1 \(DBDMax\)/
--- no_error_log
RDM0111
RDM0112
RDM0114



=== TEST 3: right after, the same code redeems (the child did not go into its 503-at-once mode)
--- login: fay
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 200
--- no_error_log
RDM0112



=== TEST 3b: four redemptions at once while the one connection is held: each 503 and counted, but the child logs RDM0118 at warning level once in ten seconds (it was a line a request); the next one after that says how many it held back
--- config eval
one_connection_config(301) . $main::METRICS
--- request
GET /api/health
--- error_code: 200
--- timeout: 30
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('fay');
my @codes = new_codes(5);
my $log = var('SERVROOT') . '/error.log';
my $warnings_since = sub {
    my ($offset) = @_;
    open my $fh, '<', $log or die "$log: $!\n";
    seek $fh, $offset, 0;
    return grep { /\[redeem:warn\].*RDM0118/ } <$fh>;
};
my $refuse = sub {
    my @codes = @_;
    my ($locker, $generation) = hold_the_connection($HOLD);
    my @sent = map { request_in_background('POST', '/redeem', qq{{"card_code": "$_"}}, $auth) } @codes;
    my @answers = map { request_result($_) } @sent;
    request_result($generation);
    waitpid $locker, 0;
    my @bad = grep { $_->[0] ne '503' } @answers;
    !@bad or die "redemptions beside the held connection not 503: " . join(', ', map { "@$_" } @bad) . "\n";
};
my $offset = -s $log;
my (undef, $timeouts) = pool_counters();
$refuse->(@codes[0 .. 3]);
my (undef, $gave_up) = pool_counters();
$gave_up == $timeouts + 4 or die "expected four waits given up more, got " . ($gave_up - $timeouts) . "\n";
my @lines = $warnings_since->($offset);
@lines == 1 or die scalar(@lines) . " RDM0118 lines at warning level for four refusals:\n@lines";
$lines[0] !~ /more in this child/ or die "the first line says some were held back: $lines[0]";
sleep 10;
$offset = -s $log;
$refuse->($codes[4]);
@lines = $warnings_since->($offset);
@lines == 1 && $lines[0] =~ /\(and 3 more in this child since the last such line, logged at debug level\)/
  or die "after ten seconds, expected one line telling of the three held back:\n@lines";
1



=== TEST 4: the one connection given back within the redemption's deadline (3 s here): the redemption, woken when it is given back, is 200, counted as a wait, not as one given up
--- config eval
one_connection_config(3000) . $main::METRICS
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('fay');
my ($code) = new_codes(1);
my ($waits, $timeouts) = pool_counters();
my ($locker, $generation) = hold_the_connection(0.6);
my $res = api_request('POST', '/redeem', qq{{"card_code": "$code"}}, "Authorization: Bearer $token");
my $generated = request_result($generation);
waitpid $locker, 0;
$res->{status} eq '200' or die "the redemption that waited for the connection: $res->{status} $res->{body}\n";
$res->{elapsed} < 2.2 or die "the redemption was woken only by its own timer ($res->{elapsed} s)\n";
$generated->[0] eq '201' or die "the generation that held the pool: @$generated\n";
my ($waited, $gave_up) = pool_counters();
$waited == $waits + 1 or die "expected one wait for the pool more\n";
$gave_up == $timeouts or die "expected no wait given up\n";
--- no_error_log
RDM0118



=== TEST 5: a hundred redemptions at once on the child's one connection (40 threads): each waits its turn in line and is 200, none given up, every code used once
--- config eval
"StartServers 1\nServerLimit 1\nThreadsPerChild 40\nMaxRequestWorkers 40\nMinSpareThreads 1\n"
  . "MaxSpareThreads 40\nDBDMin 1\nDBDMax 1\nDBDKeep 1\nRedeemDBTimeout 5000\n"
  . "RedeemRateLimit redeem-user 0 60\nRedeemRateLimit redeem-ip 0 60\n" . $main::METRICS
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('gus');
my @codes = new_codes(100);
my ($waits, $timeouts) = pool_counters();
my $before = sql("SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL");
my @sent = map { request_in_background('POST', '/redeem', qq{{"card_code": "$_"}}, "Authorization: Bearer $token") }
  @codes;
my @results = map { request_result($_) } @sent;
my @bad = grep { $_->[0] ne '200' } @results;
!@bad or die scalar(@bad) . " of 100 not 200: " . join(', ', map { "@$_" } @bad[0 .. ($#bad < 4 ? $#bad : 4)]) . "\n";
my $used = sql("SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL") - $before;
$used == 100 or die "$used codes used\n";
my ($waited, $gave_up) = pool_counters();
$waited > $waits or die "no request waited for the connection\n";
$gave_up == $timeouts or die "a wait was given up\n";
--- no_error_log
RDM0118
