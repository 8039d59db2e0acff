/**
 * The query role on the real servers: PostgreSQL with Redis standalone and Redis Cluster, and
 * the plan of the report's statement on a table large enough for the planner to choose.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { createRedisCounterStore } from '../infra/counters/redis-counter-store.ts';
import { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import { createGrpcClient } from '../infra/grpc/grpc-service.ts';
import { createLogger } from '../infra/logger.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { realServers, requireRealServers, testNamespace } from '../testing/real-servers.ts';
import { deleteRedisKeys } from '../testing/redis-keys.ts';
import { queryContract } from './query.contract.ts';
import { start } from './query.ts';

await requireRealServers();

async function migratedDatabase(schema: string): Promise<SqlDatabase> {
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema, poolSize: 4 });
  await migrate(sql, schema);
  return sql;
}

async function dropSchema(schema: string): Promise<void> {
  const pool = new pg.Pool({ connectionString: realServers.pgUrl, max: 1 });
  try {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await pool.end();
  }
}

queryContract('PostgreSQL, Redis', async () => {
  const ns = testNamespace();
  const sql = await migratedDatabase(ns.pgSchema);
  const counters = createRedisCounterStore({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
  });
  return {
    sql,
    counters,
    cleanup: async () => {
      await Promise.all([sql.close(), counters.close()]);
      await dropSchema(ns.pgSchema);
      await deleteRedisKeys(ns.redisPrefix);
    },
  };
});

queryContract('PostgreSQL, Redis Cluster', async () => {
  const ns = testNamespace();
  const sql = await migratedDatabase(ns.pgSchema);
  const counters = createRedisCounterStore({
    clusterNodes: realServers.redisClusterNodes,
    keyPrefix: ns.redisPrefix,
  });
  return {
    sql,
    counters,
    cleanup: async () => {
      await Promise.all([sql.close(), counters.close()]);
      await dropSchema(ns.pgSchema);
      await deleteRedisKeys(ns.redisPrefix, 'cluster');
    },
  };
});

test('a report is an index-only scan of the summary key once vacuum has run', async (t) => {
  const ns = testNamespace();
  const sql = await migratedDatabase(ns.pgSchema);
  const counters = createRedisCounterStore({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
  });
  // Records the statements the role sends, to ask PostgreSQL for their plans.
  const statements: { text: string; params: readonly unknown[] }[] = [];
  const recording: SqlDatabase = {
    ...sql,
    reader: {
      ...sql.reader,
      query: (text, params) => {
        statements.push({ text, params: params ?? [] });
        return sql.reader.query(text, params);
      },
    },
  };
  const grpc = new GrpcRegistry(createLogger('error'));
  const role = await start(
    { counters, sql: recording, grpc, logger: createLogger('error') },
    { maxTargetChars: 64 },
  );
  const server = await grpc.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 4 * 1024 * 1024 });
  const client = createGrpcClient(QueryService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 30_000 });
  t.after(async () => {
    client.close();
    await server.shutdown(1_000);
    await role.stop();
    await Promise.all([sql.close(), counters.close()]);
    await dropSchema(ns.pgSchema);
  });

  // 300 targets × 2 types × 5 days of hours, in the order the aggregator writes them: hour by hour.
  const firstDay = Date.UTC(2026, 10, 1);
  await sql.query(
    `INSERT INTO event_summary (target, hour, type, count, sum_value)
     SELECT 'post/' || k, to_timestamp($1 / 1000.0) + h * interval '1 hour', t, 1 + (k + h) % 7, 0
       FROM generate_series(0, 5 * 24 - 1) AS h, generate_series(1, 300) AS k, unnest(ARRAY['like', 'share']) AS t`,
    [firstDay],
  );
  await sql.exec('VACUUM ANALYZE event_summary');

  const answer = await client.getReport({ target: 'post/42', date: '2026-11-03' });
  const hour = (h: number) => answer.hours[h]!.counts.map((c) => [c.type, Number(c.count)]);
  const expected = (h: number) => 1 + ((42 + 2 * 24 + h) % 7);
  assert.deepEqual(hour(0), [
    ['like', expected(0)],
    ['share', expected(0)],
  ]);
  assert.deepEqual(hour(17), [
    ['like', expected(17)],
    ['share', expected(17)],
  ]);

  assert.equal(statements.length, 1);
  const [{ text, params }] = statements as [(typeof statements)[number]];
  const [explained] = await sql.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
    `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
    params,
  );
  const plan = explained!['QUERY PLAN'];
  const scan = findScan(plan[0]!.Plan);
  assert.equal(scan['Node Type'], 'Index Only Scan', JSON.stringify(plan));
  assert.equal(scan['Index Name'], 'event_summary_pkey');
  assert.equal(scan['Heap Fetches'], 0);
  assert.equal(scan['Actual Rows'], 48);
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Heap Fetches'?: number;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

/** The scan of event_summary in a plan. */
function findScan(plan: PlanNode): PlanNode {
  const search = (node: PlanNode): PlanNode | undefined =>
    /Scan/.test(node['Node Type']) ? node : (node.Plans ?? []).map(search).find((n) => n !== undefined);
  const scan = search(plan);
  if (!scan) throw new Error(`no scan in ${JSON.stringify(plan)}`);
  return scan;
}
