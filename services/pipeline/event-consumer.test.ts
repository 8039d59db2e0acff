/**
 * The consumer loop's metrics on the embedded event log: batches, events each
 * sink holds, their visible latency, dead-lettered records by reason, failed
 * batches, and the group's lag back to 0 once it caught up.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry, type Registry } from '../infra/metrics.ts';
import { encodeEvent, newEvent } from './event-codec.ts';
import { type EventBatch, startEventConsumer, WriteGatherer } from './event-consumer.ts';

const logger = createLogger('error');

/** Sum of the samples of `name` (a histogram's `_count` or `_sum` with `suffix`) matching `labels`. */
async function value(registry: Registry, name: string, labels: Record<string, string>, suffix = '') {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  let total = 0;
  for (const s of (await metric.get()).values) {
    if (suffix !== '' && (s as { metricName?: string }).metricName !== `${name}${suffix}`) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 15_000; // Date is mocked in the test below
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** An embedded log in a directory of its own, with a topic of `partitions` and its dead-letter topic. */
async function embeddedLog(t: { after(fn: () => Promise<void>): void }, partitions: number) {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-consumer-'));
  const log = createEmbeddedEventLog({ dataDir, logger });
  t.after(async () => {
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const topic = `t-${randomUUID()}`;
  const dlqTopic = `${topic}.dlq`;
  await log.ensureTopics([
    { name: topic, partitions },
    { name: dlqTopic, partitions: 1 },
  ]);
  return { log, topic, dlqTopic };
}

test('a consumer counts its batches, the events its sink holds, their latency, and dead letters by reason', async (t) => {
  const { log, topic, dlqTopic } = await embeddedLog(t, 2);
  const groupId = `g-${randomUUID()}`;
  // Date is mocked (timers are not): the log stamps every record at `now`, and the consumer sees
  // them 1.5 s later, so each event's visible latency is exactly 1.5 s.
  const now = Date.now();
  mock.timers.enable({ apis: ['Date'], now });
  t.after(() => mock.timers.reset());
  const good = (i: number) => ({
    key: `u${i % 4}`,
    value: encodeEvent(
      newEvent({
        id: `e${i}`,
        type: 'CLICK',
        target: 'a',
        userId: `u${i % 4}`,
        receivedAt: timestampFromMs(now),
      }),
    ),
  });
  const invalid = encodeEvent(
    newEvent({ id: 'bad', type: '', target: 'a', receivedAt: timestampFromMs(now) }),
  );
  await log
    .producer()
    .send(topic, [
      ...Array.from({ length: 20 }, (_, i) => good(i)),
      { key: 'u0', value: Uint8Array.from([0x0a, 0xff, 0x01]) },
      { key: 'u1', value: invalid },
      { key: 'u2', value: invalid },
    ]);

  mock.timers.setTime(now + 1_500);
  const registry = createMetricsRegistry({ defaultMetrics: false });
  let failOnce = true;
  let held = 0;
  const consumer = await startEventConsumer({
    name: 'test-sink',
    log,
    logger,
    groupId,
    topic,
    dlqTopic,
    maxWaitMs: 50,
    lagIntervalMs: 100,
    metrics: registry,
    sink: async (batches: readonly EventBatch[]) => {
      if (failOnce) {
        failOnce = false;
        throw new Error('the sink is down (a test failure on purpose)');
      }
      for (const batch of batches) held += batch.events.length;
    },
  });
  t.after(() => consumer.stop());

  await until(async () => held >= 20, '20 events held');
  const sink = { sink: 'test-sink' };
  const group = { group: groupId };
  assert.equal(await value(registry, 'tally_sink_events_total', sink), 20);
  assert.equal(await value(registry, 'tally_sink_visible_latency_seconds', sink, '_count'), 20);
  assert.equal(await value(registry, 'tally_sink_visible_latency_seconds', sink, '_sum'), 20 * 1.5);
  // The failed batch is redelivered, and its poison records dead-lettered again: the counts match the topic.
  const undecodable = await value(registry, 'tally_dlq_records_total', { ...group, reason: 'undecodable' });
  const invalidCount = await value(registry, 'tally_dlq_records_total', { ...group, reason: 'invalid' });
  assert.ok(undecodable >= 1 && invalidCount >= 2, `${undecodable} undecodable, ${invalidCount} invalid`);
  let dead = 0n;
  for (const end of (await log.endOffsets(dlqTopic)).values()) dead += end;
  assert.equal(undecodable + invalidCount, Number(dead));
  assert.equal(await value(registry, 'tally_consumer_batch_failures_total', group), 1);
  const batches = await value(registry, 'tally_consumer_batch_events', group, '_count');
  assert.ok(batches >= 2, `${batches} batches: a failed one and its redelivery at least`);
  assert.equal(await value(registry, 'tally_consumer_batch_duration_seconds', group, '_count'), batches);
  // Every record of every batch handed over, the failed one included.
  assert.ok((await value(registry, 'tally_consumer_batch_events', group, '_sum')) >= 23);

  await until(async () => {
    const lag = (await registry.getSingleMetric('tally_consumer_lag_messages')?.get())?.values ?? [];
    return lag.length === 2 && lag.every((s) => s.value === 0 && s.labels.group === groupId);
  }, 'the lag of both partitions back to 0');
});

test('pacing: a small batch of a partition starts no sooner than paceMs after the previous one', async (t) => {
  const { log, topic, dlqTopic } = await embeddedLog(t, 1);
  const starts: number[] = [];
  const consumer = await startEventConsumer({
    name: 'paced',
    log,
    logger,
    metrics: createMetricsRegistry({ defaultMetrics: false }),
    groupId: `g-${randomUUID()}`,
    topic,
    dlqTopic,
    maxWaitMs: 50,
    lagIntervalMs: 60_000,
    paceMs: 300,
    sink: async () => {
      starts.push(performance.now());
    },
  });
  t.after(() => consumer.stop());
  const send = (i: number) =>
    log.producer().send(topic, [
      {
        key: 'u',
        value: encodeEvent(
          newEvent({
            id: `e${i}`,
            type: 'CLICK',
            target: 'x',
            userId: 'u',
            receivedAt: timestampFromMs(Date.now()),
          }),
        ),
      },
    ]);
  // Each record is sent once the previous one was handled: unpaced, each would be a batch at once.
  for (let i = 0; i < 3; i++) {
    await send(i);
    await until(async () => starts.length > i, `batch ${i}`);
  }
  for (let i = 1; i < starts.length; i++)
    assert.ok(
      starts[i]! - starts[i - 1]! >= 290,
      `batch ${i} started ${starts[i]! - starts[i - 1]!} ms after the one before`,
    );
});

/** A batch of `partition` with no events, for the gatherer's tests. */
const emptyBatch = (partition: number, topic = 't'): EventBatch => ({
  topic,
  partition,
  lastOffset: 0n,
  events: [],
});

test('gathering: batches submitted in one turn make one write, one batch per partition', async () => {
  const writes: string[][] = [];
  const gatherer = new WriteGatherer(async (gathered) => {
    writes.push(gathered.map((g) => `${g.batch.topic}/${g.batch.partition}`));
  });
  const submit = (partition: number, topic?: string) =>
    gatherer.submit({ batch: emptyBatch(partition, topic), span: undefined });
  // Partition 1 twice: its second batch waits for the next write, after its first.
  await Promise.all([submit(0), submit(1), submit(2), submit(1), submit(1, 'other')]);
  assert.deepEqual(writes, [['t/0', 't/1', 't/2', 'other/1'], ['t/1']]);
});

test('gathering: one write at a time; what arrives while it is out goes in the next, together', async () => {
  const writes: number[][] = [];
  let release!: () => void;
  const first = new Promise<void>((resolve) => {
    release = resolve;
  });
  const gatherer = new WriteGatherer(async (gathered) => {
    writes.push(gathered.map((g) => g.batch.partition));
    if (writes.length === 1) await first;
  });
  const submit = (partition: number) => gatherer.submit({ batch: emptyBatch(partition), span: undefined });
  const a = submit(0);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 10));
  const later = [submit(1), submit(2)];
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(writes, [[0]], 'no second write while the first is out');
  release();
  await Promise.all([a, ...later]);
  assert.deepEqual(writes, [[0], [1, 2]]);
});

test("gathering: a failed write fails each of its batches and no other write's", async () => {
  let calls = 0;
  const gatherer = new WriteGatherer(async () => {
    calls++;
    if (calls === 1) throw new Error('the sink is down (a test failure on purpose)');
  });
  const submit = (partition: number) => gatherer.submit({ batch: emptyBatch(partition), span: undefined });
  const firstWrite = [submit(0), submit(1)];
  const results = await Promise.allSettled(firstWrite);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
  await submit(0);
  assert.equal(calls, 2);
});
