# A database that is slow or refuses for now, not gone: one child with one
# pooled connection, so that every request meets the state the block left.
#
# - A connection the module reconnected inside a request must be as
#   non-blocking as the others (a libpq reset turns blocking mode back on):
#   else a large send waits in libpq, past RedeemDBTimeout, and what the
#   client is told failed (503) is still committed when the server reads on.
# - A statement the module gave up on (503 at RedeemDBTimeout, its socket
#   shut) is cancelled by the server (client_connection_check_interval),
#   not committed once whatever held it up lets go.
# - A statement the server refuses for now (statement_timeout, a lock not had,
#   a deadlock) is 503 with Retry-After, not 500: another try may succeed.
# - A health check's question, cut short to half a second, that misses its
#   deadline makes health 503 but does not turn the child's other requests
#   away for a second as if the database were silent.
# - A read of the token's user shared by several requests ends by the
#   earliest of their deadlines, and a request waiting in line for one
#   leaves it at its own: none waits past RedeemDBTimeout.
# - A server that refuses writes (a standby after a failover; here the
#   role's sessions read-only) is 503 for now, and its connection is shut,
#   so that the first request once writes are allowed again succeeds.
# - A write is not sent with less than a tenth of RedeemDBTimeout left (a
#   registration's insert after its read was held up): 503, nothing made,
#   and its retry succeeds.
use lib 't/lib';
use Test::Redeem;
use POSIX ();
use Time::HiRes ();

our $HOLD = 6;    # seconds the test's lock on code_counts holds a generation
our $USED;    # codes used before TEST 11

our $BASE = one_connection_config(1000);

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $BASE) unless defined $block->config;
});

# The module's backends (those of the application role) on this database.
sub module_backends {
    return sprintf(q{SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                     AND usename = '%s' AND backend_type = 'client backend'}, $ENV{REDEEM_APP_USER});
}

# Terminates the module's backends and waits until they are gone, so that
# its next request finds its pooled connection closed and reconnects it.
sub kill_module_backends {
    my $query = module_backends();
    sql("SELECT count(pg_terminate_backend(pid)) FROM ($query) b");
    sql_until('the module\'s backends gone', "SELECT count(*) = 0 FROM ($query) b");
}

# Each [status, elapsed, Retry-After] of @results is a 200, or a 503 with
# Retry-After, within $limit seconds.
sub all_answered_within {
    my ($limit, @results) = @_;
    my @bad = grep { $_->[1] > $limit || !($_->[0] eq '200' || ($_->[0] eq '503' && $_->[2] =~ /^\d+$/)) }
      @results;
    die "expected 200 or 503 with Retry-After within $limit s, got: "
      . join(', ', map { "@$_" } @results) . "\n" if @bad;
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: warm-up: the pool's one connection made ready (and two codes for the blocks below)
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2}
--- error_code: 201
--- save_json
CODE=codes.0
CODE2=codes.1



=== TEST 2: the connection reconnected inside a generation of 20,000 codes that meets a lock: 503 by its deadline (1 s, plus 100 µs a code), and nothing stored once the lock is let go
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $admin = user_token('admin');
my $before = sql("SELECT count(*) FROM redeem_codes");
kill_module_backends();
my $locker = hold_lock('code_counts', 'EXCLUSIVE', $HOLD);
my $res = api_request('POST', '/admin/generate-codes', '{"count": 20000}', "Authorization: Bearer $admin");
my $elapsed = $res->{elapsed};
waitpid $locker, 0;
Time::HiRes::sleep(0.5);
my $stored = sql("SELECT count(*) - $before FROM redeem_codes");
die "expected 503, got $res->{status} $res->{body}\n" unless $res->{status} eq '503';
die "the generation answered after $elapsed s, past its deadline of 3 s\n" if $elapsed > 4.5;
die "a generation answered 503 was stored: $stored codes\n" unless $stored eq '0';
--- error_log
RDM0106
/RDM0111: database .* no answer within RedeemDBTimeout/



=== TEST 3: a redemption held up past RedeemDBTimeout by a lock on users: 503 (the module gave up and shut the socket), and once the lock is let go the statement has not committed: the backend, told to check on its client every 100 ms, cancelled it
--- login: alice
--- db_init eval
hold_lock('users', 'ACCESS EXCLUSIVE', 2);
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- wait: 2
--- error_log
/RDM0111: database statement redeem: no answer within RedeemDBTimeout/
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;
SELECT count(*) FROM audit_log WHERE event = 'redeem';
--- db_check_out
0
0



=== TEST 4: the server's statement_timeout (300 ms, in DBDParams) below RedeemDBTimeout, the users locked past it: a redemption is 503 with Retry-After (SQLSTATE 57014: cancelled, not a fault of ours), the code untouched
--- config eval
$main::BASE . qq{DBDParams "\${REDEEM_DB_PARAMS} options='-c statement_timeout=300'"\n}
--- login: alice
--- db_init eval
# the server restarted (a new DBDParams): its connection made ready first
my $res = api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('alice'));
die "warm-up: $res->{status}\n" unless $res->{status} eq '200';
hold_lock('users', 'ACCESS EXCLUSIVE', 1.5);
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 503
--- response_headers
Retry-After: 5
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- wait: 1.5
--- error_log
/RDM0116: database statement redeem refused for now \(SQLSTATE 57014\)/
--- no_error_log
RDM0111
RDM0112
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;
--- db_check_out
0



=== TEST 5: the lock gone: the same code redeems
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 200



=== TEST 6: the backend stopped for 2.5 s while health asks it, after 0.6 s of quiet (so health asks): 503, and the child is not put into its 503-at-once mode
--- db_init eval
Time::HiRes::sleep(0.6);
my $pid = sql(module_backends());
$pid =~ /^\d+$/ or die "one backend expected, got: $pid\n";
kill 'STOP', $pid or die "SIGSTOP $pid: $!\n";
my $waker = fork // die "fork: $!";
if (!$waker) { Time::HiRes::sleep(2.5); kill 'CONT', $pid; POSIX::_exit(0) }
'SELECT 1'
--- request
GET /api/health
--- error_code: 503
--- response_json_exact
{"status": "unhealthy", "message": "Database unavailable"}
--- error_log
/RDM0111: database statement ping: no answer within its shortened deadline/
--- no_error_log
RDM0112



=== TEST 7: right after, the profile is served (on a new connection)
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- no_error_log
RDM0112



=== TEST 8: reads of users held up by two locks in turn, of 1.8 s and then 2.4 s (RedeemDBTimeout 2 s here): five profiles at once, each answered within its own deadline (a read that waited in line used to get a whole RedeemDBTimeout of its own after), and the reads that began late, while the database answered others, do not count it as silent
--- config eval
one_connection_config(2000)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('alice');
my $first = hold_lock('users', 'ACCESS EXCLUSIVE', 1.8);
my @sent = request_in_background('GET', '/api/profile', undef, $auth);
lock_waiters('users', 1);
my $second = sql_in_background('BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2.4); COMMIT');
lock_waiters('users', 2);
push @sent, map { request_in_background('GET', '/api/profile', undef, $auth) } 1 .. 4;
my @results = map { request_result($_) } @sent;
waitpid $_, 0 for $first, $second;
$results[0][0] eq '200' or die "the first read, held up 1.8 s: @{ $results[0] }\n";
all_answered_within(2.35, @results);
--- no_error_log
RDM0112



=== TEST 9: reads waiting for a pooled connection leave by their deadlines: the child's one connection held by a generation of codes that a lock keeps waiting (for 2.2 s), a read in flight waiting for it and two more profiles in line; all three are 503 within their RedeemDBTimeout (when less than a tenth of it is left), not once the connection is given back
--- db_init eval
Time::HiRes::sleep(1.2);   # past any 503-at-once second a block before left
'SELECT 1'
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('alice');
my $admin = 'Authorization: Bearer ' . user_token('admin');
my $locker = hold_lock('code_counts', 'EXCLUSIVE', 2.2);
my $generation = request_in_background('POST', '/admin/generate-codes', '{"count": 40000}', $admin);
lock_waiters('code_counts', 1);
my @sent = map { request_in_background('GET', '/api/profile', undef, $auth) } 1 .. 2;
Time::HiRes::sleep(0.2);
push @sent, request_in_background('GET', '/api/profile', undef, $auth);
my @results = map { request_result($_) } @sent;
my $generated = request_result($generation);
waitpid $locker, 0;
$generated->[0] eq '201' or die "the generation that held the connection: @$generated\n";
my @late = grep { $_->[0] ne '503' || $_->[2] !~ /^\d+$/ || $_->[1] > 1.35 } @results;
!@late or die "expected three 503s within 1.35 s, got: " . join(', ', map { "@$_" } @results) . "\n";
--- error_log
/RDM0118: no pooled connection came free before less than a tenth of RedeemDBTimeout \(1000 ms\) was left: this child's requests held all 1 \(DBDMax\)/
--- no_error_log
RDM0112



=== TEST 10: right after, the profile is served
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- no_error_log
RDM0112



=== TEST 11: a server that refuses writes (a standby, here the role's sessions made read-only, as after a failover to a replica): a redemption is 503 with Retry-After (SQLSTATE 25006), nothing written, and the connection shut so that the next request connects anew
--- db_init eval
sql("ALTER ROLE $ENV{REDEEM_APP_USER} IN DATABASE " . var('DB_NAME') . ' SET default_transaction_read_only = on');
kill_module_backends();
$USED = sql('SELECT count(*) FROM redeem_codes WHERE used_by IS NOT NULL');
'SELECT 1'
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE2"}
--- error_code: 503
--- response_headers_like
Retry-After: \d+
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- check_eval
my $used = sql('SELECT count(*) FROM redeem_codes WHERE used_by IS NOT NULL');
$used eq $USED or die "a code was used: $USED used before, $used after\n";
--- error_log
/RDM0116: database statement redeem refused for now \(SQLSTATE 25006\)/



=== TEST 12: writes allowed again (the primary back): the same code redeems on the next request, without the module's backends being killed: the refused connection was not kept
--- db_init eval
sql("ALTER ROLE $ENV{REDEEM_APP_USER} IN DATABASE " . var('DB_NAME') . ' RESET default_transaction_read_only');
'SELECT 1'
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE2"}
--- error_code: 200



=== TEST 13: a request in line for a read leaves it before its deadline: the child's read in flight held up by a lock on users past RedeemDBTimeout (6 s here); a second profile, come while it runs (within a tenth of that), is 503 when less than a tenth of its time is left, and logged and counted as not read, not failed with it
--- config eval
($BASE =~ s/RedeemDBTimeout 1000/RedeemDBTimeout 6000/r)
  . qq{<Location "/metrics">\n  SetHandler redeem-metrics\n</Location>\n}
--- db_init eval
Time::HiRes::sleep(1.2);   # past any 503-at-once second a block before left
'SELECT 1'
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('alice');
my $late = metric_value('redeem_user_reads_late_total');
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 6.6);
my $first = request_in_background('GET', '/api/profile', undef, $auth);
lock_waiters('users', 1);
my $second = request_in_background('GET', '/api/profile', undef, $auth);
my @results = map { request_result($_) } $first, $second;
waitpid $locker, 0;
all_answered_within(6.35, @results);
$results[1][0] eq '503' or die "the profile in line: @{ $results[1] }\n";
my $counted = metric_value('redeem_user_reads_late_total') - $late;
$counted == 1 or die "redeem_user_reads_late_total counted $counted, not 1\n";
--- error_log
/RDM0207: user \d+ not read: less than a tenth of RedeemDBTimeout \(6000 ms\) was left when its turn came/



=== TEST 14: right after, the profile is served
--- config eval
$BASE =~ s/RedeemDBTimeout 1000/RedeemDBTimeout 6000/r
--- db_init eval
Time::HiRes::sleep(1.2);   # past the 503-at-once second the reads held up left
'SELECT 1'
--- login: alice
--- request
GET /api/profile
--- error_code: 200



=== TEST 15: an admin's read of another user's subscription whose audit row cannot be written (audit_log locked past RedeemDBTimeout): 503, and nothing of that user is sent
--- login: admin
--- db_init eval
user_token('dora');
Time::HiRes::sleep(1.2);   # past any 503-at-once second a block before left
hold_lock('audit_log', 'ACCESS EXCLUSIVE', 2);
'SELECT 1'
--- request eval
'GET /subscription/' . user_id('dora')
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- wait: 2
--- error_log
/RDM0402: audit row for event subscription_read could not be written/
--- db_check
SELECT count(*) FROM audit_log WHERE event = 'subscription_read'
--- db_check_out
0



=== TEST 16: a redemption refused before its statement (a user_id not the caller's) whose audit row cannot be written: 503, not the refusal, so the attempt is never answered unrecorded
--- login: dora
--- db_init eval
Time::HiRes::sleep(1.2);
# The connection TEST 15 dropped made again, its statements prepared (a
# prepare that names audit_log would wait on the lock too).
api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('dora'))->{status} == 200
  or die "profile before the lock\n";
hold_lock('audit_log', 'ACCESS EXCLUSIVE', 2);
'SELECT 1'
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => var('CODE'), user_id => 0 + user_id('alice')})
--- error_code: 503
--- wait: 2
--- error_log
/RDM0402: audit row for event redeem could not be written/
--- db_check
SELECT count(*) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_dora
--- db_check_out
0



=== TEST 17: once audit_log can be written, the same refusal is answered 403, with its row
--- login: dora
--- db_init eval
Time::HiRes::sleep(1.2);
'SELECT 1'
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => var('CODE'), user_id => 0 + user_id('alice')})
--- error_code: 403
--- db_check
SELECT count(*), min(outcome) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_dora
--- db_check_out
1|forbidden



=== TEST 18: a registration whose insert would go with less than a tenth of RedeemDBTimeout left (10 s, its last tenth a second wide, wide enough for a loaded machine; its read of the email held up by a lock on users until 9.02 s after it began): 503 with the insert not sent and no account made. Sent with a moment left, it could commit while its client is told 503, and the client's retry would be told the email is taken (before, such an insert was sent: 201 here)
--- config eval
$BASE =~ s/RedeemDBTimeout 1000/RedeemDBTimeout 10000/r
--- db_init eval
Time::HiRes::sleep(1.2);   # past any 503-at-once second a block before left
'SELECT 1'
--- request
GET /api/health
--- error_code: 200
--- check_eval
# The locker is ended below: its psql's complaint is of no interest.
open my $stderr, '>&', \*STDERR or die "dup: $!\n";
open STDERR, '>', '/dev/null' or die "/dev/null: $!\n";
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 30);
open STDERR, '>&', $stderr or die "dup: $!\n";
my $sent = request_in_background('POST', '/api/register',
    '{"email": "late-insert@example.test", "password": "Passw0rd123"}');
# The read waits on the lock from soon after the request's time began, so
# its time began before this returns: the lock is let go at least 9.02 s
# into it, the insert later still (past 9 s, the last tenth).
lock_waiters('users', 1);
Time::HiRes::sleep(9.02);
sql("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
    . " WHERE c.relname = 'users' AND l.mode = 'AccessExclusiveLock' AND l.granted");
waitpid $locker, 0;
my $result = request_result($sent);
$result->[0] eq '503' or die "the registration: @$result\n";
$result->[2] =~ /^\d+$/ or die "the 503 without Retry-After: @$result\n";
my $made = sql("SELECT count(*) FROM users WHERE email = 'late-insert\@example.test'");
$made eq '0' or die "a registration answered 503 made its account ($made)\n";
--- error_log
/RDM0114: statement user_insert: not sent, RedeemDBTimeout \(10000 ms\) ran out before it, or all but a tenth of it/
--- no_error_log
RDM0111



=== TEST 19: its retry registers the account
--- config eval
$BASE =~ s/RedeemDBTimeout 1000/RedeemDBTimeout 3000/r
--- request
POST /api/register
--- request_json
{"email": "late-insert@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- db_check
SELECT count(*) FROM users WHERE email = 'late-insert@example.test'
--- db_check_out
1
