-- The event log API (docs/events-api.md) pages one user's or one target's events, optionally of
-- one type, in (occurred_at, id) order, by keyset: `WHERE key = $1 AND (occurred_at, id) < ($2,
-- $3) ORDER BY occurred_at DESC, id DESC LIMIT n` is a descent and n adjacent index entries on
-- one of these four, whatever the table's size. `id` is compared byte-wise (COLLATE "C"), so the
-- order is the same on every server and every locale, and the indexes match the queries' order.
--
-- event_target_time (target, occurred_at) is a prefix of event_target_time_id and had no reader
-- of its own: dropped, so an insert writes five index entries (the key and these four) instead
-- of two. Building them blocks writes to event for as long as the builds take; on a large table,
-- build them CONCURRENTLY beforehand (the IF NOT EXISTS below then finds them).
CREATE INDEX IF NOT EXISTS event_user_time_id ON event (user_id, occurred_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS event_user_type_time_id ON event (user_id, type, occurred_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS event_target_time_id ON event (target, occurred_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS event_target_type_time_id ON event (target, type, occurred_at, id COLLATE "C");
DROP INDEX IF EXISTS event_target_time;
