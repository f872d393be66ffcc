# redeem-migrate as an operator meets it: a database that cannot hold the
# schema (not UTF8: email_key() normalizes Unicode) is refused before
# anything is applied, and a wrong --role with --password-stdin is refused
# before any role is made or changed: one the database was not migrated for,
# or one that can do more than the migrations grant it (a superuser, the
# database's owner, a reader of every table).
use lib 't/lib';
use Test::Redeem;

sub migrate { return "$ENV{REDEEM_ROOT}/scripts/redeem-migrate" }
sub scratch_db { return var('DB_NAME') . '_migrate' }

# A new database migrated to version $last only, as a site of that version
# has it; by the superuser, or by the database's owner (%$as: its PGUSER and
# PGPASSWORD).
sub db_at_version {
    my ($db, $last, %as) = @_;
    my $owner = $as{PGUSER} ? qq{ OWNER "$as{PGUSER}"} : '';
    psql_db('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE);\nCREATE DATABASE "$db"$owner;\n});
    for my $file (sort glob "$ENV{REDEEM_ROOT}/sql/[0-9][0-9][0-9]_*.sql") {
        my ($version) = $file =~ m{/(\d{3})_[^/]*$} or next;
        last if $version > $last;
        run_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', "app_role=$ENV{REDEEM_APP_USER}",
                 '-v', 'maint_role=redeem_maint', '--single-transaction', '-d', $db, '-f', $file ],
               undef, %as);
    }
}

# Whether the module's login role may create in schema public, as itself.
sub app_creates_in_public {
    my ($db) = @_;
    my ($status, $out) = run_cmd([ 'psql', '-XAtq', '-d', $db, '-c',
                                   'CREATE FUNCTION public.t_mine() RETURNS int LANGUAGE sql AS $$SELECT 1$$' ],
                                 undef, PGUSER => $ENV{REDEEM_APP_USER}, PGPASSWORD => $ENV{REDEEM_APP_PASSWORD});
    return 1 if $status == 0;
    $out =~ /permission denied for schema public/ or die "CREATE FUNCTION as the login role: $out\n";
    return 0;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a SQL_ASCII database is refused, with the way out, and nothing is applied to it
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
psql_db('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE);\n}
                  . qq{CREATE DATABASE "$db" ENCODING 'SQL_ASCII' LOCALE 'C' TEMPLATE template0;\n});
my ($status, $out) = run_cmd([ migrate(), $db ]);
die "exit $status: $out"
  unless $status == 1
  && $out =~ /\Aredeem-migrate: \Q$db\E has the encoding SQL_ASCII: mod_redeem needs UTF8, and a database's encoding cannot change: use a new database \(--create-database makes one UTF8/;
my $tables = psql_db($db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
$tables eq '0' or die "$tables tables made in the refused database\n";
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\n});
1



=== TEST 2: --create-database makes a UTF8 database, migrated to the end
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
run_ok([ migrate(), '-c', '-r', 'redeem_app', $db ]);
my $got = psql_db($db, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database();\n"
                     . "SELECT max(version) = (SELECT max(version) FROM schema_migrations) FROM schema_migrations;");
$got eq "UTF8\nt" or die "got: $got\n";
1



=== TEST 3: a migrated database and a --role that is not its own, with a password: refused, and the role is not made
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
psql_db('postgres', "DROP ROLE IF EXISTS t_typo_app");
my ($status, $out) = run_cmd([ migrate(), '-r', 't_typo_app', '-p', $db ], "ThisIsALongPassword42\n");
die "exit $status: $out"
  unless $status == 1 && $out =~ /\Q$db\E was migrated for another login role than t_typo_app/;
my $roles = psql_db('postgres', "SELECT count(*) FROM pg_roles WHERE rolname = 't_typo_app'");
$roles eq '0' or die "the refused run made the role t_typo_app\n";
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\n});
1



=== TEST 3b: a migrated database and a --role that may read every table (pg_read_all_data), with a password: refused before anything, and that role's password is not changed (it was: the role could read schema_migrations, so the database passed for migrated for it)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
run_ok([ migrate(), '-c', '-r', 'redeem_app', $db ]);
psql_db('postgres', "DROP ROLE IF EXISTS t_reporting;\n"
                  . "CREATE ROLE t_reporting LOGIN PASSWORD 'ReportingPassword42';\n"
                  . "GRANT pg_read_all_data TO t_reporting;\n");
my $before = psql_db('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 't_reporting'");
my ($status, $out) = run_cmd([ migrate(), '-r', 't_reporting', '-p', $db ], "AnotherLongPassword42\n");
my $after = psql_db('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 't_reporting'");
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_reporting;\n});
die "exit $status: $out"
  unless $status == 1
  && $out =~ /the role t_reporting belongs to pg_read_all_data: the module's login must be a role of its own/;
$before eq $after or die "the refused run changed t_reporting's password\n";
1



=== TEST 3c: a superuser as --role, with a password: refused, its password not changed (it was, locking out whoever used it)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
run_ok([ migrate(), '-c', '-r', 'redeem_app', $db ]);
psql_db('postgres', "DROP ROLE IF EXISTS t_super;\nCREATE ROLE t_super SUPERUSER LOGIN PASSWORD 'SuperUsersPassword42';\n");
my $before = psql_db('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 't_super'");
my ($status, $out) = run_cmd([ migrate(), '-r', 't_super', '-p', $db ], "AnotherLongPassword42\n");
my $after = psql_db('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 't_super'");
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_super;\n});
die "exit $status: $out"
  unless $status == 1 && $out =~ /the role t_super is a superuser: .*\(no role was made or changed, no migration applied\)/;
$before eq $after or die "the refused run changed t_super's password\n";
1



=== TEST 3d: a new database and its owner as --role: refused before any migration (001 to 003 were committed, then 004 or 016 stopped, and every later run was refused: a database that had to be dropped)
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
psql_db('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE);\nDROP ROLE IF EXISTS t_owner;\n}
                  . qq{CREATE ROLE t_owner LOGIN PASSWORD 'AnOwnersPassword42';\nCREATE DATABASE "$db" OWNER t_owner;\n});
my ($status, $out) = run_cmd([ migrate(), '-r', 't_owner', $db ]);
my $tables = psql_db($db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_owner;\n});
die "exit $status: $out" unless $status == 1 && $out =~ /the role t_owner owns the database: /;
$tables eq '0' or die "$tables tables made in the refused database\n";
1



=== TEST 3e: control: a role of its own, new, with a password, on a new database: made LOGIN, and the database migrated to the end for it; a second run with it is not refused
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
psql_db('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE);\nDROP ROLE IF EXISTS t_fresh_app;\n});
run_ok([ migrate(), '-c', '-r', 't_fresh_app', '-p', $db ], "AFreshAppPassword42\n");
run_ok([ migrate(), '-r', 't_fresh_app', $db ]);
my $got = psql_db($db, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 't_fresh_app';\n"
                     . "SELECT has_table_privilege('t_fresh_app', 'schema_migrations', 'SELECT');\n"
                     . "SELECT max(version) FROM schema_migrations;");
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_fresh_app;\n});
my $last = (sort { $a <=> $b } map { m{/(\d{3})_[^/]*$} ? 0 + $1 : () } glob "$ENV{REDEEM_ROOT}/sql/[0-9][0-9][0-9]_*.sql")[-1];
$got eq "t\nt\n$last" or die "got: $got (expected the last version $last)\n";
1



=== TEST 4: a site of version 15 whose schema public every role may create in (a cluster upgraded from PostgreSQL 14 keeps that): migration 016 takes the grant away, and the module's role can no longer put an object where the functions that run as the owner look
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
db_at_version($db, 15);
psql_db($db, 'GRANT CREATE ON SCHEMA public TO PUBLIC');
app_creates_in_public($db) or die "the set-up: the login role could not create in public\n";
psql_db($db, 'DROP FUNCTION public.t_mine()');
run_ok([ migrate(), '-r', $ENV{REDEEM_APP_USER}, $db ]);
psql_db($db, 'SELECT max(version) >= 16 FROM schema_migrations') eq 't' or die "016 not applied\n";
!app_creates_in_public($db) or die "the login role still creates in public after 016\n";
my $maint = psql_db($db, "SELECT has_schema_privilege('redeem_maint', 'public', 'CREATE')");
$maint eq 'f' or die "the maintenance role creates in public: $maint\n";
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\n});
1



=== TEST 4b: ... the same site, its schema public still the superuser's (as an upgraded cluster keeps it), migrated by the database's owner, who cannot revoke that grant: 016 stops and says to run it as a superuser or public's owner, not that the login role owns anything
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
my %owner = (PGUSER => 't_db_owner', PGPASSWORD => 'AnOwnersPassword42');
psql_db('postgres', "DROP ROLE IF EXISTS t_db_owner; CREATE ROLE t_db_owner LOGIN PASSWORD '$owner{PGPASSWORD}'");
db_at_version($db, 15, %owner);
psql_db($db, "ALTER SCHEMA public OWNER TO postgres;\nGRANT CREATE ON SCHEMA public TO PUBLIC;\n");
my ($status, $out) = run_cmd([ migrate(), '-r', $ENV{REDEEM_APP_USER}, $db ], undef, %owner);
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\nDROP ROLE t_db_owner;\n});
die "exit $status: $out"
  unless $status != 0
  && $out =~ /every role may still create objects in schema public, and the role that runs this migration \(t_db_owner\) cannot take that away: run it as a superuser or as the owner of schema public/;
1



=== TEST 5: a site whose login role owns schema public: migration 016 refuses, says why and what to do, and the database stays at version 15
--- request
GET /api/health
--- error_code: 200
--- check_eval
my $db = scratch_db();
db_at_version($db, 15);
psql_db($db, qq{ALTER SCHEMA public OWNER TO "$ENV{REDEEM_APP_USER}"});
my ($status, $out) = run_cmd([ migrate(), '-r', $ENV{REDEEM_APP_USER}, $db ]);
die "exit $status: $out"
  unless $status != 0
  && $out =~ /the role \Q$ENV{REDEEM_APP_USER}\E may still create objects in schema public, where the functions that run as their owner look .*make another role the owner/;
psql_db($db, 'SELECT max(version) FROM schema_migrations') eq '15' or die "migrated all the same\n";
psql_db('postgres', qq{DROP DATABASE "$db" WITH (FORCE);\n});
1



=== TEST 6: the module's login role updates only the columns its statements write (migration 017): not a user's token generation, email or creation, nor a code's months, expiry, batch or hash
--- login: columnist
--- request
GET /api/profile
--- error_code: 200
--- check_eval
my $id = user_id('columnist');
my %app = (PGUSER => $ENV{REDEEM_APP_USER}, PGPASSWORD => $ENV{REDEEM_APP_PASSWORD});
for my $update ("UPDATE users SET token_generation = 0 WHERE id = $id",
                "UPDATE users SET email = 'x\@example.test' WHERE id = $id",
                "UPDATE users SET created_at = now() WHERE id = $id",
                'UPDATE redeem_codes SET duration_months = 36',
                'UPDATE redeem_codes SET expires_at = NULL',
                "UPDATE redeem_codes SET batch_id = gen_random_uuid()",
                "UPDATE redeem_codes SET code_hash = code_hash") {
    my ($status, $out) = run_cmd([ 'psql', '-XAtq', '-d', var('DB_NAME'), '-c', $update ], undef, %app);
    $status != 0 && $out =~ /permission denied for table/ or die "$update: exit $status: $out\n";
}
# What its statements write, it still may.
my ($status, $out) = run_cmd([ 'psql', '-XAtq', '-d', var('DB_NAME'), '-c',
    "UPDATE users SET password_hash = password_hash, is_admin = is_admin,"
    . " subscription_expires_at = subscription_expires_at WHERE id = $id;"
    . " UPDATE redeem_codes SET used_at = used_at, used_by = used_by, used_request = used_request WHERE false" ],
    undef, %app);
$status == 0 or die "the module's own columns: exit $status: $out\n";
1
