/**
 * The sender in the test's process on the real servers (Kafka, PostgreSQL, Redis Cluster), with
 * `tally receiver`'s server on 127.0.0.1 as the endpoint: per-user order through failures,
 * router duplicates skipped, isolation of one destination's trouble from another's deliveries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSecret } from './infra/delivery/webhook-signature.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { decodeNotification } from './pipeline/notification-codec.ts';
import { startReceiver } from './receiver/receiver.ts';
import { metricValue, senderHarness } from './sender-harness.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { readTopic } from './testing/milestone-run.ts';
import { requireRealServers, waitFor } from './testing/real-servers.ts';
import { freePort } from './testing/tally-process.ts';

await requireRealServers();

handleProcessWarnings();

const receiverOptions = {
  port: 0,
  host: '127.0.0.1',
  secrets: [] as string[],
  failRate: 0,
  failStatus: 503,
  latencyMs: 0,
  seed: 7,
  toleranceSeconds: 300,
};

test('per-user order through a flaky receiver (30 % 503), every record once per webhook-id, router duplicates skipped', async (t) => {
  const h = await senderHarness(t);
  const secret = generateSecret();
  const receiver = await startReceiver({ ...receiverOptions, secrets: [secret], failRate: 0.3 });
  t.after(() => receiver.close());
  const { d, topic } = await h.destination(
    webhookTo(`${receiver.url}/hook`, {
      retryDelaysSeconds: new Array(20).fill(0).map((_, i) => (i === 0 ? 0 : 1)),
    }),
    [secret],
  );
  const planned = plannedRecords(d.id, 20, 15);
  await h.startSender();
  await writeRecords(h.log.producer(), topic, planned.slice(0, 150));
  // The router writes a stretch twice (a redelivered batch): same source positions.
  await writeRecords(h.log.producer(), topic, planned.slice(100, 150));
  await writeRecords(h.log.producer(), topic, planned.slice(150));
  await waitFor(
    () => receiver.stats().unique === planned.length,
    () =>
      `received ${receiver.stats().unique} of ${planned.length}: ${JSON.stringify({ ...receiver.stats(), users: undefined })}`,
    90_000,
  );
  const stats = receiver.stats();
  assert.equal(stats.orderViolations, 0, JSON.stringify(stats.recentViolations));
  assert.equal(stats.rejected, 0, 'every signature verified');
  assert.ok(stats.failed > 0, 'the receiver failed some deliveries');
  assert.equal(stats.duplicates, 0, 'the router’s duplicates were skipped, and no attempt succeeded twice');
  for (let u = 0; u < 20; u++) assert.equal(stats.users[`user-${u}`]?.last, 15, `user-${u} got all 15`);
  assert.equal(await metricValue(h.metrics, 'tally_delivery_duplicates_total', { destination: d.id }), 50);
  assert.ok((await metricValue(h.metrics, 'tally_delivery_retries_total', { destination: d.id })) > 0);
  // Retried deliveries keep their attempts.
  const [row] = await h.sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM delivery_attempt WHERE destination_id = $1 AND outcome = 'retry'`,
    [d.id],
  );
  assert.ok(row!.n > 0, 'failed attempts are in the delivery log');
});

test('isolation: a dead, a slow, a gone and a rate-limited destination beside a healthy one never hold its deliveries', async (t) => {
  const h = await senderHarness(t);
  const healthy = await startReceiver(receiverOptions);
  const slow = await startReceiver({ ...receiverOptions, latencyMs: 2_000 });
  const gone = await startReceiver({ ...receiverOptions, failRate: 1, failStatus: 410 });
  const limited = await startReceiver({ ...receiverOptions, failRate: 1, failStatus: 429 });
  const paced = await startReceiver(receiverOptions);
  t.after(() => Promise.all([healthy, slow, gone, limited, paced].map((r) => r.close())));
  const nobody = await freePort(); // nothing listens: connection refused
  const made = {
    healthy: await h.destination(webhookTo(`${healthy.url}/`)),
    dead: await h.destination(webhookTo(`http://127.0.0.1:${nobody}/`)),
    slow: await h.destination(webhookTo(`${slow.url}/`, { timeoutMs: 10_000, concurrency: 2 })),
    gone: await h.destination(webhookTo(`${gone.url}/`)),
    limited: await h.destination(webhookTo(`${limited.url}/`)),
    paced: await h.destination(webhookTo(`${paced.url}/`, { rateLimitPerSecond: 2 })),
  };
  await h.startSender();
  const per = 200;
  for (const { d, topic } of Object.values(made))
    await writeRecords(h.log.producer(), topic, plannedRecords(d.id, 40, per / 40));
  const started = Date.now();
  await waitFor(
    () => healthy.stats().unique === per,
    () => `healthy received ${healthy.stats().unique} of ${per}`,
    30_000,
  );
  const tookMs = Date.now() - started;
  // When the healthy destination has everything, the others are far from done.
  assert.ok(slow.stats().received < per, `slow: ${slow.stats().received}`);
  assert.ok(paced.stats().received < per / 2, `paced at 2/s: ${paced.stats().received}`);
  assert.equal(limited.stats().received, 0);
  t.diagnostic(
    `healthy done in ${tookMs} ms; slow ${slow.stats().received}, paced ${paced.stats().received}`,
  );
  await waitFor(
    async () => (await h.destinations.get(made.gone.d.id))?.enabled === false,
    () => 'the destination answering 410 is not disabled',
    30_000,
  );
  const goneNow = await h.destinations.get(made.gone.d.id);
  assert.match(goneNow!.disabledReason, /410/);
  // Told once to the dashboard, kept and on the notifications topic.
  const told = await h.notifications.list({ recipient: 'dashboard', limit: 10 });
  assert.deepEqual(
    told.notifications.map((n) => [n.id, n.kind, n.target]),
    [[`destination-disabled:${made.gone.d.id}:${made.gone.d.revision}`, 'destination', made.gone.d.id]],
  );
  assert.match(told.notifications[0]!.message, /was disabled: the receiver answered 410 Gone/);
  const onTopic = await readTopic(h.log, h.notificationsTopic, h.groupPrefix);
  assert.deepEqual(
    onTopic.map((r) => decodeNotification(r.value).id),
    [told.notifications[0]!.id],
  );
  // Nothing of the failing destinations is lost: parked, pending.
  const counts = await h.store.pendingCounts();
  assert.ok((counts.get(made.dead.d.id) ?? 0) > 0, 'the dead destination’s deliveries are parked');
  assert.ok((counts.get(made.limited.d.id) ?? 0) > 0, 'the rate-limited destination’s deliveries are parked');
});
