#!/usr/bin/perl
# The C unit tests of the httpd-free core (t/unit/unit_tests.c), built by
# `make unit`; their TAP goes straight to prove.
use strict;
use warnings;
my $root = $ENV{REDEEM_ROOT} // '.';
my $binary = ($ENV{REDEEM_BUILD} // "$root/build") . '/unit_tests';
-x $binary or die "$binary is missing: run `make unit` (make test does)\n";
exec $binary or die "cannot run $binary: $!\n";
