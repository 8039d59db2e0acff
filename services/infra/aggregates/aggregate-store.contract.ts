/**
 * The aggregate store contract: every adapter passes the same tests. `environment()` gives a
 * fresh, isolated place; `open` may be called again on it to reopen the same state (a restart).
 * With `sql` (a migrated schema on the real PostgreSQL), the property test also writes each run's
 * events as rows of `event` and checks every window against a SQL aggregate over them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  AGGREGATE_HORIZON_MS,
  type Aggregate,
  addEvent,
  averageOf,
  emptyAggregate,
  MAX_AT_FUTURE_MS,
} from '../../domain/window-aggregates.ts';
import { dayOf, ensureEventDays } from '../events/event-partitions.ts';
import type { SqlDatabase } from '../sql/sql-database.ts';
import {
  AGGREGATE_RETENTION_MS,
  type AggregateIncrement,
  type AggregateStore,
  measureOf,
  RANKING_HORIZON_MS,
  type RankBy,
  type RankedTypes,
  type SeriesKind,
  type SeriesName,
} from './aggregate-store.ts';

export interface AggregateStoreEnvironment {
  open(options?: { now?: () => number; rankedTypes?: RankedTypes }): Promise<AggregateStore>;
  cleanup(): Promise<void>;
  /** A migrated schema on the real PostgreSQL: windows are checked against SQL too. */
  sql?: SqlDatabase;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** An event as the counter role sees it. */
interface TestEvent {
  id: string;
  partition: number;
  position: bigint;
  type: string;
  target: string;
  userId: string;
  timeMs: number;
  value: number | undefined;
}

/** The increments of `events`, as the counter role makes them: the target's series, and the user's when it has one. */
function incrementsOf(events: readonly TestEvent[]): AggregateIncrement[] {
  const out: AggregateIncrement[] = [];
  for (const e of events) {
    const common = {
      partition: e.partition,
      position: e.position,
      type: e.type,
      timeMs: e.timeMs,
      value: e.value,
    };
    out.push({ ...common, kind: 'target', subject: e.target });
    if (e.userId !== '') out.push({ ...common, kind: 'user', subject: e.userId });
  }
  return out;
}

/** The aggregate of `events` of `series` in [startMs, endMs), by brute force. */
function bruteForce(
  events: readonly TestEvent[],
  series: SeriesName,
  startMs: number,
  endMs: number,
): Aggregate {
  const total = emptyAggregate();
  for (const e of events)
    if (
      e.type === series.type &&
      (series.kind === 'user' ? e.userId === series.subject : e.target === series.subject) &&
      e.timeMs >= startMs &&
      e.timeMs < endMs
    )
      addEvent(total, e.value);
  return total;
}

/** The same by SQL over the rows of `event` (each id once, by occurred_at). */
const WINDOW_SQL = `SELECT count(*)::int AS count, count(value)::int AS "valueCount",
       coalesce(sum(value), 0) AS sum, min(value) AS min, max(value) AS max, avg(value) AS avg
  FROM event
 WHERE type = $1 AND (CASE WHEN $2 = 'user' THEN user_id ELSE target END) = $3
   AND occurred_at >= 'epoch'::timestamptz + $4::bigint * interval '1 millisecond'
   AND occurred_at < 'epoch'::timestamptz + $5::bigint * interval '1 millisecond'`;

const INSERT_SQL = `INSERT INTO event (id, type, target, user_id, value, occurred_at, received_at, log_partition, log_offset)
SELECT id, type, target, user_id, value, 'epoch'::timestamptz + t * interval '1 millisecond', now(), p, o
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::bigint[], $7::int[], $8::bigint[])
       AS e(id, type, target, user_id, value, t, p, o)
ON CONFLICT DO NOTHING`;

async function insertRows(sql: SqlDatabase, events: readonly TestEvent[]): Promise<void> {
  // `event` is partitioned by day: a writer other than the persister makes its days first.
  await ensureEventDays(
    sql,
    events.map((e) => dayOf(e.timeMs)),
  );
  await sql.query(INSERT_SQL, [
    events.map((e) => e.id),
    events.map((e) => e.type),
    events.map((e) => e.target),
    events.map((e) => e.userId),
    events.map((e) => e.value ?? null),
    events.map((e) => String(e.timeMs)),
    events.map((e) => e.partition),
    events.map((e) => e.position.toString()),
  ]);
}

const plain = (a: Aggregate) => ({ ...a, avg: averageOf(a) });

export function aggregateStoreContract(
  adapter: string,
  environment: () => Promise<AggregateStoreEnvironment>,
): void {
  describe(`aggregate store contract: ${adapter}`, () => {
    const withStore = async (
      t: { after(fn: () => Promise<void>): void },
      options: { now?: () => number; rankedTypes?: RankedTypes } = {},
    ) => {
      const env = await environment();
      const store = await env.open(options);
      t.after(async () => {
        await store.close();
        await env.cleanup();
      });
      return { env, store };
    };
    let positions = 0n;
    const event = (
      run: string,
      timeMs: number,
      value: number | undefined,
      more: Partial<TestEvent> = {},
    ): TestEvent => ({
      id: `${run}-${positions}`,
      partition: 0,
      position: positions++,
      type: 'txn',
      target: `${run}-card`,
      userId: `${run}-alice`,
      timeMs,
      value,
      ...more,
    });

    test('a window holds the events of [start, end), to the millisecond, across minutes and hours', async (t) => {
      const { store } = await withStore(t);
      const run = randomUUID();
      const nowMs = Date.now();
      const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS - 3 * HOUR_MS;
      const events = [
        event(run, hour - 1, 5), // the millisecond before the hour
        event(run, hour, -2), // on the hour
        event(run, hour + 59_999, undefined), // last millisecond of the first minute
        event(run, hour + MINUTE_MS, 0),
        event(run, hour + 90 * MINUTE_MS + 17, 7.25),
        event(run, hour + 2 * HOUR_MS + 30_000, 1),
      ];
      assert.equal(await store.apply(incrementsOf(events)), 12);
      const user: SeriesName = { kind: 'user', subject: `${run}-alice`, type: 'txn' };
      const spans = [
        { startMs: hour, endMs: hour + 1 },
        { startMs: hour - 1, endMs: hour + MINUTE_MS },
        { startMs: hour + 1, endMs: hour + 90 * MINUTE_MS + 17 },
        { startMs: hour + 1, endMs: hour + 90 * MINUTE_MS + 18 },
        { startMs: hour - HOUR_MS, endMs: hour + 3 * HOUR_MS },
        { startMs: hour + 2 * HOUR_MS + 30_001, endMs: hour + 3 * HOUR_MS },
      ];
      const got = await store.read(user, spans);
      assert.deepEqual(
        got,
        spans.map((s) => bruteForce(events, user, s.startMs, s.endMs)),
      );
      assert.deepEqual(got[4], { count: 6, valueCount: 5, sum: 11.25, min: -2, max: 7.25 });
      assert.deepEqual(got[5], emptyAggregate());
      // The target's series holds the same events; another type's and another user's nothing.
      const [card] = await store.read({ kind: 'target', subject: `${run}-card`, type: 'txn' }, [spans[4]!]);
      assert.deepEqual(card, got[4]);
      const others = await Promise.all([
        store.read({ kind: 'user', subject: `${run}-alice`, type: 'view' }, [spans[4]!]),
        store.read({ kind: 'user', subject: `${run}-card`, type: 'txn' }, [spans[4]!]),
        store.read({ kind: 'target', subject: `${run}-alice`, type: 'txn' }, [spans[4]!]),
      ]);
      for (const [other] of others) assert.deepEqual(other, emptyAggregate());
    });

    test('a redelivered batch applies nothing twice; marks are per series and partition', async (t) => {
      const { store } = await withStore(t);
      const run = randomUUID();
      const nowMs = Date.now();
      const batch = [
        event(run, nowMs - 10 * MINUTE_MS, 3, { partition: 1 }),
        event(run, nowMs - 5 * MINUTE_MS, 4, { partition: 2 }),
        event(run, nowMs - 2 * DAY_MS, 5, { partition: 1 }),
      ];
      assert.equal(await store.apply(incrementsOf(batch)), 6);
      assert.equal(await store.apply(incrementsOf(batch)), 0);
      // A redelivery that overlaps new events: only the new ones apply.
      const next = [event(run, nowMs - MINUTE_MS, 10, { partition: 2 })];
      assert.equal(await store.apply(incrementsOf([...batch, ...next])), 2);
      const span = { startMs: nowMs - 3 * DAY_MS, endMs: nowMs };
      const [total] = await store.read({ kind: 'user', subject: `${run}-alice`, type: 'txn' }, [span]);
      assert.deepEqual(total, { count: 4, valueCount: 4, sum: 22, min: 3, max: 10 });
    });

    test('events older than the retention count in no window and still move the mark; a reopened store keeps all', async (t) => {
      let nowMs = Date.now();
      const { env, store } = await withStore(t, { now: () => nowMs });
      const run = randomUUID();
      const old = event(run, nowMs - AGGREGATE_RETENTION_MS - 1, 100);
      const recent = event(run, nowMs - HOUR_MS, 1);
      assert.equal(await store.apply(incrementsOf([old, recent])), 4);
      const user: SeriesName = { kind: 'user', subject: `${run}-alice`, type: 'txn' };
      const everything = { startMs: nowMs - AGGREGATE_RETENTION_MS - HOUR_MS, endMs: nowMs + 1 };
      assert.deepEqual((await store.read(user, [everything]))[0], {
        count: 1,
        valueCount: 1,
        sum: 1,
        min: 1,
        max: 1,
      });
      assert.equal(await store.apply(incrementsOf([old])), 0);
      const reopened = await env.open({ now: () => nowMs });
      t.after(() => reopened.close());
      assert.deepEqual(await reopened.read(user, [everything]), await store.read(user, [everything]));
      assert.equal(await reopened.apply(incrementsOf([old, recent])), 0);
      // A day later an event of the same minute as `recent` still adds to its tile.
      nowMs += DAY_MS;
      const late = event(run, recent.timeMs + 1, -1);
      assert.equal(await reopened.apply(incrementsOf([late])), 2);
      const [day] = await reopened.read(user, [{ startMs: nowMs - 2 * DAY_MS, endMs: nowMs }]);
      assert.deepEqual(day, { count: 2, valueCount: 2, sum: 0, min: -1, max: 1 });
    });

    test('property: every window equals a brute-force aggregate (and SQL over the rows), whatever the stream', async (t) => {
      const { env, store } = await withStore(t);
      const nowMs = Date.now();
      const timeArb = fc.oneof(
        fc.integer({ min: -(AGGREGATE_HORIZON_MS + DAY_MS), max: MAX_AT_FUTURE_MS }),
        fc.integer({ min: -2 * HOUR_MS, max: 0 }),
        fc.integer({ min: -3 * MINUTE_MS, max: 0 }),
      );
      const eventArb = fc.record({
        partition: fc.integer({ min: 0, max: 2 }),
        type: fc.constantFrom('txn', 'view'),
        user: fc.constantFrom('u1', 'u2', ''),
        target: fc.constantFrom('t1', 't2'),
        dt: timeArb,
        // Quarters: sums of them are exact in any order, so SQL's order cannot differ from ours.
        value: fc.option(
          fc.integer({ min: -40_000, max: 40_000 }).map((q) => q / 4),
          { nil: undefined },
        ),
      });
      const windowArb = fc
        .record({
          minutes: fc.oneof(
            fc.constantFrom(1, 5, 59, 60, 61, 90, 360, 1440, 3 * 1440, 7 * 1440),
            fc.integer({ min: 1, max: 7 * 1440 }),
          ),
          back: fc.double({ min: 0, max: 1, noNaN: true }),
          ahead: fc.integer({ min: 0, max: MAX_AT_FUTURE_MS }),
        })
        .map(({ minutes, back, ahead }) => {
          const ms = minutes * MINUTE_MS;
          // `at` from the horizon's earliest allowed end up to the skew ahead of now.
          const earliest = nowMs - AGGREGATE_HORIZON_MS + ms;
          const endMs = Math.round(earliest + back * (nowMs - earliest)) + ahead;
          return { startMs: endMs - ms, endMs };
        });
      await fc.assert(
        fc.asyncProperty(
          fc.array(eventArb, { minLength: 1, maxLength: 60 }),
          fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 8 }),
          fc.array(fc.nat(), { maxLength: 4 }),
          fc.array(windowArb, { minLength: 1, maxLength: 10 }),
          async (generated, batchSizes, redeliveries, spans) => {
            const run = randomUUID().slice(0, 8);
            const next = [0n, 0n, 0n];
            const events: TestEvent[] = generated.map((g, i) => ({
              id: `${run}-${i}`,
              partition: g.partition,
              position: next[g.partition]!++,
              type: g.type,
              target: `${run}-${g.target}`,
              userId: g.user === '' ? '' : `${run}-${g.user}`,
              timeMs: nowMs + g.dt,
              value: g.value,
            }));
            // Batches as the log delivers them, some delivered again after later ones.
            const batches: TestEvent[][] = [];
            for (let i = 0, b = 0; i < events.length; b++) {
              const size = batchSizes[b % batchSizes.length]!;
              batches.push(events.slice(i, i + size));
              i += size;
            }
            let applied = 0;
            for (const [b, batch] of batches.entries()) {
              applied += await store.apply(incrementsOf(batch));
              for (const r of redeliveries) {
                const again = batches[r % (b + 1)]!;
                assert.equal(
                  await store.apply(incrementsOf(again)),
                  0,
                  'a redelivered batch applies nothing',
                );
              }
            }
            assert.equal(applied, incrementsOf(events).length);
            if (env.sql) await insertRows(env.sql, events);
            const series: SeriesName[] = [
              { kind: 'user', subject: `${run}-u1`, type: 'txn' },
              { kind: 'user', subject: `${run}-u2`, type: 'view' },
              { kind: 'target', subject: `${run}-t1`, type: 'txn' },
              { kind: 'target', subject: `${run}-t2`, type: 'view' },
            ];
            for (const s of series) {
              const got = await store.read(s, spans);
              const expected = spans.map((w) => bruteForce(events, s, w.startMs, w.endMs));
              assert.deepEqual(got, expected);
              if (!env.sql) continue;
              for (const [i, w] of spans.entries()) {
                const rows: Record<string, number | string | null>[] = await env.sql.query(WINDOW_SQL, [
                  s.type,
                  s.kind,
                  s.subject,
                  String(w.startMs),
                  String(w.endMs),
                ]);
                const row = rows[0];
                const num = (v: number | string | null | undefined) =>
                  v === null || v === undefined ? undefined : Number(v);
                assert.deepEqual(
                  plain(got[i]!),
                  {
                    count: num(row?.count),
                    valueCount: num(row?.valueCount),
                    sum: num(row?.sum),
                    min: num(row?.min),
                    max: num(row?.max),
                    avg: num(row?.avg),
                  },
                  `SQL window ${i} of ${s.kind} ${s.subject}`,
                );
              }
            }
          },
        ),
        { numRuns: 25, endOnFailure: true },
      );
    });

    test('property: top is the exact ranking of every series of a kind and type over a window, redeliveries and all', async (t) => {
      const { store } = await withStore(t);
      const nowMs = Date.now();
      const eventArb = fc.record({
        partition: fc.integer({ min: 0, max: 2 }),
        user: fc.integer({ min: 0, max: 200 }),
        target: fc.integer({ min: 0, max: 4 }),
        dt: fc.oneof(
          fc.integer({ min: -(RANKING_HORIZON_MS + 2 * HOUR_MS), max: 0 }),
          fc.integer({ min: -7 * HOUR_MS, max: 0 }),
        ),
        // Quarters, some below zero: a sum ranks below the positive values that bound it.
        value: fc.option(
          fc.integer({ min: -400, max: 4_000 }).map((q) => q / 4),
          { nil: undefined },
        ),
      });
      const askArb = fc.record({
        minutes: fc.constantFrom(1, 59, 60, 61, 360, 1440),
        back: fc.integer({ min: 0, max: 3 * HOUR_MS }),
        by: fc.constantFrom<RankBy>('sum', 'count'),
        kind: fc.constantFrom<SeriesKind>('user', 'target'),
        limit: fc.constantFrom(1, 3, 10, 100),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.array(eventArb, { minLength: 1, maxLength: 300 }),
          fc.integer({ min: 1, max: 60 }),
          fc.array(askArb, { minLength: 1, maxLength: 6 }),
          async (generated, batchSize, asks) => {
            const run = randomUUID().slice(0, 8);
            const type = `rank-${run}`;
            const next = [0n, 0n, 0n];
            const events: TestEvent[] = generated.map((g, i) => ({
              id: `${run}-${i}`,
              partition: g.partition,
              position: next[g.partition]!++,
              type,
              target: `t${g.target}`,
              userId: `u${g.user}`,
              timeMs: nowMs + g.dt,
              value: g.value,
            }));
            for (let i = 0; i < events.length; i += batchSize) {
              const batch = events.slice(i, i + batchSize);
              await store.apply(incrementsOf(batch));
              // Redelivered, with the batch before it: ranked once all the same.
              await store.apply(incrementsOf(events.slice(Math.max(0, i - batchSize), i + batchSize)));
            }
            for (const ask of asks) {
              // Every window starts within the last day and an hour, as the contract asks.
              const endMs =
                nowMs - Math.min(ask.back, RANKING_HORIZON_MS + HOUR_MS - ask.minutes * MINUTE_MS);
              const span = { startMs: endMs - ask.minutes * MINUTE_MS, endMs };
              const subjects = new Set(events.map((e) => (ask.kind === 'user' ? e.userId : e.target)));
              const expected = [...subjects]
                .map((subject) => ({
                  subject,
                  aggregate: bruteForce(events, { kind: ask.kind, subject, type }, span.startMs, span.endMs),
                }))
                .filter((r) => r.aggregate.count > 0)
                .sort((a, b) => measureOf(b.aggregate, ask.by) - measureOf(a.aggregate, ask.by))
                .slice(0, ask.limit);
              const got = await store.top(ask.kind, type, span, ask.by, ask.limit);
              const context = JSON.stringify({ ask, got: got.map((r) => r.subject) });
              // The same measures in the same order; ties may be any of the tied series.
              assert.deepEqual(
                got.map((r) => measureOf(r.aggregate, ask.by)),
                expected.map((r) => measureOf(r.aggregate, ask.by)),
                context,
              );
              for (const r of got)
                assert.deepEqual(
                  r.aggregate,
                  bruteForce(events, { kind: ask.kind, subject: r.subject, type }, span.startMs, span.endMs),
                  context,
                );
            }
          },
        ),
        { numRuns: 15, endOnFailure: true },
      );
    });

    test('top reads past a page of candidates; a negative value outside the window hides no series', async (t) => {
      const { store } = await withStore(t);
      const run = randomUUID().slice(0, 8);
      const type = `rank-${run}`;
      // Half past an hour, so the window's first hour began 30 minutes before it.
      const endMs = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - HOUR_MS / 2;
      const span = { startMs: endMs - 2 * HOUR_MS, endMs };
      const inside = span.startMs + MINUTE_MS;
      const events = [
        ...Array.from({ length: 120 }, (_, i) =>
          event(run, inside + i, 10, { type, userId: `many-${String(i).padStart(3, '0')}` }),
        ),
        // Spent 30 in the window, refunded 100 earlier in the window's first hour.
        event(run, span.startMs - 10 * MINUTE_MS, -100, { type, userId: 'refunded' }),
        event(run, inside, 30, { type, userId: 'refunded' }),
      ];
      await store.apply(incrementsOf(events));
      const [first] = await store.top('user', type, span, 'sum', 1);
      assert.equal(first?.subject, 'refunded');
      assert.deepEqual(first?.aggregate, { count: 1, valueCount: 1, sum: 30, min: 30, max: 30 });
      const hundred = await store.top('user', type, span, 'count', 100);
      assert.equal(hundred.length, 100);
      assert.ok(hundred.every((r) => r.aggregate.count === 1));
    });

    test('a type not ranked is refused with its field named', async (t) => {
      const { store } = await withStore(t, { rankedTypes: ['txn'] });
      const nowMs = Date.now();
      const run = randomUUID();
      await store.apply(incrementsOf([event(run, nowMs - MINUTE_MS, 2, { type: 'view' })]));
      const span = { startMs: nowMs - HOUR_MS, endMs: nowMs };
      await assert.rejects(
        store.top('user', 'view', span, 'count', 5),
        (error: Error & { field?: string }) => {
          assert.match(error.message, /TALLY_AGGREGATE_RANKINGS/);
          return true;
        },
      );
      assert.deepEqual(await store.top('user', 'txn', span, 'count', 5), []);
    });
  });
}
