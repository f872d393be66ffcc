-- mod_redeem schema, migration 004: the audit trail in monthly partitions,
-- and a maintenance role that may add and drop whole months.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/004_audit_partitions.sql
-- psql variables: app_role, the module's login (default redeem_app), and
-- maint_role, the maintenance role (default redeem_maint), created here
-- NOLOGIN when missing. redeem-retention(8) runs the maintenance as it.
--
-- audit_log becomes a table partitioned by range of occurred_at, one
-- partition per calendar month in UTC (audit_log_YYYY_MM), plus the default
-- partition audit_log_default that takes any row no month partition covers
-- (a month nobody prepared, a row stamped with an odd time), so an INSERT
-- never fails for want of a partition. audit_prepare() later moves such rows
-- into their month's partition when it creates it.
--
-- The rows already there are not copied: the old table itself, unchanged, is
-- attached as the partition audit_log_legacy, FROM (MINVALUE) TO the first
-- month after both its newest row and the current month; the months after it
-- get partitions of their own. Retention drops it whole once all of it is
-- older than the cutoff. An empty old table is dropped instead, so a new
-- database starts with monthly partitions only. The ids go on from where the
-- old identity stopped. Whole table locked (ACCESS EXCLUSIVE) until commit;
-- the only work that grows with the table is one scan (ATTACH checks that
-- every row is in range), no copy and no index build: its indexes become the
-- partition's. With 10 million rows (1.7 GB) on a 2-core machine: 1.5 to
-- 2.5 s when the table is in the page cache, 16 to 20 s when the scan reads
-- it from disk. The module's INSERTs (and so redemptions) wait meanwhile, and
-- may meet its statement_timeout: read the table into the cache just before,
-- e.g. SELECT count(target) FROM audit_log (which takes no lock that blocks).
--
-- Keys: a primary key of a partitioned table must include the partition key,
-- and one on (id, occurred_at) would cost an index build over the old rows
-- (8 s for 10 million) and promise less than the old one. So each partition
-- has PRIMARY KEY (id) of its own (audit_create_months() adds it), the old
-- table keeps its own, and audit_log has the index on occurred_at for all:
-- ids are unique in every month, and across months because they all come
-- from the one identity.
--
-- Still append-only: the module's role may only INSERT (through audit_log,
-- it has no right on any partition); a statement trigger on audit_log and a
-- row trigger on every partition (cloned from audit_log, present and future)
-- refuse UPDATE and DELETE to every role. Old months go by DROP of their
-- partition, which only the owner may do: the maintenance role gets EXECUTE
-- on audit_prepare(), audit_drop_before() and audit_partitions() and nothing
-- else; they run as the owner (SECURITY DEFINER) and do only what they say.

\if :{?app_role}
\else
\set app_role redeem_app
\endif
\if :{?maint_role}
\else
\set maint_role redeem_maint
\endif

SELECT format('CREATE ROLE %I NOLOGIN', :'maint_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'maint_role') \gexec

-- The maintenance role must not be, or be held by, the module's role.
SELECT format('DO $do$ BEGIN RAISE EXCEPTION %L; END $do$',
              format('maint_role %s must be another role than app_role %s, and not granted to it',
                     :'maint_role', :'app_role'))
 WHERE :'maint_role' = :'app_role' OR pg_has_role(:'app_role', :'maint_role', 'MEMBER') \gexec

-- Nothing writes audit rows until this transaction ends.
LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;

-- Where the identity stands, and the range the rows there need.
SELECT pg_get_serial_sequence('public.audit_log', 'id') AS audit_seq \gset
SELECT last_value AS audit_seq_last, is_called AS audit_seq_called FROM :audit_seq \gset
SELECT EXISTS (SELECT FROM audit_log) AS audit_has_rows,
       to_char(greatest(date_trunc('month', now() AT TIME ZONE 'UTC'),
                        date_trunc('month', (SELECT max(occurred_at) FROM audit_log) AT TIME ZONE 'UTC'))
               + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00' AS audit_legacy_to \gset

-- The old table, without what the partitioned one redefines: its identity
-- (and so its sequence) and its statement trigger. Its primary key on id and
-- its index on occurred_at stay, renamed; the second becomes a part of the
-- partitioned index.
ALTER TABLE audit_log RENAME TO audit_log_legacy;
ALTER TABLE audit_log_legacy ALTER COLUMN id DROP IDENTITY;
DROP TRIGGER audit_log_append_only ON audit_log_legacy;
ALTER TABLE audit_log_legacy RENAME CONSTRAINT audit_log_pkey TO audit_log_legacy_pkey;
ALTER INDEX audit_log_occurred_at RENAME TO audit_log_legacy_occurred_at;
REVOKE ALL ON audit_log_legacy FROM :"app_role";

CREATE TABLE audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  event       text NOT NULL,
  actor_id    bigint,           -- no foreign key: the trail outlives accounts
  target      text,
  client_addr text,
  outcome     text NOT NULL,
  request_id  text
  -- PRIMARY KEY (id) on each partition, see above.
) PARTITION BY RANGE (occurred_at);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
COMMENT ON TABLE audit_log IS
  'Append-only audit trail, one partition per UTC month; see audit_prepare() and audit_drop_before()';

SELECT setval(pg_get_serial_sequence('public.audit_log', 'id'), :audit_seq_last, :'audit_seq_called');

-- Refused to every role: UPDATE or DELETE through audit_log (even of no row),
-- and, by the row trigger every partition gets, through any partition.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_append_only_row BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

\if :audit_has_rows
-- Checks every row against the range (one scan); its index on occurred_at
-- is taken over as it is.
ALTER TABLE audit_log ATTACH PARTITION audit_log_legacy
  FOR VALUES FROM (MINVALUE) TO (:'audit_legacy_to');
\else
DROP TABLE audit_log_legacy;
\endif

-- The partitions and their ranges, the default partition last (both bounds
-- null); range_from is null for MINVALUE, range_to for MAXVALUE. Times in UTC.
-- approx_rows is the planner's estimate (null before the first ANALYZE).
CREATE FUNCTION audit_partitions()
  RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz, is_default boolean,
                 approx_rows bigint)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, public, pg_temp
  SET TimeZone = 'UTC'
  SET DateStyle = 'ISO, YMD'
BEGIN ATOMIC
  SELECT c.relname::text,
         CASE WHEN b.m[1] <> 'MINVALUE' THEN btrim(b.m[1], '''')::timestamptz END,
         CASE WHEN b.m[2] <> 'MAXVALUE' THEN btrim(b.m[2], '''')::timestamptz END,
         e.expr = 'DEFAULT',
         CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) e
    CROSS JOIN LATERAL (SELECT regexp_match(e.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) b
   WHERE i.inhparent = 'public.audit_log'::regclass
   ORDER BY e.expr = 'DEFAULT', b.m[1] <> 'MINVALUE', 2;
END;

-- Internal (the two functions below call it, holding the maintenance lock):
-- creates the partition of every month (UTC) of months that no partition
-- covers, and the default partition when there is none, each with PRIMARY
-- KEY (id) (and the index on occurred_at from audit_log). Rows of those months
-- waiting in the default partition move into them: the default partition is
-- emptied by TRUNCATE (a DELETE would meet the trigger) after a copy, and the
-- copy goes back through audit_log, ids kept, each row to its partition.
CREATE FUNCTION audit_create_months(months timestamptz[])
  RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz, moved_rows bigint)
  LANGUAGE plpgsql
  SET search_path = pg_catalog, public, pg_temp
  SET TimeZone = 'UTC'
  SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
  todo timestamptz[];
  def regclass;
  moving boolean := false;
  m timestamptz;
BEGIN
  SELECT array_agg(u.mm ORDER BY u.mm) INTO todo
    FROM (SELECT DISTINCT date_trunc('month', x) AS mm FROM unnest(months) AS x WHERE x IS NOT NULL) u
   WHERE NOT EXISTS (SELECT FROM audit_partitions() p
                      WHERE NOT p.is_default
                        AND (p.range_from IS NULL OR p.range_from < u.mm + interval '1 month')
                        AND (p.range_to IS NULL OR p.range_to > u.mm));
  SELECT nullif(pt.partdefid, 0)::regclass INTO def
    FROM pg_partitioned_table pt WHERE pt.partrelid = 'public.audit_log'::regclass;
  IF todo IS NULL AND def IS NOT NULL THEN
    RETURN;
  END IF;

  -- No row may reach the default partition from here on.
  LOCK TABLE public.audit_log IN ACCESS EXCLUSIVE MODE;
  IF def IS NOT NULL AND todo IS NOT NULL THEN
    EXECUTE format('SELECT EXISTS (SELECT FROM %s d JOIN unnest($1) AS m ON d.occurred_at >= m'
                   ' AND d.occurred_at < m + interval ''1 month'')', def)
       INTO moving USING todo;
  END IF;
  IF moving THEN
    EXECUTE format('CREATE TEMP TABLE audit_log_moving ON COMMIT DROP AS SELECT id, occurred_at, event, actor_id,'
                   ' target, client_addr, outcome, request_id FROM %s', def);
    EXECUTE format('TRUNCATE %s', def);
  END IF;

  FOREACH m IN ARRAY coalesce(todo, '{}') LOOP
    partition_name := 'audit_log_' || to_char(m, 'YYYY_MM');
    range_from := m;
    range_to := m + interval '1 month';
    EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_log (PRIMARY KEY (id))'
                   ' FOR VALUES FROM (%L) TO (%L)', partition_name, range_from, range_to);
    moved_rows := 0;
    IF moving THEN
      SELECT count(*) INTO moved_rows FROM pg_temp.audit_log_moving t
       WHERE t.occurred_at >= range_from AND t.occurred_at < range_to;
    END IF;
    RETURN NEXT;
  END LOOP;

  IF def IS NULL THEN
    CREATE TABLE public.audit_log_default PARTITION OF public.audit_log (PRIMARY KEY (id)) DEFAULT;
  END IF;
  IF moving THEN
    INSERT INTO public.audit_log (id, occurred_at, event, actor_id, target, client_addr, outcome, request_id)
      OVERRIDING SYSTEM VALUE
      SELECT id, occurred_at, event, actor_id, target, client_addr, outcome, request_id
        FROM pg_temp.audit_log_moving;
    DROP TABLE pg_temp.audit_log_moving;
  END IF;
END
$$;

-- For the maintenance role: the partitions of this month (UTC) and of the
-- months_ahead months after it, where missing, and of every earlier month
-- that has rows waiting in the default partition (moved into it). Returns
-- the partitions it created. Run it before the months it prepares begin.
CREATE FUNCTION audit_prepare(months_ahead integer DEFAULT 3)
  RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz, moved_rows bigint)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  SET TimeZone = 'UTC'
  SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
  this_month timestamptz := date_trunc('month', now());
  last_month timestamptz;
  def regclass;
  waiting timestamptz[];
BEGIN
  IF months_ahead IS NULL OR months_ahead NOT BETWEEN 0 AND 120 THEN
    RAISE EXCEPTION 'audit_prepare(%): months_ahead must be 0 to 120', months_ahead;
  END IF;
  -- One maintenance at a time.
  PERFORM pg_advisory_xact_lock(hashtextextended('mod_redeem audit_log maintenance', 0));
  last_month := this_month + make_interval(months => months_ahead);
  SELECT nullif(pt.partdefid, 0)::regclass INTO def
    FROM pg_partitioned_table pt WHERE pt.partrelid = 'public.audit_log'::regclass;
  IF def IS NOT NULL THEN
    EXECUTE format('SELECT array_agg(DISTINCT date_trunc(''month'', occurred_at)) FROM %s'
                   ' WHERE occurred_at < $1', def)
       INTO waiting USING last_month + interval '1 month';
  END IF;
  RETURN QUERY SELECT * FROM audit_create_months(
    ARRAY(SELECT generate_series(this_month, last_month, interval '1 month')) || coalesce(waiting, '{}'));
END
$$;

-- For the maintenance role: drops every partition all of whose range lies
-- before cutoff (midnight UTC), so whole months only; the legacy partition
-- goes once its newest month does. Refused when cutoff is after the first
-- day of the current month (UTC): the current month and later ones stay.
-- Rows of those months waiting in the default partition get their month's
-- partition first and go with it. Each drop is recorded in audit_log (event
-- audit_retention, outcome dropped, target the partition, its range and its
-- row count, request_id the application_name of the session). Returns the
-- partitions it dropped.
CREATE FUNCTION audit_drop_before(cutoff date)
  RETURNS TABLE (partition_name text, range_from timestamptz, range_to timestamptz, dropped_rows bigint)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  SET TimeZone = 'UTC'
  SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
  this_month timestamptz := date_trunc('month', now());
  limit_at timestamptz := cutoff::timestamptz;
  def regclass;
  waiting timestamptz[];
  p record;
BEGIN
  IF cutoff IS NULL OR NOT isfinite(cutoff) THEN
    RAISE EXCEPTION 'audit_drop_before(%): the cutoff must be a date', cutoff;
  END IF;
  IF limit_at > this_month THEN
    RAISE EXCEPTION 'audit_drop_before(%): refused, the current month (%) and later ones are kept',
                    cutoff, to_char(this_month, 'YYYY-MM')
      USING HINT = format('The cutoff may be %s at the latest.', to_char(this_month, 'YYYY-MM-DD'));
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('mod_redeem audit_log maintenance', 0));

  SELECT nullif(pt.partdefid, 0)::regclass INTO def
    FROM pg_partitioned_table pt WHERE pt.partrelid = 'public.audit_log'::regclass;
  IF def IS NOT NULL THEN
    EXECUTE format('SELECT array_agg(DISTINCT date_trunc(''month'', occurred_at)) FROM %s'
                   ' WHERE occurred_at < $1', def)
       INTO waiting USING date_trunc('month', limit_at);
    IF waiting IS NOT NULL THEN
      PERFORM audit_create_months(waiting);
    END IF;
  END IF;

  -- audit_log first, as an INSERT takes its locks (a partition locked first
  -- could deadlock with an INSERT routed to it). From here to the commit no
  -- row is written: the counts are exact, and take that long.
  IF EXISTS (SELECT FROM audit_partitions() a WHERE NOT a.is_default AND a.range_to <= limit_at) THEN
    LOCK TABLE public.audit_log IN ACCESS EXCLUSIVE MODE;
  END IF;
  FOR p IN SELECT a.partition_name, a.range_from, a.range_to FROM audit_partitions() a
            WHERE NOT a.is_default AND a.range_to <= limit_at ORDER BY a.range_to LOOP
    partition_name := p.partition_name;
    range_from := p.range_from;
    range_to := p.range_to;
    EXECUTE format('SELECT count(*) FROM public.%I', partition_name) INTO dropped_rows;
    EXECUTE format('DROP TABLE public.%I', partition_name);
    INSERT INTO public.audit_log (event, target, client_addr, outcome, request_id)
    VALUES ('audit_retention',
            format('%s (%s to %s, %s %s)', partition_name,
                   coalesce(to_char(range_from, 'YYYY-MM-DD'), 'the start'),
                   to_char(range_to - interval '1 day', 'YYYY-MM-DD'), dropped_rows,
                   CASE WHEN dropped_rows = 1 THEN 'row' ELSE 'rows' END),
            host(inet_client_addr()), 'dropped',
            coalesce(nullif(current_setting('application_name'), ''), 'audit_drop_before'));
    RETURN NEXT;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION audit_partitions(), audit_create_months(timestamptz[]),
  audit_prepare(integer), audit_drop_before(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_partitions(), audit_prepare(integer), audit_drop_before(date)
  TO :"maint_role";

GRANT INSERT ON audit_log TO :"app_role";

-- This month, the next three, and the default partition.
SELECT count(*) FROM audit_prepare(3);

INSERT INTO schema_migrations (version) VALUES (4);
