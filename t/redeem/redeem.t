# POST /redeem: the success body and the subscription it extends, input
# normalization, refused formats, failed checks, unknown / used / expired
# codes, user_id, authentication, and one audit row for every attempt.
use lib 't/lib';
use Test::Redeem;

# `--- audit: OUTCOME`: the request left exactly one audit row, a redeem
# attempt by the block's login user from 127.0.0.1 with a request id and that
# outcome. `--- audit: none`: it left no audit row at all. `--- audit: log
# OUTCOME`: a rejected request (bad body, bad format) writes nothing to the
# database, but the error log still records the attempt and its outcome.
add_block_preprocessor(sub {
    my ($block) = @_;
    my $outcome = $block->audit;
    return unless defined $outcome;
    $outcome =~ s/^\s+|\s+$//g;
    my ($sql, $want);
    if ($outcome =~ /^log (\w+)$/) {
        my $logged = $1;
        my $lines = $block->error_log;
        $block->set_value(error_log => (defined $lines ? "$lines\n" : '') . "/RDM0401: audit: event=redeem .* outcome=$logged /");
        $outcome = 'none';
    }
    if ($outcome eq 'none') {
        $sql = "SELECT 'audit rows: ' || count(*) FROM audit_log WHERE occurred_at >= '\$REQUEST_TIME'";
        $want = 'audit rows: 0';
    }
    else {
        my $user = $block->login // die "audit: $outcome needs a login\n";
        $sql = "SELECT 'audit: ' || string_agg(format('%s %s actor=%s %s %s', event, outcome,"
             . " actor_id = \$USER_ID_$user, client_addr, request_id <> ''), '; ')"
             . " FROM audit_log WHERE occurred_at >= '\$REQUEST_TIME'";
        $want = "audit: redeem $outcome actor=t 127.0.0.1 t";
    }
    my ($check, $out) = map { defined ? s/\s+\z//r : undef } scalar($block->db_check), scalar($block->db_check_out);
    $block->set_value(db_check => defined $check ? "$check;\n$sql" : $sql);
    $block->set_value(db_check_out => defined $out ? "$out\n$want" : $want);
});

# The codes of batch CODES, handed out one by one: every block redeems a code
# no other block touched.
our (@CODES, %TAKEN);
sub take_code {
    my ($pred) = @_;
    @CODES = @{ JSON::PP::decode_json(var('CODES')) } unless @CODES;
    for my $code (@CODES) {
        next if $TAKEN{$code} || ($pred && !$pred->($code));
        $TAKEN{$code} = 1;
        return $code;
    }
    die "no code left\n";
}

sub body { return JSON::PP->new->utf8->canonical->encode({card_code => @_}) }

# Who the admin listing says used $code (undef when unused or unlisted).
sub listed_user_of {
    my ($code) = @_;
    my $res = api_request('GET', '/admin/codes?used=true&per_page=500', undef,
                          'Authorization: Bearer ' . user_token('admin'));
    die "listing: $res->{status}\n" unless $res->{status} == 200;
    my ($entry) = grep { $_->{code} eq $code } @{ $res->{json}{codes} };
    return $entry && $entry->{used_by};
}

# The code just redeemed (in $main::CODE) is marked used by $user.
sub used_by_ok {
    my ($user) = @_;
    my $by = listed_user_of($main::CODE);
    die "$main::CODE is not listed as used\n" unless defined $by;
    die "$main::CODE used by $by, not by $user\n" unless $by == user_id($user);
    return 1;
}

# A code with symbol $i (0 to 23) replaced by $char, by default another
# symbol of the alphabet.
sub with_symbol_changed {
    my ($code, $i, $char) = @_;
    my @pos = grep { substr($code, $_, 1) ne '-' } 0 .. length($code) - 1;
    my $old = substr($code, $pos[$i], 1);
    substr($code, $pos[$i], 1) = $char // ($old eq 'Z' ? 'Y' : 'Z');
    return $code;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the admin generates 60 codes of one month
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 60}
--- error_code: 201
--- save_json
CODES=codes



=== TEST 2: alice redeems a code: 200 with the contract's body
--- login: alice
--- request
POST /redeem
--- request_json eval
body($main::CODE = take_code())
--- error_code: 200
--- response_json_exact
{"message": "Code redeemed successfully", "subscription_extended": true,
 "new_subscription_expiry": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/",
 "redeemed_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"}
--- response_headers
Cache-Control: no-store
--- save_json
EXPIRY1=new_subscription_expiry
REDEEMED1=redeemed_at
--- check_eval
used_by_ok('alice')
--- audit: success
--- error_log
/RDM0401: audit: event=redeem actor=$USER_ID_alice target=code \d+ client=127\.0\.0\.1 outcome=success request=\S+/



=== TEST 3: never subscribed: the expiry is the redemption time plus one calendar month
--- login: alice
--- request
GET /api/subscription
--- error_code: 200
--- response_json
{"is_subscribed": true, "subscription_expires_at": "$EXPIRY1"}
--- db_check
SELECT api_ts('$REDEEMED1'::timestamptz + interval '1 month') = '$EXPIRY1';
SELECT api_ts(subscription_expires_at) FROM users WHERE id = $USER_ID_alice;
SELECT api_ts(used_at), used_by = $USER_ID_alice FROM redeem_codes WHERE used_at IS NOT NULL;
SELECT target = 'code ' || (SELECT id FROM redeem_codes WHERE used_at IS NOT NULL)
  FROM audit_log WHERE event = 'redeem';
--- db_check_out
t
$EXPIRY1
$REDEEMED1|t
t



=== TEST 4: the same code again: 409, nothing extended
--- login: alice
--- request
POST /redeem
--- request_json eval
body($main::CODE)
--- error_code: 409
--- response_json_exact
{"error": "Code has already been used"}
--- db_check
SELECT api_ts(subscription_expires_at) FROM users WHERE id = $USER_ID_alice;
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL;
--- db_check_out
$EXPIRY1
1
--- audit: used



=== TEST 5: the same code by someone else: 409
--- login: bob
--- request
POST /redeem
--- request_json eval
body($main::CODE)
--- error_code: 409
--- response_json_exact
{"error": "Code has already been used"}
--- db_check
SELECT subscription_expires_at IS NULL FROM users WHERE id = $USER_ID_bob
--- db_check_out
t
--- audit: used



=== TEST 6: a second code extends from the current expiry, not from now
--- login: alice
--- request
POST /redeem
--- request_json eval
body($main::CODE = take_code())
--- error_code: 200
--- response_json eval
my $want = sql(q{SELECT api_ts('} . var('EXPIRY1') . q{'::timestamptz + interval '1 month')});
qq({"new_subscription_expiry": "$want"})
--- save_json
EXPIRY2=new_subscription_expiry
--- db_check
SELECT api_ts(subscription_expires_at) FROM users WHERE id = $USER_ID_alice
--- db_check_out
$EXPIRY2
--- audit: success



=== TEST 7: normalization: lowercase
--- login: carol
--- request
POST /redeem
--- request_json eval
body(lc($main::CODE = take_code()))
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 8: normalization: no hyphens
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = $main::CODE = take_code()) =~ tr/-//d;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 9: normalization: hyphens anywhere
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = $main::CODE = take_code()) =~ tr/-//d;
$typed =~ s/(....)(?=.)/$1-/g;   # groups of 4
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 10: normalization: surrounding spaces and tabs
--- login: carol
--- request
POST /redeem
--- request_json eval
body("  \t" . ($main::CODE = take_code()) . " \t ")
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 11: normalization: 0 written as O
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = $main::CODE = take_code(sub { $_[0] =~ /0/ })) =~ tr/0/O/;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 12: normalization: 0 written as a lowercase o, in a lowercase code
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = lc($main::CODE = take_code(sub { $_[0] =~ /0/ }))) =~ tr/0/o/;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 13: normalization: 1 written as I
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = $main::CODE = take_code(sub { $_[0] =~ /1/ })) =~ tr/1/I/;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 14: normalization: 1 written as L
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = $main::CODE = take_code(sub { $_[0] =~ /1/ })) =~ tr/1/L/;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 15: normalization: 1 written as a lowercase l
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = lc($main::CODE = take_code(sub { $_[0] =~ /1/ }))) =~ tr/1/l/;
body($typed)
--- error_code: 200
--- check_eval
used_by_ok('carol')
--- audit: success



=== TEST 16: normalization: all at once, and the canonical form is then used (409)
--- login: carol
--- request
POST /redeem
--- request_json eval
(my $typed = lc($main::CODE = take_code(sub { $_[0] =~ /0/ && $_[0] =~ /1/ }))) =~ tr/01-/oi/d;
body(" $typed ")
--- error_code: 200
--- check_eval
my $again = api_request('POST', '/redeem', body($main::CODE), 'Authorization: Bearer ' . user_token('carol'));
$again->{status} == 409 or die "the canonical form answered $again->{status}\n";



=== TEST 17: format: 23 symbols
--- login: dave
--- request
POST /redeem
--- request_json eval
body(substr(take_code(), 0, -1))
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 18: format: 25 symbols
--- login: dave
--- request
POST /redeem
--- request_json eval
body(take_code() . 'A')
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 19: format: a U (not in the alphabet)
--- login: dave
--- request
POST /redeem
--- request_json eval
body(with_symbol_changed(take_code(), 5, 'U'))
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 20: format: a character that is no symbol
--- login: dave
--- request
POST /redeem
--- request_json eval
body(with_symbol_changed(take_code(), 5, '*'))
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 21: format: a space inside
--- login: dave
--- request
POST /redeem
--- request_json eval
body(take_code() =~ s/-/ /r)
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 22: format: a non-ASCII letter
--- login: dave
--- request
POST /redeem
--- request_json eval
body(with_symbol_changed(take_code(), 3, "\x{c4}"))   # A with diaeresis, sent as UTF-8
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 23: format: the empty string
--- login: dave
--- request
POST /redeem
--- request_json
{"card_code": ""}
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 24: format: only hyphens and spaces
--- login: dave
--- request
POST /redeem
--- request_json
{"card_code": " ---- "}
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 25: a wrong check symbol: 404, audited invalid_code
--- login: dave
--- request
POST /redeem
--- request_json eval
body(with_symbol_changed(take_code(), 23))
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- audit: invalid_code



=== TEST 26: a wrong check symbol is refused without a database lookup (redeem_codes unreadable)
--- db_init
REVOKE SELECT ON redeem_codes FROM redeem_app;
--- login: dave
--- request
POST /redeem
--- request_json eval
body(with_symbol_changed(take_code(), 20))
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- audit: invalid_code



=== TEST 27: (control) with redeem_codes unreadable, a valid code does reach the database and fails
--- login: dave
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}



=== TEST 28: redeem_codes readable again: a valid code redeems
--- db_init
GRANT SELECT ON redeem_codes TO redeem_app;
--- login: dave
--- request
POST /redeem
--- request_json eval
body($main::CODE = take_code())
--- error_code: 200
--- check_eval
used_by_ok('dave')
--- audit: success



=== TEST 29: any single symbol changed, or two neighbours swapped: 404, never a lookup hit
--- login: erin
--- request
GET /api/profile
--- error_code: 200
--- check_eval
my $code = take_code();
my @typos = map { with_symbol_changed($code, $_) } 0 .. 23;
(my $swapped = $code) =~ s/^(.)(.)/$2$1/;
push @typos, $swapped if $swapped ne $code;
for my $typo (@typos) {
    my $res = api_request('POST', '/redeem', body($typo), 'Authorization: Bearer ' . user_token('erin'));
    die "$typo (from $code) answered $res->{status} $res->{body}\n"
      unless $res->{status} == 404 && $res->{json}{error} eq 'Invalid redeem code';
}
# A changed check symbol always fails the check; elsewhere a typo passes it
# with probability 2^-16 (core/code.h: 16 of the 2^20 check values pass),
# and is then not found.
my $rows = sql("SELECT string_agg(outcome, ',' ORDER BY id) FROM audit_log"
               . " WHERE occurred_at >= '" . var('REQUEST_TIME') . "' AND event = 'redeem'");
my @outcomes = split /,/, $rows;
die 'expected ' . @typos . " audit rows, got $rows\n" unless @outcomes == @typos;
die "check symbols: @outcomes[20 .. 23]\n" if grep { $_ ne 'invalid_code' } @outcomes[20 .. 23];
!grep { $_ ne 'invalid_code' && $_ ne 'not_found' } @outcomes;
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_erin
--- db_check_out
0



=== TEST 30: a code that passes the check but is not in the database: 404, audited not_found
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
GONE_BATCH=batch_id
GONE_CODE=codes.0



=== TEST 31: (its row deleted) 404 Invalid redeem code, outcome not_found
--- db_init
DELETE FROM redeem_codes WHERE batch_id = '$GONE_BATCH';
--- login: dave
--- request
POST /redeem
--- request_json
{"card_code": "$GONE_CODE"}
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- audit: not_found



=== TEST 32: two codes that will expire
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 2, "expires_at": "2035-01-01T00:00:00Z"}
--- error_code: 201
--- save_json
EXP_BATCH=batch_id
EXP0=codes.0
EXP1=codes.1



=== TEST 33: one of them redeemed before it expires
--- login: frank
--- request
POST /redeem
--- request_json
{"card_code": "$EXP1"}
--- error_code: 200
--- audit: success



=== TEST 34: past its expires_at: 410, nothing used or extended
--- db_init
UPDATE redeem_codes SET expires_at = now() - interval '1 second' WHERE batch_id = '$EXP_BATCH';
--- login: grace
--- request
POST /redeem
--- request_json
{"card_code": "$EXP0"}
--- error_code: 410
--- response_json_exact
{"error": "Code has expired"}
--- db_check
SELECT count(*) FROM redeem_codes WHERE batch_id = '$EXP_BATCH' AND used_at IS NULL;
SELECT subscription_expires_at IS NULL FROM users WHERE id = $USER_ID_grace;
--- db_check_out
1
t
--- audit: expired



=== TEST 35: used and then past its expires_at: 409
--- login: grace
--- request
POST /redeem
--- request_json
{"card_code": "$EXP1"}
--- error_code: 409
--- response_json_exact
{"error": "Code has already been used"}
--- audit: used



=== TEST 36: user_id of someone else: 403, the code stays unused
--- login: heidi
--- request
POST /redeem
--- request_json eval
$main::FOR_OTHER = take_code();
JSON::PP->new->encode({card_code => $main::FOR_OTHER, user_id => 0 + user_id('alice')})
--- error_code: 403
--- response_json_exact
{"error": "You can only redeem codes for your own account"}
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_heidi OR used_by = $USER_ID_alice AND used_at >= '$REQUEST_TIME';
SELECT subscription_expires_at IS NULL FROM users WHERE id = $USER_ID_heidi;
--- db_check_out
0
t
--- audit: forbidden



=== TEST 37: user_id of someone else is refused before the code format is looked at
--- login: heidi
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => 'nonsense', user_id => 0 + user_id('alice')})
--- error_code: 403
--- response_json_exact
{"error": "You can only redeem codes for your own account"}
--- audit: forbidden



=== TEST 38: user_id of no user: 403
--- login: heidi
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => take_code(), user_id => 999999999})
--- error_code: 403
--- response_json_exact
{"error": "You can only redeem codes for your own account"}
--- audit: forbidden



=== TEST 39: own user_id: 200 (the code refused above was not consumed)
--- login: heidi
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => $main::CODE = $main::FOR_OTHER, user_id => 0 + user_id('heidi')})
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- check_eval
used_by_ok('heidi')
--- audit: success



=== TEST 40: user_id as a string: 400
--- login: heidi
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => take_code(), user_id => '' . user_id('heidi')})
--- error_code: 400
--- response_json_exact
{"error": "/user_id/"}
--- audit: log bad_request



=== TEST 41: no card_code: 400
--- login: heidi
--- request
POST /redeem
--- request_json
{}
--- error_code: 400
--- response_json_exact
{"error": "Missing field: card_code"}
--- audit: log bad_request



=== TEST 42: card_code not a string: 400
--- login: heidi
--- request
POST /redeem
--- request_json
{"card_code": 12345}
--- error_code: 400
--- response_json_exact
{"error": "/./"}
--- audit: log bad_request



=== TEST 43: an unknown field: 400
--- login: heidi
--- request
POST /redeem
--- request_json eval
JSON::PP->new->encode({card_code => take_code(), months => 12})
--- error_code: 400
--- response_json_exact
{"error": "Unknown field: months"}
--- audit: log bad_request



=== TEST 44: not application/json: 415
--- login: heidi
--- request
POST /redeem
--- raw_body eval
body(take_code())
--- error_code: 415
--- response_json_exact
{"error": "/./"}
--- audit: log bad_request



=== TEST 45: no token: 401, no audit row (there is no one to name)
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Authentication required"}
--- audit: none



=== TEST 46: an invalid token: 401, no audit row
--- more_headers
Authorization: Bearer x.y.z
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none



=== TEST 47: GET /redeem: 405
--- login: heidi
--- request
GET /redeem
--- error_code: 405
--- response_headers
Allow: POST
--- audit: none



=== TEST 48: a 36-month code extends by 36 calendar months
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1, "duration_months": 36}
--- error_code: 201
--- save_json
LONG_CODE=codes.0



=== TEST 49: (redeemed by ivan, never subscribed)
--- login: ivan
--- request
POST /redeem
--- request_json
{"card_code": "$LONG_CODE"}
--- error_code: 200
--- save_json
LONG_EXPIRY=new_subscription_expiry
LONG_AT=redeemed_at
--- db_check
SELECT api_ts('$LONG_AT'::timestamptz + interval '36 months') = '$LONG_EXPIRY'
--- db_check_out
t
--- audit: success



=== TEST 50: an expired subscription is extended from now, not from its old expiry
--- db_init
UPDATE users SET subscription_expires_at = now() - interval '400 days' WHERE id = $USER_ID_ivan;
--- login: ivan
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 200
--- save_json
RENEW_EXPIRY=new_subscription_expiry
RENEW_AT=redeemed_at
--- db_check
SELECT api_ts('$RENEW_AT'::timestamptz + interval '1 month') = '$RENEW_EXPIRY';
SELECT '$RENEW_AT'::timestamptz >= '$REQUEST_TIME';
--- db_check_out
t
t
--- audit: success



=== TEST 50b: the token of a user deleted since: 401, the code stays unused, no audit row (one statement checks the user, claims and audits)
--- login: ghost
--- db_init
DELETE FROM users WHERE email = 'ghost@example.test';
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_ghost;
SELECT count(*) FROM redeem_codes WHERE used_at IS NOT NULL AND used_by IS NULL;
--- db_check_out
0
0



=== TEST 50c: ... and a refusal decided before the lookup (another user's id) is 401 for it too, unaudited
--- login: ghost
--- request
POST /redeem
--- request_json eval
qq({"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA", "user_id": 1})
--- error_code: 401
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_ghost
--- db_check_out
0



=== TEST 50d: the token of an account whose tokens were revoked since: 401, the code stays unused, no audit row
--- login: rhea
--- db_init
UPDATE users SET token_generation = token_generation + 1 WHERE email = 'rhea@example.test';
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_rhea;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_rhea;
--- db_check_out
0
0
--- error_log
/RDM0203: token refused: user \d+ no longer exists, or the token is no longer its own \(revoked, or another site's\)/



=== TEST 50e: ... and a refusal decided before the lookup (another user's id) is 401 for it too, unaudited
--- login: rhea
--- request
POST /redeem
--- request_json eval
qq({"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA", "user_id": 1})
--- error_code: 401
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_rhea
--- db_check_out
0



=== TEST 50e1: a deleted user's token with a malformed code: 401, not the code's 400 (the contract accepts a token only while its user exists); unaudited, as its well-formed request is
--- login: ghost
--- request
POST /redeem
--- request_json
{"card_code": "short"}
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none
--- error_log
/RDM0203: token refused: user \d+ no longer exists/
--- no_error_log
RDM0401



=== TEST 50e2: ... with a body that is not JSON: 401, not 400
--- login: ghost
--- request
POST /redeem
--- request_json
not json
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none



=== TEST 50e3: ... with a body that is not application/json: 401, not 415
--- login: ghost
--- request
POST /redeem
--- raw_body
{"card_code": "short"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none



=== TEST 50e4: ... with a body over the cap: 401, not 413 (the connection still closes: the body was not all read)
--- login: ghost
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . ('A' x 17000) . '"}'
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- response_headers
Connection: close
--- audit: none



=== TEST 50e5: a revoked token with a body that is not JSON: 401, not 400
--- login: rhea
--- request
POST /redeem
--- request_json
not json
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none
--- error_log
/RDM0208: token refused: user \d+'s tokens of generation \d+ were revoked/



=== TEST 50e6: ... and with a malformed code: 401, not 400
--- login: rhea
--- request
POST /redeem
--- request_json
{"card_code": "short"}
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- audit: none



=== TEST 50e7: a malformed code reads its user before it is answered: with users unreadable, a live user's malformed request fails (500), logged as a failed attempt
--- db_init
REVOKE SELECT ON users FROM redeem_app;
--- login: heidi
--- request
POST /redeem
--- request_json
{"card_code": "short"}
--- error_code: 500
--- response_json_exact
{"error": "Internal server error"}
--- audit: log failed



=== TEST 50e8: (control) users readable again: a live user's malformed code is its 400, logged invalid_format
--- db_init
GRANT SELECT ON users TO redeem_app;
--- login: heidi
--- request
POST /redeem
--- request_json
{"card_code": "short"}
--- error_code: 400
--- response_json_exact
{"error": "Invalid code format"}
--- audit: log invalid_format



=== TEST 50f: control: a token of rhea's new generation (a login after the revocation) redeems
--- token_eval
my $res = api_request('POST', '/api/login',
                      JSON::PP::encode_json({email => 'rhea@example.test', password => var('USER_PASSWORD')}));
die "login: $res->{status}\n" unless $res->{status} == 200;
$res->{json}{access_token}
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 200
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_rhea AND outcome = 'success';
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_rhea;
--- db_check_out
1
1



=== TEST 50f2: a token of alice's id with another email (another site's user): 401, the code stays unused, no audit row
--- token_eval
my $claims = jwt_claims('alice');
$claims->{email} = 'alice@elsewhere.test';
jwt_forge({alg => 'HS256', typ => 'JWT'}, $claims, jwt_secret())
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- db_check
SELECT count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
SELECT count(*) FROM redeem_codes WHERE used_at >= '$REQUEST_TIME';
--- db_check_out
0
0



=== TEST 50f3: ... and on a request refused before the code is looked up (another user's user_id): 401 too, and no audit row (the row's insert checks the token's email, as the redemption statement does)
--- token_eval
my $claims = jwt_claims('alice');
$claims->{email} = 'alice@elsewhere.test';
jwt_forge({alg => 'HS256', typ => 'JWT'}, $claims, jwt_secret())
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . take_code() . '", "user_id": 999999}'
--- error_code: 401
--- response_json_exact
{"error": "Invalid or expired token"}
--- db_check
SELECT count(*) FROM audit_log WHERE occurred_at >= '$REQUEST_TIME';
--- db_check_out
0



=== TEST 50f4: behind a proxy mod_remoteip trusts, every audit row carries the client's address, not the proxy's: a generation's, a refusal's before the lookup, and the redemption statement's
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $xff = 'X-Forwarded-For: 198.51.100.7';
my $gen = api_request('POST', '/admin/generate-codes', '{"count": 1}', 'Authorization: Bearer ' . user_token('admin'), $xff);
$gen->{status} == 201 or die "generate: $gen->{status}\n";
my ($code) = @{ JSON::PP->new->decode($gen->{body})->{codes} };
my $auth = 'Authorization: Bearer ' . user_token('alice');
my $forged = api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}', $auth, $xff)->{status};
$forged == 404 or die "a forged code: $forged\n";
my $redeemed = api_request('POST', '/redeem', qq({"card_code": "$code"}), $auth, $xff)->{status};
$redeemed == 200 or die "the code: $redeemed\n";
--- db_check
SELECT event || ' ' || outcome || ' ' || client_addr FROM audit_log WHERE occurred_at >= '$REQUEST_TIME' ORDER BY id;
--- db_check_out
codes_generated success 198.51.100.7
redeem invalid_code 198.51.100.7
redeem success 198.51.100.7



=== TEST 50g: a month is a calendar month of UTC whatever the database's TimeZone (in New York, 2030-03-01T03:00Z is still February 28)
--- login: tzed
--- db_init
ALTER DATABASE "$DB_NAME" SET TimeZone = 'America/New_York';
UPDATE users SET subscription_expires_at = '2030-03-01T03:00:00Z' WHERE email = 'tzed@example.test';
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 200
--- response_json
{"new_subscription_expiry": "2030-04-01T03:00:00.000000Z"}
--- db_check
ALTER DATABASE "$DB_NAME" RESET TimeZone;
SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
--- db_check_out
t



=== TEST 50h: a subscription ends at the latest at the end of the year 9999: the API's years have four digits
--- login: methuselah
--- db_init
UPDATE users SET subscription_expires_at = '9999-11-15T00:00:00Z' WHERE email = 'methuselah@example.test';
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 200
--- response_json
{"new_subscription_expiry": "9999-12-15T00:00:00.000000Z"}



=== TEST 50i: ... and one more month stops there, the code used
--- login: methuselah
--- request
POST /redeem
--- request_json eval
body(take_code())
--- error_code: 200
--- response_json
{"new_subscription_expiry": "9999-12-31T23:59:59.999999Z"}
--- db_check
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_methuselah;
SELECT api_ts(subscription_expires_at) FROM users WHERE id = $USER_ID_methuselah;
--- db_check_out
2
9999-12-31T23:59:59.999999Z
--- audit: success



=== TEST 50j: ... and its subscription reads that instant
--- login: methuselah
--- request
GET /api/subscription
--- error_code: 200
--- response_json
{"is_subscribed": true, "subscription_expires_at": "9999-12-31T23:59:59.999999Z"}



=== TEST 50k: a request id a client may choose (an operator's SetEnvIf from X-Request-Id) does not make another user's claim of a code their own replay: the second user gets 409, not 200
--- config eval
client_request_id_config()
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $code = take_code();
my @id = ('X-Request-Id: ' . ('ab' x 16));
my $first = api_request('POST', '/redeem', body($code), 'Authorization: Bearer ' . user_token('claimer'), @id);
$first->{status} eq '200' or die "the first claim: $first->{status} $first->{body}\n";
my $second = api_request('POST', '/redeem', body($code), 'Authorization: Bearer ' . user_token('copycat'), @id);
$second->{status} eq '409'
  or die "the same code and request id from another user: $second->{status} $second->{body}\n";
sql("SELECT count(*) FROM audit_log WHERE request_id = '" . ('ab' x 16) . "' AND outcome = 'used'") eq '1'
  or die "the refused claim left no audit row\n";



=== TEST 50l: under one request id a client chose, each refusal is audited: three forged codes (refused before the lookup: audit_insert) and three tries of a used code (the redemption statement) leave three rows each (before, one each: the first run took a row of the same id as its own, written before)
--- config eval
client_request_id_config()
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('prober');
my @id = ('X-Request-Id: ' . ('cd' x 16));
my $used = take_code();
my $owner = api_request('POST', '/redeem', body($used), 'Authorization: Bearer ' . user_token('owner'));
$owner->{status} eq '200' or die "the owner's claim: $owner->{status} $owner->{body}\n";
my $forged = with_symbol_changed(take_code(), 23);
for my $try (1 .. 3) {
    my $res = api_request('POST', '/redeem', body($forged), $auth, @id);
    $res->{status} eq '404' or die "forged, try $try: $res->{status} $res->{body}\n";
    $res = api_request('POST', '/redeem', body($used), $auth, @id);
    $res->{status} eq '409' or die "used, try $try: $res->{status} $res->{body}\n";
}
my $rows = sql("SELECT string_agg(outcome || ' ' || count, ',' ORDER BY outcome) FROM (SELECT outcome, count(*)"
               . " FROM audit_log WHERE actor_id = " . user_id('prober') . " AND request_id = '" . ('cd' x 16)
               . "' GROUP BY outcome) o");
$rows eq 'invalid_code 3,used 3' or die "six refusals, audit rows: $rows\n";



=== TEST 50m: under one request id a client chose, a user's second redemption of a code it used is 409 and audited (it was 200, a replay of its own first claim, with no row)
--- config eval
client_request_id_config()
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $auth = 'Authorization: Bearer ' . user_token('twice');
my @id = ('X-Request-Id: ' . ('0a' x 16));
my $code = take_code();
my $first = api_request('POST', '/redeem', body($code), $auth, @id);
$first->{status} eq '200' or die "the first claim: $first->{status} $first->{body}\n";
my $second = api_request('POST', '/redeem', body($code), $auth, @id);
my $rows = sql("SELECT string_agg(outcome, ',' ORDER BY id) FROM audit_log WHERE actor_id = " . user_id('twice'));
$second->{status} eq '409' or die "the same code again: $second->{status} $second->{body}; audit rows: $rows\n";
$rows eq 'success,used' or die "audit rows: $rows\n";



=== TEST 51: every audit row of the file is a redeem attempt or a generation, none without outcome
--- login: admin
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT event, count(*) FROM audit_log GROUP BY event ORDER BY event;
SELECT count(*) FROM audit_log WHERE outcome IS NULL OR outcome = '' OR client_addr IS NULL;
--- db_check_like
^codes_generated\|5\nredeem\|\d+\n0$
