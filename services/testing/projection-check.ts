/**
 * The projector's check for a chaos run: given the ledger of acknowledged events (and those sent
 * but not acknowledged, which may or may not be stored) and a PostgreSQL connection to the run's
 * schema, computes each entity's expected final state — the fold of its acknowledged events in
 * (event time, event id) order, domain/projections.ts `foldEvent`, refusals left out — and compares
 * it with the `entity` table; and checks that the live counts (`entity_count`) are exactly those
 * of the entities as stored. Entities an unacknowledged event names are checked for their
 * existence only (their state depends on whether it was stored).
 */
import {
  countKeys,
  type EntityState,
  entityIdOf,
  type FoldEvent,
  foldEvent,
  newer,
  type ProjectionSpec,
} from '../domain/projections.ts';

/** A ledger's event, as sent. */
export interface LedgerEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  value?: number;
  /** Event time (occurred_at as sent), epoch ms. */
  occurredAtMs: number;
  attributes?: Readonly<Record<string, string>>;
}

/** What the check needs of a connection: `pg.Pool` / `pg.Client` (search_path on the run's schema). */
export interface PgQueryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface ProjectionCheck {
  kind: string;
  /** Entities compared state for state. */
  checked: number;
  /** Entities an unacknowledged event names: only their existence checked. */
  uncertain: number;
  /** Each difference, in words (empty: the table is right). */
  mismatches: string[];
}

const toFold = (e: LedgerEvent, partition?: number, position?: number): FoldEvent => ({
  ...(partition === undefined || position === undefined ? {} : { partition, position }),
  id: e.id,
  type: e.type,
  target: e.target,
  userId: e.userId,
  value: e.value,
  timeMs: e.occurredAtMs,
  attributes: e.attributes ?? {},
});

/**
 * The expected entity of each id `events` name under `projection`: their fold in stamp order.
 * The ledger's order stands for the offsets: events of one partition key (the user, else the
 * target) are in the log in the order they were sent, as the ledger lists them.
 */
export function expectedEntities(
  projection: ProjectionSpec,
  events: readonly LedgerEvent[],
): Map<string, EntityState> {
  const byEntity = new Map<string, FoldEvent[]>();
  const projected = new Set(projection.events.map((e) => e.type));
  const keys = new Map<string, number>();
  events.forEach((e, index) => {
    if (!projected.has(e.type)) return;
    const key = e.userId !== '' ? e.userId : e.target;
    if (!keys.has(key)) keys.set(key, keys.size);
    const fold = toFold(e, keys.get(key), index);
    const id = entityIdOf(projection, fold);
    if (id === undefined) return;
    const list = byEntity.get(id) ?? [];
    list.push(fold);
    byEntity.set(id, list);
  });
  const stampOf = (e: FoldEvent) => ({
    timeMs: e.timeMs,
    eventId: e.id,
    partition: e.partition,
    position: e.position,
  });
  const expected = new Map<string, EntityState>();
  for (const [id, list] of byEntity) {
    // One copy of each id (the ledger may hold a retried send twice: the first), oldest first.
    const unique = [...new Map([...list].reverse().map((e) => [e.id, e])).values()].sort((a, b) =>
      newer(stampOf(a), stampOf(b)) ? 1 : newer(stampOf(b), stampOf(a)) ? -1 : 0,
    );
    let entity: EntityState | undefined;
    for (const e of unique) {
      const r = foldEvent(projection, entity, e);
      if (r.kind === 'applied') entity = r.entity;
    }
    if (entity) expected.set(id, entity);
  }
  return expected;
}

interface EntityRow {
  id: string;
  state: string;
  attributes: Record<string, string> | string;
  last_event_id: string;
}

interface CountRow {
  attribute: string;
  value: string;
  state: string;
  count: string;
}

const json = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** Compares the `entity` and `entity_count` tables of `projection.kind` with the ledger. */
export async function checkProjection(options: {
  projection: ProjectionSpec;
  acknowledged: readonly LedgerEvent[];
  /** Sent without an acknowledgement: maybe stored, maybe not. */
  unacknowledged?: readonly LedgerEvent[];
  pg: PgQueryable;
}): Promise<ProjectionCheck> {
  const { projection, pg } = options;
  const kind = projection.kind;
  const expected = expectedEntities(projection, options.acknowledged);
  const uncertainIds = new Set(expectedEntities(projection, options.unacknowledged ?? []).keys());
  for (const e of options.unacknowledged ?? []) {
    const id = entityIdOf(projection, toFold(e));
    if (id !== undefined && projection.events.some((p) => p.type === e.type)) uncertainIds.add(id);
  }
  const rows = (
    await pg.query(
      'SELECT id, state, attributes, last_event_id FROM entity WHERE kind = $1 ORDER BY id COLLATE "C"',
      [kind],
    )
  ).rows as EntityRow[];
  const stored = new Map(rows.map((r) => [r.id, { ...r, attributes: json(r.attributes) }]));
  const mismatches: string[] = [];
  let checked = 0;
  for (const [id, want] of expected) {
    const got = stored.get(id);
    if (!got) {
      mismatches.push(`${kind} ${id}: missing (expected ${want.state})`);
      continue;
    }
    if (uncertainIds.has(id)) continue;
    checked++;
    if (got.state !== want.state)
      mismatches.push(`${kind} ${id}: state ${got.state}, expected ${want.state}`);
    if (got.last_event_id !== want.last.eventId)
      mismatches.push(`${kind} ${id}: last event ${got.last_event_id}, expected ${want.last.eventId}`);
    const keys = new Set([...Object.keys(want.attributes), ...Object.keys(got.attributes)]);
    for (const k of [...keys].sort())
      if (got.attributes[k] !== want.attributes[k])
        mismatches.push(
          `${kind} ${id}: attribute ${k} ${JSON.stringify(got.attributes[k])}, expected ${JSON.stringify(want.attributes[k])}`,
        );
  }
  for (const id of stored.keys())
    if (!expected.has(id) && !uncertainIds.has(id))
      mismatches.push(`${kind} ${id}: stored, but no acknowledged event names it`);

  // The live counts are exactly those of the entities as stored.
  const want = new Map<string, number>();
  for (const row of stored.values())
    for (const key of countKeys(projection, row)) {
      const k = `${key.attribute}=${key.value}/${key.state}`;
      want.set(k, (want.get(k) ?? 0) + 1);
    }
  const counts = (
    await pg.query('SELECT attribute, value, state, count::text AS count FROM entity_count WHERE kind = $1', [
      kind,
    ])
  ).rows as CountRow[];
  const got = new Map<string, number>();
  for (const c of counts)
    if (Number(c.count) !== 0) got.set(`${c.attribute}=${c.value}/${c.state}`, Number(c.count));
  for (const k of [...new Set([...want.keys(), ...got.keys()])].sort())
    if ((got.get(k) ?? 0) !== (want.get(k) ?? 0))
      mismatches.push(`${kind} count ${k}: ${got.get(k) ?? 0}, the entities hold ${want.get(k) ?? 0}`);

  return { kind, checked, uncertain: uncertainIds.size, mismatches };
}
