-- mod_redeem schema, migration 003: one identity per email, beyond ASCII.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/003_email_identity.sql
--
-- An email's identity is its key: Unicode NFC, then lowercased by ICU's root
-- locale (so "Ärger@" and "ärger@", composed or decomposed, are one
-- address). Accounts store their email as its key and are unique by it.
-- Needs PostgreSQL built with ICU (Debian's is). If two existing accounts
-- have the same key this migration stops, naming them: merge or rename one,
-- then apply it again.

\if :{?app_role}
\else
\set app_role redeem_app
\endif

CREATE FUNCTION email_key(email text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN lower(normalize(email, NFC) COLLATE "und-x-icu");

DO $$
DECLARE
  clash text;
BEGIN
  SELECT string_agg(format('%s (ids %s)', key, ids), '; ') INTO clash
    FROM (SELECT email_key(email) AS key, string_agg(id::text, ', ' ORDER BY id) AS ids
            FROM users GROUP BY 1 HAVING count(*) > 1) c;
  IF clash IS NOT NULL THEN
    RAISE EXCEPTION 'accounts whose emails are one address once case and Unicode form are folded: %', clash;
  END IF;
END
$$;

UPDATE users SET email = email_key(email) WHERE email <> email_key(email);
-- The new index is built before the old one is dropped: building takes a
-- SHARE lock (reads go on, writes wait), dropping an ACCESS EXCLUSIVE one,
-- held to the commit: dropped first, every read of users (each
-- authenticated request) waited the whole build, 9-20 s at 10 million
-- users. Writes (registrations, redemptions) still wait for the build:
-- apply it when the site is quiet.
CREATE UNIQUE INDEX users_email_key ON users (email_key(email));
DROP INDEX users_email_lower_key;

GRANT EXECUTE ON FUNCTION email_key(text) TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (3);
