-- Raw events, one row per event id: a re-sent or redelivered event is a no-op.
CREATE TABLE IF NOT EXISTS event (
  id text PRIMARY KEY,
  type text NOT NULL,
  target text NOT NULL,
  user_id text NOT NULL DEFAULT '',
  ip text NOT NULL DEFAULT '',
  value double precision,
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
  log_partition integer NOT NULL,
  log_offset bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS event_target_time ON event (target, occurred_at);

-- Hourly summaries by event time (occurred_at, else received_at), UTC hours.
CREATE TABLE IF NOT EXISTS event_summary (
  target text NOT NULL,
  hour timestamptz NOT NULL,
  type text NOT NULL,
  count bigint NOT NULL,
  sum_value double precision NOT NULL DEFAULT 0,
  last_update timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target, hour, type)
);

-- Event ids already folded into event_summary, kept for the dedup window.
CREATE TABLE IF NOT EXISTS summary_event_seen (
  id text PRIMARY KEY,
  seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS summary_event_seen_at ON summary_event_seen (seen_at);

-- Offsets consumed by groups whose sink is this database, committed in the
-- same transaction as the sink's writes: the next offset to read per partition.
CREATE TABLE IF NOT EXISTS consumer_offset (
  group_id text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);
