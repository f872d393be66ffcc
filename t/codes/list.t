# GET /admin/codes: page information, id order, the used and batch_id
# filters, refused parameters, the after_id / next_after_id cursor, and the
# listed codes being the real ones (they redeem).
use lib 't/lib';
use Test::Redeem;

our $CODE_RE = qr/\A[0-9A-HJKMNP-TV-Z]{12}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{8}\z/;
our $TS_RE = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\z/;

sub listed { return response()->{json}{codes} }

# The listed codes: $n of them, ids increasing (and above $after), every
# field of the contract with its type.
sub page_ok {
    my ($n, $after) = @_;
    my $codes = listed();
    die "codes is not an array\n" unless ref $codes eq 'ARRAY';
    die 'expected ' . $n . ' codes, got ' . @$codes . "\n" unless @$codes == $n;
    my $last = $after // 0;
    for my $c (@$codes) {
        json_match($c, {id => qr/^\d+$/, code => $CODE_RE, is_used => JSON::PP::false,
                        created_at => $TS_RE, used_at => undef,
                        expires_at => defined $c->{expires_at} ? $TS_RE : undef,
                        used_by => undef, batch_id => qr/^[0-9a-f-]{36}$/}, 1)
          unless $c->{is_used};
        die "ids not increasing: $c->{id} after $last\n" unless $c->{id} > $last;
        $last = $c->{id};
    }
    return 1;
}

# The codes of saved pages, in order.
sub pages_codes { return map { map { $_->{code} } @{ JSON::PP::decode_json(var($_)) } } @_ }

sub same_set {
    my ($got, $want) = @_;
    my %count;
    $count{$_}++ for @$got;
    my @twice = grep { $count{$_} > 1 } keys %count;
    die "listed twice: @twice\n" if @twice;
    my @missing = grep { !$count{$_} } @$want;
    die 'never listed: ' . @missing . " codes\n" if @missing;
    die 'listed ' . @$got . ' codes, generated ' . @$want . "\n" unless @$got == @$want;
    return 1;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: nothing generated yet: an empty first page
--- login: admin
--- request
GET /admin/codes
--- error_code: 200
--- response_json_exact
{"codes": [], "total": 0, "pages": 0, "current_page": 1, "per_page": 50, "next_after_id": null}



=== TEST 2: generate batch A: 120 codes
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 120}
--- error_code: 201
--- save_json
BATCH_A=batch_id
CODES_A=codes



=== TEST 3: generate batch B: 30 codes that expire, of 3 months
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 30, "expires_at": "2032-03-04T05:06:07Z", "duration_months": 3}
--- error_code: 201
--- save_json
BATCH_B=batch_id
CODES_B=codes



=== TEST 4: the first page: 50 codes in id order, page information
--- login: admin
--- request
GET /admin/codes
--- error_code: 200
--- response_json
{"total": 150, "pages": 3, "current_page": 1, "per_page": 50}
--- check_eval
page_ok(50);
my %a = map { $_ => 1 } @{ JSON::PP::decode_json(var('CODES_A')) };
!grep { !$a{$_->{code}} || $_->{batch_id} ne var('BATCH_A') } @{ listed() };
--- save_json
FIRST_ID=codes.0.id



=== TEST 5: every field of a listed code, exactly
--- login: admin
--- request
GET /admin/codes?per_page=1
--- error_code: 200
--- response_json_exact
{"codes": [{"id": $FIRST_ID, "code": "/^[0-9A-HJKMNP-TV-Z]{12}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{8}$/",
            "is_used": false, "created_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/",
            "expires_at": null, "used_at": null, "used_by": null, "batch_id": "$BATCH_A"}],
 "total": 150, "pages": 150, "current_page": 1, "per_page": 1, "next_after_id": $FIRST_ID}



=== TEST 6: page 3 holds codes 101 to 150: the rest of A, then B with its expiry
--- login: admin
--- request
GET /admin/codes?page=3
--- error_code: 200
--- response_json
{"total": 150, "pages": 3, "current_page": 3, "per_page": 50}
--- check_eval
page_ok(50);
# Batch A was generated first: its last 20 codes, then all of B.
my %a = map { $_ => 1 } @{ JSON::PP::decode_json(var('CODES_A')) };
my @codes = map { $_->{code} } @{ listed() };
!grep({ !$a{$_} } @codes[0 .. 19]) or die "the first 20 are not all of batch A\n";
same_set([@codes[20 .. 49]], JSON::PP::decode_json(var('CODES_B')));
json_match(listed()->[-1], {batch_id => var('BATCH_B'), expires_at => '2032-03-04T05:06:07.000000Z',
                            is_used => JSON::PP::false});



=== TEST 7: a page past the end is empty
--- login: admin
--- request
GET /admin/codes?page=4
--- error_code: 200
--- response_json_exact
{"codes": [], "total": 150, "pages": 3, "current_page": 4, "per_page": 50, "next_after_id": null}



=== TEST 8: per_page 7: pages rounded up
--- login: admin
--- request
GET /admin/codes?per_page=7&page=22
--- error_code: 200
--- response_json
{"total": 150, "pages": 22, "current_page": 22, "per_page": 7}
--- check_eval
page_ok(3)



=== TEST 9: per_page 500 returns all 150
--- login: admin
--- request
GET /admin/codes?per_page=500
--- error_code: 200
--- response_json
{"total": 150, "pages": 1, "per_page": 500, "next_after_id": null}
--- check_eval
page_ok(150);
same_set([map { $_->{code} } @{ listed() }],
         [@{ JSON::PP::decode_json(var('CODES_A')) }, @{ JSON::PP::decode_json(var('CODES_B')) }]);



=== TEST 10: batch_id filter: only batch B
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B
--- error_code: 200
--- response_json
{"total": 30, "pages": 1, "current_page": 1, "per_page": 50, "next_after_id": null}
--- check_eval
page_ok(30);
same_set([map { $_->{code} } @{ listed() }], JSON::PP::decode_json(var('CODES_B')));
!grep { $_->{batch_id} ne var('BATCH_B') || $_->{expires_at} ne '2032-03-04T05:06:07.000000Z' } @{ listed() };



=== TEST 11: batch_id of no batch: empty
--- login: admin
--- request
GET /admin/codes?batch_id=00000000-0000-4000-8000-000000000000
--- error_code: 200
--- response_json_exact
{"codes": [], "total": 0, "pages": 0, "current_page": 1, "per_page": 50, "next_after_id": null}



=== TEST 12: cursor walk of batch A, page 1: 50 codes and a cursor
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&per_page=50
--- error_code: 200
--- response_json
{"total": 120, "next_after_id": "/^\\d+$/"}
--- check_eval
page_ok(50);
response()->{json}{next_after_id} == listed()->[-1]{id};
--- save_json
WALK1=codes
AFTER1=next_after_id



=== TEST 13: cursor walk of batch A, page 2: the next 50
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&per_page=50&after_id=$AFTER1
--- error_code: 200
--- response_json
{"total": 120, "next_after_id": "/^\\d+$/"}
--- check_eval
page_ok(50, var('AFTER1'));
response()->{json}{next_after_id} == listed()->[-1]{id};
--- save_json
WALK2=codes
AFTER2=next_after_id



=== TEST 14: cursor walk of batch A, page 3: the last 20, no cursor: every code exactly once
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_A&per_page=50&after_id=$AFTER2
--- error_code: 200
--- response_json
{"total": 120, "next_after_id": null}
--- check_eval
page_ok(20, var('AFTER2'));
same_set([pages_codes('WALK1', 'WALK2'), map { $_->{code} } @{ listed() }],
         JSON::PP::decode_json(var('CODES_A')));



=== TEST 15: cursor walk of batch B by 15: a full last page still gives a cursor
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B&per_page=15
--- error_code: 200
--- response_json
{"next_after_id": "/^\\d+$/"}
--- check_eval
page_ok(15)
--- save_json
WALK_B1=codes
AFTER_B1=next_after_id



=== TEST 16: batch B, second 15: full, so a cursor again
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B&per_page=15&after_id=$AFTER_B1
--- error_code: 200
--- response_json
{"next_after_id": "/^\\d+$/"}
--- check_eval
page_ok(15, var('AFTER_B1'));
same_set([pages_codes('WALK_B1'), map { $_->{code} } @{ listed() }], JSON::PP::decode_json(var('CODES_B')));
--- save_json
AFTER_B2=next_after_id



=== TEST 17: batch B after its last code: empty, null cursor
--- login: admin
--- request
GET /admin/codes?batch_id=$BATCH_B&per_page=15&after_id=$AFTER_B2
--- error_code: 200
--- response_json
{"codes": [], "next_after_id": null}



=== TEST 18: cursor walk of all codes from after_id=0 by 100: 100 then 50
--- login: admin
--- request
GET /admin/codes?after_id=0&per_page=100
--- error_code: 200
--- response_json
{"total": 150, "next_after_id": "/^\\d+$/"}
--- check_eval
page_ok(100)
--- save_json
ALL1=codes
AFTER_ALL=next_after_id



=== TEST 19: cursor walk of all codes, the rest
--- login: admin
--- request
GET /admin/codes?after_id=$AFTER_ALL&per_page=100
--- error_code: 200
--- response_json
{"total": 150, "next_after_id": null}
--- check_eval
page_ok(50, var('AFTER_ALL'));
same_set([pages_codes('ALL1'), map { $_->{code} } @{ listed() }],
         [@{ JSON::PP::decode_json(var('CODES_A')) }, @{ JSON::PP::decode_json(var('CODES_B')) }]);



=== TEST 20: a listed code redeems: take the 8th of batch A from the listing
--- login: alice
--- request
POST /redeem
--- request_json eval
my $res = api_request('GET', '/admin/codes?batch_id=' . var('BATCH_A') . '&per_page=8', undef,
                      'Authorization: Bearer ' . user_token('admin'));
die "listing: $res->{status}\n" unless $res->{status} == 200;
our $LISTED_CODE = $res->{json}{codes}[7]{code};
our $LISTED_ID = $res->{json}{codes}[7]{id};
JSON::PP->new->encode({card_code => $LISTED_CODE})
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- db_check
SELECT used_by = $USER_ID_alice, used_at IS NOT NULL FROM redeem_codes WHERE id = (SELECT id FROM redeem_codes WHERE batch_id = '$BATCH_A' ORDER BY id OFFSET 7 LIMIT 1)
--- db_check_out
t|t



=== TEST 21: and one of batch B, listed by page
--- login: bob
--- request
POST /redeem
--- request_json eval
my $res = api_request('GET', '/admin/codes?page=3', undef, 'Authorization: Bearer ' . user_token('admin'));
die "listing: $res->{status}\n" unless $res->{status} == 200;
our $LISTED_B = $res->{json}{codes}[-1];
JSON::PP->new->encode({card_code => $LISTED_B->{code}})
--- error_code: 200
--- db_check
SELECT count(*), min(used_by) = $USER_ID_bob FROM redeem_codes WHERE batch_id = '$BATCH_B' AND used_at IS NOT NULL
--- db_check_out
1|t



=== TEST 22: used=true lists exactly the two used codes, with who and when
--- login: admin
--- request
GET /admin/codes?used=true
--- error_code: 200
--- response_json
{"total": 2, "pages": 1, "next_after_id": null,
 "codes": [{"is_used": true, "used_by": $USER_ID_alice, "batch_id": "$BATCH_A",
            "used_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"},
           {"is_used": true, "used_by": $USER_ID_bob, "batch_id": "$BATCH_B",
            "used_at": "/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$/"}]}
--- check_eval
listed()->[0]{code} eq $main::LISTED_CODE && listed()->[0]{id} == $main::LISTED_ID
  && listed()->[1]{code} eq $main::LISTED_B->{code}
--- save_json
USED_FIRST_ID=codes.0.id



=== TEST 23: used=false lists the other 148
--- login: admin
--- request
GET /admin/codes?used=false&per_page=500
--- error_code: 200
--- response_json
{"total": 148, "pages": 1}
--- check_eval
page_ok(148);
!grep { $_->{code} eq $main::LISTED_CODE || $_->{code} eq $main::LISTED_B->{code} } @{ listed() };



=== TEST 24: used and batch_id together
--- login: admin
--- request
GET /admin/codes?used=true&batch_id=$BATCH_B
--- error_code: 200
--- response_json
{"total": 1, "codes": [{"is_used": true, "used_by": $USER_ID_bob}]}



=== TEST 25: used=false with batch_id and a cursor
--- login: admin
--- request
GET /admin/codes?used=false&batch_id=$BATCH_A&after_id=$AFTER2&per_page=50
--- error_code: 200
--- response_json
{"total": 119, "next_after_id": null}
--- check_eval
page_ok(20, var('AFTER2'))



=== TEST 26: used=true with a cursor past the first used code
--- login: admin
--- request
GET /admin/codes?used=true&after_id=$USED_FIRST_ID
--- error_code: 200
--- response_json
{"total": 2, "codes": [{"used_by": $USER_ID_bob}], "next_after_id": null}



=== TEST 27: page=0 is refused
--- login: admin
--- request
GET /admin/codes?page=0
--- error_code: 400
--- response_json_exact
{"error": "/page/"}



=== TEST 28: page=-1 is refused
--- login: admin
--- request
GET /admin/codes?page=-1
--- error_code: 400
--- response_json_exact
{"error": "/page/"}



=== TEST 29: page=abc is refused
--- login: admin
--- request
GET /admin/codes?page=abc
--- error_code: 400
--- response_json_exact
{"error": "/page/"}



=== TEST 30: per_page=0 is refused
--- login: admin
--- request
GET /admin/codes?per_page=0
--- error_code: 400
--- response_json_exact
{"error": "/per_page/"}



=== TEST 31: per_page=501 is refused
--- login: admin
--- request
GET /admin/codes?per_page=501
--- error_code: 400
--- response_json_exact
{"error": "/per_page/"}



=== TEST 32: used=yes is refused
--- login: admin
--- request
GET /admin/codes?used=yes
--- error_code: 400
--- response_json_exact
{"error": "/used/"}



=== TEST 33: used=1 is refused
--- login: admin
--- request
GET /admin/codes?used=1
--- error_code: 400
--- response_json_exact
{"error": "/used/"}



=== TEST 34: used with no value is refused
--- login: admin
--- request
GET /admin/codes?used=
--- error_code: 400
--- response_json_exact
{"error": "/used/"}



=== TEST 35: batch_id=notauuid is refused
--- login: admin
--- request
GET /admin/codes?batch_id=notauuid
--- error_code: 400
--- response_json_exact
{"error": "/batch_id/"}



=== TEST 36: a batch_id with a character that is not hex is refused
--- login: admin
--- request
GET /admin/codes?batch_id=0000000g-0000-4000-8000-000000000000
--- error_code: 400
--- response_json_exact
{"error": "/batch_id/"}



=== TEST 37: a batch_id with a quote is refused (and nothing reaches SQL)
--- login: admin
--- request
GET /admin/codes?batch_id=%27%20OR%201=1--
--- error_code: 400
--- response_json_exact
{"error": "/batch_id/"}



=== TEST 38: after_id=-1 is refused
--- login: admin
--- request
GET /admin/codes?after_id=-1
--- error_code: 400
--- response_json_exact
{"error": "/after_id/"}



=== TEST 39: after_id=abc is refused
--- login: admin
--- request
GET /admin/codes?after_id=abc
--- error_code: 400
--- response_json_exact
{"error": "/after_id/"}



=== TEST 40: page together with after_id is refused
--- login: admin
--- request
GET /admin/codes?page=1&after_id=0
--- error_code: 400
--- response_json_exact
{"error": "/page.*after_id|after_id.*page/"}



=== TEST 41: a repeated parameter is refused
--- login: admin
--- request
GET /admin/codes?page=1&page=2
--- error_code: 400
--- response_json_exact
{"error": "/./"}



=== TEST 41b: a repeated used is refused as any repeated parameter is (it said "used must be true or false", of two values each of which is)
--- login: admin
--- request
GET /admin/codes?used=true&used=true
--- error_code: 400
--- response_json_exact
{"error": "Malformed or repeated query parameter"}



=== TEST 41c: ... and u%73ed, its name encoded, repeats it too
--- login: admin
--- request
GET /admin/codes?used=false&u%73ed=true
--- error_code: 400
--- response_json_exact
{"error": "Malformed or repeated query parameter"}



=== TEST 41d: ... while a single bad value still names the parameter
--- login: admin
--- request
GET /admin/codes?used=maybe&batch_id=00000000-0000-0000-0000-000000000000
--- error_code: 400
--- response_json_exact
{"error": "used must be true or false"}



=== TEST 42: a user who is not an admin gets 403
--- login: alice
--- request
GET /admin/codes
--- error_code: 403
--- response_json_exact
{"error": "Admin access required"}



=== TEST 43: no token: 401
--- request
GET /admin/codes
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer
--- response_json_exact
{"error": "Authentication required"}



=== TEST 44: POST is 405
--- login: admin
--- request
POST /admin/codes
--- request_json
{}
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 45: a parameter's name percent-encoded is that parameter: p%61ge with page repeats it (400)
--- login: admin
--- request
GET /admin/codes?p%61ge=2&page=3
--- error_code: 400
--- response_json_exact
{"error": "Malformed or repeated query parameter"}



=== TEST 46: ... and per%5Fpage alone is per_page: 2 codes a page, not the default 50
--- login: admin
--- request
GET /admin/codes?per%5Fpage=2
--- error_code: 200
--- response_json
{"per_page": 2}
