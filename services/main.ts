/**
 * `tally <role…>` / `tally all`: wires configuration → adapters → roles in one
 * process, and drains on SIGTERM/SIGINT. `tally migrate` applies the SQL schema.
 */
import { join, resolve } from 'node:path';
import * as aggregator from './aggregator/aggregator.ts';
import * as counter from './counter/counter.ts';
import { replayDeadLetters } from './dlq/replay.ts';
import { defaultEventLimits } from './domain/event-rules.ts';
import * as gateway from './gateway/gateway.ts';
import { IngestService } from './gen/tally/v1/ingest_pb.js';
import { QueryService } from './gen/tally/v1/query_pb.js';
import { ConfigError, loadConfig, type TallyConfig } from './infra/config.ts';
import type { CounterStore } from './infra/counters/counter-store.ts';
import { createEmbeddedCounterStore } from './infra/counters/embedded-counter-store.ts';
import { createRedisCounterStore, redisSecurity } from './infra/counters/redis-counter-store.ts';
import { DataDirInUseError, lockDataDir } from './infra/data-dir-lock.ts';
import { GrpcRegistry } from './infra/grpc/grpc-registry.ts';
import { createGrpcClient, type GrpcServer } from './infra/grpc/grpc-service.ts';
import { type MetricsServer, startMetricsServer } from './infra/http/metrics-server.ts';
import type { Stoppable } from './infra/lifecycle.ts';
import { createEmbeddedEventLog } from './infra/log/embedded-event-log.ts';
import type { EventLog } from './infra/log/event-log.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import { kafkaSecurity } from './infra/log/kafka-security.ts';
import { createPlatformaticEventLog } from './infra/log/platformatic-event-log.ts';
import { createLogger, type Logger } from './infra/logger.ts';
import { createMetricsRegistry, type Registry } from './infra/metrics.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { migrate } from './infra/sql/migrate.ts';
import { createPgDatabase } from './infra/sql/pg-database.ts';
import { createPgliteDatabase } from './infra/sql/pglite-database.ts';
import type { SqlDatabase } from './infra/sql/sql-database.ts';
import { serviceNamedByEnv, startTracing, type Tracing } from './infra/tracing.ts';
import * as ingest from './ingest/ingest.ts';
import * as persister from './persister/persister.ts';
import * as query from './query/query.ts';
import { simulateCommand } from './simulator/simulate-command.ts';

export const ROLES = ['gateway', 'ingest', 'query', 'persister', 'counter', 'aggregator'] as const;
export type Role = (typeof ROLES)[number];

const USAGE = `usage: tally <role...> | tally all | tally migrate | tally simulate [flags] (--help for its flags)
       tally dlq-replay [--from-group <group>]   send dead-lettered events back to the events topic
roles: ${ROLES.join(', ')}
configuration: TALLY_* environment variables (see README.md); with none set, every port
uses its embedded adapter under TALLY_DATA_DIR (default ./data)`;

/** Longest the stop waits for buffered spans to be exported: well within the drain's force deadline. */
const TRACING_FLUSH_MS = 3_000;

/** Thrown for a command line or environment that cannot run; exit status 2. */
class UsageError extends Error {}

function parseRoles(args: readonly string[]): Role[] {
  if (args.length === 0) throw new UsageError('no role given');
  if (args.includes('all')) return [...ROLES];
  const unknown = args.filter((a) => !(ROLES as readonly string[]).includes(a));
  if (unknown.length > 0) throw new UsageError(`unknown role: ${unknown.join(', ')}`);
  return [...new Set(args as Role[])];
}

interface Backends {
  log?: EventLog;
  counters?: CounterStore;
  sql?: SqlDatabase;
  /** Set when an embedded adapter locked the data directory. */
  releaseDataDir?: () => Promise<void>;
}

/**
 * Opens the adapter of each port the roles use: the server's when its TALLY_*
 * variable is set, else the embedded one under TALLY_DATA_DIR (locked to this process).
 */
async function openBackends(
  roles: readonly Role[],
  config: TallyConfig,
  logger: Logger,
  ports: readonly ('log' | 'counters' | 'sql')[] = ['log', 'counters', 'sql'],
  metrics?: Registry,
): Promise<Backends> {
  const uses = (...names: Role[]) => names.filter((n) => roles.includes(n));
  const backends: Backends = {};
  const dataDir = async (port: string) => {
    backends.releaseDataDir ??= await lockDataDir(resolve(config.dataDir), logger, {
      hint:
        'embedded mode runs every role in one process (`tally all`); to run roles in several processes, point ' +
        'them at shared servers with TALLY_KAFKA_BROKERS, TALLY_REDIS_URL and TALLY_PG_URL, or give each its own TALLY_DATA_DIR',
    });
    return join(config.dataDir, port);
  };
  try {
    const logUsers = uses('ingest', 'persister', 'counter', 'aggregator', 'gateway');
    if (logUsers.length > 0 && ports.includes('log')) {
      if (config.kafka.brokers) {
        const kafka = {
          brokers: config.kafka.brokers,
          clientId: config.kafka.clientId,
          produceTimeoutMs: config.ingest.produceTimeoutMs,
          sessionTimeoutMs: config.kafka.sessionTimeoutMs,
          security: kafkaSecurity(config.kafka),
          logger,
        };
        backends.log =
          config.kafka.client === 'platformatic'
            ? createPlatformaticEventLog(kafka)
            : createKafkaEventLog(kafka);
      } else backends.log = await createEmbeddedEventLog({ dataDir: await dataDir('log'), logger });
    }
    const counterUsers = uses('counter', 'query');
    if (counterUsers.length > 0 && ports.includes('counters')) {
      const { url, clusterNodes, keyPrefix, dedupWindowMs } = config.redis;
      backends.counters =
        url || clusterNodes.length > 0
          ? createRedisCounterStore({
              url,
              clusterNodes,
              security: redisSecurity(config.redis),
              keyPrefix,
              dedupWindowMs,
              metrics,
            })
          : createEmbeddedCounterStore({ dataDir: await dataDir('counters'), dedupWindowMs });
    }
    const sqlUsers = uses('persister', 'aggregator', 'query');
    if (sqlUsers.length > 0 && ports.includes('sql')) {
      backends.sql = config.pg.url
        ? createPgDatabase({
            url: config.pg.url,
            readUrls: config.pg.readUrls,
            schema: config.pg.schema,
            poolSize: config.pg.poolSize,
            metrics,
          })
        : await createPgliteDatabase({ dataDir: await dataDir('pg'), schema: config.pg.schema });
    }
  } catch (error) {
    await closeBackends(backends);
    throw error;
  }
  return backends;
}

async function closeBackends(backends: Backends): Promise<void> {
  await Promise.allSettled([backends.log?.close(), backends.counters?.close(), backends.sql?.close()]);
  await backends.releaseDataDir?.();
}

/** The default `service.name` of a process's spans: `tally-all`, or `tally-<role>-…` in the order of ROLES. */
function serviceName(roles: readonly Role[]): string {
  const present = ROLES.filter((r) => roles.includes(r));
  return present.length === ROLES.length ? 'tally-all' : `tally-${present.join('-')}`;
}

/** A running process: its roles, servers and backends, stopped in drain order. */
export interface Running {
  httpPort?: number;
  grpcPort?: number;
  /** Where /metrics is served: the gateway's HTTP port, else the metrics server's. */
  metricsPort: number;
  stop(): Promise<void>;
}

/** Starts `roles` in this process. */
export async function run(roles: readonly Role[], config: TallyConfig, logger: Logger): Promise<Running> {
  const has = (role: Role) => roles.includes(role);
  // One registry for the process: roles running together share each metric.
  const metrics = createMetricsRegistry();
  let ready = false;
  // Without a gateway, /metrics gets a server of its own, up first so that a taken port fails fast.
  const metricsServer: MetricsServer | undefined = has('gateway')
    ? undefined
    : await startMetricsServer({ ...config.metrics, registry: metrics, ready: () => ready });
  if (metricsServer)
    logger.info('metrics listening', { host: config.metrics.host, port: metricsServer.port });
  // Off unless OTEL_* asks for traces (docs/tracing.md); then every component gets the tracer.
  let tracing: Tracing;
  try {
    tracing = await startTracing({ serviceName: serviceName(roles), logger });
  } catch (error) {
    await metricsServer?.close();
    throw error;
  }
  const tracer = tracing.tracer;
  if (tracer)
    logger.info('tracing on', {
      serviceName: serviceNamedByEnv() ? 'from OTEL_* variables' : serviceName(roles),
      exporter: process.env.OTEL_TRACES_EXPORTER?.trim() || 'otlp',
    });
  let backends: Backends;
  try {
    backends = await openBackends(roles, config, logger, undefined, metrics);
  } catch (error) {
    await tracing.shutdown(TRACING_FLUSH_MS);
    await metricsServer?.close();
    throw error;
  }
  for (const port of ['log', 'counters', 'sql'] as const) {
    const backend = backends[port];
    if (backend) logger.info('backend', { port, adapter: backend.description });
  }
  const started: Stoppable[] = [];
  const consumerBase = {
    eventsTopic: config.topics.events,
    dlqTopic: config.topics.dlq,
    maxWaitMs: config.consumer.maxWaitMs,
    lagIntervalMs: config.consumer.lagIntervalMs,
  };
  let grpcServer: GrpcServer | undefined;
  let gatewayRole: gateway.Gateway | undefined;
  const registry = new GrpcRegistry(logger, metrics, tracer);
  const clients: { close(): void }[] = [];

  const stop = async () => {
    ready = false;
    registry.setServing(false); // gRPC health: NOT_SERVING from the first moment of the drain
    await gatewayRole?.stop();
    registry.drain();
    await grpcServer?.shutdown(config.drainTimeoutMs);
    for (const c of clients) c.close();
    for (const role of started.reverse()) {
      await role.stop();
      logger.info('role stopped', { role: role.name });
    }
    await closeBackends(backends);
    await tracing.shutdown(TRACING_FLUSH_MS); // exports the spans of the drain too
    await metricsServer?.close(); // last: the drain itself can be watched
  };

  try {
    if (backends.sql && config.pg.migrate) {
      const applied = await migrate(backends.sql, config.pg.schema);
      if (applied.length > 0) logger.info('applied migrations', { applied });
    }
    if (backends.log) {
      await backends.log.ensureTopics([
        { name: config.topics.events, partitions: config.topics.eventsPartitions },
        { name: config.topics.dlq, partitions: config.topics.eventsPartitions },
      ]);
    }
    if (has('ingest')) {
      started.push(
        await ingest.start(
          { log: backends.log!, grpc: registry, logger, metrics, tracer },
          {
            eventsTopic: config.topics.events,
            eventsPartitions: config.topics.eventsPartitions,
            maxBatchEvents: config.ingest.maxBatchEvents,
            limits: {
              ...defaultEventLimits,
              maxLatenessMs: config.ingest.maxLatenessMs,
              maxFutureMs: config.ingest.maxFutureMs,
            },
            lingerMs: config.ingest.lingerMs,
            maxProduceBatchEvents: config.ingest.maxProduceBatchEvents,
            produceTimeoutMs: config.ingest.produceTimeoutMs,
          },
        ),
      );
    }
    if (has('query')) {
      started.push(
        await query.start(
          { counters: backends.counters!, sql: backends.sql!, grpc: registry, logger },
          { maxTargetChars: defaultEventLimits.maxTargetChars },
        ),
      );
    }
    if (!registry.isEmpty) {
      grpcServer = await registry.listen(config.grpc);
      logger.info('grpc listening', { host: config.grpc.host, port: grpcServer.port });
    }
    if (has('persister')) {
      started.push(
        await persister.start(
          { log: backends.log!, sql: backends.sql!, logger, metrics, tracer },
          { ...consumerBase, groupId: `${config.groupPrefix}group_persistence` },
        ),
      );
    }
    if (has('counter')) {
      started.push(
        await counter.start(
          { log: backends.log!, counters: backends.counters!, logger, metrics, tracer },
          { ...consumerBase, groupId: `${config.groupPrefix}group_realtimecounter` },
        ),
      );
    }
    if (has('aggregator')) {
      started.push(
        await aggregator.start(
          { log: backends.log!, sql: backends.sql!, logger, metrics, tracer },
          {
            ...consumerBase,
            groupId: `${config.groupPrefix}group_aggregation`,
            dedupWindowMs: config.redis.dedupWindowMs,
          },
        ),
      );
    }
    if (has('gateway')) {
      const local = grpcServer ? `127.0.0.1:${grpcServer.port}` : undefined;
      const clientOptions = { maxMessageBytes: config.grpc.maxMessageBytes, tracer };
      const ingestClient = createGrpcClient(
        IngestService,
        has('ingest') ? local! : config.grpc.ingestAddr,
        clientOptions,
      );
      const queryClient = createGrpcClient(
        QueryService,
        has('query') ? local! : config.grpc.queryAddr,
        clientOptions,
      );
      clients.push(ingestClient, queryClient);
      const { hostname } = await import('node:os');
      gatewayRole = await gateway.start(
        {
          ingest: ingestClient,
          query: queryClient,
          logger,
          metrics,
          tracer,
          // The dashboard's live feed: this process's own group, reading from the end of the log.
          live: {
            log: backends.log!,
            eventsTopic: config.topics.events,
            groupId: `${config.groupPrefix}gateway-live-${hostname()}-${process.pid}`,
            maxWaitMs: config.consumer.maxWaitMs,
          },
        },
        {
          ...config.http,
          drainTimeoutMs: config.drainTimeoutMs,
          // Calls to ingest carry at most what ingest takes in one call, well under the gRPC limit.
          coalesce: {
            maxBatchEvents: config.ingest.maxBatchEvents,
            maxBatchBytes: Math.floor(config.grpc.maxMessageBytes / 2),
          },
        },
      );
    }
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  const metricsPort = metricsServer?.port ?? gatewayRole!.port;
  if (!metricsServer)
    logger.info('metrics listening', { host: config.http.host, port: metricsPort, on: 'gateway' });
  ready = true;
  registry.setServing(true);
  logger.info('tally started', { roles });
  return { httpPort: gatewayRole?.port, grpcPort: grpcServer?.port, metricsPort, stop };
}

async function main(args: readonly string[]): Promise<void> {
  let config: TallyConfig;
  let roles: Role[];
  try {
    config = loadConfig();
    if (args[0] === 'simulate') {
      const aborter = new AbortController();
      const onSignal = () => aborter.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      process.exitCode = await simulateCommand(args.slice(1), {
        out: process.stdout,
        err: process.stderr,
        signal: aborter.signal,
      });
      return;
    }
    if (args[0] === 'dlq-replay') {
      const flags = args.slice(1);
      const at = flags.indexOf('--from-group');
      const fromGroup = at >= 0 ? flags[at + 1] : undefined;
      if ((at >= 0 && !fromGroup) || flags.some((f, i) => f !== '--from-group' && i !== at + 1))
        throw new UsageError(`dlq-replay: unknown or incomplete flags: ${flags.join(' ')}`);
      const logger = createLogger(config.logLevel);
      const backends = await openBackends(['ingest'], config, logger, ['log']);
      try {
        const summary = await replayDeadLetters({
          log: backends.log!,
          logger,
          dlqTopic: config.topics.dlq,
          eventsTopic: config.topics.events,
          groupId: `${config.groupPrefix}dlq-replay`,
          fromGroup:
            fromGroup === undefined || fromGroup.startsWith(config.groupPrefix)
              ? fromGroup
              : config.groupPrefix + fromGroup,
        });
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      } finally {
        await closeBackends(backends);
      }
      return;
    }
    if (args[0] === 'migrate') {
      const logger = createLogger(config.logLevel);
      const backends = await openBackends(['persister'], config, logger, ['sql']);
      const applied = await migrate(backends.sql!, config.pg.schema);
      logger.info('migrations applied', {
        applied,
        schema: config.pg.schema,
        adapter: backends.sql!.description,
      });
      await closeBackends(backends);
      return;
    }
    roles = parseRoles(args);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof DataDirInUseError) {
      process.stderr.write(`tally: ${error.message}\n${error instanceof UsageError ? `${USAGE}\n` : ''}`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, { pid: process.pid });
  handleProcessWarnings(logger);
  let running: Running;
  try {
    running = await run(roles, config, logger);
  } catch (error) {
    if (error instanceof UsageError || error instanceof DataDirInUseError) {
      process.stderr.write(`tally: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    logger.error('start-up failed', { error });
    process.exitCode = 1;
    return;
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.error('second signal: exiting without draining', { signal });
      process.exit(130);
    }
    stopping = true;
    logger.info('draining', { signal, drainTimeoutMs: config.drainTimeoutMs });
    const force = setTimeout(() => {
      logger.error('drain timed out: exiting', { drainTimeoutMs: config.drainTimeoutMs });
      process.exit(1);
    }, config.drainTimeoutMs + 5_000);
    force.unref();
    running.stop().then(
      () => {
        logger.info('stopped');
        process.exitCode = 0;
        // Everything is stopped and committed: a client's reconnect timer left behind must not
        // hold the process until the drain deadline and turn a clean stop into a failure.
        setTimeout(() => {
          logger.warn('exiting with handles still open after the stop', {
            resources: process.getActiveResourcesInfo(),
          });
          process.exit(0);
        }, 1_000).unref();
      },
      (error: unknown) => {
        logger.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
