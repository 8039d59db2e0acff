/**
 * Threshold and spike rules through the alerter, on the embedded log and stores, against scripted
 * event streams with known answers: by event time, out of order across partitions, late within
 * the lateness bound (counted) and beyond it (not), re-arming, one alert per spike, and a restart
 * mid-stream that raises nothing twice.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { MINUTE_MS } from '../domain/alert-detectors.ts';
import { createEmbeddedMilestoneStore } from '../infra/alerts/embedded-milestone-store.ts';
import { createEmbeddedSeriesStore } from '../infra/alerts/embedded-series-store.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import type { SeriesIncrement, SeriesStore } from '../infra/alerts/series-store.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry, type Registry } from '../infra/metrics.ts';
import { encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';
import { start } from './alerter.ts';
import { evaluateSeries, seriesIncrements } from './series-evaluation.ts';
import { rulesInForce, seriesName, type WatchedSpike, type WatchedWindow } from './watched-rules.ts';

const logger = createLogger('error');
/** Minute 0 of the scripts: 2026-12-07 10:00 UTC. */
const T0 = Date.UTC(2026, 11, 7, 10, 0);
const M0 = T0 / MINUTE_MS;

interface Scripted {
  type: string;
  target: string;
  userId: string;
  /** Milliseconds after T0. */
  atMs: number;
  value?: number;
  owner?: string;
}

/** An alerter on a fresh embedded log and stores, and the means to script its input. */
async function harness(t: TestContext, rules: { windows?: WatchedWindow[]; spikes?: WatchedSpike[] }) {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-series-alerts-'));
  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger });
  const topic = `accepted-${randomUUID()}`;
  await log.ensureTopics([
    { name: topic, partitions: 3 },
    { name: `${topic}.dlq`, partitions: 1 },
  ]);
  const series = createEmbeddedSeriesStore({ dataDir: join(dataDir, 'series') });
  const milestones = createEmbeddedMilestoneStore({ dataDir: join(dataDir, 'milestones') });
  const written: Notification[] = [];
  // One registry across restarts: its counters add up over the whole script.
  const metrics: Registry = createMetricsRegistry({ defaultMetrics: false });
  let running: Awaited<ReturnType<typeof start>> | undefined;
  const run = async () => {
    running = await start(
      {
        log,
        logger,
        metrics,
        milestones,
        series,
        rules: () => rulesInForce(rules),
        notify: async (notifications) => {
          written.push(...notifications);
        },
      },
      {
        groupId: 'group_alerting',
        eventsTopic: topic,
        dlqTopic: `${topic}.dlq`,
        maxWaitMs: 20,
        lagIntervalMs: 1_000,
        latenessMs: 60_000,
      },
    );
  };
  t.after(async () => {
    await running?.stop();
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  let n = 0;
  /** Sends the events, each keyed by its user (so spread over the partitions). */
  const send = async (events: readonly Scripted[]) => {
    await log.producer().send(
      topic,
      events.map((e) => {
        n++;
        return {
          key: e.userId,
          value: encodeEvent(
            newEvent({
              id: `e${n}`,
              type: e.type,
              target: e.target,
              userId: e.userId,
              ...(e.value === undefined ? {} : { value: e.value }),
              attributes: e.owner ? { owner: e.owner } : {},
              occurredAt: timestampFromMs(T0 + e.atMs),
              receivedAt: timestampFromMs(T0 + e.atMs),
            }),
          ),
        };
      }),
    );
  };
  return {
    run,
    stop: async () => {
      await running?.stop();
      running = undefined;
    },
    send,
    written,
    series,
    late: async () =>
      (await metrics.getSingleMetric('tally_alert_late_events_total')?.get())?.values[0]?.value ?? 0,
  };
}

/** Waits until `series` has taken `events` events in all (by the sum of its minutes' totals, counts). */
async function untilApplied(store: SeriesStore, series: string, check: (latestMs: number) => boolean) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [s] = await store.read([series]);
    if (check(s!.latestMs)) return;
    if (Date.now() > deadline) throw new Error(`series ${series} did not reach its expected latest time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `count` events of `type` on `target` spread evenly over minute `minute` (after T0), users u0..u5. */
function minuteOfEvents(
  type: string,
  target: string,
  minute: number,
  count: number,
  extra: Partial<Scripted> = {},
) {
  return Array.from(
    { length: count },
    (_, i): Scripted => ({
      type,
      target,
      userId: `u${i % 6}`,
      atMs: minute * MINUTE_MS + Math.floor(((i + 0.5) * MINUTE_MS) / count),
      ...extra,
    }),
  );
}

const byId = (written: readonly Notification[]) => new Map(written.map((n) => [n.id, n]));
const settle = () => new Promise((r) => setTimeout(r, 400)); // anything more would have come by now

test('a count over a window fires on its rising edge, counts late events within the bound, not beyond it, and re-arms', async (t) => {
  const comments: WatchedWindow = {
    ruleId: 'ar_comments0',
    type: 'comment',
    targetPrefix: 'post/',
    measure: 'count',
    window: { threshold: 10, windowMinutes: 5, rearmMinutes: 5 },
    recipients: ['dashboard'],
    notifyOwner: true,
  };
  const h = await harness(t, { windows: [comments] });
  await h.run();
  const series = seriesName(comments.ruleId, 'post/1');
  const latest = (ms: number) => untilApplied(h.series, series, (l) => l >= T0 + ms);

  // Minutes 0-3: 2 a minute (window totals 2, 4, 6, 8); then minute 4's last event, before its
  // first two (out of order: the window holds 9); then an event of minute 3 that comes late but
  // within the bound (the latest is in minute 4, so minutes up to 2 are closed): ten.
  await h.send([...minuteOfEvents('comment', 'post/1', 0, 2), ...minuteOfEvents('comment', 'post/1', 1, 2)]);
  await h.send([...minuteOfEvents('comment', 'post/1', 2, 2), ...minuteOfEvents('comment', 'post/1', 3, 2)]);
  await h.send(minuteOfEvents('comment', 'post/2', 0, 30)); // another target: its own series
  await latest(3 * MINUTE_MS);
  const onPost1 = () => h.written.filter((n) => n.target === 'post/1');
  assert.equal(onPost1().length, 0, 'eight in the window: below the threshold');
  const minute4 = minuteOfEvents('comment', 'post/1', 4, 3, { owner: 'alice' });
  await h.send(minute4.slice(2));
  await latest(4 * MINUTE_MS + 50_000);
  await settle();
  assert.equal(onPost1().length, 0, 'nine');
  await h.send([
    { type: 'comment', target: 'post/1', userId: 'u9', atMs: 3 * MINUTE_MS + 59_000, owner: 'alice' },
  ]);
  const deadline = Date.now() + 20_000;
  while (!h.written.some((n) => n.target === 'post/1') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  await settle();
  const fired = onPost1();
  assert.equal(fired.length, 1, JSON.stringify(fired));
  const first = fired[0]!;
  assert.equal(first.id.startsWith(`threshold:${comments.ruleId}:`), true);
  assert.equal(first.id.endsWith(`:${M0 + 4}`), true, 'fired in minute 4, the window 0-4');
  assert.equal(first.kind, 'threshold');
  assert.equal(first.value, 10);
  assert.equal(first.threshold, 10);
  assert.equal(first.windowMinutes, 5);
  assert.equal(first.occurredAt.getTime(), T0 + 4 * MINUTE_MS);
  assert.deepEqual(first.recipients, ['dashboard', 'user:alice']);
  assert.match(first.message, /^post\/1: 10 comment events in 5 min \(threshold 10\)$/);
  // Minute 4's first two events: twelve, still above: no second alert.
  await h.send(minute4.slice(0, 2));
  // post/2 took 30 in minute 0: its own window fired, once.
  assert.equal(h.written.filter((n) => n.target === 'post/2').length, 1);

  // Too late: minute 1's event arrives while the latest is minute 4 and minute 2 is closed.
  await h.send([{ type: 'comment', target: 'post/1', userId: 'u8', atMs: 1 * MINUTE_MS + 5_000 }]);
  // More in minute 5 keep the window at the threshold: no second alert (a level, not an edge).
  await h.send(minuteOfEvents('comment', 'post/1', 5, 4));
  await latest(5 * MINUTE_MS + 45_000);
  await settle();
  assert.equal(h.written.filter((n) => n.target === 'post/1').length, 1, 'above the threshold: one alert');
  assert.equal(await h.late(), 1, 'the event behind the closed minute was counted late');

  // A restart mid-stream; then quiet minutes 6-12 (one event a minute) take the window below the
  // threshold, re-arming the rule (more than 5 minutes after it fired); then minute 14 takes 12.
  await h.stop();
  await h.run();
  for (let m = 6; m <= 13; m++) await h.send(minuteOfEvents('comment', 'post/1', m, 1));
  await h.send(minuteOfEvents('comment', 'post/1', 14, 12));
  await latest(14 * MINUTE_MS + 50_000);
  const deadline2 = Date.now() + 20_000;
  while (h.written.filter((n) => n.target === 'post/1').length < 2 && Date.now() < deadline2)
    await new Promise((r) => setTimeout(r, 20));
  await settle();
  const again = [...byId(h.written).values()].filter((n) => n.target === 'post/1');
  assert.deepEqual(
    again.map((n) => n.id.slice(n.id.lastIndexOf(':') + 1)),
    [String(M0 + 4), String(M0 + 14)],
    'fired again once re-armed, in the minute the window reached ten again',
  );
  assert.equal(h.written.filter((n) => n.target === 'post/1').length, 2, 'nothing written twice');
});

test('a sum over a window on one user: a card holder spending more than 500 in an hour fires once', async (t) => {
  const spend: WatchedWindow = {
    ruleId: 'ar_spend0000',
    type: 'txn',
    userId: 'card-7',
    measure: 'sum',
    window: { threshold: 500, windowMinutes: 60, rearmMinutes: 60 },
    recipients: ['user:card-7'],
    notifyOwner: false,
  };
  const h = await harness(t, { windows: [spend] });
  await h.run();
  const txn = (atMinute: number, value: number, userId = 'card-7'): Scripted => ({
    type: 'txn',
    target: 'shop/1',
    userId,
    atMs: atMinute * MINUTE_MS,
    value,
  });
  // 120 + 150 + 99.5 at minutes 0, 20, 40; another card's 1,000; then 200 at minute 65 — minute
  // 0's 120 has left the hour: 150 + 99.5 + 200 = 449.5, below. Then 60.5 at minute 70: 510.
  await h.send([txn(0, 120), txn(20, 150), txn(40, 99.5), txn(41, 1_000, 'card-8'), txn(65, 200)]);
  const series = seriesName(spend.ruleId, 'card-7');
  await untilApplied(h.series, series, (l) => l >= T0 + 65 * MINUTE_MS);
  await settle();
  assert.equal(h.written.length, 0);
  await h.send([txn(70, 60.5), txn(71, 5)]);
  const deadline = Date.now() + 20_000;
  while (h.written.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await settle();
  assert.equal(h.written.length, 1);
  const n = h.written[0]!;
  assert.equal(n.id.endsWith(`:${M0 + 70}`), true);
  assert.equal(n.value, 510);
  assert.equal(n.target, '');
  assert.equal(n.subject, 'card-7');
  assert.deepEqual(n.recipients, ['user:card-7']);
  assert.match(n.message, /^user card-7: 510 txn value in 60 min \(threshold 500\)$/);
});

test('a spike raises one alert while it lasts, none on the steady minutes around it, and another after it clears', async (t) => {
  const likes: WatchedSpike = {
    ruleId: 'ar_likespike',
    type: 'like',
    target: 'post/7',
    spike: { halfLifeMinutes: 5, zThreshold: 4, zClear: 2, minCount: 20, minRatio: 3, warmupMinutes: 10 },
    recipients: ['dashboard'],
    notifyOwner: false,
  };
  const h = await harness(t, { spikes: [likes] });
  await h.run();
  const series = seriesName(likes.ruleId, 'post/7');
  const latest = (ms: number) => untilApplied(h.series, series, (l) => l >= T0 + ms);
  // 8 a minute for 20 minutes (the baseline), then 80 a minute for 3 minutes, 8 a minute again
  // for 12, then 90 in minute 35. Sent a minute at a time, each taken before the next is sent,
  // as they would come in real time (events are keyed by user, so a minute spreads over the
  // partitions, which the alerter may read minutes apart when replaying a backlog).
  const rate = (m: number) => (m >= 20 && m < 23 ? 80 : m === 35 ? 90 : 8);
  const minuteByMinute = async (from: number, to: number) => {
    for (let m = from; m <= to; m++) {
      const events = minuteOfEvents('like', 'post/7', m, rate(m));
      await h.send(events);
      await latest(events.at(-1)!.atMs);
    }
  };
  await minuteByMinute(0, 19);
  await settle();
  assert.equal(h.written.length, 0, 'no alert on the steady minutes');
  await minuteByMinute(20, 22);
  const deadline = Date.now() + 20_000;
  while (h.written.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // A restart in the middle of the spike's aftermath: nothing is raised twice.
  await h.stop();
  await h.run();
  await minuteByMinute(23, 36);
  const deadline2 = Date.now() + 20_000;
  while (byId(h.written).size < 2 && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 20));
  await settle();
  const alerts = [...byId(h.written).values()];
  assert.deepEqual(
    alerts.map((n) => n.id),
    [
      `spike:${likes.ruleId}:${alerts[0]!.id.split(':')[2]}:${M0 + 20}`,
      `spike:${likes.ruleId}:${alerts[0]!.id.split(':')[2]}:${M0 + 35}`,
    ],
    'one alert for the three-minute spike (minute 20), one for minute 35',
  );
  assert.equal(h.written.length, 2, 'nothing written twice');
  assert.equal(await h.late(), 0, 'paced as in real time, no event came late');
  const [first] = alerts;
  assert.equal(first!.kind, 'spike');
  assert.equal(first!.target, 'post/7');
  assert.ok(first!.value >= 20 && first!.value <= 80, `count ${first!.value}`);
  assert.ok(Math.abs(first!.baseline! - 8) < 2, `baseline ${first!.baseline}`);
  assert.ok(first!.score! >= 4);
  assert.match(first!.message, /^post\/7: \d+ like events in a minute, usually [\d.]+ \(z [\d.]+\)$/);
});

test('an evaluation whose commit is refused — another process changed the series after it was read — reads again and sees that change', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-series-cas-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const store = createEmbeddedSeriesStore({ dataDir });
  const rule: WatchedWindow = {
    ruleId: 'ar_casrule00',
    type: 'like',
    target: 'post/1',
    measure: 'count',
    window: { threshold: 10, windowMinutes: 1, rearmMinutes: 1 },
    recipients: [],
    notifyOwner: false,
  };
  const logged = (partition: number, position: number): LoggedEvent =>
    ({
      partition,
      position: BigInt(position),
      event: newEvent({
        id: `e${partition}-${position}`,
        type: 'like',
        target: 'post/1',
        userId: `u${partition}`,
        occurredAt: timestampFromMs(T0 + 1_000 * position),
      }),
    }) as LoggedEvent;
  const rules = rulesInForce({ windows: [rule] });
  // This batch: nine likes on partition 0. Another process's batch: a tenth on partition 1,
  // applied between this one's read and its commit.
  const mine = seriesIncrements(
    rules,
    Array.from({ length: 9 }, (_, i) => logged(0, i)),
    60_000,
  );
  const theirs = seriesIncrements(rules, [logged(1, 20)], 60_000);
  let interleaved = false;
  const racing: SeriesStore = {
    ...store,
    apply: (increments: readonly SeriesIncrement[]) => store.apply(increments),
    read: (series) => store.read(series),
    commit: async (commit) => {
      if (!interleaved) {
        interleaved = true;
        await store.apply(theirs.increments);
      }
      return store.commit(commit);
    },
  };
  const outcome = await evaluateSeries(racing, mine.increments, mine.touched, { latenessMs: 60_000 });
  assert.equal(outcome.conflicts, 1, 'the first commit was refused');
  assert.deepEqual(
    outcome.pending.flatMap((p) => p.notifications.map((n) => [n.id.endsWith(`:${M0}`), n.value])),
    [[true, 10]],
    "evaluated again with the other process's like: the window reached ten",
  );
});
