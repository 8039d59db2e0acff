/**
 * Test support: a sender running in the test's process on the real servers (Kafka, PostgreSQL,
 * Redis Cluster for the breakers), in a namespace of its own, with receivers on 127.0.0.1.
 */
import type { TestContext } from 'node:test';
import type { BreakerConfig } from '../domain/circuit-breaker.ts';
import { DELIVERY_TOPIC_PREFIX, type DestinationInput } from '../domain/destinations.ts';
import type { BreakerStore } from '../infra/delivery/breaker-store.ts';
import type { DeliveryStore } from '../infra/delivery/delivery-store.ts';
import type { Destination, DestinationStore } from '../infra/delivery/destination-store.ts';
import { createRedisBreakerStore } from '../infra/delivery/redis-breaker-store.ts';
import { createSqlDeliveryStore } from '../infra/delivery/sql-delivery-store.ts';
import { createSqlDestinationStore } from '../infra/delivery/sql-destination-store.ts';
import { createWebhookClient } from '../infra/delivery/webhook-client.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry, type Registry } from '../infra/metrics.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { type SenderConfig, start } from '../sender/sender.ts';
import { migratedPostgresSchema } from './migrated-sql.ts';
import { realServers, testNamespace } from './real-servers.ts';

export interface SenderHarness {
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

export const TEST_PARTITIONS = 4;

export async function senderHarness(
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
export async function metricValue(
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
