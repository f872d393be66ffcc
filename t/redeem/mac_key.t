# A code is bound to the server's MAC key: a code generated under another
# key fails the check (404, audited invalid_code, no lookup), and redeems
# under the key it was made with.
use lib 't/lib';
use Test::Redeem;

# The config of a server with another MAC key (written into the servroot,
# 32 random bytes in hex like the harness's own keys).
sub other_key_config {
    my $file = var('SERVROOT') . '/other_code_mac_key';
    unless (-s $file) {
        open my $rand, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
        read($rand, my $bytes, 32) == 32 or die "short read\n";
        open my $fh, '>', $file or die "$file: $!";
        print $fh unpack('H*', $bytes), "\n";
        close $fh or die "$file: $!";
        chmod 0600, $file;
    }
    return "RedeemCodeMACKeyFile $file\n";
}

# A token of $name for the site of the usual key, or with $other of the
# other key: a site names itself in its tokens (aud, from its MAC key).
sub token_of {
    my ($name, $other) = @_;
    my $aud = $other ? site_aud(var('SERVROOT') . '/other_code_mac_key') : site_aud();
    return jwt_forge({alg => 'HS256', typ => 'JWT'}, {%{ jwt_claims($name) }, aud => $aud},
                     jwt_secret());
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: under another MAC key, the admin generates a code
--- config eval
other_key_config()
--- token_eval
token_of('admin', 1)
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
OTHER_CODE=codes.0



=== TEST 2: and under the usual key, the admin generates one too
--- token_eval
token_of('admin')
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
OWN_CODE=codes.0



=== TEST 3: the other key's code, under the usual key: 404, outcome invalid_code
--- token_eval
token_of('alice')
--- request
POST /redeem
--- request_json
{"card_code": "$OTHER_CODE"}
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- db_check
SELECT event, outcome, actor_id = $USER_ID_alice FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;
--- db_check_out
redeem|invalid_code|t
0



=== TEST 4: the usual key's code, under the other key: 404, outcome invalid_code
--- config eval
other_key_config()
--- token_eval
token_of('alice', 1)
--- request
POST /redeem
--- request_json
{"card_code": "$OWN_CODE"}
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- db_check
SELECT event, outcome FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
redeem|invalid_code



=== TEST 5: the other key's code under its own key: 200
--- config eval
other_key_config()
--- token_eval
token_of('alice', 1)
--- request
POST /redeem
--- request_json
{"card_code": "$OTHER_CODE"}
--- error_code: 200
--- db_check
SELECT event, outcome FROM audit_log WHERE occurred_at >= '$REQUEST_TIME'
--- db_check_out
redeem|success



=== TEST 6: the usual key's code under the usual key: 200
--- token_eval
token_of('alice')
--- request
POST /redeem
--- request_json
{"card_code": "$OWN_CODE"}
--- error_code: 200
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_alice
--- db_check_out
2
