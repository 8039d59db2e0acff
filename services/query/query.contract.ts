/**
 * The query role's answers, whatever its adapters: GetCounters and GetReport over gRPC on
 * counters applied through the counter store and summary rows written to `event_summary`.
 * `environment()` gives fresh, migrated, isolated backends.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HOUR_MS } from '../domain/report.ts';
import { QueryService } from '../gen/tally/v1/query_pb.js';
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
