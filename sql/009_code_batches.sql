-- mod_redeem schema, migration 009: a batch's codes found by their range of ids.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/009_code_batches.sql
--
-- The index of 002 on (batch_id, id) took an entry for every new code, and
-- for every redemption too (setting used_at makes a new version of the row,
-- and every index of the table takes an entry for it), each found by a walk
-- down from the index's root. Without it, 100,000 new codes took 0.85-1.06 s
-- against 1.01-1.16 s with it (the bench's cluster, 3.3 million codes,
-- three alternating sets of three calls), medians 1.21 s against 1.52 s at
-- 11 million (where the index was 422 MB). A batch's codes are stored by one
-- transaction, so their ids lie in one range, shared at most with the
-- batches stored at the same time. code_batches keeps each batch's lowest
-- and highest id, written by the triggers below whoever inserts or moves
-- the codes (the module, a bulk load, psql); the listing of one batch reads
-- that range of the primary key and keeps the batch's rows. A batch whose
-- codes are all deleted keeps its row (a listing of it is empty, as before).
--
-- The backfill reads redeem_codes once (2.4 s at 12 million codes in memory);
-- redemptions and new codes wait meanwhile.
-- The module's login role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

CREATE TABLE code_batches (
  batch_id uuid PRIMARY KEY,
  first_id bigint NOT NULL,
  last_id  bigint NOT NULL,
  CHECK (first_id <= last_id)
);

-- Widens a batch's range to take in the ids low to high (makes its row when
-- it has none).
CREATE FUNCTION code_batches_extend(batch uuid, low bigint, high bigint) RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = public
BEGIN ATOMIC
  INSERT INTO code_batches AS b (batch_id, first_id, last_id) VALUES (batch, low, high)
  ON CONFLICT (batch_id) DO UPDATE
     SET first_id = least(b.first_id, excluded.first_id),
         last_id = greatest(b.last_id, excluded.last_id);
END;
REVOKE EXECUTE ON FUNCTION code_batches_extend(uuid, bigint, bigint) FROM PUBLIC;

-- Once per statement, as the counters of 002 are kept.
CREATE FUNCTION code_batches_insert() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM code_batches_extend(batch_id, min(id), max(id)) FROM new_rows GROUP BY batch_id;
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_batches_insert AFTER INSERT ON redeem_codes
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION code_batches_insert();

-- A row moved to another batch (or given a new id) by hand: the range of its
-- new batch takes it in. Redemptions set neither column, so this never fires
-- for them.
CREATE FUNCTION code_batches_move() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM code_batches_extend(NEW.batch_id, NEW.id, NEW.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_batches_move AFTER UPDATE OF batch_id, id ON redeem_codes
  FOR EACH ROW EXECUTE FUNCTION code_batches_move();

INSERT INTO code_batches (batch_id, first_id, last_id)
SELECT batch_id, min(id), max(id) FROM redeem_codes GROUP BY batch_id;

DROP INDEX redeem_codes_batch_id;

GRANT SELECT ON code_batches TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (9);
