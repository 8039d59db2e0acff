-- API keys (docs/security.md): one row per key, found by the SHA-256 of the key text (the key
-- itself is never stored). `id` is the key's display id, the first 8 characters after its prefix:
-- not secret, shown in listings and logs. `scopes`, `allowed_origins` and `allowed_types` use
-- empty arrays for "none" and "any" respectively; the rate limit overrides and the quota are NULL
-- where the defaults apply. A rotated key names its successor in `replaced_by` and keeps working
-- until its `expires_at`, the end of the grace period.
CREATE TABLE IF NOT EXISTS api_key (
  id text PRIMARY KEY CHECK (id ~ '^[0-9A-Za-z]{8}$'),
  hash text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  kind text NOT NULL CHECK (kind IN ('ingest', 'secret')),
  scopes text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'admin']::text[] AND cardinality(scopes) > 0),
  allowed_origins text[] NOT NULL DEFAULT '{}',
  allowed_types text[] NOT NULL DEFAULT '{}',
  ingest_events_per_minute integer CHECK (ingest_events_per_minute > 0),
  reads_per_minute integer CHECK (reads_per_minute > 0),
  monthly_quota bigint CHECK (monthly_quota > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  replaced_by text REFERENCES api_key (id),
  -- An ingest key writes events and nothing else.
  CHECK (kind = 'secret' OR scopes = ARRAY['ingest']::text[]),
  -- Origins and event types restrict what a browser or an app may do: ingest keys only.
  CHECK (kind = 'ingest' OR (allowed_origins = '{}' AND allowed_types = '{}'))
);
