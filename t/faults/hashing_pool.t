# Logins waiting for a password-hashing slot hold no pooled connection. A
# child has few connections (conf/tuning.conf: 48 for 2,000 threads) and few
# hashing slots (RedeemHashConcurrency); a login or registration that read
# its user first and then waited for a slot held its connection all that
# while, so a burst of logins (wrong passwords and unknown emails will do)
# held every connection of the child, and its other requests waited for one
# until they got 503 (RDM0118). Now the slot is taken before the database.
#
# Here: one child, two connections, one hashing slot, hashes of a quarter
# to half a second (0.25 s on the Intel machines of make bench, 0.45 s on
# the AMD ones), and a profile's wait for a connection bounded at 900 ms
# (RedeemDBTimeout 1000). Six logins at once, then a profile: before, the
# first login hashed on one connection and the second held the other while
# it waited for the slot, the logins after them were next in line for a
# connection, and the profile waited behind them all (five hashes) past its
# deadline; now it must be answered within 0.3 s.
#
# A child's first use of the database makes the RedeemAdmin account when it
# is missing, and hashes its password: with these hashes that took most of
# a health check's half second, or all of it on a slow or busy machine, and
# the first request of a block was 503. So the account is made first, at a
# cheap cost (TEST 0); TEST 2 makes it again on purpose, under a
# RedeemDBTimeout of 3 s, which holds a hash and a connection's first use.
use lib 't/lib';
use Test::Redeem;
use Time::HiRes qw(sleep);

our $CONFIG = "StartServers 1\nServerLimit 1\nThreadsPerChild 10\nMaxRequestWorkers 10\n"
  . "MinSpareThreads 1\nMaxSpareThreads 10\nDBDMin 2\nDBDMax 2\nDBDKeep 2\n"
  . "RedeemDBTimeout 1000\nRedeemHashConcurrency 1\nRedeemHashWait 10000\n"
  . "RedeemArgon2 65536 6 1\n";

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $CONFIG) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 0: the RedeemAdmin account made at a cheap cost, so that the blocks' first requests find it (and leave it alone) rather than hash for it
--- config eval
$main::CONFIG =~ s/RedeemArgon2 65536 6 1/RedeemArgon2 1024 1 1/r
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT count(*) FROM users WHERE email = 'admin@example.test' AND is_admin
--- db_check_out
1



=== TEST 1: six slow logins at once hold at most the one connection of the one hashing login: a profile beside them is 200 at once, and every login gets its answer (401)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $token = user_token('hal');
my $warm = api_request('GET', '/api/profile', undef, "Authorization: Bearer $token");
$warm->{status} eq '200' or die "profile before the logins: $warm->{status} $warm->{body}\n";
my @logins = map {
    request_in_background('POST', '/api/login',
                          qq({"email": "nobody$_\@example.test", "password": "WrongPassw0rd"}))
} 1 .. 6;
sleep 0.15;    # the first login hashing, the others waiting for the slot
my $res = api_request('GET', '/api/profile', undef, "Authorization: Bearer $token");
my @answers = map { request_result($_) } @logins;
$res->{status} eq '200'
  or die "the profile beside the logins: expected 200, got $res->{status} $res->{body}\n";
$res->{elapsed} < 0.3
  or die "the profile waited $res->{elapsed} s for a connection behind logins waiting to hash\n";
my @bad = grep { $_->[0] ne '401' } @answers;
!@bad or die "logins not 401: " . join(', ', map { "@$_" } @bad) . "\n";
diag(sprintf "the profile took %.3f s; the logins %s s", $res->{elapsed}, join(' ', map { $_->[1] } @answers))
  if $ENV{TEST_VERBOSE};
1;
--- no_error_log
RDM0118
RDM0204



=== TEST 2: one hashing slot, the RedeemAdmin account to be made, and a login as the child's first use of the database: the admin's hash borrows the login's reserved slot (it used to wait for it, for RedeemHashWait, then 503), and the login is answered at once
--- config eval
# The time of the database (3 s, as long as the wait for a slot) holds the
# admin's hash and the connection's first use even on a slow, busy machine:
# a wait for the slot, as before, still ends in 503 (at 2.7 s).
$main::CONFIG =~ s/RedeemHashWait 10000/RedeemHashWait 3000/r =~ s/RedeemDBTimeout 1000/RedeemDBTimeout 3000/r
--- db_init
DELETE FROM users WHERE email = 'admin@example.test'
--- request
POST /api/login
--- request_json
{"email": "hal@example.test", "password": "TestPassw0rd1"}
--- error_code: 200
--- error_log
RDM0302
--- no_error_log
RDM0204



=== TEST 3: a login whose address has spent its login-email budget is 429 at once, while the one hashing slot is busy: it no longer waits for a slot first (with RedeemHashWait 100 ms, it got 503)
--- config eval
($main::CONFIG =~ s/RedeemHashWait 10000/RedeemHashWait 100/r) . "RedeemRateLimit login-email 1 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('hal');
my $wrong = '{"email": "HAL@example.test", "password": "WrongPassw0rd1"}';
my $first = api_request('POST', '/api/login', $wrong);
$first->{status} eq '401' or die "the first wrong login: $first->{status} $first->{body}\n";
my $busy = request_in_background('POST', '/api/login',
                                 '{"email": "nobody-busy@example.test", "password": "WrongPassw0rd"}');
sleep 0.1;    # that login hashing in the one slot
my $res = api_request('POST', '/api/login', $wrong);
my $other = request_result($busy);
$other->[0] eq '401' or die "the login holding the slot: @$other\n";
$res->{status} eq '429'
  or die "the second login of a spent address beside a busy slot: $res->{status} $res->{body}\n";



=== TEST 4: a login whose password is longer than any password can be (129 characters) is 401 at once while the one hashing slot is busy: it is no password of anyone's, so nothing is hashed for it (with RedeemHashWait 100 ms, waiting for the slot was 503)
--- config eval
$main::CONFIG =~ s/RedeemHashWait 10000/RedeemHashWait 100/r
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('ida');
my $busy = request_in_background('POST', '/api/login',
                                 '{"email": "nobody-busy@example.test", "password": "WrongPassw0rd"}');
sleep 0.1;    # that login hashing in the one slot
my $res = api_request('POST', '/api/login', '{"email": "ida@example.test", "password": "' . ('P4ssw0rd' x 16) . 'x"}');
my $other = request_result($busy);
$other->[0] eq '401' or die "the login holding the slot: @$other\n";
$res->{status} eq '401' or die "the over-long password beside a busy slot: $res->{status} $res->{body}\n";
