package Test::UnitBinary;
# Runs one C unit-test binary of `make unit` in place of the .t file that
# calls it (its TAP goes straight to prove): build/NAME, or with
# REDEEM_ASAN=1 (the second pass of make test) build/asan/NAME, the
# AddressSanitizer/UBSan build of `make asan`. Leak checks are off (APR's
# pools are freed with the process).
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(exec_unit_binary);

sub exec_unit_binary {
    my ($name) = @_;
    my $root = $ENV{REDEEM_ROOT} // '.';
    my $build = ($ENV{REDEEM_BUILD} // "$root/build") . ($ENV{REDEEM_ASAN} ? '/asan' : '');
    my $binary = "$build/$name";
    -x $binary or die "$binary is missing: run `make unit` (or `make asan`; make test does both)\n";
    $ENV{ASAN_OPTIONS} = 'detect_leaks=0';
    exec $binary or die "cannot run $binary: $!\n";
}

1;
