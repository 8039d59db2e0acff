/**
 * Phase `event-log`: a page of the event log (100 events) on a large `event` table, partitioned
 * by day as migration 0015 makes it. A schema of its own (migrated, dropped after) is loaded by
 * COPY — psql's `\copy … FROM STDIN`, streamed from here — with `plan.eventLog.events` events over
 * `days` UTC days, users and targets by Zipf rank (a few busy subjects, a long tail); the key and
 * the event log's four indexes are dropped for the load and built again after it (sorted builds),
 * then the table is analyzed. Then each shape of page is read `pages` times, one at a time, with
 * the query role's own statement (`scanEvents`): a user's or a target's events, newest first,
 * without a range and within one day; p50 and p99 per shape. `event_id` is not loaded: pages never
 * read it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { EventSubject } from '../../services/domain/event-access.ts';
import { DAY_MS, dayOf, ensureEventDays } from '../../services/infra/events/event-partitions.ts';
import { scanEvents } from '../../services/infra/events/sql-event-history.ts';
import { uuidv7 } from '../../services/infra/ids.ts';
import { migrate } from '../../services/infra/sql/migrate.ts';
import { createPgDatabase } from '../../services/infra/sql/pg-database.ts';
import type { SqlDatabase } from '../../services/infra/sql/sql-database.ts';
import { Prng } from '../../services/simulator/prng.ts';
import { ZipfSampler } from '../../services/simulator/zipf.ts';
import { psqlPath } from '../baselines/pg-copy.ts';
import { type Bench, fmt } from '../lib/harness.ts';
import type { EventLogPageShape } from '../lib/results.ts';

/** The shapes of page measured, in the report's order. */
export const EVENT_LOG_SHAPES = [
  'user, newest first',
  'user, newest first, one day',
  'target, newest first',
  'target, newest first, one day',
] as const;

/** How a page's latency is summarised: nearest-rank quantiles of the pages' times, ms. */
function quantiles(times: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** Writes `line` to `out`, waiting when its buffer is full. */
async function write(out: Writable, line: string): Promise<void> {
  if (!out.write(line)) await once(out, 'drain');
}

export async function runEventLog(b: Bench): Promise<void> {
  const { plan, ns, deployment, progress, results } = b;
  const o = plan.eventLog;
  const schema = `${ns.pgSchema}_eventlog`;
  const sql = createPgDatabase({ url: deployment.servers.pgUrl, readUrls: [], schema, poolSize: 2 });
  try {
    await migrate(sql, schema);
    const started = performance.now();
    const today = dayOf(Date.now());
    const firstDay = today - o.days + 1;
    await ensureEventDays(
      sql,
      Array.from({ length: o.days }, (_, i) => firstDay + i),
    );
    // The key and the indexes are built after the load: a sorted build per day, not 10 M insertions each.
    const indexes = await sql.query<{ name: string; def: string }>(
      `SELECT indexname AS name, indexdef AS def FROM pg_indexes
        WHERE schemaname = $1 AND tablename = 'event' AND indexname <> 'event_pkey'`,
      [schema],
    );
    await sql.query('ALTER TABLE event DROP CONSTRAINT event_pkey');
    for (const i of indexes) await sql.query(`DROP INDEX "${i.name}"`);

    progress(`event-log: loading ${fmt(o.events)} events over ${o.days} days by COPY into schema ${schema}`);
    const psql = spawn(
      psqlPath(),
      [
        deployment.servers.pgUrl,
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        `\\copy "${schema}".event (id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset) FROM STDIN`,
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    psql.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = once(psql, 'exit') as Promise<[number | null]>;
    const prng = new Prng(7);
    const users = new ZipfSampler(o.users, 1);
    const targets = new ZipfSampler(o.targets, 1);
    const types = ['view', 'click', 'like', 'purchase'];
    const spanMs = o.days * DAY_MS;
    const startMs = firstDay * DAY_MS;
    for (let i = 0; i < o.events; i++) {
      // Event times spread evenly over the days, in order (as they arrive).
      const at = startMs + Math.floor((i / o.events) * spanMs);
      const time = new Date(at).toISOString();
      const value = i % 3 === 0 ? '\\N' : String(i % 100);
      await write(
        psql.stdin,
        `${uuidv7(at)}\t${types[i % 4]}\tpost/${targets.sample(prng)}\tu${users.sample(prng)}\t10.0.0.1\t${value}\t${time}\t${time}\t{}\t${i % 12}\t${i}\n`,
      );
    }
    psql.stdin.end();
    const [code] = await exited;
    if (code !== 0) throw new Error(`psql \\copy exited with ${code}: ${stderr.trim()}`);
    const loadSeconds = (performance.now() - started) / 1000;
    progress(`event-log: loaded in ${fmt(loadSeconds, 1)} s; building the key and ${indexes.length} indexes`);
    const built = performance.now();
    await sql.query('ALTER TABLE event ADD PRIMARY KEY (id, occurred_at)');
    // pg_indexes gives a partitioned table's index as `ON ONLY`, which builds no partition's: the
    // definition is run without it, building each day's index and the parent's over them.
    for (const i of indexes) await sql.query(i.def.replace(' ON ONLY ', ' ON '));
    await sql.query('ANALYZE event');
    const indexSeconds = (performance.now() - built) / 1000;
    const [size] = await sql.query<{ bytes: string }>(
      `SELECT sum(pg_total_relation_size(relid))::int8::text AS bytes FROM pg_partition_tree('event')`,
    );

    const shapes: EventLogPageShape[] = [];
    for (const shape of EVENT_LOG_SHAPES) shapes.push(await measure(sql, shape, o, firstDay, prng));
    results.eventLog = {
      events: o.events,
      days: o.days,
      users: o.users,
      targets: o.targets,
      pages: o.pages,
      loadSeconds,
      indexSeconds,
      tableBytes: Number(size?.bytes ?? 0),
      shapes,
    };
    for (const s of shapes)
      progress(
        `event-log: ${s.shape}: p50 ${fmt(s.p50Ms, 2)} ms, p99 ${fmt(s.p99Ms, 2)} ms, ${fmt(s.meanEvents, 1)} events per page`,
      );
  } finally {
    await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await sql.close();
  }
}

/** `pages` pages of one shape, for subjects of every rank (drawn by Zipf like the load). */
async function measure(
  sql: SqlDatabase,
  shape: (typeof EVENT_LOG_SHAPES)[number],
  o: Bench['plan']['eventLog'],
  firstDay: number,
  prng: Prng,
): Promise<EventLogPageShape> {
  const byUser = shape.startsWith('user');
  const ranked = new ZipfSampler(byUser ? o.users : o.targets, 1);
  const times: number[] = [];
  let events = 0;
  for (let i = 0; i < o.pages; i++) {
    const rank = ranked.sample(prng);
    const subject: EventSubject = byUser
      ? { kind: 'user', id: `u${rank}` }
      : { kind: 'target', id: `post/${rank}` };
    const day = firstDay + Math.floor(prng.float() * o.days);
    const range = shape.endsWith('one day')
      ? { fromUs: BigInt(day * DAY_MS) * 1000n, toUs: BigInt((day + 1) * DAY_MS) * 1000n }
      : {};
    const t0 = performance.now();
    const page = await scanEvents(sql, { subject, direction: 'desc', limit: 100, ...range });
    times.push(performance.now() - t0);
    events += page.length;
  }
  const q = quantiles(times);
  return { shape, p50Ms: q.p50, p99Ms: q.p99, maxMs: q.max, meanEvents: events / o.pages };
}
