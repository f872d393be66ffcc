-- mod_redeem schema, migration 001: accounts.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/001_accounts.sql
-- (redeem-migrate, scripts/redeem-migrate, does this for every file in order.)
--
-- The module's login role is the psql variable app_role, redeem_app unless
-- given (psql -v app_role=NAME). It is created here NOLOGIN when missing, so
-- give it LOGIN and a password yourself, or let redeem-migrate create it.

\if :{?app_role}
\else
\set app_role redeem_app
\endif

SELECT format('CREATE ROLE %I NOLOGIN', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

CREATE TABLE schema_migrations (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- The API's timestamp format: RFC 3339, UTC, microseconds.
CREATE FUNCTION api_ts(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

CREATE TABLE users (
  id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email                   text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  password_hash           text NOT NULL,
  is_admin                boolean NOT NULL DEFAULT false,
  created_at              timestamptz NOT NULL DEFAULT now(),
  subscription_expires_at timestamptz
);
-- Uniqueness of an email regardless of case lives in the schema itself.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Exact row counts without scanning: paginated listings report a total, and
-- count(*) over millions of rows would grow with the table.
CREATE TABLE row_counts (
  name text PRIMARY KEY,
  n    bigint NOT NULL
);
INSERT INTO row_counts VALUES ('users', 0);

-- SECURITY DEFINER: the app role may read the counts but not change them.
CREATE FUNCTION users_count_rows() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE row_counts SET n = n + (SELECT count(*) FROM new_rows) WHERE name = 'users';
  ELSE
    UPDATE row_counts SET n = n - (SELECT count(*) FROM old_rows) WHERE name = 'users';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER users_count_insert AFTER INSERT ON users
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION users_count_rows();
CREATE TRIGGER users_count_delete AFTER DELETE ON users
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION users_count_rows();

GRANT SELECT, INSERT, UPDATE ON users TO :"app_role";
GRANT SELECT ON schema_migrations, row_counts TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (1);
