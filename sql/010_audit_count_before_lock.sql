-- mod_redeem schema, migration 010: retention counts before it locks.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/010_audit_count_before_lock.sql
--
-- audit_drop_before() (004) took audit_log's ACCESS EXCLUSIVE lock and then
-- counted every partition it was about to drop, so every audit row the
-- module writes (each redemption's, each generation's) waited for whole
-- months to be read: tens of seconds for months of millions of rows not in
-- memory, past RedeemDBTimeout (503). It now counts them first, and holds
-- the lock only for the drops and their audit rows. Nothing else changes:
-- the same signature, rights and results (CREATE OR REPLACE keeps the
-- grants of 004).

CREATE OR REPLACE FUNCTION audit_drop_before(cutoff date)
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
  counted jsonb := '{}';
  n bigint;
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

  -- Counted before audit_log is locked: a count reads the whole month, and
  -- nothing may be written to audit_log while it is locked. A month before
  -- the cutoff gets no new row meanwhile (every writer of the module stamps
  -- now(); this month and later ones are never dropped), so the counts are
  -- those of the rows dropped.
  FOR p IN SELECT a.partition_name FROM audit_partitions() a
            WHERE NOT a.is_default AND a.range_to <= limit_at LOOP
    EXECUTE format('SELECT count(*) FROM public.%I', p.partition_name) INTO n;
    counted := counted || jsonb_build_object(p.partition_name, n);
  END LOOP;

  -- audit_log first, as an INSERT takes its locks (a partition locked first
  -- could deadlock with an INSERT routed to it); held only for the drops.
  IF counted <> '{}' THEN
    LOCK TABLE public.audit_log IN ACCESS EXCLUSIVE MODE;
  END IF;
  FOR p IN SELECT a.partition_name, a.range_from, a.range_to FROM audit_partitions() a
            WHERE NOT a.is_default AND a.range_to <= limit_at ORDER BY a.range_to LOOP
    partition_name := p.partition_name;
    range_from := p.range_from;
    range_to := p.range_to;
    dropped_rows := (counted ->> partition_name)::bigint;
    IF dropped_rows IS NULL THEN -- a month made meanwhile (audit_prepare waits on the advisory lock)
      EXECUTE format('SELECT count(*) FROM public.%I', partition_name) INTO dropped_rows;
    END IF;
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

INSERT INTO schema_migrations (version) VALUES (10);
