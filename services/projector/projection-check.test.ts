import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ORDER_PROJECTION } from '../domain/projections.ts';
import { msToTimestamp, newEvent } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
import { migratedPgliteCopies } from '../testing/migrated-sql.ts';
import { checkProjection, expectedEntities, type LedgerEvent } from '../testing/projection-check.ts';
import { indexByType } from './projection-source.ts';
import { projectBatches } from './projector.ts';

const environment = migratedPgliteCopies('projection-check');
const T0 = Date.UTC(2026, 0, 15, 12);
const STAGES = ['order.created', 'order.assigned', 'order.preparing', 'order.picked_up', 'order.delivered'];

function ledger(orders: number): LedgerEvent[] {
  return Array.from({ length: orders }, (_, o) =>
    STAGES.slice(0, 1 + (o % STAGES.length)).map((type, s) => ({
      id: `o${o}-${s}`,
      type,
      target: `store/${o % 3}`,
      userId: `customer-${o}`,
      occurredAtMs: T0 + o * 1000 + s * 60_000,
      attributes: {
        order_id: `O${o}`,
        city: o % 2 ? 'berlin' : 'paris',
        ...(s === 3 ? { lat: '52.5', lon: '13.4' } : {}),
      },
    })),
  ).flat();
}

function batchOf(events: readonly LedgerEvent[]): EventBatch {
  return {
    topic: 'accepted',
    partition: 0,
    lastOffset: BigInt(events.length),
    events: events.map((e, i) => ({
      event: newEvent({
        id: e.id,
        type: e.type,
        target: e.target,
        userId: e.userId,
        occurredAt: msToTimestamp(e.occurredAtMs),
        receivedAt: msToTimestamp(e.occurredAtMs),
        attributes: { ...e.attributes },
      }),
      partition: 0,
      offset: BigInt(i),
      position: BigInt(i),
      record: { key: e.userId, value: new Uint8Array(), headers: {}, offset: BigInt(i), timestampMs: 0 },
    })),
  };
}

test('expected entities: the fold of each entity in event-time order, whatever the ledger order', () => {
  const events = ledger(10);
  const a = expectedEntities(ORDER_PROJECTION, events);
  const b = expectedEntities(ORDER_PROJECTION, [...events].reverse());
  const shape = (m: typeof a) =>
    [...m]
      .map(([id, e]) => [id, e.state, e.attributes, e.last.eventId])
      .sort((x, y) => (x[0]! < y[0]! ? -1 : 1));
  assert.deepEqual(shape(a), shape(b));
  assert.equal(a.get('O4')?.state, 'delivered');
  assert.equal(a.get('O3')?.state, 'picked_up');
  assert.equal(a.get('O3')?.attributes.lat, '52.5');
});

test('the check passes on what the projector wrote, and names each difference once the tables are wrong', async (t) => {
  const env = await environment();
  t.after(() => env.cleanup());
  const pg = {
    query: async (text: string, params?: unknown[]) => ({ rows: await env.sql.query(text, params) }),
  };
  const events = ledger(12);
  const projections = indexByType([
    { ...ORDER_PROJECTION, createdAt: new Date(), updatedAt: new Date(), revision: 1 },
  ]);
  // Out of order, and redelivered.
  await projectBatches(env.sql, projections, [batchOf([...events].reverse())]);
  await projectBatches(env.sql, projections, [batchOf(events)]);
  const sent = {
    id: 'x1',
    type: 'order.created',
    target: 'store/9',
    userId: 'c',
    occurredAtMs: T0,
    attributes: { order_id: 'X' },
  };
  await projectBatches(env.sql, projections, [batchOf([sent])]);

  const ok = await checkProjection({
    projection: ORDER_PROJECTION,
    acknowledged: events,
    unacknowledged: [sent],
    pg,
  });
  assert.deepEqual(ok, { kind: 'order', checked: 12, uncertain: 1, mismatches: [] });

  await env.sql.query(`UPDATE entity SET state = 'created' WHERE id = 'O2'`);
  await env.sql.query(
    `UPDATE entity_count SET count = count + 1 WHERE attribute = 'city' AND value = 'berlin' AND state = 'assigned'`,
  );
  const bad = await checkProjection({ projection: ORDER_PROJECTION, acknowledged: events, pg });
  assert.deepEqual(bad.mismatches, [
    'order O2: state created, expected preparing',
    'order X: stored, but no acknowledged event names it',
    'order count =/created: 4, the entities hold 5',
    'order count =/preparing: 2, the entities hold 1',
    'order count city=berlin/assigned: 3, the entities hold 2',
    'order count city=paris/created: 2, the entities hold 3',
    'order count city=paris/preparing: 1, the entities hold 0',
    'order count restaurant=store/2/created: 1, the entities hold 2',
    'order count restaurant=store/2/preparing: 1, the entities hold 0',
  ]);
});
