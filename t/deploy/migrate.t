# redeem-migrate as an operator meets it: a database that cannot hold the
# schema (not UTF8: email_key() normalizes Unicode) is refused before
# anything is applied, and a wrong --role with --password-stdin is refused
# before any role is made or changed.
use lib 't/lib';
use Test::Redeem;

sub migrate { return "$ENV{REDEEM_ROOT}/scripts/redeem-migrate" }
sub scratch_db { return var('DB_NAME') . '_migrate' }

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
