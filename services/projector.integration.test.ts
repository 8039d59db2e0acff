/**
 * The projector end to end on the real servers (Kafka, PostgreSQL), in one `tally all`: orders
 * sent over REST with their events out of order end in the right state with exact live counts;
 * an order moved backwards is dead-lettered with the reason; the entity, listing, count and
 * projection APIs answer, bad input with a 400 naming the field; gRPC answers the same entity.
 * Then the projector alone is killed mid-stream and started again: the check of
 * testing/projection-check.ts finds every entity and count exact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ORDER_PROJECTION } from './domain/projections.ts';
import { EntityService, ProjectionService } from './gen/tally/v1/entities_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import type { ConsumedRecord } from './infra/log/event-log.ts';
import { checkProjection } from './testing/projection-check.ts';
import {
  assertOrderApis,
  assertProjectionAdmin,
  orderScenario,
  sendOrders,
} from './testing/projection-run.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

const ENV = { TALLY_PROJECTIONS_REFRESH_MS: '200' };

async function readAll(backends: Backends, topic: string, count: number): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  const consumer = backends.log.consumer({
    groupId: `${backends.ns.groupPrefix}reader-${Date.now()}`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 100,
  });
  await consumer.run(async (batch) => {
    records.push(...batch.records);
  });
  try {
    await waitFor(
      () => records.length >= count,
      () => `${records.length} of ${count} records on ${topic}`,
    );
  } finally {
    await consumer.stop();
  }
  return records;
}

test('tally all: out-of-order orders end right with exact counts; a move backwards is dead-lettered; the APIs answer', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, ...ENV });
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const port = tally.httpPort!;
  const scenario = orderScenario(ns.id, 9);
  await sendOrders(port, scenario);
  await assertOrderApis(port, ns.id, 9);

  const [dead] = await readAll(backends, ns.dlqTopic, 1);
  assert.equal(dead?.headers['tally-error'], scenario.refused.reason);
  assert.equal(dead?.headers['tally-group'], `${ns.groupPrefix}group_projection`);
  assert.equal(dead?.headers['tally-source-topic'], ns.acceptedTopic);

  const grpc = createGrpcClient(EntityService, `127.0.0.1:${tally.grpcPort}`, { defaultTimeoutMs: 10_000 });
  t.after(() => grpc.close());
  const { entity } = await grpc.getEntity({ kind: 'order', id: `${ns.id}-o1` });
  assert.equal(entity?.state, 'preparing');
  assert.equal(entity?.attributes.courier, 'courier-1');
  await assert.rejects(grpc.getEntity({ kind: 'order', id: '' }), /id: is required/);
  await assert.rejects(grpc.countEntities({ kind: 'order', by: 'courier' }), (error: AppError) => {
    assert.equal(error.code, Code.INVALID_ARGUMENT);
    assert.equal(error.field, 'by');
    return true;
  });
  const admin = createGrpcClient(ProjectionService, `127.0.0.1:${tally.grpcPort}`, {
    defaultTimeoutMs: 10_000,
  });
  t.after(() => admin.close());
  await assert.rejects(
    admin.putProjection({
      kind: 'parcel',
      projection: {
        idAttribute: 'parcel_id',
        states: ['sent'],
        events: [{ type: 'parcel.sent', state: 'gone' }],
      },
    }),
    (error: AppError) => {
      assert.equal(error.code, Code.INVALID_ARGUMENT);
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        ['projection.events[0].state'],
      );
      return true;
    },
  );

  const check = await checkProjection({
    projection: ORDER_PROJECTION,
    acknowledged: scenario.events.filter((e) => e.id !== scenario.refused.id),
    pg: backends.pg,
  });
  assert.deepEqual(check.mismatches, []);
  assert.equal(check.checked, 9);

  await assertProjectionAdmin(port);
});

test('the projector killed mid-stream and started again: every entity and count exact', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const edge = await startTally(['gateway', 'ingest', 'query', 'persister'], ns.env);
  let projector = await startTally(['projector'], { ...ns.env, ...ENV, TALLY_HTTP_PORT: '0' });
  t.after(async () => {
    await projector.kill('SIGKILL');
    await edge.kill('SIGKILL');
    await backends.cleanup();
  });
  const scenario = orderScenario(ns.id, 60);
  const half = Math.floor(scenario.events.length / 2);
  await sendOrders(edge.httpPort!, { ...scenario, events: scenario.events.slice(0, half) });
  await waitFor(
    async () =>
      Number((await backends.rows<{ n: string }>('SELECT count(*) AS n FROM entity'))[0]?.n ?? 0) > 5,
    () => 'the projector projected nothing',
  );
  await projector.kill('SIGKILL');
  await sendOrders(edge.httpPort!, { ...scenario, events: scenario.events.slice(half) });
  projector = await startTally(['projector'], { ...ns.env, ...ENV, TALLY_HTTP_PORT: '0' });
  const acknowledged = scenario.events.filter((e) => e.id !== scenario.refused.id);
  await waitFor(
    async () => await backends.caughtUp(['group_persistence', 'group_projection']),
    () => 'the projector never caught up',
  );
  const check = await checkProjection({ projection: ORDER_PROJECTION, acknowledged, pg: backends.pg });
  assert.deepEqual(check.mismatches, []);
  assert.equal(check.checked, 60);
});
