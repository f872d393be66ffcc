-- mod_redeem schema, migration 002: redeem codes, subscriptions' audit trail.
-- Apply with: psql -v ON_ERROR_STOP=1 --single-transaction -f sql/002_codes.sql
-- The module's login role is the psql variable app_role (default redeem_app).

\if :{?app_role}
\else
\set app_role redeem_app
\endif

-- A code is never stored in clear: code_hash is HMAC-SHA256 of the normalized
-- code under the server's MAC key (the lookup key), code_sealed is the code
-- under AES-256-GCM with the server's encryption key (nonce || ciphertext ||
-- tag), bound to code_hash. A dump of this table yields no redeemable code.
CREATE TABLE redeem_codes (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code_hash       bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32),
  code_sealed     bytea NOT NULL CHECK (length(code_sealed) = 52),
  batch_id        uuid NOT NULL,
  duration_months integer NOT NULL DEFAULT 1 CHECK (duration_months BETWEEN 1 AND 36),
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz,
  used_at         timestamptz,
  used_by         bigint REFERENCES users (id) ON DELETE SET NULL
);
-- Listing by id under each filter stays an index range scan at any size.
CREATE INDEX redeem_codes_batch_id ON redeem_codes (batch_id, id);
CREATE INDEX redeem_codes_unused_id ON redeem_codes (id) WHERE used_at IS NULL;
CREATE INDEX redeem_codes_used_id ON redeem_codes (id) WHERE used_at IS NOT NULL;
CREATE INDEX redeem_codes_used_by ON redeem_codes (used_by) WHERE used_by IS NOT NULL;

-- Exact totals for the listing without counting rows. Sharded by id so that
-- concurrent redemptions do not queue on one counter row.
CREATE TABLE code_counts (
  shard integer PRIMARY KEY,
  total bigint NOT NULL DEFAULT 0,
  used  bigint NOT NULL DEFAULT 0
);
INSERT INTO code_counts (shard) SELECT generate_series(0, 63);

CREATE FUNCTION code_counts_insert() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  UPDATE code_counts c SET total = c.total + n.total, used = c.used + n.used
    FROM (SELECT (id % 64)::integer AS shard, count(*) AS total, count(used_at) AS used
            FROM new_rows GROUP BY 1) n
   WHERE c.shard = n.shard;
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_count_insert AFTER INSERT ON redeem_codes
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION code_counts_insert();

CREATE FUNCTION code_counts_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE code_counts SET total = total - 1,
                           used = used - (OLD.used_at IS NOT NULL)::integer
     WHERE shard = OLD.id % 64;
  ELSIF (OLD.used_at IS NULL) <> (NEW.used_at IS NULL) THEN
    UPDATE code_counts SET used = used + CASE WHEN NEW.used_at IS NULL THEN -1 ELSE 1 END
     WHERE shard = NEW.id % 64;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER redeem_codes_count_change AFTER UPDATE OF used_at OR DELETE ON redeem_codes
  FOR EACH ROW EXECUTE FUNCTION code_counts_change();

-- The audit trail: append-only. The app role may INSERT, nothing else; the
-- trigger refuses UPDATE and DELETE to every role but a superuser's TRUNCATE.
CREATE TABLE audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  event       text NOT NULL,
  actor_id    bigint,           -- no foreign key: the trail outlives accounts
  target      text,
  client_addr text,
  outcome     text NOT NULL,
  request_id  text
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

GRANT SELECT, INSERT, UPDATE ON redeem_codes TO :"app_role";
GRANT SELECT ON code_counts TO :"app_role";
GRANT INSERT ON audit_log TO :"app_role";

INSERT INTO schema_migrations (version) VALUES (2);
