# Storage: a dump of the database holds no code in clear text (with or
# without hyphens, in either case) and neither code key, though it does hold
# every code row.
use lib 't/lib';
use Test::Redeem;

# pg_dump of this file's database, as the superuser of the test cluster.
sub pg_dump {
    my $bin = $ENV{REDEEM_PG_BIN} && -x "$ENV{REDEEM_PG_BIN}/pg_dump"
            ? "$ENV{REDEEM_PG_BIN}/pg_dump" : 'pg_dump';
    local $ENV{PGGSSENCMODE} = 'disable';
    open my $fh, '-|', $bin, '--no-password', '-d', var('DB_NAME') or die "$bin: $!\n";
    local $/;
    my $dump = <$fh> // '';
    close $fh or die "pg_dump failed (status $?)\n";
    return $dump;
}

sub key_hex {
    my ($name) = @_;
    open my $fh, '<', var('SERVROOT') . "/$name" or die "$name: $!\n";
    my $key = <$fh>;
    chomp $key;
    return $key;
}

# Nothing of the codes of save_json variable $var, nor a key, is in the dump.
sub dump_clean {
    my ($var, $batch, $rows) = @_;
    my $dump = pg_dump();
    # The dump does hold the rows (a control: a dump of nothing is clean too).
    my $found = () = $dump =~ /\Q$batch\E/g;
    die "the dump holds $found mentions of batch $batch, expected at least $rows\n" if $found < $rows;
    my @leaks;
    for my $code (@{ JSON::PP::decode_json(var($var)) }) {
        (my $bare = $code) =~ tr/-//d;
        push @leaks, grep { index($dump, $_) >= 0 } $code, $bare, lc $code, lc $bare,
          substr($bare, 0, 20);   # the random part alone
    }
    for my $key (qw(code_mac_key code_enc_key)) {
        my $hex = key_hex($key);
        push @leaks, "$key" if index(lc $dump, lc $hex) >= 0 || index($dump, pack('H*', $hex)) >= 0;
    }
    die 'in the dump: ' . join(', ', @leaks[0 .. ($#leaks < 4 ? $#leaks : 4)]) . "\n" if @leaks;
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 200 codes generated
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 200}
--- error_code: 201
--- save_json
CODES=codes
BATCH=batch_id



=== TEST 2: one of them redeemed
--- login: alice
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => JSON::PP::decode_json(var('CODES'))->[0]})
--- error_code: 200



=== TEST 3: a dump of the database holds none of them, and no key
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH&per_page=1
--- error_code: 200
--- check_eval
dump_clean('CODES', var('BATCH'), 200)



=== TEST 4: the codes column by column: hashes and sealed boxes, not text (the one text column is the id of the request that redeemed a code)
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT column_name || ':' || data_type FROM information_schema.columns
 WHERE table_name = 'redeem_codes' AND data_type IN ('text', 'character varying', 'character')
 ORDER BY 1;
SELECT count(*) FROM redeem_codes WHERE length(code_hash) = 32 AND length(code_sealed) = 52;
--- db_check_out
used_request:text
200
