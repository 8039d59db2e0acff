/**
 * The query role's answers, whatever its adapters: GetCounters and GetReport over gRPC on
 * counters applied through the counter store and summary rows written to `event_summary`.
 * `environment()` gives fresh, migrated, isolated backends.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { HOUR_MS } from '../domain/report.ts';
import { dayHoldingMs } from '../domain/windows.ts';
import { QueryService, Window } from '../gen/tally/v1/query_pb.js';
import { Code } from '../infra/app-error.ts';
import { inPartition } from '../infra/counters/counter-store.contract.ts';
import type { CounterStore } from '../infra/counters/counter-store.ts';
import { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import { createGrpcClient } from '../infra/grpc/grpc-service.ts';
import { createLogger } from '../infra/logger.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { start } from './query.ts';

export interface QueryEnvironment {
  counters: CounterStore;
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

/** One summary row as the aggregator writes it. */
export interface SummaryRow {
  target: string;
  hourMs: number;
  type: string;
  count: number;
  sum: number;
}

export async function insertSummaries(sql: SqlDatabase, rows: readonly SummaryRow[]): Promise<void> {
  for (const r of rows)
    await sql.query(
      `INSERT INTO event_summary (target, hour, type, count, sum_value)
       VALUES ($1, to_timestamp($2 / 1000.0), $3, $4, $5)`,
      [r.target, r.hourMs, r.type, r.count, r.sum],
    );
}

export function queryContract(adapters: string, environment: () => Promise<QueryEnvironment>): void {
  describe(`query role: ${adapters}`, () => {
    const withQuery = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      const grpc = new GrpcRegistry(createLogger('error'));
      const role = await start(
        { counters: env.counters, sql: env.sql, grpc, logger: createLogger('error') },
        { maxTargetChars: 64 },
      );
      const server = await grpc.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 4 * 1024 * 1024 });
      const client = createGrpcClient(QueryService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 30_000 });
      t.after(async () => {
        client.close();
        await server.shutdown(1_000);
        await role.stop();
        await env.cleanup();
      });
      return { env, client };
    };

    test('GetCounters: every type of the target, ordered by code unit, with counts and sums', async (t) => {
      const { env, client } = await withQuery(t);
      const types = ['b10', 'VIEW', 'a', 'b2', 'B', 'CLICK', 'a:b', 'a-b', 'a.b', 'a_b', 'Z9'];
      let id = 0;
      await env.counters.apply(
        inPartition(
          0,
          types.flatMap((type, i) =>
            Array.from({ length: i + 1 }, () => ({
              position: BigInt(id++),
              target: 'shop/{1}',
              type,
              value: i % 2 === 0 ? 0.5 : undefined,
            })),
          ),
        ),
      );
      await env.counters.apply(
        inPartition(0, [{ position: BigInt(id++), target: 'shop/2', type: 'VIEW', value: 3 }]),
      );
      const answer = await client.getCounters({ target: 'shop/{1}' });
      assert.equal(answer.target, 'shop/{1}');
      assert.deepEqual(
        answer.counts.map((c) => ({ type: c.type, count: c.count, sum: c.sum })),
        [...types].sort().map((type) => {
          const i = types.indexOf(type);
          return { type, count: BigInt(i + 1), sum: i % 2 === 0 ? 0.5 * (i + 1) : 0 };
        }),
      );
      assert.deepEqual((await client.getCounters({ target: 'nobody' })).counts, []);
      await assert.rejects(client.getCounters({ target: '' }), {
        code: Code.INVALID_ARGUMENT,
        field: 'target',
      });
    });

    test('GetReport: 24 hours of every type of the day, zero-filled, only that day and target', async (t) => {
      const { env, client } = await withQuery(t);
      const day = Date.UTC(2026, 10, 21);
      await insertSummaries(env.sql, [
        { target: 'post/7', hourMs: day, type: 'like', count: 3, sum: 0 },
        { target: 'post/7', hourMs: day + 5 * HOUR_MS, type: 'like', count: 2, sum: 0 },
        { target: 'post/7', hourMs: day + 5 * HOUR_MS, type: 'Share', count: 1, sum: 2.25 },
        { target: 'post/7', hourMs: day + 23 * HOUR_MS, type: 'comment', count: 7, sum: 1.5 },
        // The hours either side of the day, and another target on the day.
        { target: 'post/7', hourMs: day - HOUR_MS, type: 'before', count: 1, sum: 0 },
        { target: 'post/7', hourMs: day + 24 * HOUR_MS, type: 'after', count: 1, sum: 0 },
        { target: 'post/8', hourMs: day + 5 * HOUR_MS, type: 'like', count: 9, sum: 0 },
      ]);
      const answer = await client.getReport({ target: 'post/7', date: '2026-11-21' });
      assert.equal(answer.target, 'post/7');
      assert.equal(answer.date, '2026-11-21');
      assert.deepEqual(
        answer.hours.map((h) => h.hour),
        Array.from({ length: 24 }, (_, i) => i),
      );
      const cells = (hour: number) =>
        answer.hours[hour]!.counts.map((c) => [c.type, Number(c.count), c.sum] as const);
      assert.deepEqual(cells(0), [
        ['Share', 0, 0],
        ['comment', 0, 0],
        ['like', 3, 0],
      ]);
      assert.deepEqual(cells(5), [
        ['Share', 1, 2.25],
        ['comment', 0, 0],
        ['like', 2, 0],
      ]);
      assert.deepEqual(cells(12), [
        ['Share', 0, 0],
        ['comment', 0, 0],
        ['like', 0, 0],
      ]);
      assert.deepEqual(cells(23), [
        ['Share', 0, 0],
        ['comment', 7, 1.5],
        ['like', 0, 0],
      ]);

      const empty = await client.getReport({ target: 'post/7', date: '2026-11-19' });
      assert.equal(empty.hours.length, 24);
      assert.ok(empty.hours.every((h) => h.counts.length === 0));
      await assert.rejects(client.getReport({ target: 'post/7', date: '2026-02-30' }), {
        code: Code.INVALID_ARGUMENT,
        field: 'date',
      });
    });

    test('TopTargets: all time by default, the current hour, the current day in UTC or a zone', async (t) => {
      const { env, client } = await withQuery(t);
      const now = Date.now();
      const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
      // this hour: a 3, b 1; 30 h ago: b 5 (in no current day); all time also c, untimed.
      let offset = 0;
      const at = (target: string, timeMs: number | undefined, n: number) =>
        Array.from({ length: n }, () => ({
          position: BigInt(offset++),
          target,
          type: 'VIEW',
          value: undefined,
          timeMs,
        }));
      await env.counters.apply(
        inPartition(0, [
          ...at('a', hour + 1, 3),
          ...at('b', hour, 1),
          ...at('b', hour - 30 * HOUR_MS, 5),
          ...at('c', undefined, 9),
        ]),
      );
      const ranked = (answer: {
        leaders: { type: string; targets: { target: string; count: bigint }[] }[];
      }) => answer.leaders.map((l) => [l.type, l.targets.map((x) => `${x.target}=${x.count}`).join(' ')]);

      const allTime = await client.topTargets({ types: ['VIEW'] });
      assert.deepEqual(ranked(allTime), [['VIEW', 'c=9 b=6 a=3']]);
      assert.equal(allTime.windowStart, undefined);
      assert.deepEqual(ranked(await client.topTargets({ types: ['VIEW'], window: Window.ALL_TIME })), [
        ['VIEW', 'c=9 b=6 a=3'],
      ]);

      const thisHour = await client.topTargets({ types: ['VIEW'], window: Window.HOUR });
      assert.deepEqual(ranked(thisHour), [['VIEW', 'a=3 b=1']]);
      assert.equal(timestampMs(thisHour.windowStart!), hour);
      assert.equal(timestampMs(thisHour.windowEnd!), hour + HOUR_MS);

      for (const timeZone of ['', 'Asia/Kathmandu', 'America/Los_Angeles']) {
        const day = await client.topTargets({ window: Window.DAY, timeZone, limit: 1 });
        const span = dayHoldingMs(now, timeZone || 'UTC');
        assert.deepEqual(ranked(day), [['VIEW', 'a=3']], timeZone);
        assert.equal(timestampMs(day.windowStart!), span.startMs, timeZone);
        assert.equal(timestampMs(day.windowEnd!), span.endMs, timeZone);
        assert.ok(span.startMs <= hour && hour < span.endMs);
      }
    });

    test('TopTargets of a past date or month: from the hourly summaries, in UTC or a zone', async (t) => {
      const { env, client } = await withQuery(t);
      const day = Date.UTC(2026, 10, 21);
      await insertSummaries(env.sql, [
        { target: 'p/1', hourMs: day, type: 'like', count: 3, sum: 0 },
        { target: 'p/1', hourMs: day + 5 * HOUR_MS, type: 'like', count: 2, sum: 0 },
        { target: 'p/2', hourMs: day + 23 * HOUR_MS, type: 'like', count: 4, sum: 0 },
        { target: 'p/3', hourMs: day + 6 * HOUR_MS, type: 'like', count: 4, sum: 0 },
        { target: 'p/3', hourMs: day + 6 * HOUR_MS, type: 'Share', count: 1, sum: 0 },
        { target: 'p/4', hourMs: day - HOUR_MS, type: 'like', count: 50, sum: 0 },
        { target: 'p/5', hourMs: Date.UTC(2026, 9, 31, 23), type: 'like', count: 7, sum: 0 },
      ]);
      const ranked = (answer: {
        leaders: { type: string; targets: { target: string; count: bigint }[] }[];
      }) => answer.leaders.map((l) => [l.type, l.targets.map((x) => `${x.target}=${x.count}`).join(' ')]);
      const utc = await client.topTargets({ window: Window.DATE, date: '2026-11-21' });
      assert.deepEqual(ranked(utc), [
        ['Share', 'p/3=1'],
        ['like', 'p/1=5 p/3=4 p/2=4'],
      ]);
      assert.equal(timestampMs(utc.windowStart!), day);
      assert.equal(timestampMs(utc.windowEnd!), day + 24 * HOUR_MS);
      // The window is inferred from date; types that saw nothing are listed empty.
      assert.deepEqual(
        ranked(await client.topTargets({ date: '2026-11-21', types: ['like', 'none'], limit: 2 })),
        [
          ['like', 'p/1=5 p/3=4'],
          ['none', ''],
        ],
      );
      // Paris is UTC+1 in November: its 21st is 2026-11-20T23:00Z .. 2026-11-21T23:00Z.
      assert.deepEqual(
        ranked(await client.topTargets({ date: '2026-11-21', timeZone: 'Europe/Paris', types: ['like'] })),
        [['like', 'p/4=50 p/1=5 p/3=4']],
      );
      assert.deepEqual(
        ranked(await client.topTargets({ window: Window.MONTH, month: '2026-11', types: ['like'] })),
        [['like', 'p/4=50 p/1=5 p/3=4 p/2=4']],
      );
      // Tokyo is UTC+9: its November begins 2026-10-31T15:00Z.
      assert.deepEqual(
        ranked(
          await client.topTargets({ month: '2026-11', timeZone: 'Asia/Tokyo', types: ['like'], limit: 1 }),
        ),
        [['like', 'p/4=50']],
      );
      assert.deepEqual(
        ranked(await client.topTargets({ month: '2026-10', timeZone: 'Asia/Tokyo', types: ['like'] })),
        [['like', '']],
      );
      assert.deepEqual(ranked(await client.topTargets({ month: '2026-10', types: ['like'] })), [
        ['like', 'p/5=7'],
      ]);
    });

    test('TopTargets refuses a bad window, time zone, date or month, naming the field', async (t) => {
      const { client } = await withQuery(t);
      const refused = async (
        request: Parameters<typeof client.topTargets>[0],
        field: string,
        message: RegExp,
      ) =>
        assert.rejects(
          client.topTargets(request),
          (error: { code: number; field: string; message: string }) => {
            assert.equal(error.code, Code.INVALID_ARGUMENT, error.message);
            assert.equal(error.field, field, error.message);
            assert.match(error.message, message);
            return true;
          },
        );
      await refused(
        { window: Window.DAY, timeZone: 'Mars/Olympus_Mons' },
        'time_zone',
        /not a known time zone/,
      );
      await refused({ window: Window.DAY, timeZone: 'x'.repeat(65) }, 'time_zone', /at most 64/);
      await refused({ window: Window.HOUR, timeZone: 'UTC' }, 'time_zone', /only to WINDOW_DAY/);
      await refused({ timeZone: 'Europe/Paris' }, 'time_zone', /only to WINDOW_DAY/);
      await refused({ window: Window.DATE }, 'date', /is required/);
      await refused({ window: Window.DATE, date: '2026-02-30' }, 'date', /not a calendar date/);
      await refused({ window: Window.DATE, date: '21/11/2026' }, 'date', /YYYY-MM-DD/);
      await refused({ window: Window.DATE, date: '2999-01-01' }, 'date', /in the future/);
      await refused({ window: Window.DAY, date: '2026-11-21' }, 'date', /only to WINDOW_DATE/);
      await refused({ window: Window.MONTH, month: '2026-13' }, 'month', /not a calendar month/);
      await refused({ window: Window.MONTH, month: '2999-01' }, 'month', /in the future/);
      await refused({ window: Window.MONTH }, 'month', /is required/);
      await refused({ date: '2026-11-21', month: '2026-11' }, 'month', /cannot be given with date/);
      await refused({ window: 42 as Window }, 'window', /not a known window/);
    });

    test('GetUniques: unique users per type today, on a past day and all time, said to be approximate', async (t) => {
      const { env, client } = await withQuery(t);
      const now = Date.now();
      const today = Math.floor(now / (24 * HOUR_MS)) * 24 * HOUR_MS;
      const past = today - 2 * 24 * HOUR_MS;
      let offset = 0;
      const seen = (type: string, timeMs: number, userId?: string) => ({
        position: BigInt(offset++),
        target: 'item/9',
        type,
        value: undefined,
        timeMs,
        userId,
      });
      await env.counters.apply(
        inPartition(0, [
          seen('VIEW', now, 'ann'),
          seen('VIEW', now, 'bob'),
          seen('VIEW', now, 'ann'),
          seen('VIEW', past, 'cid'),
          seen('VIEW', past, 'ann'),
          seen('CLICK', now),
        ]),
      );
      const answer = await client.getUniques({ target: 'item/9' });
      assert.equal(answer.target, 'item/9');
      assert.equal(answer.date, new Date(today).toISOString().slice(0, 10));
      assert.equal(answer.approximate, true);
      assert.equal(answer.relativeStandardError, 0.0081);
      assert.deepEqual(
        answer.uniques.map((u) => [u.type, u.day, u.allTime]),
        [
          ['CLICK', 0n, 0n],
          ['VIEW', 2n, 3n],
        ],
      );
      const pastDate = new Date(past).toISOString().slice(0, 10);
      const onPast = await client.getUniques({ target: 'item/9', types: ['VIEW'], date: pastDate });
      assert.equal(onPast.date, pastDate);
      assert.deepEqual(
        onPast.uniques.map((u) => [u.type, u.day, u.allTime]),
        [['VIEW', 2n, 3n]],
      );

      const refused = async (
        request: Parameters<typeof client.getUniques>[0],
        field: string,
        message: RegExp,
      ) =>
        assert.rejects(
          client.getUniques(request),
          (error: { code: number; field: string; message: string }) => {
            assert.equal(error.code, Code.INVALID_ARGUMENT, error.message);
            assert.equal(error.field, field, error.message);
            assert.match(error.message, message);
            return true;
          },
        );
      await refused({ target: '' }, 'target', /is required/);
      await refused({ target: 'item/9', types: [''] }, 'types[0]', /1 to 64/);
      await refused({ target: 'item/9', date: '2026-02-30' }, 'date', /not a calendar date/);
      await refused({ target: 'item/9', date: '2999-01-01' }, 'date', /in the future/);
      await refused(
        { target: 'item/9', date: new Date(today - 36 * 24 * HOUR_MS).toISOString().slice(0, 10) },
        'date',
        /kept for 35 days/,
      );
    });

    test('GetReport reads what an upsert of the aggregator changed', async (t) => {
      const { env, client } = await withQuery(t);
      const hour = Date.UTC(2026, 10, 20, 9);
      await insertSummaries(env.sql, [
        { target: 'm/1', hourMs: hour, type: 'transaction', count: 1, sum: 10 },
      ]);
      await env.sql.query(
        `INSERT INTO event_summary (target, hour, type, count, sum_value)
         VALUES ($1, to_timestamp($2 / 1000.0), $3, $4, $5)
         ON CONFLICT (target, hour, type) DO UPDATE
            SET count = event_summary.count + EXCLUDED.count,
                sum_value = event_summary.sum_value + EXCLUDED.sum_value`,
        ['m/1', hour, 'transaction', 2, 5.5],
      );
      const answer = await client.getReport({ target: 'm/1', date: '2026-11-20' });
      assert.deepEqual(
        answer.hours[9]!.counts.map((c) => [c.type, c.count, c.sum]),
        [['transaction', 3n, 15.5]],
      );
    });
  });
}
