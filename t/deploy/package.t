# The Debian package in this machine's own Apache, deployed by following the
# README's "Deploying into an existing Apache" word for word, then removed.
#
# Apache and a throwaway PostgreSQL run inside a network namespace made here,
# so Debian's `Listen 80` never reaches a real interface. Checked: the default
# site, mod_status and large uploads behave as before; the API answers on the
# example site; an admin made by redeem-admin logs in. Then everything is
# stopped and purged, and /etc/apache2, the module directory and
# /var/lib/apache2 must be as they were found, with nothing left running.
#
# Root only (it installs a package); skipped otherwise, and in the sanitizer
# pass of `make test`. Every shell step it runs must appear verbatim in the
# README section, so the README cannot drift from what is tested.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use Digest::SHA;
use Fcntl qw(:flock);
use File::Basename qw(dirname);
use File::Find;
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);

my $ROOT = abs_path(dirname(__FILE__) . '/../..');
my $PKG = 'libapache2-mod-redeem';
my $NS = "redeem-deploy-$$";
my $PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
my $ADMIN_EMAIL = 'admin@example.com';
my $ADMIN_PASSWORD = 'DeployAdmin42';
my $T0 = time;

plan skip_all => 'needs root: it installs a package into the machine\'s Apache' if $> != 0;
plan skip_all => 'runs once, in the plain pass of make test' if $ENV{REDEEM_ASAN};
for my $tool (qw(/usr/sbin/apache2ctl /usr/sbin/a2enmod /usr/bin/dpkg /usr/bin/psql /usr/bin/argon2)) {
    plan skip_all => "$tool is missing (scripts/deps.sh installs it)" unless -x $tool;
}
my ($PG_BIN) = reverse sort { pg_major($a) <=> pg_major($b) } glob '/usr/lib/postgresql/*/bin';
plan skip_all => 'no PostgreSQL server binaries in /usr/lib/postgresql' unless $PG_BIN && -x "$PG_BIN/initdb";
my $IP = first_executable(qw(/usr/sbin/ip /usr/bin/ip /sbin/ip /bin/ip));
plan skip_all => 'ip (iproute2) is missing' unless $IP;

# One run at a time on a machine: two would share /etc/apache2.
my $LOCK_DIR = -d '/run/lock' ? '/run/lock' : '/tmp';
open my $LOCK, '>>', "$LOCK_DIR/mod-redeem-package-test.lock" or die "lock: $!";
flock($LOCK, LOCK_EX) or die "flock: $!";

# Never touch an installation this test did not make.
if (package_state() ne 'not-installed') {
    plan skip_all => "$PKG is on this machine (" . package_state() . "): not replacing or purging it";
}
for my $path ('/etc/apache2/mods-available/redeem.load', '/etc/apache2/mods-available/redeem.conf',
              '/etc/apache2/sites-available/redeem-example.conf', '/etc/apache2/redeem',
              '/usr/lib/apache2/modules/mod_redeem.so') {
    plan skip_all => "$path exists and is not this test's" if -e $path || -l $path;
}
if (open my $fh, '<', '/var/run/apache2/apache2.pid') {
    my $pid = <$fh> // '';
    chomp $pid;
    plan skip_all => "the machine's Apache is running (pid $pid): the test runs it itself"
        if $pid =~ /^\d+$/ && kill(0, $pid);
}

# The state to come back to.
my @WATCHED = ('/etc/apache2', '/usr/lib/apache2/modules', '/var/lib/apache2');
my %BEFORE = map { $_ => listing($_) } @WATCHED;
my %VOLATILE_BEFORE = map { $_ => entries($_) } '/var/run/apache2', '/var/lock/apache2', '/var/log/apache2';
my %LOG_SIZE = map { $_ => -s $_ } grep { -f } glob '/var/log/apache2/*';
my $RUN_NETNS_EXISTED = -e '/run/netns';
my %ENABLED_BEFORE = map { $_ => module_enabled($_) } qw(dbd unique_id remoteip status);
my %HOST_PORTS_BEFORE = map { $_ => 1 } host_listening_ports();

my $TMP = tempdir('redeem-deploy-XXXXXX', TMPDIR => 1);
my %state = (armed => 1);    # what has been done, for the clean-up
my $cleaned = 0;
$SIG{INT} = $SIG{TERM} = sub { die "interrupted\n" };
END { cleanup() unless $cleaned }

if (!run([$IP, 'netns', 'add', $NS])->{ok}) {
    cleanup();
    plan skip_all => "cannot make a network namespace here (ip netns add $NS failed)";
}
$state{netns} = 1;

my $README = readme_section();
my $sock = "$TMP/sock";
my %pids;

my $ok = eval {
    step_ok('loopback up in the namespace', [$IP, '-n', $NS, 'link', 'set', 'lo', 'up']);

    # The package: built from this tree unless build/deb has one newer than every source.
    my $deb = package_file();
    ok($deb, 'package built') or die "no package\n";
    diag(sprintf 'package ready at %.1f s', time - $T0);

    my %listing_before_install = map { $_ => listing($_) } @WATCHED;
    # Outside the namespace: apt-get may have dependencies to fetch. Nothing
    # in the package starts or reloads a server.
    readme_step('install the package', 'dpkg -i build/deb/libapache2-mod-redeem_*.deb || apt-get install -f -y',
                host => 1);
    $state{installed} = 1;
    is(package_state(), 'installed', "$PKG installed");
    is_deeply(changed_paths($listing_before_install{'/etc/apache2'}, listing('/etc/apache2')),
              [sort map {"/etc/apache2/$_"} 'mods-available/redeem.conf', 'mods-available/redeem.load',
                                          'redeem', 'sites-available/redeem-example.conf'],
              'installing only adds its own files to /etc/apache2 (no site, no module enabled)');
    is(listing('/var/lib/apache2'), $listing_before_install{'/var/lib/apache2'},
       'installing enables nothing (a2query state unchanged)');
    is(mode('/etc/apache2/redeem'), '0700', '/etc/apache2/redeem is 0700');

    # The module alone, before any key exists: loaded everywhere, serving
    # nowhere (RedeemEngine is Off), so the configuration stays valid.
    step_ok('a2enmod redeem alone', ['a2enmod', '-q', 'redeem']);
    $state{enabled} = 1;
    # A guest in the server: the module brings mod_dbd, nothing else.
    for my $module ('unique_id', 'remoteip') {
        ok($ENABLED_BEFORE{$module} || !module_enabled($module), "a2enmod redeem leaves mod_$module as it was");
    }
    step_ok('apachectl -t with the module alone (no keys, no site)', ['apachectl', '-t']);
    step_ok('a2dismod redeem again', ['a2dismod', '-q', 'redeem']);

    start_postgresql();

    # README 2: the database, the login role of our choice, the DBDParams file.
    readme_step('database and db.conf', <<'SH');
umask 077
DB_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$DB_PASSWORD" |
  runuser -u postgres -- redeem-migrate --create-database --role shop_app --password-stdin redeem
cat > /etc/apache2/redeem/db.conf <<EOF
DBDParams "host=127.0.0.1 dbname=redeem user=shop_app password=$DB_PASSWORD connect_timeout=3 options='-c statement_timeout=10000'"
EOF
SH
    push @{ $state{operator_files} }, '/etc/apache2/redeem/db.conf';
    is(psql_postgres("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations", 'redeem'),
       join(',', 1 .. scalar(my @m = glob "$ROOT/sql/[0-9][0-9][0-9]_*.sql")), 'every migration applied');
    is(psql_postgres("SELECT has_column_privilege('shop_app', 'audit_log', 'event', 'INSERT')::text || "
                     . "has_column_privilege('shop_app', 'audit_log', 'occurred_at', 'INSERT')::text || "
                     . "has_table_privilege('shop_app', 'audit_log', 'DELETE')::text", 'redeem'),
       'truefalsefalse', 'the chosen role got the grants (INSERT of the facts but not the time, no DELETE on audit_log)');

    # README 3: the keys.
    readme_step('secrets', <<'SH');
umask 077
for key in jwt_secret code_mac_key code_enc_key; do
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/apache2/redeem/$key
done
SH
    push @{ $state{operator_files} }, map {"/etc/apache2/redeem/$_"} qw(code_enc_key code_mac_key jwt_secret);
    my @secrets = sort @{ $state{operator_files} };
    is(join(' ', map { mode($_) . ':' . owner($_) } @secrets), join(' ', ('0600:0:0') x @secrets),
       'the secrets and db.conf are 0600, root');

    # mod_status as Debian ships it, for the check below.
    if (!$ENABLED_BEFORE{status}) {
        step_ok('mod_status enabled for the test', ['a2enmod', '-q', 'status']);
        $state{status_enabled} = 1;
    }

    # README 4: enable, check, (re)load.
    readme_step('enable and check', "a2enmod redeem remoteip\na2ensite redeem-example\napachectl -t");
    $state{enabled} = 1;
    ok(readme_has('systemctl reload apache2') && readme_has('`apachectl start` when Apache is not running'),
       'README: reload, or start without systemd');
    start_apache();

    # README 5: the admin, password on stdin.
    readme_step('admin account', 'runuser -u postgres -- redeem-admin create admin@example.com',
                stdin => "$ADMIN_PASSWORD\n");
    like(psql_postgres("SELECT password_hash FROM users WHERE email = '$ADMIN_EMAIL' AND is_admin", 'redeem'),
         qr/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+\/]{22}\$[A-Za-z0-9+\/]{43}$/,
         'admin stored with an argon2id hash, 16-byte salt');

    check_default_site();
    check_api();
    1;
};
fail("the deployment ran to the end: $@") unless $ok;

cleanup();
check_machine_restored();
diag(sprintf 'total %.1f s', time - $T0);
done_testing();
exit;

# ---------------------------------------------------------------------------

sub check_default_site {
    my $index = '/var/www/html/index.html';
    my $res = http('GET', 'http://127.0.0.1/');
    is($res->{status}, 200, 'default site: GET / answers 200');
    if (-f $index) {
        ok($res->{body} eq slurp($index), "default site: serves $index as before");
    }
    like($res->{body}, qr/Apache2 Debian Default Page/, 'default site: Debian\'s default page')
        if -f $index && slurp($index) =~ /Apache2 Debian Default Page/;

    $res = http('GET', 'http://127.0.0.1/server-status?auto');
    is($res->{status}, 200, 'default site: /server-status answers 200 (mod_status)');
    like($res->{body}, qr/^ServerVersion: Apache/m, 'default site: /server-status is mod_status\'s');

    $res = http('POST', 'http://127.0.0.1/some/upload', 'x' x 102400,
                {'Content-Type' => 'application/octet-stream'});
    isnt($res->{status}, 413, "default site: a 100 KB POST is not refused with 413 (got $res->{status})");
    ok($res->{status} != 599, 'default site: the 100 KB POST got an answer');

    $res = http('GET', 'http://127.0.0.1/api/health');
    is($res->{status}, 404, 'default site: /api/health is not the API there (404)');
    unlike($res->{body}, qr/healthy/, 'default site: no API answer');
}

sub check_api {
    my $base = 'http://127.0.0.1:8080';
    # mod_status is enabled (above), its /server-status in every site for a
    # local peer: not in the API's, where every client behind a front end
    # on the host is local.
    for my $path ('/server-status?auto', '/server-info?config') {
        my $res = http('GET', "$base$path");
        is($res->{status}, 403, "example site: $path is refused (403)");
        unlike($res->{body}, qr/ServerVersion|DBDParams/, "example site: $path shows nothing of the server");
        like($res->{headers}{'content-type'} // '', qr{^application/json}, "example site: $path answered in JSON");
    }
    my $res = http('GET', "$base/api/health");
    is($res->{status}, 200, 'example site: GET /api/health 200');
    like($res->{headers}{'content-type'} // '', qr{^application/json}, 'example site: JSON');
    is(eval { decode_json($res->{body})->{status} }, 'healthy', 'example site: healthy');

    my $json = {'Content-Type' => 'application/json'};
    $res = http('POST', "$base/api/register", '{"email":"alice@example.com","password":"Passw0rd123"}', $json);
    is($res->{status}, 201, 'register 201') or diag($res->{body});
    my $alice = token(http('POST', "$base/api/login",
                           '{"email":"alice@example.com","password":"Passw0rd123"}', $json));
    ok($alice, 'the new user logs in');
    is(http('GET', "$base/api/users", undef, {Authorization => "Bearer $alice"})->{status}, 403,
       'an ordinary user may not list users');
    # Whoever registered an address through the API is not made an admin by
    # a reset of it: their token would carry the admin's rights.
    my $reset = run(['runuser', '-u', 'postgres', '--', 'redeem-admin', 'reset', 'alice@example.com'],
                    stdin => "Passw0rd456\n", env => {PGHOST => $sock});
    ok(!$reset->{ok} && $reset->{out} =~ /not an admin: reset --promote/,
       'redeem-admin reset refuses to promote an account that is not an admin') or diag($reset->{out});
    is(http('GET', "$base/api/users", undef, {Authorization => "Bearer $alice"})->{status}, 403,
       '... and its holder\'s token is still refused admin routes');

    my $admin = token(http('POST', "$base/api/login",
                           qq({"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}), $json));
    ok($admin, 'the admin made by redeem-admin logs in');
    $res = http('GET', "$base/api/users?page=1&per_page=10", undef, {Authorization => "Bearer $admin"});
    is($res->{status}, 200, 'the admin lists users');
    my $users = eval { decode_json($res->{body}) } || {};
    is($users->{total}, 2, 'two users');
    is(join(' ', sort map { $_->{email} } @{ $users->{users} || [] }), "$ADMIN_EMAIL alice\@example.com",
       'the admin and alice');

    # A reset revokes the admin's earlier tokens; revoke cuts off alice's.
    $reset = run(['runuser', '-u', 'postgres', '--', 'redeem-admin', 'reset', $ADMIN_EMAIL],
                 stdin => "DeployAdmin43\n", env => {PGHOST => $sock});
    ok($reset->{ok} && $reset->{out} =~ /earlier tokens revoked/, 'redeem-admin reset sets the admin\'s password')
        or diag($reset->{out});
    is(http('GET', "$base/api/users", undef, {Authorization => "Bearer $admin"})->{status}, 401,
       '... and the admin\'s token from before the reset gets 401');
    my $renewed = token(http('POST', "$base/api/login",
                             qq({"email":"$ADMIN_EMAIL","password":"DeployAdmin43"}), $json));
    is(http('GET', "$base/api/users", undef, {Authorization => 'Bearer ' . ($renewed // '')})->{status}, 200,
       '... and the new password logs in and lists the users');
    my $revoke = run(['runuser', '-u', 'postgres', '--', 'redeem-admin', 'revoke', 'alice@example.com'],
                     stdin => '', env => {PGHOST => $sock});
    ok($revoke->{ok}, 'redeem-admin revoke alice@example.com') or diag($revoke->{out});
    is(http('GET', "$base/api/profile", undef, {Authorization => "Bearer $alice"})->{status}, 401,
       '... and alice\'s token gets 401');
    my $alice_again = token(http('POST', "$base/api/login",
                                 '{"email":"alice@example.com","password":"Passw0rd123"}', $json));
    is(http('GET', "$base/api/profile", undef, {Authorization => 'Bearer ' . ($alice_again // '')})->{status}, 200,
       '... until she logs in again');
    is(psql_postgres("SELECT string_agg(event, ',' ORDER BY id) FROM audit_log WHERE request_id = 'redeem-admin'", 'redeem'),
       'admin_created,admin_password_reset,tokens_revoked', 'redeem-admin\'s changes are in audit_log');

    $res = http('POST', "$base/api/register", 'x' x 102400, $json);
    is($res->{status}, 413, 'example site: its own LimitRequestBody refuses 100 KB with 413');

    # Behind a front end on loopback, each client counts on its own: the
    # register-ip budget of each address behind it is fresh (59 of 60 left),
    # where the peer's own (127.0.0.1) was spent by alice's registration.
    for my $client ('198.51.100.7', '203.0.113.9') {
        $res = http('POST', "$base/api/register", qq({"email":"from-$client\@example.com","password":"Passw0rd123"}),
                    {%$json, 'X-Forwarded-For' => $client});
        like($res->{headers}{ratelimit} // '', qr/^"register-ip";r=59;/,
             "example site: a client behind the front end ($client) has a register-ip budget of its own");
    }
}

sub token {
    my ($res) = @_;
    return undef unless $res->{status} == 200;
    return eval { decode_json($res->{body})->{access_token} };
}

# ---------------------------------------------------------------------------
# The servers, inside the namespace.

sub start_postgresql {
    my $pg_uid = getpwnam('postgres') // die "no postgres user\n";
    my $pg_gid = (getpwnam('postgres'))[3];
    mkdir $sock or die "$sock: $!";
    chown $pg_uid, $pg_gid, $TMP, $sock or die "chown: $!";
    step_ok('initdb', ['runuser', '-u', 'postgres', '--', "$PG_BIN/initdb", '-D', "$TMP/data", '-U', 'postgres',
                       '--auth-local=peer', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '-N']);
    open my $conf, '>>', "$TMP/data/postgresql.conf" or die $!;
    print $conf "listen_addresses = '127.0.0.1'\nport = 5432\nunix_socket_directories = '$sock'\n",
        "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
    close $conf;
    $state{pg} = 1;
    step_ok('PostgreSQL started in the namespace',
            [$IP, 'netns', 'exec', $NS, 'runuser', '-u', 'postgres', '--', "$PG_BIN/pg_ctl", '-D', "$TMP/data",
             '-l', "$TMP/postgresql.log", '-w', '-t', '30', 'start']);
    $pids{postgres} = process_id(first_line("$TMP/data/postmaster.pid"));
}

sub stop_postgresql {
    return unless $state{pg} && -f "$TMP/data/postmaster.pid";
    run([$IP, 'netns', 'exec', $NS, 'runuser', '-u', 'postgres', '--', "$PG_BIN/pg_ctl", '-D', "$TMP/data",
         '-m', 'fast', '-w', '-t', '30', 'stop']);
}

sub start_apache {
    ok(!grep({ $_ == 8080 } netns_listening_ports()), 'port 8080 is free in the namespace');
    $state{apache} = 1;
    # apachectl hands `start` to systemd when systemd is PID 1; this Apache must
    # stay in the namespace, so then it is told it is systemd's already.
    my %env = readlink('/proc/1/exe') && readlink('/proc/1/exe') =~ /systemd/
        ? (APACHE_STARTED_BY_SYSTEMD => 'true') : ();
    step_ok('apachectl start in the namespace', [$IP, 'netns', 'exec', $NS, 'apachectl', 'start'], env => \%env);
    my $deadline = time + 15;
    my $res;
    do { sleep 0.1; $res = http('GET', 'http://127.0.0.1:8080/api/health') }
        until $res->{status} != 599 || time > $deadline;
    $pids{apache} = process_id(first_line('/var/run/apache2/apache2.pid'));
    ok($pids{apache}, 'Apache is running (pid file)');
}

sub stop_apache {
    return unless $state{apache};
    my $pid = process_id(first_line('/var/run/apache2/apache2.pid')) || $pids{apache};
    run([$IP, 'netns', 'exec', $NS, 'apachectl', 'stop']);
    wait_gone($pid, 10) if $pid;
}

# ---------------------------------------------------------------------------
# Clean-up: runs once, whatever happened (END covers die and signals).

sub cleanup {
    return if $cleaned++ || !$state{armed};
    my @log;
    my $try = sub { my ($what, $code) = @_; eval { $code->(); 1 } or push @log, "$what: $@" };
    if (!$ok && $state{apache}) {
        for my $log ('/var/log/apache2/error.log', '/var/log/apache2/redeem-error.log', "$TMP/postgresql.log") {
            diag("--- $log\n" . tail($log, 30)) if -f $log;
        }
    }
    $try->('stop Apache', \&stop_apache);
    $try->('stop PostgreSQL', \&stop_postgresql);
    $try->('end what is left in the namespace', sub {
        return unless $state{netns};
        for my $signal ('TERM', 'KILL') {
            my @left = map { process_id($_) } netns_pids();
            last unless @left;
            kill $signal, map { $_->{pid} } @left;
            wait_gone($_, 5) for @left;
        }
    });
    # README, removing: disable first (no restart is asked of any init system:
    # Apache is already stopped), then purge.
    $try->('disable the site and the module', sub {
        return unless $state{installed};
        run(['a2dissite', '-q', 'redeem-example']) if $state{enabled};
        run(['a2dismod', '-q', 'redeem']) if $state{enabled};
    });
    $try->('purge', sub {
        return unless $state{installed};
        my $r = run(['dpkg', '--purge', $PKG]);
        $r->{ok} or die "dpkg --purge failed:\n$r->{out}";
        $state{purged} = 1;
    });
    $try->('undo the modules enabled along', sub {
        my @ours = grep { !$ENABLED_BEFORE{$_} && module_enabled($_) } qw(dbd unique_id remoteip);
        run(['a2dismod', '-q', @ours]) if @ours;
        run(['a2dismod', '-q', 'status']) if $state{status_enabled};
    });
    $try->('what purge leaves: the operator\'s secrets', sub {
        $state{left_after_purge} = changed_paths($BEFORE{'/etc/apache2'}, listing('/etc/apache2'));
        remove_tree('/etc/apache2/redeem') if $state{installed} && -d '/etc/apache2/redeem';    # rm -r
    });
    $try->('a2query state of the modules the test toggled', sub { restore_tree('/var/lib/apache2') });
    $try->('delete the namespace', sub {
        run([$IP, 'netns', 'delete', $NS]) if $state{netns};
        if (!$RUN_NETNS_EXISTED && -d '/run/netns' && !entries('/run/netns')->{count}) {
            run(['umount', '/run/netns']);
            rmdir '/run/netns';
        }
    });
    $try->('logs, run and lock directories', sub {
        for my $dir ('/var/run/apache2', '/var/lock/apache2', '/var/log/apache2') {
            remove_new_entries($dir, $VOLATILE_BEFORE{$dir});
        }
        while (my ($file, $size) = each %LOG_SIZE) {
            truncate $file, $size if -f $file && -s $file > $size;
        }
    });
    $try->('temporary directory', sub { remove_tree($TMP) if $TMP && -d $TMP });
    diag("clean-up: $_") for @log;
    $state{cleanup_errors} = \@log;
}

sub check_machine_restored {
    is_deeply($state{cleanup_errors}, [], 'clean-up ran without errors');
    ok(readme_has("a2dissite redeem-example\na2dismod redeem\nsystemctl restart apache2\n"
                  . "dpkg --purge libapache2-mod-redeem")
       && readme_has('`a2dismod dbd remoteip` if nothing else uses them')
       && readme_has('`rm -r /etc/apache2/redeem` once no'),
       'README has the removal steps the clean-up took');
    if ($state{installed}) {
        is(package_state(), 'not-installed', "$PKG purged");
        my @made = @{ $state{operator_files} || [] };
        is_deeply($state{left_after_purge}, [@made ? ('/etc/apache2/redeem', sort @made) : ()],
                  'purge left only the operator\'s secrets in /etc/apache2');
    }
    for my $dir (@WATCHED) {
        my $now = listing($dir);
        ok($now eq $BEFORE{$dir}, "$dir as it was found") or diag(listing_diff($BEFORE{$dir}, $now));
    }
    ok(!grep({ $_ eq $NS } map { (split ' ')[0] // '' } split /\n/, run([$IP, 'netns', 'list'])->{out}),
       'the namespace is gone');
    for my $name (sort keys %pids) {
        ok(!alive($pids{$name}), "$name (pid " . ($pids{$name} ? $pids{$name}{pid} : '-') . ') is gone');
    }
    my @new_ports = grep { !$HOST_PORTS_BEFORE{$_} && ($_ == 80 || $_ == 8080 || $_ == 5432) } host_listening_ports();
    is_deeply(\@new_ports, [], 'nothing listens on 80, 8080 or 5432 that did not before');
}

# ---------------------------------------------------------------------------
# The README section and its shell steps.

sub readme_section {
    my $text = slurp("$ROOT/README.md");
    $text =~ /^## Deploying into an existing Apache\n(.*?)^## /ms or die "README: no deployment section\n";
    return normalize($1);
}

sub normalize { join "\n", map { s/^\s+//r } split /\n/, $_[0] }

sub readme_has { index($README, normalize($_[0])) >= 0 }

# A shell step of the README, run as the README says (bash, as root, from the
# top of the tree) inside the namespace, PGHOST pointing at the throwaway cluster.
sub readme_step {
    my ($name, $script, %opt) = @_;
    ok(readme_has($script), "README has the step: $name") or diag("not in the README:\n$script");
    my @ns = $opt{host} ? () : ($IP, 'netns', 'exec', $NS);
    my $r = run([@ns, 'bash', '-euo', 'pipefail', '-c', $script],
                env => {PGHOST => $sock, DEBIAN_FRONTEND => 'noninteractive'}, stdin => $opt{stdin});
    ok($r->{ok}, "README step: $name") or do { diag($r->{out}); die "step '$name' failed\n" };
    return $r;
}

sub step_ok {
    my ($name, $cmd, %opt) = @_;
    my $r = run($cmd, %opt);
    ok($r->{ok}, $name) or do { diag($r->{out}); die "$name failed\n" };
    return $r;
}

# ---------------------------------------------------------------------------
# Helpers.

sub package_file {
    my $version = first_line("$ROOT/VERSION");
    my $arch = run(['dpkg', '--print-architecture'])->{out} =~ s/\s+//gr;
    my $deb = "$ROOT/build/deb/${PKG}_${version}_$arch.deb";
    my @all = glob "$ROOT/build/deb/${PKG}_*.deb";
    if (-f $deb && @all == 1 && (stat $deb)[9] > newest_source()) {
        pass('package reused: newer than every source');
        return $deb;
    }
    my $r = run(["$ROOT/scripts/deb.sh"]);
    ok($r->{ok}, 'scripts/deb.sh') or diag($r->{out});
    return -f $deb ? $deb : undef;
}

sub newest_source {
    my $r = run(['git', '-C', $ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard']);
    my @files = $r->{ok} ? grep { length } split /\0/, $r->{out} : ();
    if (!@files) {
        find({ no_chdir => 1, wanted => sub {
            $File::Find::prune = 1 if m{^\Q$ROOT\E/(?:build|\.git)$};
            push @files, $_ if -f;
        } }, $ROOT);
    }
    my $newest = 0;
    for my $f (@files) {
        my $m = (stat($f =~ m{^/} ? $f : "$ROOT/$f"))[9] // next;
        $newest = $m if $m > $newest;
    }
    return $newest;
}

# dpkg's state of the package: the last word of its status, 'not-installed' when unknown.
sub package_state {
    my $r = run(['dpkg-query', '-W', '-f=${Status}', $PKG]);
    my $word = $r->{ok} ? (split ' ', $r->{out})[-1] : undef;
    return $word // 'not-installed';
}

sub module_enabled { run(['a2query', '-q', '-m', $_[0]])->{ok} }

sub psql_postgres {
    my ($sql, $db) = @_;
    # From /: the postgres user may not be allowed into the checkout (a clone
    # under a 0700 directory), and psql would say so in the output.
    my $r = run(['runuser', '-u', 'postgres', '--', 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                 '-h', $sock, '-d', $db, '-c', $sql], cwd => '/');
    $r->{ok} or die "psql: $r->{out}";
    return $r->{out} =~ s/\s+\z//r;
}

# An HTTP request from inside the namespace (HTTP::Tiny in a child perl).
sub http {
    my ($method, $url, $body, $headers) = @_;
    my $req = encode_json({method => $method, url => $url, body => $body, headers => $headers || {}});
    my $r = run([$IP, 'netns', 'exec', $NS, $^X, '-e', <<'PERL'], stdin => $req);
use strict; use HTTP::Tiny; use JSON::PP; use MIME::Base64;
my $req = decode_json(do { local $/; <STDIN> });
my $res = HTTP::Tiny->new(timeout => 15, keep_alive => 0)->request($req->{method}, $req->{url}, {
    headers => $req->{headers}, (defined $req->{body} ? (content => $req->{body}) : ()) });
print encode_json({status => $res->{status}, headers => $res->{headers},
                   body => encode_base64($res->{content} // '', '')});
PERL
    my $res = eval { decode_json($r->{out}) } || {status => 599, headers => {}, body => ''};
    $res->{body} = decode_base64($res->{body});
    return $res;
}

# Runs a command (no shell): {ok, out} with stdout and stderr together. The
# environment is a clean one plus `env`: nothing of the caller's PG* settings.
# It runs in the checkout, or in `cwd`.
sub run {
    my ($cmd, %opt) = @_;
    my %env = (PATH => $PATH, LANG => 'C.UTF-8', HOME => '/root', %{ $opt{env} || {} });
    pipe(my $in_r, my $in_w) or die "pipe: $!";
    pipe(my $out_r, my $out_w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $in_w;
        close $out_r;
        chdir($opt{cwd} // $ROOT);
        open STDIN, '<&', $in_r or POSIX::_exit(127);
        open STDOUT, '>&', $out_w or POSIX::_exit(127);
        open STDERR, '>&', $out_w or POSIX::_exit(127);
        %ENV = %env;
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        print STDERR "cannot run $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }
    close $in_r;
    close $out_w;
    print {$in_w} $opt{stdin} if defined $opt{stdin};
    close $in_w;
    my $out = do { local $/; <$out_r> } // '';
    waitpid($pid, 0);
    return {ok => $? == 0, out => $out};
}

sub listing {
    my ($root) = @_;
    return "(absent)" unless -e $root;
    my @lines;
    find({ no_chdir => 1, wanted => sub {
        my $p = $File::Find::name;
        my @st = lstat $p or return;
        my $type = -l _ ? 'l' : -d _ ? 'd' : -f _ ? 'f' : 'o';
        my $what = $type eq 'l' ? readlink($p) : $type eq 'f' ? Digest::SHA->new(256)->addfile($p)->hexdigest : '';
        push @lines, sprintf '%s %s %04o %d:%d %s', $p, $type, $st[2] & 07777, $st[4], $st[5], $what;
    } }, $root);
    return join "\n", sort @lines;
}

# Paths added, changed or removed between two listings.
sub changed_paths {
    my ($before, $after) = @_;
    my %b = map { $_ => 1 } split /\n/, $before;
    my %a = map { $_ => 1 } split /\n/, $after;
    my %paths = map { (split / /)[0] => 1 } (grep { !$a{$_} } keys %b), (grep { !$b{$_} } keys %a);
    return [sort keys %paths];
}

sub listing_diff {
    my ($before, $after) = @_;
    my %b = map { $_ => 1 } split /\n/, $before;
    my %a = map { $_ => 1 } split /\n/, $after;
    return join "\n", (map {"- $_"} grep { !$a{$_} } sort keys %b), (map {"+ $_"} grep { !$b{$_} } sort keys %a);
}

# The entries below a directory (relative paths, with type), and their count.
sub entries {
    my ($dir) = @_;
    my %e = (exists => -d $dir ? 1 : 0, count => 0, paths => {});
    return \%e unless -d $dir;
    find({ no_chdir => 1, wanted => sub {
        return if $_ eq $dir;
        $e{paths}{$_} = -d $_ ? 'd' : 'f';
        $e{count}++;
    } }, $dir);
    return \%e;
}

sub remove_new_entries {
    my ($dir, $before) = @_;
    if (!$before->{exists}) {
        remove_tree($dir) if -d $dir;
        return;
    }
    my $now = entries($dir);
    for my $p (sort { length $b <=> length $a } keys %{ $now->{paths} }) {
        next if $before->{paths}{$p};
        -d $p && !-l $p ? remove_tree($p) : unlink $p;
    }
}

# /var/lib/apache2 holds a2enmod's markers (which modules the admin or a
# package enabled). The package's own are checked gone after the purge; the
# markers of the modules the test toggled are put back as they were.
sub restore_tree {
    my ($dir) = @_;
    my %before = map { my @f = split / /; ($f[0] => \@f) } split /\n/, $BEFORE{$dir};
    my %now = map { my @f = split / /; ($f[0] => \@f) } split /\n/, listing($dir);
    my @left = grep { m{/redeem(?:-example(?:\.conf)?)?$} } keys %now;
    die "package markers left after purge: @left\n" if @left && $state{purged};
    for my $p (sort { length $b <=> length $a } keys %now) {
        next if $before{$p};
        -d $p && !-l $p ? remove_tree($p) : unlink $p;
    }
    for my $p (sort { length $a <=> length $b } keys %before) {
        next if -e $p;
        my ($type, $mode) = @{ $before{$p} }[1, 2];
        if ($type eq 'd') { mkdir $p; chmod oct($mode), $p }
        elsif ($type eq 'f') { open my $fh, '>', $p; close $fh; chmod oct($mode), $p }
    }
}

sub netns_pids {
    my $r = run([$IP, 'netns', 'pids', $NS]);
    return grep { /^\d+$/ } split /\s+/, $r->{out};
}

sub netns_listening_ports { listening_ports([$IP, 'netns', 'exec', $NS, 'ss', '-Hltn']) }
sub host_listening_ports { listening_ports(['ss', '-Hltn']) }

sub listening_ports {
    my ($cmd) = @_;
    my %ports;
    for (split /\n/, run($cmd)->{out}) {
        my $local = (split ' ')[3] // next;
        $ports{$1} = 1 if $local =~ /:(\d+)$/;
    }
    return sort { $a <=> $b } keys %ports;
}

# A process by its id and start time (so a reused id is not taken for it).
sub process_id {
    my ($pid) = @_;
    return undef unless defined $pid && $pid =~ /^\d+$/;
    my $stat = first_line("/proc/$pid/stat") // return undef;
    my @f = split ' ', ($stat =~ s/^.*\) //r);    # after "pid (comm) "
    return {pid => $pid, start => $f[19]};
}

# Alive: the same process, and not a zombie waiting for its parent.
sub alive {
    my ($p) = @_;
    return 0 unless $p;
    my $stat = first_line("/proc/$p->{pid}/stat") // return 0;
    my @f = split ' ', ($stat =~ s/^.*\) //r);
    return $f[19] eq $p->{start} && $f[0] ne 'Z';
}

sub wait_gone {
    my ($p, $seconds) = @_;
    my $deadline = time + $seconds;
    while (alive($p)) {
        return 0 if time > $deadline;
        sleep 0.05;
    }
    return 1;
}

sub mode { sprintf '%04o', (lstat $_[0])[2] & 07777 }
sub owner { join ':', (lstat $_[0])[4, 5] }

sub first_line {
    open my $fh, '<', $_[0] or return undef;
    my $line = <$fh>;
    chomp $line if defined $line;
    return $line;
}

sub slurp {
    open my $fh, '<:raw', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

sub tail {
    my ($file, $n) = @_;
    my @lines = split /\n/, eval { slurp($file) } // '';
    return join "\n", @lines > $n ? @lines[-$n .. -1] : @lines;
}

sub first_executable { (grep { -x } @_)[0] }

sub pg_major { $_[0] =~ m{/(\d+)/bin$} ? $1 : 0 }
