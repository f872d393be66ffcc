-- mod_redeem schema, migration 014: a refused redemption is audited once,
-- however many times its statement runs.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/014_redeem_refusal_once.sql
--
-- When the connection is lost after the redemption statement committed (its
-- reply dropped by a proxy, a NAT or a failover), the module runs it again
-- on a new connection. A success is found again by its claim (replayed, no
-- second row, migration 005), but a refusal (not_found, expired, used)
-- claimed nothing, so the run again wrote a second row for the same
-- attempt. The statement now asks redeem_refusal_logged() before writing a
-- refusal's row: the module's login role may not read audit_log, so the
-- function does, as its owner, and says only whether that request already
-- has that user's refusal row.
--
-- The index holds refusals alone, so successes (the bulk of the rows) cost
-- nothing more to write. Building it reads every partition of audit_log
-- under a SHARE lock, which holds up the module's audit rows until this
-- migration commits: apply it when the site is quiet. The module's login
-- role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

CREATE INDEX audit_log_redeem_refusal ON audit_log (request_id)
  WHERE event = 'redeem' AND outcome IN ('not_found', 'expired', 'used');

-- A run again follows its first run within the request's RedeemDBTimeout;
-- a day bounds the partitions looked at with room for any clock.
CREATE FUNCTION redeem_refusal_logged(p_request_id text, p_actor bigint) RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  RETURN EXISTS (SELECT FROM audit_log
                  WHERE event = 'redeem' AND outcome IN ('not_found', 'expired', 'used')
                    AND request_id = p_request_id AND actor_id = p_actor
                    AND occurred_at > now() - interval '1 day');
END
$$;
REVOKE ALL ON FUNCTION redeem_refusal_logged(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redeem_refusal_logged(text, bigint) TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (14);
