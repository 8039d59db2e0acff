/**
 * The projector role (group `group_projection`): each entity's current state (an order's
 * lifecycle, say), folded from the accepted events by the projections (docs/entities.md).
 *
 * One PostgreSQL transaction per write (the batches of every partition in hand, gathered): lock
 * each entity the events name (a transaction-scoped advisory lock per entity, in one order for
 * every writer, so a new entity is serialised as an existing one), read them, fold the events in
 * (domain/projections.ts `foldEvent`: the version guard makes a redelivered event a no-op and an
 * older one set no state), write the changed entities, and move the live counts by the difference
 * between each entity's state before and after — in the same transaction, so the counts are exact
 * under redelivery and crashes. Refused events (a transition not allowed) go to the dead-letter
 * topic with the reason before the transaction commits: at least once, never silently dropped.
 */
import {
  countDeltas,
  countKeys,
  type EntityState,
  entityIdOf,
  type FoldEvent,
  foldEvent,
  type Projection,
} from '../domain/projections.ts';
import { lockEntities, rawCounted, rawStamps } from '../infra/entities/sql-entity-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { LogRecord } from '../infra/log/event-log.ts';
import { projectorMetrics } from '../infra/metrics.ts';
import type { SqlDatabase, SqlExecutor } from '../infra/sql/sql-database.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import type { EventBatch, LoggedEvent } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export type ProjectorConfig = SinkRoleConfig;

export interface ProjectorDeps extends SinkRoleDeps {
  sql: SqlDatabase;
  /** The projections in force, by the event types they project (projection-source.ts). */
  projections: () => ReadonlyMap<string, readonly Projection[]>;
}

export interface Refusal {
  kind: string;
  event: LoggedEvent;
  reason: string;
}

/** What one write did, per kind. */
export interface ProjectionOutcome {
  applied: Map<string, number>;
  stale: Map<string, number>;
  duplicate: Map<string, number>;
  refused: Refusal[];
}

export function toFoldEvent({ event, partition, position }: LoggedEvent): FoldEvent {
  return {
    partition,
    position: Number(position),
    id: event.id,
    type: event.type,
    target: event.target,
    userId: event.userId,
    value: event.value,
    timeMs: eventTimeMs(event),
    attributes: event.attributes,
  };
}

const bump = (m: Map<string, number>, kind: string) => m.set(kind, (m.get(kind) ?? 0) + 1);

/**
 * Folds batches (of any partitions, each in offset order) into the entities and their counts in
 * one transaction; `beforeCommit` gets the refusals while the transaction is open (the dead
 * letters are sent there, so a failed send redelivers the batch).
 */
export async function projectBatches(
  sql: SqlDatabase,
  projections: ReadonlyMap<string, readonly Projection[]>,
  batches: readonly EventBatch[],
  beforeCommit: (refused: readonly Refusal[]) => Promise<void> = async () => {},
): Promise<ProjectionOutcome> {
  const outcome: ProjectionOutcome = {
    applied: new Map(),
    stale: new Map(),
    duplicate: new Map(),
    refused: [],
  };
  // The work by projection, each event with the entity it names, in the batches' order.
  const work = new Map<
    string,
    { projection: Projection; items: { event: LoggedEvent; fold: FoldEvent; id: string }[] }
  >();
  for (const batch of batches)
    for (const event of batch.events) {
      const matching = projections.get(event.event.type);
      if (!matching) continue;
      const fold = toFoldEvent(event);
      for (const projection of matching) {
        const id = entityIdOf(projection, fold);
        if (id === undefined) {
          outcome.refused.push({
            kind: projection.kind,
            event,
            reason: `${fold.type} event without ${projection.idAttribute}`,
          });
          continue;
        }
        const entry = work.get(projection.kind) ?? { projection, items: [] };
        entry.items.push({ event, fold, id });
        work.set(projection.kind, entry);
      }
    }
  if (work.size === 0 && outcome.refused.length === 0) return outcome;
  return sql.transaction(async (tx) => {
    await lockKeys(
      tx,
      [...work.values()].flatMap(({ projection, items }) => items.map((i) => `${projection.kind}/${i.id}`)),
    );
    const changed: (EntityState & { counted: string })[] = [];
    const deltas = new Map<
      string,
      { kind: string; state: string; attribute: string; value: string; delta: number }
    >();
    for (const { projection, items } of [...work.values()].sort((a, b) =>
      a.projection.kind < b.projection.kind ? -1 : 1,
    )) {
      const before = await lockEntities(tx, projection.kind, [...new Set(items.map((i) => i.id))]);
      const current = new Map<string, EntityState>(before);
      for (const { event, fold, id } of items) {
        const was = current.get(id);
        const result = foldEvent(projection, was, fold);
        if (result.kind === 'skip') continue;
        if (result.kind === 'refused')
          outcome.refused.push({ kind: projection.kind, event, reason: result.reason });
        else if (result.kind === 'unchanged')
          bump(result.duplicate ? outcome.duplicate : outcome.stale, projection.kind);
        else {
          bump(result.stale ? outcome.stale : outcome.applied, projection.kind);
          current.set(id, result.entity);
        }
      }
      for (const [id, after] of current) {
        const was = before.get(id);
        if (was && was.version === after.version) continue;
        const counted = countKeys(projection, after);
        changed.push({ ...after, counted: rawCounted(counted) });
        for (const { key, delta } of countDeltas(was?.counted ?? [], counted).values()) {
          const k = JSON.stringify([projection.kind, key.attribute, key.value, key.state]);
          const d = deltas.get(k) ?? { kind: projection.kind, ...key, delta: 0 };
          d.delta += delta;
          deltas.set(k, d);
        }
      }
    }
    if (changed.length > 0)
      await tx.query(
        `INSERT INTO entity (kind, id, state, attributes, attribute_stamps, version, last_event_id, last_event_at,
                             last_event_partition, last_event_position, counted, updated_at)
         SELECT kind, id, state, attributes::jsonb, stamps::jsonb, version, last_id, to_timestamp(last_ms / 1000.0),
                last_partition, last_position, counted::jsonb, now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::float8[],
                       $9::int[], $10::int8[], $11::text[])
                AS u(kind, id, state, attributes, stamps, version, last_id, last_ms, last_partition, last_position, counted)
         ON CONFLICT (kind, id) DO UPDATE
            SET state = EXCLUDED.state, attributes = EXCLUDED.attributes,
                attribute_stamps = EXCLUDED.attribute_stamps, version = EXCLUDED.version,
                last_event_id = EXCLUDED.last_event_id, last_event_at = EXCLUDED.last_event_at,
                last_event_partition = EXCLUDED.last_event_partition,
                last_event_position = EXCLUDED.last_event_position, counted = EXCLUDED.counted,
                updated_at = EXCLUDED.updated_at`,
        [
          changed.map((e) => e.kind),
          changed.map((e) => e.id),
          changed.map((e) => e.state),
          changed.map((e) => JSON.stringify(e.attributes)),
          changed.map(rawStamps),
          changed.map((e) => e.version),
          changed.map((e) => e.last.eventId),
          changed.map((e) => e.last.timeMs),
          changed.map((e) => e.last.partition ?? null),
          changed.map((e) => (e.last.position === undefined ? null : String(e.last.position))),
          changed.map((e) => e.counted),
        ],
      );
    // One lock order for every writer: concurrent writes cannot deadlock on count rows.
    const moves = [...deltas.entries()]
      .filter(([, d]) => d.delta !== 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, d]) => d);
    if (moves.length > 0)
      await tx.query(
        `INSERT INTO entity_count (kind, attribute, value, state, count)
         SELECT kind, attribute, value, state, delta
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS u(kind, attribute, value, state, delta)
         ON CONFLICT (kind, attribute, value, state) DO UPDATE SET count = entity_count.count + EXCLUDED.count`,
        [
          moves.map((m) => m.kind),
          moves.map((m) => m.attribute),
          moves.map((m) => m.value),
          moves.map((m) => m.state),
          moves.map((m) => m.delta),
        ],
      );
    if (outcome.refused.length > 0) await beforeCommit(outcome.refused);
    return outcome;
  });
}

/**
 * Transaction-scoped advisory locks on the entities' keys, in one order (of their hashes) for
 * every writer: two writers of one entity serialise, even before its row exists.
 */
async function lockKeys(tx: SqlExecutor, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await tx.query(
    `SELECT count(pg_advisory_xact_lock(h)) FROM (
       SELECT DISTINCT hashtextextended(k, 7245013) AS h FROM unnest($1::text[]) AS k ORDER BY h
     ) AS locks`,
    [[...new Set(keys)]],
  );
}

/** The dead letter of a refused event: the record as read, with the reason and where it came from. */
export function deadLetter(refusal: Refusal, groupId: string, sourceTopic: string): LogRecord {
  const { record, partition } = refusal.event;
  return {
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      'tally-error': refusal.reason,
      'tally-group': groupId,
      'tally-source-topic': sourceTopic,
      'tally-source-partition': String(partition),
      'tally-source-offset': record.offset.toString(),
      'tally-failed-at': new Date().toISOString(),
    },
  };
}

export function start(deps: ProjectorDeps, config: ProjectorConfig): Promise<Stoppable> {
  const metrics = projectorMetrics(deps.metrics);
  const logger = deps.logger.child({ role: 'projector' });
  const dlq = deps.log.producer();
  return startSinkRole(deps, config, {
    name: 'projector',
    spanName: 'projector fold',
    apply: async (batches) => {
      const outcome = await projectBatches(deps.sql, deps.projections(), batches, async (refused) => {
        await dlq.send(
          config.dlqTopic,
          refused.map((r) => deadLetter(r, config.groupId, config.eventsTopic)),
        );
      });
      for (const [kind, n] of outcome.applied) metrics.projected.inc({ kind, outcome: 'applied' }, n);
      for (const [kind, n] of outcome.stale) metrics.projected.inc({ kind, outcome: 'stale' }, n);
      for (const [kind, n] of outcome.duplicate) metrics.projected.inc({ kind, outcome: 'duplicate' }, n);
      for (const r of outcome.refused) metrics.refused.inc({ kind: r.kind });
      if (outcome.refused.length > 0)
        logger.warn('refused events sent to the dead-letter topic', {
          count: outcome.refused.length,
          reason: outcome.refused[0]!.reason,
        });
    },
  });
}
