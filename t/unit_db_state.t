#!/usr/bin/perl
# The C unit tests of a child's view of whether its database answers under a
# stepped wall clock (t/unit/db_state_tests.c: httpd/db.c's fail-fast state,
# handle_health.c, failure.c's throttled warnings), built by `make unit`;
# their TAP goes straight to prove. With REDEEM_ASAN=1 (the second pass of
# make test) the AddressSanitizer/UBSan build of `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
exec_unit_binary('db_state_tests');
