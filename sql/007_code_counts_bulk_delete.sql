-- mod_redeem schema, migration 007: deleting codes in bulk counts them once.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/007_code_counts_bulk_delete.sql
--
-- The row trigger of 002 updated a code_counts row for every deleted code.
-- In one statement those are many updates of the same 64 rows in one
-- transaction, and each update first walks past every version of its row
-- the transaction made before: quadratic (an operator's DELETE of 1.7M codes
-- ran for over 15 minutes). Deletions now count their rows once per
-- statement, as insertions do; a redemption's update of used_at (one row)
-- keeps the row trigger.

CREATE FUNCTION code_counts_delete() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  UPDATE code_counts c SET total = c.total - o.total, used = c.used - o.used
    FROM (SELECT (id % 64)::integer AS shard, count(*) AS total, count(used_at) AS used
            FROM old_rows GROUP BY 1) o
   WHERE c.shard = o.shard;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION code_counts_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF (OLD.used_at IS NULL) <> (NEW.used_at IS NULL) THEN
    UPDATE code_counts SET used = used + CASE WHEN NEW.used_at IS NULL THEN -1 ELSE 1 END
     WHERE shard = NEW.id % 64;
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER redeem_codes_count_change ON redeem_codes;
CREATE TRIGGER redeem_codes_count_change AFTER UPDATE OF used_at ON redeem_codes
  FOR EACH ROW EXECUTE FUNCTION code_counts_change();
CREATE TRIGGER redeem_codes_count_delete AFTER DELETE ON redeem_codes
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION code_counts_delete();

INSERT INTO schema_migrations (version) VALUES (7);
