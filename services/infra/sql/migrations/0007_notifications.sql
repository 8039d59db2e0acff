-- Notifications raised by the alert rules (docs/alerts.md): one row per notification, whose id
-- is deterministic (the rule, the series and the threshold or minute that raised it), so that a
-- notification raised again — a redelivery, a restart, a partition taken over — is the same row.
-- `seq` orders them as they were kept: listings page on it, and a client resumes after the last
-- one it saw. `recipients` holds `user:<id>`, `group:<name>` and `dashboard`; who read which is
-- kept per recipient in notification_read.
CREATE TABLE IF NOT EXISTS notification (
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
  rule_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('milestone', 'threshold', 'spike')),
  target text NOT NULL,
  type text NOT NULL,
  subject text,
  value double precision NOT NULL,
  threshold double precision,
  window_minutes integer CHECK (window_minutes > 0),
  baseline double precision,
  score double precision,
  occurred_at timestamptz NOT NULL,
  recipients text[] NOT NULL CHECK (cardinality(recipients) > 0),
  message text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notification_recipients ON notification USING gin (recipients);
CREATE INDEX IF NOT EXISTS notification_target ON notification (target, seq);
CREATE INDEX IF NOT EXISTS notification_rule ON notification (rule_id, seq);

CREATE TABLE IF NOT EXISTS notification_read (
  notification_id text NOT NULL REFERENCES notification (id) ON DELETE CASCADE,
  recipient text NOT NULL,
  read_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (notification_id, recipient)
);
