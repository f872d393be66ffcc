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
