-- mod_redeem schema, migration 008: codes found by a 64-bit key.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/008_code_lookup_key.sql
--
-- code_hash is a keyed hash, so its unique index took its keys at random:
-- at 10 million codes it was 563 MB, and a batch of 100,000 new codes
-- touched most of its 72,000 leaves. The first change of a page after a
-- checkpoint writes the whole page to the WAL, so a batch after a checkpoint
-- wrote the index nearly whole (360 MB). The index now holds the hash's first
-- 8 bytes as a bigint: 20 bytes an entry instead of 52, 253 MB at 10 million
-- codes (measured on the bench's cluster). Lookups compare the whole hash
-- too, so a code still matches only its own row; two codes whose hashes
-- share 64 bits (odds about 3 in a million over 10 million codes) cannot
-- both be stored, and the module makes that batch again. Should two stored
-- codes already share theirs, CREATE UNIQUE INDEX stops this migration and
-- names the key; the codes are then those with
-- code_lookup_key(code_hash) = that key: delete one, and apply it again.
--
-- On a large table CREATE INDEX holds off writes to redeem_codes for as long
-- as it takes (about 12 s at 10 million codes on the bench's machine).
-- The module's login role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

CREATE FUNCTION code_lookup_key(code_hash bytea) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ('x' || encode(substring(code_hash FROM 1 FOR 8), 'hex'))::bit(64)::bigint;

CREATE UNIQUE INDEX redeem_codes_lookup_key ON redeem_codes (code_lookup_key(code_hash));
ALTER TABLE redeem_codes DROP CONSTRAINT redeem_codes_code_hash_key;

GRANT EXECUTE ON FUNCTION code_lookup_key(bytea) TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (8);
