/**
 * Phase `bookkeeping`: what the sinks keep besides the events themselves, per event. Events of
 * the load tests' mix (Zipf-popular targets, ids as ingest makes them) go through the persister,
 * the counter and the aggregator, in consumer groups and a Redis prefix of the phase's own; after
 * each of two event counts, once every group caught up, it reads Redis's `used_memory`, the
 * counter's keys by kind with their MEMORY USAGE, and every table of the schema with its rows and
 * size. Then, on the same servers and the same events, what the design before kept: a Redis
 * marker and a `summary_event_seen` row per event.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { uuidv7 } from '../../services/infra/ids.ts';
import { CONSUMER_ROLES } from '../lib/deployment.ts';
import { FAMILIES, mixEvents, toRecord } from '../lib/event-mix.ts';
import { type Bench, fmt } from '../lib/harness.ts';
import { targetTag } from '../lib/probes.ts';
import {
  type BookkeepingResult,
  type BookkeepingSnapshot,
  type PgTableFootprint,
  REDIS_KEY_KINDS,
  type RedisFootprint,
  type RedisKeyKind,
} from '../lib/results.ts';

/** The dedup window the design before ran with by default: its markers and rows lived this long. */
export const BEFORE_WINDOW_MS = 24 * 3_600_000;

/** Events generated and sent at a time: the harness holds no more than this many at once. */
const CHUNK = 10_000;
/** Records per write to the events topic (ingest writes at most 5,000). */
const WRITE = 5_000;

export async function runBookkeeping(b: Bench): Promise<void> {
  const { plan, results, deployment, ns, progress } = b;
  const p = plan.bookkeeping;
  // A prefix of the phase's own (`bench-<id>-bk`, deleted with the namespace's), so that every
  // key under it is one the counter wrote for these events.
  const redisPrefix = `${ns.redisPrefix}-bk`;
  // Without the sliding-window aggregates, which keep each event for 7 days by design
  // (docs/aggregates.md gives their memory): this phase measures what the counting keeps besides.
  const env = { TALLY_REDIS_PREFIX: redisPrefix, TALLY_AGGREGATE_TYPES: 'none' };
  // The sinks phase left the consumers stopped; run alone, nothing else is consuming either.
  await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
  deployment.groupPrefix = `${ns.groupPrefix}bookkeeping-`;
  const first: { target: string; id: string }[] = [];
  try {
    // Groups of the phase's own, at the end of the topics they read: they see only its events.
    for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
    await Promise.all(CONSUMER_ROLES.map((role) => deployment.start(role, env)));
    const start = await snapshot(b, redisPrefix, 0);
    const result: BookkeepingResult = {
      partitions: ns.partitions,
      targets: FAMILIES.length * p.targetsPerFamily,
      start,
      snapshots: [],
    };
    results.bookkeeping = result;
    let sent = 0;
    for (const count of p.events) {
      const startedMs = Date.now();
      for (let done = sent; done < count; done += CHUNK) {
        const events = mixEvents(Math.min(CHUNK, count - done), () => uuidv7(), p.targetsPerFamily);
        if (sent === 0) for (const e of events) first.push({ target: e.target, id: e.id });
        const records = events.map(toRecord);
        for (let i = 0; i < records.length; i += WRITE)
          await deployment.log.producer().send(ns.eventsTopic, records.slice(i, i + WRITE));
      }
      sent = count;
      const drained = await deployment.drained(p.drainTimeoutSeconds);
      if (drained === undefined)
        throw new Error(
          `the sinks had not taken in ${fmt(count)} events ${p.drainTimeoutSeconds} s after the last was sent`,
        );
      const s = await snapshot(b, redisPrefix, count);
      result.snapshots.push(s);
      // Every event is new (ids never sent before), so each must be counted exactly once.
      if (s.redis.counted !== count)
        throw new Error(`${fmt(count)} events sent, the counter's hashes count ${fmt(s.redis.counted)}`);
      const grown = s.redis.usedMemory - start.redis.usedMemory;
      progress(
        `${fmt(count)} events through the sinks in ${fmt((Date.now() - startedMs) / 1000, 1)} s: Redis used_memory +${fmt(grown / 2 ** 20, 2)} MiB ` +
          `(${fmt(grown / count, 1)} bytes/event); the counter's keys: ${REDIS_KEY_KINDS.map((k) => `${k} ${fmt(s.redis.keys[k])} (${fmt(s.redis.bytes[k] / 1024)} KiB)`).join(', ')}; ` +
          `${fmt(s.redis.markFields)} marks; consumer_offset rows of the group: ${s.offsetRows}`,
      );
    }
  } finally {
    await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
    deployment.groupPrefix = ns.groupPrefix;
  }
  const result = results.bookkeeping!;
  result.markers = await markersBefore(deployment.redis, `${ns.redisPrefix}-mk`, first);
  progress(
    `before, a marker per event: ${fmt(first.length)} markers, Redis used_memory +${fmt(result.markers.usedMemory / 2 ** 20, 2)} MiB ` +
      `(${fmt(result.markers.usedMemory / first.length, 1)} bytes/event; MEMORY USAGE ${fmt(result.markers.bytes / first.length, 1)})`,
  );
  result.seenRows = await seenRowsBefore(
    deployment.pg,
    first.map((e) => e.id),
  );
  progress(
    `before, a summary_event_seen row per event: ${fmt(result.seenRows.bytes / 2 ** 20, 2)} MiB for ${fmt(first.length)} ids (${fmt(result.seenRows.bytes / first.length, 1)} bytes/event)`,
  );
}

/** Redis, the schema's tables, and the phase's aggregator group's rows of consumer_offset. */
async function snapshot(
  { deployment, ns }: Bench,
  redisPrefix: string,
  events: number,
): Promise<BookkeepingSnapshot> {
  const redis = await redisFootprint(deployment.redis, redisPrefix);
  const pgTables = await pgFootprint(deployment.pg, ns.pgSchema);
  const { rows } = await deployment.pg.query<{ n: string }>(
    'SELECT count(*)::text AS n FROM consumer_offset WHERE group_id = $1',
    [deployment.groupId('aggregator')],
  );
  return { events, redis, pg: pgTables, offsetRows: Number(rows[0]?.n ?? 0) };
}

/** INFO memory `used_memory`. */
export async function usedMemory(redis: Redis): Promise<number> {
  const m = /^used_memory:(\d+)/m.exec(await redis.info('memory'));
  if (!m) throw new Error('INFO memory has no used_memory');
  return Number(m[1]);
}

/** The kind of a key of the counter store under `prefix` (redis-counter-store.ts). */
function kindOf(prefix: string, key: string): RedisKeyKind | undefined {
  const rest = key.slice(prefix.length);
  // The sliding-window aggregates (infra/aggregates/redis-aggregate-store.ts), their marks too.
  if (rest.startsWith(':ag:')) return 'aggregates';
  if (rest.startsWith(':top:') || rest === ':types') return 'leaderboards';
  if (/^:\{[^}]*\}:u:/.test(rest)) return 'uniques';
  if (rest.endsWith(':n')) return 'counts';
  if (rest.endsWith(':s')) return 'sums';
  if (rest.endsWith(':o')) return 'marks';
  return undefined;
}

/**
 * `used_memory`, then every key under `prefix`: counted and sized by kind, the marks' fields and
 * the events the counts hashes hold counted.
 */
async function redisFootprint(redis: Redis, prefix: string): Promise<RedisFootprint> {
  const used = await usedMemory(redis);
  const zero = () => Object.fromEntries(REDIS_KEY_KINDS.map((k) => [k, 0])) as Record<RedisKeyKind, number>;
  const keys = zero();
  const bytes = zero();
  let markFields = 0;
  let counted = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    const pipeline = redis.pipeline();
    const kinds: RedisKeyKind[] = [];
    for (const key of found) {
      const kind = kindOf(prefix, key);
      if (!kind) throw new Error(`a key of a kind the counter store does not write: ${key}`);
      kinds.push(kind);
      pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
      // The marks' fields; the counts of every type (each event applied adds one).
      if (kind === 'marks') pipeline.hlen(key);
      else if (kind === 'counts') pipeline.hvals(key);
      else pipeline.exists(key);
    }
    const replies = (await pipeline.exec()) ?? [];
    kinds.forEach((kind, i) => {
      const [usageError, usage] = replies[2 * i]!;
      const [error, reply] = replies[2 * i + 1]!;
      if (usageError ?? error) throw usageError ?? error;
      keys[kind]++;
      bytes[kind] += Number(usage);
      if (kind === 'marks') markFields += Number(reply);
      if (kind === 'counts') for (const n of reply as string[]) counted += Number(n);
    });
  } while (cursor !== '0');
  return { usedMemory: used, keys, bytes, markFields, counted };
}

/**
 * Every table of `schema` with its rows and pg_total_relation_size; a partitioned table (`event`,
 * by day) as one, the sum of its partitions.
 */
async function pgFootprint(pool: pg.Pool, schema: string): Promise<PgTableFootprint[]> {
  const { rows: tables } = await pool.query<{ table: string; bytes: string }>(
    `SELECT c.relname AS table,
            coalesce((SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) AS t),
                     pg_total_relation_size(c.oid))::int8::text AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      ORDER BY c.relname`,
    [schema],
  );
  const out: PgTableFootprint[] = [];
  for (const t of tables) {
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM "${schema}"."${t.table.replaceAll('"', '""')}"`,
    );
    out.push({ table: t.table, rows: Number(rows[0]?.n ?? 0), bytes: Number(t.bytes) });
  }
  return out;
}

/**
 * The design before on the same server: the counter set a marker per event for the dedup window
 * (`<prefix>:{<tag>}:e:<id>`, `SET … 1 NX PX`, one slot with the target's hashes). Sets one for
 * each of `events`, reads what Redis grew by, and deletes them.
 */
async function markersBefore(
  redis: Redis,
  prefix: string,
  events: readonly { target: string; id: string }[],
): Promise<NonNullable<BookkeepingResult['markers']>> {
  const keys = events.map((e) => `${prefix}:{${targetTag(e.target)}}:e:${e.id}`);
  const ttl = String(BEFORE_WINDOW_MS);
  const inChunks = async (each: (pipeline: ReturnType<Redis['pipeline']>, key: string) => void) => {
    const replies: unknown[] = [];
    for (let i = 0; i < keys.length; i += CHUNK) {
      const pipeline = redis.pipeline();
      for (const key of keys.slice(i, i + CHUNK)) each(pipeline, key);
      for (const [error, reply] of (await pipeline.exec()) ?? []) {
        if (error) throw error;
        replies.push(reply);
      }
    }
    return replies;
  };
  try {
    const before = await usedMemory(redis);
    await inChunks((pipeline, key) => pipeline.set(key, '1', 'PX', ttl, 'NX'));
    // A keyspace table that grew is rehashed into its new size a millisecond per 100 ms, both
    // sizes allocated meanwhile: read once that is done, not during.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const after = await usedMemory(redis);
    const usage = await inChunks((pipeline, key) => pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    return {
      events: events.length,
      usedMemory: after - before,
      bytes: usage.reduce((n: number, u) => n + Number(u), 0),
      ttlMs: BEFORE_WINDOW_MS,
    };
  } finally {
    await inChunks((pipeline, key) => pipeline.unlink(key));
  }
}

/**
 * The design before in PostgreSQL: the aggregator kept a row per event id for the dedup window
 * (`summary_event_seen`: id primary key, seen_at indexed, as migration 0001 made it). Fills a
 * twin table with `ids`, reads its size, and drops it.
 */
async function seenRowsBefore(
  pool: pg.Pool,
  ids: readonly string[],
): Promise<{ events: number; bytes: number }> {
  await pool.query('DROP TABLE IF EXISTS bench_event_seen');
  await pool.query(
    'CREATE TABLE bench_event_seen (id text PRIMARY KEY, seen_at timestamptz NOT NULL DEFAULT now())',
  );
  try {
    await pool.query('CREATE INDEX bench_event_seen_at ON bench_event_seen (seen_at)');
    // As the aggregator inserted them: a batch's ids at a time.
    for (let i = 0; i < ids.length; i += WRITE)
      await pool.query('INSERT INTO bench_event_seen (id) SELECT unnest($1::text[])', [
        ids.slice(i, i + WRITE),
      ]);
    const { rows } = await pool.query<{ bytes: string }>(
      `SELECT pg_total_relation_size('bench_event_seen')::text AS bytes`,
    );
    return { events: ids.length, bytes: Number(rows[0]?.bytes ?? 0) };
  } finally {
    await pool.query('DROP TABLE IF EXISTS bench_event_seen');
  }
}
