-- Alert rules (docs/alerts.md): one row per rule, validated by domain/alert-rules.ts before it is
-- written. The kind's parameters are one JSON object (`condition`, the rule's condition without its
-- subject); the subject is in columns of its own.
--
-- Readers (an alerter) follow changes by revision: every insert, update and delete takes the next
-- value of `alert_rule_clock.revision` (a one-row counter whose row lock serialises the writers
-- until they commit, so a revision becomes visible only after every smaller one), and stamps the
-- rule's row with it. A deleted rule stays as a tombstone (`deleted_at` set, its revision bumped),
-- so that a reader asking for the changes since the revision it holds learns of the deletion.
CREATE TABLE IF NOT EXISTS alert_rule_clock (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  revision bigint NOT NULL CHECK (revision >= 0)
);
INSERT INTO alert_rule_clock (one, revision) VALUES (true, 0) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS alert_rule (
  id text PRIMARY KEY CHECK (id ~ '^ar_[0-9A-Za-z]{10}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  enabled boolean NOT NULL,
  event_type text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
  kind text NOT NULL CHECK (kind IN ('milestone', 'threshold', 'spike')),
  subject_kind text NOT NULL CHECK (subject_kind IN ('target', 'target_prefix', 'user_id')),
  subject text NOT NULL CHECK (length(subject) > 0),
  condition jsonb NOT NULL CHECK (jsonb_typeof(condition) = 'object'),
  recipient_user_ids text[] NOT NULL DEFAULT '{}',
  recipient_groups text[] NOT NULL DEFAULT '{}',
  notify_target_owner boolean NOT NULL DEFAULT false,
  notify_dashboard boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  revision bigint NOT NULL UNIQUE,
  deleted_at timestamptz,
  -- Only threshold rules watch a user.
  CHECK (subject_kind <> 'user_id' OR kind = 'threshold')
);
-- `revision`'s unique index serves the changes since a revision, in order (an alerter's poll).
