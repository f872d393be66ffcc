# Bearer tokens: every attack of shared/notes/security.md must get 401 with
# WWW-Authenticate: Bearer (never 500, never a crash), while correctly made
# tokens (the controls) get in. Blocks without an error_code expect that 401
# on GET /api/profile.
use lib 't/lib';
use Test::Redeem;

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(request => "GET /api/profile\n") unless defined $block->request;
    return if defined $block->error_code;
    $block->set_value(error_code => '401');
    $block->set_value(response_headers_like => "WWW-Authenticate: ^Bearer\\b\n");
    $block->set_value(response_json => qq({"error": "/./"}\n));
    $block->set_value(response_body_unlike => "alice\@example\n");
});

# alice's valid claims with some changed; an undef value removes the claim.
sub claims {
    my (%change) = @_;
    my $claims = jwt_claims('alice');
    for my $name (keys %change) {
        if (defined $change{$name}) { $claims->{$name} = $change{$name} }
        else { delete $claims->{$name} }
    }
    return $claims;
}

sub header { return { alg => 'HS256', typ => 'JWT', @_ } }

# alice's real token cut in its three parts.
sub real_parts { return split /\./, user_token('alice') }

run_tests();

__DATA__

=== TEST 1: control: a token made here like the server's is accepted
--- token_eval
jwt_forge(header(), claims(), jwt_secret())
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test", "id": $USER_ID_alice}}



=== TEST 2: control: the header may leave out typ
--- token_eval
jwt_forge({alg => 'HS256'}, claims(), jwt_secret())
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 3: control: the server's own token
--- login: alice
--- error_code: 200



=== TEST 4: alg none, unsigned
--- token_eval
jwt_forge(header(alg => 'none'), claims(), undef)

=== TEST 5: alg None, unsigned
--- token_eval
jwt_forge(header(alg => 'None'), claims(), undef)

=== TEST 6: alg nOnE, unsigned
--- token_eval
jwt_forge(header(alg => 'nOnE'), claims(), undef)

=== TEST 7: alg none with a valid HS256 signature
--- token_eval
jwt_forge(header(alg => 'none'), claims(), jwt_secret())

=== TEST 8: alg none without a header typ, unsigned and without the final dot
--- token_eval
my $token = jwt_forge({alg => 'none'}, claims(), undef);
$token =~ s/\.$//;
$token

=== TEST 9: HS384 signed with the real secret
--- token_eval
jwt_forge(header(alg => 'HS384'), claims(), jwt_secret())

=== TEST 10: HS512 signed with the real secret
--- token_eval
jwt_forge(header(alg => 'HS512'), claims(), jwt_secret())

=== TEST 11: alg hs256 (lowercase), signed with the real secret
--- token_eval
jwt_forge(header(alg => 'hs256'), claims(), jwt_secret())

=== TEST 12: alg "HS256 " with a trailing space
--- token_eval
jwt_forge(header(alg => 'HS256 '), claims(), jwt_secret())

=== TEST 13: RS256 header, HMAC signature with the secret
--- token_eval
jwt_forge(header(alg => 'RS256'), claims(), jwt_secret())

=== TEST 14: ES256 header, HMAC signature with the secret
--- token_eval
jwt_forge(header(alg => 'ES256'), claims(), jwt_secret())

=== TEST 15: no alg at all
--- token_eval
jwt_forge({typ => 'JWT'}, claims(), jwt_secret())

=== TEST 16: signed with an empty key
--- token_eval
jwt_forge(header(), claims(), '')

=== TEST 17: signed with the key "secret"
--- token_eval
jwt_forge(header(), claims(), 'secret')

=== TEST 18: signed with another 48-character secret
--- token_eval
jwt_forge(header(), claims(), 'x' x 48)

=== TEST 19: a flipped signature byte
--- token_eval
my ($h, $p, $s) = real_parts();
substr($s, 0, 1) = substr($s, 0, 1) eq 'A' ? 'B' : 'A';
"$h.$p.$s"

=== TEST 20: a flipped payload byte (the claims changed, the signature kept)
--- token_eval
my ($h, $p, $s) = real_parts();
substr($p, 5, 1) = substr($p, 5, 1) eq 'A' ? 'B' : 'A';
"$h.$p.$s"

=== TEST 21: the signature removed
--- token_eval
my ($h, $p) = real_parts();
"$h.$p."

=== TEST 22: an extra segment
--- token_eval
user_token('alice') . '.AAAA'

=== TEST 23: an extra empty segment
--- token_eval
user_token('alice') . '.'

=== TEST 24: padding = after the signature
--- token_eval
user_token('alice') . '='

=== TEST 25: padding == in the payload
--- token_eval
my ($h, $p, $s) = real_parts();
"$h.$p==.$s"

=== TEST 26: standard base64 characters (+ and /) instead of base64url
--- token_eval
my ($h, $p, $s) = real_parts();
$s =~ tr{-_}{+/};
$s =~ m{[+/]} ? "$h.$p.$s" : "$h.$p.$s+/"

=== TEST 27: expired two minutes ago
--- token_eval
jwt_forge(header(), claims(iat => now() - 3720, exp => now() - 120), jwt_secret())

=== TEST 28: expired one second ago (no leeway configured)
--- token_eval
jwt_forge(header(), claims(exp => now() - 1), jwt_secret())

=== TEST 29: exp missing
--- token_eval
jwt_forge(header(), claims(exp => undef), jwt_secret())

=== TEST 30: exp a string
--- token_eval
jwt_forge(header(), claims(exp => '' . (now() + 3600)), jwt_secret())

=== TEST 31: exp a real number
--- token_eval
jwt_forge(header(), claims(exp => now() + 3600.5), jwt_secret())

=== TEST 32: exp a boolean
--- token_eval
jwt_forge(header(), claims(exp => JSON::PP::true), jwt_secret())

=== TEST 33: exp zero
--- token_eval
jwt_forge(header(), claims(exp => 0), jwt_secret())

=== TEST 34: nbf in the future
--- token_eval
jwt_forge(header(), claims(nbf => now() + 600), jwt_secret())

=== TEST 35: iat in the future
--- token_eval
jwt_forge(header(), claims(iat => now() + 600, exp => now() + 4200), jwt_secret())

=== TEST 36: iat a string
--- token_eval
jwt_forge(header(), claims(iat => '' . now()), jwt_secret())

=== TEST 37: control: nbf in the past is fine
--- token_eval
jwt_forge(header(), claims(nbf => now() - 60), jwt_secret())
--- error_code: 200



=== TEST 38: kid with a path
--- token_eval
jwt_forge(header(kid => '../../../../../../dev/null'), claims(), jwt_secret())

=== TEST 39: kid with SQL
--- token_eval
jwt_forge(header(kid => "x' UNION SELECT 'secret' --"), claims(), jwt_secret())

=== TEST 40: jku
--- token_eval
jwt_forge(header(jku => 'https://attacker.example.test/jwks.json'), claims(), jwt_secret())

=== TEST 41: jwk
--- token_eval
jwt_forge(header(jwk => {kty => 'oct', k => b64url('secret')}), claims(), jwt_secret())

=== TEST 42: x5u
--- token_eval
jwt_forge(header(x5u => 'https://attacker.example.test/cert.pem'), claims(), jwt_secret())

=== TEST 43: crit
--- token_eval
jwt_forge(header(crit => ['exp']), claims(), jwt_secret())

=== TEST 44: a header with alg twice, the last one none (RFC 7515: the last wins)
--- token_eval
jwt_forge('{"alg":"HS256","typ":"JWT","alg":"none"}', claims(), jwt_secret())

=== TEST 45: a header that is not JSON
--- token_eval
jwt_forge('not json', claims(), jwt_secret())

=== TEST 46: a header that is a JSON array
--- token_eval
jwt_forge('["HS256"]', claims(), jwt_secret())

=== TEST 47: claims that are not an object
--- token_eval
jwt_forge(header(), '[1]', jwt_secret())

=== TEST 48: claims for a user id that does not exist
--- token_eval
jwt_forge(header(), claims(sub => '987654321', user_id => 987654321), jwt_secret())

=== TEST 49: three segments of garbage
--- more_headers
Authorization: Bearer a.b.c

=== TEST 50: bytes outside base64url
--- more_headers
Authorization: Bearer abc$.d%ef.gh!i

=== TEST 51: two Authorization headers, both with alice's valid token
--- more_headers
Authorization: Bearer $TOKEN_alice
Authorization: Bearer $TOKEN_alice

=== TEST 52: a token of a user deleted since
--- login: gone
--- db_init
DELETE FROM users WHERE email = 'gone@example.test';

=== TEST 53: a token of a user deleted and registered again (a new id)
--- login: reborn
--- db_init
DELETE FROM users WHERE email = 'reborn@example.test';
INSERT INTO users (email, password_hash) VALUES ('reborn@example.test', 'x');



=== TEST 53b: a token of an account whose tokens were revoked since (redeem-admin raised its generation)
--- login: rita
--- db_init
UPDATE users SET token_generation = token_generation + 1 WHERE email = 'rita@example.test';
--- error_log
/RDM0208: token refused: user \d+'s tokens of generation 0 were revoked \(now 1\)/

=== TEST 53c: a token of a later generation than its account's (only equality lets in)
--- token_eval
jwt_forge(header(), claims(gen => 1), jwt_secret())

=== TEST 53d: a gen that is a string
--- token_eval
jwt_forge(header(), claims(gen => '0'), jwt_secret())

=== TEST 53e: an admin whose tokens were revoked since: 401 on an admin route, not its listing
--- login: adela
--- db_init
UPDATE users SET is_admin = true, token_generation = token_generation + 1
 WHERE email = 'adela@example.test';
--- request
GET /api/users
--- response_body_unlike
"users"



=== TEST 53f: control: that admin's new login carries the new generation and lists the users
--- token_eval
my $res = api_request('POST', '/api/login',
                      JSON::PP::encode_json({email => 'adela@example.test', password => var('USER_PASSWORD')}));
die "login: $res->{status}\n" unless $res->{status} == 200;
my (undef, $claims) = jwt_decode($res->{json}{access_token});
die "gen $claims->{gen}, not 1\n" unless $claims->{gen} == 1;
$res->{json}{access_token}
--- request
GET /api/users
--- error_code: 200
--- check_eval
grep({ $_->{email} eq 'adela@example.test' } @{ response()->{json}{users} }) == 1
  or die "adela is not in the listing\n";



=== TEST 53g: control: a token made here at the account's generation is accepted
--- token_eval
jwt_forge(header(), claims(gen => 0), jwt_secret())
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 53h: a token of the same user id with another email (a site of another database signed it with the same secret)
--- token_eval
jwt_forge(header(), claims(email => 'alice@elsewhere.test'), jwt_secret())
--- error_log
/RDM0209: token refused: its email is not user \d+'s/

=== TEST 53i: a token without email
--- token_eval
jwt_forge(header(), claims(email => undef), jwt_secret())

=== TEST 53j: an admin's id with another email: no admin route (the other site's admin is not this one)
--- token_eval
jwt_forge(header(), {%{ jwt_claims('admin') }, email => 'admin@elsewhere.test'}, jwt_secret())
--- request
GET /api/users
--- response_body_unlike
"users"



=== TEST 53k: a token naming another site (aud): the same id, email and generation, the same secret, and still refused (two sites of other databases, one RedeemAdmin each: the same admin of id 1 on both)
--- token_eval
jwt_forge(header(), claims(aud => 'fedcba9876543210'), jwt_secret())
--- error_log
/RDM0202: token refused: audience does not match/

=== TEST 53l: a token without aud (issued before tokens named their site)
--- token_eval
jwt_forge(header(), claims(aud => undef), jwt_secret())
--- error_log
/RDM0202: token refused: audience does not match/

=== TEST 53m: an admin's claims naming another site: no admin route
--- token_eval
jwt_forge(header(), {%{ jwt_claims('admin') }, aud => '0000000000000000'}, jwt_secret())
--- request
GET /api/users
--- response_body_unlike
"users"

=== TEST 53n: control: the token the server issues names this site, 16 hex digits, and the same for every user
--- token_eval
my (undef, $alice) = jwt_decode(user_token('alice'));
my (undef, $admin) = jwt_decode(user_token('admin'));
die "aud '$alice->{aud}'\n" unless ($alice->{aud} // '') =~ /\A[0-9a-f]{16}\z/;
die "two users, two auds\n" unless $alice->{aud} eq $admin->{aud};
die "aud $alice->{aud}, not the code MAC key's pseudonym " . site_aud() . "\n" unless $alice->{aud} eq site_aud();
user_token('alice')
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 54: an admin claim for a user the database says is not admin: 403
--- token_eval
my $claims = jwt_claims('mallory');
$claims->{admin} = JSON::PP::true;
jwt_forge(header(), $claims, jwt_secret())
--- request
GET /api/users
--- error_code: 403
--- response_json
{"error": "/./"}
--- response_body_unlike
mallory@example



=== TEST 55: control: that token is otherwise valid
--- token_eval
my $claims = jwt_claims('mallory');
$claims->{admin} = JSON::PP::true;
jwt_forge(header(), $claims, jwt_secret())
--- error_code: 200
--- response_json
{"user": {"email": "mallory@example.test"}}



=== TEST 56: an issuer configured: a token without iss is refused
--- config
RedeemJWTIssuer https://issuer.example.test
--- token_eval
user_token('alice')

=== TEST 57: an issuer configured: a token with another iss is refused
--- config
RedeemJWTIssuer https://issuer.example.test
--- token_eval
jwt_forge(header(), claims(iss => 'https://attacker.example.test'), jwt_secret())

=== TEST 58: an issuer configured: control: the right iss gets in
--- config
RedeemJWTIssuer https://issuer.example.test
--- token_eval
jwt_forge(header(), claims(iss => 'https://issuer.example.test'), jwt_secret())
--- error_code: 200



=== TEST 59: an issuer configured: the server's tokens carry it
--- config
RedeemJWTIssuer https://issuer.example.test
--- login: ivan
--- error_code: 200
--- check_eval
my (undef, $claims) = jwt_decode(user_token('ivan'));
json_match($claims, {iss => 'https://issuer.example.test', email => 'ivan@example.test'});



=== TEST 60: a leeway of 30 s: expired 10 s ago is still accepted
--- config
RedeemJWTLeeway 30
--- token_eval
jwt_forge(header(), claims(exp => now() - 10), jwt_secret())
--- error_code: 200



=== TEST 61: a leeway of 30 s: expired 100 s ago is refused
--- config
RedeemJWTLeeway 30
--- token_eval
jwt_forge(header(), claims(exp => now() - 100), jwt_secret())

=== TEST 62: headers up to 20 MB let big tokens reach the module: control
--- config
LimitRequestFieldSize 20000000
--- token_eval
jwt_forge(header(), claims(), jwt_secret())
--- error_code: 200



=== TEST 63: an 8 KiB token, validly signed
--- config
LimitRequestFieldSize 20000000
--- token_eval
jwt_forge(header(), claims(pad => 'p' x 6200), jwt_secret())

=== TEST 64: a 16 MiB token
--- config
LimitRequestFieldSize 20000000
--- token_eval
jwt_forge(header(), claims(pad => 'p' x (12 * 1024 * 1024)), jwt_secret())
--- timeout: 60

=== TEST 65: a 16 MiB token of base64url garbage in three segments
--- config
LimitRequestFieldSize 20000000
--- token_eval
join '.', ('A' x (16 * 1024 * 1024 / 3)) x 3
--- timeout: 60



=== TEST 66: a header with alg twice (the JSON parser would keep the last)
--- token_eval
jwt_forge('{"alg":"none","alg":"HS256","typ":"JWT"}', claims(), jwt_secret())



=== TEST 67: claims with user_id twice: the second one names another user
--- token_eval
my $c = claims();
my $json = JSON::PP->new->canonical->encode($c);
$json =~ s/"user_id":(\d+)/"user_id":$1,"user_id":1/ or die 'no user_id';
jwt_forge(header(), $json, jwt_secret())



=== TEST 68: claims with exp twice: an expired one, then a valid one
--- token_eval
my $json = JSON::PP->new->canonical->encode(claims());
$json =~ s/"exp":(\d+)/"exp":1,"exp":$1/ or die 'no exp';
jwt_forge(header(), $json, jwt_secret())



=== TEST 69: a leeway and an exp at the top of int64: in the future, no overflow (UBSan in the ASan run)
--- config
RedeemJWTLeeway 30
--- token_eval
my $json = JSON::PP->new->canonical->encode(claims());
$json =~ s/"exp":\d+/"exp":9223372036854775807/ or die 'no exp';
jwt_forge(header(), $json, jwt_secret())
--- error_code: 200



=== TEST 70: a leeway of 30 s: issued 10 s in the future (the issuer's clock ahead) is accepted
--- config
RedeemJWTLeeway 30
--- token_eval
jwt_forge(header(), claims(iat => now() + 10, exp => now() + 3610), jwt_secret())
--- error_code: 200



=== TEST 71: a leeway of 30 s: not before 10 s from now is accepted
--- config
RedeemJWTLeeway 30
--- token_eval
jwt_forge(header(), claims(nbf => now() + 10), jwt_secret())
--- error_code: 200



=== TEST 72: a leeway of 30 s: issued 100 s in the future is refused
--- config
RedeemJWTLeeway 30
--- token_eval
jwt_forge(header(), claims(iat => now() + 100, exp => now() + 3700), jwt_secret())



=== TEST 73: sub names another user than user_id (both must be the user's id)
--- token_eval
jwt_forge(header(), claims(sub => '987654321'), jwt_secret())



=== TEST 74: a validly signed token whose email is 2,000 bytes: refused, nothing copied past its room (the ASan run watches)
--- token_eval
jwt_forge(header(), claims(email => ('e' x 1988) . '@example.test'), jwt_secret())



=== TEST 75: the scheme is case-insensitive (RFC 7235): "bearer" and "BEARER" get in
--- request
GET /api/profile
--- more_headers eval
'Authorization: bearer ' . user_token('alice')
--- error_code: 200



=== TEST 76: ... "BEARER"
--- request
GET /api/profile
--- more_headers eval
'Authorization: BEARER ' . user_token('alice')
--- error_code: 200
