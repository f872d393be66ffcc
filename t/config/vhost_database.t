# Two sites of two databases in one child: a <VirtualHost> that sets only
# mod_dbd's DBDParams inherits every setting of the main server's, yet its
# requests use a database of their own. So must all a child keeps for a
# server: its admin account made in its own database, its own line of user
# reads (a read of the other site's users runs on the other database), and
# its own database's health (the other one failing does not make it answer
# 503). Before each server had state of its own, httpd gave such a vhost the
# main server's configuration itself, and the two shared it all.
use lib 't/lib';
use Test::Redeem;

# The other site's database, made from the template once the file's own is.
sub other_db { return var('DB_NAME') . '_other' }
my $made;
add_block_preprocessor(sub {
    return if $made++;
    psql_db('postgres', qq{DROP DATABASE IF EXISTS "${\ other_db()}" WITH (FORCE)});
    psql_db('postgres', qq{CREATE DATABASE "${\ other_db()}" TEMPLATE "$ENV{REDEEM_TEMPLATE_DB}"});
});

# One child, so that both sites' requests meet in it.
sub sites_config {
    my ($extra) = @_;
    return "StartServers 1\nServerLimit 1\nThreadsPerChild 25\nMinSpareThreads 25\n"
      . "MaxSpareThreads 25\nMaxRequestWorkers 25\n" . ($extra // '')
      . "<VirtualHost *>\n  ServerName 127.0.0.1\n</VirtualHost>\n"
      . "<VirtualHost *>\n  ServerName other.test\n"
      . qq{  DBDParams "\${REDEEM_DB_PARAMS} dbname=${\ other_db()} connect_timeout=2"\n}
      . "</VirtualHost>\n";
}

# A request to the other site: its response, as api_request gives it.
sub other_site {
    my ($method, $uri, $body, @headers) = @_;
    my @lines = ('Host: other.test', 'Connection: close', @headers);
    push @lines, 'Content-Type: application/json', 'Content-Length: ' . length $body
      if defined $body;
    my $start = Time::HiRes::time();
    my $res = api_raw_request("$method $uri HTTP/1.1\r\n" . join('', map { "$_\r\n" } @lines)
                              . "\r\n" . ($body // ''));
    $res->{elapsed} = Time::HiRes::time() - $start;
    return $res;
}

# An account of the other site: its access token.
sub other_user_token {
    my ($name) = @_;
    my $res = other_site('POST', '/api/register',
                         qq({"email": "$name\@example.test", "password": "Passw0rd123"}));
    $res->{status} == 201 or die "register $name on the other site: $res->{status} $res->{body}\n";
    return $res->{json}{access_token};
}

no_shuffle();
run_tests();
psql_db('postgres', qq{DROP DATABASE IF EXISTS "${\ other_db()}" WITH (FORCE)}) if $made;

__DATA__

=== TEST 1: each site's first request that uses the database makes RedeemAdmin's account in its own database, whichever came first in the child
--- config eval
main::sites_config()
--- request
POST /api/login
--- request_json
{"email": "$ADMIN_EMAIL", "password": "$ADMIN_PASSWORD"}
--- error_code: 200
--- check_eval
my $res = other_site('POST', '/api/login', qq({"email": "${\ var('ADMIN_EMAIL')}", "password": "${\ var('ADMIN_PASSWORD')}"}));
$res->{status} == 200 or die "the admin's login on the other site: $res->{status} $res->{body}";
my $admins = psql_db(other_db(), 'SELECT count(*) FROM users WHERE is_admin');
$admins == 1 or die "admins in the other database: $admins";



=== TEST 2: while the main site's user reads wait on its database, a request of the other site is read at once, from its own database
--- config eval
main::sites_config()
--- login: mainuser
--- request
GET /api/profile
--- error_code: 200
--- timeout: 30
--- check_eval
my $token = other_user_token('otheruser');
my $main_token = user_token('mainuser');
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 4);
# The main site's read waits on its lock, and two more requests wait in the
# line behind it.
my @main = map { request_in_background('GET', '/api/profile', undef, "Authorization: Bearer $main_token") } 1 .. 3;
lock_waiters('users', 1);
Time::HiRes::sleep(0.3);
my $res = other_site('GET', '/api/profile', undef, "Authorization: Bearer $token");
my $answered = $res->{elapsed};
my @main_results = map { request_result($_) } @main;
waitpid $locker, 0;
$res->{status} == 200 or die "the other site's profile: $res->{status} $res->{body}";
$res->{json}{user}{email} eq 'otheruser@example.test' or die "the other site's profile: $res->{body}";
$answered < 2 or die "the other site's profile waited $answered s for the main site's reads";
$_->[0] == 200 or die "a main site's profile: @$_" for @main_results;
1



=== TEST 3: the main site's database silent past RedeemDBTimeout makes the child answer 503 at once there, not on the other site
--- config eval
main::sites_config("RedeemDBTimeout 1000\n")
--- login: mainuser2
--- request
GET /api/profile
--- error_code: 200
--- timeout: 30
--- check_eval
my $token = other_user_token('otheruser2');
my $main_token = user_token('mainuser2');
my $locker = hold_lock('users', 'ACCESS EXCLUSIVE', 3);
my $main = api_request('GET', '/api/profile', undef, "Authorization: Bearer $main_token");
$main->{status} == 503 or die "the main site's profile on its locked database: $main->{status}";
my $res = other_site('GET', '/api/profile', undef, "Authorization: Bearer $token");
waitpid $locker, 0;
$res->{status} == 200 or die "the other site's profile after the main site's timeout: $res->{status} $res->{body}";
$res->{json}{user}{email} eq 'otheruser2@example.test' or die "the other site's profile: $res->{body}";
1
