# A failover between two PostgreSQL servers: a primary with a synchronous
# standby (streaming replication), the module's DBDParams listing both with
# target_session_attrs=read-write. Under a steady stream of redemptions the
# primary is stopped at once (as in a crash) and the standby promoted.
#
# - Nothing acknowledged is lost: every code answered 200 is used by its
#   redeemer on the new primary (a commit waits for the standby).
# - Meanwhile the answer is 503 with Retry-After, never 500, and a code used
#   without its 200 is one whose client was told 503 (the redemption in
#   flight when the primary stopped: the module cannot know whether its
#   commit was made; its months were added).
# - It heals by itself: the module's connections find the new primary (the
#   old one's socket refuses, the standby is refused until promoted), its
#   schema is checked and the statements prepared afresh, and redemptions
#   succeed again within seconds of the promotion, without httpd restarting.
# - Used codes, successful audit rows and subscription months agree.
#
# The two clusters are this file's own (initdb as the PostgreSQL owner, in a
# directory under /tmp), on Unix sockets only.
use lib 't/lib';
use Test::Redeem;
use File::Path ();
use File::Temp ();
use POSIX ();
use Time::HiRes ();

our $CODES = 3000;   # codes generated for the stream (more than it uses)
our $KILL_AT = 2;    # seconds into the stream the primary is stopped
our $AFTER = 6;      # seconds the stream goes on after the promotion
our $HEAL = 5;       # seconds after the promotion by which redemptions succeed again

our $Pid = $$;    # the clusters are stopped by this process only, not by a fork of it
our $Bin = $ENV{REDEEM_PG_BIN} // die "REDEEM_PG_BIN is not set (scripts/test.sh)\n";
our $Owner = $> == 0 ? 'postgres' : undef;    # initdb refuses root
our $Dir = File::Temp::tempdir('redeem-failover-XXXXXX', TMPDIR => 1, CLEANUP => 0);
our $Sock = "$Dir/sock";
# Unix sockets only, in a directory of their own: no port is shared.
our ($PrimaryPort, $StandbyPort) = (5432, 5433);
our $Db = 'failover';
our @Codes;

# A command as the clusters' owner; dies with its output unless it succeeds.
sub as_owner {
    my @cmd = @_;
    unshift @cmd, 'runuser', '-u', $Owner, '--' if $Owner;
    my $out = `cd / && @{[ map { quotemeta } @cmd ]} 2>&1`;
    die "@_: $out\n" if $?;
    return $out;
}

# SQL as the superuser on one of the two servers: psql's output, chomped.
sub sql_on {
    my ($port, $query, $db) = @_;
    local $ENV{PGHOST} = $Sock;
    local $ENV{PGPORT} = $port;
    local $ENV{PGUSER} = 'postgres';
    local $ENV{PGGSSENCMODE} = 'disable';
    open my $fh, '-|', "$Bin/psql", '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $db // $Db, '-c', $query
      or die "psql: $!\n";
    my $out = join '', <$fh>;
    close $fh or die "psql on $port failed: $query\n";
    $out =~ s/\n\z//;
    return $out;
}

sub until_true {
    my ($what, $seconds, $check) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    until (eval { $check->() }) {
        die "$what: not within $seconds s" . ($@ ? " ($@)" : '') . "\n" if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }
    return 1;
}

sub settings {
    my ($port, @more) = @_;
    return join '', map { "$_\n" } "port = $port", "listen_addresses = ''",
      "unix_socket_directories = '$Sock'", 'unix_socket_permissions = 0777',
      'max_connections = 100', 'shared_buffers = 32MB', 'log_min_messages = warning', @more;
}

sub append_file {
    my ($file, $text) = @_;
    open my $fh, '>>', $file or die "$file: $!\n";
    print $fh $text;
    close $fh or die "$file: $!\n";
}

sub start_clusters {
    chmod 0755, $Dir;
    mkdir $Sock or die "$Sock: $!\n";
    chmod 0755, $Sock;
    my $pwfile = "$Dir/pwfile";
    open my $fh, '>', $pwfile or die "$pwfile: $!\n";
    print $fh "$ENV{PGPASSWORD}\n";
    close $fh;
    if ($Owner) {
        my (undef, undef, $uid, $gid) = getpwnam($Owner) or die "no user $Owner\n";
        chown $uid, $gid, $Dir, $Sock, $pwfile;
    }
    as_owner("$Bin/initdb", '-D', "$Dir/primary", '-U', 'postgres', "--pwfile=$pwfile",
             '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C');
    unlink $pwfile;
    append_file("$Dir/primary/postgresql.conf", settings($PrimaryPort, 'wal_level = replica'));
    as_owner("$Bin/pg_ctl", '-D', "$Dir/primary", '-l', "$Dir/primary.log", '-w', 'start');
    {
        local @ENV{qw(PGHOST PGPORT PGUSER PGGSSENCMODE)} = ($Sock, $PrimaryPort, 'postgres', 'disable');
        open my $migrate, '|-', "$ENV{REDEEM_ROOT}/scripts/redeem-migrate", '-c', '-r',
          $ENV{REDEEM_APP_USER}, '-p', $Db or die "redeem-migrate: $!\n";
        print $migrate "$ENV{REDEEM_APP_PASSWORD}\n";
        close $migrate or die "redeem-migrate failed\n";
    }
    {
        local $ENV{PGGSSENCMODE} = 'disable';
        as_owner('env', "PGPASSWORD=$ENV{PGPASSWORD}", "$Bin/pg_basebackup", '-D', "$Dir/standby",
                 '-R', '-X', 'stream', '-c', 'fast', '-h', $Sock, '-p', $PrimaryPort, '-U', 'postgres');
    }
    append_file("$Dir/standby/postgresql.conf", settings($StandbyPort));
    as_owner("$Bin/pg_ctl", '-D', "$Dir/standby", '-l', "$Dir/standby.log", '-w', 'start');
    # From now on a commit waits until the standby has it: nothing
    # acknowledged is lost. (Set now, not before: the set-up's own commits
    # would wait for a standby not yet there, and the standby, promoted,
    # would wait for one of its own.)
    sql_on($PrimaryPort, "ALTER SYSTEM SET synchronous_standby_names = '*'", 'postgres');
    sql_on($PrimaryPort, 'SELECT pg_reload_conf()', 'postgres');
    until_true('the standby streaming synchronously', 30, sub {
        sql_on($PrimaryPort, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
               'postgres') eq '1'
    });
}

sub stop_clusters {
    for my $cluster (qw(primary standby)) {
        next unless -f "$Dir/$cluster/postmaster.pid";
        eval { as_owner("$Bin/pg_ctl", '-D', "$Dir/$cluster", '-m', 'immediate', '-w', 'stop') };
    }
    File::Path::remove_tree($Dir) unless $ENV{TEST_REDEEM_KEEP};
}

END { stop_clusters() if $$ == $Pid }
# Interrupted during the set-up, the clusters are stopped too (END runs).
@SIG{qw(INT TERM)} = (sub { exit 130 }) x 2;

start_clusters();

# Both servers, the primary first; only a server that takes writes is used.
our $DB_PARAMS = "host=$Sock,$Sock port=$PrimaryPort,$StandbyPort dbname=$Db "
  . "user=$ENV{REDEEM_APP_USER} password=$ENV{REDEEM_APP_PASSWORD} gssencmode=disable "
  . "target_session_attrs=read-write connect_timeout=2 options='-c statement_timeout=10000'";

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => qq{DBDParams "$DB_PARAMS"\nRedeemDBTimeout 5000\n}
                      . "StartServers 2\nServerLimit 2\nThreadsPerChild 10\nMaxRequestWorkers 20\n"
                      . "MinSpareThreads 1\nMaxSpareThreads 20\nDBDMin 5\nDBDKeep 5\nDBDMax 5\n"
                      . "RedeemRateLimit redeem-user 0 60\nRedeemRateLimit redeem-ip 0 60\n")
      unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: on the primary: an account, and codes for the stream
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $admin = user_token('admin');
user_token('alice');
my $res = api_request('POST', '/admin/generate-codes', qq{{"count": $main::CODES}},
                      "Authorization: Bearer $admin");
$res->{status} eq '201' or die "generation: $res->{status} $res->{body}\n";
@main::Codes = @{ $res->{json}{codes} };
main::sql_on($main::PrimaryPort, 'SELECT count(*) FROM redeem_codes') == $main::CODES
  or die "the codes are not on the primary\n";



=== TEST 2: the primary stopped at once under a stream of redemptions, the standby promoted: nothing acknowledged lost, 503 meanwhile, healed without a restart
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('alice');
my $alice = user_id('alice');
my $log = var('SERVROOT') . '/stream.log';
my $stop = var('SERVROOT') . '/stream.stop';
unlink $stop;
my $start = Time::HiRes::time();
my $pid = fork // die "fork: $!\n";
if (!$pid) {
    # Until told to stop (or a minute at most); nothing of the harness runs here.
    eval {
        open my $out, '>', $log or die "$log: $!\n";
        $out->autoflush(1);
        for my $code (@main::Codes) {
            last if -e $stop || Time::HiRes::time() - $start > 60;
            my $res = api_request('POST', '/redeem', qq{{"card_code": "$code"}}, "Authorization: Bearer $token");
            my ($retry) = map { $_->[1] } grep { lc $_->[0] eq 'retry-after' } @{ $res->{headers} || [] };
            printf $out "%s %s %.3f %s\n", $code, $res->{status} // 'none', Time::HiRes::time() - $start, $retry // '-';
            Time::HiRes::sleep(0.005);    # a steady stream, not a flood
        }
        close $out;
    };
    POSIX::_exit($@ ? 1 : 0);
}
Time::HiRes::sleep($main::KILL_AT);
main::as_owner("$main::Bin/pg_ctl", '-D', "$main::Dir/primary", '-m', 'immediate', '-w', 'stop');
my $stopped = Time::HiRes::time() - $start;
main::as_owner("$main::Bin/pg_ctl", '-D', "$main::Dir/standby", '-w', 'promote');
my $promoted = Time::HiRes::time() - $start;
Time::HiRes::sleep($main::AFTER);
open my $stopping, '>', $stop or die "$stop: $!\n";
close $stopping;
waitpid $pid, 0;
$? == 0 or die "the stream of redemptions failed (status $?)\n";
open my $fh, '<', $log or die "$log: $!\n";
my $times = var('SERVROOT') . '/failover.times';
my @lines = map { [split] } <$fh>;
@lines > 20 or die "the stream made only " . @lines . " requests\n";
$lines[-1][2] > $promoted + $main::HEAL or die "the stream ended $lines[-1][2] s in, too soon after the promotion ($promoted s)\n";
my @odd = grep { !($_->[1] eq '200' || ($_->[1] eq '503' && $_->[3] =~ /^\d+$/)) } @lines;
!@odd or die "expected 200, or 503 with Retry-After: " . join(', ', map { "@$_" } @odd) . "\n";
my @before = grep { $_->[2] < $stopped && $_->[1] eq '200' } @lines;
@before > 5 or die "too few redemptions before the primary stopped\n";
my ($healed) = grep { $_->[2] > $promoted && $_->[1] eq '200' } @lines;
$healed or die "no redemption succeeded after the promotion (at $promoted s): "
  . join(', ', map { "$_->[1]\@$_->[2]" } @lines[-5 .. -1]) . "\n";
$healed->[2] - $promoted < $main::HEAL or die "healed only $healed->[2] s in, promoted at $promoted s\n";
open my $record, '>', $times or die "$times: $!\n";
printf $record "stopped %.3f promoted %.3f first 200 after %.3f requests %d (503: %d)\n", $stopped, $promoted,
  $healed->[2], scalar @lines, scalar grep { $_->[1] eq '503' } @lines;
close $record;
# Each child finds the new primary on its own, as its requests need it.
my @tail = grep { $_->[2] > $promoted + $main::HEAL && $_->[1] ne '200' } @lines;
!@tail or die "failures more than $main::HEAL s after the promotion: " . join(', ', map { "@$_" } @tail) . "\n";
scalar(grep { $_->[1] eq '503' } @lines) > 0 or die "no 503 at all: the failover was not seen\n";
# On the new primary (the standby's port).
my $codes = main::sql_on($main::StandbyPort, 'SELECT count(*) FROM redeem_codes');
$codes == $main::CODES or die "codes on the new primary: $codes\n";
my @acknowledged = map { $_->[0] } grep { $_->[1] eq '200' } @lines;
# Each code answered 200 is used: redeemed again, it is 409.
my @lost = grep {
    my $res = api_request('POST', '/redeem', qq{{"card_code": "$_"}}, "Authorization: Bearer $token");
    $res->{status} ne '409'
} @acknowledged;
!@lost or die scalar(@lost) . " codes answered 200 are not used on the new primary\n";
# A code used without its 200 is one whose client was told 503 (the outcome
# unknown to the module when the connection died under its statement).
my $used = main::sql_on($main::StandbyPort, "SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL");
my $unacknowledged = grep { $_->[1] eq '503' } @lines;
$used <= @acknowledged + $unacknowledged
  or die "$used codes used, " . @acknowledged . " answered 200 and $unacknowledged 503: some used by no request\n";
main::sql_on($main::StandbyPort, "SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL AND used_by <> $alice") == 0
  or die "codes used by another user\n";
my $audited = main::sql_on($main::StandbyPort,
  "SELECT count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success' AND actor_id = $alice");
$audited == $used or die "$used codes used, $audited successful redemptions audited\n";
# The subscription is the codes used, each extending it from when it was used.
my $agrees = main::sql_on($main::StandbyPort, subscription_fold_sql($alice));
$agrees eq 't' or die "the subscription does not add up to the codes used\n";
--- error_log
RDM0107



=== TEST 3: right after, the subscription is read from the new primary
--- login: alice
--- request
GET /api/subscription
--- error_code: 200
--- response_json
{"is_subscribed": true}
