-- mod_redeem schema, migration 006: api_ts() inlined.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/006_api_ts_stable.sql
--
-- api_ts() was declared IMMUTABLE over to_char(), which is only STABLE:
-- PostgreSQL never inlines such a function and runs it through the SQL
-- function executor on every call (it re-reads its parse tree each time).
-- STABLE is what it is; inlined, the user lookup behind /api/profile ran
-- about 1.7 times as many queries a second (make bench, pgbench of
-- SQL_USER_BY_ID). Nothing indexes it, so nothing else changes.

ALTER FUNCTION api_ts(timestamptz) STABLE;

INSERT INTO schema_migrations (version) VALUES (6);
