#!/usr/bin/perl
# The C unit tests of the metrics' request durations under a stepped wall
# clock (t/unit/metrics_tests.c: httpd/metrics.c, the counters stubbed),
# built by `make unit`; their TAP goes straight to prove. With
# REDEEM_ASAN=1 (the second pass of make test) the AddressSanitizer/UBSan
# build of `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
exec_unit_binary('metrics_tests');
