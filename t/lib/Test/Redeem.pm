package Test::Redeem;

=head1 NAME

Test::Redeem - data-driven tests of mod_redeem against a private httpd and PostgreSQL

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Redeem;
    run_tests();

    __DATA__

    === TEST 1: register
    --- request
    POST /api/register
    --- request_json
    {"email": "a@example.test", "password": "Passw0rd123"}
    --- error_code: 201
    --- response_json
    {"message": "User registered successfully", "user": {"id": "/^\\d+$/"}}

=head1 DESCRIPTION

In the manner of Test::Nginx::Socket, built on L<Test::Base>. Each C<.t> file
gets its own database C<t_E<lt>nameE<gt>> (a copy of C<$REDEEM_TEMPLATE_DB>),
its own directory C<t/servroot/E<lt>nameE<gt>/> and its own httpd on a free
loopback port, started from C<conf/dev-server.conf>; E<lt>nameE<gt> is the
file's path without C<t/> and C<.t>, with every other character than
C<[a-z0-9_]> turned into C<_> (C<t/account/login.t> gives C<account_login>).
The server and the database go away at the end of the file (the database stays
when C<TEST_REDEEM_KEEP> is set; the directory always stays until the next run).

The environment comes from C<scripts/test.sh> (C<make test>): C<REDEEM_ROOT>,
C<REDEEM_MODULE>, C<PGHOST>/C<PGPORT>/C<PGUSER>/C<PGPASSWORD> (a superuser),
C<REDEEM_APP_USER>, C<REDEEM_APP_PASSWORD>, C<REDEEM_TEMPLATE_DB>,
C<REDEEM_USER>/C<REDEEM_GROUP>. To run one file:

    make build && scripts/test.sh t/account/login.t

With C<REDEEM_ASAN=1> (and C<REDEEM_MODULE> pointing at the C<make asan>
build) httpd runs with libasan preloaded, and any sanitizer report fails the file.

Blocks run in file order, each C<repeat_each()> times in a row. A block runs as:
server (re)started if its C<config> differs from the running one's; users of
C<login> created; C<db_init>; the request built (C<token_eval>, variables;
once per client with C<concurrency>); error-log offset taken; C<$REQUEST_TIME>
taken; request sent; C<save_json>; checks; C<db_check>;
log checks.

=head1 SECTIONS

Text sections are stripped of leading blank lines and trailing whitespace
(Test::Base's C<trim>), and body sections lose their final newline. A section
written C<--- NAME eval> is Perl code run in package C<main> when the block
runs; its value is used byte for byte (no variables, no newline handling).

=head2 Request

=over

=item request

C<METHOD /uri> (optionally C<HTTP/1.0>) on the first line; any further lines
are the body, sent without a Content-Type.

=item request_json

The body, sent as is (it need not be valid JSON) with
C<Content-Type: application/json>.

=item raw_body

The body, sent as is with no Content-Type (use C<eval> for arbitrary bytes).
Only one of C<request> body lines, C<request_json>, C<raw_body> may be given.

=item more_headers

One header per line, C<Name: value>. A name may repeat (all lines are sent).
A name given here replaces the harness's own header of that name (C<Host>,
C<Connection: close>, C<Content-Type>, C<Content-Length>, C<Authorization>);
C<!Name> only removes the harness's header.

=item raw_request

Sent verbatim on a fresh connection instead of C<request>. In plain form each
line is sent with CRLF and an empty line is added, so the section is a complete
request head; with C<eval> the bytes are exactly the code's value.

=item login: NAME

Adds C<Authorization: Bearer TOKEN> for test user NAME. On first use in the
file the user C<NAME@example.test> is registered through C<POST /api/register>
with the password C<$USER_PASSWORD> (or logged in when it already exists) and
the token is cached for the whole file. C<login: admin> logs in with
C<$ADMIN_EMAIL>/C<$ADMIN_PASSWORD>. The cache is not invalidated by
C<db_init>: give a user you delete a name of its own.

=item token_eval

Perl code returning a token string, sent as C<Authorization: Bearer E<lt>itE<gt>>.
See L</HELPERS>.

=item timeout: SECONDS

For the connection and response (default 10).

=item wait: SECONDS

Sleep this long after the response, before the checks.

=item concurrency: N

N forked clients each open their connection, wait for a common start signal,
then send the block's request. Needs C<error_code_counts>; the per-response
checks (C<error_code>, C<response_*>, C<save_json>) are not allowed with it.
Every client's request is built in the parent before any is sent, once per
client, with C<$CLIENT_INDEX> (C<var('CLIENT_INDEX')> in code) set to 0 .. N-1,
so the clients can send different requests, e.g. each a code of its own from
a saved array, as another user:

    --- request_json eval
    my $codes = JSON::PP::decode_json(var('CODES'));   # from save_json CODES=codes
    qq({"card_code": "$codes->[var('CLIENT_INDEX')]"})
    --- token_eval
    user_token('racer' . var('CLIENT_INDEX'))

=back

=head2 Checks (each line or section is one test)

=over

=item error_code: N

The status code.

=item error_code_counts

Lines C<CODE: COUNT>; the statuses of the block's responses (all of them, see
C<concurrency>) must be exactly these (a status not listed fails).

=item response_headers

Lines C<Name: value> (exact; a repeated header compares as its values joined
with C<, >) or C<!Name> (the header must be absent). One test per line.

=item response_headers_like

Lines C<Name: regex>. The header must be present and match.

=item response_json

The response must have C<Content-Type: application/json> and a JSON body that
matches the expected JSON as a deep subset: an object matches when each
expected key exists and matches (other keys are allowed); an array must have
the same length and match element by element; C<null>, C<true>, C<false>,
numbers and strings match only the same JSON type and value (C<1> does not
match C<"1">); an expected string of the form C</regex/> matches a string or a
number the regex matches (write C<\\d> for C<\d> in JSON).

=item response_json_exact

As C<response_json>, but every object must have exactly the expected keys.

=item response_body

The body, exactly (one final newline on either side is ignored).

=item response_body_like, response_body_unlike

A regex (C</s>) the body must (must not) match.

=item check_eval

Perl code (package C<main>) that must return a true value; a C<die> fails the
test with its message. C<response()> is the response: C<status>, C<body>,
C<json> (the decoded body or undef), C<headers> (C<[name, value]> pairs),
C<elapsed> (seconds from the connection's opening to the response's end).
C<json_match($data, $expected, $exact)> compares like C<response_json>
(C<$expected> is JSON text or Perl data, where C<qr//> values are regex
leaves) and dies with the first difference.

=item (every block) openapi

Every response the block received from the module (its request, the
requests of C<api_request> and C<check_eval>, the logins of test users) must
be one that F<docs/openapi.yaml> documents for its path, method and status,
headers and body included (L<Test::Redeem::OpenAPI>): one test per block
that received any. Paths are read relative to the server's
C<RedeemBasePath>; answers outside it, or with C<RedeemEngine Off>, are
httpd's own and not checked. C<--- openapi_skip: REASON> leaves a block out
(for responses httpd itself makes on the module's paths).

=item db_check, db_check_out, db_check_like

C<db_check> is SQL run after the request with C<psql -XAtq> as superuser on
the file's database; its output must equal C<db_check_out> (one final newline
ignored) or match the regex C<db_check_like> (C</m>). A psql error fails it.

=item error_log, no_error_log

Lines that must (must not) appear among the error-log lines written since just
before the block's request: a line written C</regex/> is a regex, any other
line a substring. C<error_log> waits up to C<log_wait: SECONDS> (default 3)
for its lines; C<no_error_log> alone reads after C<log_wait> seconds when
given, else after 0.2 s. One test per line.

=back

=head2 Setup and server

=over

=item db_init

SQL run with psql as superuser before the request (after C<login> users exist).

=item config

Extra httpd configuration, included at the end of C<conf/dev-server.conf>
through C<$REDEEM_EXTRA_CONF>. The server is restarted when a block's config
differs from the running server's (blocks without C<config> have the empty one).

=item must_die

The block's C<config> must make C<apache2 -t> fail (one test) and so httpd
refuse to start (another). C<--- must_die: at start> is for what only a start
can find: C<apache2 -t> may pass, and a foreground start must exit before
answering. The running server is not touched (the attempt uses
C<servroot/must_die/> and another port). Plus C<error_log>/C<no_error_log>
lines matched against httpd's stderr and error log.

=item save_json: NAME=path

Lines C<NAME=path.to.0.field>: store the value at that path of the response
JSON (dot-separated keys, numbers index arrays, an empty path is the whole
document) as variable C<$NAME> for later blocks. Strings and numbers are
stored as they are, anything else as JSON text. A missing path fails the block.

=item ONLY, SKIP

As in Test::Base: run only this block, or skip it.

=back

=head2 Variables

In every section except C<eval> code and C<token_eval>, C<$NAME> and
C<${NAME}> are replaced by a variable's value: C<$TEST_*> environment
variables, variables from C<save_json>, C<$PORT>, C<$SERVROOT>, C<$DB_NAME>,
C<$ADMIN_EMAIL>, C<$ADMIN_PASSWORD>, C<$USER_PASSWORD>, C<$JWT_SECRET>, and
per test user C<$EMAIL_name>, C<$USER_ID_name>, C<$TOKEN_name> (the last two
create the user when needed). C<$CLIENT_INDEX> is the client's number while
the requests of a C<concurrency> block are built (0 in any other block).
C<$REQUEST_TIME> is the time just before the block's request was sent, RFC 3339
UTC with microseconds: rows the request wrote are those stamped at or after it,
e.g. in C<db_check> C<SELECT outcome FROM audit_log WHERE occurred_at E<gt>=
'$REQUEST_TIME'> (PostgreSQL and the harness read the same clock; in
C<db_init> it is still the previous block's). An unknown C<$NAME> is left as
it is; an unknown C<${NAME}> is an error. Perl code reads variables with
C<var('NAME')>.

=head1 FUNCTIONS

C<run_tests()> runs the blocks; unless the file declared a plan it declares
C<no_plan> (through Test::More's C<plan>, as Test::Base's END block wants).
The tests of a block are those listed under L</Checks>; a block that cannot be
set up (server, psql, login, code) gives one failed test instead, as does a
block that checks nothing. Every file adds one test: no crashed child
(C<exit signal>) and no sanitizer report (C<AddressSanitizer>,
C<runtime error:>, an C<asan.*>/C<ubsan.*> file) under its servroot. C<repeat_each(N)>, C<no_shuffle()> (blocks run in
file order unless C<TEST_REDEEM_SHUFFLE=1>), C<add_block_preprocessor(sub {
my $block = shift; ... })>, C<default_config($conf)> (the config of every block
without a config section of its own).

Environment knobs: C<TEST_REDEEM_KEEP>, C<TEST_REDEEM_REPEAT_EACH>,
C<TEST_REDEEM_SHUFFLE>, C<TEST_REDEEM_LOG_LEVEL> (default C<info>).

=head1 HELPERS

For C<token_eval> and C<eval> code: C<jwt_forge(\%header, \%claims, $key)>
encodes a JWT (either part may be a string of raw JSON instead); it is signed
with the HMAC that the header's C<alg> names when that is HS256/384/512 in any
case, otherwise with HS256; with C<$key> undefined it is unsigned (empty third
segment). C<jwt_secret()> is this server's secret, C<jwt_claims('alice')> a
fresh hash of valid claims for a test user (its C<aud> the server's, from the
user's own token), C<site_aud($key_file)> the site's name in tokens (C<aud>) for a code MAC key
file (default the server's), C<jwt_decode($token)> its header
and claims (unverified), C<user_id('alice')>, C<user_token('alice')>, C<now()>
(whole seconds), C<var('NAME')>, C<b64url($bytes)>, and for C<check_eval>
C<response()> and C<json_match()>.
C<api_request($method, $uri, $json_body, @header_lines)> sends one more
request and returns its response hash (with C<json> and C<elapsed> seconds);
C<api_raw_request($bytes)> sends a whole request exactly as given (head and
body; the harness adds no header) and returns the same.
C<sql($query)> runs SQL as C<db_check> does (psql as superuser on the file's
database) and returns its output without the final newline; a psql error dies.
C<run_cmd(\@cmd, $stdin, %env)> runs a command and returns its exit status
and its output (stdout and stderr); C<run_ok> returns the output and dies
unless it exits 0; C<psql_db($db, $sql)> runs SQL as the superuser on
another database. C<client_request_id_config()> is the configuration that takes the request id
from the client's C<X-Request-Id> header. C<sanitizer_env()> is the environment an httpd of the
module needs beyond its settings (the sanitizers' runtime under
C<REDEEM_ASAN>), for a test that runs C<apache2> itself.
C<one_connection_config($db_timeout_ms)> is the configuration of one child
of five threads with one pooled connection and that C<RedeemDBTimeout> (every
request meets the state the one before left).
C<sql_in_background($query)> runs SQL the same way from a process of its own
and returns its pid (for C<waitpid>); C<sql_until($what, $query, $seconds)>
runs C<$query> until it prints C<1> or C<t> (dies after C<$seconds>, 10 by
default); C<hold_lock($table, $mode, $seconds)> holds C<LOCK TABLE $table IN
$mode MODE> for C<$seconds> from a psql of its own and returns its pid once
the lock is granted.
C<subscription_fold_sql($user_id)> is SQL that prints C<t> when that user's
subscription is exactly the codes the user used, each extending it by its
months (of the UTC calendar, at most to the end of 9999) from the later of
its use and the expiry before.
C<statement_sql('SQL_REDEEM')> is the SQL of that macro of
F<mod_redeem/httpd/statements.h>, the C<SQL_> macros it names expanded (to
C<PREPARE> and C<EXPLAIN> a statement as the module sends it).
C<graceful_restart()> sends the file's httpd SIGUSR1 (C<apachectl -k
graceful>) and returns 1 once the new generation's children serve.
Subs defined in the C<.t> file before
C<run_tests()> are callable too (package C<main>).

=cut

use strict;
use warnings;
use Test::Base -base;

use B ();
use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use File::Find ();
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use List::Util ();
use MIME::Base64 qw(encode_base64url decode_base64url);
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(
  run_tests repeat_each no_shuffle add_block_preprocessor default_config
  jwt_forge jwt_secret jwt_claims jwt_decode user_id user_token now var b64url
  response json_match api_request api_request_to api_raw_request sql sql_in_background sql_until hold_lock
  lock_waiters metric_value
  one_connection_config request_in_background request_result burst
  start_second_server stop_second_server redis_cli redis_stop redis_start
  graceful_restart statement_sql subscription_fold_sql run_cmd run_ok psql_db site_aud
  sanitizer_env client_request_id_config
);

use constant {
    ADMIN_EMAIL    => 'admin@example.test',
    ADMIN_PASSWORD => 'AdminPass12345',
    USER_PASSWORD  => 'TestPassw0rd1',
    READY_TIMEOUT  => 15,
    STOP_TIMEOUT   => 10,
    GRACEFUL_STOP_TIMEOUT => 5,
};

my $JSON = JSON::PP->new->utf8->allow_nonref->canonical;

my $RepeatEach = $ENV{TEST_REDEEM_REPEAT_EACH} || 1;
my $NoShuffle  = 0;
my @Preprocessors;

# Per-file state.
my ($MainPid, $Name, $Root, $ServRoot, $DbName, $JwtSecret, $SetUp);
my $Server;        # {pid, port, config} of the running httpd
my $FailedConfig;  # config that failed to start, not retried
my %Vars;          # save_json variables
my %Users;         # name => {token, id, email}
my $RequestTime;   # $REQUEST_TIME: when the block's request was sent
our $ClientIndex = 0;  # $CLIENT_INDEX: which client's request is being built
our $LastResponse;  # for response() in check_eval
# Every exchange of the running block (the block's request, api_request,
# users' logins), validated against docs/openapi.yaml when the block ends.
our ($OpenAPICollect, @OpenAPIExchanges, $OpenAPI);

filters_delay(1);  # sections are filtered per block, just before it runs

# ---------------------------------------------------------------- public

sub repeat_each {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub no_shuffle { $NoShuffle = 1 }

sub add_block_preprocessor { push @Preprocessors, @_ }

# The config of every block of the file that has no config section of its own.
sub default_config {
    my ($conf) = @_;
    add_block_preprocessor(sub {
        my ($block) = @_;
        $block->set_value(config => $conf) unless defined $block->config;
    });
}

sub run_tests {
    # Through Test::More's plan, so that Test::Base's END does not plan again.
    plan('no_plan') unless Test::More->builder->has_plan;
    _setup_file();
    for my $block (_ordered_blocks()) {
        eval { _prepare_block($block); 1 }
          or fail($block->name . ' - block'), diag($@), next;
        for my $rep (1 .. $RepeatEach) {
            my $label = $block->name . ($RepeatEach > 1 ? " (repeat $rep)" : '');
            eval { _run_block($block, $label); 1 }
              or fail("$label - setup"), diag("$label: $@");
        }
    }
    _check_crashes();
    _teardown_file();
}

sub now { return int(CORE::time()) }

sub jwt_secret { return $JwtSecret }

sub b64url { return encode_base64url($_[0]) }

sub var {
    my ($name) = @_;
    my $value = _var_value($name);
    die "unknown variable \$$name\n" unless defined $value;
    return $value;
}

sub response { return $LastResponse }

sub jwt_decode {
    my ($token) = @_;
    my @parts = split /\./, $token // '', -1;
    die "not a JWT: $token\n" unless @parts == 3;
    return map { $JSON->decode(decode_base64url($_)) } @parts[0, 1];
}

sub json_match {
    my ($got, $want, $exact) = @_;
    $want = $JSON->decode($want) unless ref $want;
    my $diff = _json_diff($want, $got, '$', $exact);
    die "$diff\n" if defined $diff;
    return 1;
}

# One request from Perl code: the response hash, with json and elapsed (s).
sub api_request {
    die "no server running\n" unless $Server;
    return api_request_to($Server->{port}, @_);
}

# The same to another port (a second server).
sub api_request_to {
    my ($port, $method, $uri, $body, @headers) = @_;
    my @lines = ("Host: 127.0.0.1:$port", 'Connection: close', @headers);
    push @lines, 'Content-Type: application/json', 'Content-Length: ' . length $body
      if defined $body;
    return _timed_exchange($port,
        "$method $uri HTTP/1.1\r\n" . join('', map { "$_\r\n" } @lines) . "\r\n" . ($body // ''));
}

# A whole request, head and body, sent byte for byte on a connection of its
# own to the file's server (no header is added): the response hash as
# api_request gives it.
sub api_raw_request {
    my ($bytes) = @_;
    die "no server running\n" unless $Server;
    return _timed_exchange($Server->{port}, $bytes);
}

sub _timed_exchange {
    my ($port, $bytes) = @_;
    my $start = Time::HiRes::time();
    my $res = _http_exchange($port, $bytes, 30);
    $res->{elapsed} = Time::HiRes::time() - $start;
    $res->{json} = eval { $JSON->decode($res->{body} // '') };
    return $res;
}

# SQL on the file's database as superuser: psql -XAtq's output, chomped.
sub sql {
    my ($query) = @_;
    my ($rc, $out, $err) = _psql($DbName, $query);
    die "psql failed: $err" if $rc;
    chomp $out;
    return $out;
}

# Runs a command (stdin $input, the environment plus %env): its exit status
# and its stdout and stderr together.
sub run_cmd {
    my ($cmd, $input, %env) = @_;
    my $file = var('SERVROOT') . '/.run_cmd.in';
    open my $fh, '>', $file or die "$file: $!";
    print $fh $input // '';
    close $fh;
    local @ENV{ keys %env } = values %env;
    my $pid = open(my $pipe, '-|') // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', $file or die "$file: $!";
        open STDERR, '>&', \*STDOUT or die "stderr: $!";
        exec { $cmd->[0] } @$cmd or POSIX::_exit(127);
    }
    my $out = do { local $/; <$pipe> } // '';
    close $pipe;
    return ($? >> 8, $out);
}

# The same, its output; dies unless it exits 0.
sub run_ok {
    my ($cmd, $input, %env) = @_;
    my ($status, $out) = run_cmd($cmd, $input, %env);
    die "@$cmd: exit $status: $out\n" if $status != 0;
    return $out;
}

# SQL on another database than the file's, as the superuser: the output, chomped.
sub psql_db {
    my ($db, $sql) = @_;
    my $out = run_ok([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $db ], $sql);
    chomp $out;
    return $out;
}

sub one_connection_config {
    my ($db_timeout_ms) = @_;
    return "StartServers 1\nServerLimit 1\nThreadsPerChild 5\nMaxRequestWorkers 5\n"
      . "MinSpareThreads 1\nMaxSpareThreads 5\nDBDMin 1\nDBDMax 1\nDBDKeep 1\n"
      . "RedeemDBTimeout $db_timeout_ms\n";
}

# Sends a request from a process of its own and returns at once; its
# request_result waits for [status, elapsed seconds, Retry-After or '-'].
sub request_in_background {
    my ($method, $uri, $body, @headers) = @_;
    pipe(my $r, my $w) or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        close $r;
        my $res = api_request($method, $uri, $body, @headers);
        my ($retry) = map { $_->[1] } grep { lc $_->[0] eq 'retry-after' } @{ $res->{headers} || [] };
        syswrite $w, join(' ', $res->{status} // 'none', sprintf('%.3f', $res->{elapsed}), $retry // '-') . "\n";
        POSIX::_exit(0);
    }
    close $w;
    return {pid => $pid, fh => $r};
}

sub request_result {
    my ($sent) = @_;
    my $fh = $sent->{fh};
    my $line = <$fh> // 'none 0 -';
    close $fh;
    waitpid $sent->{pid}, 0;
    return [split ' ', $line];
}

# $n of the same request at once: their request_results.
sub burst {
    my ($n, $method, $uri, @headers) = @_;
    my @sent = map { request_in_background($method, $uri, undef, @headers) } 1 .. $n;
    return map { request_result($_) } @sent;
}

sub sql_in_background {
    my ($query) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        $ENV{PGGSSENCMODE} //= 'disable';
        { exec _psql_binary(), '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $DbName, '-c', $query }
        POSIX::_exit(127);
    }
    return $pid;
}

sub sql_until {
    my ($what, $query, $seconds) = @_;
    $seconds //= 10;
    my $deadline = Time::HiRes::time() + $seconds;
    until (sql($query) =~ /^(?:1|t)$/) {
        die "$what: not within $seconds s\n" if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }
    return 1;
}

sub hold_lock {
    my ($table, $mode, $seconds) = @_;
    my $pid = sql_in_background("BEGIN; LOCK TABLE $table IN $mode MODE; SELECT pg_sleep($seconds); COMMIT");
    my $granted = join('', map { ucfirst lc } split / /, $mode) . 'Lock';
    sql_until("the lock on $table", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
              . " WHERE c.relname = '$table' AND l.mode = '$granted' AND l.granted");
    return $pid;
}

# A counter of the server's metrics page (a location with SetHandler
# redeem-metrics at /metrics), as a number; dies when it is missing. The
# module's own counters are shared by every child and counted before the
# request that counts them is answered (unlike the per-endpoint counters).
sub metric_value {
    my ($name) = @_;
    my $res = api_request('GET', '/metrics');
    die "metrics: $res->{status}" unless $res->{status} == 200;
    return $res->{body} =~ /^\Q$name\E (\d+)$/m ? $1 : die "no $name in:\n$res->{body}";
}

# Waits until $n requests for locks on $table wait.
sub lock_waiters {
    my ($table, $n) = @_;
    sql_until("$n waiting for $table", "SELECT count(*) >= $n FROM pg_locks l JOIN pg_class c"
              . " ON c.oid = l.relation WHERE c.relname = '$table' AND NOT l.granted");
}

# SQL that prints t when user $id's subscription is exactly the codes the
# user used, each extending it by its months from the later of when it was
# used and the expiry before (NULL for a user who used none). A loop over
# the user's codes in order: one pass, however many they are.
sub subscription_fold_sql {
    my ($id) = @_;
    return <<SQL;
CREATE OR REPLACE FUNCTION pg_temp.subscription_fold(uid bigint) RETURNS timestamptz
  LANGUAGE plpgsql AS \$\$
DECLARE
  expires timestamptz;
  code record;
BEGIN
  FOR code IN SELECT used_at, duration_months FROM redeem_codes
               WHERE used_by = uid ORDER BY used_at, id LOOP
    expires := least((greatest(expires, code.used_at) AT TIME ZONE 'UTC'
                      + make_interval(months => code.duration_months)) AT TIME ZONE 'UTC',
                     '9999-12-31 23:59:59.999999+00'::timestamptz);
  END LOOP;
  RETURN expires;
END \$\$;
SELECT pg_temp.subscription_fold($id) IS NOT DISTINCT FROM subscription_expires_at
  FROM users WHERE id = $id;
SQL
}

# The SQL of a statement of mod_redeem/httpd/statements.h (its #define NAME):
# the macro's string literals joined, the SQL_ macros it names expanded.
sub statement_sql {
    my ($name) = @_;
    open my $fh, "<", "$Root/mod_redeem/httpd/statements.h" or die "statements.h: $!\n";
    local $/;
    my $text = <$fh>;
    my ($body) = $text =~ /^#define \Q$name\E\b(.*?)(?:\n\n|\n(?=\S))/ms or die "no $name\n";
    my $sql = '';
    while ($body =~ /"((?:[^"\\]|\\.)*)"|\b(SQL_\w+)\b/g) {
        if (defined $1) { (my $part = $1) =~ s/\\(.)/$1/g; $sql .= $part }
        else { $sql .= statement_sql($2) }
    }
    return $sql;
}

sub user_id    { return _ensure_user($_[0])->{id} }
sub user_token { return _ensure_user($_[0])->{token} }

sub jwt_claims {
    my ($name) = @_;
    my $user = _ensure_user($name);
    my $t = now();
    # The site's name (aud) as the server put it in the user's own token.
    my (undef, $issued) = jwt_decode($user->{token});
    return {
        sub     => "$user->{id}",
        user_id => 0 + $user->{id},
        email   => $user->{email},
        admin   => $name eq 'admin' ? JSON::PP::true : JSON::PP::false,
        iat     => $t,
        exp     => $t + 3600,
        jti     => unpack('H*', _random_bytes(16)),
        (defined $issued->{aud} ? (aud => $issued->{aud}) : ()),
    };
}

# The site's name in its tokens (aud), as mod_redeem derives it from a code
# MAC key file (redeem_auth_audience): the key's pseudonym of a fixed text,
# its first 8 bytes in hex. Default: this file's server's key.
sub site_aud {
    my ($file) = @_;
    $file //= "$ServRoot/code_mac_key";
    open my $fh, '<:raw', $file or die "$file: $!";
    my $text = do { local $/; <$fh> };
    $text =~ s/\r?\n\z//;
    my $key = length($text) % 2 == 0 && $text =~ /\A[0-9a-fA-F]+\z/ ? pack('H*', $text) : $text;
    my $pseudonym_key = hmac_sha256('mod_redeem pseudonym v1', $key);
    return substr(unpack('H*', hmac_sha256('mod_redeem token audience v1', $pseudonym_key)), 0, 16);
}

sub jwt_forge {
    my ($header, $claims, $key) = @_;
    my $encode = sub { ref $_[0] ? $JSON->encode($_[0]) : $_[0] };
    my $input = b64url($encode->($header)) . '.' . b64url($encode->($claims));
    return "$input." unless defined $key;
    my $fields = ref $header ? $header : eval { $JSON->decode($header) };
    my $alg = ref $fields eq 'HASH' && defined $fields->{alg} ? $fields->{alg} : '';
    my %hmac = (HS256 => \&hmac_sha256, HS384 => \&hmac_sha384, HS512 => \&hmac_sha512);
    my $sign = $hmac{uc $alg} // \&hmac_sha256;
    return "$input." . b64url($sign->($input, $key));
}

# ---------------------------------------------------------------- file setup

sub _setup_file {
    $MainPid = $$;
    for my $var (qw(REDEEM_ROOT REDEEM_MODULE REDEEM_TEMPLATE_DB REDEEM_APP_USER
                    REDEEM_APP_PASSWORD PGHOST PGPORT PGUSER PGPASSWORD)) {
        BAIL_OUT("\$$var is not set: run the tests through scripts/test.sh (make test)")
          unless defined $ENV{$var} && length $ENV{$var};
    }
    BAIL_OUT("$ENV{REDEEM_MODULE} does not exist: run make build") unless -f $ENV{REDEEM_MODULE};
    $ENV{REDEEM_USER}  //= getpwuid($>) // 'nobody';
    $ENV{REDEEM_GROUP} //= getgrgid($)) // 'nogroup';

    $Root = $ENV{REDEEM_ROOT};
    $Name = _sanitize($0);
    $DbName = substr("t_$Name", 0, 63);
    $ServRoot = "$Root/t/servroot/$Name";
    remove_tree($ServRoot);
    make_path($ServRoot);
    $JwtSecret = _random_string(48);
    _write_key("$ServRoot/code_mac_key");
    _write_key("$ServRoot/code_enc_key");
    _chown_servroot();
    _create_database();
    $SetUp = 1;
    @SIG{qw(INT TERM)} = (sub { exit 130 }) x 2;
}

# A second httpd on the file's database, keys and secret, with its own
# directory (servroot/second) and port: for what crosses servers. Returns the
# port; stopped by stop_second_server or at the end of the file.
# @wrap, when given, is a command it is started under, which execs httpd in
# the end (t/ratelimit/redis.t gives it a resolv.conf of its own in a mount
# namespace).
my $Second;
sub start_second_server {
    my ($config, @wrap) = @_;
    stop_second_server();
    my $dir = "$ServRoot/second";
    make_path($dir);
    _chown_servroot();
    my $port = _free_port();
    _write_file("$dir/extra.conf", _extra_conf(_expand($config // '')));
    my $pid = _spawn(_httpd_env($dir, $port), "$dir/httpd.stderr", @wrap,
                     _httpd_cmd('-DFOREGROUND'));
    my $status = _wait_ready($pid, $port);
    die "the second httpd did not start ($status):\n" . _read_file("$dir/httpd.stderr")
      . _read_file("$dir/error.log") unless $status eq 'ready';
    $Second = { pid => $pid, port => $port };
    return $port;
}

sub stop_second_server {
    return unless $Second;
    _stop_group($Second->{pid});
    undef $Second;
}

sub graceful_restart {
    open my $fh, '<', var('SERVROOT') . '/httpd.pid' or die "httpd.pid: $!";
    chomp(my $pid = <$fh>);
    my $generations = sub {
        open my $log, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
        return scalar grep { /AH00489: .* resuming normal operations/ } <$log>;
    };
    my $before = $generations->();
    my %old_children = map { $_ => 1 } _children_of($pid);
    kill 'USR1', $pid or die "kill USR1 $pid: $!";
    # The parent logs AH00489 once the new generation is configured (slow
    # under the sanitizers); its children are up a moment later. A child it
    # forks until then is of the old generation: one seen before a look at
    # the log that found no AH00489 is counted with them.
    my $deadline = Time::HiRes::time() + 60;
    while (1) {
        my @children = _children_of($pid);
        last if $generations->() > $before;
        $old_children{$_} = 1 for @children;
        die "no new generation within 60 s of SIGUSR1" if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }
    # The old generation's children stop taking connections once they read
    # the restart, and leave when their own are done: until then one may
    # still answer with the old configuration (seen once, a second after
    # AH00489). Waited for, within a bound (a test may hold a connection).
    $deadline = Time::HiRes::time() + 15;
    while (grep { _alive_child($_, $pid) } keys %old_children) {
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }
    Time::HiRes::sleep(1);
    return 1;
}

# The pids whose parent is $parent, from /proc.
sub _children_of {
    my ($parent) = @_;
    my @children;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @children, $pid if $ppid == $parent;
    }
    return @children;
}

# $child still runs under $parent (not gone, not a zombie, not reused).
sub _alive_child {
    my ($child, $parent) = @_;
    open my $fh, '<', "/proc/$child/stat" or return 0;
    my $line = <$fh> // return 0;
    my ($state, $ppid) = $line =~ /^\d+ \(.*\) (\S+) (\d+)/s or return 0;
    return $state ne 'Z' && $ppid == $parent;
}

# The private Redis of scripts/test.sh (scripts/redis.sh): a command's output,
# and stopping and starting it for the tests of an outage.
sub redis_cli {
    my @args = @_;
    my ($rc, $out, $err) = _capture({}, undef, 'redis-cli', '-h', '127.0.0.1', '-p',
                                    _redis_port(), @args);
    die "redis-cli @args: $err" if $rc;
    chomp $out;
    return $out;
}

sub _redis_port {
    return $ENV{TEST_REDEEM_REDIS_PORT} // die "TEST_REDEEM_REDIS_PORT is not set (scripts/test.sh)\n";
}

sub redis_stop  { _redis_script('stop') }
sub redis_start { _redis_script('start') }

sub _redis_script {
    my ($action) = @_;
    my ($rc, $out, $err) = _capture({}, undef, "$Root/scripts/redis.sh", $action);
    die "scripts/redis.sh $action: $out$err" if $rc;
    return 1;
}

sub _teardown_file {
    return unless $SetUp && $$ == $MainPid;
    $SetUp = 0;
    stop_second_server();
    _stop_server();
    _drop_database() unless $ENV{TEST_REDEEM_KEEP};
}

END { _teardown_file() }

sub _sanitize {
    my ($path) = @_;
    $path =~ s{^(?:.*?/)?t/}{};   # t/account/x.t, ./t/..., /abs/repo/t/...
    $path =~ s{\.t$}{};
    $path = lc $path;
    $path =~ s/[^a-z0-9_]/_/g;
    return $path;
}

# RFC 3339 UTC with microseconds (rounded down), as the API and api_ts() write it.
sub _rfc3339_us {
    my ($t) = @_;
    my $s = POSIX::floor($t);
    my $us = POSIX::floor(($t - $s) * 1e6);
    return POSIX::strftime('%Y-%m-%dT%H:%M:%S', gmtime $s) . sprintf('.%06dZ', $us);
}

sub _random_bytes {
    my ($n) = @_;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $bytes, $n) == $n or die "short read from /dev/urandom";
    return $bytes;
}

sub _random_string {
    my ($n) = @_;
    my @chars = ('a' .. 'z', 'A' .. 'Z', '0' .. '9');
    return join '', map { $chars[$_ % @chars] } unpack('C*', _random_bytes($n));
}

sub _write_key {
    my ($file) = @_;
    _write_file($file, unpack('H*', _random_bytes(32)) . "\n");
    chmod 0600, $file;
}

sub _write_file {
    my ($file, $content) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh $content;
    close $fh or die "$file: $!";
}

sub _read_file {
    my ($file, $offset) = @_;
    open my $fh, '<:raw', $file or return '';
    seek $fh, $offset, 0 if $offset;
    local $/;
    return scalar(<$fh>) // '';
}

# httpd's children run as REDEEM_USER and must be able to use the directory.
sub _chown_servroot {
    return unless $> == 0;
    my $uid = getpwnam($ENV{REDEEM_USER});
    my $gid = getgrnam($ENV{REDEEM_GROUP});
    return unless defined $uid && defined $gid;
    # Key files stay root's, as an operator keeps them (httpd reads them as root).
    File::Find::find({ no_chdir => 1, wanted => sub { chown $uid, $gid, $_ unless /_key$/ } },
                     $ServRoot);
}

# ---------------------------------------------------------------- database

sub _psql {
    my ($db, $sql) = @_;
    my $file = "$ServRoot/.psql.sql";
    _write_file($file, $sql);
    # GSSAPI negotiation costs 0.16 s a connection, and this is loopback.
    my %env = (PGGSSENCMODE => $ENV{PGGSSENCMODE} // 'disable');
    return _capture(\%env, undef, _psql_binary(), '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $db, '-f', $file);
}

# Debian's psql is a Perl wrapper that costs a quarter second a call.
sub _psql_binary {
    my $bin = $ENV{REDEEM_PG_BIN};
    return defined $bin && -x "$bin/psql" ? "$bin/psql" : 'psql';
}

sub _create_database {
    my $template = $ENV{REDEEM_TEMPLATE_DB};
    my ($rc, $out, $err);
    for my $try (1 .. 5) {
        ($rc, $out, $err) = _psql('postgres',
            qq{DROP DATABASE IF EXISTS "$DbName" WITH (FORCE);\n}
            . qq{CREATE DATABASE "$DbName" TEMPLATE "$template";\n});
        return if $rc == 0;
        last unless $err =~ /being accessed by other users/;
        sleep 1;
    }
    BAIL_OUT("cannot create database $DbName: $err");
}

sub _drop_database {
    my ($rc, $out, $err) = _psql('postgres', qq{DROP DATABASE IF EXISTS "$DbName" WITH (FORCE);\n});
    diag("cannot drop database $DbName: $err") if $rc;
}

# ---------------------------------------------------------------- processes

# Runs a command to completion: (exit status, stdout, stderr).
sub _capture {
    my ($env, $stdin, @cmd) = @_;
    my ($out, $err) = ("$ServRoot/.capture.out", "$ServRoot/.capture.err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', $stdin // '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        @ENV{keys %$env} = values %$env;
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $status = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($status, _read_file($out), _read_file($err));
}

# Starts a command in its own process group, output appended to $log.
sub _spawn {
    my ($env, $log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    setpgrp(0, 0);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $log;
    open STDERR, '>&', \*STDOUT;
    @ENV{keys %$env} = values %$env;
    exec { $cmd[0] } @cmd or POSIX::_exit(127);
}

# Stops the httpd started as $pid (its own process group): its children
# first, with graceful-stop (SIGWINCH to the parent alone), then the whole
# group with SIGTERM, and SIGKILL after STOP_TIMEOUT. Not SIGTERM
# at once: an ungraceful stop makes each child's main thread close the
# sockets its busy workers hold (close_worker_sockets in httpd's
# server/mpm/event/event.c), and a worker just then ending a lingering
# close has already destroyed that socket's pool with it: the child dies of
# SIGSEGV ("exit signal Segmentation fault", _check_crashes). A test that
# closes connections httpd answered with "Connection: close" right before
# the server is stopped meets it (t/api/slow_client.t TEST 5: 3 stops in
# 150; a stock httpd without mod_redeem, 37 in 300). A graceful stop never
# takes that path. Children still running after GRACEFUL_STOP_TIMEOUT (a
# request a test left hanging) are stopped as before.
sub _stop_group {
    my ($pid) = @_;
    if (kill 'WINCH', $pid) {
        my $deadline = Time::HiRes::time() + GRACEFUL_STOP_TIMEOUT;
        while (_live_children($pid) && Time::HiRes::time() < $deadline) {
            Time::HiRes::sleep(0.01);
        }
    }
    kill 'TERM', -$pid;
    my $deadline = Time::HiRes::time() + STOP_TIMEOUT;
    while (Time::HiRes::time() < $deadline) {
        waitpid $pid, POSIX::WNOHANG();
        return unless kill 0, -$pid;
        Time::HiRes::sleep(0.05);
    }
    kill 'KILL', -$pid;
    waitpid $pid, 0;
}

# The children of $pid that have not exited (zombies left out: httpd reaps
# them only once a second while it stops gracefully).
sub _live_children {
    my ($pid) = @_;
    opendir my $dir, '/proc' or return;
    my @children;
    for my $p (grep { /^\d+$/ } readdir $dir) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh> // next;
        my ($state, $ppid) = $stat =~ /^.*\) (\S) (\d+) /s or next;
        push @children, $p if $ppid == $pid && $state ne 'Z';
    }
    return @children;
}

sub _free_port {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                     Proto => 'tcp', Listen => 1, ReuseAddr => 1)
      or die "cannot find a free port: $!";
    return $sock->sockport;
}

# ---------------------------------------------------------------- httpd

sub _httpd_env {
    my ($dir, $port) = @_;
    my %env = (
        REDEEM_PORT              => $port,
        REDEEM_RUN_DIR           => $dir,
        REDEEM_LOG_LEVEL         => $ENV{TEST_REDEEM_LOG_LEVEL} // 'info',
        REDEEM_ARGON2            => '1024 1 1',
        REDEEM_EXTRA_CONF        => "$dir/extra.conf",
        REDEEM_TUNING_CONF       => "$dir/no-tuning.conf",
        # gssencmode: GSSAPI negotiation costs 0.16 s a new connection, and this is loopback.
        # The cluster's Unix socket when it has one (scripts/env.sh), else TCP.
        REDEEM_DB_PARAMS         => "host=" . _db_host() . " port=$ENV{PGPORT} dbname=$DbName "
                                  . "user=$ENV{REDEEM_APP_USER} password=$ENV{REDEEM_APP_PASSWORD} "
                                  . "gssencmode=disable",
        JWT_SECRET_KEY           => $JwtSecret,
        REDEEM_JWT_SECRET_FILE   => '/nonexistent',
        ADMIN_EMAIL              => ADMIN_EMAIL,
        ADMIN_PASSWORD           => ADMIN_PASSWORD,
        REDEEM_CODE_MAC_KEY_FILE => "$ServRoot/code_mac_key",
        REDEEM_CODE_ENC_KEY_FILE => "$ServRoot/code_enc_key",
    );
    return {%env, sanitizer_env()};
}

# A configuration that takes the request id from the client's X-Request-Id
# (an operator's SetEnvIf), for the blocks that check what such an id may
# and may not do.
sub client_request_id_config {
    return "LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so\n"
         . "SetEnvIf X-Request-Id \"^([0-9a-f]{32})\$\" UNIQUE_ID=\$1\n";
}

# What an httpd of the module needs in its environment beyond its settings:
# under REDEEM_ASAN, the sanitizer's runtime first (and its reports in the
# server root, where a file's end looks for them); else nothing. For a test
# that runs apache2 itself (apache2 -t -f FILE): run_cmd($cmd, undef, sanitizer_env()).
sub sanitizer_env {
    return () unless $ENV{REDEEM_ASAN};
    chomp(my $lib = `gcc -print-file-name=libasan.so`);
    die "libasan.so not found\n" unless $lib =~ m{/};
    return (LD_PRELOAD    => $lib,
            ASAN_OPTIONS  => "detect_leaks=0:abort_on_error=0:log_path=$ServRoot/asan",
            UBSAN_OPTIONS => "print_stacktrace=1:log_path=$ServRoot/ubsan");
}

sub _db_host {
    my $socket = $ENV{REDEEM_PG_SOCKET};
    return defined $socket && -S "$socket/.s.PGSQL.$ENV{PGPORT}" ? $socket : '127.0.0.1';
}

sub _httpd_cmd {
    return ('/usr/sbin/apache2', '-f', "$Root/conf/dev-server.conf", '-DREDEEM_JWT_FROM_ENV', @_);
}

sub _ensure_server {
    my ($config) = @_;
    if ($Server && waitpid($Server->{pid}, POSIX::WNOHANG()) == $Server->{pid}) {
        my $pid = $Server->{pid};
        undef $Server;
        die "httpd (pid $pid) died before this block (status $?)\n";
    }
    return if $Server && $Server->{config} eq $config;
    _stop_server();
    die "httpd failed to start earlier with this config\n"
      if defined $FailedConfig && $FailedConfig eq $config;
    _start_server($config);
}

# Limits far above what any test sends, so that only the blocks about rate
# limits meet them; a block's own RedeemRateLimit lines come later and win.
# And a database deadline of 15 s rather than 5: on a loaded machine (the
# ASan pass, 30 connections set up at once) setting up a backend can take
# seconds; t/faults/frozen.t, which is about the deadline, sets its own.
sub _extra_conf {
    my ($config) = @_;
    my $limits = join '', map { "RedeemRateLimit $_ 60000 60\n" }
      qw(redeem-user redeem-ip login-email login-ip register-ip);
    return "${limits}RedeemDBTimeout 15000\n$config";
}

sub _start_server {
    my ($config) = @_;
    my $port = _free_port();
    _write_file("$ServRoot/extra.conf", _extra_conf($config));
    my $stderr = "$ServRoot/httpd.stderr";
    my $log_off = -s "$ServRoot/error.log" // 0;
    my $err_off = -s $stderr // 0;
    my $pid = _spawn(_httpd_env($ServRoot, $port), $stderr, _httpd_cmd('-DFOREGROUND'));
    my $status = _wait_ready($pid, $port);
    if ($status eq 'ready') {
        $Server = { pid => $pid, port => $port, config => $config };
        return;
    }
    _stop_group($pid) if $status eq 'timeout';
    $FailedConfig = $config;
    die "httpd did not start ($status)\n--- stderr:\n" . _read_file($stderr, $err_off)
      . "--- error.log:\n" . _read_file("$ServRoot/error.log", $log_off);
}

sub _stop_server {
    return unless $Server;
    _stop_group($Server->{pid});
    undef $Server;
}

# 'ready' once httpd answers any request, 'exited (N)' or 'timeout'. The probe
# asks for a path no route has, so it never touches the database: the first
# database use stays the first request of the block (t/account/admin.t).
sub _wait_ready {
    my ($pid, $port) = @_;
    my $deadline = Time::HiRes::time() + READY_TIMEOUT;
    while (Time::HiRes::time() < $deadline) {
        return 'exited (' . ($? >> 8) . ')' if waitpid($pid, POSIX::WNOHANG()) == $pid;
        my $res = _http_exchange($port, "GET /.ready-probe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        . "Connection: close\r\n\r\n", 2);
        return 'ready' if $res->{status};
        Time::HiRes::sleep(0.1);
    }
    return 'timeout';
}

# ---------------------------------------------------------------- blocks

sub _ordered_blocks {
    my @blocks = blocks();
    return @blocks if $NoShuffle || !$ENV{TEST_REDEEM_SHUFFLE};
    return List::Util::shuffle(@blocks);
}

# Test::Base would run an `eval` filter when the blocks are read; the harness
# evaluates such sections itself, in package main, when the block runs.
sub _prepare_block {
    my ($block) = @_;
    return if $block->is_filtered;
    my $map = $block->_section_map;
    my %eval;
    for my $section (keys %$map) {
        my @filters = split ' ', $map->{$section}{filters} // '';
        $eval{$section} = 1 if grep { $_ eq 'eval' } @filters;
        $map->{$section}{filters} = join ' ', grep { $_ ne 'eval' } @filters;
    }
    $block->run_filters;
    $block->{_redeem_eval} = \%eval;
    $_->($block) for @Preprocessors;
    _validate_block($block);
}

my @SINGLE = qw(error_code response_headers response_headers_like response_json
                response_json_exact response_body response_body_like response_body_unlike
                check_eval save_json);
my @CHECKS = (grep({ $_ ne 'save_json' } @SINGLE),
              qw(error_code_counts db_check error_log no_error_log must_die));

sub _validate_block {
    my ($block) = @_;
    my $name = $block->name;
    my @checks = grep { _has($block, $_) } @CHECKS;
    die "$name: the block checks nothing\n" unless @checks;
    die "$name: db_check needs db_check_out or db_check_like\n"
      if _has($block, 'db_check') && !_has($block, 'db_check_out') && !_has($block, 'db_check_like');
    my @bodies = grep { _has($block, $_) } qw(request_json raw_body);
    die "$name: give only one of request_json, raw_body\n" if @bodies > 1;
    if ((_raw($block, 'concurrency') // 1) > 1) {
        die "$name: concurrency needs error_code_counts\n" unless _has($block, 'error_code_counts');
        my @bad = grep { _has($block, $_) } @SINGLE;
        die "$name: @bad not allowed with concurrency\n" if @bad;
    }
}

sub _has { my ($block, $section) = @_; return defined _raw($block, $section) }

sub _raw {
    my ($block, $section) = @_;
    my $value = $block->$section();
    return $value;
}

# A section's value: eval code run, or text with variables expanded.
sub _section {
    my ($block, $section) = @_;
    my $value = _raw($block, $section);
    return undef unless defined $value;
    return _eval_code($value, $block->name, $section) if $block->{_redeem_eval}{$section};
    return _expand($value);
}

sub _body_section {
    my ($block, $section) = @_;
    my $value = _section($block, $section);
    chomp $value if defined $value && !$block->{_redeem_eval}{$section};
    return $value;
}

sub _eval_code {
    my ($code, $name, $section) = @_;
    my $value = eval "package main; no strict 'vars';\n#line 1 \"$section of $name\"\n$code";
    die "$section: $@" if $@;
    die "$section: the code returned undef\n" unless defined $value;
    return $value;
}

sub _lines {
    my ($text) = @_;
    return grep { /\S/ } split /\n/, $text // '';
}

sub _run_block {
    my ($block, $label) = @_;
    if (_has($block, 'must_die')) {
        _run_must_die($block, $label);
        return;
    }
    _ensure_server(_section($block, 'config') // '');
    @OpenAPIExchanges = ();
    local $OpenAPICollect = 1;
    my $login = _raw($block, 'login');
    _ensure_user($login) if defined $login && length $login;
    if (defined(my $sql = _section($block, 'db_init'))) {
        my ($rc, $out, $err) = _psql($DbName, $sql);
        die "db_init failed: $err" if $rc;
    }
    my $clients = _raw($block, 'concurrency') || 1;
    my @requests = map { local $ClientIndex = $_; _build_request($block) } 0 .. $clients - 1;
    my $timeout = _raw($block, 'timeout') || 10;
    my $log_offset = -s "$ServRoot/error.log" // 0;

    $RequestTime = _rfc3339_us(Time::HiRes::time());
    my $started = Time::HiRes::time();
    my @responses = $clients > 1
      ? _concurrent_exchange(\@requests, $timeout)
      : (_http_exchange($Server->{port}, $requests[0], $timeout));
    $responses[0]{elapsed} //= Time::HiRes::time() - $started if $clients == 1;
    Time::HiRes::sleep(_raw($block, 'wait')) if _raw($block, 'wait');

    _check_response($block, $label, $responses[0]) if $clients == 1;
    _save_json($block, $label, $responses[0]) if _has($block, 'save_json');
    _check_code_counts($block, $label, \@responses) if _has($block, 'error_code_counts');
    _check_db($block, $label) if _has($block, 'db_check');
    _check_log($block, $label, sub { _read_file("$ServRoot/error.log", $log_offset) });
    _check_openapi($block, $label);
}

# Every response of the module the block received must be one that
# docs/openapi.yaml documents (Test::Redeem::OpenAPI): one test per block.
# Paths are taken relative to the server's RedeemBasePath; answers outside it
# (or with RedeemEngine Off) are httpd's, not the module's.
sub _check_openapi {
    my ($block, $label) = @_;
    my @exchanges = splice @OpenAPIExchanges;
    return if _has($block, 'openapi_skip') || !@exchanges;
    my $config = $Server ? $Server->{config} // '' : '';
    # Where the API may be mounted: RedeemBasePath values, <Location>s with
    # RedeemEngine On, and the root unless the server level (unindented lines)
    # moves or stops it; <Location>s with a SetHandler are another module's.
    my (@bases, @others);
    while ($config =~ m{^\s*<Location\s+"?([^">\s]+)"?\s*>(.*?)</Location>}msig) {
        my ($path, $body) = ($1, $2);
        push @others, $path if $body =~ /^\s*SetHandler\b/mi;
        push @bases, $path if $body =~ /^\s*RedeemEngine\s+On\b/mi;
    }
    push @bases, $config =~ /^\s*RedeemBasePath\s+"?([^"\s]+)/mig;
    push @bases, '' unless $config =~ /^(?:RedeemEngine\s+Off|RedeemBasePath)\b/mi;
    @bases = sort { length $b <=> length $a } map { s{/+$}{}r } @bases;
    require Test::Redeem::OpenAPI;
    $OpenAPI ||= Test::Redeem::OpenAPI->new("$Root/docs/openapi.yaml");
    my @errors;
    for my $exchange (@exchanges) {
        my ($bytes, $res) = @$exchange;
        next unless $res->{status};
        my ($method, $uri) = $bytes =~ m{\A(\S+) (\S+) HTTP/} or next;
        next if grep { $uri =~ m{\A\Q$_\E(?:/|\z|\?)} } @others;
        my ($base) = grep { $uri =~ m{\A\Q$_\E(?:/|\z|\?)} } @bases;
        next unless defined $base;
        $uri = substr $uri, length $base;
        push @errors, $OpenAPI->validate_response(method => $method, path => $uri,
            status => $res->{status}, headers => $res->{headers}, body => $res->{body});
    }
    ok(!@errors, "$label - openapi") or diag(join "\n", @errors);
}

# ---------------------------------------------------------------- requests

sub _build_request {
    my ($block) = @_;
    if (defined(my $raw = _section($block, 'raw_request'))) {
        return $raw if $block->{_redeem_eval}{raw_request};
        return join('', map { "$_\r\n" } split /\n/, $raw) . "\r\n";
    }
    my $request = _section($block, 'request');
    die "the block has no request\n" unless defined $request;
    my ($line, $body) = split /\n/, $request, 2;
    my ($method, $uri, $proto) = $line =~ m{^(\S+)\s+(\S+)(?:\s+(HTTP/\d\.\d))?\s*$}
      or die "bad request line: $line\n";
    chomp $body if defined $body && !$block->{_redeem_eval}{request};
    undef $body if defined $body && !length $body;
    die "body lines under request and a request_json or raw_body section\n"
      if defined $body && (_has($block, 'request_json') || _has($block, 'raw_body'));

    my @headers = (['Host', "127.0.0.1:$Server->{port}"], ['Connection', 'close']);
    if (defined(my $json = _body_section($block, 'request_json'))) {
        $body = $json;
        push @headers, ['Content-Type', 'application/json'];
    }
    elsif (defined(my $raw = _body_section($block, 'raw_body'))) {
        $body = $raw;
    }
    if (defined $body) {
        push @headers, ['Content-Length', length $body];
    }
    elsif ($method =~ /^(?:POST|PUT|PATCH)$/) {
        push @headers, ['Content-Length', 0];
    }
    my $token = _bearer_token($block);
    push @headers, ['Authorization', "Bearer $token"] if defined $token;
    @headers = _merge_headers(\@headers, _section($block, 'more_headers'));

    return "$method $uri " . ($proto // 'HTTP/1.1') . "\r\n"
      . join('', map { "$_->[0]: $_->[1]\r\n" } @headers) . "\r\n" . ($body // '');
}

sub _bearer_token {
    my ($block) = @_;
    if (defined(my $code = _raw($block, 'token_eval'))) {
        return _eval_code($code, $block->name, 'token_eval');
    }
    my $login = _raw($block, 'login');
    return defined $login && length $login ? _ensure_user($login)->{token} : undef;
}

# more_headers replaces the harness's headers of the names it mentions.
sub _merge_headers {
    my ($defaults, $text) = @_;
    my (%mentioned, @extra);
    for my $line (_lines($text)) {
        if ($line =~ /^!\s*([^:\s]+)\s*$/) {
            $mentioned{lc $1} = 1;
        }
        elsif ($line =~ /^([^:\s]+):\s?(.*)$/) {
            $mentioned{lc $1} = 1;
            push @extra, [$1, $2];
        }
        else {
            die "bad more_headers line: $line\n";
        }
    }
    return (grep({ !$mentioned{lc $_->[0]} } @$defaults), @extra);
}

# One request on a fresh connection; never dies.
sub _http_exchange {
    my ($port, $bytes, $timeout) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'tcp', Timeout => $timeout)
      or return { error => "connect: $!" };
    return _exchange_on($sock, $bytes, $timeout);
}

sub _exchange_on {
    my ($sock, $bytes, $timeout) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $deadline = Time::HiRes::time() + $timeout;
    my $sel = IO::Select->new($sock);
    my $sent = 0;
    while ($sent < length $bytes) {
        last unless $sel->can_write($deadline - Time::HiRes::time());
        my $n = syswrite($sock, $bytes, 65536, $sent);
        last unless $n;   # the server closed early: read what it said
        $sent += $n;
    }
    my $buf = '';
    my $method = $bytes =~ /^(\S+)/ ? $1 : '';
    while (!_response_complete($buf, $method)) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    close $sock;
    my $res = _parse_response($buf, $method);
    $res->{error} //= 'no response' unless $res->{status};
    push @OpenAPIExchanges, [$bytes, $res] if $OpenAPICollect && $$ == $MainPid;
    return $res;
}

sub _response_complete {
    my ($buf, $method) = @_;
    my $end = index($buf, "\r\n\r\n");
    return 0 if $end < 0;
    my $head = substr($buf, 0, $end);
    my $body = substr($buf, $end + 4);
    my ($status) = $head =~ m{^HTTP/\d\.\d (\d{3})};
    return 1 if $method eq 'HEAD' || ($status // 0) =~ /^(?:1\d\d|204|304)$/;
    return $body =~ /(?:^|\r\n)0\r\n(?:.*\r\n)?\r\n\z/s if $head =~ /^Transfer-Encoding:\s*chunked/mi;
    return length($body) >= $1 if $head =~ /^Content-Length:\s*(\d+)/mi;
    return 0;   # until the server closes
}

sub _parse_response {
    my ($buf, $method) = @_;
    my $end = index($buf, "\r\n\r\n");
    return { raw => $buf } if $end < 0;
    my ($status_line, @lines) = split /\r\n/, substr($buf, 0, $end);
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d{3})} or return { raw => $buf };
    my @headers = map { /^([^:]+):\s*(.*?)\s*$/ ? [$1, $2] : () } @lines;
    my $body = substr($buf, $end + 4);
    my $res = { status => $status, headers => \@headers, raw => $buf };
    $body = _dechunk($body) if defined _header($res, 'Transfer-Encoding')
      && _header($res, 'Transfer-Encoding') =~ /chunked/i;
    $res->{body} = $body;
    return $res;
}

sub _dechunk {
    my ($data) = @_;
    my $out = '';
    while ($data =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $size = hex $1;
        last if $size == 0;
        $out .= substr($data, 0, $size, '');
        $data =~ s/^\r\n//;
    }
    return $out;
}

sub _header {
    my ($res, $name) = @_;
    my @values = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $res->{headers} || [] };
    return @values ? join(', ', @values) : undef;
}

# One client per request: they connect, wait together on a pipe, then send.
sub _concurrent_exchange {
    my ($requests, $timeout) = @_;
    pipe(my $go_r, my $go_w) or die "pipe: $!";
    pipe(my $res_r, my $res_w) or die "pipe: $!";
    my @pids;
    for my $bytes (@$requests) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $go_w;
            close $res_r;
            _concurrent_client($Server->{port}, $bytes, $timeout, $go_r, $res_w);
        }
        push @pids, $pid;
    }
    close $go_r;
    close $res_w;
    Time::HiRes::sleep(0.3);   # every client connected and waiting
    close $go_w;               # the start signal
    my @statuses = map { chomp; +{ status => /^\d+$/ ? $_ : undef, error => $_ } } <$res_r>;
    waitpid $_, 0 for @pids;
    return @statuses;
}

sub _concurrent_client {
    my ($port, $bytes, $timeout, $go, $out) = @_;
    my $line = eval {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                         Proto => 'tcp', Timeout => $timeout)
          or die "connect: $!\n";
        sysread($go, my $x, 1);   # returns at EOF: the parent closed the pipe
        my $res = _exchange_on($sock, $bytes, $timeout);
        $res->{status} // "error: $res->{error}";
    } // "error: $@";
    $line =~ s/\n/ /g;
    syswrite $out, "$line\n";
    POSIX::_exit(0);
}

# ---------------------------------------------------------------- users

sub _ensure_user {
    my ($name) = @_;
    die "no user name\n" unless defined $name && $name =~ /^\w+$/;
    return $Users{$name} if $Users{$name};
    die "no server running to create user $name\n" unless $Server;
    my ($email, $password) = $name eq 'admin'
      ? (ADMIN_EMAIL, ADMIN_PASSWORD) : ("$name\@example.test", USER_PASSWORD);
    my $body = $JSON->encode({ email => $email, password => $password });
    my $res;
    if ($name ne 'admin') {
        $res = _api_post('/api/register', $body);
        undef $res if ($res->{status} // 0) == 409;
    }
    $res //= _api_post('/api/login', $body);
    my $data = eval { $JSON->decode($res->{body}) } // {};
    my ($token, $id) = ($data->{access_token}, $data->{user} && $data->{user}{id});
    die "cannot log in as $name: " . ($res->{status} // $res->{error}) . " " . ($res->{body} // '') . "\n"
      unless $res->{status} && $res->{status} =~ /^20[01]$/ && defined $token && defined $id;
    return $Users{$name} = { token => $token, id => $id, email => $email };
}

sub _api_post {
    my ($uri, $body) = @_;
    return _http_exchange($Server->{port},
        "POST $uri HTTP/1.1\r\nHost: 127.0.0.1:$Server->{port}\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body", 10);
}

# ---------------------------------------------------------------- variables

sub _var_value {
    my ($name) = @_;
    return $Vars{$name} if exists $Vars{$name};
    return $ENV{$name} if $name =~ /^TEST_/;
    my %builtin = (
        PORT => $Server && $Server->{port}, SERVROOT => $ServRoot, DB_NAME => $DbName,
        ADMIN_EMAIL => ADMIN_EMAIL, ADMIN_PASSWORD => ADMIN_PASSWORD,
        USER_PASSWORD => USER_PASSWORD, JWT_SECRET => $JwtSecret,
        CLIENT_INDEX => $ClientIndex, REQUEST_TIME => $RequestTime,
    );
    return $builtin{$name} if exists $builtin{$name};
    return $1 eq 'admin' ? ADMIN_EMAIL : "$1\@example.test" if $name =~ /^EMAIL_(\w+)$/;
    return _ensure_user($1)->{id} if $name =~ /^USER_ID_(\w+)$/;
    return _ensure_user($1)->{token} if $name =~ /^TOKEN_(\w+)$/;
    return undef;
}

sub _expand {
    my ($text) = @_;
    $text =~ s{\$(?:\{(\w+)\}|([A-Za-z_]\w*))}{
        my $value = _var_value($1 // $2);
        die "unknown variable \${$1}\n" if defined $1 && !defined $value;
        $value // $&;
    }ge;
    return $text;
}

sub _save_json {
    my ($block, $label, $res) = @_;
    my $data = eval { $JSON->decode($res->{body} // '') };
    die "save_json: the response is not JSON: " . ($res->{body} // $res->{error}) . "\n"
      unless defined $data || ($res->{body} // '') eq 'null';
    for my $line (_lines(_section($block, 'save_json'))) {
        my ($name, $path) = $line =~ /^\s*(\w+)\s*=\s*(\S*)\s*$/
          or die "bad save_json line: $line\n";
        my $value = $data;
        for my $key (grep { length } split /\./, $path) {
            my $found = ref $value eq 'HASH' ? exists $value->{$key}
                      : ref $value eq 'ARRAY' ? $key =~ /^\d+$/ && $key < @$value : 0;
            die "save_json: no '$path' in the response\n" unless $found;
            $value = ref $value eq 'HASH' ? $value->{$key} : $value->[$key];
        }
        $Vars{$name} = !ref $value && defined $value ? $value : $JSON->encode($value);
    }
}

# ---------------------------------------------------------------- checks

sub _check_response {
    my ($block, $label, $res) = @_;
    diag("$label: $res->{error}") if $res->{error} && !$res->{status};
    if (defined(my $code = _section($block, 'error_code'))) {
        is($res->{status}, $code, "$label - error_code") or _diag_response($res);
    }
    for my $line (_lines(_section($block, 'response_headers'))) {
        _check_header_line($label, $res, $line, 0);
    }
    for my $line (_lines(_section($block, 'response_headers_like'))) {
        _check_header_line($label, $res, $line, 1);
    }
    for my $exact (0, 1) {
        my $section = $exact ? 'response_json_exact' : 'response_json';
        my $want = _section($block, $section);
        _check_json($label, $section, $res, $want, $exact) if defined $want;
    }
    if (defined(my $want = _section($block, 'response_body'))) {
        my ($got, $exp) = ($res->{body} // '', $want);
        chomp $got;
        chomp $exp;
        is($got, $exp, "$label - response_body");
    }
    for my $unlike (0, 1) {
        my $section = $unlike ? 'response_body_unlike' : 'response_body_like';
        my $re = _section($block, $section);
        next unless defined $re;
        chomp $re unless $block->{_redeem_eval}{$section};
        my $check = $unlike ? \&unlike : \&like;
        $check->($res->{body} // '', qr/$re/s, "$label - $section");
    }
    if (defined(my $code = _raw($block, 'check_eval'))) {
        local $LastResponse = $res;
        $res->{json} = eval { $JSON->decode($res->{body} // '') };
        ok(eval { _eval_code($code, $block->name, 'check_eval') }, "$label - check_eval")
          or diag($@ || "check_eval returned false\n"), _diag_response($res);
    }
}

sub _diag_response {
    my ($res) = @_;
    my $text = $res->{raw} // $res->{error} // '';
    $text = substr($text, 0, 2000) . '...' if length $text > 2000;
    diag("response:\n$text");
}

sub _check_header_line {
    my ($label, $res, $line, $like) = @_;
    my $test = "$label - response header $line";
    if (!$like && $line =~ /^!\s*(\S+)\s*$/) {
        my $got = _header($res, $1);
        ok(!defined $got, $test) or diag("$1: $got");
        return;
    }
    my ($name, $want) = $line =~ /^([^:\s]+):\s?(.*)$/ or die "bad header line: $line\n";
    my $got = _header($res, $name);
    if ($like) {
        ok(defined $got && $got =~ /$want/, $test) or diag("$name: " . ($got // '(absent)'));
    }
    else {
        is($got, $want, $test);
    }
}

sub _check_json {
    my ($label, $section, $res, $want_text, $exact) = @_;
    my $test = "$label - $section";
    my $want = eval { $JSON->decode($want_text) };
    die "$section is not valid JSON: $@" unless defined $want || $want_text =~ /^\s*null\s*$/;
    my $ctype = _header($res, 'Content-Type') // '';
    my $got = eval { $JSON->decode($res->{body} // '') };
    my $bad_json = $@;
    my $problem
      = $ctype !~ m{^application/json\s*(?:;|$)}i ? "Content-Type is '$ctype', not application/json"
      : $bad_json ? "the body is not JSON: $bad_json"
      : _json_diff($want, $got, '$', $exact);
    ok(!defined $problem, $test) or diag("$problem\nbody: " . ($res->{body} // $res->{error} // ''));
}

# The JSON type of a decoded value, read before the value is used otherwise
# (using a number as a string would make it look like both).
sub _json_type {
    my ($v) = @_;
    return 'null' unless defined $v;
    return 'bool' if JSON::PP::is_bool($v);
    return 'object' if ref $v eq 'HASH';
    return 'array' if ref $v eq 'ARRAY';
    return 'other' if ref $v;
    my $flags = B::svref_2object(\$v)->FLAGS;
    return ($flags & (B::SVp_IOK | B::SVp_NOK)) && !($flags & B::SVp_POK) ? 'number' : 'string';
}

# undef when $got matches $want, else a description of the first difference.
sub _json_diff {
    my ($want, $got, $path, $exact) = @_;
    my ($wt, $gt) = (_json_type($want), _json_type($got));
    my $show = sub { $JSON->encode($got) };   # only once the types are known
    my $re = ref $want eq 'Regexp' ? $want
           : $wt eq 'string' && $want =~ m{\A/(.*)/\z}s ? $1 : undef;
    if (defined $re) {
        return "$path: expected a string or number matching /$re/, got " . $show->()
          unless $gt eq 'string' || $gt eq 'number';
        return $got =~ /$re/ ? undef : "$path: " . $show->() . " does not match /$re/";
    }
    return "$path: expected $wt " . $JSON->encode($want) . ", got $gt " . $show->() if $wt ne $gt;
    if ($wt eq 'object') {
        for my $key (sort keys %$want) {
            return "$path: missing key \"$key\"" unless exists $got->{$key};
            my $diff = _json_diff($want->{$key}, $got->{$key}, "$path.$key", $exact);
            return $diff if defined $diff;
        }
        my @extra = grep { !exists $want->{$_} } sort keys %$got;
        return "$path: unexpected keys @extra" if $exact && @extra;
        return undef;
    }
    if ($wt eq 'array') {
        return "$path: expected " . @$want . " elements, got " . @$got if @$want != @$got;
        for my $i (0 .. $#$want) {
            my $diff = _json_diff($want->[$i], $got->[$i], "$path\[$i]", $exact);
            return $diff if defined $diff;
        }
        return undef;
    }
    return undef if $wt eq 'null';
    my $same = $wt eq 'string' ? $want eq $got : $wt eq 'bool' ? !!$want == !!$got : $want == $got;
    return $same ? undef : "$path: expected " . $JSON->encode($want) . ", got " . $show->();
}

sub _check_code_counts {
    my ($block, $label, $responses) = @_;
    my %want;
    for my $line (_lines(_section($block, 'error_code_counts'))) {
        my ($code, $count) = $line =~ /^\s*(\d{3})\s*:\s*(\d+)\s*$/
          or die "bad error_code_counts line: $line\n";
        $want{$code} = $count;
    }
    my (%got, @errors);
    for my $res (@$responses) {
        $got{ $res->{status} // 'no response' }++;
        push @errors, $res->{error} if !$res->{status};
    }
    delete $want{$_} for grep { !$want{$_} } keys %want;   # "500: 0" = none
    my $fmt = sub { my $h = shift; join(', ', map { "$_: $h->{$_}" } sort keys %$h) || 'none' };
    is($fmt->(\%got), $fmt->(\%want), "$label - error_code_counts")
      or @errors && diag("client errors: @errors[0 .. List::Util::min(4, $#errors)]");
}

sub _check_db {
    my ($block, $label) = @_;
    my ($rc, $out, $err) = _psql($DbName, _section($block, 'db_check'));
    if ($rc) {
        fail("$label - db_check");
        diag("psql failed: $err");
        return;
    }
    chomp $out;
    if (defined(my $want = _section($block, 'db_check_out'))) {
        chomp $want;
        is($out, $want, "$label - db_check_out");
    }
    if (defined(my $re = _section($block, 'db_check_like'))) {
        chomp $re;
        like($out, qr/$re/m, "$label - db_check_like");
    }
}

sub _log_matcher {
    my ($line) = @_;
    return $line =~ m{\A/(.*)/\z} ? do { my $re = $1; sub { $_[0] =~ /$re/m } }
                                   : sub { index($_[0], $line) >= 0 };
}

# $read returns the log text of this block; error_log lines are waited for.
sub _check_log {
    my ($block, $label, $read) = @_;
    my @must = _lines(_section($block, 'error_log'));
    my @must_not = _lines(_section($block, 'no_error_log'));
    return unless @must || @must_not;
    my $wait = _raw($block, 'log_wait');
    my $deadline = Time::HiRes::time() + ($wait // 3);
    my $text = $read->();
    while (@must && Time::HiRes::time() < $deadline
           && grep { !_log_matcher($_)->($text) } @must) {
        Time::HiRes::sleep(0.1);
        $text = $read->();
    }
    if (!@must) {
        Time::HiRes::sleep($wait // 0.2);
        $text = $read->();
    }
    for my $line (@must) {
        ok(_log_matcher($line)->($text), "$label - error_log $line") or diag("log:\n$text");
    }
    for my $line (@must_not) {
        my @hits = grep { _log_matcher($line)->($_) } split /\n/, $text;
        ok(!@hits, "$label - no_error_log $line") or diag(join "\n", @hits);
    }
}

# ---------------------------------------------------------------- must_die

sub _run_must_die {
    my ($block, $label) = @_;
    my $dir = "$ServRoot/must_die";
    remove_tree($dir);
    make_path($dir);
    _write_file("$dir/extra.conf", _extra_conf(_section($block, 'config') // ''));
    _chown_servroot();
    my $env = _httpd_env($dir, _free_port());

    my ($rc, $out, $err) = _capture($env, undef, _httpd_cmd('-t'));
    my $output = "$out$err";
    my $died = $rc != 0;
    my $when = _section($block, 'must_die') // '';
    $when =~ s/^\s+|\s+$//g;
    die "$label: must_die takes nothing or 'at start', not '$when'\n" if $when ne '' && $when ne 'at start';
    # README promises that apachectl -t refuses every invalid value.
    ok($died, "$label - apache2 -t refuses the configuration") or diag("apache2 -t output:\n$output")
      unless $when;
    if (!$died) {
        my $pid = _spawn($env, "$dir/httpd.stderr", _httpd_cmd('-DFOREGROUND'));
        my $status = _wait_ready($pid, $env->{REDEEM_PORT});
        $died = $status =~ /^exited/;
        _stop_group($pid) unless $died;
        $output .= _read_file("$dir/httpd.stderr") . _read_file("$dir/error.log");
    }
    ok($died, "$label - httpd refuses to start") or diag("httpd output:\n$output");
    _check_log($block, $label, sub { $output });
}

# ---------------------------------------------------------------- crashes

sub _check_crashes {
    my @reports;
    File::Find::find({ no_chdir => 1, wanted => sub {
        return unless -f $_;
        if (m{/(?:asan|ubsan)\.\d+$}) {
            push @reports, "$_:\n" . _read_file($_);
        }
        elsif (m{/(?:error\.log|httpd\.stderr)$}) {
            push @reports, map { "$File::Find::name: $_" }
              grep { /exit signal|AddressSanitizer|LeakSanitizer|runtime error:/ }
              split /\n/, _read_file($_);
        }
    } }, $ServRoot);
    ok(!@reports, "$Name: no crashed child and no sanitizer report")
      or diag(join "\n", @reports[0 .. List::Util::min(20, $#reports)]);
}

1;
