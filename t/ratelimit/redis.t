# Rate limits shared through Redis (RedeemRateLimitStore redis://...): two
# httpd instances on the same database and Redis count one user together,
# redemptions stay exactly-once across both, Redis slow or stopped leaves the
# API answering and limited per host, and limits go back to Redis when it is.
# Uses the private Redis of scripts/test.sh (its database 3, flushed first).
use lib 't/lib';
use Test::Redeem;
use Digest::SHA ();
use POSIX ();

our $STORE = "RedeemRateLimitStore redis://127.0.0.1:$ENV{TEST_REDEEM_REDIS_PORT}/3";
our $SECOND;   # the second instance's port
our $FAILURES; # redeem_ratelimit_redis_failures_total before Redis paused

# RedeemRateLimitStoreAuthFile: an ACL user of the private Redis and its
# password, right and wrong (files only their owner reads).
our ($AUTH_FILE, $WRONG_AUTH_FILE) = map { "/tmp/redeem-redis-auth-$$-$_" } qw(right wrong);
our $AUTH_PASSWORD = 'limiter-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 24);
for ([$AUTH_FILE, $AUTH_PASSWORD], [$WRONG_AUTH_FILE, 'not-the-password']) {
    my ($file, $password) = @$_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh "modredeem $password\n";
    close $fh;
    chmod 0600, $file;
}
END { unlink $AUTH_FILE, $WRONG_AUTH_FILE }

# Relays to the private Redis that pass the requests on as they come and
# the replies as told, each forked once and ended with this file: their
# ports. 'trickle' passes each reply on one byte every 20 ms: a Redis, or a
# path to it, that answers slowly but never stops. 'delay' holds each reply
# back 15 ms: a Redis slow to be scheduled, as on a busy host, so that a
# child's calls meet while one is in flight. 'slow' holds each back 33 ms,
# and when Redis closes a connection, its client learns it 33 ms after its
# next request (a far Redis that restarted): each step of a call well in
# its 50 ms, five of them (the close, AUTH, SELECT, the script, the script
# whole) about 165 ms. 'lag' holds each reply back 80 ms: a Redis farther
# away than the default timeout allows.
our (%RELAY_PID, %RELAY_PORT);
sub relay {
    my ($mode) = @_;
    return $RELAY_PORT{$mode} if $RELAY_PID{$mode};
    require IO::Socket::INET;
    require IO::Select;
    require Time::HiRes;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 64,
                                       ReuseAddr => 1) or die "relay: $!";
    $RELAY_PORT{$mode} = $listen->sockport;
    $RELAY_PID{$mode} = fork // die "fork: $!";
    return $RELAY_PORT{$mode} if $RELAY_PID{$mode};
    $SIG{PIPE} = 'IGNORE';
    # Each connection's pair; each Redis side's replies not yet passed on
    # ([when they may go, bytes], in order).
    my (%peer, %held, %client_of, %dead, %closing);
    my $delay = {slow => 0.033, lag => 0.08}->{$mode} // 0.015;
    my $sel = IO::Select->new($listen);
    while (1) {
        for my $fh ($sel->can_read($mode eq 'trickle' ? 0.02 : 0.002)) {
            if ($fh == $listen) {
                my $client = $listen->accept or next;
                my $redis = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                  PeerPort => $ENV{TEST_REDEEM_REDIS_PORT}) or next;
                @peer{"$client", "$redis"} = ($redis, $client);
                $client_of{"$redis"} = $client;
                $held{"$redis"} = [];
                $sel->add($client, $redis);
                next;
            }
            if ($dead{"$fh"}) { # its Redis side closed: the request meets the close, late
                my $buf;
                if (!sysread($fh, $buf, 65536)) {
                    $sel->remove($fh); delete $dead{"$fh"}; delete $closing{"$fh"}; close $fh;
                }
                else { $closing{"$fh"} //= [Time::HiRes::time() + $delay, $fh] }
                next;
            }
            my $other = $peer{"$fh"} or next;
            my $buf;
            if (!sysread($fh, $buf, 65536)) {
                if ($mode eq 'slow' && exists $held{"$fh"}) { # Redis closed it
                    $sel->remove($fh); close $fh;
                    delete $_->{"$fh"} for \%peer, \%held, \%client_of;
                    delete $peer{"$other"};
                    $dead{"$other"} = 1;
                    next;
                }
                for ($fh, $other) { $sel->remove($_); delete $peer{"$_"}; delete $held{"$_"};
                                    delete $client_of{"$_"}; close $_ }
                next;
            }
            if (exists $held{"$fh"}) { push @{ $held{"$fh"} }, [Time::HiRes::time() + $delay, $buf] }
            else { syswrite($other, $buf) }
        }
        my $now = Time::HiRes::time();
        for my $redis (keys %held) {
            my ($queue, $client) = ($held{$redis}, $client_of{$redis});
            if ($mode eq 'trickle') { # one byte a pass (about every 20 ms)
                next unless @$queue;
                syswrite($client, substr($queue->[0][1], 0, 1, ''));
                shift @$queue unless length $queue->[0][1];
            }
            else { syswrite($client, (shift @$queue)->[1]) while @$queue && $queue->[0][0] <= $now }
        }
        for my $key (keys %closing) {
            my ($when, $client) = @{ $closing{$key} };
            next if $when > $now;
            $sel->remove($client); close $client; delete $closing{$key}; delete $dead{$key};
        }
    }
}
END { local $?; for (values %RELAY_PID) { kill 'KILL', $_; waitpid $_, 0 } }

# A resolver for the second httpd of TESTs 23 to 26, on a loopback address of
# its own (127.0.x.y from this process's id; another if that one is taken):
# redis.test is 127.0.0.1 (no IPv6 address), silent.test is never answered
# (a stalled DNS), failing.test gets SERVFAIL, every other name does not
# exist (NXDOMAIN). The second httpd alone sees it: started in a mount
# namespace of its own, where /etc/resolv.conf is this file's (one try of 5 s
# a query) and /etc/nsswitch.conf looks host names up in files, then DNS.
our ($DNS_ADDRESS, $DNS_PID);
our ($RESOLV_CONF, $NSSWITCH_CONF) = map { "/tmp/redeem-$_-$$.conf" } qw(resolv nsswitch);
END { local $?; if ($DNS_PID) { kill 'KILL', $DNS_PID; waitpid $DNS_PID, 0 } unlink $RESOLV_CONF, $NSSWITCH_CONF }
sub start_dns {
    return if $DNS_PID;
    require IO::Socket::INET;
    require IO::Select;
    my $socket;
    for my $try (0 .. 9) {
        my $n = ($$ + 7919 * $try) % 64000;
        $DNS_ADDRESS = join '.', 127, 0, 1 + int($n / 250), 2 + $n % 250;
        $socket = IO::Socket::INET->new(Proto => 'udp', LocalAddr => $DNS_ADDRESS, LocalPort => 53)
          and last;
    }
    $socket or die "a resolver on a loopback address's port 53: $!";
    my %files = ($RESOLV_CONF => "nameserver $DNS_ADDRESS\noptions timeout:5 attempts:1\n",
                 $NSSWITCH_CONF => "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
    for my $file (keys %files) {
        open my $fh, '>', $file or die "$file: $!";
        print $fh $files{$file};
        close $fh;
        chmod 0644, $file;
    }
    my $parent = $$;
    $DNS_PID = fork // die "fork: $!";
    return if $DNS_PID;
    my %answer = ('redis.test' => '127.0.0.1', 'silent.test' => 'silent',
                  'failing.test' => 'servfail');
    my $select = IO::Select->new($socket);
    while (getppid() == $parent) { # ends with this file, even when it is killed
        next unless $select->can_read(1);
        my $peer = $socket->recv(my $query, 512) // next;
        next if length $query < 17;
        my ($name, $at) = ('', 12);
        while ($at < length $query && (my $label = ord substr($query, $at, 1))) {
            $name .= substr($query, $at + 1, $label) . '.';
            $at += $label + 1;
        }
        my $type = unpack 'n', substr($query, $at + 1, 2);
        my $question = substr($query, 12, $at + 5 - 12);
        my $address = $answer{lc substr($name, 0, -1)} // 'nxdomain';
        next if $address eq 'silent';
        # The header: the query's id; a response, recursion desired and
        # available, and its code (0 no error, 2 SERVFAIL, 3 NXDOMAIN); one
        # question, the answers.
        my $records = $address =~ /^\d/ && $type == 1 # A
          ? pack('n n n N n', 0xc00c, 1, 1, 60, 4) . Socket::inet_aton($address) : '';
        my $flags = 0x8180 | ({nxdomain => 3, servfail => 2}->{$address} // 0);
        $socket->send(substr($query, 0, 2) . pack('n5', $flags, 1, $records ? 1 : 0, 0, 0)
                      . $question . $records, 0, $peer);
    }
    POSIX::_exit(0);
}

# The second httpd, counting in the private Redis named redis://NAME:PORT/3,
# with the resolver above, and EXTRA configuration if given; its port.
sub start_resolving_server {
    my ($name, $extra) = @_;
    $> == 0 or die "needs root: a mount namespace for the second httpd's resolv.conf\n";
    start_dns();
    return start_second_server(
        "RedeemRateLimitStore redis://$name:$ENV{TEST_REDEEM_REDIS_PORT}/3\n"
          . "RedeemRateLimit redeem-user 100 3600\n" . ($extra // ''),
        'unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c',
        'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"',
        $RESOLV_CONF, $NSSWITCH_CONF);
}

# Lines of the second httpd's error log matching $re.
sub second_log_count {
    my ($re) = @_;
    my $file = var('SERVROOT') . '/second/error.log';
    open my $fh, '<', $file or die "$file: $!";
    return scalar grep { /$re/ } <$fh>;
}

# The second httpd with Redis named NAME, whose lookup fails: each of three
# redemptions answered (404) at once, limited by the host's table, and the
# outage logged once, with WHY.
sub falls_back_with {
    my ($name, $why) = @_;
    require Time::HiRes;
    user_token('lea');
    my $port = start_resolving_server($name);
    for my $n (1 .. 3) {
        my $start = Time::HiRes::time();
        my $status = redeem_on($port, 'lea', 'AAAAAAAAAAAA-AAAA-AAAAAAAA')->{status};
        my $took = Time::HiRes::time() - $start;
        $status eq '404' or die "request $n: $status";
        $took < 2 or die "request $n took ${took} s: the resolver was waited for";
    }
    second_log_count(qr/RDM0602: Redis \S+ failed \(\Q$why\E\)/) == 1
      or die "no outage logged as: $why";
    return 1;
}

sub redeem_on {
    my ($port, $user, $code) = @_;
    return api_request_to($port, 'POST', '/redeem', qq({"card_code": "$code"}),
                          'Authorization: Bearer ' . user_token($user));
}

sub codes { return @{ JSON::PP::decode_json(var('CODES')) } }

# Lines of the error log matching $re, from byte $from on.
sub log_count {
    my ($re, $from) = @_;
    my $file = var('SERVROOT') . '/error.log';
    open my $fh, '<', $file or die "$file: $!";
    seek $fh, $from // 0, 0;
    return scalar grep { /$re/ } <$fh>;
}

sub log_size { return -s var('SERVROOT') . '/error.log' }

our $METRICS = qq(<Location "/metrics">\n  SetHandler redeem-metrics\n</Location>\n);
# A generous hourly limit, with the metrics: the tests that count calls to Redis.
our $HOURLY = "$STORE\nRedeemRateLimit redeem-user 100 3600\n$METRICS";
# The blocks that assert nothing falls back give each step of a call a
# second: on a busy machine a reply of the private Redis now and then comes
# later than the default 50 ms, which is an outage as the module sees it
# (the blocks of outages keep the default, but for TESTs 6 to 7b, whose
# Redis is stopped, not slow; TESTs 19 to 19c test the setting).
our $PATIENT = "RedeemRateLimitStoreTimeout 1000\n";

# N redemptions of a code that does not exist (404, but charged to the user
# and the address) by USER, one after the other; their statuses.
sub redeem_one_by_one {
    my ($user, $n) = @_;
    return map {
        api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                    'Authorization: Bearer ' . user_token($user))->{status}
    } 1 .. $n;
}

# N redemptions of a code that does not exist (404, but charged to the user
# and the address) by USER, sent at once by forked clients; their statuses.
# The clients start together once all are forked.
sub redeem_at_once {
    my ($n, $user) = @_;
    my $token = user_token($user);
    pipe(my $r, my $w) or die "pipe: $!";
    pipe(my $go_r, my $go_w) or die "pipe: $!";
    my @pids;
    for (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            close $go_w;
            sysread $go_r, my $byte, 1; # end of file: all are forked
            my $res = api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                                  "Authorization: Bearer $token");
            syswrite $w, ($res->{status} // 'none') . "\n";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $w;
    close $go_r;
    close $go_w;
    my @statuses = map { chomp; $_ } <$r>;
    waitpid $_, 0 for @pids;
    return @statuses;
}

# N redemptions of a code that does not exist by USER, written back to back
# on N connections opened first, by this one process (forked clients come as
# the scheduler lets them, spread over milliseconds on a busy machine); their
# statuses.
sub redeem_burst {
    my ($n, $user) = @_;
    require IO::Socket::INET;
    my $port = var('PORT');
    my $body = '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}';
    my $request = "POST /redeem HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n"
      . 'Authorization: Bearer ' . user_token($user) . "\r\nContent-Type: application/json\r\n"
      . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    my @sockets = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die "connect: $!"
    } 1 .. $n;
    syswrite $_, $request for @sockets;
    return map {
        local $/;
        my $response = readline $_;
        $response =~ m{^HTTP/1\.1 (\d{3})} ? $1 : 'none';
    } @sockets;
}

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => "$STORE\n${PATIENT}RedeemRateLimit redeem-user 10 60\n")
      unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: Redis flushed, a second instance started, codes generated
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 40}
--- error_code: 201
--- save_json
CODES=codes
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
$SECOND = start_second_server("$STORE\n${PATIENT}RedeemRateLimit redeem-user 10 60\n");



=== TEST 2: ten redemptions by one user, alternating instances: all served; the 11th refused on either
--- login: uma
--- request
GET /api/health
--- error_code: 200
--- check_eval
my @codes = codes();
my @got;
for my $i (0 .. 9) {
    push @got, redeem_on($i % 2 ? $SECOND : var('PORT'), 'uma', $codes[$i])->{status};
}
"@got" eq join(' ', (200) x 10) or die "the first ten: @got";
my $a = redeem_on(var('PORT'), 'uma', $codes[10]);
my $b = redeem_on($SECOND, 'uma', $codes[11]);
$a->{status} == 429 && $b->{status} == 429 or die "the 11th and 12th: $a->{status} $b->{status}";
# The limit lives in Redis, under a keyed pseudonym (no user id in clear,
# and no plain hash a guess could be checked against): HMAC-SHA256 of the
# scope's byte, the site's tag (the first 8 bytes of the pseudonym of a
# constant), the scope's policy (its count and period, 32 bits each, big
# endian: 10 per 60 s), the user id and its token generation, under the MAC
# key's pseudonym subkey.
my $keys = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $mac_key = pack('H*', (split /\s+/, Test::Redeem::_read_file(var('SERVROOT') . '/code_mac_key'))[0]);
my $subkey = Digest::SHA::hmac_sha256('mod_redeem pseudonym v1', $mac_key);
my $tag = substr(Digest::SHA::hmac_sha256('mod_redeem rate-limit tag v1', $subkey), 0, 8);
my $name = "\x00" . $tag . pack('NN', 10, 60) . user_id('uma') . '/0';
$keys eq 'redeem:rl:redeem-user:' . substr(Digest::SHA::hmac_sha256_hex($name, $subkey), 0, 32)
  or die "keys: $keys";
$keys ne 'redeem:rl:redeem-user:' . substr(Digest::SHA::sha256_hex($name), 0, 32)
  or die 'a plain hash';
--- db_check
SELECT (SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_uma),
       (SELECT count(*) FROM audit_log WHERE actor_id = $USER_ID_uma AND outcome = 'success')
--- db_check_out
10|10



=== TEST 3: the Redis key expires by itself (its TTL is the time until the quota is whole)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $ttl = redis_cli('-n', 3, 'PTTL', $key);
$ttl > 50000 && $ttl <= 60000 or die "PTTL $ttl";



=== TEST 4: one code raced from both instances by twenty users: exactly one 200, the rest 409
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $code = (codes())[20];
my @ports = (var('PORT'), $SECOND);
user_token("racer$_") for 0 .. 19;   # registered before the race
pipe(my $r, my $w) or die;
my @pids;
for my $i (0 .. 19) {
    my $pid = fork // die;
    if (!$pid) {
        close $r;
        my $res = redeem_on($ports[$i % 2], "racer$i", $code);
        syswrite $w, ($res->{status} // 'none') . "\n";
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $w;
my @statuses = sort map { chomp; $_ } <$r>;
waitpid $_, 0 for @pids;
my %n;
$n{$_}++ for @statuses;
($n{200} // 0) == 1 && ($n{409} // 0) == 19 or die "statuses: @statuses";
--- db_check
SELECT count(*) FROM audit_log WHERE target = (SELECT 'code ' || id FROM redeem_codes WHERE used_at IS NOT NULL ORDER BY used_at DESC LIMIT 1) AND outcome = 'success'
--- db_check_out
1



=== TEST 5: Redis paused (slow): answers still come at once, limited by the host's table
--- config eval
# A server of its own: a reply over 50 ms that TEST 4's twenty racers met on a
# busy machine would be an outage still running here, not logged again.
"$STORE\nRedeemRateLimit redeem-user 10 60\n# TEST 5\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $mark = log_size();
redis_cli('CLIENT', 'PAUSE', '3000') eq 'OK' or die 'CLIENT PAUSE';
my @codes = codes();
my $start = Time::HiRes::time();
my @got = map { redeem_on(var('PORT'), 'vic', $codes[21 + $_])->{status} } 0 .. 10;
my $elapsed = Time::HiRes::time() - $start;
"@got" eq join(' ', (200) x 10, 429) or die "with Redis paused: @got";
$elapsed < 2.5 or die "eleven requests took $elapsed s";
log_count(qr/RDM0602: Redis .* failed/, $mark) == 1 or die 'the outage is logged once';
--- wait: 3



=== TEST 6: Redis stopped: still answered, still limited per host; logged once per outage
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 3 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $mark = log_size();
redis_stop();
my @got = redeem_one_by_one('wes', 4);
"@got" eq '404 404 404 429' or die "with Redis down: @got";
log_count(qr/RDM0602: Redis .* failed/, $mark) == 1 or die 'logged once';



=== TEST 7: Redis back: limits go back to it (a fresh count there), and the return is logged
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 3 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $mark = log_size();
redis_start();
Time::HiRes::sleep(1.2);   # past the retry interval
my $res = api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                      'Authorization: Bearer ' . user_token('wes'));
$res->{status} == 404 or die "back on Redis: $res->{status}";
log_count(qr/RDM0603: Redis .* answers again/, $mark) == 1 or die 'the return is logged';
redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*') ne '' or die 'nothing counted in Redis';



=== TEST 7b: a key spent while Redis answered is still spent on the host's table when Redis fails: the fallback gives no fresh quota; an outage within a minute of the last one's return is not logged again
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 3 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my @got = redeem_one_by_one('xena', 4);
"@got" eq '404 404 404 429' or die "on Redis: @got";
my $mark = log_size();
redis_cli('CLIENT', 'PAUSE', '2000') eq 'OK' or die 'CLIENT PAUSE';
my @fallback = redeem_one_by_one('xena', 2);
redis_cli('CLIENT', 'UNPAUSE');
"@fallback" eq '429 429' or die "on the host's table once Redis failed: @fallback";
# This outage began within a minute of the return TEST 7 logged: counted,
# not logged (a Redis whose slowest calls time out would log twice a second).
log_count(qr/RDM0602/, $mark) == 0 or die "an outage within the quiet minute was logged\n";
--- wait: 1.2



=== TEST 8: both scopes of /redeem in one step: the address's limit refuses first and the user's count is left as it was
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 10 60\nRedeemRateLimit redeem-ip 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
user_token('xan');   # registered (and rate-limited) before the count starts
redis_cli('CONFIG', 'RESETSTAT') eq 'OK' or die 'CONFIG RESETSTAT';
my @res = map {
    api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                'Authorization: Bearer ' . user_token('xan'))
} 1 .. 3;
my @got = map { $_->{status} } @res;
"@got" eq '404 404 429' or die "statuses: @got";
my %h = map { lc $_->[0] => $_->[1] } @{ $res[2]{headers} };
$h{ratelimit} =~ /^"redeem-ip";r=0;t=\d+$/ or die "the refusal's RateLimit: $h{ratelimit}";
$h{'ratelimit-policy'} eq '"redeem-ip";q=2;w=60' or die "its policy: $h{'ratelimit-policy'}";
# Both counts are in Redis; the user's holds two charges (6 s each), not three.
my $ip_key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-ip:*');
$ip_key =~ /^redeem:rl:redeem-ip:[0-9a-f]{32}$/ or die "address key: $ip_key";
my $user_key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $ttl = redis_cli('-n', 3, 'PTTL', $user_key);
$ttl > 6000 && $ttl <= 12000 or die "the user's key: PTTL $ttl";
# One script call per request, not one per scope (nothing else uses this Redis now).
my ($calls) = redis_cli('INFO', 'commandstats') =~ /^cmdstat_evalsha:calls=(\d+)/m;
my ($evals) = redis_cli('INFO', 'commandstats') =~ /^cmdstat_eval:calls=(\d+)/m;
($calls // 0) + ($evals // 0) == 3 or die "script calls for 3 requests: " . (($calls // 0) + ($evals // 0));



=== TEST 9: a bad token is charged to its address in Redis too: the address's third request is refused
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 10 60\nRedeemRateLimit redeem-ip 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @got = map {
    api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                'Authorization: Bearer not-a-token')->{status}
} 1 .. 2;
push @got, api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                       'Authorization: Bearer ' . user_token('yul'))->{status};
"@got" eq '401 401 429' or die "statuses: @got";
redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*') eq '' or die "a refused request charged the user";



=== TEST 10: Redis by its Unix socket (unix:///PATH?db=N): the same limits, kept in that database
--- config eval
"RedeemRateLimitStore unix://$ENV{TEST_REDEEM_REDIS_SOCKET}?db=3\n${PATIENT}RedeemRateLimit redeem-user 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @got = redeem_one_by_one('zed', 3);
"@got" eq '404 404 429' or die "statuses: @got";
redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*') =~ /^redeem:rl:redeem-user:[0-9a-f]{32}$/
  or die 'nothing counted in Redis database 3';
my $clients = redis_cli('CLIENT', 'LIST');
$clients =~ /addr=\Q$ENV{TEST_REDEEM_REDIS_SOCKET}\E/ or die "no client on the socket: $clients";



=== TEST 11: Redis closes every connection (a restart, its idle timeout): the next requests reach it on new connections, nothing falls back
--- config eval
"$HOURLY$PATIENT"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
# Pooled connections in both children: requests at once, then one by one.
my @got = (redeem_at_once(8, 'ava'), map { (redeem_at_once(1, 'ava'))[0] } 1 .. 4);
"@got" eq join(' ', (404) x 12) or die "before: @got";
my ($failures, $fallbacks) = map { metric_value($_) } qw(redeem_ratelimit_redis_failures_total
                                                   redeem_ratelimit_redis_fallbacks_total);
my $mark = log_size();
redis_cli('CLIENT', 'KILL', 'TYPE', 'normal') >= 2 or die 'no connection of the module to close';
@got = (map({ (redeem_at_once(1, 'ava'))[0] } 1 .. 4), redeem_at_once(8, 'ava'));
"@got" eq join(' ', (404) x 12) or die "after: @got";
metric_value('redeem_ratelimit_redis_failures_total') == $failures or die 'a call to Redis failed';
metric_value('redeem_ratelimit_redis_fallbacks_total') == $fallbacks or die 'a check fell back to the table';
log_count(qr/RDM0602/, $mark) == 0 or die 'an outage was logged';
# Every one of the 24 charges is in Redis: 100 an hour, 24 taken.
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $ttl = redis_cli('-n', 3, 'PTTL', $key);
$ttl > 23 * 36000 && $ttl <= 24 * 36000 or die "the user's key holds PTTL $ttl, not 24 charges";
user_token('bea'); # TEST 12's user, registered here: there a late reply would begin its outage early



=== TEST 12: Redis paused: its first failure puts the host on its table for a second
--- config eval
$HOURLY
--- request
GET /api/health
--- error_code: 200
--- wait: 1.2
--- check_eval
user_token('bea');   # registered before Redis pauses
$FAILURES = metric_value('redeem_ratelimit_redis_failures_total');
redis_cli('CLIENT', 'PAUSE', '5000') eq 'OK' or die 'CLIENT PAUSE';
my @got = redeem_at_once(1, 'bea');
"@got" eq '404' or die "with Redis paused: @got";
metric_value('redeem_ratelimit_redis_failures_total') == $FAILURES + 1 or die 'the first call did not fail';
Time::HiRes::sleep(1.2);   # past the retry time



=== TEST 13: ... then, past the retry time, of sixteen requests at once one tries Redis, the others go straight to the table
--- config eval
$HOURLY
--- request
POST /redeem
--- request_json
{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}
--- token_eval
user_token('bea')
--- concurrency: 16
--- error_code_counts
404: 16



=== TEST 14: ... (counted)
--- config eval
$HOURLY
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('CLIENT', 'UNPAUSE') eq 'OK' or die 'CLIENT UNPAUSE';
my $tried = metric_value('redeem_ratelimit_redis_failures_total') - $FAILURES - 1;
$tried == 1 or die "16 requests at once past the retry time: $tried of them tried Redis";



=== TEST 15: Redis's clock went back an hour: a key refused is pulled in to one period ahead, not refused for the hour
--- config eval
"$STORE\n${PATIENT}RedeemRateLimit redeem-user 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- wait: 1.2
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @got = redeem_at_once(1, 'cal');
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
$key =~ /^redeem:rl:redeem-user:/ or die "no key: @got";
# The key as Redis's clock an hour ahead left it: its time an hour from now.
my ($s, $us) = split /\n/, redis_cli('TIME');
my $now = $s * 1000 + int($us / 1000);
redis_cli('-n', 3, 'SET', $key, $now + 3_600_000) eq 'OK' or die 'SET';
my $res = api_request('POST', '/redeem', '{"card_code": "AAAAAAAAAAAA-AAAA-AAAAAAAA"}',
                      'Authorization: Bearer ' . user_token('cal'));
$res->{status} == 429 or die "refused: $res->{status}";
my $tat = redis_cli('-n', 3, 'GET', $key);
my $ttl = redis_cli('-n', 3, 'PTTL', $key);
$tat <= $now + 60_000 + 1000 or die "the key still runs " . ($tat - $now) . " ms ahead";
$ttl > 0 && $ttl <= 60_000 or die "the key expires in $ttl ms";



=== TEST 16: RedeemRateLimitStoreAuthFile USER PASSWORD: the module authenticates as that ACL user, and counts in Redis
--- config eval
"$STORE\n${PATIENT}RedeemRateLimitStoreAuthFile $AUTH_FILE\nRedeemRateLimit redeem-user 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- wait: 1.2
--- check_eval
redis_cli('ACL', 'SETUSER', 'modredeem', 'reset', 'on', ">$AUTH_PASSWORD", '~redeem:*', '+@all') eq 'OK'
  or die 'ACL SETUSER';
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @got = redeem_one_by_one('dot', 3);
"@got" eq '404 404 429' or die "statuses: @got";
redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*') =~ /^redeem:rl:redeem-user:[0-9a-f]{32}$/
  or die 'nothing counted in Redis';
redis_cli('CLIENT', 'LIST') =~ /\buser=modredeem\b/ or die 'no connection as the ACL user';
--- no_error_log
RDM0602



=== TEST 17: ... with a wrong password: Redis refuses, limits fall back to the host's table, and the log says why
--- config eval
"$STORE\nRedeemRateLimitStoreAuthFile $WRONG_AUTH_FILE\nRedeemRateLimit redeem-user 2 60\n"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @got = redeem_one_by_one('eli', 3);
redis_cli('ACL', 'DELUSER', 'modredeem') eq '1' or die 'ACL DELUSER';
"@got" eq '404 404 429' or die "statuses: @got";
redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*') eq '' or die 'counted in Redis with a wrong password';
--- error_log
AUTH refused (RedeemRateLimitStoreAuthFile)



=== TEST 18: the host's table sized for Redis mode (redis://... 64): what Redis allows is charged to a table of 64 entries, and 300 addresses evict (and count) there, while Redis still limits each of them
--- config eval
"LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so\nRemoteIPHeader X-Forwarded-For\n"
  . "RemoteIPInternalProxy 127.0.0.1\n$STORE 64\n${PATIENT}RedeemRateLimit login-ip 1 60\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my $evictions = metric_value('redeem_ratelimit_evictions_total');
my @first = map {
    api_request('POST', '/api/login', '{}', 'X-Forwarded-For: 10.28.' . int($_ / 256) . '.' . ($_ % 256))->{status}
} 1 .. 300;
my @refused = grep { $_ != 400 } @first;
!@refused or die 'first attempts of fresh addresses refused: ' . scalar(@refused) . "\n";
my $again = api_request('POST', '/api/login', '{}', 'X-Forwarded-For: 10.28.0.1')->{status};
$again == 429 or die "the first address again (its state in Redis): $again\n";
metric_value('redeem_ratelimit_evictions_total') > $evictions or die "300 keys in 64 slots, no eviction counted\n";
--- no_error_log
RDM0602



=== TEST 19: a Redis that answers a byte every 20 ms (through a relay): each call still gives up after 50 ms in all, not 50 ms a read: the limits fall back to the host's table, and the failure is counted and logged with its reason
--- config eval
"RedeemRateLimitStore redis://127.0.0.1:" . relay('trickle') . "/3\nRedeemRateLimit redeem-user 100 3600\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $failures = metric_value('redeem_ratelimit_redis_failures_total');
my @got = redeem_one_by_one('gus', 2);
"@got" eq '404 404' or die "statuses: @got";
metric_value('redeem_ratelimit_redis_failures_total') > $failures or die 'no failure counted';
--- error_log
/RDM0602: Redis \S+ failed \((?:no answer within 50 ms|connected, but no answer to AUTH or SELECT within 50 ms)\)/



=== TEST 19b: RedeemRateLimitStoreTimeout 300: a Redis each of whose replies comes 80 ms late (through a relay), which the default 50 ms gives up on, is waited for: the limits count in Redis, no call fails, nothing falls back
--- config eval
"RedeemRateLimitStore redis://127.0.0.1:" . relay('lag') . "/3\nRedeemRateLimitStoreTimeout 300\n"
  . "RedeemRateLimit redeem-user 100 3600\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('gil');
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my ($failures, $fallbacks) = map { metric_value($_) } qw(redeem_ratelimit_redis_failures_total
                                                   redeem_ratelimit_redis_fallbacks_total);
my @got = redeem_one_by_one('gil', 3);
"@got" eq '404 404 404' or die "statuses: @got";
metric_value('redeem_ratelimit_redis_failures_total') == $failures or die 'a call to Redis failed';
metric_value('redeem_ratelimit_redis_fallbacks_total') == $fallbacks or die 'a check fell back to the table';
# 100 an hour, 3 taken, in Redis.
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $ttl = redis_cli('-n', 3, 'PTTL', $key);
$ttl > 2 * 36000 && $ttl <= 3 * 36000 or die "the user's key holds PTTL $ttl, not 3 charges";
--- no_error_log
RDM0602



=== TEST 19c: ... and RedeemRateLimitStoreTimeout 120 with the Redis of TEST 19 (a byte every 20 ms): a call gives up after 120 ms, not 50, and the log says so
--- config eval
"RedeemRateLimitStore redis://127.0.0.1:" . relay('trickle') . "/3\nRedeemRateLimitStoreTimeout 120\n"
  . "RedeemRateLimit redeem-user 100 3600\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
require Time::HiRes;
user_token('gia');   # its registration and login fail on Redis: the host is on its table
Time::HiRes::sleep(1.2); # ... for a second
my $failures = metric_value('redeem_ratelimit_redis_failures_total');
my $start = Time::HiRes::time();
my @got = redeem_one_by_one('gia', 1);
my $took = Time::HiRes::time() - $start;
"@got" eq '404' or die "statuses: @got";
metric_value('redeem_ratelimit_redis_failures_total') > $failures or die 'no failure counted';
$took >= 0.12 or die "the request took ${took} s: Redis was given up before 120 ms";
--- error_log
/RDM0602: Redis \S+ failed \((?:no answer within 120 ms|connected, but no answer to AUTH or SELECT within 120 ms)\)/



=== TEST 20: a key of ours that holds another type (someone wrote a list there) counts as new and is overwritten: the request is limited in Redis as usual, no fallback, no failure, and the key is a count again
--- config eval
"$HOURLY$PATIENT"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my @first = redeem_one_by_one('hal', 1);
"@first" eq '404' or die "first: @first";
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
$key =~ /^redeem:rl:redeem-user:[0-9a-f]{32}$/ or die "key: $key";
redis_cli('-n', 3, 'DEL', $key) eq '1' or die 'DEL';
redis_cli('-n', 3, 'RPUSH', $key, 'not-a-count') eq '1' or die 'RPUSH';
my $failures = metric_value('redeem_ratelimit_redis_failures_total');
my @next = redeem_one_by_one('hal', 2);
"@next" eq '404 404' or die "next: @next";
metric_value('redeem_ratelimit_redis_failures_total') == $failures or die 'a failure counted';
redis_cli('-n', 3, 'TYPE', $key) eq 'string' or die 'the key not overwritten';
--- no_error_log
RDM0602



=== TEST 21: the calls of a child that come while one is in flight go to Redis together, in shared round trips (a relay holds each reply back 15 ms): twelve redemptions at once by one user of ten an hour are each charged once, in Redis, exactly ten served
--- config eval
"RedeemRateLimitStore redis://127.0.0.1:" . relay('delay') . "/3\n${PATIENT}RedeemRateLimit redeem-user 10 3600\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('ivy'); # registered first: that is a call of its own (register-ip)
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my ($calls, $trips, $failures) = map { metric_value($_) } qw(redeem_ratelimit_redis_calls_total
  redeem_ratelimit_redis_round_trips_total redeem_ratelimit_redis_failures_total);
my @got = sort(redeem_burst(12, 'ivy'));
"@got" eq join(' ', ('404') x 10, ('429') x 2) or die "statuses: @got";
metric_value('redeem_ratelimit_redis_failures_total') == $failures or die 'a call to Redis failed';
my $sent = metric_value('redeem_ratelimit_redis_calls_total') - $calls;
$sent == 12 or die "$sent calls to Redis, not 12";
my $round_trips = metric_value('redeem_ratelimit_redis_round_trips_total') - $trips;
# One a call (12) without the line; 2 to 4 in its runs here, as beside
# two busy loops (two children, each with its first call in flight while
# the others come).
$round_trips >= 2 && $round_trips <= 10
  or die "$round_trips round trips for 12 calls: too few to have carried them all, or no line";
my @keys = split /\n/, redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
@keys == 1 or die 'keys: ' . scalar @keys;
--- no_error_log
RDM0602



=== TEST 22: a call in line waits for its turn as long as the call in flight can take: here Redis closed the child's pooled connection and forgot the script (a relay holds each reply 33 ms), so the call in flight meets the close, connects again with AUTH and SELECT, and sends the script whole, about 165 ms in all; the calls of the twelve redemptions that came meanwhile wait for it, none gives up in line (before, ten of the twelve gave up in line at 150 ms, each a failure of a Redis that answered; debug logs each failed call, RDM0608)
--- config eval
"RedeemRateLimitStore redis://127.0.0.1:" . relay('slow') . "/3\nRedeemRateLimitStoreAuthFile $AUTH_FILE\n"
  . "RedeemRateLimit redeem-user 10 3600\nLogLevel warn redeem:debug\n$METRICS"
--- request
GET /api/health
--- error_code: 200
--- check_eval
redis_cli('ACL', 'SETUSER', 'modredeem', 'reset', 'on', ">$AUTH_PASSWORD", '~redeem:*', '+@all') eq 'OK'
  or die 'ACL SETUSER';
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
# Registrations on connections of their own: each child that takes one
# keeps a connection to Redis (register-ip's call).
user_token("kay$_") for 1 .. 6;
redis_cli('SCRIPT', 'FLUSH') eq 'OK' or die 'SCRIPT FLUSH';
redis_cli('CLIENT', 'KILL', 'USER', 'modredeem');
my @got = redeem_burst(12, 'kay1');
redis_cli('ACL', 'DELUSER', 'modredeem') eq '1' or die 'ACL DELUSER';
# Each answered. (How many are served is not asked here: on a busy machine
# the relay may make a step too late for some calls, whose requests then
# count in the host's table alone. With the line as it was, all twelve were
# served: the ten that gave up counted in the table before Redis's charges
# reached it.)
!grep({ $_ ne '404' && $_ ne '429' } @got) or die "statuses: @got";
--- no_error_log
no turn for this child's call



=== TEST 23: Redis named by a host name, looked up through DNS (a resolver this file plays, seen by a second httpd alone through a resolv.conf of its own): the limits count in Redis as by its address, nothing falls back
--- request
GET /api/health
--- error_code: 200
--- check_eval
user_token('lea');
redis_cli('-n', 3, 'FLUSHDB') eq 'OK' or die 'FLUSHDB';
my $port = start_resolving_server('redis.test', $PATIENT);
my @got = map { redeem_on($port, 'lea', 'AAAAAAAAAAAA-AAAA-AAAAAAAA')->{status} } 1 .. 3;
"@got" eq '404 404 404' or die "statuses: @got";
# 100 an hour, 3 taken, in Redis.
my $key = redis_cli('-n', 3, 'KEYS', 'redeem:rl:redeem-user:*');
my $ttl = redis_cli('-n', 3, 'PTTL', $key);
$ttl > 2 * 36000 && $ttl <= 3 * 36000 or die "the user's key holds PTTL $ttl, not 3 charges";
second_log_count(qr/RDM0602/) == 0 or die 'an outage was logged';



=== TEST 24: ... a resolver that never answers: each request is still answered at once (the lookup given up after 50 ms, left to end in glibc's thread; before, each new connection waited out the resolver: 10 s here, 5 s for each of hiredis's two lookups), the limits fall back to the host's table, and the log says why
--- request
GET /api/health
--- error_code: 200
--- check_eval
falls_back_with('silent.test', 'no answer from the resolver for its host name within 50 ms');



=== TEST 25: ... a name the resolver says does not exist (NXDOMAIN): the same, and the log says so
--- request
GET /api/health
--- error_code: 200
--- check_eval
falls_back_with('missing.test', 'its host name has no address');



=== TEST 26: ... a resolver that fails (SERVFAIL): the same, and the log says the lookup failed, not that the name has no address
--- request
GET /api/health
--- error_code: 200
--- check_eval
falls_back_with('failing.test',
                'the lookup of its host name failed (the resolver failed or is unreachable)');
