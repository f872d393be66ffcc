# scripts/deps.sh installs what is missing without starting Debian's
# system-wide servers (apache2 on port 80, PostgreSQL, Redis), now or at boot.
#
# Runs the real script against stand-ins on PATH (dpkg-query, apt-get,
# update-rc.d, id) that record what they were asked, and with its policy-rc.d
# moved into a directory of the test's (REDEEM_POLICY_RC_D): nothing on the
# machine is installed or changed.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);

my $ROOT = abs_path(dirname(__FILE__) . '/../..');
plan skip_all => 'runs once, in the plain pass of make test' if $ENV{REDEEM_ASAN};

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/bin";
mkdir $bin or die "mkdir $bin: $!";
my $log = "$dir/calls.log";
my $policy = "$dir/policy-rc.d";

sub stand_in {
    my ($name, $body) = @_;
    open my $fh, '>', "$bin/$name" or die "$name: $!";
    print $fh "#!/bin/sh\n$body\n";
    close $fh;
    chmod 0755, "$bin/$name" or die "chmod $name: $!";
}

my $installed = "$dir/installed";

# dpkg-query: a package is installed when FAKE_INSTALLED names it or the
# stand-in apt-get installed it.
stand_in('dpkg-query', <<"SH");
for pkg; do :; done
for p in \$FAKE_INSTALLED \$(cat "$installed" 2>/dev/null); do
  [ "\$p" = "\$pkg" ] && { printf 'install ok installed'; exit 0; }
done
exit 1
SH
stand_in('id', 'echo 0');
# apt-get install records whether a policy was in place and what it answers
# to a start, as invoke-rc.d asks it ("policy-rc.d NAME start"), then
# "installs" its packages (postgresql brings postgresql-common).
stand_in('apt-get', <<"SH");
case "\$1" in
update) exit 0 ;;
install)
  if [ -x "$policy" ]; then "$policy" apache2 start; echo "install policy=\$?" >>"$log"
  else echo "install policy=none" >>"$log"; fi
  [ "\${FAKE_APT_RC:-0}" = 0 ] || exit "\$FAKE_APT_RC"
  for p; do
    case "\$p" in -*|install) ;; postgresql) echo postgresql postgresql-common >>"$installed" ;; *) echo "\$p" >>"$installed" ;; esac
  done
  exit 0 ;;
esac
exit 2
SH
stand_in('update-rc.d', qq{echo "update-rc.d \$*" >>"$log"});

our $DEPS_ARGS = '';
sub run_deps {
    my (%env) = @_;
    unlink $log, $installed;
    local $ENV{PATH} = "$bin:$ENV{PATH}";
    local $ENV{REDEEM_POLICY_RC_D} = $policy;
    local @ENV{keys %env} = values %env;
    my $out = `$ROOT/scripts/deps.sh $DEPS_ARGS 2>&1`;
    my $rc = $? >> 8;
    my $calls = -e $log ? do { local (@ARGV, $/) = $log; <> } : '';
    return ($rc, $out, $calls);
}

sub disabled { my ($calls) = @_; return [ sort $calls =~ /^update-rc\.d (\S+) disable$/mg ] }

sub write_policy {
    my ($text) = @_;
    open my $fh, '>', $policy or die "$policy: $!";
    print $fh $text;
    close $fh;
    chmod 0755, $policy;
}

# Every package deps.sh may install, but the servers (and what brings them).
my @not_servers = qw(build-essential apache2-dev libaprutil1-dbd-pgsql libjansson-dev libjwt-dev
  libargon2-dev libssl-dev libpq-dev postgresql-client libtest-base-perl wrk libhiredis-dev
  redis-tools debhelper dpkg-dev argon2 iproute2 libjson-validator-perl libyaml-libyaml-perl clang
  libclang-rt-14-dev);

# TEST 1: a machine without a policy of its own: starts refused during the
# install, the policy gone after it, the three servers kept from boot.
{
    my ($rc, $out, $calls) = run_deps();
    is($rc, 0, 'TEST 1: deps.sh succeeds') or diag($out);
    like($calls, qr/^install policy=101$/m, 'TEST 1: the install ran under a policy that refuses starts');
    ok(!-e $policy, 'TEST 1: the policy is removed after the install');
    is_deeply(disabled($calls), [qw(apache2 postgresql redis-server)],
              'TEST 1: apache2, postgresql and redis-server are kept from starting at boot');
    unlike($calls, qr/^update-rc\.d (?!\S+ disable$)/m, 'TEST 1: update-rc.d asked nothing else');
}

# TEST 2: the machine's own policy stands: used as it is, left in place.
{
    write_policy("#!/bin/sh\n# the machine's own\nexit 0\n");
    my ($rc, $out, $calls) = run_deps();
    is($rc, 0, 'TEST 2: deps.sh succeeds') or diag($out);
    like($calls, qr/^install policy=0$/m, 'TEST 2: the machine\'s own policy was the one in force');
    my $kept = do { local (@ARGV, $/) = $policy; <> };
    like($kept, qr/the machine's own/, 'TEST 2: the machine\'s policy is left as it was');
    unlink $policy;
}

# TEST 3: an install that fails fails deps.sh, and takes its policy away.
{
    my ($rc, $out, $calls) = run_deps(FAKE_APT_RC => 100);
    isnt($rc, 0, 'TEST 3: deps.sh fails when apt-get does');
    like($calls, qr/^install policy=101$/m, 'TEST 3: the failed install ran under the policy');
    ok(!-e $policy, 'TEST 3: the policy is removed after a failed install');
    unlike($calls, qr/update-rc\.d/, 'TEST 3: no service touched after a failed install');
}

# TEST 4: nothing missing: nothing installed, nothing touched.
{
    my ($rc, $out, $calls) = run_deps(FAKE_INSTALLED => join ' ', @not_servers, qw(apache2 postgresql postgresql-common redis-server));
    is($rc, 0, 'TEST 4: deps.sh succeeds') or diag($out);
    is($calls, '', 'TEST 4: neither apt-get install nor update-rc.d ran');
    ok(!-e $policy, 'TEST 4: no policy was written');
}

# TEST 5: a PostgreSQL the machine runs already (postgresql-common there,
# the postgresql metapackage not): its service is left as it is.
{
    my ($rc, $out, $calls) = run_deps(FAKE_INSTALLED => 'postgresql-common');
    is($rc, 0, 'TEST 5: deps.sh succeeds') or diag($out);
    is_deeply(disabled($calls), [qw(apache2 redis-server)],
              'TEST 5: the machine\'s own PostgreSQL service is not disabled, the new ones are');
}

# TEST 6: a policy this script left behind (killed mid-install) is known by
# its marker: used, and removed this time.
{
    write_policy("#!/bin/sh\n# scripts/deps.sh of mod_redeem, while it installs packages\nexit 101\n");
    my ($rc, $out, $calls) = run_deps();
    is($rc, 0, 'TEST 6: deps.sh succeeds') or diag($out);
    like($calls, qr/^install policy=101$/m, 'TEST 6: the install ran under the policy');
    ok(!-e $policy, 'TEST 6: the left-over policy is removed');
}

# TEST 7: no server package missing: no policy (an upgrade's restarts of
# the machine's services go on as ever), no service touched.
{
    my ($rc, $out, $calls) = run_deps(FAKE_INSTALLED => 'apache2 postgresql postgresql-common redis-server');
    is($rc, 0, 'TEST 7: deps.sh succeeds') or diag($out);
    like($calls, qr/^install policy=none$/m, 'TEST 7: the install ran without a policy of ours');
    unlike($calls, qr/update-rc\.d/, 'TEST 7: no service touched');
}

# TEST 8: a policy this script left behind, and nothing missing now: it
# goes all the same (it would refuse every service start on the machine).
{
    write_policy("#!/bin/sh\n# scripts/deps.sh of mod_redeem, while it installs packages\nexit 101\n");
    my ($rc, $out, $calls) = run_deps(FAKE_INSTALLED => join ' ', @not_servers, qw(apache2 postgresql postgresql-common redis-server));
    is($rc, 0, 'TEST 8: deps.sh succeeds') or diag($out);
    is($calls, '', 'TEST 8: nothing installed');
    ok(!-e $policy, 'TEST 8: the left-over policy is removed');
}

# TEST 9: `deps.sh build` (make deb, on a host that installs the package):
# what building needs, and no server, test or bench tool.
{
    local $DEPS_ARGS = 'build';
    my ($rc, $out, $calls) = run_deps();
    is($rc, 0, 'TEST 9: deps.sh build succeeds') or diag($out);
    like($calls, qr/^install policy=none$/m, 'TEST 9: no server to keep from starting: no policy');
    my @got = sort split ' ', do { local (@ARGV, $/) = $installed; <> };
    is("@got", join(' ', sort qw(build-essential debhelper dpkg-dev pkg-config apache2-dev libjansson-dev
                                  libargon2-dev libssl-dev libpq-dev libhiredis-dev)),
       'TEST 9: the build dependencies alone');
}

done_testing();
