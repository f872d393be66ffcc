# Configuration merging: a <VirtualHost> that sets nothing of its own serves
# the API exactly as the main server is configured; one that overrides takes
# its own values, and takes the paired settings whole: RedeemJWTSecretFile in
# the vhost replaces the main server's inline RedeemJWTSecret (not a mix of
# both), and RedeemAdmin's email and password come together from one place.
use lib 't/lib';
use Test::Redeem;

my $vhosts = <<'CONF';
<VirtualHost *>
  ServerName 127.0.0.1
</VirtualHost>
<VirtualHost *>
  ServerName override.test
  RedeemBasePath /v2
  ErrorDocument 404 default
  RedeemJWTSecretFile "$SERVROOT/vhost_secret"
  RedeemTokenLifetime 120
  RedeemAdmin "boss@example.test" "BossPassw0rd1"
</VirtualHost>
CONF

# The issuer and the hash's cost: set in the main server, and overridden by
# the second vhost (blocks 11-14).
our $ISSUER_VHOSTS = <<'CONF';
RedeemJWTIssuer https://main.example.test
<VirtualHost *>
  ServerName 127.0.0.1
</VirtualHost>
<VirtualHost *>
  ServerName override.test
  RedeemBasePath /v2
  ErrorDocument 404 default
  RedeemJWTIssuer https://vhost.example.test
  RedeemArgon2 8192 1 1
</VirtualHost>
CONF

# Every block runs with the two vhosts; the override vhost's secret file is
# written before its server first starts.
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $vhosts) unless defined $block->config;
    my $file = var('SERVROOT') . '/vhost_secret';
    return if -e $file;
    open my $fh, '>', $file or die "$file: $!";
    print $fh "a-secret-of-the-override-vhost-only-0123456789\n";
    close $fh;
    chmod 0600, $file;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the inheriting vhost serves the API at the main server's base path
--- login: alice
--- request
GET /api/profile
--- error_code: 200
--- response_json
{"user": {"email": "alice@example.test"}}



=== TEST 2: the inheriting vhost issues tokens with the main server's lifetime
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
--- response_json
{"expires_in": 3600}



=== TEST 3: the overriding vhost serves under its own base path
--- request
GET /v2/api/health
--- more_headers
Host: override.test
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 4: the overriding vhost does not serve the main server's base path
--- request
GET /api/health
--- more_headers
Host: override.test
--- error_code: 404
--- response_body_unlike
"error"
--- openapi_skip: httpd's answer in a vhost whose API is elsewhere



=== TEST 5: the overriding vhost's own lifetime
--- request
POST /v2/api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- more_headers
Host: override.test
--- error_code: 200
--- response_json
{"expires_in": 120}
--- save_json
VHOST_TOKEN=access_token



=== TEST 6: secret pair: a token of the main server's inline secret is refused by the vhost's file secret
--- login: alice
--- request
GET /v2/api/profile
--- more_headers
Host: override.test
--- error_code: 401



=== TEST 7: secret pair: the vhost's own token works there
--- request
GET /v2/api/profile
--- more_headers
Host: override.test
Authorization: Bearer $VHOST_TOKEN
--- error_code: 200



=== TEST 8: secret pair: and is refused by the inheriting vhost
--- request
GET /api/profile
--- more_headers
Authorization: Bearer $VHOST_TOKEN
--- error_code: 401



=== TEST 9: admin pair: the vhost's RedeemAdmin exists with its own password and is admin
--- request
POST /v2/api/login
--- request_json
{"email": "boss@example.test", "password": "BossPassw0rd1"}
--- more_headers
Host: override.test
--- error_code: 200
--- db_check
SELECT is_admin FROM users WHERE email = 'boss@example.test';
--- db_check_out
t



=== TEST 10: admin pair: the inheriting vhost still has the main server's admin
--- login: admin
--- request
GET /api/users
--- error_code: 200
--- db_check
SELECT count(*) FROM users WHERE is_admin;
--- db_check_out
2



=== TEST 11: the inheriting vhost's tokens carry the main server's RedeemJWTIssuer
--- config eval
$main::ISSUER_VHOSTS
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
--- check_eval
my (undef, $claims) = jwt_decode(response()->{json}{access_token});
$claims->{iss} eq 'https://main.example.test' or die "iss: " . ($claims->{iss} // 'none') . "\n";



=== TEST 12: the overriding vhost's tokens carry its own
--- config eval
$main::ISSUER_VHOSTS
--- request
POST /v2/api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- more_headers
Host: override.test
--- error_code: 200
--- check_eval
my (undef, $claims) = jwt_decode(response()->{json}{access_token});
$claims->{iss} eq 'https://vhost.example.test' or die "iss: " . ($claims->{iss} // 'none') . "\n";



=== TEST 13: the overriding vhost's RedeemArgon2 makes its registrations' hashes
--- config eval
$main::ISSUER_VHOSTS
--- request
POST /v2/api/register
--- request_json
{"email": "cheap@example.test", "password": "CheapPassw0rd"}
--- more_headers
Host: override.test
--- error_code: 201
--- db_check
SELECT password_hash LIKE '$argon2id$v=19$m=8192,t=1,p=1$%' FROM users WHERE email = 'cheap@example.test';
--- db_check_out
t



=== TEST 14: ... and the inheriting vhost's are the main server's cost (the RedeemAdmin account's, made by the main server; alice's was rehashed to the vhost's cost as she logged in there)
--- config eval
$main::ISSUER_VHOSTS
--- request
POST /api/register
--- request_json
{"email": "dear@example.test", "password": "DearPassw0rd1"}
--- error_code: 201
--- db_check
SELECT split_part(password_hash, '$', 4) = (SELECT split_part(password_hash, '$', 4) FROM users WHERE email = 'admin@example.test'),
       split_part(password_hash, '$', 4) <> 'm=8192,t=1,p=1'
  FROM users WHERE email = 'dear@example.test';
--- db_check_out
t|t
