# Directives: values that must make httpd refuse to start (each message names
# the directive or the problem), and values that must start and take effect.
use lib 't/lib';
use Test::Redeem;
run_tests();

__DATA__

=== TEST 1: a JWT secret of 5 bytes
--- config
RedeemJWTSecret "short"
--- must_die
--- error_log
/(?i)secret/



=== TEST 2: a JWT secret of 31 bytes
--- config
RedeemJWTSecret "0123456789012345678901234567890"
--- must_die
--- error_log
/(?i)secret/



=== TEST 3: an empty JWT secret
--- config
RedeemJWTSecret ""
--- must_die
--- error_log
/(?i)secret/



=== TEST 4: a token lifetime that is not a number
--- config
RedeemTokenLifetime abc
--- must_die
--- error_log
RedeemTokenLifetime



=== TEST 5: a token lifetime of zero
--- config
RedeemTokenLifetime 0
--- must_die
--- error_log
RedeemTokenLifetime



=== TEST 6: a negative token lifetime
--- config
RedeemTokenLifetime -60
--- must_die
--- error_log
RedeemTokenLifetime



=== TEST 7: a token lifetime with trailing garbage
--- config
RedeemTokenLifetime 3600s
--- must_die
--- error_log
RedeemTokenLifetime



=== TEST 8: Argon2 costs of zero
--- config
RedeemArgon2 0 0 0
--- must_die
--- error_log
RedeemArgon2



=== TEST 9: Argon2 with two of its three numbers
--- config
RedeemArgon2 1024 1
--- must_die
--- error_log
RedeemArgon2



=== TEST 10: Argon2 memory below what libargon2 accepts (8 KiB per lane)
--- config
RedeemArgon2 4 1 1
--- must_die
--- error_log
RedeemArgon2



=== TEST 11: Argon2 with words
--- config
RedeemArgon2 lots many some
--- must_die
--- error_log
RedeemArgon2



=== TEST 12: RedeemEngine takes On or Off
--- config
RedeemEngine Maybe
--- must_die
--- error_log
RedeemEngine



=== TEST 13: a body cap that is not a number
--- config
RedeemMaxBodySize abc
--- must_die
--- error_log
RedeemMaxBodySize



=== TEST 14: a body cap of zero
--- config
RedeemMaxBodySize 0
--- must_die
--- error_log
RedeemMaxBodySize



=== TEST 15: a negative leeway
--- config
RedeemJWTLeeway -5
--- must_die
--- error_log
RedeemJWTLeeway



=== TEST 16: a hash concurrency of zero
--- config
RedeemHashConcurrency 0
--- must_die
--- error_log
RedeemHashConcurrency



=== TEST 17: a base path that is not an absolute path
--- config
RedeemBasePath api
--- must_die
--- error_log
RedeemBasePath



=== TEST 17b: a base path whose last segment is ".." (httpd takes it out of every request's path: nothing would ever match; it was accepted, and every API path got httpd's own 404)
--- config
RedeemBasePath /api/..
--- must_die
--- error_log
RedeemBasePath must be an absolute URL path



=== TEST 17c: nor ".", with a slash after it or not
--- config
RedeemBasePath /api/.
--- must_die
--- error_log
RedeemBasePath must be an absolute URL path



=== TEST 17d: control: a segment that only starts with dots is a name like any other
--- config
RedeemBasePath /v..2
--- request
GET /v..2/api/health
--- error_code: 200



=== TEST 18: an unreadable JWT secret file when no inline secret is set
--- config
RedeemJWTSecretFile $SERVROOT/no-such-secret
--- must_die
--- error_log
/(?i)secret/



=== TEST 19: control: a secret of exactly 32 bytes starts
--- config
RedeemJWTSecret "01234567890123456789012345678901"
--- request
GET /api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 20: RedeemTokenLifetime 60: expires_in and exp follow
--- config
RedeemTokenLifetime 60
--- request
POST /api/register
--- request_json
{"email": "short-lived@example.test", "password": "Passw0rd123"}
--- error_code: 201
--- response_json
{"expires_in": 60}
--- check_eval
my (undef, $claims) = jwt_decode(response()->{json}{access_token});
$claims->{exp} == $claims->{iat} + 60 or die "exp - iat = " . ($claims->{exp} - $claims->{iat}) . "\n";



=== TEST 21: RedeemMaxBodySize 300: a 400-byte body is 413
--- config
RedeemMaxBodySize 300
--- request
POST /api/register
--- request_json eval
'{"email": "cap@example.test", "password": "Passw0rd123", "pad": "' . ('x' x 320) . '"}'
--- error_code: 413
--- response_json
{"error": "/./"}
--- db_check
SELECT count(*) FROM users WHERE email = 'cap@example.test'
--- db_check_out
0



=== TEST 22: RedeemMaxBodySize 300: a small body still registers
--- config
RedeemMaxBodySize 300
--- request
POST /api/register
--- request_json
{"email": "cap@example.test", "password": "Passw0rd123"}
--- error_code: 201



=== TEST 23: RedeemBasePath /billing: the API moves under it
--- config
RedeemBasePath /billing
--- request
GET /billing/api/health
--- error_code: 200
--- response_json
{"status": "healthy"}



=== TEST 24: RedeemBasePath /billing: the old path is not the API any more
--- config
RedeemBasePath /billing
--- request
GET /api/health
--- error_code: 404
--- response_body_unlike
healthy



=== TEST 25: RedeemEngine Off: the module answers nothing
--- config
RedeemEngine Off
--- request
GET /api/health
--- error_code: 404
--- response_body_unlike
healthy



=== TEST 26: RedeemAdmin: the configured admin logs in (back to the default config)
--- request
POST /api/login
--- request_json
{"email": "$ADMIN_EMAIL", "password": "$ADMIN_PASSWORD"}
--- error_code: 200



=== TEST 27: a key file others may read: the server starts, with a warning naming it
--- config eval
my $file = var('SERVROOT') . '/open_mac_key';
open my $fh, '>', $file or die $!;
print $fh unpack('H*', join '', map { chr int rand 256 } 1 .. 32), "\n";
close $fh;
chmod 0644, $file;
qq(RedeemCodeMACKeyFile "$file"\n)
--- request
GET /api/health
--- error_code: 200
--- check_eval
open my $log, '<', var('SERVROOT') . '/error.log' or die $!;
grep { /RDM0006: RedeemCodeMACKeyFile file \S+open_mac_key is open to group or others \(mode 644\)/ } <$log>



=== TEST 28: RedeemFutexHashSlots not a power of two
--- config
RedeemFutexHashSlots 1000
--- must_die
--- error_log
RedeemFutexHashSlots 1000: must be a power of two from 2 to 65536



=== TEST 29: RedeemFutexHashSlots 1 (the kernel wants at least 2)
--- config
RedeemFutexHashSlots 1
--- must_die
--- error_log
RedeemFutexHashSlots: '1' is not a whole number from 2 to 65536



=== TEST 30: RedeemFutexHashSlots above the top
--- config
RedeemFutexHashSlots 131072
--- must_die
--- error_log
RedeemFutexHashSlots: '131072' is not a whole number from 2 to 65536



=== TEST 31: RedeemFutexHashSlots is process-wide, not per virtual host
--- config
<VirtualHost *>
  ServerName other.test
  RedeemFutexHashSlots 1024
</VirtualHost>
--- must_die
--- error_log
RedeemFutexHashSlots cannot occur within <VirtualHost> section



=== TEST 32: RedeemFutexHashSlots 2048: the children log the size the kernel now reports (or why not)
--- config
RedeemFutexHashSlots 2048
--- request
GET /api/health
--- error_code: 200
--- check_eval
# prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS) fails on kernels before 6.16.
require 'sys/syscall.ph';
my $kernel_has_it = syscall(&SYS_prctl(), 78, 2, 0, 0, 0) >= 0;
my $want = $kernel_has_it
  ? qr/RDM0010: this child's futex hash: 2048 buckets \(RedeemFutexHashSlots\)/
  : qr/RDM0009: RedeemFutexHashSlots 2048 not applied \(a kernel before Linux 6\.16/;
open my $log, '<', var('SERVROOT') . '/error.log' or die $!;
my $lines = grep { $_ =~ $want } <$log>;
$lines >= 1 or die "no line matches $want";



=== TEST 33: mod_dbd's driver where the API is served, checked by apachectl -t: no DBDriver anywhere is refused and names the server (it passed, and every request got 503); a server with the API on and no driver of its own, where a virtual host has pgsql, is warned of only; DBDriver pgsql passes clean; DBDriver without mod_dbd is refused as DBDMax is (httpd refused it before mod_redeem read it too)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $dir = var('SERVROOT');
my $check = sub {
    my (%part) = @_;
    my $file = "$dir/no_driver.conf";
    my $dbd = $part{no_dbd} ? '' : "LoadModule dbd_module /usr/lib/apache2/modules/mod_dbd.so\n";
    open my $fh, '>', $file or die "$file: $!";
    print $fh <<"CONF";
ServerRoot $dir
PidFile $dir/no_driver.pid
ErrorLog $dir/no_driver.log
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
${dbd}LoadModule redeem_module $ENV{REDEEM_MODULE}
ServerName localhost
Listen 127.0.0.1:1
RedeemJWTSecret 0123456789abcdef0123456789abcdef
RedeemCodeMACKeyFile $dir/code_mac_key
RedeemCodeEncryptionKeyFile $dir/code_enc_key
RedeemArgon2 1024 1 1
$part{main}
<VirtualHost *>
  ServerName api.test
$part{vhost}
</VirtualHost>
CONF
    close $fh;
    return run_cmd(['/usr/sbin/apache2', '-t', '-f', $file], undef, sanitizer_env());
};
my ($status, $out) = $check->(main => '', vhost => 'RedeemEngine On');
$status != 0 or die "no DBDriver anywhere passed apachectl -t:\n$out";
$out =~ /RDM0012: mod_redeem needs mod_dbd's pgsql driver: the virtual host api\.test \(\S+no_driver\.conf:\d+\) serves the API with no DBDriver/
  or die "no RDM0012 naming the virtual host:\n$out";
($status, $out) = $check->(main => 'RedeemEngine On', vhost => 'DBDriver pgsql');
$status == 0 && $out =~ /Syntax OK/ or die "a virtual host's DBDriver pgsql beside the API on in the main server refused:\n$out";
$out =~ /RDM0012: the main server serves the API with no DBDriver: its own requests will be answered 503/
  or die "no warning for the main server without a driver:\n$out";
($status, $out) = $check->(main => "DBDriver pgsql", vhost => 'RedeemEngine On');
$status == 0 && $out =~ /Syntax OK/ && $out !~ /RDM0012/ or die "DBDriver pgsql not clean:\n$out";
($status, $out) = $check->(main => "DBDriver pgsql", vhost => '', no_dbd => 1);
$status != 0 && $out =~ /RDM0004: DBDriver is mod_dbd's directive: LoadModule dbd_module first/
  or die "DBDriver without mod_dbd:\n$out";
1



=== TEST 34: a start-up refusal of the module's own names its server, and where it is defined
--- config
<VirtualHost *>
  ServerName other.test
  RedeemEngine On
  RedeemAdminPasswordFile admin@other.test /nonexistent/admin-password
</VirtualHost>
--- must_die
--- error_log
/RDM0001: mod_redeem cannot start: .*RedeemAdminPasswordFile.* \(in the virtual host other\.test \(\S+extra\.conf:\d+\)\)/
