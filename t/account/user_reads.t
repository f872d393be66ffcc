# The token's user read for many requests in one statement (user_reads.c):
# while a read runs, the requests of the child that need their users wait
# and are read together in the next one. Each still gets its own user, a
# deleted user's token is 401 for that request alone, a read sees what was
# committed before the request, and the statements are counted.
use lib 't/lib';
use Test::Redeem;

our $CONF = <<'CONF';
StartServers 1
ServerLimit 1
ThreadsPerChild 40
MinSpareThreads 40
MaxSpareThreads 40
MaxRequestWorkers 40
<Location "/metrics">
  SetHandler redeem-metrics
</Location>
CONF

# GET $uri once for each name at once; "status email" of each, in order.
sub burst_as {
    my ($uri, @names) = @_;
    my @tokens = map { user_token($_) } @names;
    pipe(my $r, my $w) or die;
    my @pids;
    for my $i (0 .. $#names) {
        my $pid = fork // die;
        if (!$pid) {
            close $r;
            my $res = api_request('GET', $uri, undef, "Authorization: Bearer $tokens[$i]");
            my $json = $res->{json} || {};
            my $email = $json->{email} // ($json->{user} && $json->{user}{email}) // $json->{error} // '-';
            syswrite $w, "$i " . ($res->{status} // 'none') . " $email\n";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $w;
    my @results;
    for (<$r>) {
        my ($i, $status, $email) = /^(\d+) (\S+) (.*)$/ or die "bad line $_";
        $results[$i] = "$status $email";
    }
    waitpid $_, 0 for @pids;
    return @results;
}

default_config($CONF);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a request alone reads its user at once: one read, one statement
--- login: ula
--- request
GET /api/profile
--- error_code: 200
--- check_eval
my ($reads, $statements) = map { metric_value($_) } qw(redeem_user_reads_total redeem_user_read_statements_total);
my $res = api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('ula'));
$res->{status} == 200 && $res->{json}{user}{email} eq 'ula@example.test' or die "profile: $res->{status}";
metric_value('redeem_user_reads_total') == $reads + 1 or die 'one read more';
metric_value('redeem_user_read_statements_total') == $statements + 1 or die 'one statement more';



=== TEST 2: while reads wait on the database, 24 requests of six users are read in a few statements, each answered with its own user and a deleted user's token refused alone
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
my @names = map { "ura$_" } 0 .. 4;
user_token($_) for @names, 'urgone';
sql('DELETE FROM users WHERE id = ' . user_id('urgone'));
my ($reads, $statements) = map { metric_value($_) } qw(redeem_user_reads_total redeem_user_read_statements_total);
my @asked = map { (@names, 'urgone') } 1 .. 4;
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 3);
my @got = burst_as('/api/profile', @asked);
waitpid $locker, 0;
$? == 0 or die "the locking psql failed: $?";
for my $i (0 .. $#asked) {
    my $want = $asked[$i] eq 'urgone' ? '401 Invalid or expired token' : "200 $asked[$i]\@example.test";
    ($got[$i] // '') eq $want or die "request $i as $asked[$i]: got '" . ($got[$i] // 'nothing') . "', want '$want'";
}
my $read = metric_value('redeem_user_reads_total') - $reads;
my $run = metric_value('redeem_user_read_statements_total') - $statements;
$read == 24 or die "reads: $read";
# One read runs, held by the lock; the other 23 wait for it and are read
# in one statement. A slow machine may add a straggler.
$run >= 2 && $run <= 6 or die "24 requests read in $run statements";



=== TEST 3: the same for the subscription endpoint: each its own user's state
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
my @names = map { "urs$_" } 0 .. 3;
user_token($_) for @names;
sql('UPDATE users SET subscription_expires_at = now() + interval \'40 days\' WHERE id = ' . user_id('urs1'));
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 2);
pipe(my $r, my $w) or die;
my @pids;
for my $i (0 .. 11) {
    my $name = $names[$i % 4];
    my $pid = fork // die;
    if (!$pid) {
        close $r;
        my $res = api_request('GET', '/api/subscription', undef, 'Authorization: Bearer ' . user_token($name));
        my $json = $res->{json} || {};
        syswrite $w, "$name $res->{status} " . ($json->{is_subscribed} ? 'yes' : 'no') . "\n";
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $w;
my @lines = sort <$r>;
waitpid $_, 0 for @pids, $locker;
my @bad = grep { !/^urs(\d) 200 (yes|no)$/ || ($1 == 1) != ($2 eq 'yes') } @lines;
@lines == 12 && !@bad or die "answers:\n@lines";



=== TEST 4: a read sees what was committed before the request: a new admin right counts at once
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('urnew');
api_request('GET', '/admin/codes', undef, "Authorization: Bearer $token")->{status} == 403 or die 'not yet admin';
sql('UPDATE users SET is_admin = true WHERE id = ' . user_id('urnew'));
my $res = api_request('GET', '/admin/codes', undef, "Authorization: Bearer $token");
$res->{status} == 200 or die "admin now: $res->{status}";



=== TEST 5: requests whose users another request's statement read still reach the database themselves: admin listings, a batch of codes and another user's subscription, all in line behind a blocked read
--- request
GET /api/health
--- error_code: 200
--- timeout: 60
--- check_eval
my $admin = user_token('uradm');
sql('UPDATE users SET is_admin = true WHERE id = ' . user_id('uradm'));
my @first = map { user_token($_) } qw(urb0 urb1);
my $other = user_id('urb0');
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 3);
pipe(my $r, my $w) or die;
my @pids;
my $ask = sub {
    my ($label, $method, $uri, $token, $body) = @_;
    my $pid = fork // die;
    if (!$pid) {
        close $r;
        my $res = api_request($method, $uri, $body, "Authorization: Bearer $token");
        syswrite $w, "$label " . ($res->{status} // 'none') . "\n";
        POSIX::_exit(0);
    }
    push @pids, $pid;
};
# The child's read, waiting on the lock ...
$ask->('profile0', 'GET', '/api/profile', $first[0]);
my $deadline = Time::HiRes::time() + 10;
until (sql(q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'users' AND NOT l.granted}) eq '1') {
    die 'the read did not reach the lock' if Time::HiRes::time() > $deadline;
    Time::HiRes::sleep(0.05);
}
$ask->('profile1', 'GET', '/api/profile', $first[1]);
# ... so these wait in line, and one statement reads all their users.
$ask->('users', 'GET', '/api/users', $admin);
$ask->('codes', 'GET', '/admin/codes', $admin);
$ask->('generate', 'POST', '/admin/generate-codes', $admin, '{"count": 3}');
$ask->('subscription_of', 'GET', "/subscription/$other", $admin);
$ask->('profile_admin', 'GET', '/api/profile', $admin);
close $w;
my @lines = sort <$r>;
waitpid $_, 0 for @pids, $locker;
my $want = join '', sort map { "$_\n" } 'codes 200', 'generate 201', 'profile0 200', 'profile1 200',
  'profile_admin 200', 'subscription_of 200', 'users 200';
join('', @lines) eq $want or die "answers:\n@lines";
