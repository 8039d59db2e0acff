-- TopTargets for a past date or month ranks every target of a span of hours: without an index
-- led by hour, each such read scanned the whole of event_summary. The index costs each summary
-- upsert one more key entry when it inserts a row (an update of count changes no key column of
-- it, but a summary upsert is not a HOT update since migration 0002, so it writes here too).
-- Building it blocks writes to event_summary for as long as the build takes; on a large table,
-- build event_summary_hour CONCURRENTLY beforehand.
CREATE INDEX IF NOT EXISTS event_summary_hour ON event_summary (hour, type);
