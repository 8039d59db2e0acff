-- Live entity state (docs/entities.md): the projections (what to project, validated by
-- domain/projections.ts before it is written, its spec a JSON object in the domain's shape), each
-- entity's current state as the projector folds its events, and the live counts by state and by
-- each of a projection's count_by attributes.
--
-- The projector changes an entity and its counts in one transaction, under the entity row's lock:
-- the counts are exact whatever is redelivered (a redelivered event changes no entity, so no count)
-- and whatever crashes (an uncommitted change moved no count either). Each entity keeps the count
-- keys it is counted under (`counted`), so `entity_count` is always their sum, even across a
-- change of a projection's count_by (which counts the kind's entities again).
CREATE TABLE IF NOT EXISTS projection (
  kind text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
  spec jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  revision bigint NOT NULL CHECK (revision > 0)
);

-- `last_event_*`: the event that set the state (the version guard: an event older than it by
-- event time — at the same millisecond, by offset within one partition, else by event id — sets
-- no state), its partition and offset in the events topic. `attribute_stamps`: per attribute, the
-- [time_ms, event_id, partition, offset] of the event that set it.
CREATE TABLE IF NOT EXISTS entity (
  kind text NOT NULL,
  id text NOT NULL,
  state text NOT NULL,
  attributes jsonb NOT NULL CHECK (jsonb_typeof(attributes) = 'object'),
  attribute_stamps jsonb NOT NULL CHECK (jsonb_typeof(attribute_stamps) = 'object'),
  version bigint NOT NULL CHECK (version > 0),
  last_event_id text NOT NULL,
  last_event_at timestamptz NOT NULL,
  last_event_partition integer,
  last_event_position bigint,
  -- The live count keys it is counted under, [[attribute, value, state], …]: what a change removes.
  counted jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(counted) = 'array'),
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (kind, id)
);
-- GET /v1/entities/{kind}?state=…: keyset pages in id order, within a state or not.
CREATE INDEX IF NOT EXISTS entity_kind_state_id ON entity (kind, state, id COLLATE "C");
CREATE INDEX IF NOT EXISTS entity_kind_id ON entity (kind, id COLLATE "C");

-- attribute '' and value '': the count by state alone. No CHECK (count >= 0): an upsert's proposed
-- row carries the change (-1 for an entity leaving), and PostgreSQL checks it before the conflict.
CREATE TABLE IF NOT EXISTS entity_count (
  kind text NOT NULL,
  attribute text NOT NULL,
  value text NOT NULL,
  state text NOT NULL,
  count bigint NOT NULL,
  PRIMARY KEY (kind, attribute, value, state)
);
