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

# Every package reads as missing unless FAKE_INSTALLED is set.
stand_in('dpkg-query', 'if [ -n "$FAKE_INSTALLED" ]; then printf "install ok installed"; fi');
stand_in('id', 'echo 0');
# apt-get install records whether a policy was in place and what it answers
# to a start, as invoke-rc.d asks it ("policy-rc.d NAME start").
stand_in('apt-get', <<"SH");
case "\$1" in
update) exit 0 ;;
install)
  if [ -x "$policy" ]; then "$policy" apache2 start; echo "install policy=\$?" >>"$log"
  else echo "install policy=none" >>"$log"; fi
  exit \${FAKE_APT_RC:-0} ;;
esac
exit 2
SH
stand_in('update-rc.d', qq{echo "update-rc.d \$*" >>"$log"});

sub run_deps {
    my (%env) = @_;
    unlink $log;
    local $ENV{PATH} = "$bin:$ENV{PATH}";
    local $ENV{REDEEM_POLICY_RC_D} = $policy;
    local @ENV{keys %env} = values %env;
    my $out = `$ROOT/scripts/deps.sh 2>&1`;
    my $rc = $? >> 8;
    my $calls = -e $log ? do { local (@ARGV, $/) = $log; <> } : '';
    return ($rc, $out, $calls);
}

# TEST 1: a machine without a policy of its own: starts refused during the
# install, the policy gone after it, the three servers kept from boot.
{
    my ($rc, $out, $calls) = run_deps();
    is($rc, 0, 'TEST 1: deps.sh succeeds') or diag($out);
    like($calls, qr/^install policy=101$/m, 'TEST 1: the install ran under a policy that refuses starts');
    ok(!-e $policy, 'TEST 1: the policy is removed after the install');
    my @disabled = sort $calls =~ /^update-rc\.d (\S+) disable$/mg;
    is_deeply(\@disabled, [qw(apache2 postgresql redis-server)],
              'TEST 1: apache2, postgresql and redis-server are kept from starting at boot');
    unlike($calls, qr/^update-rc\.d (?!\S+ disable$)/m, 'TEST 1: update-rc.d asked nothing else');
}

# TEST 2: the machine's own policy stands: used as it is, left in place.
{
    open my $fh, '>', $policy or die "$policy: $!";
    print $fh "#!/bin/sh\n# the machine's own\nexit 0\n";
    close $fh;
    chmod 0755, $policy;
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
    my ($rc, $out, $calls) = run_deps(FAKE_INSTALLED => 1);
    is($rc, 0, 'TEST 4: deps.sh succeeds') or diag($out);
    is($calls, '', 'TEST 4: neither apt-get install nor update-rc.d ran');
    ok(!-e $policy, 'TEST 4: no policy was written');
}

done_testing();
