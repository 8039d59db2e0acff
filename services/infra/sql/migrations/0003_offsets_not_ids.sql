-- The aggregator no longer remembers event ids: the persister forwards each id once (to the
-- accepted topic), and the aggregator keeps its place per partition in consumer_offset, by each
-- event's offset in the events topic. The rows of consumer_offset already hold those offsets.
DROP TABLE IF EXISTS summary_event_seen;
