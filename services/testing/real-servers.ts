/**
 * Test support: where the real Kafka, Redis and PostgreSQL are, and a unique
 * namespace (topics, groups, key prefix, schema) per test so tests never share state.
 */
import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';

/** The servers `make services-up` starts, unless TALLY_* says otherwise. */
export const realServers = Object.freeze({
  kafkaBrokers: process.env.TALLY_KAFKA_BROKERS ?? '127.0.0.1:19092',
  redisUrl: process.env.TALLY_REDIS_URL ?? 'redis://127.0.0.1:16379',
  pgUrl: process.env.TALLY_PG_URL ?? 'postgres://tally:tally@127.0.0.1:15432/tally',
  /** The 3-master Redis Cluster of `scripts/services-up.sh --redis-cluster`. */
  redisClusterNodes: (
    process.env.TALLY_REDIS_CLUSTER_NODES ?? '127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003'
  ).split(','),
});

/** Names no other test uses. */
export interface TestNamespace {
  id: string;
  eventsTopic: string;
  /** Where the persister forwards what it stored first; the counter, the aggregator and the alerter read it. */
  acceptedTopic: string;
  dlqTopic: string;
  /** Where the alerter publishes notifications. */
  notificationsTopic: string;
  groupPrefix: string;
  redisPrefix: string;
  pgSchema: string;
  /** The TALLY_* variables that point a tally process at the real servers within this namespace. */
  env: Record<string, string>;
}

export function testNamespace(partitions = 6): TestNamespace {
  const id = randomUUID().replaceAll('-', '').slice(0, 12);
  const ns = {
    id,
    eventsTopic: `t-${id}-events`,
    acceptedTopic: `t-${id}-events.accepted`,
    dlqTopic: `t-${id}-events.dlq`,
    notificationsTopic: `t-${id}-notifications`,
    groupPrefix: `t-${id}-`,
    redisPrefix: `t-${id}`,
    pgSchema: `t_${id}`,
  };
  return {
    ...ns,
    env: {
      TALLY_KAFKA_BROKERS: realServers.kafkaBrokers,
      TALLY_REDIS_URL: realServers.redisUrl,
      TALLY_PG_URL: realServers.pgUrl,
      TALLY_EVENTS_TOPIC: ns.eventsTopic,
      TALLY_EVENTS_PARTITIONS: String(partitions),
      TALLY_DLQ_TOPIC: ns.dlqTopic,
      TALLY_ACCEPTED_TOPIC: ns.acceptedTopic,
      TALLY_NOTIFICATIONS_TOPIC: ns.notificationsTopic,
      TALLY_GROUP_PREFIX: ns.groupPrefix,
      TALLY_REDIS_PREFIX: ns.redisPrefix,
      TALLY_PG_SCHEMA: ns.pgSchema,
      TALLY_HTTP_PORT: '0',
      TALLY_GRPC_PORT: '0',
      TALLY_BIND_HOST: '127.0.0.1',
    },
  };
}

/** Throws a message saying how to start the servers when one is not listening. */
export async function requireRealServers(): Promise<void> {
  const targets = [
    ['Kafka', realServers.kafkaBrokers.split(',')[0]!],
    ['Redis', new URL(realServers.redisUrl).host],
    ['PostgreSQL', new URL(realServers.pgUrl).host],
  ] as const;
  for (const [name, hostPort] of targets) {
    const [host, port] = hostPort.split(':');
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.setTimeout(2_000);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(false));
      socket.connect(Number(port), host ?? '127.0.0.1');
    });
    if (!ok)
      throw new Error(
        `${name} is not reachable at ${hostPort}: run \`make services-up\` (or set TALLY_* to your servers)`,
      );
  }
}

/** Polls `probe` until it returns true; fails with `describe()` after `timeoutMs`. */
export async function waitFor(
  probe: () => Promise<boolean> | boolean,
  describe: () => Promise<string> | string,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${await describe()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
