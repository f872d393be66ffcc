-- mod_redeem schema, migration 005: a redemption knows the request that made it.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/005_redeem_replay.sql
--
-- The redemption statement is the request's only round trip. When the
-- connection dies under it, the module cannot know whether it ran; it runs
-- it again on a new connection, and the code's used_request (the request's
-- id) tells a replay of the same request from another request's claim.
-- Adding a nullable column rewrites nothing.

ALTER TABLE redeem_codes ADD COLUMN used_request text;

INSERT INTO schema_migrations (version) VALUES (5);
