/**
 * Test support for the sender's integration tests (kept at the top level: a test of the sender
 * role may use it, testing/ may not import a role): a sender in the test's process on the real
 * servers — Kafka, PostgreSQL (a migrated schema of its own), Redis Cluster breakers under a key
 * prefix of its own, and the destination limits every sender shares there — with a test clock
 * where a test needs one, and endpoints on 127.0.0.1 (the webhook client's allow-list holds
 * `127.0.0.1/32`). Everything is removed after the test.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { BreakerConfig } from './domain/circuit-breaker.ts';
import { DELIVERY_TOPIC_PREFIX, type DestinationInput } from './domain/destinations.ts';
import type { NotificationStore } from './infra/alerts/notification-store.ts';
import { createSqlNotificationStore } from './infra/alerts/sql-notification-store.ts';
import type { BreakerStore } from './infra/delivery/breaker-store.ts';
import type { DeliveryStore } from './infra/delivery/delivery-store.ts';
import type { Destination, DestinationStore } from './infra/delivery/destination-store.ts';
import { createRedisBreakerStore } from './infra/delivery/redis-breaker-store.ts';
import { createSqlDeliveryStore } from './infra/delivery/sql-delivery-store.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { createWebhookClient } from './infra/delivery/webhook-client.ts';
import type { Stoppable } from './infra/lifecycle.ts';
import type { DestinationLimiter } from './infra/limits/destination-limiter.ts';
import { createRedisDestinationLimiter } from './infra/limits/redis-destination-limiter.ts';
import type { EventLog } from './infra/log/event-log.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { createMetricsRegistry, type Registry } from './infra/metrics.ts';
import type { SqlDatabase } from './infra/sql/sql-database.ts';
import { notificationWriter } from './pipeline/notification-writer.ts';
import { type SenderConfig, start } from './sender/sender.ts';
import { migratedPostgresSchema } from './testing/migrated-sql.ts';
import { realServers, testNamespace } from './testing/real-servers.ts';

export interface SenderHarness {
  log: EventLog;
  sql: SqlDatabase;
  /** Where the sender tells of the destinations it disabled: the store, and the topic. */
  notifications: NotificationStore;
  notificationsTopic: string;
  store: DeliveryStore;
  destinations: DestinationStore;
  breakers: BreakerStore;
  /** The destination limits the senders share (Redis Cluster). */
  limiter: DestinationLimiter;
  metrics: Registry;
  groupPrefix: string;
  /** Creates a destination and its topic. */
  destination(
    input: DestinationInput,
    secrets?: readonly string[],
  ): Promise<{ d: Destination; topic: string }>;
  /**
   * Starts a sender (stopped after the test), on the test's clock and random source if given,
   * counting in `metrics` (default the harness's).
   */
  startSender(
    config?: Partial<SenderConfig>,
    extra?: { now?: () => number; random?: () => number; metrics?: Registry },
  ): Promise<Stoppable>;
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
  const limiter = createRedisDestinationLimiter({
    clusterNodes: realServers.redisClusterNodes,
    keyPrefix: ns.redisPrefix,
  });
  const destinations = createSqlDestinationStore({ sql });
  const store = createSqlDeliveryStore({ sql });
  const notifications = createSqlNotificationStore(sql);
  const notificationsTopic = `${ns.groupPrefix}notifications`;
  await log.ensureTopics([{ name: notificationsTopic, partitions: 1 }]);
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const topics: string[] = [];
  const running: Stoppable[] = [];
  const closers: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const s of running) await s.stop().catch(() => {});
    for (const c of closers) await c().catch(() => {});
    await log.deleteTopics([...topics, notificationsTopic]).catch(() => {});
    await log.close();
    await breakers.close();
    await limiter.close();
    await cleanup();
  });
  return {
    log,
    sql,
    store,
    notifications,
    notificationsTopic,
    destinations,
    breakers,
    limiter,
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
      const remote = new Map<string, EventLog>();
      closers.push(async () => {
        await Promise.all([...remote.values()].map((r) => r.close()));
      });
      const sender = await start(
        {
          log,
          store,
          destinations,
          breakers,
          limiter,
          webhooks,
          // Another cluster's brokers get a client of their own, kept per broker list, as in `tally sender`.
          remoteProducer: (brokers) => {
            const key = [...brokers].sort().join(',');
            let other = remote.get(key);
            if (!other) {
              other = createKafkaEventLog({
                brokers: [...brokers],
                clientId: 'tally-test-sender-remote',
                produceTimeoutMs: 10_000,
                logger,
              });
              remote.set(key, other);
            }
            return other.producer();
          },
          logger: logger.child({ role: 'sender' }),
          metrics: extra.metrics ?? metrics,
          notify: notificationWriter({
            store: notifications,
            producer: log.producer(),
            topic: notificationsTopic,
            metrics: extra.metrics ?? metrics,
          }),
          ...(extra.now ? { now: extra.now } : {}),
          ...(extra.random ? { random: extra.random } : {}),
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

/** A request an endpoint received. */
export interface ReceivedRequest {
  /** When it arrived (the system clock, ms), and when its answer went. */
  startedMs: number;
  endedMs: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** How an endpoint answers its `index`th request (0-based). */
export type EndpointScript = (
  request: ReceivedRequest,
  index: number,
) => { status: number; headers?: Record<string, string>; delayMs?: number };

export interface ScriptedEndpoint {
  readonly url: string;
  /** Every request, in arrival order (`endedMs` is 0 until answered). */
  readonly requests: ReceivedRequest[];
  /** The most requests that were ever in flight at once. */
  maxInFlight(): number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 answering each request as `script` says, keeping every request. */
export async function startScriptedEndpoint(
  t: TestContext,
  script: EndpointScript,
): Promise<ScriptedEndpoint> {
  const requests: ReceivedRequest[] = [];
  let inFlight = 0;
  let most = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request: ReceivedRequest = {
        startedMs: Date.now(),
        endedMs: 0,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      const index = requests.push(request) - 1;
      inFlight++;
      most = Math.max(most, inFlight);
      const answer = script(request, index);
      setTimeout(() => {
        inFlight--;
        request.endedMs = Date.now();
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end('{}');
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.after(close);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    maxInFlight: () => most,
    close,
  };
}
