#!/usr/bin/perl
# The C unit tests of the rate limiter's core (t/unit/limit_tests.c: GCRA, the shared table, threads and processes racing on it), built by
# `make unit`; their TAP goes straight to prove. With REDEEM_ASAN=1 (the
# second pass of make test) the AddressSanitizer/UBSan build of `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
$ENV{LIMIT_BENCH_CHECKS} //= 0;   # the timing belongs to make bench
exec_unit_binary('limit_tests');
