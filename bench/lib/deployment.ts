/**
 * The system under test: a fresh namespace (topics, consumer groups, Redis key prefix, PostgreSQL
 * schema) on the local servers of scripts/services-up.sh, each Tally role in a process of its
 * own, and direct clients of the three servers for the harness's own measurements.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { DELIVERY_TOPIC_PREFIX } from '../../services/domain/destinations.ts';
import type { EventLog, PartitionOffsets } from '../../services/infra/log/event-log.ts';
import { createKafkaEventLog } from '../../services/infra/log/kafka-event-log.ts';
import { createLogger } from '../../services/infra/logger.ts';
import { realServers } from '../../services/testing/real-servers.ts';
import { freePort, startTally, type TallyProcess } from '../../services/testing/tally-process.ts';

/**
 * An admin read, tried again up to 4 times over ~10 s: on a busy machine the group coordinator
 * can be loading or moving, and the client's own retries give up sooner than a run should.
 */
async function again<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
    }
  }
}

/** The consumer roles of the counting spine: those end to end runs and drains wait for. */
export const CONSUMER_ROLES = ['persister', 'counter', 'aggregator'] as const;
export type ConsumerRole = (typeof CONSUMER_ROLES)[number];
/** Every sink, the alerter too (it runs alone, on its backlog, with the alert rules the run made). */
export const SINK_ROLES = [...CONSUMER_ROLES, 'alerter'] as const;
export type SinkRole = (typeof SINK_ROLES)[number];
/** The delivery roles (docs/delivery.md): the router reads the accepted topic, the sender the destinations' topics. */
export const DELIVERY_ROLES = ['router', 'sender'] as const;
export type DeliveryRole = (typeof DELIVERY_ROLES)[number];
/** The roles whose consumer group reads the accepted topic from a committed offset (skipToEnd). */
export type GroupRole = SinkRole | 'router' | 'projector';
export type Role = 'gateway' | 'ingest' | 'query' | SinkRole | DeliveryRole | 'projector';

/** Records at or past the group's committed offset (from the log start when it never committed). */
function partitionLag(p: PartitionOffsets): number {
  const from = p.committed !== undefined && p.committed > p.start ? p.committed : p.start;
  return p.end > from ? Number(p.end - from) : 0;
}

/** The consumer group of each consumer role (without the namespace's prefix). */
export const GROUP_OF: Record<GroupRole, string> = {
  persister: 'group_persistence',
  counter: 'group_realtimecounter',
  aggregator: 'group_aggregation',
  alerter: 'group_alerting',
  router: 'group_routing',
  projector: 'group_projection',
};

/**
 * The topic each consumer role reads: the persister the events ingest wrote, the counter and the
 * aggregator what the persister accepted and forwarded (services/roles.ts). Their backlog exists
 * only once the persister has run, which is why CONSUMER_ROLES lists it first.
 */
export const TOPIC_OF: Record<GroupRole, 'events' | 'accepted'> = {
  persister: 'events',
  counter: 'accepted',
  aggregator: 'accepted',
  alerter: 'accepted',
  router: 'accepted',
  projector: 'accepted',
};

export interface Namespace {
  id: string;
  eventsTopic: string;
  /** Where the persister forwards the events it accepted (TALLY_ACCEPTED_TOPIC). */
  acceptedTopic: string;
  dlqTopic: string;
  /** The raw producer baseline's topic. */
  rawTopic: string;
  groupPrefix: string;
  redisPrefix: string;
  pgSchema: string;
  partitions: number;
}

/**
 * Names no other run uses: `bench-<id>…` topics, groups and keys, schema `bench_<id>`. Ids have
 * a fixed length, so `bench-<id>` followed by anything is this run's and no other's.
 */
export function benchNamespace(partitions: number): Namespace {
  const id = randomBytes(5).toString('hex');
  return {
    id,
    eventsTopic: `bench-${id}-events`,
    acceptedTopic: `bench-${id}-events.accepted`,
    dlqTopic: `bench-${id}-events.dlq`,
    rawTopic: `bench-${id}-raw`,
    groupPrefix: `bench-${id}-`,
    redisPrefix: `bench-${id}`,
    pgSchema: `bench_${id}`,
    partitions,
  };
}

export interface Servers {
  kafkaBrokers: string;
  redisUrl: string;
  pgUrl: string;
}

export const localServers: Servers = {
  kafkaBrokers: realServers.kafkaBrokers,
  redisUrl: realServers.redisUrl,
  pgUrl: realServers.pgUrl,
};

/**
 * Node's on-disk cache of compiled modules for the role processes and the harness's other Node
 * processes (NODE_COMPILE_CACHE): a role then starts in about two thirds of the time, which the
 * phases that restart roles repeat many times. It only spares compiling the sources again
 * (entries are keyed by their content).
 */
export const COMPILE_CACHE = join(tmpdir(), 'tally-bench-compile-cache');

/** A running role process and where it serves. */
export interface RoleProcess {
  role: Role;
  proc: TallyProcess;
  pid: number;
  /** Where its /metrics is. */
  metricsPort: number;
}

/**
 * Starts and stops the role processes of one namespace, and holds the harness's clients of
 * the servers (Kafka admin and the event log port, PostgreSQL, Redis).
 */
export class Deployment {
  readonly ns: Namespace;
  readonly servers: Servers;
  readonly log: EventLog;
  readonly kafka: Kafka;
  readonly pg: pg.Pool;
  readonly redis: Redis;
  readonly roles = new Map<Role, RoleProcess>();
  ingestPort = 0;
  queryPort = 0;
  httpPort = 0;
  /**
   * The prefix of the consumer groups the consumer roles start in and whose offsets `lag`,
   * `committed` and `skipToEnd` read: the namespace's, unless a phase gives its consumers groups
   * of their own (each Kafka client its own, to read the same backlog from the start).
   */
  groupPrefix: string;
  readonly #extraEnv: Record<string, string>;
  /**
   * Where each role process writes its V8 CPU profile at exit (`<dir>/<role>/`), when set (the
   * harness's --cpu-prof): NODE_OPTIONS gains --cpu-prof for every role.
   */
  cpuProfileDir: string | undefined;
  /** Commits a stopped group's offsets in one request (skipToEnd); opened on first use. */
  #offsetsAdmin: Admin | undefined;

  constructor(ns: Namespace, servers: Servers, extraEnv: Record<string, string> = {}) {
    this.ns = ns;
    this.servers = servers;
    this.groupPrefix = ns.groupPrefix;
    this.#extraEnv = extraEnv;
    const brokers = servers.kafkaBrokers.split(',');
    this.log = createKafkaEventLog({
      brokers,
      clientId: 'tally-bench',
      produceTimeoutMs: 10_000,
      logger: createLogger('error'),
    });
    this.kafka = new Kafka({ clientId: 'tally-bench-admin', brokers, logLevel: logLevel.NOTHING });
    this.pg = new pg.Pool({
      connectionString: servers.pgUrl,
      max: 4,
      options: `-c search_path=${ns.pgSchema}`,
    });
    this.pg.on('error', () => {});
    this.redis = new Redis(servers.redisUrl, { maxRetriesPerRequest: 2 });
    this.redis.on('error', () => {});
  }

  /** The TALLY_* variables of every role process. */
  env(): Record<string, string> {
    const ns = this.ns;
    return {
      TALLY_KAFKA_BROKERS: this.servers.kafkaBrokers,
      TALLY_REDIS_URL: this.servers.redisUrl,
      TALLY_PG_URL: this.servers.pgUrl,
      TALLY_EVENTS_TOPIC: ns.eventsTopic,
      TALLY_EVENTS_PARTITIONS: String(ns.partitions),
      TALLY_ACCEPTED_TOPIC: ns.acceptedTopic,
      TALLY_DLQ_TOPIC: ns.dlqTopic,
      TALLY_GROUP_PREFIX: this.groupPrefix,
      TALLY_REDIS_PREFIX: ns.redisPrefix,
      TALLY_PG_SCHEMA: ns.pgSchema,
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_HTTP_PORT: '0',
      TALLY_GRPC_PORT: '0',
      TALLY_METRICS_PORT: '0',
      TALLY_INGEST_ADDR: `127.0.0.1:${this.ingestPort}`,
      TALLY_QUERY_ADDR: `127.0.0.1:${this.queryPort}`,
      ...this.#extraEnv,
    };
  }

  /**
   * Starts `role` in a process of its own, with `extraEnv` over the deployment's variables (say
   * TALLY_KAFKA_CLIENT, OTEL_*, NODE_OPTIONS); resolves once it logged that it started. Ingest and
   * query keep their gRPC port across restarts, so that the gateway and the clients find them.
   */
  async start(role: Role, extraEnv: Record<string, string> = {}): Promise<RoleProcess> {
    if (role === 'ingest' || role === 'query') {
      const port = (role === 'ingest' ? this.ingestPort : this.queryPort) || (await freePort());
      if (role === 'ingest') this.ingestPort = port;
      else this.queryPort = port;
    }
    const env: Record<string, string> = {
      NODE_COMPILE_CACHE: COMPILE_CACHE,
      ...this.env(),
      ...extraEnv,
      ...this.#profiling(role, extraEnv),
    };
    if (role === 'ingest') env.TALLY_GRPC_PORT = String(this.ingestPort);
    if (role === 'query') env.TALLY_GRPC_PORT = String(this.queryPort);
    const proc = await startTally([role], env, 120_000);
    const metricsPort = role === 'gateway' ? proc.httpPort! : proc.metricsPort!;
    if (role === 'gateway') this.httpPort = proc.httpPort!;
    const running: RoleProcess = { role, proc, pid: proc.child.pid!, metricsPort };
    this.roles.set(role, running);
    return running;
  }

  /**
   * Starts `roles` together in one process, registered (and CPU-sampled) as `as`; with the gateway
   * among them, the deployment's HTTP port becomes that process's.
   */
  async startCombined(as: Role, roles: Role[], extraEnv: Record<string, string> = {}): Promise<RoleProcess> {
    const env: Record<string, string> = {
      NODE_COMPILE_CACHE: COMPILE_CACHE,
      ...this.env(),
      ...extraEnv,
      ...this.#profiling(as, extraEnv),
    };
    const proc = await startTally(roles, env, 120_000);
    if (roles.includes('gateway')) this.httpPort = proc.httpPort!;
    const metricsPort = roles.includes('gateway') ? proc.httpPort! : proc.metricsPort!;
    const running: RoleProcess = { role: as, proc, pid: proc.child.pid!, metricsPort };
    this.roles.set(as, running);
    return running;
  }

  /** NODE_OPTIONS with the CPU profiler into `<cpuProfileDir>/<role>/`, when profiling. */
  #profiling(role: Role, extraEnv: Record<string, string>): Record<string, string> {
    if (!this.cpuProfileDir) return {};
    const dir = join(this.cpuProfileDir, role);
    const options = [
      extraEnv.NODE_OPTIONS ?? process.env.NODE_OPTIONS,
      '--cpu-prof',
      `--cpu-prof-dir=${dir}`,
    ];
    return { NODE_OPTIONS: options.filter(Boolean).join(' ') };
  }

  /** SIGTERM (drains: a consumer commits its batch and leaves its group); SIGKILL after 30 s. */
  async stop(role: Role): Promise<void> {
    const running = this.roles.get(role);
    if (!running) return;
    this.roles.delete(role);
    const force = setTimeout(() => running.proc.child.kill('SIGKILL'), 30_000);
    await running.proc.kill('SIGTERM');
    clearTimeout(force);
  }

  async stopAll(): Promise<void> {
    // The gateway first, the consumers last: the order of a drain.
    for (const role of ['gateway', 'ingest', 'query', ...SINK_ROLES, ...DELIVERY_ROLES] as Role[])
      await this.stop(role);
  }

  groupId(role: GroupRole): string {
    return `${this.groupPrefix}${GROUP_OF[role]}`;
  }

  /** The topic a consumer role reads, by its name in this namespace. */
  topicOf(role: GroupRole): string {
    return TOPIC_OF[role] === 'events' ? this.ns.eventsTopic : this.ns.acceptedTopic;
  }

  /** Records of the topic a consumer role reads that its group has not committed yet. */
  async lag(role: GroupRole): Promise<number> {
    const offsets = await again(() => this.log.groupOffsets(this.groupId(role), this.topicOf(role)));
    return offsets.reduce((n, p) => n + partitionLag(p), 0);
  }

  /** Records the group committed on the topic its role reads, summed over partitions. */
  async committed(role: GroupRole): Promise<number> {
    const offsets = await again(() => this.log.committedOffsets(this.groupId(role), this.topicOf(role)));
    let total = 0n;
    for (const o of offsets.values()) total += o;
    return Number(total);
  }

  /**
   * Records ever written to the topic a consumer role reads: for the counter and the aggregator,
   * what the persister forwarded so far.
   */
  async endOffset(role: GroupRole): Promise<number> {
    let total = 0n;
    for (const o of (await again(() => this.log.endOffsets(this.topicOf(role)))).values()) total += o;
    return Number(total);
  }

  /**
   * Seconds until every consumer group has committed everything on the topic it reads, or
   * undefined after `timeoutSeconds`. Each round reads the groups in CONSUMER_ROLES order, the
   * persister first: it commits only once its forward is acknowledged, so when it has no lag the
   * accepted topic holds everything, and the later groups' lag is measured against all of it.
   */
  async drained(timeoutSeconds: number): Promise<number | undefined> {
    const start = Date.now();
    while (Date.now() - start < timeoutSeconds * 1000) {
      let behind = false;
      for (const role of CONSUMER_ROLES)
        if ((await this.lag(role).catch(() => 1)) > 0) {
          behind = true;
          break;
        }
      if (!behind) return (Date.now() - start) / 1000;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return undefined;
  }

  /** Moves a stopped group's committed offsets to the end of the topic it reads (skips the backlog). */
  async skipToEnd(role: GroupRole): Promise<void> {
    // Explicit offsets, committed outside any group generation as an admin client does (the broker
    // refuses while the group has members). Not kafkajs's setOffsets: it joins the group with a
    // consumer and waits for a fetch, 5 s a group; nor its resetOffsets, which commits "latest" as
    // -1, which a consumer reading from the beginning takes as no commit at all.
    const topic = this.topicOf(role);
    const ends = await this.log.endOffsets(topic);
    this.#offsetsAdmin ??= new Admin({
      clientId: 'tally-bench-offsets',
      bootstrapBrokers: this.servers.kafkaBrokers.split(','),
      retries: 3,
    });
    const commit = {
      groupId: this.groupId(role),
      topics: [
        {
          name: topic,
          partitionOffsets: [...ends].map(([partition, offset]) => ({ partition, offset })),
        },
      ],
    };
    // A member stopped as it joined may linger until its session times out (30 s).
    const deadline = Date.now() + 45_000;
    for (;;) {
      try {
        await this.#offsetsAdmin.alterConsumerGroupOffsets(commit);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    const committed = await this.log.committedOffsets(this.groupId(role), topic);
    for (const [partition, end] of ends)
      if ((committed.get(partition) ?? 0n) !== end)
        throw new Error(
          `${this.groupId(role)}: partition ${partition} committed ${committed.get(partition)}, not ${end}`,
        );
  }

  /** Stops every process and deletes the namespace's topics, consumer groups, schema and keys. */
  async cleanup(progress: (line: string) => void): Promise<void> {
    await this.stopAll().catch(() => {});
    const ns = this.ns;
    await this.log
      .deleteTopics([ns.eventsTopic, ns.acceptedTopic, ns.dlqTopic, ns.rawTopic])
      .catch((e: unknown) => progress(`could not delete the topics: ${String(e)}`));
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      // The destinations' topics (`<group prefix>deliveries.<id>`) a phase made and did not delete.
      const left = (await admin.listTopics()).filter(
        (t) => t.startsWith(ns.groupPrefix) && t.includes(DELIVERY_TOPIC_PREFIX),
      );
      if (left.length > 0) await this.log.deleteTopics(left);
      const groups = (await admin.listGroups()).groups
        .map((g) => g.groupId)
        .filter((g) => g.startsWith(ns.groupPrefix));
      if (groups.length > 0) await admin.deleteGroups(groups);
    } catch (e) {
      progress(`could not delete the consumer groups: ${String(e)}`);
    } finally {
      await admin.disconnect().catch(() => {});
    }
    await this.pg
      .query(`DROP SCHEMA IF EXISTS ${ns.pgSchema} CASCADE`)
      .catch((e: unknown) => progress(`could not drop schema ${ns.pgSchema}: ${String(e)}`));
    try {
      let cursor = '0';
      let deleted = 0;
      do {
        // The namespace's prefix and the prefixes made from it (`<prefix>-bk`: the bookkeeping phase's).
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${ns.redisPrefix}[-:]*`, 'COUNT', 5000);
        if (keys.length > 0) deleted += await this.redis.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
      progress(`deleted ${deleted} Redis keys under ${ns.redisPrefix}`);
    } catch (e) {
      progress(`could not delete the Redis keys: ${String(e)}`);
    }
    await Promise.allSettled([
      this.pg.end(),
      this.log.close(),
      this.redis.quit(),
      this.#offsetsAdmin?.close(),
    ]);
  }
}
