/**
 * The persister as the one judge of duplicates, on a real PostgreSQL and Kafka: an id stored
 * before is a retry (same content) or a conflict (other content) unless the stored row is this
 * very record's (a redelivery), and what it accepts reaches the accepted topic partition for
 * partition with its events-topic offset.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { ConsumedRecord } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import { decodeEvent, encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import { EVENT_OFFSET_HEADER, type EventBatch } from '../pipeline/event-consumer.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from '../testing/real-servers.ts';
import { Backends } from '../testing/tally-client.ts';
import { forwardSlices, persistBatches, start } from './persister.ts';

await requireRealServers();

const ns = testNamespace(3);
const db = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 4 });
const backends = new Backends(ns);
const T0 = Date.UTC(2026, 11, 6, 9);

before(() => migrate(db, ns.pgSchema));
after(async () => {
  await db.close();
  await backends.cleanup();
});

interface Spec {
  id: string;
  target?: string;
  value?: number;
  attributes?: Record<string, string>;
}

function eventOf(s: Spec, receivedMs = T0) {
  return newEvent({
    id: s.id,
    type: 'like',
    target: s.target ?? 'post/1',
    userId: 'u1',
    value: s.value,
    attributes: s.attributes ?? {},
    receivedAt: timestampFromMs(receivedMs),
  });
}

/** Events at offsets from `first` of `partition`, as the consumer hands them to the persister. */
function batch(partition: number, first: number, specs: Spec[]): EventBatch {
  return {
    topic: ns.eventsTopic,
    partition,
    lastOffset: BigInt(first + specs.length - 1),
    events: specs.map((s, i) => {
      const offset = BigInt(first + i);
      const event = eventOf(s, T0 + i);
      const record: ConsumedRecord = {
        key: 'u1',
        value: encodeEvent(event),
        headers: {},
        offset,
        timestampMs: T0,
      };
      return { event, partition, offset, position: offset, record };
    }),
  };
}

const summary = (o: Awaited<ReturnType<typeof persistBatches>>) => ({
  accepted: o.accepted.map((e) => `${e.event.id}@${e.partition}:${e.offset}`),
  duplicates: o.duplicates.map(
    (d) =>
      `${d.kind} ${d.id}@${d.partition}:${d.offset} of ${d.storedAt.partition}:${d.storedAt.offset}${d.differs.length ? ` [${d.differs}]` : ''}`,
  ),
});

test('a batch: first sights accepted; a repeat in the batch is a retry or, with other content, a conflict', async () => {
  const outcome = await persistBatches(db, [
    batch(0, 0, [
      { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } },
      { id: 'b' },
      { id: 'a', value: 1, attributes: { w: 'x', k: 'v' } }, // same event: attribute order does not matter
      { id: 'b', target: 'post/2' },
      { id: 'c', value: 2 },
    ]),
  ]);
  assert.deepEqual(summary(outcome), {
    accepted: ['a@0:0', 'b@0:1', 'c@0:4'],
    duplicates: ['retry a@0:2 of 0:0', 'conflict b@0:3 of 0:1 [target]'],
  });
  const [stored] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM event');
  assert.equal(stored?.n, 3);
});

test('its redelivery is accepted again (the stored rows are its own), with the same duplicates', async () => {
  const again = await persistBatches(db, [
    batch(0, 0, [
      { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } },
      { id: 'b' },
      { id: 'a', value: 1, attributes: { w: 'x', k: 'v' } },
      { id: 'b', target: 'post/2' },
      { id: 'c', value: 2 },
    ]),
  ]);
  assert.deepEqual(summary(again), {
    accepted: ['a@0:0', 'b@0:1', 'c@0:4'],
    duplicates: ['retry a@0:2 of 0:0', 'conflict b@0:3 of 0:1 [target]'],
  });
});

test('ids stored by other records: a retry from another partition, conflicts naming every field that differs', async () => {
  const outcome = await persistBatches(db, [
    batch(1, 7, [
      { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } },
      { id: 'c', value: 3, attributes: { k: 'v' } },
      { id: 'd' },
    ]),
  ]);
  assert.deepEqual(summary(outcome), {
    accepted: ['d@1:9'],
    duplicates: ['retry a@1:7 of 0:0', 'conflict c@1:8 of 0:4 [value,attributes]'],
  });
});

test('one write of many partitions: one insert, each partition judged and forwarded in its own order', async () => {
  const outcome = await persistBatches(db, [
    batch(4, 0, [{ id: 'm1' }, { id: 'm2' }, { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } }]),
    batch(5, 3, [{ id: 'm3' }, { id: 'm1' }, { id: 'm4', value: 4 }]),
    batch(6, 0, []),
  ]);
  assert.deepEqual(summary(outcome), {
    accepted: ['m1@4:0', 'm2@4:1', 'm3@5:3', 'm4@5:5'],
    duplicates: ['retry a@4:2 of 0:0', 'retry m1@5:4 of 4:0'],
  });
  const stored = await db.query<{ id: string; log_partition: number; log_offset: string }>(
    "SELECT id, log_partition, log_offset::text FROM event WHERE id LIKE 'm%' ORDER BY id",
  );
  assert.deepEqual(
    stored.map((r) => `${r.id}@${r.log_partition}:${r.log_offset}`),
    ['m1@4:0', 'm2@4:1', 'm3@5:3', 'm4@5:5'],
  );
  // Redelivered together: the same outcome, the rows being its own.
  const again = await persistBatches(db, [
    batch(5, 3, [{ id: 'm3' }, { id: 'm1' }, { id: 'm4', value: 4 }]),
    batch(4, 0, [{ id: 'm1' }, { id: 'm2' }, { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } }]),
  ]);
  assert.deepEqual(summary(again).accepted.sort(), ['m1@4:0', 'm2@4:1', 'm3@5:3', 'm4@5:5']);
});

test('the role forwards what it accepts to the same partition with its offset, counts and logs duplicates', async () => {
  const warnings: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (msg, fields) => warnings.push({ msg, fields }),
    error() {},
    child: () => logger,
  };
  const metrics = createMetricsRegistry();
  await backends.log.ensureTopics([
    { name: ns.eventsTopic, partitions: 3 },
    { name: ns.acceptedTopic, partitions: 3 },
  ]);
  const role = await start(
    { log: backends.log, logger, metrics, sql: db },
    {
      groupId: `${ns.groupPrefix}group_persistence`,
      eventsTopic: ns.eventsTopic,
      acceptedTopic: ns.acceptedTopic,
      eventRetentionDays: 0,
      dlqTopic: ns.dlqTopic,
      maxWaitMs: 100,
      lagIntervalMs: 60_000,
    },
  );
  after(() => role.stop());
  const send = (specs: Spec[], partition: number) =>
    backends.log.producer().send(
      ns.eventsTopic,
      specs.map((s) => ({
        key: 'k',
        partition,
        value: encodeEvent(eventOf(s)),
        headers: { traceparent: 'kept' },
      })),
    );
  // 'a' and 'c' were stored by the tests above: a retry and a conflict; 'e', 'f', 'g' are new.
  await send([{ id: 'e' }, { id: 'a', value: 1, attributes: { k: 'v', w: 'x' } }, { id: 'f' }], 2);
  await send([{ id: 'c', target: 'secret-target', value: 2 }, { id: 'g' }], 1);

  const forwarded: { partition: number; record: ConsumedRecord }[] = [];
  const reader = backends.log.consumer({
    groupId: `${ns.groupPrefix}accepted-reader`,
    topics: [ns.acceptedTopic],
    fromBeginning: true,
    maxWaitMs: 200,
  });
  await reader.run(async (b) => {
    for (const record of b.records) forwarded.push({ partition: b.partition, record });
  });
  try {
    await waitFor(
      () => forwarded.length >= 3,
      () => `${forwarded.length} of 3 accepted records`,
      60_000,
    );
  } finally {
    await reader.stop();
  }
  assert.deepEqual(
    forwarded
      .map(({ partition, record }) => ({
        id: decodeEvent(record.value).id,
        partition,
        position: record.headers[EVENT_OFFSET_HEADER],
        traceparent: record.headers.traceparent,
      }))
      .sort((x, y) => x.id.localeCompare(y.id)),
    [
      { id: 'e', partition: 2, position: '0', traceparent: 'kept' },
      { id: 'f', partition: 2, position: '2', traceparent: 'kept' },
      { id: 'g', partition: 1, position: '1', traceparent: 'kept' },
    ],
  );
  const text = await metrics.metrics();
  assert.match(text, /tally_duplicate_events_total\{kind="retry"\} 1\n/);
  assert.match(text, /tally_duplicate_events_total\{kind="conflict"\} 1\n/);
  const conflict = warnings.find((w) => w.msg.startsWith('event ids reused'));
  assert.ok(conflict, `a conflict is logged: ${JSON.stringify(warnings)}`);
  assert.deepEqual(conflict.fields?.conflicts, [
    { id: 'c', offset: '0', stored: '0:4', differs: ['target'] },
  ]);
  assert.doesNotMatch(JSON.stringify(warnings), /secret-target/, 'the log names fields, never their values');
});

test("a batch larger than Kafka's largest message is forwarded whole, in several writes", async (t) => {
  // A backlog: the consumer fetches up to 1 MiB of one partition at once, and forwarding those
  // records with a header each made one write of more than the broker's message.max.bytes
  // (1 MiB by default), refused every time: the batch was redelivered for ever.
  const record = (bytes: number) => ({ key: 'k', value: new Uint8Array(bytes) });
  const slices = forwardSlices([record(100), record(100), record(300), record(50)], 300);
  assert.deepEqual(
    slices.map((slice) => slice.map((r) => r.value.byteLength)),
    [[100, 100], [300], [50]],
    'in order, each slice under the bound, a record over it alone',
  );
  const events = `${ns.eventsTopic}-big`;
  const accepted = `${ns.acceptedTopic}-big`;
  await backends.log.ensureTopics([
    { name: events, partitions: 1 },
    { name: accepted, partitions: 1 },
  ]);
  t.after(() => backends.log.deleteTopics([events, accepted]));
  const count = 6000;
  const padding = 'x'.repeat(160);
  for (let i = 0; i < count; i += 500)
    await backends.log.producer().send(
      events,
      Array.from({ length: 500 }, (_, j) => ({
        key: 'k',
        value: encodeEvent(eventOf({ id: `big-${i + j}`, attributes: { padding } })),
      })),
    );
  const role = await start(
    {
      log: backends.log,
      logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as Logger },
      metrics: createMetricsRegistry(),
      sql: db,
    },
    {
      groupId: `${ns.groupPrefix}big`,
      eventsTopic: events,
      acceptedTopic: accepted,
      eventRetentionDays: 0,
      dlqTopic: ns.dlqTopic,
      maxWaitMs: 100,
      lagIntervalMs: 60_000,
    },
  );
  t.after(() => role.stop());
  let forwarded = 0n;
  await waitFor(
    async () => {
      forwarded = (await backends.log.endOffsets(accepted)).get(0) ?? 0n;
      return forwarded >= BigInt(count);
    },
    () => `${forwarded} of ${count} events forwarded`,
    60_000,
  );
  assert.equal(forwarded, BigInt(count));
});

test('the role refuses to start when the accepted topic has fewer partitions than the events topic', async () => {
  const narrow = `${ns.acceptedTopic}-narrow`;
  await backends.log.ensureTopics([{ name: narrow, partitions: 1 }]);
  after(() => backends.log.deleteTopics([narrow]));
  await assert.rejects(
    start(
      {
        log: backends.log,
        logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as Logger },
        metrics: createMetricsRegistry(),
        sql: db,
      },
      {
        groupId: `${ns.groupPrefix}narrow`,
        eventsTopic: ns.eventsTopic,
        acceptedTopic: narrow,
        eventRetentionDays: 0,
        dlqTopic: ns.dlqTopic,
        maxWaitMs: 100,
        lagIntervalMs: 60_000,
      },
    ),
    /has 1 partitions and the events topic .* has 3/,
  );
});
