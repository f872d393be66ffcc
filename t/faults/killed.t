# Killed in the middle: under a load of redemptions (wrk, 16 connections,
# each request a fresh code), httpd children are killed with SIGKILL, three
# times, and then a PostgreSQL backend is (the postmaster then resets every
# backend and runs crash recovery). Afterwards nothing is half done: every
# used code has exactly one successful audit row and every successful audit
# row its used code, and each user's subscription grew by exactly one month
# per code used (the first redemption's time plus k months, a month at a
# time); and the server answers again within a second.
use lib 't/lib';
use Test::Redeem;
use POSIX ();

our $USERS = 20;
our $CONF = <<'CONF';
StartServers 3
ServerLimit 6
ThreadsPerChild 10
MinSpareThreads 20
MaxSpareThreads 40
MaxRequestWorkers 60
DBDMin 10
DBDKeep 10
DBDMax 10
CONF

sub parent_pid {
    open my $fh, '<', var('SERVROOT') . '/httpd.pid' or die "httpd.pid: $!";
    chomp(my $pid = <$fh>);
    return $pid;
}

sub children {
    my $parent = parent_pid();
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $st, '<', $stat or next;
        my $line = <$st> // next;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+)/ && $2 == $parent;
    }
    return @kids;
}

# "token code" lines for wrk (t/lib/wrk/redeem.lua): the saved codes spread over the users.
sub write_pairs {
    my $codes = JSON::PP::decode_json(var('CODES'));
    my $file = var('SERVROOT') . '/pairs.txt';
    open my $fh, '>', $file or die $!;
    print $fh user_token('load' . ($_ % $USERS)), ' ', $codes->[$_], "\n" for 0 .. $#$codes;
    close $fh;
    return $file;
}

sub start_wrk {
    my ($seconds) = @_;
    my $pairs = write_pairs();
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', var('SERVROOT') . '/wrk.out';
        open STDERR, '>&', \*STDOUT;
        $ENV{BENCH_PAIRS} = $pairs;
        $ENV{BENCH_THREADS} = 2;
        exec('wrk', '-t2', '-c16', "-d${seconds}s", '-s', "$ENV{REDEEM_ROOT}/t/lib/wrk/redeem.lua",
             'http://127.0.0.1:' . var('PORT')) or POSIX::_exit(127);
    }
    return $pid;
}

sub answers_within {
    my ($seconds) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    while (Time::HiRes::time() < $deadline) {
        my $res = api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('load0'));
        return 1 if ($res->{status} // 0) == 200;
        Time::HiRes::sleep(0.05);
    }
    die "no 200 within $seconds s";
}

# The redeem database backends of this file's database.
sub backend_pids {
    my $db = var('DB_NAME');
    return grep { /^\d+$/ } split /\n/, sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND usename = '$ENV{REDEEM_APP_USER}'");
}

# GET /api/health answers 200 $in_a_row times running within $seconds. A
# child that met the outage answers 503 at once until its next probe of the
# database (a second after); one child answering says little of the others.
sub healthy_in_a_row {
    my ($in_a_row, $seconds) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    my ($run, $last) = (0, '');
    while (Time::HiRes::time() < $deadline) {
        my $res = api_request('GET', '/api/health');
        $last = $res->{status} // 0;
        return 1 if $last == 200 && ++$run >= $in_a_row;
        $run = 0 if $last != 200;
        Time::HiRes::sleep(0.05);
    }
    die "not $in_a_row health answers of 200 running within $seconds s (last $last)";
}

sub wait_for_postgres {
    my $deadline = Time::HiRes::time() + 30;
    while (Time::HiRes::time() < $deadline) {
        return 1 if eval { sql('SELECT 1') eq '1' };
        Time::HiRes::sleep(0.2);
    }
    die 'PostgreSQL did not come back';
}

# The invariant after a kill, as SQL: used codes equal successful audit rows,
# each used code has its row and each row its code, and every user's
# subscription is the first redemption's time plus a month per code (added a
# month at a time, as redemptions do: the 30th becomes the 28th in February).
sub invariant_sql {
    return <<'SQL';
-- A month added k times, one at a time, as k redemptions do (the 30th
-- becomes the 28th in February and stays there).
CREATE FUNCTION pg_temp.months_after(t timestamptz, k int) RETURNS timestamptz
  LANGUAGE plpgsql AS $$
DECLARE r timestamptz := t;
BEGIN
  FOR i IN 1 .. k LOOP r := r + interval '1 month'; END LOOP;
  RETURN r;
END $$;
SELECT (SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL)
     = (SELECT count(*) FROM audit_log WHERE event = 'redeem' AND outcome = 'success'),
       (SELECT count(*) FROM redeem_codes c
         WHERE (c.used_at IS NOT NULL) <> EXISTS (SELECT FROM audit_log a WHERE a.event = 'redeem'
                  AND a.outcome = 'success' AND a.target = 'code ' || c.id)),
       (SELECT count(*) FROM users u
          LEFT JOIN (SELECT used_by, count(*) AS k, min(used_at) AS lo, max(used_at) AS hi
                       FROM redeem_codes WHERE used_at IS NOT NULL GROUP BY used_by) c ON c.used_by = u.id
         WHERE NOT u.is_admin AND u.email LIKE 'load%'
           AND CASE WHEN c.k IS NULL THEN u.subscription_expires_at IS NOT NULL
                    ELSE NOT (u.subscription_expires_at BETWEEN pg_temp.months_after(c.lo, c.k::int)
                                                            AND pg_temp.months_after(c.hi, c.k::int)) END),
       (SELECT count(*) > 100 FROM redeem_codes WHERE used_at IS NOT NULL)
SQL
}

default_config($CONF);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the codes to redeem, and the users
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 30000}
--- error_code: 201
--- timeout: 60
--- save_json
CODES=codes
--- check_eval
user_token("load$_") for 0 .. $USERS - 1;
1



=== TEST 2: under load, a child killed with SIGKILL three times: answered again within a second each time
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
my $wrk = start_wrk(8);
my $killed = 0;
for my $round (1 .. 3) {
    Time::HiRes::sleep(1.5);
    my @kids = children();
    die 'no children' unless @kids;
    kill 'KILL', $kids[$round % @kids] and $killed++;
    answers_within(1);
}
waitpid $wrk, 0;
$killed == 3 or die "killed $killed";
open my $out, '<', var('SERVROOT') . '/wrk.out' or die $!;
my $report = join '', <$out>;
$report =~ /redeemed \(200\): (\d+)/ && $1 > 100 or die "wrk redeemed too little:\n$report";
1



=== TEST 3: ... nothing half done: used codes, successful audit rows and months added agree
--- request
GET /api/health
--- error_code: 200
--- db_check eval
invariant_sql()
--- db_check_out
t|0|0|t



=== TEST 4: under load, a PostgreSQL backend killed with SIGKILL (crash recovery): served again afterwards
--- request
GET /api/health
--- error_code: 200
--- timeout: 90
--- check_eval
my $wrk = start_wrk(8);
Time::HiRes::sleep(2);
my @backends = backend_pids();
die 'no backend' unless @backends;
kill 'KILL', $backends[0] or die "kill $backends[0]: $!";
Time::HiRes::sleep(1);
wait_for_postgres();
waitpid $wrk, 0;
answers_within(5);
healthy_in_a_row(20, 10);



=== TEST 5: ... and nothing half done there either
--- request
GET /api/health
--- error_code: 200
--- db_check eval
invariant_sql()
--- db_check_out
t|0|0|t
