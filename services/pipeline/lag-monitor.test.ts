import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { consumerMetrics, createMetricsRegistry, type Registry } from '../infra/metrics.ts';
import { partitionLag, startLagMonitor } from './lag-monitor.ts';

const logger = createLogger('warn');

/** The samples of metric `name` in `registry`: labels and value of each. */
async function samples(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  return (await metric.get()).values;
}

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

test('the lag monitor samples every partition of a group into the gauge, and a failed sample keeps the last values', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-lag-'));
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

  // The monitor reads offsets through a log whose offset reads can be made to fail.
  let failing = false;
  let failedReads = 0;
  const flaky = {
    groupOffsets: (group: string, of: string) => {
      if (!failing) return log.groupOffsets(group, of);
      failedReads++;
      return Promise.reject(new Error('broker unreachable'));
    },
  } as EventLog;
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const monitor = startLagMonitor({
    log: flaky,
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
  const initial = new Map([...ends].map(([p, end]) => [p, Number(end)]));
  assert.deepEqual(await lagByPartition(), initial);
  assert.ok(
    [...initial.values()].every((v) => v > 0),
    'every partition has records',
  );

  // A sample that fails neither throws nor clears the gauge: the last values stay.
  failing = true;
  assert.deepEqual(await lagByPartition(), initial);
  assert.equal(failedReads, 1, 'the sample did read, and failed');
  failing = false;

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
});
