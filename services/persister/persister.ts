/**
 * The persister role (group `group_persistence`): every raw event into the PostgreSQL `event`
 * table (partitioned by day; it makes the days and runs their retention), and the one place that
 * decides what a duplicate is.
 *
 * An event id is stored once, across days: a batch's ids go into `event_id` with `ON CONFLICT (id)
 * DO NOTHING`, and the rows of the ids inserted into `event`, in one statement; an event whose id
 * was already stored is then one of three things, told apart by the stored row:
 * - **its own earlier insert** (the same partition and offset): this batch was redelivered after
 *   the persister stored it but before it committed, so it is forwarded again;
 * - **a retry** (another position, the same content: type, target, user, value, attributes):
 *   the same event sent again; not forwarded;
 * - **a conflict** (another position, other content): the id reused for another event; not
 *   forwarded, and logged with the fields that differ (names only, never values).
 * Retries and conflicts are counted in `tally_duplicate_events_total{kind}`.
 *
 * The events it stored for the first time, and its own repeated ones, go on to the accepted
 * topic, to the same partition number, in offset order, with their offset in the events topic in
 * the `tally-event-offset` header. The counter and the aggregator read that topic and keep a
 * per-partition high-water mark of that offset beside their writes, so a repeated forward is
 * skipped there and no sink keeps anything per event (docs/guarantees.md). The batch is committed
 * only once the forward is acknowledged.
 */

import { signalAppends } from '../infra/events/event-appends.ts';
import {
  dayOf,
  dayText,
  ensureEventDaysOnce,
  forgetEventDays,
  isMissingPartition,
  maintainEventPartitions,
} from '../infra/events/event-partitions.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import { type EventLog, type LogRecord, MAX_WRITE_BYTES, recordSlices } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { duplicateMetrics, eventPartitionMetrics } from '../infra/metrics.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { eventTimeMs, timestampToMs } from '../pipeline/event-codec.ts';
import { EVENT_OFFSET_HEADER, type EventBatch, type LoggedEvent } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export interface PersisterConfig extends SinkRoleConfig {
  /** Where accepted events go, partition for partition; needs at least the events topic's partitions. */
  acceptedTopic: string;
  /** Days of events kept before today's (TALLY_EVENT_RETENTION_DAYS); 0 keeps them all. */
  eventRetentionDays: number;
  /** How often the event table's partitions are maintained, ms (default an hour; a run at start too). */
  partitionMaintenanceMs?: number;
}

/** What the persister needs of the SQL port: statements, the signal of stored events, transactions. */
export type PersisterSql = Pick<SqlDatabase, 'query' | 'notify' | 'transaction'>;

export interface PersisterDeps extends SinkRoleDeps {
  sql: PersisterSql;
}

/**
 * The batch's events, each inserted into `event` only when its id was inserted into `event_id`
 * in the same statement: `event` is partitioned by day and unique only by (id, occurred_at), and
 * `event_id` (unique by id) keeps an id stored once across days, whatever event time a resent
 * event carries (migration 0015). A concurrent insert of the same id waits for the other's commit
 * on `event_id`'s key, then does nothing. `ON CONFLICT` on `event` covers an event whose id row
 * retention deleted while its day's partition stayed (the id row is made again).
 */
const INSERT_EVENTS = `
WITH e AS (
  SELECT id, type, target, user_id, ip, value, to_timestamp(occurred_ms / 1000.0) AS occurred_at,
         to_timestamp(received_ms / 1000.0) AS received_at, attributes::jsonb AS attributes, log_partition, log_offset
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], $8::float8[],
                $9::text[], $10::int[], $11::int8[])
         AS e(id, type, target, user_id, ip, value, occurred_ms, received_ms, attributes, log_partition, log_offset)
), fresh AS (
  INSERT INTO event_id (id, occurred_at) SELECT id, occurred_at FROM e ON CONFLICT (id) DO NOTHING RETURNING id
)
INSERT INTO event (id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset)
SELECT e.id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset
  FROM e JOIN fresh ON fresh.id = e.id
ON CONFLICT (id, occurred_at) DO NOTHING
RETURNING id`;

/**
 * For events whose id was stored before: where the stored one came from, and which fields differ.
 * The id's row names the stored event's time, so each lookup reads one day's key.
 */
const COMPARE_STORED = `
SELECT s.at, e.log_partition AS partition, e.log_offset::text AS "offset",
       e.type = s.type AS same_type, e.target = s.target AS same_target, e.user_id = s.user_id AS same_user,
       e.value IS NOT DISTINCT FROM s.value AS same_value, e.attributes = s.attributes::jsonb AS same_attributes
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::int[])
       AS s(id, type, target, user_id, value, attributes, at)
  JOIN event_id i ON i.id = s.id
  JOIN event e ON e.id = i.id AND e.occurred_at = i.occurred_at`;

interface StoredComparison {
  /** Which of the compared events (its index in the query's arrays). */
  at: number;
  partition: number;
  offset: string;
  same_type: boolean;
  same_target: boolean;
  same_user: boolean;
  same_value: boolean;
  same_attributes: boolean;
}

/** An event not accepted: its id was stored before, from another position. */
export interface Duplicate {
  id: string;
  kind: 'retry' | 'conflict';
  /** Its own position. */
  partition: number;
  offset: bigint;
  /** Where the stored event came from (within the same batch, or a row from before). */
  storedAt: { partition: number; offset: bigint };
  /** For a conflict, the fields that differ (names only). */
  differs: string[];
}

/** What a write came to: the events to forward, each partition's in offset order, and the duplicates. */
export interface PersistOutcome {
  accepted: LoggedEvent[];
  duplicates: Duplicate[];
}

/** The fields that make two events with one id the same event; their names for a conflict's log. */
const CONTENT_FIELDS = ['type', 'target', 'user_id', 'value', 'attributes'] as const;

/** The column of COMPARE_STORED that says whether a field is the same. */
const SAME_COLUMN = {
  type: 'same_type',
  target: 'same_target',
  user_id: 'same_user',
  value: 'same_value',
  attributes: 'same_attributes',
} as const satisfies Record<(typeof CONTENT_FIELDS)[number], keyof StoredComparison>;

function sameAttributes(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** The fields of `b` that differ from `a`'s (both events of one batch). */
function differingFields(a: LoggedEvent['event'], b: LoggedEvent['event']): string[] {
  const same = {
    type: a.type === b.type,
    target: a.target === b.target,
    user_id: a.userId === b.userId,
    value: (a.value ?? null) === (b.value ?? null),
    attributes: sameAttributes(a.attributes, b.attributes),
  };
  return CONTENT_FIELDS.filter((f) => !same[f]);
}

/**
 * Stores the events of batches (of any partitions, each in offset order) in one statement and
 * decides, for each, whether it is accepted (stored now, or stored by an earlier delivery of this
 * very record) or a duplicate. Resolves once PostgreSQL committed and the subjects of the events
 * stored now were signalled (infra/events/event-appends.ts: the event log's long-polls wake on it).
 */
export async function persistBatches(
  sql: Pick<SqlDatabase, 'query' | 'notify'>,
  batches: readonly EventBatch[],
): Promise<PersistOutcome> {
  const duplicates: Duplicate[] = [];
  // Every sight of each id in the write, in the order read (each partition's in offset order).
  const sights = new Map<string, LoggedEvent[]>();
  for (const batch of batches)
    for (const e of batch.events) {
      const list = sights.get(e.event.id);
      if (list) list.push(e);
      else sights.set(e.event.id, [e]);
    }
  if (sights.size === 0) return { accepted: [], duplicates };
  // The first sight of each id is its candidate for the insert.
  const candidates = [...sights.values()].map((list) => list[0]!);
  const cols = {
    id: [] as string[],
    type: [] as string[],
    target: [] as string[],
    userId: [] as string[],
    ip: [] as string[],
    value: [] as (number | null)[],
    occurred: [] as number[],
    received: [] as number[],
    attributes: [] as string[],
    partition: [] as number[],
    offset: [] as string[],
  };
  for (const { event, partition, offset } of candidates) {
    cols.id.push(event.id);
    cols.type.push(event.type);
    cols.target.push(event.target);
    cols.userId.push(event.userId);
    cols.ip.push(event.ip);
    cols.value.push(event.value ?? null);
    cols.occurred.push(eventTimeMs(event));
    cols.received.push(timestampToMs(event.receivedAt!));
    cols.attributes.push(JSON.stringify(event.attributes));
    cols.partition.push(partition);
    cols.offset.push(offset.toString());
  }
  const params = [
    cols.id,
    cols.type,
    cols.target,
    cols.userId,
    cols.ip,
    cols.value,
    cols.occurred,
    cols.received,
    cols.attributes,
    cols.partition,
    cols.offset,
  ];
  const days = cols.occurred.map(dayOf);
  await ensureEventDaysOnce(sql, days);
  let inserted: { id: string }[];
  try {
    inserted = await sql.query<{ id: string }>(INSERT_EVENTS, params);
  } catch (error) {
    // A day known here was dropped since (retention, by this or another process): made again.
    if (!isMissingPartition(error)) throw error;
    forgetEventDays(sql);
    await ensureEventDaysOnce(sql, days);
    inserted = await sql.query<{ id: string }>(INSERT_EVENTS, params);
  }
  /** Per id, the sight that is the stored event: inserted now, or stored by an earlier delivery. */
  const kept = new Map<string, LoggedEvent>();
  for (const { id } of inserted) kept.set(id, sights.get(id)![0]!);
  await signalAppends(
    sql,
    [...kept.values()].map((e) => e.event),
  );

  if (kept.size < sights.size) {
    // Ids stored before: each sight against the stored row. The sight at the stored row's
    // position is this very record stored by an earlier delivery, whichever sight came first in
    // this write (a redelivery may gather partitions in another order): it is accepted again.
    const compared = [...sights].filter(([id]) => !kept.has(id)).flatMap(([, list]) => list);
    const rows = await sql.query<StoredComparison>(COMPARE_STORED, [
      compared.map((c) => c.event.id),
      compared.map((c) => c.event.type),
      compared.map((c) => c.event.target),
      compared.map((c) => c.event.userId),
      compared.map((c) => c.event.value ?? null),
      compared.map((c) => JSON.stringify(c.event.attributes)),
      compared.map((_, i) => i),
    ]);
    const rowAt = new Map(rows.map((r) => [r.at, r]));
    compared.forEach((c, i) => {
      const row = rowAt.get(i);
      if (row && row.partition === c.partition && BigInt(row.offset) === c.offset) kept.set(c.event.id, c);
    });
    // Ids with no sight at the stored position: every sight is a duplicate of the stored event (a
    // row gone since the insert, removed by retention, leaves its sights alone).
    compared.forEach((c, i) => {
      if (kept.has(c.event.id)) return;
      const row = rowAt.get(i);
      const differs = row ? CONTENT_FIELDS.filter((f) => !row[SAME_COLUMN[f]]) : [];
      duplicates.push({
        id: c.event.id,
        kind: differs.length === 0 ? 'retry' : 'conflict',
        partition: c.partition,
        offset: c.offset,
        storedAt: row
          ? { partition: row.partition, offset: BigInt(row.offset) }
          : { partition: -1, offset: -1n },
        differs,
      });
    });
  }
  // The other sights of an id kept in this write are duplicates of the kept one.
  for (const [id, keeper] of kept)
    for (const e of sights.get(id)!) {
      if (e === keeper) continue;
      const differs = differingFields(keeper.event, e.event);
      duplicates.push({
        id,
        kind: differs.length === 0 ? 'retry' : 'conflict',
        partition: e.partition,
        offset: e.offset,
        storedAt: { partition: keeper.partition, offset: keeper.offset },
        differs,
      });
    }
  // As read: each partition's in offset order.
  const accepted = batches.flatMap((b) => b.events.filter((e) => kept.get(e.event.id) === e));
  // Duplicates by position too (for the log).
  duplicates.sort(
    (a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
  );
  return { accepted, duplicates };
}

/**
 * Bytes of records per write to the accepted topic (the log's MAX_WRITE_BYTES). A batch read from
 * a backlog is up to the consumer's fetch size of one partition (1 MiB), and its forward carries a
 * header more per record: written at once, it would be refused every time, and the batch
 * redelivered for ever.
 */
export const FORWARD_MAX_BYTES = MAX_WRITE_BYTES;

/**
 * `records` in consecutive slices of at most `maxBytes` of keys, values and headers each (a record
 * larger than that alone in its slice), in their order.
 */
export function forwardSlices(records: readonly LogRecord[], maxBytes = FORWARD_MAX_BYTES): LogRecord[][] {
  return recordSlices(records, maxBytes);
}

/** The accepted events as records of the accepted topic: same partition, key, value and headers. */
export function acceptedRecords(accepted: readonly LoggedEvent[]): LogRecord[] {
  return accepted.map(({ record, partition, offset }) => ({
    key: record.key,
    partition,
    value: record.value,
    headers: { ...record.headers, [EVENT_OFFSET_HEADER]: offset.toString() },
  }));
}

/** The mistake checkAcceptedTopic reports: not asked again. */
class NarrowAcceptedTopic extends Error {}

/**
 * Refuses to start when the accepted topic has fewer partitions than the events topic: events of
 * partition p are forwarded to partition p, so a missing one would stall that partition for good.
 * A log that cannot answer yet (partitions just created and still without a leader, a broker
 * restarting) is asked again for up to `patienceMs`.
 */
export async function checkAcceptedTopic(
  log: EventLog,
  eventsTopic: string,
  acceptedTopic: string,
  logger?: Logger,
  patienceMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + patienceMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await compareTopics(log, eventsTopic, acceptedTopic);
    } catch (error) {
      if (error instanceof NarrowAcceptedTopic || Date.now() >= deadline) throw error;
      if (attempt === 1)
        logger?.warn('cannot compare the partitions of the events and accepted topics yet; asking again', {
          error,
        });
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
    }
  }
}

async function compareTopics(log: EventLog, eventsTopic: string, acceptedTopic: string): Promise<void> {
  const [events, accepted] = await Promise.all([log.endOffsets(eventsTopic), log.endOffsets(acceptedTopic)]);
  if (accepted.size < events.size)
    throw new NarrowAcceptedTopic(
      `the accepted topic ${acceptedTopic} has ${accepted.size} partitions and the events topic ${eventsTopic} ` +
        `has ${events.size}: the persister forwards partition for partition, so give ${acceptedTopic} at least ` +
        `${events.size} partitions (TALLY_ACCEPTED_TOPIC)`,
    );
}

/** At most this many duplicates are named in one batch's log line; the metric counts them all. */
const LOGGED_DUPLICATES = 5;

/** Default interval of the partitions' maintenance: an hour. */
export const PARTITION_MAINTENANCE_MS = 3_600_000;

/**
 * Runs the maintenance of `event`'s day partitions now and then every `intervalMs` (the first
 * run waits for the migrations like every SQL call): partitions made ahead, and with a retention
 * the days past it dropped, by whichever persister holds the lock (event-partitions.ts).
 */
function startPartitionMaintenance(
  deps: Pick<PersisterDeps, 'sql' | 'metrics'> & { logger: Logger },
  retentionDays: number,
  intervalMs: number,
): { stop(): Promise<void> } {
  const { dropped, runs } = eventPartitionMetrics(deps.metrics);
  let running: Promise<void> | undefined;
  let stopped = false;
  const run = async () => {
    try {
      const outcome = await maintainEventPartitions(deps.sql, { nowMs: Date.now(), retentionDays });
      runs.inc({ outcome: outcome.ran ? 'done' : 'skipped' });
      if (outcome.dropped.length > 0) {
        forgetEventDays(deps.sql);
        dropped.inc(outcome.dropped.length);
      }
      if (outcome.dropped.length > 0 || outcome.idsDeleted > 0)
        deps.logger.info('event retention dropped the days past it', {
          retentionDays,
          dropped: outcome.dropped.map(dayText),
          idsDeleted: outcome.idsDeleted,
        });
      if (outcome.pending.length > 0)
        deps.logger.warn(
          'event retention could not lock the event table in time; the next run drops these days',
          {
            pending: outcome.pending.map(dayText),
          },
        );
    } catch (error) {
      runs.inc({ outcome: 'failed' });
      if (!stopped)
        deps.logger.error('event partitions maintenance failed; the next run tries again', { error });
    }
  };
  const tick = () => {
    running ??= run().finally(() => {
      running = undefined;
    });
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

export async function start(deps: PersisterDeps, config: PersisterConfig): Promise<Stoppable> {
  const logger = deps.logger.child({ role: 'persister' });
  const { duplicates: duplicateCounter } = duplicateMetrics(deps.metrics);
  const retries = duplicateCounter.labels({ kind: 'retry' });
  const conflicts = duplicateCounter.labels({ kind: 'conflict' });
  const forward = deps.log.producer();
  await checkAcceptedTopic(deps.log, config.eventsTopic, config.acceptedTopic, logger);
  const maintenance = startPartitionMaintenance(
    { sql: deps.sql, metrics: deps.metrics, logger },
    config.eventRetentionDays,
    config.partitionMaintenanceMs ?? PARTITION_MAINTENANCE_MS,
  );
  const sink = await startSinkRole(deps, config, {
    name: 'persister',
    spanName: 'persister insert',
    apply: async (batches) => {
      const outcome = await persistBatches(deps.sql, batches);
      // One slice after the other, so that each partition's records stay in offset order (a
      // slice carries records of many partitions: one produce request for them all).
      for (const slice of forwardSlices(acceptedRecords(outcome.accepted)))
        await forward.send(config.acceptedTopic, slice);
      if (outcome.duplicates.length === 0) return;
      let conflictCount = 0;
      for (const d of outcome.duplicates) if (d.kind === 'conflict') conflictCount++;
      retries.inc(outcome.duplicates.length - conflictCount);
      if (conflictCount > 0) {
        conflicts.inc(conflictCount);
        logger.warn(
          'event ids reused for different events: the first stored is kept, the others are not applied',
          {
            count: conflictCount,
            conflicts: outcome.duplicates
              .filter((d) => d.kind === 'conflict')
              .slice(0, LOGGED_DUPLICATES)
              .map((d) => ({
                id: d.id,
                offset: d.offset.toString(),
                stored: `${d.storedAt.partition}:${d.storedAt.offset}`,
                differs: d.differs,
              })),
          },
        );
      }
    },
  }).catch(async (error: unknown) => {
    await maintenance.stop();
    throw error;
  });
  return {
    name: sink.name,
    async stop() {
      await sink.stop();
      await maintenance.stop();
    },
  };
}
