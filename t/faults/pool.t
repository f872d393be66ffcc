# A pool smaller than the threads (conf/tuning.conf keeps 12 connections for
# 1000 threads a child): a request that waits for a free connection longer
# than its RedeemDBTimeout gets 503 without sending its statement. Sent that
# late, a redemption would run while the client is told 503 (the code used,
# the months added), the healthy connection would be dropped, and the child
# would answer 503 to everyone for a second as if the database were silent.
#
# Here one connection, held by a generation of codes that waits on a lock
# the test holds (inside the generation's own, longer deadline), while a
# redemption with a 300 ms deadline waits for that connection.
use lib 't/lib';
use Test::Redeem;
use POSIX ();

our $HOLD = 1.5;    # seconds the test's lock holds the generation (and the pool)

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => one_connection_config(300)) unless defined $block->config;
});

# A request in a child process: its pid; the status goes to $file.
sub request_in_background {
    my ($file, @request) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $res = api_request(@request);
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh ($res->{status} // 'none'), "\n";
        close $fh;
        POSIX::_exit(0);
    }
    return $pid;
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



=== TEST 2: the one connection busy past the redemption's deadline: 503, nothing sent, the code still unused
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $admin = user_token('admin');
my $token = user_token('fay');
my $locker = hold_lock('code_counts', 'EXCLUSIVE', $HOLD);
my $file = var('SERVROOT') . "/generation.status";
my $generation = request_in_background($file, 'POST', '/admin/generate-codes', '{"count": 20000}',
                                       "Authorization: Bearer $admin");
Time::HiRes::sleep(0.3);
my $res = api_request('POST', '/redeem', '{"card_code": "' . var('CODE') . '"}',
                      "Authorization: Bearer $token");
waitpid $generation, 0;
waitpid $locker, 0;
die "the redemption waited for the pool: expected 503, got $res->{status} $res->{body}\n"
  unless $res->{status} eq '503' && $res->{json} && $res->{json}{error};
die "the redemption came back before the lock let the generation go ($res->{elapsed} s)\n"
  if $res->{elapsed} < $HOLD - 0.5;
open my $fh, '<', $file or die "no status of the generation: $!\n";
chomp(my $status = <$fh>);
die "the generation that held the pool: expected 201, got $status\n" unless $status eq '201';
my $used = sql("SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL");
die "a redemption answered 503 ran anyway: $used codes used\n" unless $used eq '0';
--- error_log
/RDM0114: statement redeem: not sent, RedeemDBTimeout \(300 ms\) ran out before it/
--- no_error_log
RDM0111
RDM0112



=== TEST 3: right after, the same code redeems (the child did not go into its 503-at-once mode)
--- login: fay
--- request
POST /redeem
--- request_json
{"card_code": "$CODE"}
--- error_code: 200
--- no_error_log
RDM0112
