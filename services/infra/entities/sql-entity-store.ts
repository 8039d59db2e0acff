/**
 * The entity store on the SQL port (PostgreSQL or PGlite): the `entity` and `entity_count` tables
 * of migration 0013, which the projector writes in one transaction per batch.
 */
import type { CountKey, EntityState, Stamp } from '../../domain/projections.ts';
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';
import type { EntityStore, LiveCount, StoredEntity } from './entity-store.ts';

export interface RawEntity {
  kind: string;
  id: string;
  state: string;
  attributes: Record<string, string> | string;
  attribute_stamps: Record<string, RawStamp> | string;
  version: string;
  last_event_id: string;
  last_event_ms: string;
  last_event_partition: number | null;
  last_event_position: string | null;
  counted: [string, string, string][] | string;
  updated_at: Date | string;
}

/** A stamp as stored: [time_ms, event_id], and [partition, position] when known. */
type RawStamp = [number, string] | [number, string, number, number];

export const ENTITY_COLUMNS = `kind, id, state, attributes, attribute_stamps, version::text AS version, last_event_id,
  floor(extract(epoch FROM last_event_at) * 1000)::int8::text AS last_event_ms, last_event_partition,
  last_event_position::text AS last_event_position, counted, updated_at`;

const fromRaw = ([timeMs, eventId, partition, position]: readonly (
  | number
  | string
  | undefined
)[]): Stamp => ({
  timeMs: Number(timeMs),
  eventId: String(eventId),
  ...(partition === undefined || position === undefined
    ? {}
    : { partition: Number(partition), position: Number(position) }),
});

const json = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);

export function toEntity(row: RawEntity): StoredEntity {
  const stamps: Record<string, Stamp> = {};
  for (const [name, raw] of Object.entries(json(row.attribute_stamps))) stamps[name] = fromRaw(raw);
  return {
    kind: row.kind,
    id: row.id,
    state: row.state,
    attributes: json(row.attributes),
    attributeStamps: stamps,
    version: Number(row.version),
    last: fromRaw([
      row.last_event_ms,
      row.last_event_id,
      row.last_event_partition ?? undefined,
      row.last_event_position ?? undefined,
    ]),
    updatedAt: new Date(row.updated_at),
    counted: json(row.counted).map(([attribute, value, state]) => ({ attribute, value, state })),
  };
}

/** Count keys as stored: `[[attribute, value, state], …]`. */
export function rawCounted(keys: readonly CountKey[]): string {
  return JSON.stringify(keys.map((k) => [k.attribute, k.value, k.state]));
}

/**
 * Counts `kind`'s entities again under `countBy` (a projection's new count_by): every entity's
 * count keys rewritten, its live counts rebuilt from them. Locks the entity table against the
 * projector's writes until the transaction ends (a write under the old count_by meanwhile then
 * removes exactly the keys stored here).
 */
export async function recount(tx: SqlExecutor, kind: string, countBy: readonly string[]): Promise<void> {
  await tx.query('LOCK TABLE entity IN EXCLUSIVE MODE');
  await tx.query(
    `UPDATE entity SET counted = jsonb_build_array(jsonb_build_array('', '', state)) || COALESCE(
       (SELECT jsonb_agg(jsonb_build_array(a, attributes ->> a, state) ORDER BY o)
          FROM unnest($2::text[]) WITH ORDINALITY AS c(a, o) WHERE attributes ? a), '[]'::jsonb)
      WHERE kind = $1`,
    [kind, [...countBy]],
  );
  await tx.query('DELETE FROM entity_count WHERE kind = $1', [kind]);
  await tx.query(
    `INSERT INTO entity_count (kind, attribute, value, state, count)
     SELECT $1, k ->> 0, k ->> 1, k ->> 2, count(*) FROM entity, jsonb_array_elements(counted) AS k
      WHERE kind = $1 GROUP BY 2, 3, 4`,
    [kind],
  );
}

/** The entity's stamps as stored: `{name: [time_ms, event_id, partition?, position?]}`. */
export function rawStamps(entity: EntityState): string {
  const raw: Record<string, RawStamp> = {};
  for (const [name, s] of Object.entries(entity.attributeStamps))
    raw[name] =
      s.partition === undefined || s.position === undefined
        ? [s.timeMs, s.eventId]
        : [s.timeMs, s.eventId, s.partition, s.position];
  return JSON.stringify(raw);
}

/** The entities of `kind` with `ids`, locked until the transaction ends, in id order (one lock order for every writer). */
export async function lockEntities(
  tx: SqlExecutor,
  kind: string,
  ids: readonly string[],
): Promise<Map<string, StoredEntity>> {
  const sorted = [...ids].sort();
  const rows = await tx.query<RawEntity>(
    `SELECT ${ENTITY_COLUMNS} FROM entity WHERE kind = $1 AND id = ANY($2::text[])
      ORDER BY id COLLATE "C" FOR UPDATE`,
    [kind, sorted],
  );
  return new Map(rows.map((r) => [r.id, toEntity(r)]));
}

export function createSqlEntityStore(options: { sql: SqlDatabase }): EntityStore {
  const { sql } = options;
  return {
    description: `entity store on ${sql.description}`,

    async get(kind, id) {
      const [row] = await sql.query<RawEntity>(
        `SELECT ${ENTITY_COLUMNS} FROM entity WHERE kind = $1 AND id = $2`,
        [kind, id],
      );
      return row && toEntity(row);
    },

    async list(listing) {
      const params: unknown[] = [listing.kind];
      const where = ['kind = $1'];
      if (listing.state !== undefined) {
        params.push(listing.state);
        where.push(`state = $${params.length}`);
      }
      if (Object.keys(listing.attributes).length > 0) {
        params.push(JSON.stringify(listing.attributes));
        where.push(`attributes @> $${params.length}::jsonb`);
      }
      if (listing.afterId !== undefined) {
        params.push(listing.afterId);
        where.push(`id COLLATE "C" > $${params.length}`);
      }
      params.push(listing.limit);
      const rows = await sql.query<RawEntity>(
        `SELECT ${ENTITY_COLUMNS} FROM entity WHERE ${where.join(' AND ')}
          ORDER BY id COLLATE "C" LIMIT $${params.length}`,
        params,
      );
      return rows.map(toEntity);
    },

    async counts(kind, attribute, states) {
      const params: unknown[] = [kind, attribute];
      let filter = '';
      if (states !== undefined) {
        params.push([...states]);
        filter = ' AND state = ANY($3::text[])';
      }
      const rows = await sql.query<{ value: string; state: string; count: string }>(
        `SELECT value, state, count::text AS count FROM entity_count
          WHERE kind = $1 AND attribute = $2 AND count > 0${filter}
          ORDER BY value COLLATE "C", state COLLATE "C"`,
        params,
      );
      return rows.map((r): LiveCount => ({ value: r.value, state: r.state, count: Number(r.count) }));
    },
  };
}
