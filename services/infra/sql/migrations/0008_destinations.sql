-- Delivery destinations (docs/delivery.md): one row per destination, validated by
-- domain/destinations.ts before it is written. The endpoint (webhook or Kafka settings), the
-- filter and the transform are JSON objects in the domain's shape; the rest are columns.
--
-- A webhook's signing secrets (`signing_secrets`, newest first: [{secret, created_at_ms,
-- expires_at_ms}]) are stored as they are: they must be usable to compute HMAC signatures, so no
-- hash of them would do. The API shows a secret once, when it is made; a deleted destination's
-- secrets are erased from its tombstone.
--
-- Readers (the router and the senders) follow changes by revision exactly as the alert rules'
-- readers do (0005_alert_rules.sql): every write takes the next value of
-- `destination_clock.revision`, whose row lock serialises the writers until they commit, and
-- stamps the row with it; a deleted destination stays as a tombstone so the change feed reports it.
CREATE TABLE IF NOT EXISTS destination_clock (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  revision bigint NOT NULL CHECK (revision >= 0)
);
INSERT INTO destination_clock (one, revision) VALUES (true, 0) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS destination (
  id text PRIMARY KEY CHECK (id ~ '^ds_[0-9A-Za-z]{10}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  enabled boolean NOT NULL,
  disabled_reason text NOT NULL DEFAULT '' CHECK (length(disabled_reason) <= 500),
  kind text NOT NULL CHECK (kind IN ('webhook', 'kafka')),
  endpoint jsonb NOT NULL CHECK (jsonb_typeof(endpoint) = 'object'),
  filter jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
  transform jsonb NOT NULL CHECK (jsonb_typeof(transform) = 'object'),
  ordering text NOT NULL CHECK (ordering IN ('per_user', 'none')),
  retry_delays_seconds integer[] NOT NULL CHECK (cardinality(retry_delays_seconds) BETWEEN 1 AND 20),
  rate_limit_per_second integer CHECK (rate_limit_per_second > 0),
  concurrency integer NOT NULL CHECK (concurrency > 0),
  signing_secrets jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(signing_secrets) = 'array'),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  revision bigint NOT NULL UNIQUE,
  deleted_at timestamptz,
  -- Only a webhook signs.
  CHECK (kind = 'webhook' OR signing_secrets = '[]'::jsonb)
);
-- `revision`'s unique index serves the changes since a revision, in order (a router's poll).
