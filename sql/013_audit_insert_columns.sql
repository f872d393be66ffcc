-- mod_redeem schema, migration 013: the module's role writes an audit row's
-- facts, never its time or its id.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/013_audit_insert_columns.sql
--
-- INSERT on the whole of audit_log let the module's login role set
-- occurred_at (and, with OVERRIDING SYSTEM VALUE, id): whoever took over
-- httpd could plant rows dated in months already closed, or about to be
-- dropped by redeem-retention. It may now insert the columns the module
-- writes alone; occurred_at is the insert's now() and id the identity's.
-- The module's login role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

REVOKE INSERT ON audit_log FROM :"app_role";
GRANT INSERT (event, actor_id, target, client_addr, outcome, request_id) ON audit_log
  TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (13);
