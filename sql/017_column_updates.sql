-- mod_redeem schema, migration 017: the module's login role may update only
-- the columns its statements update.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/017_column_updates.sql
--
-- It had UPDATE on every column of users and redeem_codes (001, 002). Its
-- statements write a user's password_hash (a login's rehash), is_admin
-- (RedeemAdmin's promotion) and subscription_expires_at (a redemption), and
-- a code's used_at, used_by and used_request (its claim); nothing else. Whoever took
-- over the role could also have set a user's token_generation back (undoing
-- a revocation), or changed a code's months, expiry, batch or hash, or an
-- account's email. redeem-admin runs as the owner, as before.

\if :{?app_role}
\else
\set app_role redeem_app
\endif

REVOKE UPDATE ON users, redeem_codes FROM :"app_role";
GRANT UPDATE (password_hash, is_admin, subscription_expires_at) ON users TO :"app_role";
GRANT UPDATE (used_at, used_by, used_request) ON redeem_codes TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (17);
