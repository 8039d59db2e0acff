/**
 * Threshold rules on real Kafka and the 3-master Redis Cluster, with two alerter processes in one
 * consumer group: a hot target's events are spread over six partitions read by both, so both
 * apply to and evaluate its one series (a commit refused because the other changed the series
 * meanwhile is shown deterministically in series-alerts.test.ts). One of them stops mid-stream
 * and the other takes its partitions over. Known answer: the window fires in the even minutes 0,
 * 2, 4, 6 and 8, once each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { MINUTE_MS } from '../domain/alert-detectors.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import { createRedisMilestoneStore } from '../infra/alerts/redis-milestone-store.ts';
import { createRedisSeriesStore } from '../infra/alerts/redis-series-store.ts';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import { realServers, requireRealServers, testNamespace } from '../testing/real-servers.ts';
import { deleteRedisKeys } from '../testing/redis-keys.ts';
import { start } from './alerter.ts';
import { rulesInForce, seriesName, type WatchedWindow } from './watched-rules.ts';

await requireRealServers();

const logger = createLogger('error');
const T0 = Date.UTC(2026, 11, 7, 11, 0);
const M0 = T0 / MINUTE_MS;

test('two alerters evaluating one series on Redis Cluster fire each window once, through a takeover', async (t) => {
  const ns = testNamespace();
  const brokers = realServers.kafkaBrokers.split(',');
  const admin = createKafkaEventLog({ brokers, clientId: 'tally-test', produceTimeoutMs: 10_000, logger });
  await admin.ensureTopics([
    { name: ns.acceptedTopic, partitions: 6 },
    { name: ns.dlqTopic, partitions: 1 },
  ]);
  const rule: WatchedWindow = {
    ruleId: 'ar_hotwindow',
    type: 'like',
    target: 'post/hot',
    measure: 'count',
    window: { threshold: 30, windowMinutes: 1, rearmMinutes: 1 },
    recipients: ['dashboard'],
    notifyOwner: false,
  };
  const redis = { clusterNodes: realServers.redisClusterNodes, keyPrefix: ns.redisPrefix };
  const written: Notification[] = [];
  const processes: { stop(): Promise<void> }[] = [];
  const alerter = async (name: string) => {
    const log = createKafkaEventLog({
      brokers,
      clientId: name,
      produceTimeoutMs: 10_000,
      sessionTimeoutMs: 6_000,
      logger,
    });
    const milestones = createRedisMilestoneStore(redis);
    const series = createRedisSeriesStore(redis);
    const running = await start(
      {
        log,
        logger,
        metrics: createMetricsRegistry({ defaultMetrics: false }),
        milestones,
        series,
        rules: () => rulesInForce({ windows: [rule] }),
        notify: async (notifications) => {
          written.push(...notifications);
        },
      },
      {
        groupId: `${ns.groupPrefix}alerting`,
        eventsTopic: ns.acceptedTopic,
        dlqTopic: ns.dlqTopic,
        maxWaitMs: 50,
        lagIntervalMs: 1_000,
        latenessMs: 60_000,
      },
    );
    const process = {
      async stop() {
        await running.stop();
        await Promise.all([log.close(), milestones.close(), series.close()]);
      },
    };
    processes.push(process);
    return process;
  };
  const reader = createRedisSeriesStore(redis);
  t.after(async () => {
    for (const p of processes) await p.stop().catch(() => {});
    await reader.close();
    await admin.close();
    await deleteRedisKeys(ns.redisPrefix, 'cluster');
  });

  const first = await alerter('alerter-a');
  await alerter('alerter-b');
  let n = 0;
  /** `count` likes in minute `m`, from 12 users (so over every partition), waited for in the series. */
  const minute = async (m: number, count: number) => {
    await admin.producer().send(
      ns.acceptedTopic,
      Array.from({ length: count }, (_, i) => {
        n++;
        const at = T0 + m * MINUTE_MS + Math.floor(((i + 0.5) * MINUTE_MS) / count);
        return {
          key: `u${i % 12}`,
          value: encodeEvent(
            newEvent({
              id: `e${n}`,
              type: 'like',
              target: 'post/hot',
              userId: `u${i % 12}`,
              occurredAt: timestampFromMs(at),
              receivedAt: timestampFromMs(at),
            }),
          ),
        };
      }),
    );
    const last = T0 + m * MINUTE_MS + Math.floor(((count - 0.5) * MINUTE_MS) / count);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [s] = await reader.read([seriesName(rule.ruleId, 'post/hot')]);
      if (s!.latestMs >= last) return;
      if (Date.now() > deadline) throw new Error(`minute ${m} was not applied`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // 40 likes in even minutes, 5 in odd ones: the one-minute window reaches 30 in each even
  // minute, and falls back below (re-arming) in each odd one.
  for (let m = 0; m < 6; m++) await minute(m, m % 2 === 0 ? 40 : 5);
  await first.stop(); // the other takes its partitions over
  for (let m = 6; m < 10; m++) await minute(m, m % 2 === 0 ? 40 : 5);
  await minute(11, 1); // closes minute 9
  const ids = () => new Set(written.map((w) => w.id));
  const deadline = Date.now() + 30_000;
  while (ids().size < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1_000)); // anything more would have come by now
  const minutes = [...ids()]
    .map((id) => Number(id.slice(id.lastIndexOf(':') + 1)) - M0)
    .sort((a, b) => a - b);
  assert.deepEqual(minutes, [0, 2, 4, 6, 8], 'each even minute fired once; no odd minute fired');
  for (const w of written) assert.ok(w.value >= 30 && w.value <= 40, `${w.id}: ${w.value}`);
  const [s] = await reader.read([seriesName(rule.ruleId, 'post/hot')]);
  assert.equal(s!.pending.size, 0, 'every notification written and confirmed');
});
