# The libFuzzer targets of fuzz/ (built by `make fuzz-build`, which make test
# runs through fuzz-replay) run once over their committed corpus
# fuzz/corpus/<target>/: any crash, ASan or UBSan report, leak or broken
# invariant fails the test. Seconds, no server.
#
# The reproducers of known open items, fuzz/known/<target>.<item>/, run too,
# each under FUZZ_STRICT=<item>: as TODO tests while the item is open, as
# plain tests once it is listed in @fixed below. When a fix lands, prove
# reports the TODO as passing: add the item to @fixed, and move its files into
# fuzz/corpus/<target>/ (fuzz/README.md).
use strict;
use warnings;
use File::Temp ();
use FindBin ();
use Test::More;

# Open items fixed in mod_redeem/: their checks are on for the corpus too.
my @fixed = qw(exp-overflow dup-keys email-unicode error-utf8);

my $root = $ENV{REDEEM_ROOT} // "$FindBin::Bin/..";
my $build = $ENV{REDEEM_BUILD} // "$root/build";
my @targets = qw(token code timestamp email text body query gcra);

plan skip_all => 'clang is not installed (scripts/deps.sh installs clang and '
  . 'libclang-rt-14-dev): the fuzz targets cannot be built'
  unless grep { -x "$_/clang" } split /:/, $ENV{PATH} // '';
plan skip_all => 'the fuzz targets are sanitized builds already: replayed in the first pass'
  if $ENV{REDEEM_ASAN};

$ENV{ASAN_OPTIONS} = join ':', grep { length } $ENV{ASAN_OPTIONS} // '', 'detect_leaks=1';
$ENV{UBSAN_OPTIONS} = 'print_stacktrace=1';
delete $ENV{FUZZ_SKIP};
# Where libFuzzer writes the inputs that crash (not the current directory).
my $artifacts = File::Temp::tempdir(CLEANUP => 1);

# Runs a target over inputs (a directory or files); (ok, output).
sub replay {
    my ($target, $strict, @inputs) = @_;
    local $ENV{FUZZ_STRICT} = $strict;
    my $bin = "$build/fuzz/fuzz_$target";
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die "dup: $!";
        exec $bin, '-runs=0', '-timeout=10', "-artifact_prefix=$artifacts/", @inputs
          or die "cannot run $bin: $!\n";
    }
    my $text = do { local $/; <$out> };
    close $out;
    return ($? == 0, $text);
}

sub tail_of { my @l = split /\n/, shift; join "\n", @l > 40 ? @l[-40 .. -1] : @l }

for my $target (@targets) {
    my $bin = "$build/fuzz/fuzz_$target";
    ok(-x $bin, "fuzz_$target is built") or do {
        diag("$bin is missing: run `make fuzz-build` (make test does, through fuzz-replay)");
        next;
    };
    my @inputs = glob "$root/fuzz/corpus/$target/*";
    my ($ok, $text) = replay($target, join(',', @fixed), "$root/fuzz/corpus/$target");
    ok($ok && $text =~ /Done (\d+) runs/ && $1 >= @inputs,
       sprintf 'fuzz_%s replays its corpus (%d inputs)', $target, scalar @inputs)
      or diag(tail_of($text));
}

for my $dir (sort glob "$root/fuzz/known/*.*") {
    my ($target, $item) = $dir =~ m{/([a-z]+)\.([a-z0-9-]+)$} or next;
    my @files = sort glob "$dir/*";
    my $fixed = grep { $_ eq $item } @fixed;
    TODO: {
        local $TODO = $fixed ? undef : "open item $item (fuzz/README.md)";
        # An open item is expected to crash: skip symbolizing its stack (seconds).
        local $ENV{ASAN_OPTIONS} = $ENV{ASAN_OPTIONS} . ($fixed ? '' : ':symbolize=0');
        local $ENV{UBSAN_OPTIONS} = $ENV{UBSAN_OPTIONS} . ($fixed ? '' : ':symbolize=0');
        for my $file (@files) {
            my ($ok, $text) = replay($target, $item, $file);
            ok($ok, "fuzz_$target: $item: " . ($file =~ s{.*/}{}r))
              or ($fixed && diag(tail_of($text)));
        }
    }
}

done_testing();
