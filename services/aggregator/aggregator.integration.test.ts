/**
 * The aggregator's exactly-once transaction on a real PostgreSQL: offsets
 * stored with the summaries skip redeliveries, event ids skip client retries.
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
import { aggregateBatch } from './aggregator.ts';

await requireRealServers();

const ns = testNamespace();
const db = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 4 });
const HOUR = Date.UTC(2026, 10, 21, 9);

before(() => migrate(db, ns.pgSchema));
after(async () => {
  await db.query(`DROP SCHEMA IF EXISTS ${ns.pgSchema} CASCADE`);
  await db.close();
});

function batch(partition: number, firstOffset: number, ids: string[], target = 'post/1'): EventBatch {
  return {
    topic: 'events',
    partition,
    lastOffset: BigInt(firstOffset + ids.length - 1),
    events: ids.map((id, i) => ({
      partition,
      offset: BigInt(firstOffset + i),
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

test('a batch is folded into its event-time hour once; its redelivery is skipped by offset', async () => {
  assert.equal(await aggregateBatch(db, 'g1', batch(0, 0, ids('a', 10))), 10);
  // Same offsets, other ids: only the stored offset can tell it was applied.
  assert.equal(await aggregateBatch(db, 'g1', batch(0, 0, ids('b', 10))), 0);
  // Overlapping redelivery: offsets 5..9 applied, 10..14 new.
  assert.equal(await aggregateBatch(db, 'g1', batch(0, 5, ids('c', 10))), 5);
  assert.deepEqual(await summary('post/1'), [{ hour: new Date(HOUR), count: 15, sum_value: 30 }]);
  const [offset] = await db.query<{ next_offset: number }>(
    "SELECT next_offset FROM consumer_offset WHERE group_id = 'g1' AND partition = 0",
  );
  assert.equal(offset?.next_offset, 15);
});

test('a client retry (same ids at new offsets) is skipped by event id, also within one batch', async () => {
  assert.equal(await aggregateBatch(db, 'g2', batch(1, 0, ['x1', 'x2', 'x1'], 'post/2')), 2);
  assert.equal(await aggregateBatch(db, 'g2', batch(1, 3, ['x2', 'x3'], 'post/2')), 1);
  assert.deepEqual(await summary('post/2'), [{ hour: new Date(HOUR), count: 3, sum_value: 6 }]);
});

test('concurrent batches of different partitions on the same summary rows all land', async () => {
  const batches = Array.from({ length: 8 }, (_, p) => batch(10 + p, 0, ids(`p${p}-`, 50), 'post/3'));
  const applied = await Promise.all(batches.map((b) => aggregateBatch(db, 'g3', b)));
  assert.deepEqual(applied, Array(8).fill(50));
  assert.deepEqual(await summary('post/3'), [{ hour: new Date(HOUR), count: 400, sum_value: 800 }]);
});
