# Codes are made in buckets (core/code.h): a code's bucket rides in its
# check symbols (XORed into the last 4 bits of the first two) and is the
# first 4 bits of the lookup hash it is stored under. The codes here are
# made by the test from the MAC key, apart from code.c, and stored by SQL:
# one made before buckets (bucket 0: the check is the HMAC's 20 bits as they
# are, the hash the plain HMAC) still redeems; one of bucket 9 redeems; the
# same random part read as bucket 10 is not found, and changes nothing.
use lib 't/lib';
use Test::Redeem;
use Digest::SHA ();

my @ALPHABET = split //, '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

# 20 random symbols, one set per test.
our @RANDOM = map { join '', map { $ALPHABET[int rand 32] } 1 .. 20 } 1 .. 3;

sub mac_key {
    return pack('H*', (split /\s+/, Test::Redeem::_read_file(var('SERVROOT') . '/code_mac_key'))[0]);
}

# The code of bucket $bucket with these random symbols, and the hex of the
# lookup hash it is stored under.
sub code_of {
    my ($random, $bucket) = @_;
    my $check_key = Digest::SHA::hmac_sha256('mod_redeem code check v1', mac_key());
    my $lookup_key = Digest::SHA::hmac_sha256('mod_redeem code lookup v1', mac_key());
    my @mac = unpack('C3', Digest::SHA::hmac_sha256($random, $check_key));
    my $bits = (($mac[0] << 12) | ($mac[1] << 4) | ($mac[2] >> 4)) ^ ($bucket << 15) ^ ($bucket << 10);
    my $code = $random . join('', map { $ALPHABET[($bits >> (15 - 5 * $_)) & 31] } 0 .. 3);
    my $hash = Digest::SHA::hmac_sha256($code, $lookup_key);
    substr($hash, 0, 1) = chr(($bucket << 4) | (ord($hash) & 15)) if $bucket;
    return ($code, unpack('H*', $hash));
}

sub store_sql {
    my ($random, $bucket) = @_;
    my (undef, $hash) = code_of($random, $bucket);
    return "INSERT INTO redeem_codes (code_hash, code_sealed, batch_id)
            VALUES (decode('$hash', 'hex'), decode(repeat('00', 52), 'hex'), gen_random_uuid());";
}

sub used_sql {
    my ($random, $bucket) = @_;
    my (undef, $hash) = code_of($random, $bucket);
    return "SELECT count(*) FROM redeem_codes WHERE code_hash = decode('$hash', 'hex') AND used_at IS NOT NULL;";
}

sub redeem_body {
    my ($code) = code_of(@_);
    return qq({"card_code": "$code"});
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a code made before buckets (bucket 0), stored under the plain HMAC, redeems
--- login: bea
--- db_init eval
store_sql($RANDOM[0], 0)
--- request
POST /redeem
--- request_json eval
redeem_body($RANDOM[0], 0)
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- db_check eval
used_sql($RANDOM[0], 0)
--- db_check_out
1



=== TEST 2: a code of bucket 9, stored under the HMAC with 9 in its first 4 bits, redeems
--- login: bea
--- db_init eval
store_sql($RANDOM[1], 9)
--- request
POST /redeem
--- request_json eval
redeem_body($RANDOM[1], 9)
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- db_check eval
used_sql($RANDOM[1], 9) . "\nSELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;"
--- db_check_out
1
2



=== TEST 3: an unused code of bucket 9; its random part read as bucket 10 passes the check but is not found
--- login: bea
--- db_init eval
store_sql($RANDOM[2], 9)
--- request
POST /redeem
--- request_json eval
redeem_body($RANDOM[2], 10)
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- db_check eval
"SELECT outcome FROM audit_log WHERE occurred_at >= '" . var('REQUEST_TIME') . "' AND event = 'redeem';\n"
  . used_sql($RANDOM[2], 9) . "\nSELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;"
--- db_check_out
not_found
0
2
