# The RedeemAdmin bootstrap, a step of its own: run once per child, right
# after a request first opens the database (httpd/call.c), never by opening a
# connection and never for a request refused before the database (a bad
# token). It creates the account, promotes an ordinary one only with that
# account's own password, and is idempotent.
use lib 't/lib';
use Test::Redeem;

sub log_has {
    my ($re) = @_;
    open my $fh, '<', var('SERVROOT') . '/error.log' or die "error.log: $!";
    return scalar grep { /$re/ } <$fh>;
}

# A file of the server's directory holding $password, of mode $mode; its path.
sub password_file {
    my ($name, $password, $mode) = @_;
    my $file = var('SERVROOT') . "/$name";
    open my $fh, '>', $file or die "$file: $!";
    print $fh "$password\n";
    close $fh;
    chmod $mode, $file;
    return $file;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a request refused before the database (no token) does not create the admin
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
--- request
GET /api/profile
--- error_code: 401
--- db_check
SELECT count(*) FROM users WHERE email = 'first@example.test';
--- db_check_out
0



=== TEST 2: the first request that uses the database creates it, before its handler runs
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
--- request
POST /api/login
--- request_json
{"email": "first@example.test", "password": "FirstPassw0rd1"}
--- error_code: 200
--- response_json
{"user": {"email": "first@example.test"}}
--- error_log
admin account first@example.test created (RedeemAdmin)
--- db_check
SELECT is_admin FROM users WHERE email = 'first@example.test';
--- db_check_out
t



=== TEST 3: a restart creates nothing more and logs no creation
--- config
RedeemAdmin "first@example.test" "FirstPassw0rd1"
# restarted: this comment makes the config differ
--- request
GET /api/health
--- error_code: 200
--- no_error_log
created (RedeemAdmin)
--- db_check
SELECT count(*) FROM users WHERE email = 'first@example.test';
--- db_check_out
1



=== TEST 4: carol registers as an ordinary user
--- login: carol
--- request
GET /api/users
--- error_code: 403



=== TEST 5: RedeemAdmin with another password does not promote the account of that email
--- config
RedeemAdmin "carol@example.test" "SomeOtherPass1"
--- login: carol
--- request
GET /api/users
--- error_code: 403
--- check_eval
# The bootstrap ran when the restarted server answered its first request.
log_has(qr/RedeemAdmin carol\@example\.test: an ordinary account with this email exists/);
--- db_check
SELECT is_admin FROM users WHERE email = 'carol@example.test';
--- db_check_out
f



=== TEST 6: RedeemAdmin with the account's own password promotes it, keeping the password
--- config
RedeemAdmin "carol@example.test" "TestPassw0rd1"
--- login: carol
--- request
GET /api/users
--- error_code: 200
--- check_eval
log_has(qr/account carol\@example\.test made admin/);
--- db_check
SELECT is_admin FROM users WHERE email = 'carol@example.test';
--- db_check_out
t



=== TEST 7: the bootstrap is idempotent: one admin row after every restart
--- config
RedeemAdmin "admin@example.test" "AdminPass12345"
--- request
GET /api/health
--- error_code: 200
--- db_check
SELECT count(*) FROM users WHERE lower(email) = 'admin@example.test' AND is_admin;
--- db_check_out
1



=== TEST 8: the well-known default password makes httpd warn
--- config
RedeemAdmin "admin@example.test" "AdminPassword123"
--- request
GET /api/health
--- error_code: 200
--- check_eval
log_has(qr/RDM0003: RedeemAdmin uses the well-known default password/);



=== TEST 9: RedeemAdminPasswordFile: the password read from a private file creates the admin
--- config eval
my $file = password_file('admin_password', 'FilePassw0rd9', 0600);
qq(RedeemAdminPasswordFile "dave\@example.test" "$file"\n)
--- request
POST /api/login
--- request_json
{"email": "dave@example.test", "password": "FilePassw0rd9"}
--- error_code: 200
--- response_json
{"user": {"email": "dave@example.test"}}
--- error_log
admin account dave@example.test created (RedeemAdmin)
--- no_error_log
RDM0006
--- db_check
SELECT is_admin FROM users WHERE email = 'dave@example.test';
--- db_check_out
t



=== TEST 10: RedeemAdminPasswordFile: the file's trailing newline is not part of the password
--- request
POST /api/login
--- request_json
{"email": "dave@example.test", "password": "FilePassw0rd9\n"}
--- error_code: 401



=== TEST 11: RedeemAdminPasswordFile naming no file: httpd refuses to start
--- config
RedeemAdminPasswordFile "dave@example.test" "$SERVROOT/no-such-password"
--- must_die
--- error_log
/cannot open RedeemAdminPasswordFile file \S+no-such-password/



=== TEST 12: RedeemAdminPasswordFile holding a password the policy refuses: httpd refuses to start
--- config eval
my $file = password_file('weak_admin_password', 'short', 0600);
qq(RedeemAdminPasswordFile "dave\@example.test" "$file"\n)
--- must_die
--- error_log
RedeemAdminPasswordFile: Password must be at least 8 characters



=== TEST 12b: RedeemAdminPasswordFile holding a password that is not UTF-8 (Latin-1): httpd refuses to start, since no login could send it
--- config eval
my $file = password_file('latin1_admin_password', "P\xe4ssw0rd12b", 0600);
qq(RedeemAdminPasswordFile "dave\@example.test" "$file"\n)
--- must_die
--- error_log
RedeemAdminPasswordFile: the password is not UTF-8



=== TEST 13: RedeemAdminPasswordFile with a bad email: httpd refuses to start, naming the directive
--- config
RedeemAdminPasswordFile "not-an-email" "$SERVROOT/admin_password"
--- must_die
--- error_log
RedeemAdminPasswordFile:



=== TEST 14: RedeemAdminPasswordFile readable by others: the server starts, with a warning naming it
--- config eval
my $file = password_file('open_admin_password', 'OpenPassw0rd14', 0644);
qq(RedeemAdminPasswordFile "erin\@example.test" "$file"\n)
--- request
POST /api/login
--- request_json
{"email": "erin@example.test", "password": "OpenPassw0rd14"}
--- error_code: 200
--- check_eval
log_has(qr/RDM0006: RedeemAdminPasswordFile file \S+open_admin_password is open to group or others \(mode 644\)/);



=== TEST 15: a later RedeemAdmin replaces RedeemAdminPasswordFile: its password, not the file's
--- config eval
my $file = var('SERVROOT') . '/admin_password';
qq(RedeemAdminPasswordFile "frank\@example.test" "$file"\nRedeemAdmin "frank\@example.test" "InlinePassw0rd15"\n)
--- request
POST /api/login
--- request_json
{"email": "frank@example.test", "password": "InlinePassw0rd15"}
--- error_code: 200
--- response_json
{"user": {"email": "frank@example.test"}}



=== TEST 16: redeem-admin applies the API's password rule: a password whose only other characters are symbols (€) has no letter and is refused, one of Cyrillic letters is taken
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $admin = "$ENV{REDEEM_ROOT}/scripts/redeem-admin";
my ($status, $out) = run_cmd([ $admin, '-d', var('DB_NAME'), 'create', 'euro@example.test' ],
                             "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac1\n");
$status != 0 && $out =~ /the password must contain a letter and a digit/ or die "€€€€€€€1: exit $status: $out";
sql("SELECT count(*) FROM users WHERE email = 'euro\@example.test'") eq '0' or die 'the account was made';
($status, $out) = run_cmd([ $admin, '-d', var('DB_NAME'), 'create', 'cyrillic@example.test' ],
                          "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c12\n");
$status == 0 or die "a Cyrillic password: exit $status: $out";
my $res = api_request('POST', '/api/login', qq({"email": "cyrillic\@example.test", "password": "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c12"}));
$res->{status} == 200 or die "its login: $res->{status} $res->{body}";
1



=== TEST 16b: redeem-admin refuses the addresses the module refuses (it took invisible and bidi characters, a no-break space at the start, bytes that are not UTF-8: admin accounts that looked like another's, or could never log in); the API refuses each too
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $admin = "$ENV{REDEEM_ROOT}/scripts/redeem-admin";
my $before = sql('SELECT count(*) FROM users');
for my $case ([ "adm\xe2\x80\x8bin\@example.test", 'invisible' ],      # zero-width space
              [ "admin\@exam\xe2\x80\xaeple.test", 'invisible' ],      # right-to-left override
              [ "\xc2\xa0admin\@example.test", 'invisible' ],          # no-break space, not trimmed
              [ "blank\xe2\xa0\x80\@example.test", 'invisible' ],      # Braille pattern blank
              [ "a\xcd\xbeb\@example.test", 'invisible' ],             # U+037E, ';' once normalized
              [ "b\xffx\@example.test", 'not UTF-8' ],
              [ "\xed\xa0\x80a\@example.test", 'not UTF-8' ]) {        # a surrogate
    my ($email, $why) = @$case;
    my ($status, $out) = run_cmd([ $admin, '-d', var('DB_NAME'), 'create', $email ], "APassword12345\n");
    my $shown = join '', map { sprintf '\\x%02x', ord } split //, $email;
    $status == 1 && $out =~ /invalid email: (?:contains spaces, invisible or forbidden characters|not UTF-8)/
      && ($why eq 'not UTF-8') == ($out =~ /not UTF-8/)
      or die "$shown: exit $status: $out";
    my $res = api_request('POST', '/api/register', qq({"email": "$email", "password": "APassword12345"}));
    $res->{status} == 400 or die "$shown: the API answered $res->{status}, not 400\n";
}
my $after = sql('SELECT count(*) FROM users');
$after eq $before or die "accounts made: $before before, $after after\n";
my ($status, $out) = run_cmd([ $admin, '-d', var('DB_NAME'), 'create', " Un\xc3\xafcode.Admin\@Example.TEST\t" ],
                             "APassword12345\n");
$status == 0 or die "a plain non-ASCII address: exit $status: $out";
sql("SELECT count(*) FROM users WHERE email = 'un\xc3\xafcode.admin\@example.test' AND is_admin") eq '1'
  or die "the address not stored trimmed and lowercased\n";
1



=== TEST 16c: redeem-admin's list of invisible code points is the module's (core/email.c's invisible[])
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $read = sub { open my $fh, '<', $_[0] or die "$_[0]: $!\n"; local $/; <$fh> };
my $c = $read->("$ENV{REDEEM_ROOT}/mod_redeem/core/email.c");
my $perl = $read->("$ENV{REDEEM_ROOT}/scripts/redeem-admin");
my ($c_table) = $c =~ /invisible\[\]\[2\] = \{(.*?)\n\};/s or die "no invisible[] in email.c\n";
my ($perl_table) = $perl =~ /my \@INVISIBLE = \((.*?)\n\s*\);/s or die "no \@INVISIBLE in redeem-admin\n";
my $ranges = sub { join ' ', map { (my $r = lc) =~ s/\s+//g; $r } $_[0] =~ /(0x[0-9A-Fa-f]+,\s*0x[0-9A-Fa-f]+)/g };
my ($in_c, $in_perl) = ($ranges->($c_table), $ranges->($perl_table));
$in_c ne '' && ($in_c =~ tr/,//) >= 20 or die "read too few ranges from email.c: $in_c\n";
$in_c eq $in_perl or die "email.c: $in_c\nredeem-admin: $in_perl\n";
1