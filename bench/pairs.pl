#!/usr/bin/perl
# Prints "token code" lines for the benchmark: each generated code paired
# with one of the bench users, whose HS256 tokens are signed here.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

my ($secret, $first_user, $users, $codes_file) = @ARGV;
my $codes = decode_json(do { local (@ARGV, $/) = $codes_file; <> })->{codes};
my $now = time;
my @tokens = map {
    my $id = $first_user + $_;
    my $signing = encode_base64url('{"alg":"HS256","typ":"JWT"}') . '.'
      . encode_base64url(encode_json({ sub => "$id", user_id => $id + 0, iat => $now, exp => $now + 3600 }));
    $signing . '.' . encode_base64url(hmac_sha256($signing, $secret));
} 0 .. $users - 1;
print $tokens[$_ % @tokens], ' ', $codes->[$_], "\n" for 0 .. $#$codes;
