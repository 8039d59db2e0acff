-- The senders' durable state (docs/delivery.md, "The sender").
--
-- `delivery`: a delivery the sender could not finish while its batch was in hand — parked to be
-- attempted again (a retry, a record waiting behind its user's earlier one, a destination whose
-- breaker is open, an attempt still in flight when the batch's time was up), and what became of
-- it (delivered after parking, or dead-lettered). A delivery that succeeded at its first attempt,
-- in its batch, leaves no row. `seq` orders a destination's deliveries as they were parked: a
-- user's deliveries are attempted in `seq` order (per-user ordering), and listings page on it.
-- `lease_owner`/`lease_until` mark an attempt in flight: another sender takes the delivery only
-- once the lease has expired (its owner crashed). `body` is kept (to redeliver it) until the row
-- is pruned. `retry_from` is how many of `attempts` came before the current retry schedule: a
-- redelivery or a recovery starts the schedule again, and the attempts go on being numbered.
CREATE TABLE IF NOT EXISTS delivery (
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  destination_id text NOT NULL,
  message_id text NOT NULL,
  -- The record's key: the user id, or the event id for an event without a user (no order to keep).
  user_key text NOT NULL,
  event_id text NOT NULL,
  event_type text NOT NULL,
  occurred_at timestamptz NOT NULL,
  topic_partition integer NOT NULL,
  source_partition integer NOT NULL,
  source_offset bigint NOT NULL,
  body bytea,
  state text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  retry_from integer NOT NULL DEFAULT 0 CHECK (retry_from >= 0 AND retry_from <= attempts),
  next_attempt_at timestamptz,
  lease_owner text,
  lease_until timestamptz,
  last_status integer,
  last_error text,
  parked_at timestamptz NOT NULL,
  finished_at timestamptz,
  PRIMARY KEY (destination_id, message_id),
  CHECK (state <> 'pending' OR (next_attempt_at IS NOT NULL AND body IS NOT NULL))
);
-- What is due, across destinations (the workers' poll).
CREATE INDEX IF NOT EXISTS delivery_due ON delivery (next_attempt_at) WHERE state = 'pending';
-- A user's pending deliveries in order: its head is the next to attempt, the others wait.
CREATE INDEX IF NOT EXISTS delivery_user_order ON delivery (destination_id, user_key, seq)
  WHERE state = 'pending';
-- Pruning of finished deliveries past their retention.
CREATE INDEX IF NOT EXISTS delivery_finished ON delivery (finished_at) WHERE state <> 'pending';
-- A destination's deliveries newest first, by state (listings).
CREATE INDEX IF NOT EXISTS delivery_listing ON delivery (destination_id, state, seq);
-- A delivery by its message id (the admin API's delivery id: a message id names its destination).
CREATE INDEX IF NOT EXISTS delivery_message ON delivery (message_id);
-- Dead letters of a destination by when (recovery from a time).
CREATE INDEX IF NOT EXISTS delivery_dead ON delivery (destination_id, finished_at) WHERE state = 'dead';

-- Every attempt of a parked delivery: when, the outcome, the HTTP status (when a response came),
-- the latency and the error text (never a secret: webhook-client.ts). At most the schedule's
-- attempts (20) and the half-open probes per delivery; deleted with their delivery.
CREATE TABLE IF NOT EXISTS delivery_attempt (
  destination_id text NOT NULL,
  message_id text NOT NULL,
  attempt integer NOT NULL CHECK (attempt >= 1),
  attempted_at timestamptz NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'gone')),
  status integer,
  latency_ms integer NOT NULL,
  error text,
  PRIMARY KEY (destination_id, message_id, attempt),
  FOREIGN KEY (destination_id, message_id) REFERENCES delivery (destination_id, message_id) ON DELETE CASCADE
);

-- Router duplicates: per destination, destination-topic partition and source partition, the
-- highest source offset whose record the senders handled (delivered, dead-lettered or parked). The
-- router writes one source partition's records into a destination partition in source order, so
-- a record at or below the mark was written twice (a router's redelivered batch): skipped.
CREATE TABLE IF NOT EXISTS delivery_position (
  destination_id text NOT NULL,
  topic_partition integer NOT NULL,
  source_partition integer NOT NULL,
  source_offset bigint NOT NULL,
  PRIMARY KEY (destination_id, topic_partition, source_partition)
);
