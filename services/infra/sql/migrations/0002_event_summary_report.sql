-- GetReport reads one target's day: up to 24 hours × its types. The key found those rows, but
-- each sat on a heap page of its own (rows are written hour by hour, across all targets), so a
-- report read one page per row. The key now also carries the columns the report returns, so a
-- report is an index-only scan of a few adjacent pages (pages vacuum has not yet marked
-- all-visible are still read from the heap). One index instead of a second one: an upsert of a
-- summary changes count, so it is no longer a HOT update and writes a key entry, but only to
-- this one index. ON CONFLICT (target, hour, type) still infers it: its key columns are unchanged.
-- Building it blocks writes to event_summary for as long as the build takes; on a large table,
-- build event_summary_key_covering CONCURRENTLY beforehand.
CREATE UNIQUE INDEX IF NOT EXISTS event_summary_key_covering
  ON event_summary (target, hour, type) INCLUDE (count, sum_value);
ALTER TABLE event_summary
  DROP CONSTRAINT event_summary_pkey,
  ADD CONSTRAINT event_summary_pkey PRIMARY KEY USING INDEX event_summary_key_covering;
