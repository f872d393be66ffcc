# Rate limits counted in this host's shared memory (the default store): the
# scopes of API.md, 429 with Retry-After and the RateLimit headers (also under
# the limit), a refused redemption audited in the error log each time and in
# audit_log once per key and window (nothing else written), one RDM0604 line
# per key and window, limits shared by every child and kept across a graceful restart,
# the window's end, client addresses as mod_remoteip resolves them (and only
# from trusted proxies), and the directives apachectl -t refuses.
use lib 't/lib';
use Test::Redeem;

our $FORGED = '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}';

# The block's request was USER's first attempt of three (redeem-user 3 60):
# two more are served, the fourth is refused.
sub spend_redeem_budget {
    my ($user) = @_;
    my $auth = 'Authorization: Bearer ' . user_token($user);
    for my $n (2, 3) {
        api_request('POST', '/redeem', $FORGED, $auth)->{status} == 404 or die "$user $n";
    }
    my $res = api_request('POST', '/redeem', $FORGED, $auth);
    $res->{status} == 429 or die "$user 4: $res->{status}, not 429";
}

sub log_count {
    my ($re, $file) = @_;
    open my $fh, '<', var('SERVROOT') . '/' . ($file // 'error.log') or die "log: $!";
    return scalar grep { /$re/ } <$fh>;
}

# A second site on this host, of other keys (another database's), for
# TEST 6c: its key files are written before its server first starts.
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless ($block->config // '') =~ /other-keys\.test/;
    my $dir = var('SERVROOT');
    return if -e "$dir/other_jwt_secret";
    # The harness's own key writer: random keys, 0600.
    Test::Redeem::_write_key("$dir/$_") for qw(other_mac_key other_enc_key);
    Test::Redeem::_write_file("$dir/other_jwt_secret", "a-secret-of-the-other-site-only-0123456789ab\n");
    chmod 0600, "$dir/other_jwt_secret";
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: under the limit: the answer carries both headers, one item per scope
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404
--- response_headers
RateLimit-Policy: "redeem-ip";q=100;w=60, "redeem-user";q=3;w=60
RateLimit: "redeem-ip";r=99;t=1, "redeem-user";r=2;t=20



=== TEST 2: the second and third attempts are served, the remaining count going down
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404
--- response_headers_like
RateLimit: "redeem-user";r=1;t=(39|40)



=== TEST 3: the third
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404
--- response_headers_like
RateLimit: "redeem-user";r=0;t=(59|60)



=== TEST 4: the fourth within the minute: 429 with the contract's body, Retry-After and the headers; the attempt audited (outcome rate_limited), in audit_log as the first refusal of its key and window
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 429
--- response_json_exact
{"error": "Too many requests"}
--- response_headers
X-Content-Type-Options: nosniff
--- response_headers_like
Retry-After: ^(19|20)$
RateLimit-Policy: "redeem-user";q=3;w=60
RateLimit: "redeem-user";r=0;t=(59|60)
--- error_log
/RDM0604: rate limit redeem-user \(3 per 60 s\) reached by client 127\.0\.0\.1, user \d+/
/RDM0401: audit: event=redeem actor=\d+ target=- client=127\.0\.0\.1 outcome=rate_limited request=\S+/
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_ann;
SELECT outcome, target IS NULL, client_addr FROM audit_log WHERE actor_id = $USER_ID_ann ORDER BY id DESC LIMIT 1;
--- db_check_out
4
rate_limited|t|127.0.0.1



=== TEST 5: refused again: no second audit row (one per key and window), the attempt in the error log all the same, and RDM0604 once per key and window
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 429
--- check_eval
log_count(qr/RDM0604: rate limit redeem-user /) == 1 or die 'RDM0604 not once';
my $n = log_count(qr/RDM0401: audit: event=redeem .* outcome=rate_limited /);
$n == 2 or die "each refusal once in the error log: $n lines";
--- db_check
SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_ann
--- db_check_out
4



=== TEST 6: another user of the same address is not limited by ann's count
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: ben
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404



=== TEST 6b: a user's tokens revoked: a token of the new generation has a budget of its own (a revoked token cannot keep its account at 429)
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
--- login: cora
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404
--- check_eval
spend_redeem_budget('cora');
sql("UPDATE users SET token_generation = token_generation + 1 WHERE email = 'cora\@example.test'");
my $res = api_request('POST', '/api/login',
                   JSON::PP::encode_json({email => 'cora@example.test', password => var('USER_PASSWORD')}));
$res->{status} == 200 or die "login: $res->{status}";
$res = api_request('POST', '/redeem', $FORGED, "Authorization: Bearer $res->{json}{access_token}");
$res->{status} == 404 or die "the new generation's first: $res->{status}, not 404";



=== TEST 6c: two sites of other keys on one host count apart: a user id's attempts on one do not spend the same id's budget on the other
--- config
RedeemRateLimit redeem-user 3 60
RedeemRateLimit redeem-ip 100 60
<VirtualHost *>
  ServerName 127.0.0.1
</VirtualHost>
<VirtualHost *>
  ServerName other-keys.test
  RedeemJWTSecretFile "$SERVROOT/other_jwt_secret"
  RedeemCodeMACKeyFile "$SERVROOT/other_mac_key"
  RedeemCodeEncryptionKeyFile "$SERVROOT/other_enc_key"
</VirtualHost>
--- login: dora
--- request
POST /redeem
--- request_json eval
$FORGED
--- error_code: 404
--- check_eval
spend_redeem_budget('dora');
# The same user id on the other site, with a token of its secret naming it.
my $token = jwt_forge({alg => 'HS256', typ => 'JWT'},
                      {%{ jwt_claims('dora') }, aud => site_aud(var('SERVROOT') . '/other_mac_key')},
                      'a-secret-of-the-other-site-only-0123456789ab');
my $res = api_raw_request("POST /redeem HTTP/1.1\r\nHost: other-keys.test\r\nConnection: close\r\n"
                       . "Authorization: Bearer $token\r\nContent-Type: application/json\r\n"
                       . 'Content-Length: ' . length($FORGED) . "\r\n\r\n$FORGED");
$res->{status} == 404 or die "dora on the other site: $res->{status}, not 404";



=== TEST 6d: two virtual hosts of the same keys that limit a scope differently count apart: the lenient one serves what the strict one refused, and the strict one stays strict after it
--- config
RedeemRateLimit register-ip 2 3600
<VirtualHost *>
  ServerName 127.0.0.1
</VirtualHost>
<VirtualHost *>
  ServerName lenient.test
  RedeemRateLimit register-ip 60 60
</VirtualHost>
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $n = 0;
my $register = sub {
    my ($host) = @_;
    my $body = sprintf '{"email": "vh%d@example.test", "password": "Passw0rd123"}', ++$n;
    return api_raw_request("POST /api/register HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n"
                           . "Content-Type: application/json\r\nContent-Length: " . length($body)
                           . "\r\n\r\n$body")->{status};
};
my @got = map { $register->($_) } qw(127.0.0.1 127.0.0.1 127.0.0.1 lenient.test 127.0.0.1 lenient.test 127.0.0.1);
"@got" eq '201 201 429 201 429 201 429' or die "strict, strict, strict, lenient, strict, lenient, strict: @got\n";



=== TEST 7: the per-address scope: its limit reached by two users together
--- config
RedeemRateLimit redeem-user 100 60
RedeemRateLimit redeem-ip 4 60
--- login: ann
--- request
POST /redeem
--- request_json eval
$FORGED
--- check_eval
# Three more attempts by ben: the address has then spent its four.
api_request('POST', '/redeem', $FORGED,
            'Authorization: Bearer ' . user_token('ben'))->{status} == 404 or die "ben 1";
api_request('POST', '/redeem', $FORGED,
            'Authorization: Bearer ' . user_token('ben'))->{status} == 404 or die "ben 2";
api_request('POST', '/redeem', $FORGED,
            'Authorization: Bearer ' . user_token('ben'))->{status} == 404 or die "ben 3";
my $res = api_request('POST', '/redeem', $FORGED,
                      'Authorization: Bearer ' . user_token('ann'));
$res->{status} == 429 or die "ann's fifth from the address: $res->{status}";



=== TEST 8: an address over its limit is refused whatever its token (a bad one counted too)
--- config
RedeemRateLimit redeem-user 100 60
RedeemRateLimit redeem-ip 4 60
--- request
POST /redeem
--- more_headers
Authorization: Bearer not-a-token
--- request_json eval
$FORGED
--- error_code: 429



=== TEST 9: the window's end: two per four seconds (one every two), the third refused, served again two seconds later (the third is refused only if it comes within two seconds of the first: room for a loaded machine, where two per two seconds left one)
--- config
RedeemRateLimit register-ip 2 4
--- request
POST /api/register
--- request_json
{"email": "w1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my $second = api_request('POST', '/api/register', '{"email":"w2@example.test","password":"Passw0rd123"}');
$second->{status} == 201 or die "second: $second->{status}";
my $third = api_request('POST', '/api/register', '{"email":"w3@example.test","password":"Passw0rd123"}');
$third->{status} == 429 or die "third: $third->{status}";
Time::HiRes::sleep(2.1);
my $later = api_request('POST', '/api/register', '{"email":"w3@example.test","password":"Passw0rd123"}');
$later->{status} == 201 or die "after the window: $later->{status}";



=== TEST 10: three children at least, 30 clients at once, a limit of 10: exactly 10 served
--- config
StartServers 3
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 30
MaxSpareThreads 40
MaxRequestWorkers 40
RedeemRateLimit register-ip 10 60
--- request
POST /api/register
--- request_json eval
'{"email": "many' . var('CLIENT_INDEX') . '@example.test", "password": "Passw0rd123"}'
--- concurrency: 30
--- error_code_counts
201: 10
429: 20
--- db_check
SELECT count(*) FROM users WHERE email LIKE 'many%'
--- db_check_out
10



=== TEST 11: ... and they were served by more than one child (pids in the access log)
--- config
StartServers 3
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 30
MaxSpareThreads 40
MaxRequestWorkers 40
RedeemRateLimit register-ip 10 60
--- request
GET /api/health
--- error_code: 200
--- check_eval
# httpd writes a line after the answer has gone: give the last ones a moment.
my %pids;
for (1 .. 50) {
    open my $fh, '<', var('SERVROOT') . '/access.log' or die $!;
    %pids = map { /POST \/api\/register .* (\d+)$/ ? ($1 => 1) : () } <$fh>;
    last if keys(%pids) >= 2;
    Time::HiRes::sleep(0.1);
}
keys(%pids) >= 2 or die "served by " . join(',', keys %pids);



=== TEST 12: a graceful restart in the middle of a window keeps the counts
--- config
RedeemRateLimit register-ip 4 60
--- request
POST /api/register
--- request_json
{"email": "g1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
api_request('POST', '/api/register', '{"email":"g2@example.test","password":"Passw0rd123"}')->{status} == 201
  or die "g2";
graceful_restart();
for my $n (3, 4) {
    my $res = api_request('POST', '/api/register', qq({"email":"g$n\@example.test","password":"Passw0rd123"}));
    $res->{status} == 201 or die "g$n after the restart: $res->{status}";
}
my $fifth = api_request('POST', '/api/register', '{"email":"g5@example.test","password":"Passw0rd123"}');
$fifth->{status} == 429 or die "the fifth after a graceful restart: $fifth->{status} (the count was lost)";
log_count(qr/resuming normal operations/) >= 2 or die "no graceful restart seen";



=== TEST 12b: a graceful restart with a new ENTRIES starts the counts afresh, and says so
--- config
RedeemRateLimitStore shm 1024
RedeemRateLimit register-ip 1 60
--- request
POST /api/register
--- request_json
{"email": "h1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my $second = api_request('POST', '/api/register', '{"email":"h2@example.test","password":"Passw0rd123"}');
$second->{status} == 429 or die "h2 before the restart: $second->{status}";
open my $conf, '>>', var('SERVROOT') . '/extra.conf' or die "extra.conf: $!";
print $conf "RedeemRateLimitStore shm 2048\n";
close $conf;
graceful_restart();
my $third = api_request('POST', '/api/register', '{"email":"h3@example.test","password":"Passw0rd123"}');
$third->{status} == 201 or die "h3 after the table grew: $third->{status} (the old counts kept)";
log_count(qr/RDM0601: the rate-limit table changes size \(1024 to 2048 entries\): its counts start afresh/) == 1
  or die 'RDM0601 not logged once';



=== TEST 13: login: a flood of wrong passwords from one address (through a trusted proxy)
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit login-email 3 60
RedeemRateLimit login-ip 5 60
--- login: olga
--- request
POST /api/login
--- more_headers
X-Forwarded-For: 203.0.113.9
--- request_json
{"email": "olga@example.test", "password": "WrongPassw0rd"}
--- error_code: 401
--- check_eval
my @statuses = map {
    api_request('POST', '/api/login', '{"email":"olga@example.test","password":"WrongPassw0rd"}',
                'X-Forwarded-For: 203.0.113.9')->{status}
} 1 .. 4;
"@statuses" eq '401 401 429 429' or die "the flood: @statuses";



=== TEST 14: ... does not lock the owner out from another address
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit login-email 3 60
RedeemRateLimit login-ip 5 60
--- request
POST /api/login
--- more_headers
X-Forwarded-For: 198.51.100.7
--- request_json
{"email": "olga@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200
--- response_headers_like
RateLimit: "login-ip";r=4;t=\d+, "login-email";r=2;t=\d+



=== TEST 15: the flooding address is refused per address too, whatever the email
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit login-email 3 60
RedeemRateLimit login-ip 5 60
--- request
POST /api/login
--- more_headers
X-Forwarded-For: 203.0.113.9
--- request_json
{"email": "someone-else@example.test", "password": "WrongPassw0rd"}
--- error_code: 429
--- response_headers_like
RateLimit: "login-ip";r=0



=== TEST 15b: login-email counts an account, not a spelling: the case and Unicode forms of one address (the database's one identity) share one budget, whether the account exists or not
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit login-email 3 60
RedeemRateLimit login-ip 60 60
--- request
POST /api/register
--- request_json
{"email": "j\u00fcrgen@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my $login = sub {
    my ($address, $email) = @_;
    api_request('POST', '/api/login', JSON::PP->new->ascii->encode({email => $email, password => 'WrongPassw0rd'}),
                "X-Forwarded-For: $address")->{status};
};
# j\x{fc}rgen, J\x{dc}RGEN, ju + combining diaeresis + rgen, JU + combining diaeresis + RGEN
my @known = map { $login->('192.0.2.44', $_) }
    ("j\x{fc}rgen\@example.test", "J\x{dc}RGEN\@example.test",
     "ju\x{308}rgen\@example.test", "JU\x{308}RGEN\@EXAMPLE.TEST");
"@known" eq '401 401 401 429' or die "an account's spellings: @known\n";
# No account: the Kelvin sign (U+212A) is a k to the database, as is K.
my @unknown = map { $login->('192.0.2.45', $_) }
    ("mike\@bank.example", "MIKE\@bank.example", "mi\x{212a}e\@bank.example", "mi\x{212a}e\@BANK.example");
"@unknown" eq '401 401 401 429' or die "an unknown address's spellings: @unknown\n";
1



=== TEST 16: IPv6 clients are counted by their /64
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit register-ip 2 60
--- request
POST /api/register
--- more_headers
X-Forwarded-For: 2001:db8:0:1::1
--- request_json
{"email": "six1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my $reg = sub {
    my ($addr, $n) = @_;
    api_request('POST', '/api/register', qq({"email":"six$n\@example.test","password":"Passw0rd123"}),
                "X-Forwarded-For: $addr")->{status};
};
my @got = ($reg->('2001:db8:0:1::ffff', 2), $reg->('2001:db8:0:1:abcd::9', 3), $reg->('2001:db8:0:2::1', 4));
"@got" eq '201 429 201' or die "same /64, same /64, another /64: @got";



=== TEST 17: X-Forwarded-For from a peer that is not a trusted proxy changes nothing
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 192.0.2.1
RedeemRateLimit register-ip 2 60
--- request
POST /api/register
--- more_headers
X-Forwarded-For: 203.0.113.1
--- request_json
{"email": "x1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my @got = map {
    api_request('POST', '/api/register', qq({"email":"x$_\@example.test","password":"Passw0rd123"}),
                "X-Forwarded-For: 203.0.113.$_")->{status}
} 2, 3;
"@got" eq '201 429' or die "different forged addresses, one real peer: @got";
open my $log, '<', var('SERVROOT') . '/error.log' or die $!;
my @warned = grep { /RDM0607: a request from 127\.0\.0\.1 carries X-Forwarded-For, but its client address is that peer's/ } <$log>;
my %per_child;
$per_child{/\[pid (\d+)/ ? $1 : '?'}++ for @warned;
@warned && !grep({ $_ > 1 } values %per_child)
  or die 'RDM0607 logged ' . @warned . " times, not once per child\n";



=== TEST 17b: X-Forwarded-For from a trusted proxy on loopback (the example site's setting): each client its own budget, and no warning
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1 ::1
RedeemRateLimit register-ip 1 60
--- request
POST /api/register
--- more_headers
X-Forwarded-For: 203.0.113.1
--- request_json
{"email": "y1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
my @got = map {
    api_request('POST', '/api/register', qq({"email":"y$_->[0]\@example.test","password":"Passw0rd123"}),
                "X-Forwarded-For: $_->[1]")->{status}
} [2, '203.0.113.2'], [3, '203.0.113.1'];
"@got" eq '201 429' or die "a second client behind the proxy, then the first again: @got";
--- no_error_log
RDM0607



=== TEST 18: COUNT 0 turns a scope off: no headers, no limit
--- config
RedeemRateLimit register-ip 0 60
--- request
POST /api/register
--- request_json
{"email": "off1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- response_headers
!RateLimit
!RateLimit-Policy



=== TEST 19: endpoints without a limit carry no rate-limit headers
--- request
GET /api/health
--- error_code: 200
--- response_headers
!RateLimit
!RateLimit-Policy



=== TEST 20: apachectl -t: an unknown scope
--- config
RedeemRateLimit redeem-everything 10 60
--- must_die
--- error_log
RedeemRateLimit: unknown scope 'redeem-everything'



=== TEST 21: apachectl -t: a negative count
--- config
RedeemRateLimit redeem-user -1 60
--- must_die
--- error_log
RedeemRateLimit: '-1' is not a whole number from 0 to 1000000



=== TEST 22: apachectl -t: more than one request per millisecond
--- config
RedeemRateLimit login-ip 3000 1
--- must_die
--- error_log
RedeemRateLimit login-ip 3000 1: the period must divide into whole milliseconds



=== TEST 23: apachectl -t: a Redis URL without a port
--- config
RedeemRateLimitStore redis://127.0.0.1
--- must_die
--- error_log
RedeemRateLimitStore takes shm [ENTRIES], redis://HOST:PORT[/DB] [ENTRIES] or unix:///PATH/TO/redis.sock[?db=DB] [ENTRIES]



=== TEST 24: apachectl -t: a Redis socket with a database out of range
--- config
RedeemRateLimitStore unix:///run/redis/redis.sock?db=16
--- must_die
--- error_log
RedeemRateLimitStore unix:///PATH[?db=DB]: DB 0 to 15



=== TEST 25: apachectl -t: a table too small
--- config
RedeemRateLimitStore shm 10
--- must_die
--- error_log
ENTRIES must be a whole number from 64 to 67108864



=== TEST 26: apachectl -t: the store is server-wide, not per virtual host
--- config
<VirtualHost *>
  ServerName other.test
  RedeemRateLimitStore shm 1024
</VirtualHost>
--- must_die
--- error_log
RedeemRateLimitStore cannot occur within <VirtualHost> section



=== TEST 27: a small table (64 entries) flooded by 300 addresses still limits the latest of them, evicting (and counting) the least useful states
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimitStore shm 64
RedeemRateLimit login-ip 1 60
<Location "/metrics">
  SetHandler redeem-metrics
</Location>
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $evictions = metric_value('redeem_ratelimit_evictions_total');
my @first = map {
    api_request('POST', '/api/login', '{}', 'X-Forwarded-For: 10.27.' . int($_ / 256) . '.' . ($_ % 256))->{status}
} 1 .. 300;
my @refused = grep { $_ != 400 } @first;
!@refused or die 'first attempts of fresh addresses refused: ' . scalar(@refused) . "\n";
my $again = api_request('POST', '/api/login', '{}', 'X-Forwarded-For: 10.27.1.44')->{status};
$again == 429 or die "the latest address again: $again\n";
metric_value('redeem_ratelimit_evictions_total') > $evictions or die "300 keys in 64 slots, no eviction counted\n";



=== TEST 26b: apachectl -t: a user and password in the Redis URL (the configuration is world-readable)
--- config
RedeemRateLimitStore redis://limiter:secret@127.0.0.1:6379
--- must_die
--- error_log
no user or password in the URL (a world-readable file); put them in RedeemRateLimitStoreAuthFile



=== TEST 26c: apachectl -t: an IPv6 address without its closing bracket
--- config
RedeemRateLimitStore redis://[::1:6379
--- must_die
--- error_log
RedeemRateLimitStore takes shm [ENTRIES], redis://HOST:PORT[/DB] [ENTRIES] or unix:///PATH/TO/redis.sock[?db=DB] [ENTRIES]



=== TEST 26d: apachectl -t: a Unix socket path that can never be connected to (the root)
--- config
RedeemRateLimitStore unix:///
--- must_die
--- error_log
RedeemRateLimitStore unix:///PATH: PATH must name a socket file, in at most 107 bytes



=== TEST 26e: apachectl -t: ... nor one longer than a socket address holds
--- config eval
"RedeemRateLimitStore unix:///" . ('d' x 110) . "/redis.sock\n"
--- must_die
--- error_log
RedeemRateLimitStore unix:///PATH: PATH must name a socket file, in at most 107 bytes



=== TEST 28: a Redis password file with the host's table as the store
--- config
RedeemRateLimitStoreAuthFile /dev/null
--- must_die
--- error_log
RedeemRateLimitStoreAuthFile needs RedeemRateLimitStore redis://... or unix://...



=== TEST 28b: a Redis timeout with the host's table as the store
--- config
RedeemRateLimitStoreTimeout 200
--- must_die
--- error_log
RedeemRateLimitStoreTimeout needs RedeemRateLimitStore redis://... or unix://...



=== TEST 28c: a Redis timeout out of its bounds (5 to 10000 ms)
--- config
RedeemRateLimitStore redis://127.0.0.1:6379
RedeemRateLimitStoreTimeout 4
--- must_die
--- error_log
RedeemRateLimitStoreTimeout: '4' is not a whole number from 5 to 10000



=== TEST 28d: ... nor in a virtual host: the connections to Redis are the whole server's
--- config
RedeemRateLimitStore redis://127.0.0.1:6379
<VirtualHost *>
  ServerName other.test
  RedeemRateLimitStoreTimeout 200
</VirtualHost>
--- must_die
--- error_log
RedeemRateLimitStoreTimeout cannot occur within <VirtualHost> section



=== TEST 30: a refusal whose token failed (no actor, no row) does not use up its window's audit row: after it, the first refusal of a user from that address still gets its row (RDM0604 logged once, by the first refusal)
--- config
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
RedeemRateLimit redeem-ip 2 60
RedeemRateLimit redeem-user 100 60
--- login: pia
--- request
POST /redeem
--- more_headers
X-Forwarded-For: 192.0.2.177
--- request_json eval
$FORGED
--- error_code: 404
--- check_eval
my $from = 'X-Forwarded-For: 192.0.2.177';
my @statuses = (
    api_request('POST', '/redeem', $FORGED, $from, 'Authorization: Bearer ' . user_token('pia'))->{status},
    api_request('POST', '/redeem', $FORGED, $from, 'Authorization: Bearer not-a-token')->{status},
    api_request('POST', '/redeem', $FORGED, $from, 'Authorization: Bearer ' . user_token('pia'))->{status},
    api_request('POST', '/redeem', $FORGED, $from, 'Authorization: Bearer ' . user_token('pia'))->{status});
"@statuses" eq '404 429 429 429' or die "statuses: @statuses";
log_count(qr/RDM0604: rate limit redeem-ip \(2 per 60 s\) reached by client 192\.0\.2\.177/) == 1
  or die 'RDM0604 not once';
--- db_check
SELECT outcome, count(*), min(client_addr) FROM audit_log WHERE actor_id = $USER_ID_pia GROUP BY 1 ORDER BY 1;
--- db_check_out
invalid_code|2|192.0.2.177
rate_limited|1|192.0.2.177
