-- `event` partitioned by day of event time (docs/architecture.md, "The event table by day"), so
-- that retention (TALLY_EVENT_RETENTION_DAYS) drops whole days instead of deleting rows.
--
-- A partitioned table's unique keys must hold the partition column, so `event` can no longer be
-- unique by id alone: its key is (id, occurred_at), and the uniqueness of an id across days is
-- kept by `event_id` (id → occurred_at, unpartitioned), written by the persister in the same
-- statement as the event (a CTE: an event row is inserted only when its id was inserted into
-- `event_id`). `event_id` loses the rows of a day when retention drops that day's partition.
--
-- Partitions: `event_pYYYYMMDD` for [day, day + 1) UTC, made by event_ensure_day(day) — ahead
-- of time by the persister's maintenance, and on demand for the days a batch holds, before its
-- insert (however late or far ahead the day). There is no DEFAULT partition: a live default
-- partition keeps PostgreSQL from reading the days in order (an ordered Append), and a newest-
-- first page would then descend every day's index instead of the newest days' only; a default
-- holding rows of a day would also stop that day's partition from being attached. A writer other
-- than the persister calls event_ensure_day for its days first.
--
-- The existing table is converted here: renamed, its rows copied into the partitioned table (one
-- partition per day they hold) and into `event_id`, then dropped; the event log's four indexes
-- of 0012 are built again on the partitioned table (on each partition, after the copy). The copy
-- runs inside the migration's transaction and holds the table meanwhile: on a large table, run
-- the migration (`tally migrate`) at a quiet time; it needs about twice the table's space.
ALTER TABLE event RENAME TO event_unpartitioned;
ALTER TABLE event_unpartitioned RENAME CONSTRAINT event_pkey TO event_unpartitioned_pkey;
DROP INDEX IF EXISTS event_user_time_id;
DROP INDEX IF EXISTS event_user_type_time_id;
DROP INDEX IF EXISTS event_target_time_id;
DROP INDEX IF EXISTS event_target_type_time_id;

CREATE TABLE event (
  id text NOT NULL,
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
) PARTITION BY RANGE (occurred_at);

-- Every stored event's id, and its event time (the partition it is in): one row per id.
CREATE TABLE event_id (
  id text PRIMARY KEY,
  occurred_at timestamptz NOT NULL
);
-- Retention deletes the ids of the days it dropped.
CREATE INDEX event_id_occurred_at ON event_id (occurred_at);

-- Makes the partition of `day` (UTC) unless it exists; true when it made it. Serialised by an
-- advisory lock (concurrent persisters ask for the same day). The partition is made as a table
-- and then attached, which locks `event` only against other schema changes (SHARE UPDATE
-- EXCLUSIVE), not against reads and writes. Partitions are made in the first schema of
-- search_path (the process's schema).
CREATE FUNCTION event_ensure_day(day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  part text := 'event_p' || to_char(day, 'YYYYMMDD');
  lo text := to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00';
  hi text := to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
BEGIN
  PERFORM pg_advisory_xact_lock(7245015);
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE event INCLUDING DEFAULTS)', part);
  -- The attach then skips its scan of the new table: the check proves the range.
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                 part, part || '_range', lo, hi);
  EXECUTE format('ALTER TABLE event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  RETURN true;
END $$;

SELECT event_ensure_day(d)
  FROM (SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS d FROM event_unpartitioned
        UNION
        SELECT (now() AT TIME ZONE 'UTC')::date + k FROM generate_series(-1, 3) AS k) AS days
 ORDER BY d;

INSERT INTO event (id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset)
SELECT id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset
  FROM event_unpartitioned;
INSERT INTO event_id (id, occurred_at) SELECT id, occurred_at FROM event_unpartitioned;
DROP TABLE event_unpartitioned;

ALTER TABLE event ADD PRIMARY KEY (id, occurred_at);
CREATE INDEX event_user_time_id ON event (user_id, occurred_at, id COLLATE "C");
CREATE INDEX event_user_type_time_id ON event (user_id, type, occurred_at, id COLLATE "C");
CREATE INDEX event_target_time_id ON event (target, occurred_at, id COLLATE "C");
CREATE INDEX event_target_type_time_id ON event (target, type, occurred_at, id COLLATE "C");
