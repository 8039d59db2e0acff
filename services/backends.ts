/**
 * The ports a process uses, opened from the configuration: the server's adapter when its TALLY_*
 * variable is set, else the embedded one under TALLY_DATA_DIR (locked to this process). Each
 * adapter gets its own small options, never the whole configuration.
 */
import { join, resolve } from 'node:path';
import type { AggregateStore } from './infra/aggregates/aggregate-store.ts';
import { createEmbeddedAggregateStore } from './infra/aggregates/embedded-aggregate-store.ts';
import { createRedisAggregateStore } from './infra/aggregates/redis-aggregate-store.ts';
import {
  type AlertStores,
  createEmbeddedAlertStores,
  createRedisAlertStores,
} from './infra/alerts/alert-stores.ts';
import { kafkaSecurity, redisSecurity, type TallyConfig } from './infra/config.ts';
import type { CounterStore } from './infra/counters/counter-store.ts';
import { createEmbeddedCounterStore } from './infra/counters/embedded-counter-store.ts';
import { createRedisCounterStore } from './infra/counters/redis-counter-store.ts';
import { lockDataDir } from './infra/data-dir-lock.ts';
import type { BreakerStore } from './infra/delivery/breaker-store.ts';
import { createEmbeddedBreakerStore } from './infra/delivery/embedded-breaker-store.ts';
import { createRedisBreakerStore } from './infra/delivery/redis-breaker-store.ts';
import type { DestinationLimiter } from './infra/limits/destination-limiter.ts';
import { createEmbeddedDestinationLimiter } from './infra/limits/embedded-destination-limiter.ts';
import { createEmbeddedRateLimiter } from './infra/limits/embedded-rate-limiter.ts';
import { failurePolicy, quotaFailurePolicy } from './infra/limits/rate-limiter.ts';
import { createRedisDestinationLimiter } from './infra/limits/redis-destination-limiter.ts';
import { createRedisRateLimiter } from './infra/limits/redis-rate-limiter.ts';
import { createEmbeddedEventLog } from './infra/log/embedded-event-log.ts';
import type { EventLog } from './infra/log/event-log.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import { createPlatformaticEventLog } from './infra/log/platformatic-event-log.ts';
import type { Logger } from './infra/logger.ts';
import type { Registry } from './infra/metrics.ts';
import type { BackendCheck } from './infra/readiness.ts';
import { createPgDatabase } from './infra/sql/pg-database.ts';
import { createPgliteDatabase } from './infra/sql/pglite-database.ts';
import type { SqlDatabase } from './infra/sql/sql-database.ts';
import { createRequestLimits, type RequestLimits } from './pipeline/request-limits.ts';

/** The three ports (DESIGN.md §4). */
export type Port = 'log' | 'counters' | 'sql' | 'alerts' | 'aggregates' | 'breakers';
export const PORTS: readonly Port[] = ['log', 'counters', 'sql', 'alerts', 'aggregates', 'breakers'];

/** The open adapters of a process; a port no role asked for is absent. */
export interface Backends {
  log?: EventLog;
  counters?: CounterStore;
  sql?: SqlDatabase;
  /** The alerter's milestone counts and rule series (Redis, as the counters, else embedded). */
  alerts?: AlertStores;
  /** The sliding-window aggregates per user and per target (Redis, as the counters, else embedded). */
  aggregates?: AggregateStore;
  /** The webhook destinations' circuit breakers, shared by the senders (Redis, as the counters, else in the process). */
  breakers?: BreakerStore;
  /**
   * The destinations' concurrency and rate limits, shared by the senders: opened with the
   * breakers, on the same Redis (else in the process). Advisory: no part of readiness.
   */
  destinationLimits?: DestinationLimiter;
  /** Releases the data directory, when an embedded adapter locked it. */
  releaseDataDir?: () => Promise<void>;
}

const DATA_DIR_HINT =
  'embedded mode runs every role in one process (`tally all`); to run roles in several processes, point ' +
  'them at shared servers with TALLY_KAFKA_BROKERS, TALLY_REDIS_URL and TALLY_PG_URL, or give each its own TALLY_DATA_DIR';

/**
 * Opens the adapter of each of `ports`, all at once (an embedded PostgreSQL's first start takes
 * seconds; the others need not wait for it); on a failure, closes what was opened and rethrows.
 */
export async function openBackends(
  ports: ReadonlySet<Port>,
  config: TallyConfig,
  logger: Logger,
  metrics?: Registry,
): Promise<Backends> {
  const backends: Backends = {};
  const embedded =
    (ports.has('log') && !config.kafka.brokers) ||
    ((ports.has('counters') || ports.has('alerts') || ports.has('aggregates') || ports.has('breakers')) &&
      !config.redis.url &&
      config.redis.clusterNodes.length === 0) ||
    (ports.has('sql') && !config.pg.url);
  if (embedded)
    backends.releaseDataDir = await lockDataDir(resolve(config.dataDir), logger, { hint: DATA_DIR_HINT });
  const dataDir = (folder: 'log' | 'counters' | 'pg' | 'alerts' | 'aggregates') =>
    join(config.dataDir, folder);
  try {
    if (ports.has('counters')) {
      const { url, clusterNodes, keyPrefix } = config.redis;
      backends.counters =
        url || clusterNodes.length > 0
          ? createRedisCounterStore({
              url,
              clusterNodes,
              security: redisSecurity(config.redis),
              keyPrefix,
              metrics,
              windowMaxMembers: config.counters.windowMaxMembers,
            })
          : createEmbeddedCounterStore({
              dataDir: dataDir('counters'),
              windowMaxMembers: config.counters.windowMaxMembers,
            });
    }
    if (ports.has('alerts')) {
      const { url, clusterNodes, keyPrefix } = config.redis;
      backends.alerts =
        url || clusterNodes.length > 0
          ? createRedisAlertStores({
              url,
              clusterNodes,
              security: redisSecurity(config.redis),
              keyPrefix,
              metrics,
            })
          : createEmbeddedAlertStores({ dataDir: dataDir('alerts') });
    }
    if (ports.has('aggregates')) {
      const { url, clusterNodes, keyPrefix } = config.redis;
      const rankedTypes = config.aggregates.rankings;
      backends.aggregates =
        url || clusterNodes.length > 0
          ? createRedisAggregateStore({
              url,
              clusterNodes,
              security: redisSecurity(config.redis),
              keyPrefix,
              metrics,
              rankedTypes,
            })
          : createEmbeddedAggregateStore({ dataDir: dataDir('aggregates'), rankedTypes });
    }
    if (ports.has('breakers')) {
      const { url, clusterNodes, keyPrefix } = config.redis;
      backends.breakers =
        url || clusterNodes.length > 0
          ? createRedisBreakerStore({ url, clusterNodes, security: redisSecurity(config.redis), keyPrefix })
          : createEmbeddedBreakerStore();
      backends.destinationLimits =
        url || clusterNodes.length > 0
          ? createRedisDestinationLimiter({
              url,
              clusterNodes,
              security: redisSecurity(config.redis),
              keyPrefix,
            })
          : createEmbeddedDestinationLimiter();
    }
  } catch (error) {
    await closeBackends(backends);
    throw error;
  }
  const opening: Promise<unknown>[] = [];
  if (ports.has('log'))
    opening.push(openEventLog(config, logger, dataDir('log')).then((log) => (backends.log = log)));
  const openSql = async () =>
    config.pg.url
      ? createPgDatabase({
          url: config.pg.url,
          readUrls: config.pg.readUrls,
          schema: config.pg.schema,
          poolSize: config.pg.poolSize,
          metrics,
        })
      : createPgliteDatabase({ dataDir: dataDir('pg'), schema: config.pg.schema });
  if (ports.has('sql')) opening.push(openSql().then((sql) => (backends.sql = sql)));
  const failed = (await Promise.allSettled(opening)).find((r) => r.status === 'rejected');
  if (failed) {
    await closeBackends(backends);
    throw failed.reason;
  }
  return backends;
}

async function openEventLog(config: TallyConfig, logger: Logger, dataDir: string): Promise<EventLog> {
  if (!config.kafka.brokers) return createEmbeddedEventLog({ dataDir, logger });
  const kafka = {
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    produceTimeoutMs: config.ingest.produceTimeoutMs,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    security: kafkaSecurity(config.kafka),
    logger,
  };
  return config.kafka.client === 'platformatic'
    ? createPlatformaticEventLog(kafka)
    : createKafkaEventLog(kafka);
}

/**
 * A Kafka event log for topic administration alone (the destinations' topics), for a process
 * without the log port: it connects at its first use and is no part of readiness. Undefined
 * without TALLY_KAFKA_BROKERS (the embedded log belongs to the process that opened it).
 */
export function openTopicAdmin(config: TallyConfig, logger: Logger): EventLog | undefined {
  if (!config.kafka.brokers) return undefined;
  return createKafkaEventLog({
    brokers: config.kafka.brokers,
    clientId: `${config.kafka.clientId}-admin`,
    produceTimeoutMs: config.ingest.produceTimeoutMs,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    security: kafkaSecurity(config.kafka),
    logger,
  });
}

/** Closes every open adapter (errors ignored: each has logged its own), then releases the data directory. */
export async function closeBackends(backends: Backends): Promise<void> {
  await Promise.allSettled([
    backends.log?.close(),
    backends.counters?.close(),
    backends.sql?.close(),
    backends.alerts?.close(),
    backends.aggregates?.close(),
    backends.breakers?.close(),
    backends.destinationLimits?.close(),
  ]);
  await backends.releaseDataDir?.();
}

/**
 * A cheap call through each open port, for readiness: the events topic's end offsets (Kafka
 * metadata and a ListOffsets), the counter store's ping (Redis PING, which needs a working
 * connection and authentication), the SQL port's ping (`SELECT 1`); none is counted in the
 * ports' operation metrics.
 */
export function backendChecks(backends: Backends, eventsTopic: string): BackendCheck[] {
  const checks: BackendCheck[] = [];
  const { log, counters, sql, alerts, aggregates, breakers } = backends;
  if (log)
    checks.push({
      name: 'log',
      adapter: log.description,
      check: async () => {
        await log.endOffsets(eventsTopic);
      },
    });
  if (counters)
    checks.push({
      name: 'counters',
      adapter: counters.description,
      check: () => counters.ping(),
    });
  if (sql)
    checks.push({
      name: 'sql',
      adapter: sql.description,
      check: () => sql.ping(),
    });
  if (alerts)
    checks.push({
      name: 'alerts',
      adapter: alerts.description,
      check: () => alerts.ping(),
    });
  if (aggregates)
    checks.push({
      name: 'aggregates',
      adapter: aggregates.description,
      check: () => aggregates.ping(),
    });
  if (breakers)
    checks.push({
      name: 'breakers',
      adapter: breakers.description,
      check: () => breakers.ping(),
    });
  return checks;
}

/**
 * The request path's rate limits (TALLY_RATE_LIMIT_*), or undefined when TALLY_RATE_LIMITS=off:
 * on Redis — TALLY_RATE_LIMIT_REDIS_URL, else the counters' Redis (standalone or Cluster), with
 * the TALLY_REDIS_* credentials and TLS — shared by every process, else in this process (limits
 * per process). A failure of that Redis admits or refuses by TALLY_RATE_LIMIT_FAILURE, counted and
 * logged (infra/limits/rate-limiter.ts `failurePolicy`).
 */
export function openRequestLimits(
  config: TallyConfig,
  logger: Logger,
  metrics?: Registry,
): RequestLimits | undefined {
  const settings = config.rateLimits;
  if (!settings) return undefined;
  const url = settings.redisUrl ?? config.redis.url;
  const clusterNodes = settings.redisUrl === undefined ? config.redis.clusterNodes : [];
  const { limiter, quotas } =
    url || clusterNodes.length > 0
      ? createRedisRateLimiter({
          url,
          clusterNodes,
          security: redisSecurity(config.redis),
          keyPrefix: config.redis.keyPrefix,
        })
      : createEmbeddedRateLimiter();
  const failure = { mode: settings.failure, logger, metrics };
  logger.info('rate limits on', {
    limiter: limiter.description,
    failure: settings.failure,
    ingestPerMin: settings.ingestPerMin,
    readPerMin: settings.readPerMin,
    ipPerMin: settings.ipPerMin ?? 'none',
    trustedProxies: config.trustedProxies.map((c) => c.text),
  });
  return createRequestLimits({
    limiter: failurePolicy(limiter, failure),
    quotas: quotaFailurePolicy(quotas, failure),
    ingestPerMin: settings.ingestPerMin,
    readPerMin: settings.readPerMin,
    ipPerMin: settings.ipPerMin,
    trustedProxies: config.trustedProxies,
  });
}
