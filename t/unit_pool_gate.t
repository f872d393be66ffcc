#!/usr/bin/perl
# The C unit tests of the wait for a pooled connection
# (t/unit/pool_gate_tests.c: httpd/pool_gate.c, mod_dbd's acquire stubbed),
# built by `make unit`; their TAP goes straight to prove. With REDEEM_ASAN=1
# (the second pass of make test) the AddressSanitizer/UBSan build of
# `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
exec_unit_binary('pool_gate_tests');
