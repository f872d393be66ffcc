# docs/openapi.yaml and its validator, t/lib/Test/Redeem/OpenAPI.pm, without a
# server: the document loads and is sound OpenAPI 3.1 (as far as can be
# checked here), every endpoint is in it, every response follows the API's
# conventions, and the validator accepts responses as the handlers write them
# and refuses broken ones (each refusal proves it can fail).
use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Storable ();
use Test::More;
use Time::HiRes ();

use Test::Redeem::OpenAPI;

my $root = "$FindBin::Bin/..";
my $file = "$root/docs/openapi.yaml";

my $v = eval { Test::Redeem::OpenAPI->new($file) };
ok($v, 'docs/openapi.yaml loads and compiles') or BAIL_OUT("cannot load $file: $@");
my $doc = $v->document;

# ---------------------------------------------------------------- the document

is_deeply([$v->document_errors], [], 'the document is sound OpenAPI 3.1 (structure, $refs, paths, schemas)')
  or diag(join "\n", $v->document_errors);
like($doc->{openapi}, qr/^3\.1\.\d+$/, 'openapi: 3.1.x');

my @endpoints = (
    'POST /api/register', 'POST /api/login', 'GET /api/profile', 'GET /api/users',
    'GET /api/health', 'GET /api/subscription', 'POST /admin/generate-codes',
    'GET /admin/codes', 'POST /redeem', 'GET /subscription/{user_id}',
);
is_deeply([sort map { "$_->[0] $_->[1]" } $v->operations], [sort @endpoints],
          'every endpoint is documented, and nothing else');

{
    my %params = map { $_->{name} => $_ }
      map { $v->deref($_) } @{ $doc->{paths}{'/admin/codes'}{get}{parameters} };
    is_deeply([sort keys %params], [qw(after_id batch_id page per_page used)], 'GET /admin/codes parameters');
    my %users = map { $v->deref($_)->{name} => 1 } @{ $doc->{paths}{'/api/users'}{get}{parameters} };
    is_deeply([sort keys %users], [qw(page per_page)], 'GET /api/users parameters');
    my ($id) = @{ $doc->{paths}{'/subscription/{user_id}'}{get}{parameters} };
    $id = $v->deref($id);
    ok($id->{in} eq 'path' && $id->{required} && $id->{schema}{type} eq 'integer', 'user_id: a required integer path parameter');
    like(join(' ', map { $_->{url} . ' ' . ($_->{description} // '') } @{ $doc->{servers} }),
         qr/RedeemBasePath/, 'servers tell of the RedeemBasePath prefix');
}

# Schemas reachable from a node, $refs followed; calls $cb->($schema, $where).
sub walk_schemas {
    my ($schema, $where, $cb, $seen) = @_;
    $seen ||= {};
    return unless ref $schema eq 'HASH';
    if (defined $schema->{'$ref'}) {
        my $target = $v->deref($schema);
        return walk_schemas($target, $schema->{'$ref'}, $cb, $seen);
    }
    return if $seen->{$schema}++;
    $cb->($schema, $where);
    for my $kw (qw(items not if then else additionalProperties)) {
        walk_schemas($schema->{$kw}, "$where/$kw", $cb, $seen) if ref $schema->{$kw} eq 'HASH';
    }
    for my $kw (qw(allOf anyOf oneOf)) {
        walk_schemas($schema->{$kw}[$_], "$where/$kw/$_", $cb, $seen) for 0 .. $#{ $schema->{$kw} || [] };
    }
    walk_schemas($schema->{properties}{$_}, "$where/properties/$_", $cb, $seen)
      for keys %{ $schema->{properties} || {} };
}

# Every response of every operation, and the answers to unknown paths/methods.
my @responses;
for my $op ($v->operations) {
    my ($method, $path) = @$op;
    my $operation = $doc->{paths}{$path}{ lc $method };
    push @responses, map { [$method, $path, $_, $v->deref($operation->{responses}{$_})] }
      sort keys %{ $operation->{responses} };
}
push @responses, map { ['ANY', '(unmatched)', $_, $v->deref($doc->{'x-unmatched-responses'}{$_})] }
  sort keys %{ $doc->{'x-unmatched-responses'} || {} };
ok(@responses > 60, scalar(@responses) . ' responses documented');

my %rate_limited = map { $_ => 1 } 'POST /api/register', 'POST /api/login', 'POST /redeem';
my %statuses;
my @convention_errors;
for my $r (@responses) {
    my ($method, $path, $status, $response) = @$r;
    my $where = "$method $path $status";
    $statuses{"$method $path"}{$status} = 1;
    my %h = map { $_ => $v->deref($response->{headers}{$_}) } keys %{ $response->{headers} || {} };
    my $need = sub {
        my ($name, $required, $what) = @_;
        if (!$h{$name}) { push @convention_errors, "$where: no $name header"; return }
        push @convention_errors, "$where: $name should " . ($required ? '' : 'not ') . 'be required'
          if !!$h{$name}{required} != !!$required;
        if (defined $what) {
            my $schema = $v->deref($h{$name}{schema});
            push @convention_errors, "$where: $name should be $what"
              unless ($schema->{const} // '') eq $what;
        }
    };
    $need->('Cache-Control', 1, 'no-store');
    $need->('X-Content-Type-Options', 1, 'nosniff');
    $need->('WWW-Authenticate', 1, 'Bearer') if $status eq '401';
    $need->('Retry-After', 1) if $status eq '503' || $status eq '429';
    $need->('Allow', 1) if $status eq '405';
    if ($rate_limited{"$method $path"}) {
        $need->('RateLimit-Policy', $status eq '429');
        $need->('RateLimit', $status eq '429');
    }
    else {
        push @convention_errors, "$where: RateLimit headers on an operation without rate limits"
          if $h{'RateLimit-Policy'} || $h{RateLimit};
    }
    my $schema = $response->{content}{'application/json'}{schema};
    if (!$schema) {
        push @convention_errors, "$where: no application/json body";
        next;
    }
    walk_schemas($schema, $where, sub {
        my ($s, $at) = @_;
        push @convention_errors, "$at: an object schema that is not closed"
          if ($s->{type} // '') eq 'object' && !(JSON::PP::is_bool($s->{additionalProperties})
                                                 && !$s->{additionalProperties});
    });
    # Errors are {"error": string} and nothing else, except health's 503.
    if ($status =~ /^[45]/ && !($path eq '/api/health' && $status eq '503')) {
        my $body = $v->deref($schema);
        push @convention_errors, "$where: not an error body {error}"
          unless join(',', sort keys %{ $body->{properties} || {} }) eq 'error'
              && join(',', @{ $body->{required} || [] }) eq 'error';
    }
}
for my $op (map { "$_->[0] $_->[1]" } $v->operations) {
    push @convention_errors, "$op: no 500" unless $statuses{$op}{500};
    push @convention_errors, "$op: no 503" unless $statuses{$op}{503};
    push @convention_errors, "$op: no 429" if $rate_limited{$op} && !$statuses{$op}{429};
    push @convention_errors, "$op: no 401" if $op !~ m{/api/(?:register|login|health)} && !$statuses{$op}{401};
    if ($op =~ /^POST/) {
        push @convention_errors, "$op: no $_" for grep { !$statuses{$op}{$_} } qw(400 408 413 415);
        my $body = $doc->{paths}{ $op =~ s/^POST //r }{post}{requestBody};
        walk_schemas($body->{content}{'application/json'}{schema}, "$op requestBody", sub {
            my ($s, $at) = @_;
            push @convention_errors, "$at: a request object that is not closed"
              if ($s->{type} // '') eq 'object' && !(JSON::PP::is_bool($s->{additionalProperties})
                                                     && !$s->{additionalProperties});
        });
    }
}
for my $r (@responses) {
    my ($method, $path, $status, $response) = @$r;
    my $schema = $response->{content}{'application/json'}{schema} or next;
    push @convention_errors, "$method $path $status: the fast check cannot compile this body schema"
      unless $v->fast_check($schema);
}
is_deeply(\@convention_errors, [], 'every response: common headers, 401/405/429/503 headers, closed JSON bodies, fast checks')
  or diag(join "\n", @convention_errors);

# The document checks can fail.
{
    my $broken = sub {
        my ($name, $like, $change) = @_;
        my $copy = Storable::dclone($doc);
        $change->($copy);
        my @errors = eval { Test::Redeem::OpenAPI->new($copy)->document_errors };
        @errors = ("new() died: $@") if $@;
        ok(scalar(grep { /$like/ } @errors), "a broken document is refused: $name")
          or diag(@errors ? join("\n", @errors) : 'no error reported');
    };
    $broken->('openapi 3.0', qr{/openapi}, sub { $_[0]{openapi} = '3.0.3' });
    $broken->('a response without description', qr{/paths/~1api~1health/get/responses/200},
              sub { delete $_[0]{paths}{'/api/health'}{get}{responses}{200}{description} });
    $broken->('a misspelt schema keyword', qr{components/schemas/User.*additionalProperty}s,
              sub { $_[0]{components}{schemas}{User}{additionalProperty} = JSON::PP::false });
    $broken->('an unknown type', qr{components/schemas/Id/type},
              sub { $_[0]{components}{schemas}{Id}{type} = 'int' });
    $broken->('a template without its parameter', qr/\{user_id\} has no path parameter/,
              sub { delete $_[0]{paths}{'/subscription/{user_id}'}{get}{parameters} });
    $broken->('a path parameter that is not required', qr{parameters/0},
              sub { $_[0]{paths}{'/subscription/{user_id}'}{get}{parameters}[0]{required} = JSON::PP::false });
    $broken->('an operationId twice', qr/operationId health is used twice/,
              sub { $_[0]{paths}{'/api/profile'}{get}{operationId} = 'health' });
    $broken->('a pattern that does not compile', qr/pattern does not compile/,
              sub { $_[0]{components}{schemas}{Timestamp}{pattern} = '^(\d' });
    $broken->('a required field a closed object cannot hold', qr/required nickname/,
              sub { push @{ $_[0]{components}{schemas}{User}{required} }, 'nickname' });
    $broken->('a $ref to nothing', qr/unresolved \$ref.*NoSuchSchema/,
              sub { $_[0]{components}{schemas}{User}{properties}{id} = { '$ref' => '#/components/schemas/NoSuchSchema' } });
    $broken->('a status code that is not one', qr{responses}, sub {
        my $ok = $_[0]{paths}{'/api/health'}{get}{responses};
        $ok->{'2000'} = $ok->{200};
    });
}

# ---------------------------------------------------------------- real responses

my $TS = '2023-12-01T10:30:00.123456Z';
my $TS2 = '2024-01-01T10:30:00.123456Z';
my $JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIiwidXNlcl9pZCI6MiwiZW1haWwiOiJhbGljZUBleGFtcGxlLnRlc3QiLCJhZG1pbiI6ZmFsc2UsImlhdCI6MTcwMTQyNjYwMCwiZXhwIjoxNzAxNDMwMjAwLCJqdGkiOiJhYmMifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
my $BATCH = '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed';
my @CODES = ('K72WKDDSB7XM-T8DB-YZ5K4CXW', '0123456789AB-CDEF-GHJKMNPQ', 'RSTVWXYZ0123-4567-89ABCDEF');

# What every handler sends (httpd adds Date, Server, Content-Length).
my @COMMON = (
    ['Date', 'Fri, 01 Dec 2023 10:30:00 GMT'], ['Server', 'Apache/2.4.62 (Debian)'],
    ['X-Content-Type-Options', 'nosniff'], ['Cache-Control', 'no-store'],
    ['Content-Length', '42'], ['Content-Type', 'application/json'],
);
my @BEARER = (['WWW-Authenticate', 'Bearer']);
my @RETRY5 = (['Retry-After', '5']);

sub response {
    my ($method, $path, $status, $body, @extra) = @_;
    return (method => $method, path => $path, status => $status, headers => [@COMMON, @extra],
            body => $body);
}

# Each sample goes through the fast checks (which must agree with
# JSON::Validator: 'fast-strict') and through JSON::Validator alone.
sub accepts {
    my ($name, %res) = @_;
    my @errors = map { $v->validate_response(%res, engine => $_) } 'fast-strict', 'json-validator';
    ok(!@errors, "accepts $res{method} $res{path} $res{status}: $name") or diag(join "\n", @errors);
}

sub rejects {
    my ($name, $like, %res) = @_;
    my $ok = 1;
    my @all;
    for my $engine ('fast', 'json-validator') {
        my @errors = $v->validate_response(%res, engine => $engine);
        $ok &&= grep { /$like/ } @errors;
        push @all, map { "[$engine] $_" } @errors ? @errors : ('accepted');
    }
    ok($ok, "rejects $res{method} $res{path} $res{status}: $name") or diag(join "\n", @all);
}

my $user = qq({"id":2,"email":"alice\@example.test","created_at":"$TS"});
my $register = qq({"message":"User registered successfully","user":$user,"access_token":"$JWT","token_type":"Bearer","expires_in":3600});
my $login = qq({"message":"Login successful","user":$user,"access_token":"$JWT","token_type":"Bearer","expires_in":60});
my $users = qq({"users":[{"id":1,"email":"admin\@example.com","created_at":"$TS"},$user],"total":5,"pages":3,"current_page":1,"per_page":2});
my $generated = qq({"message":"Successfully generated 3 redeem codes","count":3,"batch_id":"$BATCH","duration_months":1,"codes":["$CODES[0]","$CODES[1]","$CODES[2]"],"expires_at":null});
my $listed = qq({"id":7,"code":"$CODES[0]","is_used":false,"created_at":"$TS","expires_at":null,"used_at":null,"used_by":null,"batch_id":"$BATCH"});
my $listed_used = qq({"id":8,"code":"$CODES[1]","is_used":true,"created_at":"$TS","expires_at":"2032-03-04T05:06:07.000000Z","used_at":"$TS2","used_by":2,"batch_id":"$BATCH"});
my $codes = qq({"codes":[$listed,$listed_used],"next_after_id":8,"total":150,"pages":75,"current_page":1,"per_page":2});
my $redeemed = qq({"message":"Code redeemed successfully","subscription_extended":true,"new_subscription_expiry":"$TS2","redeemed_at":"$TS"});
my $status_active = qq({"user_id":2,"email":"alice\@example.test","is_subscribed":true,"subscription_status":"active","subscription_expires_at":"$TS2","days_remaining":29,"created_at":"$TS"});
my $status_inactive = qq({"user_id":3,"email":"bob\@example.test","is_subscribed":false,"subscription_status":"inactive","subscription_expires_at":null,"days_remaining":0,"created_at":"$TS"});
my $status_expired = qq({"user_id":3,"email":"bob\@example.test","is_subscribed":false,"subscription_status":"expired","subscription_expires_at":"$TS","days_remaining":0,"created_at":"$TS"});
my $healthy = '{"status":"healthy","message":"User Registration API is running"}';
my $unhealthy = '{"status":"unhealthy","message":"Database unavailable"}';
my $policy = '"redeem-user";q=10;w=60, "redeem-ip";q=120;w=60';

# Accounts
accepts('registered', response('POST', '/api/register', 201, $register));
accepts('a charset parameter on the media type', (response('POST', '/api/register', 201, $register),
        headers => [(grep { $_->[0] ne 'Content-Type' } @COMMON), ['Content-Type', 'application/json; charset=utf-8']]));
rejects('two Content-Type fields', qr{Content-Type 'application/json, text/plain' is not documented},
        response('POST', '/api/register', 201, $register, ['Content-Type', 'text/plain']));
accepts('an unknown field', response('POST', '/api/register', 400, '{"error":"Unknown field: is_admin"}'));
accepts('a long unknown field, cut', response('POST', '/api/register', 400,
        '{"error":"Unknown field: ' . ('k' x 64) . '... (300 characters)"}'));
rejects('a long unknown field whole', qr{does not match},
        response('POST', '/api/register', 400, '{"error":"Unknown field: ' . ('k' x 65) . '"}'));
accepts('malformed JSON', response('POST', '/api/register', 400,
        '{"error":"Malformed JSON: string or \'}\' expected near end of file"}'));
accepts('a wrong type', response('POST', '/api/register', 400, q({"error":"Field 'email' must be a string"})));
accepts('not an object', response('POST', '/api/register', 400, '{"error":"Request body must be a JSON object"}'));
accepts('a bad email', response('POST', '/api/register', 400, '{"error":"Invalid email: must contain exactly one @"}'));
accepts('a short password', response('POST', '/api/register', 400, '{"error":"Password must be at least 8 characters"}'));
accepts('taken', response('POST', '/api/register', 409, '{"error":"Email already registered"}'));
accepts('too large', response('POST', '/api/register', 413, '{"error":"Request body too large"}'));
accepts('not JSON', response('POST', '/api/register', 415, '{"error":"Content-Type must be application/json"}'));
accepts('hashing slots busy', response('POST', '/api/register', 503,
        '{"error":"Service temporarily unavailable"}', ['Retry-After', '1']));
accepts('rate limited', response('POST', '/api/register', 429, '{"error":"Too many requests"}',
        ['Retry-After', '17'], ['RateLimit-Policy', '"register-ip";q=60;w=60'], ['RateLimit', '"register-ip";r=0;t=17']));
accepts('logged in', response('POST', '/api/login', 200, $login));
accepts('logged in, with the rate-limit fields', response('POST', '/api/login', 200, $login,
        ['RateLimit-Policy', '"login-email";q=10;w=60, "login-ip";q=60;w=60'],
        ['RateLimit', '"login-email";r=9;t=60, "login-ip";r=59;t=60']));
accepts('wrong password', response('POST', '/api/login', 401, '{"error":"Invalid email or password"}', @BEARER));
accepts('a missing field', response('POST', '/api/login', 400, '{"error":"Missing field: password"}'));
accepts('the profile', response('GET', '/api/profile', 200, qq({"user":$user})));
accepts('no token', response('GET', '/api/profile', 401, '{"error":"Authentication required"}', @BEARER));
accepts('a bad token', response('GET', '/api/profile', 401, '{"error":"Invalid or expired token"}', @BEARER));
accepts('a failure', response('GET', '/api/profile', 500, '{"error":"Internal server error"}'));
accepts('a page of users', response('GET', '/api/users?page=1&per_page=2', 200, $users));
accepts('a page past the end', response('GET', '/api/users?page=9&per_page=2', 200,
        '{"users":[],"total":5,"pages":3,"current_page":9,"per_page":2}'));
accepts('not admin', response('GET', '/api/users', 403, '{"error":"Admin access required"}'));
accepts('a bad per_page', response('GET', '/api/users?per_page=0', 400, '{"error":"per_page must be an integer from 1 to 500"}'));
accepts('database down', response('GET', '/api/users', 503, '{"error":"Service temporarily unavailable"}', @RETRY5));

# Health
accepts('healthy', response('GET', '/api/health', 200, $healthy));
accepts('unhealthy', response('GET', '/api/health', 503, $unhealthy, @RETRY5));
accepts('HEAD: status and headers, no body', response('HEAD', '/api/health', 200, ''));
accepts('a GET with a broken body', response('GET', '/api/health', 400, '{"error":"Malformed request body"}'));

# Subscriptions
accepts('never subscribed', response('GET', '/api/subscription', 200,
        '{"user_id":2,"email":"alice@example.test","is_subscribed":false,"subscription_expires_at":null}'));
accepts('subscribed', response('GET', '/api/subscription', 200,
        qq({"user_id":2,"email":"alice\@example.test","is_subscribed":true,"subscription_expires_at":"$TS2"})));
accepts('HEAD of the own subscription', response('HEAD', '/api/subscription', 200, ''));
accepts('active', response('GET', '/subscription/2', 200, $status_active));
accepts('inactive', response('GET', '/subscription/3', 200, $status_inactive));
accepts('expired', response('GET', '/subscription/3', 200, $status_expired));
accepts('another id', response('GET', '/subscription/3', 403,
        '{"error":"Access denied. You can only check your own subscription status"}'));
accepts('an unknown id (admin)', response('GET', '/subscription/999', 404, '{"error":"User not found"}'));
accepts('a non-numeric id', response('GET', '/subscription/abc', 400, '{"error":"Invalid user id"}'));

# Codes
accepts('generated', response('POST', '/admin/generate-codes', 201, $generated));
accepts('generated, expiring', response('POST', '/admin/generate-codes', 201,
        $generated =~ s/"expires_at":null/"expires_at":"2032-03-04T05:06:07.000000Z"/r));
accepts('count 0', response('POST', '/admin/generate-codes', 400, '{"error":"count must be an integer from 1 to 100000"}'));
accepts('an unknown field', response('POST', '/admin/generate-codes', 400, '{"error":"Unknown field: batch_id"}'));
accepts('a past expiry', response('POST', '/admin/generate-codes', 400, '{"error":"expires_at must be in the future"}'));
accepts('not admin', response('POST', '/admin/generate-codes', 403, '{"error":"Admin access required"}'));
accepts('a listing', response('GET', '/admin/codes?used=true&per_page=2', 200, $codes));
accepts('nothing generated yet', response('GET', '/admin/codes', 200,
        '{"codes":[],"total":0,"pages":0,"current_page":1,"per_page":50,"next_after_id":null}'));
accepts('a code that does not open (null), its user deleted', response('GET', '/admin/codes', 200,
        qq({"codes":[) . ($listed_used =~ s/"code":"[^"]+"/"code":null/r =~ s/"used_by":2/"used_by":null/r)
        . qq(],"total":1,"pages":1,"current_page":1,"per_page":50,"next_after_id":null})));
accepts('page and after_id', response('GET', '/admin/codes?page=2&after_id=5', 400,
        '{"error":"Use either page or after_id, not both"}'));

# Redemption
accepts('redeemed', response('POST', '/redeem', 200, $redeemed));
accepts('redeemed, with the rate-limit fields', response('POST', '/redeem', 200, $redeemed,
        ['RateLimit-Policy', $policy], ['RateLimit', '"redeem-user";r=9;t=60, "redeem-ip";r=119;t=60']));
accepts('a bad format', response('POST', '/redeem', 400, '{"error":"Invalid code format"}'));
accepts('someone else', response('POST', '/redeem', 403, '{"error":"You can only redeem codes for your own account"}'));
accepts('unknown', response('POST', '/redeem', 404, '{"error":"Invalid redeem code"}'));
accepts('used', response('POST', '/redeem', 409, '{"error":"Code has already been used"}'));
accepts('expired', response('POST', '/redeem', 410, '{"error":"Code has expired"}'));
accepts('rate limited', response('POST', '/redeem', 429, '{"error":"Too many requests"}',
        ['Retry-After', '42'], ['RateLimit-Policy', $policy], ['RateLimit', '"redeem-user";r=0;t=42']));
accepts('database down', response('POST', '/redeem', 503, '{"error":"Service temporarily unavailable"}', @RETRY5));

# Unknown paths and methods
accepts('an unknown path', response('GET', '/api/nope', 404, '{"error":"Not found"}'));
accepts('a trailing segment', response('POST', '/api/register/extra', 404, '{"error":"Not found"}'));
accepts('no id', response('GET', '/subscription/', 404, '{"error":"Not found"}'));
accepts('GET of a POST path', response('GET', '/api/register', 405, '{"error":"Method not allowed"}', ['Allow', 'POST']));
accepts('DELETE of a GET path', response('DELETE', '/api/health', 405, '{"error":"Method not allowed"}',
        ['Allow', 'GET, HEAD']));
accepts('HEAD of a POST path', response('HEAD', '/redeem', 405, '', ['Allow', 'POST']));
accepts('the path as httpd hands it on (%XX, //, ./, a query)', response('GET', '//api/./%68ealth?x=1#y', 200, $healthy));
accepts('an absolute-form request target', response('GET', 'http://127.0.0.1:5000/api/health', 200, $healthy));
accepts('header names in any case', (response('GET', '/api/profile', 401, '{"error":"Authentication required"}'),
        headers => [['content-type', 'application/json'], ['cache-control', 'no-store'],
                    ['x-content-type-options', 'nosniff'], ['www-authenticate', 'Bearer']]));

# Responses captured from the module itself (make run, then the requests of
# this file's __DATA__, one JSON line each: method, path, status, headers, body;
# the 503s with its PostgreSQL stopped).
{
    my $n = 0;
    while (my $line = <DATA>) {
        next unless $line =~ /\S/;
        my $res = JSON::PP->new->decode($line);
        $n++;
        accepts('captured from the module', %$res);
    }
    ok($n >= 30, "$n captured responses");
}

# ---------------------------------------------------------------- broken responses

my $no_token = $register =~ s/,"access_token":"[^"]+"//r;
rejects('a missing field', qr{/access_token: Missing property}, response('POST', '/api/register', 201, $no_token));
rejects('an extra field (a password hash)', qr{/user: Properties not allowed: password_hash},
        response('GET', '/api/profile', 200, qq({"user":{"id":2,"email":"a\@example.test","created_at":"$TS","password_hash":"\$argon2id\$v=19\$x"}})));
rejects('an extra top-level field', qr{Properties not allowed: debug},
        response('GET', '/api/health', 200, '{"status":"healthy","message":"User Registration API is running","debug":1}'));
rejects('a wrong type', qr{/total: Expected integer - got string},
        response('GET', '/api/users', 200, $users =~ s/"total":5/"total":"5"/r));
rejects('a boolean as a string', qr{/subscription_extended},
        response('POST', '/redeem', 200, $redeemed =~ s/"subscription_extended":true/"subscription_extended":"true"/r));
rejects('per_page over 500', qr{/per_page},
        response('GET', '/api/users', 200, $users =~ s/"per_page":2/"per_page":501/r));
rejects('a timestamp without microseconds', qr{/user/created_at: String does not match},
        response('POST', '/api/login', 200, $login =~ s/\Q$TS\E/2023-12-01T10:30:00Z/r));
rejects('a timestamp with an offset', qr{/redeemed_at},
        response('POST', '/redeem', 200, $redeemed =~ s/"redeemed_at":"[^"]+"/"redeemed_at":"2023-12-01T10:30:00.123456+01:00"/r));
rejects('a lowercase code', qr{/codes/1: String does not match},
        response('POST', '/admin/generate-codes', 201, $generated =~ s/\Q$CODES[1]\E/lc $CODES[1]/er));
rejects('a code with an I', qr{/codes/0},
        response('POST', '/admin/generate-codes', 201, $generated =~ s/\Q$CODES[0]\E/K72WKDDSB7XM-T8DB-YZ5K4CXI/r));
rejects('generate-codes without duration_months', qr{/duration_months: Missing property},
        response('POST', '/admin/generate-codes', 201, $generated =~ s/"duration_months":1,//r));
rejects('a listing without next_after_id', qr{/next_after_id: Missing property},
        response('GET', '/admin/codes', 200, $codes =~ s/"next_after_id":8,//r));
rejects('a used code without used_at', qr{/codes/1/used_at},
        response('GET', '/admin/codes', 200, $codes =~ s/"used_at":"\Q$TS2\E"/"used_at":null/r));
rejects('active but not subscribed', qr{/is_subscribed},
        response('GET', '/subscription/2', 200, $status_active =~ s/"is_subscribed":true/"is_subscribed":false/r));
rejects('inactive with an expiry', qr{/subscription_expires_at},
        response('GET', '/subscription/3', 200, $status_inactive =~ s/"subscription_expires_at":null/"subscription_expires_at":"$TS"/r));
rejects('a status outside the enum', qr{/subscription_status},
        response('GET', '/subscription/3', 200, $status_inactive =~ s/"inactive"/"none"/r));
rejects('another message than the contract\'s', qr{/error: Does not match const},
        response('POST', '/api/register', 409, '{"error":"Email taken"}'));
rejects('a 400 message no handler writes (driver text)', qr{/error},
        response('POST', '/redeem', 400, '{"error":"ERROR:  relation \"redeem_codes\" does not exist"}'));
rejects('an error body with an extra field', qr{Properties not allowed: detail},
        response('GET', '/api/profile', 500, '{"error":"Internal server error","detail":"SQLSTATE 42P01"}'));
rejects('the health 503 as a plain error', qr{Properties not allowed: error},
        response('GET', '/api/health', 503, '{"error":"Service temporarily unavailable"}', @RETRY5));
rejects('a body that is not JSON', qr{body is not JSON},
        response('GET', '/api/health', 200, '<html>OK</html>'));
rejects('JSON with trailing bytes', qr{body is not JSON},
        response('GET', '/api/health', 200, "$healthy x"));
rejects('invalid UTF-8', qr{body is not JSON.*UTF-8}, response('GET', '/api/health', 200,
        qq({"status":"healthy","message":"User Registration API is running\xff"})));
rejects('an HTML error page', qr{Content-Type 'text/html; charset=iso-8859-1' is not documented},
        (response('POST', '/api/register', 400, '<!DOCTYPE HTML><title>400 Bad Request</title>'),
         headers => [['Content-Type', 'text/html; charset=iso-8859-1']]));
rejects('no Content-Type', qr{no Content-Type},
        (response('GET', '/api/health', 200, $healthy), headers => [grep { $_->[0] ne 'Content-Type' } @COMMON]));
rejects('an undocumented status', qr{status 201 is not documented for GET /api/health},
        response('GET', '/api/health', 201, $healthy));
rejects('an undocumented status (403 on the profile)', qr{status 403 is not documented for GET /api/profile},
        response('GET', '/api/profile', 403, '{"error":"Admin access required"}'));
rejects('an undocumented status on HEAD', qr{status 418},
        response('HEAD', '/api/health', 418, ''));
rejects('an unknown path answering 200', qr{no path of the document matches},
        response('GET', '/api/nope', 200, $healthy));
rejects('a trailing slash answering 200 (paths match exactly)', qr{no path of the document matches},
        response('GET', '/api/health/', 200, $healthy));
rejects('a documented path with an undocumented method answering 200', qr{method DELETE is not documented},
        response('DELETE', '/api/profile', 200, qq({"user":$user})));
rejects('no nosniff', qr{header X-Content-Type-Options is missing},
        (response('GET', '/api/health', 200, $healthy), headers => [grep { $_->[0] ne 'X-Content-Type-Options' } @COMMON]));
rejects('a cacheable response', qr{header Cache-Control: 'max-age=60'},
        (response('POST', '/api/login', 200, $login),
         headers => [(grep { $_->[0] ne 'Cache-Control' } @COMMON), ['Cache-Control', 'max-age=60']]));
rejects('a 401 without WWW-Authenticate', qr{header WWW-Authenticate is missing},
        response('GET', '/api/profile', 401, '{"error":"Authentication required"}'));
rejects('a 401 with another scheme', qr{header WWW-Authenticate: 'Basic'},
        response('GET', '/api/profile', 401, '{"error":"Authentication required"}', ['WWW-Authenticate', 'Basic']));
rejects('a 503 without Retry-After', qr{header Retry-After is missing},
        response('POST', '/redeem', 503, '{"error":"Service temporarily unavailable"}'));
rejects('a Retry-After that is a date', qr{header Retry-After: .* is not an integer},
        response('GET', '/api/users', 503, '{"error":"Service temporarily unavailable"}',
                 ['Retry-After', 'Fri, 01 Dec 2023 10:30:05 GMT']));
rejects('a 405 without Allow', qr{header Allow is missing},
        response('GET', '/api/register', 405, '{"error":"Method not allowed"}'));
rejects('a 405 whose Allow is not the path\'s methods', qr{header Allow: 'GET, HEAD' does not name exactly POST},
        response('GET', '/redeem', 405, '{"error":"Method not allowed"}', ['Allow', 'GET, HEAD']));
rejects('a 429 without the rate-limit fields', qr{header RateLimit is missing},
        response('POST', '/redeem', 429, '{"error":"Too many requests"}', ['Retry-After', '42'],
                 ['RateLimit-Policy', $policy]));
rejects('a 429 of another message', qr{/error},
        response('POST', '/api/login', 429, '{"error":"Slow down"}', ['Retry-After', '42'],
                 ['RateLimit-Policy', '"login-ip";q=60;w=60'], ['RateLimit', '"login-ip";r=0;t=42']));
rejects('a policy in the draft -08 token syntax', qr{header RateLimit-Policy},
        response('POST', '/redeem', 200, $redeemed, ['RateLimit-Policy', 'redeem-user;q=10;w=60']));
rejects('a policy without its quota', qr{header RateLimit-Policy},
        response('POST', '/redeem', 200, $redeemed, ['RateLimit-Policy', '"redeem-user";w=60']));
rejects('a policy of another endpoint', qr{header RateLimit},
        response('POST', '/api/register', 201, $register, ['RateLimit', '"redeem-user";r=9;t=60']));
rejects('a 404 on an unknown path with another message', qr{/error: Does not match const},
        response('GET', '/api/nope', 404, '{"error":"No such endpoint"}'));

# ---------------------------------------------------------------- speed

{
    my %cases = (
        'a 401' => [response('GET', '/api/profile', 401, '{"error":"Authentication required"}', @BEARER)],
        'a login' => [response('POST', '/api/login', 200, $login)],
        'a page of 50 users' => [response('GET', '/api/users', 200,
            '{"users":[' . join(',', map { qq({"id":$_,"email":"u$_\@example.test","created_at":"$TS"}) } 1 .. 50)
            . '],"total":50,"pages":1,"current_page":1,"per_page":50}')],
        'a page of 50 codes' => [response('GET', '/admin/codes', 200,
            '{"codes":[' . join(',', ($listed) x 50)
            . '],"total":50,"pages":1,"current_page":1,"per_page":50,"next_after_id":null}')],
    );
    for my $name (sort keys %cases) {
        my %res = @{ $cases{$name} };
        my $n = $name =~ /50/ ? 50 : 500;
        my $t0 = Time::HiRes::time();
        my @errors;
        @errors = $v->validate_response(%res) for 1 .. $n;
        my $ms = (Time::HiRes::time() - $t0) * 1000 / $n;
        ok(!@errors, sprintf('speed: %s, %.3f ms a call', $name, $ms)) or diag(join "\n", @errors);
    }
    my $t0 = Time::HiRes::time();
    my $again = Test::Redeem::OpenAPI->new($file);
    my $ms = (Time::HiRes::time() - $t0) * 1000;
    ok($ms < 50, sprintf('a second new() reuses the compiled document (%.2f ms)', $ms));
}

done_testing();

__DATA__
{"body":"{\"status\":\"healthy\",\"message\":\"User Registration API is running\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","65"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/health","status":200}
{"body":"","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","65"],["Connection","close"],["Content-Type","application/json"]],"method":"HEAD","path":"/api/health","status":200}
{"body":"{\"message\":\"User registered successfully\",\"user\":{\"id\":2,\"email\":\"alice@example.test\",\"created_at\":\"2026-11-30T16:16:57.638684Z\"},\"access_token\":\"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhZG1pbiI6ZmFsc2UsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS50ZXN0IiwiZXhwIjoxNzk2MDU5MDE3LCJpYXQiOjE3OTYwNTU0MTcsImp0aSI6IjFlZjI5MWE2OGQ4ZjA5NWRiMjRkMjYzZTE1NzRlNjRjIiwic3ViIjoiMiIsInVzZXJfaWQiOjJ9.gQDQqnfZTSeq2Cuuy8fNoOR2QlKFnR0QrLtd791A74w\",\"token_type\":\"Bearer\",\"expires_in\":3600}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","457"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":201}
{"body":"{\"error\":\"Email already registered\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","36"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":409}
{"body":"{\"error\":\"Unknown field: is_admin\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","35"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":400}
{"body":"{\"error\":\"Malformed JSON: '}' expected near end of file\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","57"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":400}
{"body":"{\"error\":\"Password must be at least 8 characters\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","50"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":400}
{"body":"{\"error\":\"Content-Type must be application/json\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","49"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":415}
{"body":"{\"error\":\"Request body too large\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","34"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/register","status":413}
{"body":"{\"message\":\"Login successful\",\"user\":{\"id\":2,\"email\":\"alice@example.test\",\"created_at\":\"2026-11-30T16:16:57.638684Z\"},\"access_token\":\"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhZG1pbiI6ZmFsc2UsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS50ZXN0IiwiZXhwIjoxNzk2MDU5MDE3LCJpYXQiOjE3OTYwNTU0MTcsImp0aSI6IjZkYzYxNGRlMWVjMzVjMzFhZTExNDVlZDE4NDg1ZDNlIiwic3ViIjoiMiIsInVzZXJfaWQiOjJ9.odJ0f4JmNqOMTz5kREhsWY_2Wr7Ic-CJxU99VOoc0mQ\",\"token_type\":\"Bearer\",\"expires_in\":3600}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","445"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/login","status":200}
{"body":"{\"error\":\"Invalid email or password\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["WWW-Authenticate","Bearer"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","37"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/login","status":401}
{"body":"{\"user\":{\"id\":2,\"email\":\"alice@example.test\",\"created_at\":\"2026-11-30T16:16:57.638684Z\"}}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","89"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/profile","status":200}
{"body":"{\"error\":\"Authentication required\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["WWW-Authenticate","Bearer"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","35"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/profile","status":401}
{"body":"{\"error\":\"Invalid or expired token\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["WWW-Authenticate","Bearer"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","36"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/profile","status":401}
{"body":"{\"error\":\"Admin access required\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","33"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/users","status":403}
{"body":"{\"users\":[{\"id\":1,\"email\":\"admin@example.com\",\"created_at\":\"2026-11-30T16:16:45.352306Z\"},{\"id\":2,\"email\":\"alice@example.test\",\"created_at\":\"2026-11-30T16:16:57.638684Z\"}],\"total\":2,\"pages\":1,\"current_page\":1,\"per_page\":10}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","223"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/users?page=1&per_page=10","status":200}
{"body":"{\"error\":\"per_page must be an integer from 1 to 500\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","53"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/users?per_page=501","status":400}
{"body":"{\"message\":\"Successfully generated 3 redeem codes\",\"count\":3,\"batch_id\":\"262ee72d-35a5-40b0-9bfe-b1a8f2cdf9b4\",\"duration_months\":2,\"codes\":[\"YYXWZSZ7GR70-1D9Z-W2XG9N61\",\"0BH8SDTXXYVD-HTPN-7MTY06PE\",\"6P1FN9XZ7PB9-NC3X-4BYH02SB\"],\"expires_at\":\"2032-03-04T03:06:07.000000Z\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","271"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/admin/generate-codes","status":201}
{"body":"{\"error\":\"count must be an integer from 1 to 100000\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","53"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/admin/generate-codes","status":400}
{"body":"{\"message\":\"Code redeemed successfully\",\"subscription_extended\":true,\"new_subscription_expiry\":\"2027-01-30T16:16:57.678632Z\",\"redeemed_at\":\"2026-11-30T16:16:57.678632Z\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","169"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":200}
{"body":"{\"error\":\"Code has already been used\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","38"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":409}
{"body":"{\"error\":\"Invalid redeem code\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","31"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":404}
{"body":"{\"error\":\"Invalid code format\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","31"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":400}
{"body":"{\"error\":\"You can only redeem codes for your own account\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","58"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":403}
{"body":"{\"codes\":[{\"id\":1,\"code\":\"YYXWZSZ7GR70-1D9Z-W2XG9N61\",\"is_used\":true,\"created_at\":\"2026-11-30T16:16:57.673051Z\",\"expires_at\":\"2032-03-04T03:06:07.000000Z\",\"used_at\":\"2026-11-30T16:16:57.678632Z\",\"used_by\":2,\"batch_id\":\"262ee72d-35a5-40b0-9bfe-b1a8f2cdf9b4\"},{\"id\":2,\"code\":\"0BH8SDTXXYVD-HTPN-7MTY06PE\",\"is_used\":false,\"created_at\":\"2026-11-30T16:16:57.673051Z\",\"expires_at\":\"2032-03-04T03:06:07.000000Z\",\"used_at\":null,\"used_by\":null,\"batch_id\":\"262ee72d-35a5-40b0-9bfe-b1a8f2cdf9b4\"}],\"next_after_id\":2,\"total\":3,\"pages\":2,\"current_page\":1,\"per_page\":2}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","554"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/admin/codes?per_page=2","status":200}
{"body":"{\"error\":\"used must be true or false\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","38"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/admin/codes?used=maybe","status":400}
{"body":"{\"user_id\":2,\"email\":\"alice@example.test\",\"is_subscribed\":true,\"subscription_expires_at\":\"2027-01-30T16:16:57.678632Z\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","119"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/subscription","status":200}
{"body":"{\"user_id\":2,\"email\":\"alice@example.test\",\"is_subscribed\":true,\"subscription_status\":\"active\",\"subscription_expires_at\":\"2027-01-30T16:16:57.678632Z\",\"days_remaining\":60,\"created_at\":\"2026-11-30T16:16:57.638684Z\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","213"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/subscription/2","status":200}
{"body":"{\"error\":\"Access denied. You can only check your own subscription status\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","74"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/subscription/1","status":403}
{"body":"{\"error\":\"User not found\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","26"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/subscription/999999","status":404}
{"body":"{\"error\":\"Invalid user id\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","27"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/subscription/abc","status":400}
{"body":"{\"error\":\"Not found\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","21"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/nope","status":404}
{"body":"{\"error\":\"Method not allowed\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["Allow","POST"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","30"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/register","status":405}
{"body":"{\"error\":\"Method not allowed\"}","headers":[["Date","Mon, 30 Nov 2026 16:16:57 GMT"],["Server","Apache/2.4.71 (Debian)"],["Allow","GET, HEAD"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","30"],["Connection","close"],["Content-Type","application/json"]],"method":"DELETE","path":"/api/health","status":405}
{"body":"{\"status\":\"unhealthy\",\"message\":\"Database unavailable\"}","headers":[["Date","Mon, 30 Nov 2026 16:17:08 GMT"],["Server","Apache/2.4.71 (Debian)"],["Retry-After","5"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","55"],["Connection","close"],["Content-Type","application/json"]],"method":"GET","path":"/api/health","status":503}
{"body":"{\"error\":\"Service temporarily unavailable\"}","headers":[["Date","Mon, 30 Nov 2026 16:17:08 GMT"],["Server","Apache/2.4.71 (Debian)"],["Retry-After","5"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","43"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/api/login","status":503}
{"body":"{\"error\":\"Service temporarily unavailable\"}","headers":[["Date","Mon, 30 Nov 2026 16:17:08 GMT"],["Server","Apache/2.4.71 (Debian)"],["Retry-After","5"],["X-Content-Type-Options","nosniff"],["Cache-Control","no-store"],["Content-Length","43"],["Connection","close"],["Content-Type","application/json"]],"method":"POST","path":"/redeem","status":503}
