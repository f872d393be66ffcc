# A pooled connection is never closed for being idle (DBDExptime 0, as the
# shipped configurations set it). mod_dbd hands out its most recently used
# connection first, so under a steady load the others sit idle. With an
# expiry time, the next burst found them expired and opened new ones while
# holding the pool's lock. Every request of that child that took or gave back
# a connection waited meanwhile: on the bench, the two of eight runs that
# reopened several had p99s of 334 and 537 ms, the others 16-24 ms
# (docs/performance.md).
#
# Each request here runs on the child's one pooled connection: its backend's
# pid tells whether the connection outlived an idle pause longer than the
# expiry time.
use lib 't/lib';
use Test::Redeem;

# One child with one pooled connection.
our $POOL = <<'CONF';
StartServers 1
ServerLimit 1
MaxRequestWorkers 25
DBDMin 1
DBDKeep 1
DBDMax 1
CONF

our $IDLE = 2.5;    # seconds: longer than the one-second expiry of TEST 2

# The pids of the module's backends in the test's database.
sub pooled_backends {
    return sql(q{SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM pg_stat_activity
                 WHERE datname = current_database() AND usename = 'redeem_app'});
}

# A profile (which reads the caller's user), then the pause, then another:
# the backends before and after.
sub backends_around_idle_pause {
    my $token = user_token('ida');
    my $first = api_request('GET', '/api/profile', undef, "Authorization: Bearer $token");
    $first->{status} == 200 or die "first profile: $first->{status}";
    my $before = pooled_backends();
    $before =~ /^\d+$/ or die "one pooled backend expected, found '$before'";
    Time::HiRes::sleep($IDLE);
    my $second = api_request('GET', '/api/profile', undef, "Authorization: Bearer $token");
    $second->{status} == 200 or die "second profile: $second->{status}";
    return ($before, pooled_backends());
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: as shipped (conf/redeem.conf's DBDExptime 0): the connection outlives an idle pause
--- config eval
$main::POOL
--- request
GET /api/health
--- error_code: 200
--- check_eval
my ($before, $after) = main::backends_around_idle_pause();
$after eq $before or die "the idle connection was replaced: backend $before, then $after";



=== TEST 2: the trap, for contrast: with an expiry of one second the same pause replaces the connection
--- config eval
"$main::POOL\nDBDExptime 1\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my ($before, $after) = main::backends_around_idle_pause();
$after =~ /^\d+$/ && $after ne $before or die "expected a new backend after the pause: $before, then $after";



=== TEST 3: every shipped pool configuration sets DBDExptime 0 beside its DBDMax
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $root = $ENV{REDEEM_ROOT} or die 'REDEEM_ROOT unset';
for my $file (qw(conf/redeem.conf conf/tuning.conf debian/conf/redeem-example.conf)) {
    open my $fh, '<', "$root/$file" or die "$file: $!";
    my $text = do { local $/; <$fh> };
    $text =~ /^\s*DBDMax\s/m or die "$file sets no DBDMax";
    my @exptimes = $text =~ /^\s*DBDExptime\s+(\S+)/mg;
    "@exptimes" eq '0' or die "$file: DBDExptime @exptimes (want exactly one, 0)";
}
1;
