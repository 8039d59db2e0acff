/**
 * The alerter role end to end on the real servers, each role as `tally` would run in production:
 * a milestone rule made through `POST /v1/alert-rules`, events over REST crossing its thresholds
 * on three targets (and events it must not count), and the alerter process killed with SIGKILL
 * while the events flow, then started again. Afterwards PostgreSQL holds exactly one notification
 * per threshold crossed, for the rule's recipients and the target's owner; the notifications topic
 * holds each once per recipient (a record written again after the crash is the same notification,
 * same id and seq); and the milestone store in Redis counted each event once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { milestoneSeries } from './alerter/alerter.ts';
import { createRedisMilestoneStore } from './infra/alerts/redis-milestone-store.ts';
import {
  assertNotifications,
  createRule,
  loadedRuleChange,
  milestonePlan,
  NOTIFICATION_ROWS,
  type NotificationRow,
  readTopic,
  sendBatches,
} from './testing/milestone-run.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

test('one notification per threshold crossed and recipient, in PostgreSQL and on the topic, through a SIGKILL of the alerter', async (t) => {
  const ns = testNamespace(4);
  const backends = new Backends(ns);
  // A shorter session lets the group hand the killed member's partitions over sooner.
  const env = { ...ns.env, TALLY_ALERT_RULES_REFRESH_MS: '200', TALLY_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const edge = await startTally(['gateway', 'ingest', 'query', 'persister'], env);
  let alerter: TallyProcess = await startTally(['alerter'], env);
  t.after(async () => {
    await Promise.all([alerter.kill('SIGKILL'), edge.kill('SIGKILL')]);
    await backends.cleanup();
  });
  const port = edge.httpPort!;
  const kept = async () =>
    (await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM notification'))[0]!.n;

  const plan = milestonePlan(ns.id);
  const ruleId = await createRule(port, plan.rule);
  await waitFor(
    () => loadedRuleChange(alerter.lines),
    () => 'the alerter never took the new rule in',
  );

  // The first half, until a notification is kept: the alerter is mid-stream, with thresholds
  // crossed behind it and more ahead.
  const half = Math.floor(plan.events.length / 2);
  await sendBatches(port, plan.events.slice(0, half));
  await waitFor(
    async () => (await kept()) > 0,
    async () => `no notification kept yet (${await kept()})`,
  );
  const rest = sendBatches(port, plan.events.slice(half));
  alerter.child.kill('SIGKILL');
  await alerter.exited;
  const keptAtKill = await kept();
  await rest;
  alerter = await startTally(['alerter'], env, 120_000);

  await waitFor(
    () => backends.caughtUp(['group_persistence', 'group_alerting']),
    () => 'the persister or the alerter is behind',
    120_000,
  );
  assert.ok(keptAtKill < plan.expected.length, 'the SIGKILL came before every threshold was crossed');

  const rows = await backends.rows<NotificationRow>(NOTIFICATION_ROWS);
  const records = await readTopic(backends.log, ns.notificationsTopic, ns.groupPrefix);
  const seen = assertNotifications(plan, ruleId, rows, records);
  t.diagnostic(
    `${rows.length} notifications (${keptAtKill} kept before the SIGKILL), ${records.length} records, ` +
      `${seen.repeatedRecords} written again after the crash`,
  );

  // Each watched event counted once, however often its batch was delivered.
  const milestones = createRedisMilestoneStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix });
  t.after(() => milestones.close());
  for (const [target, views] of plan.counted) {
    const series = await milestones.inspect(milestoneSeries(ruleId, target));
    assert.equal(series.count, views, `${target}: every view counted once`);
    assert.deepEqual(series.pending, [], `${target}: no crossing left unconfirmed`);
  }
});
