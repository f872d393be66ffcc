# Request bodies take the memory of what arrives, not of the cap: with
# RedeemMaxBodySize at 64 MiB, twenty-five requests in the middle of their
# bodies in one child must not hold 25 x 64 MiB (they did: 1.6 GB of address
# space). Read from the child's VmSize while the bodies are still arriving.
# Not in the AddressSanitizer run, whose allocator reserves address space its
# own way.
use lib 't/lib';
use Test::Redeem;
use IO::Socket::INET;

plan skip_all => 'the address space of a process means nothing under AddressSanitizer'
  if $ENV{REDEEM_ASAN};

sub children_vm_kib {
    open my $fh, '<', var('SERVROOT') . '/httpd.pid' or die $!;
    chomp(my $parent = <$fh>);
    my $total = 0;
    for my $status (glob '/proc/[0-9]*/status') {
        open my $st, '<', $status or next;
        my %f = map { /^(\w+):\s+(\d+)/ ? ($1 => $2) : () } <$st>;
        $total += $f{VmSize} if ($f{PPid} // 0) == $parent;
    }
    return $total;
}

our $CONF = <<'CONF';
StartServers 1
ServerLimit 1
ThreadsPerChild 30
MaxRequestWorkers 30
MinSpareThreads 1
MaxSpareThreads 30
RedeemMaxBodySize 67108864
<Location "/">
  LimitRequestBody 134217728
</Location>
CONF

add_block_preprocessor(sub { $_[0]->set_value(config => $CONF) });

# Twenty-five registrations declaring $length bytes of body and sending the
# first few: the child's address space while they wait must grow by less
# than 256 MiB.
sub half_sent_bodies {
    my ($length) = @_;
    my $before = children_vm_kib();
    my @socks = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => var('PORT')) or die $!;
        print $s "POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               . "Content-Length: $length\r\n\r\n{\"email\": ";
        $s;
    } 1 .. 25;
    Time::HiRes::sleep(1.5);   # every request is now waiting in the middle of its body
    my $during = children_vm_kib();
    close $_ for @socks;
    my $grown = $during - $before;
    $grown < 256 * 1024 or die "the child grew by $grown KiB while 25 bodies of $length bytes were arriving";
}

run_tests();

__DATA__

=== TEST 1: warm-up: twenty-five small bodies at once (every thread has run)
--- request
POST /api/register
--- request_json
{"email": "not an email", "password": "Passw0rd123"}
--- concurrency: 25
--- error_code_counts
400: 25



=== TEST 2: twenty-five bodies half sent: the child's address space grows by far less than their caps
--- request
GET /api/health
--- error_code: 200
--- check_eval
half_sent_bodies(200)



=== TEST 3: the same, each declaring the whole cap (Content-Length 64 MiB) and sending a few bytes: the declared length is no reason to reserve it (each took 64 MiB up front: 1.6 GB)
--- request
GET /api/health
--- error_code: 200
--- check_eval
half_sent_bodies(67108864)
