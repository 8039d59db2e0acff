import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, Code } from '../infra/app-error.ts';
import type { LogProducer, LogRecord } from '../infra/log/event-log.ts';
import { createMetricsRegistry, produceMetrics } from '../infra/metrics.ts';
import { BatchingProducer } from './batching-producer.ts';

const record = (n: number): LogRecord => ({ key: `k${n}`, value: Uint8Array.of(n) });

/** A log whose sends wait until released; it records what was sent (and each send as it starts), in order. */
function gatedLog() {
  const sent: number[][] = [];
  const started: number[][] = [];
  let release: () => void = () => {};
  let gate = new Promise<void>((r) => {
    release = r;
  });
  const log: LogProducer = {
    async send(_topic, records) {
      started.push(records.map((r) => r.value[0]!));
      await gate;
      sent.push(records.map((r) => r.value[0]!));
    },
  };
  return {
    log,
    sent,
    started,
    open: () => release(),
    close: () => {
      gate = new Promise<void>((r) => {
        release = r;
      });
    },
  };
}

test('appends are gathered into ordered sends and each resolves once acknowledged', async () => {
  const gated = gatedLog();
  gated.open();
  const producer = new BatchingProducer(gated.log, {
    topic: 't',
    lingerMs: 5,
    maxBatchRecords: 3,
    timeoutMs: 5_000,
  });
  await Promise.all([1, 2, 3, 4, 5].map((n) => producer.append([record(n)])));
  assert.deepEqual(gated.sent.flat(), [1, 2, 3, 4, 5]);
  assert.ok(gated.sent.every((batch) => batch.length <= 3));
});

test('a log that does not answer fails every append within the timeout; what never left is never sent', async () => {
  const gated = gatedLog();
  const producer = new BatchingProducer(gated.log, {
    topic: 't',
    lingerMs: 1,
    maxBatchRecords: 1,
    timeoutMs: 400,
  });
  const started = Date.now();
  const results = await Promise.allSettled([1, 2, 3].map((n) => producer.append([record(n)])));
  const elapsed = Date.now() - started;
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok((r as PromiseRejectedResult).reason instanceof AppError);
    assert.equal(((r as PromiseRejectedResult).reason as AppError).code, Code.UNAVAILABLE);
  }
  // One after another would take 3 × 400 ms: each append has its own deadline.
  assert.ok(elapsed < 1_100, `all three answered in ${elapsed} ms, not one timeout after another`);
  gated.open();
  await producer.flush();
  assert.deepEqual(gated.sent, [[1]], 'only the record already in flight reached the log');
  await producer.append([record(4)]);
  assert.deepEqual(gated.sent, [[1], [4]]);
});

test('each write is observed: its events, its duration, and a failure', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const metrics = produceMetrics(registry);
  let fail = false;
  const sizes: number[] = [];
  const producer = new BatchingProducer(
    {
      async send(_topic, records) {
        if (fail) throw new AppError(Code.UNAVAILABLE, 'the log is away (a test failure on purpose)');
        sizes.push(records.length);
      },
    },
    { topic: 't', lingerMs: 5, maxBatchRecords: 3, timeoutMs: 5_000, metrics },
  );
  await Promise.all([1, 2, 3, 4, 5].map((n) => producer.append([record(n)])));
  fail = true;
  await assert.rejects(producer.append([record(6)]));

  const values = async (name: string) => (await registry.getSingleMetric(name)!.get()).values;
  const sample = async (name: string, metricName: string) =>
    (await values(name)).find((v) => (v as { metricName?: string }).metricName === metricName)?.value;
  const writes = sizes.length + 1;
  assert.equal(
    await sample('tally_kafka_produce_batch_events', 'tally_kafka_produce_batch_events_count'),
    writes,
  );
  assert.equal(await sample('tally_kafka_produce_batch_events', 'tally_kafka_produce_batch_events_sum'), 6);
  assert.equal(
    await sample('tally_kafka_produce_duration_seconds', 'tally_kafka_produce_duration_seconds_count'),
    writes,
  );
  assert.deepEqual(
    (await values('tally_kafka_produce_failures_total')).map((v) => v.value),
    [1],
  );
});

test('adaptive: from idle a send goes at once; while one is in flight appends gather and go together when it returns', async () => {
  const gated = gatedLog();
  const producer = new BatchingProducer(gated.log, {
    topic: 't',
    lingerMs: 0,
    maxBatchRecords: 100,
    timeoutMs: 5_000,
  });
  // Idle: the first append is sent without waiting for anything but this turn of the event loop.
  const first = producer.append([record(1)]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(gated.started, [[1]], 'sent at once, not after a linger');
  // In flight (the log holds its answer): the next appends wait and gather.
  const more = [2, 3, 4].map((n) => producer.append([record(n)]));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(gated.started, [[1]], 'nothing more while a send is in flight');
  gated.open();
  await Promise.all([first, ...more]);
  assert.deepEqual(gated.sent, [[1], [2, 3, 4]], 'what gathered went out as one send');
});

test('lingerMs > 0 waits that long before a send from idle, gathering what comes meanwhile', async () => {
  const gated = gatedLog();
  gated.open();
  const producer = new BatchingProducer(gated.log, {
    topic: 't',
    lingerMs: 50,
    maxBatchRecords: 100,
    timeoutMs: 5_000,
  });
  const first = producer.append([record(1)]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(gated.started, [], 'still lingering');
  await Promise.all([first, producer.append([record(2)])]);
  assert.deepEqual(gated.sent, [[1, 2]]);
});

test('a send stays under maxBatchBytes: appends beyond it wait for the next send', async () => {
  const gated = gatedLog();
  gated.open();
  const producer = new BatchingProducer(gated.log, {
    topic: 't',
    lingerMs: 0,
    maxBatchRecords: 100,
    maxBatchBytes: 1_000,
    timeoutMs: 5_000,
  });
  const big = (n: number): LogRecord => ({ key: `k${n}`, value: new Uint8Array(400).fill(n) });
  await Promise.all([1, 2, 3, 4, 5].map((n) => producer.append([big(n)])));
  // About 430 bytes each: two fit in 1,000, a third does not.
  assert.deepEqual(gated.sent, [[1, 2], [3, 4], [5]]);
});
