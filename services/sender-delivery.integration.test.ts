/**
 * The sender in the test's process on the real servers (Kafka, PostgreSQL, Redis Cluster), with
 * `tally receiver`'s server on 127.0.0.1 as the endpoint: per-user order through failures,
 * router duplicates skipped, isolation of one destination's trouble from another's deliveries.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { BreakerConfig } from './domain/circuit-breaker.ts';
import { DELIVERY_TOPIC_PREFIX, type DestinationInput } from './domain/destinations.ts';
import type { BreakerStore } from './infra/delivery/breaker-store.ts';
import type { DeliveryStore } from './infra/delivery/delivery-store.ts';
import type { Destination, DestinationStore } from './infra/delivery/destination-store.ts';
import { createRedisBreakerStore } from './infra/delivery/redis-breaker-store.ts';
import { createSqlDeliveryStore } from './infra/delivery/sql-delivery-store.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { createWebhookClient } from './infra/delivery/webhook-client.ts';
import { generateSecret } from './infra/delivery/webhook-signature.ts';
import type { Stoppable } from './infra/lifecycle.ts';
import type { EventLog } from './infra/log/event-log.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { createMetricsRegistry, type Registry } from './infra/metrics.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import type { SqlDatabase } from './infra/sql/sql-database.ts';
import { startReceiver } from './receiver/receiver.ts';
import { type SenderConfig, start } from './sender/sender.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { migratedPostgresSchema } from './testing/migrated-sql.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { freePort } from './testing/tally-process.ts';

await requireRealServers();

interface SenderHarness {
  log: EventLog;
  sql: SqlDatabase;
  store: DeliveryStore;
  destinations: DestinationStore;
  breakers: BreakerStore;
  metrics: Registry;
  groupPrefix: string;
  /** Creates a destination and its topic. */
  destination(
    input: DestinationInput,
    secrets?: readonly string[],
  ): Promise<{ d: Destination; topic: string }>;
  /** Starts a sender (stopped after the test). */
  startSender(config?: Partial<SenderConfig>, extra?: { now?: () => number }): Promise<Stoppable>;
}

const TEST_PARTITIONS = 4;

async function senderHarness(
  t: TestContext,
  options: { breaker?: BreakerConfig } = {},
): Promise<SenderHarness> {
  const ns = testNamespace(TEST_PARTITIONS);
  const { sql, cleanup } = await migratedPostgresSchema();
  const logger = createLogger((process.env.TALLY_TEST_LOG as 'info' | undefined) ?? 'warn');
  const log = createKafkaEventLog({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test-sender',
    produceTimeoutMs: 10_000,
    sessionTimeoutMs: 6_000,
    logger,
  });
  const breakers = createRedisBreakerStore({
    clusterNodes: realServers.redisClusterNodes,
    keyPrefix: ns.redisPrefix,
    ...(options.breaker ? { config: options.breaker } : {}),
  });
  const destinations = createSqlDestinationStore({ sql });
  const store = createSqlDeliveryStore({ sql });
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const topics: string[] = [];
  const running: Stoppable[] = [];
  const closers: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const s of running) await s.stop().catch(() => {});
    for (const c of closers) await c().catch(() => {});
    await log.deleteTopics(topics).catch(() => {});
    await log.close();
    await breakers.close();
    await cleanup();
  });
  return {
    log,
    sql,
    store,
    destinations,
    breakers,
    metrics,
    groupPrefix: ns.groupPrefix,
    async destination(input, secrets) {
      const d = await destinations.create(input, secrets);
      const topic = `${ns.groupPrefix}${DELIVERY_TOPIC_PREFIX}${d.id}`;
      await log.ensureTopics([{ name: topic, partitions: TEST_PARTITIONS }]);
      topics.push(topic);
      return { d, topic };
    },
    async startSender(config = {}, extra = {}) {
      const webhooks = createWebhookClient({ version: 'test', allowList: ['127.0.0.1/32'] });
      closers.push(() => webhooks.close());
      const sender = await start(
        {
          log,
          store,
          destinations,
          breakers,
          webhooks,
          remoteProducer: () => log.producer(),
          logger: logger.child({ role: 'sender' }),
          metrics,
          ...(extra.now ? { now: extra.now } : {}),
        },
        {
          groupId: `${ns.groupPrefix}group_sending`,
          topicPrefix: `${ns.groupPrefix}${DELIVERY_TOPIC_PREFIX}`,
          maxWaitMs: 60,
          refreshMs: 200,
          inlineMs: 1_000,
          pollMs: 100,
          leaseMarginMs: 1_000,
          kafkaTimeoutMs: 10_000,
          deliveredRetentionMs: 3_600_000,
          deadRetentionMs: 86_400_000,
          ...config,
        },
      );
      running.push(sender);
      return sender;
    },
  };
}

/** A metric's value for `labels` (0 when absent). */
async function metricValue(
  metrics: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
    .reduce((sum, v) => sum + v.value, 0);
}

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
  // Nothing of the failing destinations is lost: parked, pending.
  const counts = await h.store.pendingCounts();
  assert.ok((counts.get(made.dead.d.id) ?? 0) > 0, 'the dead destination’s deliveries are parked');
  assert.ok((counts.get(made.limited.d.id) ?? 0) > 0, 'the rate-limited destination’s deliveries are parked');
});
