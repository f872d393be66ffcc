#!/usr/bin/perl
# The C unit tests of RedeemAdmin's set-up with the hashing slots
# (t/unit/admin_tests.c: httpd/admin.c and httpd/hashing.c, the database
# stubbed), built by `make unit`; their TAP goes straight to prove. With
# REDEEM_ASAN=1 (the second pass of make test) the AddressSanitizer/UBSan
# build of `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
exec_unit_binary('admin_tests');
