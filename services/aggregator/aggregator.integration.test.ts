/**
 * The aggregator's exactly-once transaction on a real PostgreSQL: the events-topic offset stored
 * with the summaries skips redelivered batches and repeated forwards, with one row per partition.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { HOUR_MS } from '../domain/report.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import { newEvent } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
import { realServers, requireRealServers, testNamespace } from '../testing/real-servers.ts';
import { aggregateBatches } from './aggregator.ts';

await requireRealServers();

const ns = testNamespace();
const db = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 4 });
const HOUR = Date.UTC(2026, 10, 21, 9);

before(() => migrate(db, ns.pgSchema));
after(async () => {
  await db.query(`DROP SCHEMA IF EXISTS ${ns.pgSchema} CASCADE`);
  await db.close();
});

/** Events at positions `positions` of `partition` (read at offsets from 1000 in the accepted topic). */
function batch(
  partition: number,
  positions: number[] | number,
  ids: string[],
  target = 'post/1',
): EventBatch {
  const at = typeof positions === 'number' ? ids.map((_, i) => positions + i) : positions;
  return {
    topic: 'events.accepted',
    partition,
    lastOffset: BigInt(1000 + ids.length - 1),
    events: ids.map((id, i) => ({
      partition,
      offset: BigInt(1000 + i),
      position: BigInt(at[i]!),
      record: { key: null, value: new Uint8Array(), headers: {}, offset: BigInt(1000 + i), timestampMs: 0 },
      event: newEvent({
        id,
        type: 'like',
        target,
        value: 2,
        occurredAt: timestampFromMs(HOUR + i * 60_000),
        receivedAt: timestampFromMs(HOUR + HOUR_MS + i),
      }),
    })),
  };
}

async function summary(target: string) {
  return db.query<{ hour: Date; count: number; sum_value: number }>(
    'SELECT hour, count, sum_value FROM event_summary WHERE target = $1 ORDER BY hour',
    [target],
  );
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

test('a batch is folded into its event-time hour once; its redelivery is skipped by position', async () => {
  assert.equal(await aggregateBatches(db, 'g1', 'events', [batch(0, 0, ids('a', 10))]), 10);
  // Same positions, other ids: only the stored position can tell it was applied.
  assert.equal(await aggregateBatches(db, 'g1', 'events', [batch(0, 0, ids('b', 10))]), 0);
  // Overlapping redelivery: positions 5..9 applied, 10..14 new.
  assert.equal(await aggregateBatches(db, 'g1', 'events', [batch(0, 5, ids('c', 10))]), 5);
  assert.deepEqual(await summary('post/1'), [{ hour: new Date(HOUR), count: 15, sum_value: 30 }]);
  const [offset] = await db.query<{ next_offset: number }>(
    "SELECT next_offset FROM consumer_offset WHERE group_id = 'g1' AND topic = 'events' AND partition = 0",
  );
  assert.equal(offset?.next_offset, 15);
});

test('a repeated forward (positions again, later in the accepted topic) is skipped, also within one batch', async () => {
  // The persister forwarded 0..2, then again 1..2 after its redelivery, then 3.
  assert.equal(
    await aggregateBatches(db, 'g2', 'events', [batch(1, [0, 1, 2, 1, 2, 3], ids('x', 6), 'post/2')]),
    4,
  );
  assert.equal(await aggregateBatches(db, 'g2', 'events', [batch(1, [2, 3, 4], ids('y', 3), 'post/2')]), 1);
  assert.deepEqual(await summary('post/2'), [{ hour: new Date(HOUR), count: 5, sum_value: 10 }]);
  // One row per partition, however many events.
  const [rows] = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM consumer_offset WHERE group_id = 'g2'",
  );
  assert.equal(rows?.n, 1);
});

test('concurrent batches of different partitions on the same summary rows all land', async () => {
  const batches = Array.from({ length: 8 }, (_, p) => batch(10 + p, 0, ids(`p${p}-`, 50), 'post/3'));
  const applied = await Promise.all(batches.map((b) => aggregateBatches(db, 'g3', 'events', [b])));
  assert.deepEqual(applied, Array(8).fill(50));
  assert.deepEqual(await summary('post/3'), [{ hour: new Date(HOUR), count: 400, sum_value: 800 }]);
});

test('one write of many partitions: each against its own stored offset, only moved ones stored', async () => {
  assert.equal(
    await aggregateBatches(db, 'g4', 'events', [
      batch(20, 0, ids('a', 5), 'post/4'),
      batch(21, 0, ids('b', 5), 'post/4'),
    ]),
    10,
  );
  // Partition 21 redelivered in part (3, 4 applied before), partition 22 new, 20 all applied before.
  assert.equal(
    await aggregateBatches(db, 'g4', 'events', [
      batch(21, 3, ids('c', 5), 'post/4'),
      batch(22, 0, ids('d', 5), 'post/4'),
      batch(20, 0, ids('e', 5), 'post/4'),
    ]),
    8,
  );
  assert.deepEqual(await summary('post/4'), [{ hour: new Date(HOUR), count: 18, sum_value: 36 }]);
  const offsets = await db.query<{ partition: number; next_offset: number }>(
    "SELECT partition, next_offset FROM consumer_offset WHERE group_id = 'g4' ORDER BY partition",
  );
  assert.deepEqual(
    offsets.map((o) => [o.partition, Number(o.next_offset)]),
    [
      [20, 5],
      [21, 8],
      [22, 5],
    ],
  );
});

test('racing writes of the same partitions in different orders: no deadlock, each event once', async () => {
  const partitions = [30, 31, 32, 33];
  const writes = Array.from({ length: 6 }, (_, w) =>
    // Rotated: each write names the partitions in another order (the lock order must not follow it).
    partitions.map((_, i) => {
      const p = partitions[(i + w) % partitions.length]!;
      return batch(p, 0, ids(`r${w}-${p}-`, 20), 'post/5');
    }),
  );
  const applied = await Promise.all(writes.map((w) => aggregateBatches(db, 'g5', 'events', w)));
  assert.equal(
    applied.reduce((a, b) => a + b, 0),
    partitions.length * 20,
  );
  assert.deepEqual(await summary('post/5'), [{ hour: new Date(HOUR), count: 80, sum_value: 160 }]);
});
