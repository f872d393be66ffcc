-- mod_redeem schema, migration 016: batches of codes stored or deleted at
-- once do not deadlock on their counters, and no role but the owner may put
-- an object in schema public, where the functions that run as the owner
-- look.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/016_counters_in_order.sql
--
-- The statement triggers that count a batch's new codes (002) and the codes
-- a statement deletes (007) updated the counter rows of their shards in the
-- order their plan read them: a hash join's for a few hundred codes, the
-- table's for a few dozen. Two batches stored at once could each hold a
-- counter the other one wanted next: PostgreSQL then cancelled one of them
-- (40P01, a deadlock; the module answered its admin 503 and stored nothing
-- of it). Each now locks its counter rows in the order of their shards
-- before it updates any (t/codes/count_locks.t).
--
-- A function that runs as its owner searches pg_catalog, public, then
-- pg_temp (014). An object of public that matches a call more closely than
-- pg_catalog's is taken before it: an operator % (bigint, integer) there,
-- say, would run as the owner inside the counters' triggers. PostgreSQL 15
-- lets no one but the database's owner create in public, but a cluster
-- upgraded from an earlier version (pg_upgrade, or a dump restored with its
-- privileges) keeps the old grant to every role. That grant is revoked (by
-- a superuser or public's owner: anyone else is told so and stopped), and
-- the migration fails if the module's login role or the maintenance role
-- may still create there, or grant itself the right again: a superuser,
-- the schema's owner (the database's, by default), or a member of a role
-- granted CREATE there. Give public and the database to the owner that
-- applies sql/ instead.

\if :{?app_role}
\else
\set app_role redeem_app
\endif
\if :{?maint_role}
\else
\set maint_role redeem_maint
\endif

CREATE OR REPLACE FUNCTION code_counts_insert() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  PERFORM FROM code_counts
    WHERE shard IN (SELECT DISTINCT (id % 64)::integer FROM new_rows)
    ORDER BY shard FOR UPDATE;
  UPDATE code_counts c SET total = c.total + n.total, used = c.used + n.used
    FROM (SELECT (id % 64)::integer AS shard, count(*) AS total, count(used_at) AS used
            FROM new_rows GROUP BY 1) n
   WHERE c.shard = n.shard;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION code_counts_delete() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  PERFORM FROM code_counts
    WHERE shard IN (SELECT DISTINCT (id % 64)::integer FROM old_rows)
    ORDER BY shard FOR UPDATE;
  UPDATE code_counts c SET total = c.total - o.total, used = c.used - o.used
    FROM (SELECT (id % 64)::integer AS shard, count(*) AS total, count(used_at) AS used
            FROM old_rows GROUP BY 1) o
   WHERE c.shard = o.shard;
  RETURN NULL;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Only a superuser or public's owner can revoke that grant: anyone else
-- gets a warning and nothing changes.
SELECT $do$DO $refuse$ BEGIN RAISE EXCEPTION
  'every role may still create objects in schema public, and the role that runs this migration (%) cannot take that away: run it as a superuser or as the owner of schema public', current_user; END $refuse$$do$
 WHERE has_schema_privilege('public', 'public', 'CREATE') \gexec
SELECT format('REVOKE CREATE ON SCHEMA public FROM %I', r)
  FROM unnest(ARRAY[:'app_role', :'maint_role']) AS r
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
SELECT format($do$DO $refuse$ BEGIN RAISE EXCEPTION
  'the role %s may still create objects in schema public, where the functions that run as their owner look (it owns the schema or the database, is a superuser, or belongs to a role granted CREATE there): make another role the owner and take the grant away, then migrate again'; END $refuse$$do$, r)
  FROM unnest(ARRAY[:'app_role', :'maint_role']) AS r
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r)
   AND (has_schema_privilege(r, 'public', 'CREATE')
        OR pg_has_role(r, (SELECT nspowner FROM pg_namespace WHERE nspname = 'public'), 'USAGE'))
\gexec

INSERT INTO schema_migrations (version) VALUES (16);
