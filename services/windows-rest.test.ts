/**
 * The leaderboard windows and unique users over REST: the gateway transcodes GET /v1/top's
 * window, time zone, date and month and GET /v1/uniques from their proto's http options, to the
 * query role on an embedded counter store and PGlite; a bad parameter is a 400 naming the field.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HOUR_MS } from './domain/report.ts';
import { type GatewayDeps, start as startGateway } from './gateway/gateway.ts';
import { QueryService } from './gen/tally/v1/query_pb.js';
import { inPartition } from './infra/counters/counter-store.contract.ts';
import { createEmbeddedCounterStore } from './infra/counters/embedded-counter-store.ts';
import { GrpcRegistry } from './infra/grpc/grpc-registry.ts';
import { createGrpcClient, type ServiceClient } from './infra/grpc/grpc-service.ts';
import { createLogger } from './infra/logger.ts';
import { migrate } from './infra/sql/migrate.ts';
import { createPgliteDatabase } from './infra/sql/pglite-database.ts';
import { start } from './query/query.ts';

const template = mkdtempSync(join(tmpdir(), 'tally-windows-rest-template-'));
{
  const db = await createPgliteDatabase({ dataDir: template, schema: 'tally' });
  await migrate(db, 'tally');
  await db.close();
}
after(() => rmSync(template, { recursive: true, force: true }));

test('REST: GET /v1/top takes the window as query parameters, GET /v1/uniques answers, bad ones are 400 naming the field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-query-rest-'));
  cpSync(template, join(dir, 'pg'), { recursive: true });
  const sql = await createPgliteDatabase({ dataDir: join(dir, 'pg'), schema: 'tally' });
  const counters = createEmbeddedCounterStore({ dataDir: join(dir, 'counters') });
  const grpc = new GrpcRegistry(createLogger('error'));
  const role = await start({ counters, sql, grpc, logger: createLogger('error') }, { maxTargetChars: 64 });
  const server = await grpc.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 4 * 1024 * 1024 });
  const query = createGrpcClient(QueryService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 30_000 });
  const unused = {} as unknown as ServiceClient<never>;
  const gateway = await startGateway(
    { ingest: unused, query, logger: createLogger('error') } as GatewayDeps,
    {
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: 1024 * 1024,
      requestTimeoutMs: 30_000,
      drainTimeoutMs: 2_000,
    },
  );
  t.after(async () => {
    await gateway.stop();
    query.close();
    await server.shutdown(1_000);
    await role.stop();
    await Promise.all([sql.close(), counters.close()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const now = Date.now();
  await counters.apply(
    inPartition(0, [
      { position: 1n, target: 'r/1', type: 'VIEW', value: undefined, timeMs: now, userId: 'ann' },
      { position: 2n, target: 'r/1', type: 'VIEW', value: undefined, timeMs: now, userId: 'bob' },
      { position: 3n, target: 'r/2', type: 'VIEW', value: undefined, timeMs: now - 3 * 24 * HOUR_MS },
    ]),
  );
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${gateway.port}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
  assert.deepEqual(await get('/v1/top?types=VIEW&window=WINDOW_HOUR'), {
    status: 200,
    body: {
      leaders: [{ type: 'VIEW', targets: [{ target: 'r/1', count: '2' }] }],
      windowStart: new Date(hour).toISOString().replace('.000Z', 'Z'),
      windowEnd: new Date(hour + HOUR_MS).toISOString().replace('.000Z', 'Z'),
    },
  });
  assert.deepEqual((await get('/v1/top?types=VIEW')).body, {
    leaders: [
      {
        type: 'VIEW',
        targets: [
          { target: 'r/1', count: '2' },
          { target: 'r/2', count: '1' },
        ],
      },
    ],
  });
  const day = await get('/v1/top?window=WINDOW_DAY&time_zone=Asia/Kolkata');
  assert.equal(day.status, 200);
  assert.deepEqual(day.body.leaders, [{ type: 'VIEW', targets: [{ target: 'r/1', count: '2' }] }]);
  assert.equal((await get('/v1/top?window=WINDOW_DAY&timeZone=Europe/Paris')).status, 200);
  assert.equal((await get('/v1/top?date=2026-11-21')).status, 200);

  const uniques = await get('/v1/uniques?target=r/1');
  assert.deepEqual(uniques, {
    status: 200,
    body: {
      target: 'r/1',
      date: new Date(now).toISOString().slice(0, 10),
      uniques: [{ type: 'VIEW', day: '2', allTime: '2' }],
      approximate: true,
      relativeStandardError: 0.0081,
    },
  });

  for (const [path, field] of [
    ['/v1/top?window=WINDOW_DAY&time_zone=Nowhere/Land', 'time_zone'],
    ['/v1/top?window=WINDOW_WEEK', 'window'],
    ['/v1/top?window=WINDOW_DATE&date=2026-02-30', 'date'],
    ['/v1/top?month=26-11', 'month'],
    ['/v1/top?window=WINDOW_HOUR&time_zone=UTC', 'time_zone'],
    ['/v1/uniques?target=', 'target'],
    ['/v1/uniques?target=r/1&date=tomorrow', 'date'],
  ] as const) {
    const answer = await get(path);
    assert.equal(answer.status, 400, path);
    assert.equal(
      (answer.body.error as { field?: string }).field,
      field,
      `${path}: ${JSON.stringify(answer.body)}`,
    );
  }
});
