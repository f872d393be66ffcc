#!/usr/bin/perl
# The C unit tests of the line of user reads (t/unit/user_reads_tests.c:
# drop_late, leave_line, may_read and take_batch of httpd/user_reads.c, and
# the waits for room and for a read), built by `make unit`;
# their TAP goes straight to prove. With REDEEM_ASAN=1 (the second pass of
# make test) the AddressSanitizer/UBSan build of `make asan`.
use strict;
use warnings;
use lib 't/lib';
use Test::UnitBinary;
exec_unit_binary('user_reads_tests');
