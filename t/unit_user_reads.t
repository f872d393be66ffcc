#!/usr/bin/perl
# The C unit tests of the line of user reads (t/unit/user_reads_tests.c:
# drop_late and leave_line of httpd/user_reads.c), built by `make unit`;
# their TAP goes straight to prove. With REDEEM_ASAN=1 (the second pass of
# make test) the AddressSanitizer/UBSan build of `make asan`.
use strict;
use warnings;
my $root = $ENV{REDEEM_ROOT} // '.';
my $build = ($ENV{REDEEM_BUILD} // "$root/build") . ($ENV{REDEEM_ASAN} ? '/asan' : '');
my $binary = "$build/user_reads_tests";
-x $binary or die "$binary is missing: run `make unit` (or `make asan`; make test does both)\n";
$ENV{ASAN_OPTIONS} = 'detect_leaks=0';
exec $binary or die "cannot run $binary: $!\n";
