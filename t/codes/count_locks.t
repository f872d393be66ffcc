# Batches of codes stored at once by several requests (several admins, or
# several hosts) never deadlock on the counters of code_counts: the
# statement trigger that counts a batch's new codes (and the one that counts
# deleted codes) takes the counter rows it updates in the order of their
# shards, whatever order its plan reads them in. Before migration 016 the
# order was the plan's (a hash join's, for a few hundred codes), and a
# fraction of concurrent batches failed with a deadlock (40P01: 503 to the
# admin, the batch rolled back). The statements here are the module's own
# (SQL_CODES_INSERT's shape), run by several sessions at once.
use lib 't/lib';
use Test::Redeem;

# Sessions of batches of two sizes: the plans that count 30 codes and 300
# read the counters in different orders.
our @SIZES   = (300, 30, 300, 30);
our $BATCHES = 60;

# Every session's $BATCHES statements at once, made by $statement from the
# session's batch size: their psql stderr.
sub batches_at_once {
    my ($statement) = @_;
    my @running;
    for my $session (1 .. @SIZES) {
        my $log = var('SERVROOT') . "/session_$session.err";
        my $script = var('SERVROOT') . "/session_$session.sql";
        open my $fh, '>', $script or die "$script: $!";
        print $fh $statement->($SIZES[$session - 1]) . ";\n" for 1 .. $BATCHES;
        close $fh;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', $log;
            { exec 'psql', '-XAtq', '-d', var('DB_NAME'), '-f', $script }
            POSIX::_exit(127);
        }
        push @running, [$pid, $log];
    }
    my $errors = '';
    for (@running) {
        waitpid $_->[0], 0;
        open my $fh, '<', $_->[1] or die "$_->[1]: $!";
        $errors .= join '', <$fh>;
    }
    return $errors;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: four sessions storing sixty batches each at once (of 300 codes and of 30): no deadlock, every code counted
--- request
GET /api/health
--- error_code: 200
--- timeout: 120
--- check_eval
my $insert = sub {
    "INSERT INTO redeem_codes (code_hash, code_sealed, batch_id, duration_months, expires_at)"
    . " SELECT sha256(convert_to(random()::text || i, 'UTF8')),"
    . " substring(sha512(convert_to(random()::text || i, 'UTF8')) FROM 1 FOR 52),"
    . " gen_random_uuid(), 1, NULL FROM generate_series(1, $_[0]) AS i"
};
my $errors = main::batches_at_once($insert);
$errors eq '' or die "psql: $errors";
my $want = 0;
$want += $main::BATCHES * $_ for @main::SIZES;
my $stored = sql('SELECT count(*) FROM redeem_codes');
$stored == $want or die "codes stored: $stored, want $want";
my $counted = sql('SELECT sum(total) FROM code_counts');
$counted == $want or die "codes counted: $counted, want $want";
1



=== TEST 2: four sessions deleting them at once (300 and 30 at a time): no deadlock, every deletion counted
--- request
GET /api/health
--- error_code: 200
--- timeout: 120
--- check_eval
my $delete = sub {
    "DELETE FROM redeem_codes WHERE id IN (SELECT id FROM redeem_codes"
    . " ORDER BY random() LIMIT $_[0] FOR UPDATE SKIP LOCKED)"
};
my $errors = main::batches_at_once($delete);
$errors eq '' or die "psql: $errors";
# A statement may find fewer codes than it asks for (the others' are
# skipped): what is left must be what is counted.
my $left = sql('SELECT count(*) FROM redeem_codes');
$left < 39600 / 2 or die "codes left: $left of 39600";
my $counted = sql('SELECT sum(total) FROM code_counts');
$counted == $left or die "codes counted: $counted, left $left";
1
