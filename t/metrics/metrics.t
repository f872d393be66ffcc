# Operations: the module's counters on mod_status's page and in the
# Prometheus text of the "redeem-metrics" handler (only where SetHandler puts
# it), exact across children, kept across a graceful restart; the version in
# the Server banner and in the start-up line.
use lib 't/lib';
use Test::Redeem;

our $CONF = <<'CONF';
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
ExtendedStatus On
ServerTokens Full
StartServers 3
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 30
MaxSpareThreads 40
MaxRequestWorkers 40
<Location "/server-status">
  SetHandler server-status
</Location>
<Location "/metrics">
  SetHandler redeem-metrics
</Location>
CONF

# A request is counted in log_transaction, after its answer has reached the
# client: the client may ask for /metrics before the child that served it has
# counted it. /metrics itself is not counted, so once every answered request
# is counted the page stops changing: read it until two reads a quarter of a
# second apart agree (at most ten seconds).
sub metrics_body {
    my ($previous, $body);
    for (1 .. 40) {
        my $res = api_request('GET', '/metrics');
        die "metrics: $res->{status}" unless $res->{status} == 200;
        $body = $res->{body};
        return $body if defined $previous && $body eq $previous;
        $previous = $body;
        Time::HiRes::sleep(0.25);
    }
    die "the metrics did not settle in ten seconds:\n$body";
}

sub metric {
    my ($name, $labels) = @_;
    my $body = metrics_body();
    my $re = defined $labels ? qr/^\Q$name\E\{\Q$labels\E\} (\S+)$/m : qr/^\Q$name\E (\S+)$/m;
    return $body =~ $re ? $1 : die "no $name {" . ($labels // '') . "} in:\n$body";
}

default_config($CONF);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the metrics handler answers where SetHandler puts it, in the Prometheus text format
--- request
GET /metrics
--- error_code: 200
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_like
# TYPE redeem_requests_total counter
--- openapi_skip: the metrics handler, not the API



=== TEST 2: thirty health requests at once, across the children: counted exactly
--- request
GET /api/health
--- concurrency: 30
--- error_code_counts
200: 30



=== TEST 3: ... the counter says 30, and the latency histogram's count agrees
--- request
GET /metrics
--- error_code: 200
--- check_eval
my $body = metrics_body();
$body =~ /^redeem_requests_total\{method="GET",path="\/api\/health",class="2xx"\} 30$/m
  or die "health 2xx: " . join("\n", grep { /api\/health/ } split /\n/, $body);
$body =~ /^redeem_request_duration_seconds_count\{method="GET",path="\/api\/health"\} 30$/m
  or die 'histogram count';
$body =~ /^redeem_request_duration_seconds_bucket\{method="GET",path="\/api\/health",le="\+Inf"\} 30$/m
  or die 'the +Inf bucket holds them all';
--- openapi_skip: the metrics handler, not the API



=== TEST 4: server-status shows the module's counters (machine-readable form)
--- request
GET /server-status?auto
--- error_code: 200
--- response_body_like
RedeemRequests GET /api/health: [1-9]\d*
--- openapi_skip: mod_status's page



=== TEST 4b: ... its times in seconds, as their names say and as /metrics shows them (they were microseconds under a name in seconds)
--- request
GET /server-status?auto
--- error_code: 200
--- response_body_like
redeem_db_acquire_wait_seconds_total: \d+\.\d{6}\n
--- openapi_skip: mod_status's page



=== TEST 5: ... and in its HTML page
--- request
GET /server-status
--- error_code: 200
--- response_body_like
<h2>mod_redeem</h2>.*redemptions success
--- openapi_skip: mod_status's page



=== TEST 6: redemption outcomes and refusals are counted
--- login: rita
--- request
POST /redeem
--- request_json
{"card_code": "nope"}
--- error_code: 400
--- check_eval
metric('redeem_redemptions_total', 'outcome="invalid_format"') == 1 or die 'invalid_format';
metric('redeem_requests_total', 'method="POST",path="/redeem",class="4xx"') == 1 or die '4xx';
metric('redeem_db_acquires_total') >= 1 or die 'acquires';



=== TEST 6b: ... a refusal decided before the lookup too (check symbols that do not match: invalid_code), once
--- login: rita
--- request
POST /redeem
--- request_json
{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}
--- error_code: 404
--- check_eval
metric('redeem_redemptions_total', 'outcome="invalid_code"') == 1 or die 'invalid_code: ' . metric('redeem_redemptions_total', 'outcome="invalid_code"');



=== TEST 7: a backend readied for the module is counted once: every pooled backend killed, one request readies exactly one
--- login: rita
--- request
GET /api/profile
--- error_code: 200
--- check_eval
my $before = metric('redeem_db_backends_readied_total');
$before >= 1 or die "no backend counted after a profile: $before";
my $pids = sql(q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                 WHERE datname = current_database() AND usename = 'redeem_app'});
$pids or die 'no pooled backend to kill';
sql("SELECT count(pg_terminate_backend(pid)) FROM unnest('{$pids}'::int[]) AS pid");
# Terminating only signals a backend: wait until every one has gone.
for (my $left = 1, my $tries = 0; $left; $tries++) {
    die 'killed backends still alive after 10 s' if $tries > 200;
    Time::HiRes::sleep(0.05);
    $left = sql("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY('{$pids}'::int[])");
}
my $res = api_request('GET', '/api/profile', undef, 'Authorization: Bearer ' . user_token('rita'));
$res->{status} == 200 or die "profile after the kill: $res->{status}";
my $after = metric('redeem_db_backends_readied_total');
$after == $before + 1 or die "readied before $before, after $after: one request, one new backend";



=== TEST 8: a 429 is counted under its scope
--- config eval
"$CONF\nRedeemRateLimit register-ip 1 60\n"
--- request
POST /api/register
--- request_json
{"email": "m1@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- check_eval
api_request('POST', '/api/register', '{"email":"m2@example.test","password":"Passw0rd123"}')->{status} == 429
  or die 'the second is refused';
metric('redeem_rate_limited_total', 'scope="register-ip"') == 1 or die 'counted';



=== TEST 9: a graceful restart keeps the counters
--- config eval
"$CONF\nRedeemRateLimit register-ip 1 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $before = metric('redeem_requests_total', 'method="GET",path="/api/health",class="2xx"');
graceful_restart();
my $after = metric('redeem_requests_total', 'method="GET",path="/api/health",class="2xx"');
$before >= 1 && $after == $before or die "before $before, after $after";
metric('redeem_rate_limited_total', 'scope="register-ip"') == 1 or die 'the 429 is still counted';



=== TEST 10: the Server banner names the module and its version; the start-up line too
--- request
GET /api/health
--- error_code: 200
--- response_headers_like
Server: mod_redeem/\d+\.\d+\.\d+
--- check_eval
open my $fh, '<', "$ENV{REDEEM_ROOT}/VERSION" or die $!;
chomp(my $version = <$fh>);
response()->{headers} && grep({ $_->[0] eq 'Server' && index($_->[1], "mod_redeem/$version") >= 0 } @{ response()->{headers} })
  or die 'the version of VERSION';
open my $log, '<', var('SERVROOT') . '/error.log' or die $!;
grep { /RDM0008: mod_redeem\/\Q$version\E \(jansson [\d.]+, OpenSSL [\d.]+.*, libpq \d+\.\d+, hiredis [\d.]+, argon2 v13\) loaded/ } <$log>
  or die 'the start-up line';



=== TEST 11: without SetHandler, no metrics: /metrics elsewhere is the API's own 404
--- config
--- request
GET /metrics
--- error_code: 404
--- response_json_exact
{"error": "Not found"}



=== TEST 12: the metrics page refuses other methods with 405 and Allow, and is never sniffed
--- request
POST /metrics
--- error_code: 405
--- response_headers
Allow: GET, HEAD
X-Content-Type-Options: nosniff
--- openapi_skip: the metrics page is not the API



=== TEST 13: ... and its GET carries nosniff too
--- request
GET /metrics
--- error_code: 200
--- response_headers
X-Content-Type-Options: nosniff
Cache-Control: no-store
--- openapi_skip: the metrics page is not the API
