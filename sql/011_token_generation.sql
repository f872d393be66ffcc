-- mod_redeem schema, migration 011: tokens can be revoked.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/011_token_generation.sql
--
-- A token stayed good until it expired, even after the operator reset the
-- account's password (redeem-admin reset): whoever had taken the account
-- kept it for the rest of the token's lifetime. Every token now carries its
-- account's token generation (the claim "gen"; a token without it, issued
-- before this migration, counts as 0), and is accepted only while the
-- account is at that generation. redeem-admin's reset and revoke add one to
-- it, which refuses every token issued before.
--
-- A column with a constant default and no CHECK is added without reading
-- or rewriting the table (PostgreSQL 11 and later): its ACCESS EXCLUSIVE
-- lock is brief even at 10 million users.

-- The lock is granted only once every transaction that holds one on users
-- has ended, and meanwhile every login and authenticated request queues
-- behind the ALTER: so it gives up after 5 s (run it again then).
SET LOCAL lock_timeout = '5s';
ALTER TABLE users ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;

INSERT INTO schema_migrations (version) VALUES (11);
