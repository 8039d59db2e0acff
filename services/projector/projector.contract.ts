/**
 * The projector's write, on each SQL adapter (PostgreSQL, PGlite): events folded into entities
 * and live counts, out of order and redelivered, with refusals handed over before the commit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ORDER_PROJECTION, type Projection } from '../domain/projections.ts';
import { createSqlEntityStore } from '../infra/entities/sql-entity-store.ts';
import { createSqlProjectionStore } from '../infra/entities/sql-projection-store.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { msToTimestamp, newEvent } from '../pipeline/event-codec.ts';
import type { EventBatch, LoggedEvent } from '../pipeline/event-consumer.ts';
import { indexByType } from './projection-source.ts';
import { projectBatches, type Refusal } from './projector.ts';

export interface ProjectorEnvironment {
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const order: Projection = {
  ...ORDER_PROJECTION,
  createdAt: new Date(T0),
  updatedAt: new Date(T0),
  revision: 1,
};
const projections = indexByType([order]);

let offset = 0n;
function logged(
  id: string,
  type: string,
  minute: number,
  orderId: string,
  attributes: Record<string, string> = {},
  store = 'store/1',
): LoggedEvent {
  const event = newEvent({
    id,
    type,
    target: store,
    userId: 'customer-1',
    occurredAt: msToTimestamp(T0 + minute * 60_000),
    receivedAt: msToTimestamp(T0 + minute * 60_000),
    attributes: { order_id: orderId, ...attributes },
  });
  const at = offset++;
  return {
    event,
    partition: 0,
    offset: at,
    position: at,
    record: { key: 'customer-1', value: new Uint8Array([1]), headers: {}, offset: at, timestampMs: T0 },
  };
}
const batch = (events: LoggedEvent[], partition = 0): EventBatch => ({
  topic: 'accepted',
  partition,
  lastOffset: events.at(-1)?.offset ?? 0n,
  events,
});

export function projectorContract(adapter: string, environment: () => Promise<ProjectorEnvironment>): void {
  describe(`projector write: ${adapter}`, () => {
    const withSql = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      t.after(() => env.cleanup());
      return { sql: env.sql, entities: createSqlEntityStore({ sql: env.sql }) };
    };

    test('out of order and redelivered events end in the right state and exact counts', async (t) => {
      const { sql, entities } = await withSql(t);
      const a = [
        logged('a1', 'order.created', 0, 'A', { city: 'berlin' }),
        logged('a2', 'order.assigned', 1, 'A', { courier: 'c1' }),
        logged('a3', 'order.preparing', 2, 'A'),
        logged('a4', 'order.picked_up', 10, 'A', { lat: '52.5', lon: '13.4' }),
        logged('a5', 'order.location', 12, 'A', { lat: '52.6', lon: '13.5' }),
      ];
      const b = [
        logged('b1', 'order.created', 0, 'B', { city: 'paris' }, 'store/2'),
        logged('b2', 'order.assigned', 1, 'B', {}, 'store/2'),
        logged('b3', 'order.delivered', 30, 'B', {}, 'store/2'),
      ];
      // picked_up before preparing and assigned; the location before picked_up.
      await projectBatches(sql, projections, [batch([a[0]!, a[4]!, a[3]!, b[0]!])]);
      const second = await projectBatches(sql, projections, [
        batch([a[2]!, a[1]!, b[2]!]),
        batch([b[1]!], 1),
      ]);
      assert.equal(second.stale.get('order'), 3);
      // Everything again, twice (redelivery): nothing changes.
      const again = await projectBatches(sql, projections, [batch([...a, ...b]), batch([...b, ...a], 1)]);
      assert.equal(again.applied.size, 0);
      // Each is a duplicate, or stale (older than what set the state and its attributes): no change.
      assert.equal((again.duplicate.get('order') ?? 0) + (again.stale.get('order') ?? 0), 16);

      const A = await entities.get('order', 'A');
      assert.equal(A?.state, 'picked_up');
      assert.deepEqual(A?.attributes, {
        restaurant: 'store/1',
        customer: 'customer-1',
        city: 'berlin',
        courier: 'c1',
        lat: '52.6',
        lon: '13.5',
      });
      assert.equal(A?.last.timeMs, T0 + 10 * 60_000);
      assert.equal(A?.last.eventId, 'a4');
      assert.equal(A?.version, 4); // created, location, picked_up; assigned's courier (preparing set nothing)
      assert.equal((await entities.get('order', 'B'))?.state, 'delivered');

      assert.deepEqual(await entities.counts('order', ''), [
        { value: '', state: 'delivered', count: 1 },
        { value: '', state: 'picked_up', count: 1 },
      ]);
      assert.deepEqual(await entities.counts('order', 'city', ['picked_up', 'preparing']), [
        { value: 'berlin', state: 'picked_up', count: 1 },
      ]);
      assert.deepEqual(await entities.counts('order', 'restaurant'), [
        { value: 'store/1', state: 'picked_up', count: 1 },
        { value: 'store/2', state: 'delivered', count: 1 },
      ]);
    });

    test('at the same millisecond, the later offset of one partition is the newer; across partitions, the greater id', async (t) => {
      const { sql, entities } = await withSql(t);
      // Sent in one request: one occurred_at. Ids "x10" < "x9" by code units; offsets say assigned is later.
      const created = logged('x9', 'order.created', 0, 'X');
      const assigned = logged('x10', 'order.assigned', 0, 'X');
      await projectBatches(sql, projections, [batch([created, assigned])]);
      assert.equal((await entities.get('order', 'X'))?.state, 'assigned');
      // Redelivered in the other order: the offsets still decide.
      await projectBatches(sql, projections, [batch([assigned, created])]);
      const X = await entities.get('order', 'X');
      assert.equal(X?.state, 'assigned');
      assert.deepEqual(X?.last, {
        timeMs: T0,
        eventId: 'x10',
        partition: 0,
        position: Number(assigned.position),
      });
      // Another partition at the same millisecond: the greater id ("y2" > "x10").
      const other = { ...logged('y2', 'order.preparing', 0, 'X'), partition: 1 };
      await projectBatches(sql, projections, [batch([other], 1)]);
      assert.equal((await entities.get('order', 'X'))?.state, 'preparing');
    });

    test('a new count_by counts every entity again; a write under the old one meanwhile keeps the counts their sum', async (t) => {
      const { sql, entities } = await withSql(t);
      /** Every non-zero count, and what the entities' stored keys add up to. */
      const sums = async () => {
        const counts = await sql.query<{ k: string; n: string }>(
          `SELECT attribute || '=' || value || '/' || state AS k, count::text AS n FROM entity_count
            WHERE count <> 0 ORDER BY 1`,
        );
        const held = await sql.query<{ k: string; n: string }>(
          `SELECT (k ->> 0) || '=' || (k ->> 1) || '/' || (k ->> 2) AS k, count(*)::text AS n
             FROM entity, jsonb_array_elements(counted) AS k GROUP BY 1 ORDER BY 1`,
        );
        return { counts, held };
      };
      await projectBatches(sql, projections, [
        batch([
          logged('p1', 'order.created', 0, 'P', { city: 'berlin' }),
          logged('p2', 'order.assigned', 1, 'P', { courier: 'c1' }),
          logged('q1', 'order.created', 0, 'Q', { city: 'paris' }),
        ]),
      ]);
      const store = createSqlProjectionStore({ sql });
      const { projection: recounted } = await store.put({
        ...ORDER_PROJECTION,
        countBy: ['city', 'courier'],
      });
      assert.deepEqual(await entities.counts('order', 'courier', ['assigned']), [
        { value: 'c1', state: 'assigned', count: 1 },
      ]);
      assert.deepEqual(await entities.counts('order', 'restaurant'), []);
      // The projector still on the old projection for a moment, then on the new one.
      await projectBatches(sql, projections, [batch([logged('p3', 'order.preparing', 2, 'P')])]);
      let now = await sums();
      assert.deepEqual(now.counts, now.held);
      await projectBatches(sql, indexByType([recounted]), [batch([logged('p4', 'order.picked_up', 3, 'P')])]);
      now = await sums();
      assert.deepEqual(now.counts, now.held);
      assert.deepEqual(await entities.counts('order', 'courier', ['picked_up']), [
        { value: 'c1', state: 'picked_up', count: 1 },
      ]);
      assert.deepEqual(await entities.counts('order', 'restaurant'), []);
    });

    test('an illegal transition is refused with its reason before the commit, and changes nothing', async (t) => {
      const { sql, entities } = await withSql(t);
      await projectBatches(sql, projections, [
        batch([logged('c1', 'order.created', 0, 'C'), logged('c2', 'order.delivered', 5, 'C')]),
      ]);
      const handed: Refusal[] = [];
      const outcome = await projectBatches(
        sql,
        projections,
        [batch([logged('c3', 'order.created', 6, 'C'), logged('c4', 'order.created', 1, '')])],
        async (refused) => {
          handed.push(...refused);
        },
      );
      assert.deepEqual(
        handed.map((r) => [r.event.event.id, r.reason]),
        [
          ['c4', 'order.created event without order_id'],
          ['c3', 'order C: order is delivered (terminal): delivered → created is not allowed'],
        ],
      );
      assert.equal(outcome.refused.length, 2);
      const C = await entities.get('order', 'C');
      assert.equal(C?.state, 'delivered');
      assert.equal(C?.version, 2);
      assert.deepEqual(await entities.counts('order', ''), [{ value: '', state: 'delivered', count: 1 }]);
    });

    test('a failed dead-letter send rolls the write back', async (t) => {
      const { sql, entities } = await withSql(t);
      await assert.rejects(
        projectBatches(
          sql,
          projections,
          [batch([logged('d1', 'order.created', 0, 'D'), logged('d2', 'order.location', 1, 'E')])],
          async () => {
            throw new Error('Kafka down');
          },
        ),
        /Kafka down/,
      );
      assert.equal(await entities.get('order', 'D'), undefined);
      assert.deepEqual(await entities.counts('order', ''), []);
    });

    test('concurrent writers of the same entities keep exact counts', async (t) => {
      const { sql, entities } = await withSql(t);
      const orders = Array.from({ length: 20 }, (_, i) => `O${i}`);
      const stages = ['order.created', 'order.assigned', 'order.preparing', 'order.picked_up'];
      const events = orders.flatMap((o, i) =>
        stages.map((type, s) => logged(`${o}-${s}`, type, s, o, { city: i % 2 ? 'berlin' : 'paris' })),
      );
      // Four writers, each with every event in its own order.
      await Promise.all(
        [0, 1, 2, 3].map((w) =>
          projectBatches(sql, projections, [
            batch(
              [...events].sort(() => Math.random() - 0.5),
              w,
            ),
          ]),
        ),
      );
      for (const o of orders) assert.equal((await entities.get('order', o))?.state, 'picked_up');
      assert.deepEqual(await entities.counts('order', 'city'), [
        { value: 'berlin', state: 'picked_up', count: 10 },
        { value: 'paris', state: 'picked_up', count: 10 },
      ]);
      assert.deepEqual(await entities.counts('order', ''), [{ value: '', state: 'picked_up', count: 20 }]);
    });
  });
}
