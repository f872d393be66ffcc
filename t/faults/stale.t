# A pooled connection that dies as it is used: httpd reaches PostgreSQL
# through a loopback proxy run by this file, which on command dooms every
# connection it carries: the next bytes httpd sends on one are not forwarded,
# and both sides are closed. The module's check of an idle connection cannot
# see this coming (nothing arrives before it writes), just as it cannot see a
# backend that was signalled a moment before (pg_terminate_backend returns
# before the backend acts), a failover, or a connection a firewall dropped.
# The database itself is up and takes new connections, so the request must
# still succeed: reconnect and run the statement that never reached it.
use lib 't/lib';
use Test::Redeem;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

our ($PROXY_PID, $PROXY_PORT, $PROXY_CTL, $PROXY_ACK);

# The config that sends the module's connections through the proxy. The
# children are fixed (two, none spawned or stopped as load comes and goes): a
# child the MPM spawned after a doom would bring connections the proxy never
# doomed, and a request it took would see no fault at all.
sub proxy_config {
    start_proxy() unless $PROXY_PID;
    return sprintf(qq{DBDParams "host=127.0.0.1 port=%d dbname=%s user=%s password=%s gssencmode=disable"\n}
                   . qq{StartServers 2\nMinSpareThreads 1\nMaxSpareThreads 250\n},
                   $PROXY_PORT, var('DB_NAME'), $ENV{REDEEM_APP_USER}, $ENV{REDEEM_APP_PASSWORD});
}

# httpd as it is without mod_unique_id: no UNIQUE_ID (mod_rewrite unsets
# it as the URL is translated, before any handler runs; mod_env's UnsetEnv
# cannot: it only drops what SetEnv or PassEnv would have set).
sub no_unique_id {
    return "<IfModule !rewrite_module>\n  LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so\n"
         . "</IfModule>\nRewriteEngine On\nRewriteRule ^ - [E=!UNIQUE_ID]\n";
}

# Dooms every connection the proxy carries now; returns when it has. For
# db_init eval: doom_connections() > 0 or die; 'SELECT 1'
sub doom_connections {
    my ($mode) = @_;
    syswrite($PROXY_CTL, $mode // 'd') == 1 or die "proxy control: $!\n";
    sysread($PROXY_ACK, my $ack, 16) or die "no answer from the proxy\n";
    return $ack;   # the number of connections doomed
}

sub start_proxy {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                       Listen => 128, ReuseAddr => 1) or die "proxy listen: $!\n";
    $PROXY_PORT = $listen->sockport;
    pipe(my $ctl_r, $PROXY_CTL) or die "pipe: $!\n";
    pipe($PROXY_ACK, my $ack_w) or die "pipe: $!\n";
    $PROXY_PID = fork // die "fork: $!\n";
    if (!$PROXY_PID) {
        close $PROXY_CTL;
        close $PROXY_ACK;
        # Never back into the harness from here, whatever happens.
        eval { proxy_loop($listen, $ctl_r, $ack_w) };
        print STDERR "proxy: $@" if $@;
        POSIX::_exit(0);
    }
    close $ctl_r;
    close $ack_w;
    close $listen;
}

# The proxy ends when its control pipe closes; reap it.
END {
    if ($PROXY_PID) {
        close $PROXY_CTL;
        waitpid $PROXY_PID, 0;
    }
}

# A Bind of the module's statement $name (B, its length, the unnamed portal,
# the statement's label, redeem_<name>), not the Parse that prepares it on a
# new connection; redeem also matches redeem_again, its other first run.
sub bind_of {
    my ($name) = @_;
    my $again = $name eq 'redeem' ? '(?:_again)?' : '';
    return qr/B.{4}\0redeem_\Q$name\E$again\0/s;
}

# Until the control pipe closes (this file's process ends).
sub proxy_loop {
    my ($listen, $ctl, $ack) = @_;
    $SIG{PIPE} = 'IGNORE';
    my (%peer, %is_client, %doomed, %reply_doomed, %orphan,
        %hang_up, %at_bind, %hang_up_at_sync, %hold_from, %held, @late, %stall_at,
        @stalled);
    my $sel = IO::Select->new($listen, $ctl);
    my $drop = sub {
        my @pair = ($_[0], $peer{"$_[0]"});
        for my $fh (@pair) {
            next unless $fh;
            $sel->remove($fh);
            delete @{$_}{"$fh"} for \%peer, \%is_client, \%doomed, \%reply_doomed, \%hang_up,
              \%at_bind, \%hang_up_at_sync;
            close $fh;
        }
    };
    # httpd's side of a pair closed, the database's kept open and drained.
    my $orphan_server = sub {
        my ($server) = @_;
        my $client = delete $peer{"$server"};
        $orphan{"$server"} = 1;
        return unless $client;
        delete $peer{"$client"};
        delete @{$_}{"$client"} for \%is_client, \%doomed, \%hang_up, \%at_bind;
        $sel->remove($client);
        close $client;
    };
    while (1) {
        # Held bytes due (L): delivered to the database, whose side then closes.
        for my $late (grep { $_->{due} <= Time::HiRes::time() } @late) {
            syswrite($late->{server}, $late->{bytes});
            $late->{due} = 9e9;
            $late->{close_at} = Time::HiRes::time() + 1;
        }
        for my $late (grep { ($_->{close_at} // 9e9) <= Time::HiRes::time() } @late) {
            $sel->remove($late->{server});
            delete $orphan{"$late->{server}"};
            close $late->{server};
            $late->{done} = 1;
        }
        @late = grep { !$_->{done} } @late;
        # Silent paths due (S): closed, both sides.
        for my $stall (grep { $_->{until} <= Time::HiRes::time() } @stalled) {
            $drop->($stall->{client});
            $stall->{done} = 1;
        }
        @stalled = grep { !$_->{done} } @stalled;
        for my $fh ($sel->can_read(@late || @stalled ? 0.05 : undef)) {
            if ($fh == $ctl) {
                POSIX::_exit(0) unless sysread($ctl, my $cmd, 1);
                # d: the next bytes from httpd are not forwarded. The others
                # act once, on whichever connection first sends the bytes
                # that run (bind) a statement, not on whatever a connection
                # sends first (one the request itself readies sends its
                # schema check before):
                # r: a redemption's (redeem, redeem_again) bytes are
                # forwarded, and the database's reply to them is lost;
                # h: they are forwarded, and httpd's side is closed at once
                # while the database's stays open (a proxy or NAT that
                # dropped the connection: the backend goes on with the
                # statement, unaware); s: as h, and then nothing moves
                # through the proxy for 1.5 s (the reconnection is slow);
                # c: the bytes of codes_insert are not forwarded;
                # a: as r, for audit_insert; g: as r, for codes_begin (a
                # batch's first statement); G: as h, once the bytes that end
                # the transaction of a codes_begin (its Sync) are forwarded:
                # the whole batch reaches the database, and only then is
                # httpd's side closed; L: from the bytes of codes_begin on,
                # what httpd sends is held, and once httpd closes its side,
                # delivered to the database 3 s later (a network that held
                # them, TCP resending them); S: from the bytes of
                # codes_insert on, httpd's side is not read for 15 s (a path
                # gone silent: httpd's writes fill the sockets' buffers,
                # shrunk here, and stop), then both sides are closed.
                for my $client (keys %is_client) {
                    # The latest command alone holds: marks do not pile up.
                    delete @{$_}{$client} for \%doomed, \%hang_up, \%at_bind, \%stall_at;
                    # What befalls the bytes of the first Bind of a statement.
                    if ($cmd eq 'c') { $at_bind{$client} = ['drop', bind_of('codes_insert')] }
                    elsif ($cmd eq 'r') { $at_bind{$client} = ['lose_reply', bind_of('redeem')] }
                    elsif ($cmd eq 'a') { $at_bind{$client} = ['lose_reply', bind_of('audit_insert')] }
                    elsif ($cmd eq 'g') { $at_bind{$client} = ['lose_reply', bind_of('codes_begin')] }
                    elsif ($cmd eq 'G') { $at_bind{$client} = ['hang_up_at_sync', bind_of('codes_begin')] }
                    elsif ($cmd eq 'h' || $cmd eq 's') { $at_bind{$client} = [$cmd, bind_of('redeem')] }
                    elsif ($cmd eq 'L') { $hold_from{$client} = bind_of('codes_begin') }
                    elsif ($cmd eq 'S') {
                        $stall_at{$client} = bind_of('codes_insert');
                        # Small buffers, so that a batch's bytes fill them.
                        my ($fh) = grep { "$_" eq $client } $sel->handles;
                        setsockopt($fh, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 8192) if $fh;
                    }
                    else { $doomed{$client} = 1 }
                }
                syswrite $ack, scalar(keys %is_client);
            }
            elsif ($fh == $listen) {
                my $client = $listen->accept or next;
                my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{PGPORT},
                                                   Proto => 'tcp')
                  or do { close $client; next };
                $peer{"$client"} = $server;
                $peer{"$server"} = $client;
                $is_client{"$client"} = 1;
                $sel->add($client, $server);
            }
            elsif ($orphan{"$fh"}) {
                # A database side whose httpd side is gone: drain it.
                next if sysread($fh, my $gone, 65536);
                $sel->remove($fh);
                delete $orphan{"$fh"};
                close $fh;
            }
            elsif ($peer{"$fh"}) {
                my $n = sysread($fh, my $buf, 65536);
                if (defined $held{"$fh"} || ($n && $hold_from{"$fh"} && $buf =~ $hold_from{"$fh"})) {
                    %hold_from = ();
                    if ($n) { $held{"$fh"} .= $buf; next }
                    # httpd gave up: its side closes, the held bytes go later.
                    my $server = delete $peer{"$fh"};
                    push @late, { server => $server, bytes => delete $held{"$fh"},
                                  due => Time::HiRes::time() + 3 };
                    delete $peer{"$server"};
                    $orphan{"$server"} = 1;
                    $sel->remove($fh);
                    delete @{$_}{"$fh"} for \%is_client, \%doomed, \%hang_up;
                    close $fh;
                    next;
                }
                if ($n && $reply_doomed{"$fh"}) {
                    # The reply is lost on its way: httpd's side closes, the
                    # database's side stays open (so the database finishes,
                    # commit included) and what it sends is dropped.
                    $orphan_server->($fh);
                    next;
                }
                if ($n && $stall_at{"$fh"} && $buf =~ $stall_at{"$fh"}) {
                    # Forwarded as far as here; then nothing more is read.
                    %stall_at = ();
                    syswrite($peer{"$fh"}, $buf);
                    $sel->remove($fh);
                    push @stalled, { client => $fh, until => Time::HiRes::time() + 15 };
                    next;
                }
                if (!$n || $doomed{"$fh"} || $reply_doomed{"$fh"}) {
                    $drop->($fh);
                    next;
                }
                my $to = $peer{"$fh"};
                my $at = $at_bind{"$fh"};
                if ($n && $at && $buf =~ $at->[1]) {
                    %at_bind = ();
                    if ($at->[0] eq 'drop') { $drop->($fh); next }
                    if ($at->[0] eq 'lose_reply') { $reply_doomed{"$to"} = 1 }
                    elsif ($at->[0] eq 'hang_up_at_sync') { $hang_up_at_sync{"$fh"} = 1 }
                    else { $hang_up{"$fh"} = $at->[0] }
                }
                if ($hang_up_at_sync{"$fh"} && $n >= 5 && substr($buf, -5) eq "S\0\0\0\x04") {
                    delete $hang_up_at_sync{"$fh"};
                    $hang_up{"$fh"} = 'h';
                }
                for (my $off = 0; $off < $n;) {
                    my $w = syswrite($to, $buf, $n - $off, $off);
                    if (!defined $w) { $drop->($fh); last }
                    $off += $w;
                }
                if (my $hung_up = delete $hang_up{"$fh"}) {
                    $orphan_server->($to);
                    select undef, undef, undef, 1.5 if $hung_up eq 's';
                }
            }
        }
    }
}

# Holds the row of user $id locked for $seconds from a psql of its own, and
# returns once it is held: a redemption for that user claims its code and
# then waits, inside the database, for the user's row.
sub lock_user_row {
    my ($id, $seconds) = @_;
    $id =~ /^\d+$/ or die "user id: $id\n";
    my $pid = sql_in_background("BEGIN; SELECT FROM users WHERE id = $id FOR UPDATE; SELECT pg_sleep($seconds); COMMIT");
    sql_until("the user's row locked", q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'
                 AND query LIKE 'BEGIN; SELECT FROM users WHERE id = % FOR UPDATE;%'});
    return $pid;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: through the proxy: codes generated (the proxy carries the traffic)
--- config eval
proxy_config()
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 5}
--- error_code: 201
--- save_json
CODE0=codes.0
CODE1=codes.1
CODE2=codes.2
CODE3=codes.3
CODE4=codes.4



=== TEST 80: without mod_unique_id's UNIQUE_ID (unset here; httpd without mod_unique_id has none): a code for TEST 82
--- config eval
proxy_config() . no_unique_id()
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
CODE6=codes.0



=== TEST 81: every pooled connection of that server in use, so that TEST 82's redemption takes one the proxy dooms
--- config eval
proxy_config() . no_unique_id()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 82: without UNIQUE_ID, the reply to a redemption lost after it committed: run again, it still finds its own claim by the module's own request id: 200 once, one audit row, one month
--- config eval
proxy_config() . no_unique_id()
--- login: vera
--- db_init eval
doom_connections('r') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE6"}
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=redeem .* outcome=replayed request=[0-9a-f]{32}$/
--- db_check
SELECT count(*), min(outcome), bool_and(request_id ~ '^[0-9a-f]{32}$') FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_vera;
SELECT count(*), bool_and(used_request ~ '^[0-9a-f]{32}$') FROM redeem_codes WHERE used_by = $USER_ID_vera;
SELECT (SELECT subscription_expires_at FROM users WHERE id = $USER_ID_vera)
     = (SELECT used_at FROM redeem_codes WHERE used_by = $USER_ID_vera) + interval '1 month';
--- db_check_out
1|success|t
1|t
t




=== TEST 2: through the proxy: many requests at once
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 3: every connection doomed: health right after is still 200
--- config eval
proxy_config()
--- db_init eval
doom_connections() > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
GET /api/health
--- error_code: 200
--- response_json_exact
{"status": "healthy", "message": "User Registration API is running"}



=== TEST 4: every connection doomed: a redemption right after is 200, once
--- config eval
proxy_config()
--- db_init eval
doom_connections() > 0 or die "no connection to doom\n";
'SELECT 1'
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE0"}
--- error_code: 200
--- db_check
SELECT count(*), min(used_by) = $USER_ID_alice FROM redeem_codes WHERE used_at IS NOT NULL AND used_by <> $USER_ID_vera;
SELECT outcome FROM audit_log WHERE event = 'redeem' AND actor_id <> $USER_ID_vera;
--- db_check_out
1|t
success



=== TEST 5: every connection doomed: a login right after is 200
--- config eval
proxy_config()
--- db_init eval
doom_connections() > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /api/login
--- request_json
{"email": "alice@example.test", "password": "$USER_PASSWORD"}
--- error_code: 200



=== TEST 6: every connection doomed: 20 requests at once
--- config eval
proxy_config()
--- db_init eval
doom_connections() > 0 or die "no connection to doom\n";
'SELECT 1'
--- login: alice
--- request
GET /api/subscription
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 7: (control) with no connection doomed, all is well through the proxy
--- config eval
proxy_config()
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE1"}
--- error_code: 200



=== TEST 8: the connection lost as the first of a batch's statements goes (the batch is its admin's check, three statements of codes and the audit row, one transaction): 503, nothing stored
--- config eval
proxy_config()
--- db_init eval
doom_connections('c') > 0 or die "no connection to doom\n";
'CREATE TABLE t_before AS SELECT count(*) AS codes FROM redeem_codes'
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 12000}
--- timeout: 60
--- error_code: 503
--- response_json_exact
{"error": "Service temporarily unavailable"}
--- db_check
SELECT (SELECT count(*) FROM redeem_codes) - codes FROM t_before;
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND occurred_at >= '$REQUEST_TIME';
--- db_check_out
0
0
--- error_log
/RDM0101: database (?:statement codes_insert|pipeline, statement [12] of \d+) failed \(connection lost\)/



=== TEST 9: the next batch is stored whole (on a connection made anew)
--- config eval
proxy_config()
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 12000}
--- timeout: 60
--- error_code: 201
--- db_check
SELECT (SELECT count(*) FROM redeem_codes) - codes, (SELECT sum(total) FROM code_counts) = (SELECT count(*) FROM redeem_codes) FROM t_before;
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND occurred_at >= '$REQUEST_TIME';
--- db_check_out
12000|t
1



=== TEST 10: every pooled connection in use once more: those the doomed blocks left dead are replaced, so that the next block's redemption takes a live (and then doomed) one, not a dead one it would reconnect
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 90: the reply to a redemption lost after it committed: run again, it finds its own claim: 200 once, one audit row, one month
--- config eval
proxy_config()
--- login: rory
--- db_init eval
doom_connections('r') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE3"}
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=redeem .* outcome=replayed/
--- db_check
SELECT count(*) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_rory;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_rory;
SELECT (SELECT subscription_expires_at FROM users WHERE id = $USER_ID_rory)
     = (SELECT used_at FROM redeem_codes WHERE used_by = $USER_ID_rory) + interval '1 month';
--- db_check_out
1
1
t



=== TEST 91: the connection lost while its redemption still runs in the database (a proxy dropped it; the backend, held up on the user's row, commits after the statement began again on a new connection): 200 once, one audit row, one month
--- config eval
proxy_config()
--- login: sam
--- db_init eval
lock_user_row(user_id('sam'), 2);
doom_connections('h') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE4"}
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- save_json
EXPIRY=new_subscription_expiry
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
RDM0701
/RDM0401: audit: event=redeem .* outcome=replayed/
--- db_check
SELECT count(*), min(outcome) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_sam;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_sam;
SELECT (SELECT subscription_expires_at FROM users WHERE id = $USER_ID_sam)
     = (SELECT used_at FROM redeem_codes WHERE used_by = $USER_ID_sam) + interval '1 month';
SELECT api_ts(subscription_expires_at) = '$EXPIRY' FROM users WHERE id = $USER_ID_sam;
--- db_check_out
1|success
1
t
t



=== TEST 92: every pooled connection in use once more, so that those TEST 91 left marked or dead are replaced before the next block
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 93: a code another user redeemed, its request's connection lost before the statement ran: run again, 409, and one audit row (the run again writes nothing for "used": the statement after it does)
--- config eval
proxy_config()
--- login: tess
--- db_init eval
doom_connections() > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE0"}
--- error_code: 409
--- response_json_exact
{"error": "Code has already been used"}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
RDM0701
/RDM0401: audit: event=redeem .* outcome=used/
--- db_check
SELECT count(*), min(outcome) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_tess;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_tess;
--- db_check_out
1|used
0



=== TEST 94: every pooled connection in use once more, so that those TEST 93 left marked or dead are replaced before the next block
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 95: a code for TEST 96 (a code that expires while a redemption of it, its connection lost, still runs in the database, held up on the user's row, and whose run again begins after the expiry)
--- config eval
proxy_config()
--- login: admin
--- request
POST /admin/generate-codes
--- request_json
{"count": 1}
--- error_code: 201
--- save_json
CODE5=codes.0
BATCH5=batch_id



=== TEST 96: the redemption of TEST 95's code (it expires 0.7 s after the request; the run again reaches the database 1.5 s after it; the user's row is let go after 4 s): the run again waits for the first run's claim instead of calling the code expired: 200 once, one audit row
--- config eval
proxy_config()
--- login: uma
--- db_init eval
lock_user_row(user_id('uma'), 4);
doom_connections('s') > 0 or die "no connection to doom\n";
"UPDATE redeem_codes SET expires_at = clock_timestamp() + interval '0.7 s' WHERE batch_id = '" . var('BATCH5') . "'"
--- request
POST /redeem
--- request_json
{"card_code": "$CODE5"}
--- error_code: 200
--- response_json
{"message": "Code redeemed successfully", "subscription_extended": true}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
RDM0701
/RDM0401: audit: event=redeem .* outcome=replayed/
--- db_check
SELECT count(*), min(outcome) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_uma;
SELECT count(*), bool_and(used_at < expires_at) FROM redeem_codes WHERE used_by = $USER_ID_uma;
--- db_check_out
1|success
1|t



=== TEST 97: every pooled connection in use once more, so that those TEST 96 left marked or dead are replaced before the next block
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 98: a code another user redeemed, the reply to its refusal lost after it committed: run again, 409, and the attempt's one audit row (the first run's), not a second
--- config eval
proxy_config()
--- login: xena
--- db_init eval
doom_connections('r') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json
{"card_code": "$CODE0"}
--- error_code: 409
--- response_json_exact
{"error": "Code has already been used"}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=redeem .* outcome=used/
--- db_check
SELECT count(*), min(outcome), count(DISTINCT request_id) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_xena;
SELECT count(*) FROM redeem_codes WHERE used_by = $USER_ID_xena;
--- db_check_out
1|used|1
0



=== TEST 99: every pooled connection in use once more, so that those TEST 98 left marked or dead are replaced before the next block
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 100: a code that does not exist (but passes the check), the reply to its refusal lost after it committed: run again, 404, and one audit row
--- config eval
proxy_config()
--- login: yuri
--- db_init eval
doom_connections('r') > 0 or die "no connection to doom\n";
"DELETE FROM redeem_codes WHERE batch_id = '" . var('BATCH5') . "'"
--- request
POST /redeem
--- request_json
{"card_code": "$CODE5"}
--- error_code: 404
--- response_json_exact
{"error": "Invalid redeem code"}
--- error_log
/RDM0108: statement redeem could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=redeem .* outcome=not_found/
--- db_check
SELECT count(*), min(outcome), count(DISTINCT request_id) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_yuri;
--- db_check_out
1|not_found|1



=== TEST 101: every pooled connection in use once more, so that those TEST 100 left marked or dead are replaced before the next block
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 102: an admin's read of another user's subscription, the reply to its audit row lost after it committed: run again, it finds the row its first run wrote: 200 with the data (it was 503 with the row standing), one row
--- config eval
proxy_config()
--- login: admin
--- db_init eval
user_id('zora');
doom_connections('a') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request eval
"GET /subscription/" . user_id('zora')
--- error_code: 200
--- response_json
{"is_subscribed": false}
--- error_log
/RDM0108: statement audit_insert could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=subscription_read .* outcome=success/
--- db_check
SELECT count(*), min(outcome), count(DISTINCT request_id) FROM audit_log WHERE event = 'subscription_read' AND target = 'user $USER_ID_zora';
--- db_check_out
1|success|1



=== TEST 103: every pooled connection in use once more
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 104: a redemption for another user's account (forbidden, audited before any lookup), the reply to its audit row lost after it committed: 403, and one row
--- config eval
proxy_config()
--- login: zora
--- db_init eval
user_id('admin');
doom_connections('a') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /redeem
--- request_json eval
'{"card_code": "' . var('CODE0') . '", "user_id": ' . user_id('admin') . '}'
--- error_code: 403
--- error_log
/RDM0108: statement audit_insert could not run \(connection lost\): preparing afresh and running it again/
/RDM0401: audit: event=redeem .* outcome=forbidden/
--- db_check
SELECT count(*), min(outcome), count(DISTINCT request_id) FROM audit_log WHERE event = 'redeem' AND actor_id = $USER_ID_zora;
--- db_check_out
1|forbidden|1



=== TEST 105: every pooled connection in use once more
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 106: a batch of codes whose reply is lost after it committed: the module asks, on a new connection, whether it was stored, and answers 201 with its codes (it was 503 with the batch stored), one audit row
--- config eval
proxy_config()
--- login: admin
--- db_init eval
doom_connections('g') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 3, "duration_months": 2}
--- error_code: 201
--- response_json
{"count": 3, "duration_months": 2, "expires_at": null}
--- save_json
BATCH106=batch_id
CODE106=codes.0
--- error_log
/RDM0507: batch [0-9a-f-]{36}: its answer was lost with the connection, but it was stored: answering 201/
/RDM0401: audit: event=codes_generated .* outcome=success/
--- db_check
SELECT count(*), min(duration_months) FROM redeem_codes WHERE batch_id = '$BATCH106';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND target LIKE 'batch $BATCH106 %';
--- db_check_out
3|2
1



=== TEST 107: the codes of that batch redeem
--- config eval
proxy_config()
--- login: alice
--- request
POST /redeem
--- request_json
{"card_code": "$CODE106"}
--- error_code: 200



=== TEST 108: every pooled connection in use once more
--- config eval
proxy_config()
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 109: a batch whose connection is lost while it still runs in the database (all of it sent, its last statement held up on its admin's row, which another session holds for 2 s): the module's question waits for the batch's lock, finds it stored once it commits, and answers 201
--- config eval
proxy_config()
--- login: admin
--- db_init eval
lock_user_row(user_id('admin'), 2);
doom_connections('G') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 4}
--- error_code: 201
--- save_json
BATCH109=batch_id
--- error_log
/RDM0507: batch [0-9a-f-]{36}: its answer was lost with the connection, but it was stored: answering 201/
--- db_check
SELECT count(*) FROM redeem_codes WHERE batch_id = '$BATCH109';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND target LIKE 'batch $BATCH109 %';
--- db_check_out
4
1



=== TEST 110: every pooled connection in use once more, in the server of TEST 111's settings (a server started anew has not made them all yet, and the doom reaches only those made)
--- config eval
proxy_config() . "RedeemDBTimeout 1000\n"
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 111: a batch whose statements a network holds until after the module gave up on it (RedeemDBTimeout 1 s; they reach the database 3 s after httpd closed its side): the module's question finds it not stored and answers 503, and makes that final: the late statements are refused, nothing is stored
--- config eval
proxy_config() . "RedeemDBTimeout 1000\n"
--- login: admin
--- db_init eval
doom_connections('L') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 2}
--- error_code: 503
--- check_eval
# The held statements reach the database 3 s after httpd gave up on them.
select undef, undef, undef, 5;
1
--- error_log
/RDM0111: database pipeline.*no answer within RedeemDBTimeout/
/RDM0401: audit: event=codes_generated .* outcome=failed/
--- no_error_log
RDM0507
--- db_check
SELECT count(*) FROM code_batches WHERE batch_id IN (SELECT batch_id FROM code_batches_abandoned);
SELECT count(*) FROM code_batches_abandoned WHERE abandoned_at >= '$REQUEST_TIME';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND occurred_at >= '$REQUEST_TIME';
--- db_check_out
0
1
0



=== TEST 112: every pooled connection in use once more (TEST 111's settings)
--- config eval
proxy_config() . "RedeemDBTimeout 1000\n"
--- login: alice
--- request
GET /api/profile
--- concurrency: 20
--- error_code_counts
200: 20



=== TEST 113: a batch whose path goes silent while it is being sent (nothing read from httpd from its first codes_insert on; 100,000 codes fill the sockets' buffers): its end was never sent, so it cannot have committed: 503 after its own wait, and no question asked (it was asked, and waited RedeemDBTimeout more on the batch's lock, held by its live backend: RDM0506); once the path closes, nothing stored
--- config eval
proxy_config() . "RedeemDBTimeout 1000\n"
--- login: admin
--- db_init eval
doom_connections('S') > 0 or die "no connection to doom\n";
'SELECT 1'
--- request
POST /admin/generate-codes
--- request_json
{"count": 100000}
--- timeout: 30
--- error_code: 503
--- check_eval
# The proxy closes the silent path 15 s after it went silent; its backend
# then rolls back.
sql_until("the batch's backend gone", q{SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory'}, 25);
1
--- error_log
/RDM0111: .*statement codes_insert/
/RDM0401: audit: event=codes_generated .* outcome=failed/
--- no_error_log
RDM0506
RDM0507
--- db_check
SELECT count(*) FROM code_batches_abandoned WHERE abandoned_at >= '$REQUEST_TIME';
SELECT count(*) FROM audit_log WHERE event = 'codes_generated' AND occurred_at >= '$REQUEST_TIME';
SELECT count(*) FROM redeem_codes WHERE created_at >= '$REQUEST_TIME';
--- db_check_out
0
0
0
