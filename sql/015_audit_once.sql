-- mod_redeem schema, migration 015: an audited attempt has one row however
-- often its statement runs, and a batch of codes is stored only for an
-- admin who still is one.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/015_audit_once.sql
--
-- When the connection is lost after a statement committed (its reply
-- dropped by a proxy, a NAT or a failover), the module runs it again on a
-- new connection where it can tell its own earlier run. A redemption's
-- success is told by its claim (migration 005); a refused redemption (code
-- used, expired or missing), and the audit rows written alone (an admin's
-- read of a subscription, a redemption refused before its lookup, a rate
-- limit's refusal), claim nothing: the run again wrote a second row for the
-- same request. They now ask audit_request_logged() before writing: the
-- module's login role may not read audit_log, so the function does, as its
-- owner, and says only whether that request already has its row.
--
-- The index leaves out successful redemptions (the bulk of the rows), which
-- so cost nothing more to write. Building it reads every partition of
-- audit_log, the legacy one of 004 included, under a SHARE lock, which holds
-- up every audit row (so every redemption, batch and admin read) until this
-- migration commits: apply it when the site is quiet.
--
-- codes_actor_check() is a batch's first statement: it holds the admin's
-- row (FOR SHARE) to the batch's commit, and refuses a batch whose admin was
-- deleted, had its tokens revoked (RD401) or lost the role (RD403) after the
-- request's token was read, so that such a change waits for a batch under
-- way, or the batch is refused, never stored after it.
-- The module's login role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

CREATE INDEX audit_log_request ON audit_log (request_id)
  WHERE event <> 'redeem' OR outcome <> 'success';

-- The bounds are variables and every plan custom, so that the partitions
-- are pruned as the plan is made: a generic plan would lock every month to
-- look at one, and a lock on an archived month would hold up refusals. A
-- run again follows its first run within the request's RedeemDBTimeout; a
-- day bounds the months looked at with room for any clock.
CREATE FUNCTION audit_request_logged(p_request_id text, p_event text, p_actor bigint)
  RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  since timestamptz := now() - interval '1 day';
  until timestamptz := now();
BEGIN
  RETURN EXISTS (SELECT FROM public.audit_log
                  WHERE request_id = p_request_id AND event = p_event AND actor_id = p_actor
                    AND (event <> 'redeem' OR outcome <> 'success')
                    AND occurred_at > since AND occurred_at <= until);
END
$$;
REVOKE ALL ON FUNCTION audit_request_logged(text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_request_logged(text, text, bigint) TO :"app_role";

-- Runs as its caller (the module's role may lock its users' rows).
CREATE FUNCTION codes_actor_check(p_actor bigint, p_token_generation bigint, p_email text)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  admin boolean;
BEGIN
  SELECT is_admin INTO admin FROM public.users
   WHERE id = p_actor AND token_generation = p_token_generation AND email = p_email
     FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the batch''s admin % no longer exists, or its token was revoked', p_actor
      USING ERRCODE = 'RD401';
  END IF;
  IF NOT admin THEN
    RAISE EXCEPTION 'the batch''s user % is no longer an admin', p_actor USING ERRCODE = 'RD403';
  END IF;
END
$$;
REVOKE ALL ON FUNCTION codes_actor_check(bigint, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION codes_actor_check(bigint, bigint, text) TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (15);
