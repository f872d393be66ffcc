-- mod_redeem schema, migration 015: an audited attempt has one row however
-- often its statement runs, and a batch of codes is stored only for an
-- admin who still is one, and known stored when its reply was lost.
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
-- codes_batch_begin() is a batch's first statement: it takes the batch's
-- own lock (an advisory lock of its id) to the commit. codes_actor_check()
-- runs in the batch's audit statement, its last: it checks the admin again
-- on a snapshot of that moment and holds the admin's row (FOR SHARE) the
-- few moments to the commit: a batch whose admin was deleted, had its
-- tokens revoked (RD401) or lost the role (RD403) after the request's token
-- was read is refused, and such a change is never committed before a batch
-- stored after it (the admin's own redemptions and logins are not held up
-- by the inserts before it). codes_batch_stored() is
-- what the module asks, on a new connection, when it lost its connection
-- to a batch before the answer: it waits for the batch's lock (the batch
-- still running when its connection was lost), then says whether the batch
-- was stored, so that a batch committed is answered 201, not 503; and when
-- it was not, it makes that final: the batch's id goes into
-- code_batches_abandoned, and a batch whose statements reach the database
-- only after that (held up in a network, resent by TCP) is refused by its
-- first statement (RD409), never stored after its client was told 503.
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
  until timestamptz := now() + interval '1 day'; -- a failover to a clock behind
BEGIN
  RETURN EXISTS (SELECT FROM public.audit_log
                  WHERE request_id = p_request_id AND event = p_event AND actor_id = p_actor
                    AND (event <> 'redeem' OR outcome <> 'success')
                    AND occurred_at > since AND occurred_at < until);
END
$$;
REVOKE ALL ON FUNCTION audit_request_logged(text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_request_logged(text, text, bigint) TO :"app_role";

-- A batch's advisory lock: the first 64 bits of its id.
CREATE FUNCTION codes_batch_lock_key(p_batch_id uuid) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT
  SET search_path = pg_catalog, public, pg_temp AS $$
  SELECT ('x' || left(replace(p_batch_id::text, '-', ''), 16))::bit(64)::bigint
$$;

-- Batches given up as not stored (codes_batch_stored), a day long: no
-- batch's statements reach the database later than that.
CREATE TABLE code_batches_abandoned (
  batch_id     uuid PRIMARY KEY,
  abandoned_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION codes_batch_begin(p_batch_id uuid) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(public.codes_batch_lock_key(p_batch_id));
  -- Read after the lock (a statement of its own: a snapshot of its own).
  IF EXISTS (SELECT FROM public.code_batches_abandoned WHERE batch_id = p_batch_id) THEN
    RAISE EXCEPTION 'batch % was given up as not stored: refused', p_batch_id
      USING ERRCODE = 'RD409';
  END IF;
END
$$;

-- Runs as its caller: the module's role may lock its users' rows.
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

-- VOLATILE: its read takes a snapshot of its own, after the lock, which it
-- holds (exclusive) to its commit, so that a batch arriving meanwhile finds
-- its id abandoned.
CREATE FUNCTION codes_batch_stored(p_batch_id uuid) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(public.codes_batch_lock_key(p_batch_id));
  IF EXISTS (SELECT FROM public.code_batches WHERE batch_id = p_batch_id) THEN
    RETURN true;
  END IF;
  DELETE FROM public.code_batches_abandoned WHERE abandoned_at < now() - interval '1 day';
  INSERT INTO public.code_batches_abandoned (batch_id) VALUES (p_batch_id)
    ON CONFLICT (batch_id) DO NOTHING;
  RETURN false;
END
$$;
REVOKE ALL ON FUNCTION codes_batch_lock_key(uuid), codes_batch_begin(uuid),
  codes_actor_check(bigint, bigint, text), codes_batch_stored(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION codes_batch_lock_key(uuid), codes_batch_begin(uuid),
  codes_actor_check(bigint, bigint, text), codes_batch_stored(uuid) TO :"app_role";

-- A database migrated with a draft of migration 014 made before 0.6.0
-- (which had this migration's refusal check, and no search path fix):
-- its leftovers go, and every function that runs as its owner gets 014's
-- search path here too. Nothing to do on any other database.
SET client_min_messages = warning; -- no notice for what is not there
DROP FUNCTION IF EXISTS redeem_refusal_logged(text, bigint);
DROP INDEX IF EXISTS audit_log_redeem_refusal;
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_proc p
            WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace
              AND NOT coalesce('search_path=pg_catalog, public, pg_temp' = ANY (p.proconfig), false)
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', f);
  END LOOP;
END
$$;

INSERT INTO schema_migrations (version) VALUES (15);
