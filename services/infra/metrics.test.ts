import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEmbeddedEventLog } from './log/embedded-event-log.ts';
import { createLogger } from './logger.ts';
import {
  consumerMetrics,
  createMetricsRegistry,
  grpcMetrics,
  httpMethodLabel,
  partitionLag,
  type Registry,
  sqlOperation,
  startLagMonitor,
} from './metrics.ts';

const logger = createLogger('warn');

/** The samples of metric `name` in `registry`: labels and value of each. */
async function samples(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  return (await metric.get()).values;
}

test('instruments are created once per registry and shared by everyone asking for them', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const first = consumerMetrics(registry);
  const second = consumerMetrics(registry);
  assert.equal(first.lag, second.lag);
  assert.equal(first.sinkEvents, second.sinkEvents);
  first.sinkEvents.inc({ sink: 'counter' }, 2);
  second.sinkEvents.inc({ sink: 'counter' }, 3);
  assert.deepEqual(
    (await samples(registry, 'tally_sink_events_total')).map((s) => [s.labels, s.value]),
    [[{ sink: 'counter' }, 5]],
  );

  // Another registry (another process) has instruments of its own.
  const other = createMetricsRegistry({ defaultMetrics: false });
  assert.notEqual(consumerMetrics(other).sinkEvents, first.sinkEvents);
  assert.deepEqual(await samples(other, 'tally_sink_events_total'), []);
  // Only what was asked for is registered.
  assert.equal(registry.getSingleMetric('tally_grpc_requests_total'), undefined);
  grpcMetrics(registry);
  assert.ok(registry.getSingleMetric('tally_grpc_requests_total'));
});

test('a registry carries the event-loop and process metrics under their standard names', async () => {
  const text = await createMetricsRegistry().metrics();
  for (const name of [
    'nodejs_eventloop_lag_p99_seconds',
    'process_cpu_seconds_total',
    'nodejs_heap_size_used_bytes',
  ])
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
  assert.doesNotMatch(await createMetricsRegistry({ defaultMetrics: false }).metrics(), /nodejs_/);
});

test('label values stay within a fixed set whatever the input', () => {
  assert.equal(httpMethodLabel('GET'), 'GET');
  assert.equal(httpMethodLabel('DELETE'), 'DELETE');
  assert.equal(httpMethodLabel('BREW'), 'other');
  assert.equal(httpMethodLabel('get'), 'other');
  assert.equal(httpMethodLabel(undefined), 'other');

  assert.equal(sqlOperation('SELECT 1'), 'select');
  assert.equal(sqlOperation('\n  INSERT INTO event (id) VALUES ($1)'), 'insert');
  assert.equal(sqlOperation('update consumer_offset SET x = 1'), 'update');
  assert.equal(sqlOperation('WITH gone AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM gone'), 'with');
  assert.equal(sqlOperation('BEGIN'), 'begin');
  assert.equal(sqlOperation('COMMIT'), 'commit');
  assert.equal(sqlOperation('CREATE TABLE x (id int)'), 'other');
  assert.equal(sqlOperation('-- a comment\nSELECT 1'), 'other');
  assert.equal(sqlOperation(''), 'other');
});

test('lag counts from the committed offset, or from the log start when there is none', () => {
  const at = (start: bigint, end: bigint, committed: bigint | undefined) =>
    partitionLag({ partition: 0, start, end, committed });
  assert.equal(at(0n, 0n, undefined), 0);
  assert.equal(at(0n, 10n, undefined), 10);
  assert.equal(at(4n, 10n, undefined), 6, 'retention removed the first records');
  assert.equal(at(0n, 10n, 7n), 3);
  assert.equal(at(0n, 10n, 10n), 0);
  assert.equal(at(8n, 10n, 3n), 2, 'committed records that retention removed count from the start');
  assert.equal(at(0n, 10n, 12n), 0, 'never negative');
});

test('the lag monitor samples every partition of a group into the gauge', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-metrics-'));
  const log = createEmbeddedEventLog({ dataDir, logger });
  t.after(async () => {
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const topic = `t-${randomUUID()}`;
  const groupId = `g-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 3 }]);
  await log.producer().send(
    topic,
    Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: Uint8Array.of(i) })),
  );
  const ends = await log.endOffsets(topic);

  const registry = createMetricsRegistry({ defaultMetrics: false });
  const monitor = startLagMonitor({
    log,
    groupId,
    topic,
    intervalMs: 60_000,
    gauge: consumerMetrics(registry).lag,
    logger,
  });
  t.after(() => monitor.stop());
  const lagByPartition = async () => {
    await monitor.sample();
    const values = await samples(registry, 'tally_consumer_lag_messages');
    for (const v of values) assert.deepEqual([v.labels.group, v.labels.topic], [groupId, topic]);
    return new Map(values.map((v) => [Number(v.labels.partition), v.value]));
  };
  assert.deepEqual(await lagByPartition(), new Map([...ends].map(([p, end]) => [p, Number(end)])));

  // The group reads everything and commits: every partition is back to 0.
  const consumer = log.consumer({ groupId, topics: [topic], maxWaitMs: 50 });
  let handled = 0;
  await consumer.run(async (batch) => {
    handled += batch.records.length;
  });
  t.after(() => consumer.stop());
  const deadline = Date.now() + 10_000;
  let lag = await lagByPartition();
  while ([...lag.values()].some((v) => v > 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    lag = await lagByPartition();
  }
  assert.equal(handled, 30);
  assert.deepEqual(lag, new Map([0, 1, 2].map((p) => [p, 0])));

  // A sample that fails (the topic is gone) leaves the last values and does not throw.
  await log.deleteTopics([topic]);
  await monitor.sample();
});
