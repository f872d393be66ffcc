-- mod_redeem schema, migration 012: new codes no longer hold up redemptions.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/012_code_counts_apart.sql
--
-- The counters of 002 kept a batch's new codes and a redemption's use in the
-- same 64 rows of code_counts. A batch of 5,000 codes or more touches every
-- shard, so it held all 64 rows locked until it committed, and every
-- redemption waited for it (its row trigger updates its code's shard) while
-- holding its code and its user: at 1,000,000 codes a batch, redemptions
-- waited past RedeemDBTimeout and were answered 503. A redemption now counts
-- in 64 rows of its own (shards 64-127), which inserts and deletes never
-- touch; only the sums mean anything (the listing reads sum(total) and
-- sum(used)), so a delete of used codes may take the first rows' used below
-- zero.

INSERT INTO code_counts (shard) SELECT generate_series(64, 127);

CREATE OR REPLACE FUNCTION code_counts_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF (OLD.used_at IS NULL) <> (NEW.used_at IS NULL) THEN
    UPDATE code_counts SET used = used + CASE WHEN NEW.used_at IS NULL THEN -1 ELSE 1 END
     WHERE shard = 64 + NEW.id % 64;
  END IF;
  RETURN NULL;
END
$$;

INSERT INTO schema_migrations (version) VALUES (12);
