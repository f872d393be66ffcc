#!/usr/bin/perl
# The C unit tests of the rate limiter's core (t/unit/limit_tests.c: GCRA, the shared table, threads and processes racing on it), built by
# `make unit`; their TAP goes straight to prove. With REDEEM_ASAN=1 (the
# second pass of make test) the AddressSanitizer/UBSan build of `make asan`.
use strict;
use warnings;
my $root = $ENV{REDEEM_ROOT} // '.';
my $build = ($ENV{REDEEM_BUILD} // "$root/build") . ($ENV{REDEEM_ASAN} ? '/asan' : '');
my $binary = "$build/limit_tests";
-x $binary or die "$binary is missing: run `make unit` (or `make asan`; make test does both)\n";
$ENV{ASAN_OPTIONS} = 'detect_leaks=0';
$ENV{LIMIT_BENCH_CHECKS} //= 0;   # the timing belongs to make bench
exec $binary or die "cannot run $binary: $!\n";
