-- mod_redeem schema, migration 014: no function that runs as its owner can
-- be made to read a table of its caller's.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/014_definer_search_path.sql
--
-- The SECURITY DEFINER functions of 001, 002, 007, 009 and 012 (the row
-- counters and the batch ranges) set search_path = public. A path that does
-- not name pg_temp searches the session's temporary schema first for tables
-- and views, and every role may make temporary objects by default: the
-- module's login role (whoever took over httpd) could make a temporary
-- row_counts with a trigger of its own, and the next INSERT INTO users ran
-- that trigger as the functions' owner, superuser included. Each such
-- function of the schema now searches pg_catalog, then public, then pg_temp
-- last, as 004's and 010's always did. A function added later states the
-- same path itself (t/codes/lookup_key.t checks every one).

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

INSERT INTO schema_migrations (version) VALUES (14);
