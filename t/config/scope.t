# Scoped configuration: the API where the operator mounts it (a <Location>
# of a site), nothing anywhere else, and the other modules of httpd acting on
# and around its paths as usual: mod_rewrite, access control, LimitRequestBody
# in the API's <Location> only.
use lib 't/lib';
use Test::Redeem;
use File::Path ();
use File::Temp ();

our $SCOPED = <<'CONF';
LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so
RedeemEngine Off
# httpd's own answers outside the API: the private server's JSON ErrorDocument off.
ErrorDocument 404 default
<Location "/billing">
  RedeemEngine On
  LimitRequestBody 1000
</Location>
<Location "/billing/admin">
  Require all denied
</Location>
<Location "/shop">
  RedeemEngine On
  RedeemBasePath /shop/v1
</Location>
RewriteEngine On
RewriteRule ^/old-health$ /billing/api/health [PT]
RewriteRule ^/billing/moved$ /not-the-api.txt [PT]
CONF

# A DocumentRoot httpd's children (User nobody when root) can read, wherever
# the checkout is (under /root, say): a directory of its own under /tmp.
our $DOCROOT;
sub docroot {
    $DOCROOT //= File::Temp::tempdir('redeem-docroot-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $DOCROOT;
    return $DOCROOT;
}

# Writes $text to $path under the DocumentRoot (its directories made); the root.
sub docroot_file {
    my ($path, $text) = @_;
    my $root = docroot();
    my $dir = $path =~ s{/?[^/]*$}{}r;
    File::Path::make_path("$root/$dir") if length $dir;
    open my $fh, '>', "$root/$path" or die "$root/$path: $!";
    print $fh $text;
    close $fh;
    return $root;
}

# The API in a <VirtualHost> under the main server's RedeemBasePath.
our $VHOST_UNDER_BASE = <<'CONF';
RedeemEngine Off
RedeemBasePath /billing
<VirtualHost *>
  RedeemEngine On
</VirtualHost>
CONF

# A <Location> that turns the API on, below a server whose RedeemBasePath
# is elsewhere.
our $LOCATION_UNDER_BASE = <<'CONF';
RedeemEngine Off
RedeemBasePath /elsewhere
ErrorDocument 404 default
<Location "/billing">
  RedeemEngine On
</Location>
CONF

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $SCOPED) unless defined $block->config;
});

run_tests();

__DATA__

=== TEST 1: the API under its <Location>
--- request
GET /billing/api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 2: the API's routes all move with it: a 404 of the API's own inside it
--- request
GET /billing/api/nothing-here
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 3: nothing of the module outside its <Location>: httpd's own 404
--- request
GET /api/health
--- error_code: 404
--- response_body_unlike
\{"error"
--- openapi_skip: httpd's answer, outside the API



=== TEST 4: a second <Location> with its own base path inside it
--- request
GET /shop/v1/api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 5: ... and the <Location> path itself, outside the base path, is not the API
--- request
GET /shop/api/health
--- error_code: 404
--- response_body_unlike
\{"error"
--- openapi_skip: httpd's answer, outside the API



=== TEST 6: access control on the API's paths: Require all denied answers 403 before the module
--- request
GET /billing/admin/codes
--- error_code: 403
--- response_body_unlike
Admin access required
--- openapi_skip: mod_authz_core's answer



=== TEST 7: a server-level RewriteRule into the API takes effect
--- request
GET /old-health
--- error_code: 200
--- response_json
{"status": "healthy"}
--- openapi_skip: the URI is not the API's path (rewritten into it)



=== TEST 8: a RewriteRule out of the API's paths: the module leaves the rewritten request alone
--- request
GET /billing/moved
--- error_code: 404
--- response_body_unlike
\{"error"
--- openapi_skip: httpd's answer for the rewritten URI



=== TEST 9: LimitRequestBody of the API's <Location> applies there
--- request
POST /billing/api/register
--- request_json eval
'{"email": "big@example.test", "password": "Passw0rd123", "x": "' . ('a' x 2000) . '"}'
--- error_code: 413
--- openapi_skip: httpd's own 413 (issue 10: JSON for httpd's answers)



=== TEST 10: ... and nowhere else: the same body elsewhere is not refused for its size
--- request
POST /elsewhere
--- request_json eval
'{"x": "' . ('a' x 2000) . '"}'
--- check_eval
response()->{status} != 413



=== TEST 11: RedeemEngine in a <Directory> is refused
--- config
<Directory "/var/www">
  RedeemEngine On
</Directory>
--- must_die
--- error_log
RedeemEngine belongs in the server, a <VirtualHost> or a <Location> of a plain URL path



=== TEST 12: RedeemEngine in a <LocationMatch> is refused
--- config
<LocationMatch "^/api">
  RedeemEngine On
</LocationMatch>
--- must_die
--- error_log
RedeemEngine belongs in the server, a <VirtualHost> or a <Location> of a plain URL path



=== TEST 12b: RedeemEngine in a <Location ~ ...> (a regular expression too) is refused
--- config
<Location ~ "/x/(v1|v2)">
  RedeemEngine On
</Location>
--- must_die
--- error_log
RedeemEngine belongs in the server, a <VirtualHost> or a <Location> of a plain URL path



=== TEST 12c: a RedeemBasePath outside its <Location> is refused (nothing would reach the module there)
--- config
<Location "/api">
  RedeemEngine On
  RedeemBasePath /other
</Location>
--- must_die
--- error_log
RedeemBasePath /other is outside its <Location /api>



=== TEST 12d: ... nor one that only begins with the same letters
--- config
<Location "/api">
  RedeemEngine On
  RedeemBasePath /apiv2
</Location>
--- must_die
--- error_log
RedeemBasePath /apiv2 is outside its <Location /api>



=== TEST 13: the API server-wide with a <Location> turned off: a file there is served as usual (the module's map_to_storage saw the server's setting alone, and the file was 404)
--- config eval
my $root = docroot_file('static/x.txt', "hello from a file\n");
qq(DocumentRoot "$root"\n<Directory "$root">\n  Require all granted\n</Directory>\n)
  . qq(<Location "/static">\n  RedeemEngine Off\n</Location>\n)
--- request
GET /static/x.txt
--- error_code: 200
--- response_body
hello from a file
--- openapi_skip: a file, outside the API



=== TEST 14: a ProxyPass inside the API's scope is mod_proxy's, and its <Proxy> access rules apply (mod_proxy loaded after mod_redeem; the module took the request's storage first, and the proxy ran unchecked)
--- config
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
ProxyPass /legacy http://127.0.0.1:1/
<Proxy "http://127.0.0.1:1/*">
  Require all denied
</Proxy>
--- request
GET /legacy/x
--- error_code: 403
--- openapi_skip: mod_authz_core's answer for mod_proxy



=== TEST 15: ... and with no rule against it, the request goes through the proxy (503: nothing listens on port 1), not to the API's 404
--- config
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
ProxyPass /legacy http://127.0.0.1:1/
--- request
GET /legacy/x
--- error_code: 503
--- response_body_unlike
Not found
--- openapi_skip: mod_proxy's answer



=== TEST 16: an API mounted in a <Location> is no directory's: a broken .htaccess where its path would be on disk does not touch it
--- config eval
my $root = docroot_file('billing/.htaccess', "ThisIsNotADirective at all\n");
qq(DocumentRoot "$root"\n<Directory "$root">\n  AllowOverride All\n  Require all granted\n</Directory>\n)
  . qq(RedeemEngine Off\n<Location "/billing">\n  RedeemEngine On\n</Location>\n)
--- request
GET /billing/api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 17: a <VirtualHost> that turns the API on keeps the main server's RedeemBasePath (it was dropped, and the API took every path of the host)
--- config eval
$main::VHOST_UNDER_BASE
--- request
GET /billing/api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 18: ... and outside that base path the host's paths are not the API
--- config eval
$main::VHOST_UNDER_BASE
--- request
GET /api/health
--- error_code: 404
--- response_body_unlike
healthy
--- openapi_skip: httpd's answer, outside the API



=== TEST 18b: a <Location> that turns the API on under a server's RedeemBasePath is its own base path: the API answers under it (the server's base path taken along, the <Location>'s requests were none of the API's)
--- config eval
$main::LOCATION_UNDER_BASE
--- request
GET /billing/api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 18c: ... and the server's base path is not the API there (the engine is off outside the <Location>)
--- config eval
$main::LOCATION_UNDER_BASE
--- request
GET /elsewhere/api/health
--- error_code: 404
--- response_body_unlike
healthy
--- openapi_skip: httpd's answer, outside the API



=== TEST 19: a RewriteRule's [PT] from an API path into a <Location> turned off: the file there is served (the module judged the rewritten path by the <Location>s of the path as it came, and took it: 404)
--- config eval
my $root = docroot_file('static/x.txt', "hello from a file\n");
qq(LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so\n)
  . qq(DocumentRoot "$root"\n<Directory "$root">\n  Require all granted\n</Directory>\n)
  . qq(<Location "/static">\n  RedeemEngine Off\n</Location>\n)
  . qq(RewriteEngine On\nRewriteRule "^/legacy/(.*)\$" "/static/\$1" [PT]\n)
--- request
GET /legacy/x.txt
--- error_code: 200
--- response_body
hello from a file
--- openapi_skip: a file, outside the API



=== TEST 20: a base path is a whole segment: with RedeemBasePath /api, /apifoo.txt beside it is the host's file, not the API's
--- config eval
my $root = docroot_file('apifoo.txt', "a neighbour of the API\n");
qq(DocumentRoot "$root"\n<Directory "$root">\n  Require all granted\n</Directory>\n)
  . qq(RedeemBasePath /api\n)
--- request
GET /apifoo.txt
--- error_code: 200
--- response_body
a neighbour of the API
--- openapi_skip: a file, outside the API



=== TEST 21: an Alias (or a RewriteRule to a file, without [PT]) for a path inside the API's scope does not serve its file: the API answers there, its JSON 404 for a path it does not know (README, "Directives": files go in a <Location> with RedeemEngine Off, TEST 22)
--- config eval
my $root = docroot_file('docs/readme.txt', "static readme\n");
qq(LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n)
  . qq(<Directory "$root">\n  Require all granted\n</Directory>\n)
  . qq(Alias /api/docs "$root/docs"\n)
--- request
GET /api/docs/readme.txt
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 22: ... and the same Alias under a <Location> with RedeemEngine Off serves the file
--- config eval
my $root = docroot_file('docs/readme.txt', "static readme\n");
qq(LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n)
  . qq(<Directory "$root">\n  Require all granted\n</Directory>\n)
  . qq(Alias /api/docs "$root/docs"\n<Location "/api/docs">\n  RedeemEngine Off\n</Location>\n)
--- request
GET /api/docs/readme.txt
--- error_code: 200
--- response_body
static readme
--- openapi_skip: a file, outside the API
