# Every log tag of the module (RDMnnnn, RDMNO in the sources) names one
# event: a number is used in one source file only (a file may log the same
# event from two places), so that an operator's search for a tag finds one
# cause.
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);

my $root = dirname(__FILE__) . '/..';
my %files_of;
for my $file (glob("$root/mod_redeem/httpd/*.c"), glob("$root/mod_redeem/core/*.c")) {
    open my $fh, '<', $file or die "$file: $!";
    my $text = do { local $/; <$fh> };
    my $name = $file =~ s{.*/}{}r;
    $files_of{$_}{$name} = 1 for $text =~ /RDMNO\((\d{4})\)/g;
}
ok(keys %files_of > 50, 'log tags found in the sources (' . scalar(keys %files_of) . ')');
my @shared = grep { keys %{ $files_of{$_} } > 1 } sort keys %files_of;
is("@shared", '', 'no log tag is used by two source files')
  or diag(join "\n", map { "RDM$_: " . join(', ', sort keys %{ $files_of{$_} }) } @shared);
done_testing();
