/**
 * The alerter's milestones on the embedded log and the embedded milestone store: every threshold
 * crossed raises its notification, under one id, through a failed write of the notifications, a
 * failed confirmation and a restart — written again at worst, never lost.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createEmbeddedMilestoneStore } from '../infra/alerts/embedded-milestone-store.ts';
import { createEmbeddedSeriesStore } from '../infra/alerts/embedded-series-store.ts';
import type { MilestoneStore } from '../infra/alerts/milestone-store.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import { start } from './alerter.ts';
import { rulesInForce, type WatchedMilestone, watches } from './watched-rules.ts';

const logger = createLogger('error');

const LIKES: WatchedMilestone = {
  ruleId: 'likes',
  type: 'like',
  targetPrefix: 'post/',
  thresholds: [100, 200],
  recipients: ['dashboard'],
  notifyOwner: true,
};

test('a rule watches its type on its target or on targets with its prefix', () => {
  assert.ok(watches(LIKES, 'like', 'post/1'));
  assert.ok(!watches(LIKES, 'like', 'page/1'));
  assert.ok(!watches(LIKES, 'view', 'post/1'));
  const one = { ...LIKES, targetPrefix: undefined, target: 'post/7' };
  assert.ok(watches(one, 'like', 'post/7'));
  assert.ok(!watches(one, 'like', 'post/70'));
});

test('milestones raise one notification id each through failed writes, a failed confirmation and a restart', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-alerter-'));
  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger });
  const topic = `accepted-${randomUUID()}`;
  await log.ensureTopics([
    { name: topic, partitions: 3 },
    { name: `${topic}.dlq`, partitions: 1 },
  ]);
  t.after(async () => {
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  let n = 0;
  const send = (target: string, count: number, owner: string) =>
    log.producer().send(
      topic,
      Array.from({ length: count }, () => {
        n++;
        return {
          key: `u${n % 10}`,
          value: encodeEvent(
            newEvent({
              id: `e${n}`,
              type: 'like',
              target,
              userId: `u${n % 10}`,
              attributes: { owner },
              receivedAt: timestampFromMs(Date.UTC(2026, 11, 6, 12)),
            }),
          ),
        };
      }),
    );
  await send('post/1', 150, 'alice');
  await send('post/2', 120, 'bob');
  await send('page/1', 500, 'carol'); // not watched

  const milestones = createEmbeddedMilestoneStore({ dataDir: join(dataDir, 'milestones') });
  // The notifications' writes fail once, then the store's confirmation fails once: each failure
  // leaves the batch uncommitted, to be redelivered.
  const written: Notification[] = [];
  let writeFailures = 1;
  let confirmFailures = 1;
  const flaky: MilestoneStore = {
    ...milestones,
    apply: (increments) => milestones.apply(increments),
    inspect: (series) => milestones.inspect(series),
    confirm: async (crossings) => {
      if (confirmFailures-- > 0) throw new Error('the store is down (a test failure on purpose)');
      await milestones.confirm(crossings);
    },
  };
  const run = () =>
    start(
      {
        log,
        logger,
        metrics: createMetricsRegistry({ defaultMetrics: false }),
        milestones: flaky,
        series: createEmbeddedSeriesStore({ dataDir: join(dataDir, 'series') }),
        rules: () => rulesInForce({ milestones: [LIKES] }),
        notify: async (notifications) => {
          if (writeFailures-- > 0) throw new Error('Kafka is down (a test failure on purpose)');
          written.push(...notifications);
        },
      },
      {
        groupId: 'group_alerting',
        eventsTopic: topic,
        dlqTopic: `${topic}.dlq`,
        maxWaitMs: 20,
        lagIntervalMs: 1_000,
      },
    );
  const ids = () => new Set(written.map((w) => w.id));
  const waitFor = async (count: number) => {
    const deadline = Date.now() + 20_000;
    while (ids().size < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };

  let alerter = await run();
  await waitFor(2);
  await alerter.stop();
  // A restart, and more likes: post/1 reaches 200, post/2 stays below it.
  alerter = await run();
  await send('post/1', 60, 'alice');
  await send('post/2', 10, 'bob');
  await waitFor(3);
  await new Promise((r) => setTimeout(r, 300)); // anything more would have come by now
  await alerter.stop();

  const byId = new Map(written.map((w) => [w.id, w]));
  assert.deepEqual([...byId.values()].map((w) => [w.target, w.threshold]).sort(), [
    ['post/1', 100],
    ['post/1', 200],
    ['post/2', 100],
  ]);
  const first = [...byId.values()].find((w) => w.target === 'post/1' && w.threshold === 100)!;
  assert.equal(first.kind, 'milestone');
  assert.equal(first.ruleId, 'likes');
  assert.equal(first.value >= 100, true);
  assert.deepEqual(first.recipients, ['dashboard', 'user:alice']);
  assert.match(first.message, /post\/1 reached 100 like events/);
  assert.ok(writeFailures < 0, 'the failed write happened');
  assert.ok(confirmFailures < 0, 'the failed confirmation happened');
  assert.deepEqual(await milestones.inspect(`likes\u0000post/1`), {
    count: 210,
    notifiedUpTo: 200,
    pending: [],
  });
  assert.deepEqual(await milestones.inspect(`likes\u0000post/2`), {
    count: 130,
    notifiedUpTo: 100,
    pending: [],
  });
});
