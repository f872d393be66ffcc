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

-- First, before anything that locks redeem_codes more weakly: a redemption
-- arriving meanwhile waits here, where with CREATE TRIGGER's lock taken
-- first it would deadlock with DROP INDEX below.
LOCK TABLE redeem_codes IN ACCESS EXCLUSIVE MODE;

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

-- Rows moved to another batch (or given new ids) by hand: each row's new
-- place is noted in code_batch_moves, and once per statement the notes are
-- folded into the ranges (one upsert a batch: a row trigger upserting
-- code_batches itself would update one row once per moved code, quadratic
-- as 007 found for deletes). Both triggers fire only for an UPDATE that sets
-- batch_id or id, which redemptions never do. The notes never outlive their
-- statement, so the table may be unlogged.
CREATE UNLOGGED TABLE code_batch_moves (batch_id uuid NOT NULL, id bigint NOT NULL);

CREATE FUNCTION code_batches_note_move() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  INSERT INTO code_batch_moves (batch_id, id) VALUES (NEW.batch_id, NEW.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_batches_note_move AFTER UPDATE OF batch_id, id ON redeem_codes
  FOR EACH ROW EXECUTE FUNCTION code_batches_note_move();

CREATE FUNCTION code_batches_fold_moves() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM code_batches_extend(batch_id, min(id), max(id)) FROM code_batch_moves GROUP BY batch_id;
  DELETE FROM code_batch_moves;
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_batches_fold_moves AFTER UPDATE OF batch_id, id ON redeem_codes
  FOR EACH STATEMENT EXECUTE FUNCTION code_batches_fold_moves();

-- Trigger functions run as their owner: no role calls them directly (a
-- role could otherwise hang them on a table of its own and write
-- code_batches or code_counts through them). The counters' functions of
-- 001, 002 and 007 are closed the same way.
REVOKE EXECUTE ON FUNCTION code_batches_insert(), code_batches_note_move(),
  code_batches_fold_moves(), users_count_rows(), code_counts_insert(), code_counts_change(),
  code_counts_delete() FROM PUBLIC;

INSERT INTO code_batches (batch_id, first_id, last_id)
SELECT batch_id, min(id), max(id) FROM redeem_codes GROUP BY batch_id;

DROP INDEX redeem_codes_batch_id;

GRANT SELECT ON code_batches TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (9);
