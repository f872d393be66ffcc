#!/usr/bin/perl
# Tokens for `make bench`, signed here with the server's secret (HS256, the
# claims mod_redeem checks: sub, user_id, email, gen, aud, iat, exp; the
# bench users are bench<id>@example.test, at token generation 0; aud is the
# site's name, read by run.sh from a token the server issued).
#   tokens.pl SECRET USERS COUNT LIFETIME AUD   prints COUNT "user_id token"
#       lines, the ids spread evenly over 1..USERS (the bench users' ids)
#   tokens.pl --logins USERS COUNT PASSWORD prints COUNT "email password"
#       lines for the same spread of users
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

sub spread {
    my ($users, $count) = @_;
    $count = $users if $count > $users;
    return map { 1 + int($_ * $users / $count) } 0 .. $count - 1;
}

if (@ARGV && $ARGV[0] eq '--logins') {
    my (undef, $users, $count, $password) = @ARGV;
    print "bench$_\@example.test $password\n" for spread($users, $count);
    exit 0;
}
my ($secret, $users, $count, $lifetime, $aud) = @ARGV;
die "usage: tokens.pl SECRET USERS COUNT LIFETIME AUD\n" unless defined $aud;
my $now = time;
my $header = encode_base64url('{"alg":"HS256","typ":"JWT"}');
for my $id (spread($users, $count)) {
    my $claims = encode_base64url(
        encode_json({ sub => "$id", user_id => $id + 0, email => "bench$id\@example.test", gen => 0,
                      aud => $aud, iat => $now, exp => $now + $lifetime }));
    my $signing = "$header.$claims";
    print "$id $signing.", encode_base64url(hmac_sha256($signing, $secret)), "\n";
}
