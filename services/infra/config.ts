/**
 * Configuration: parsed once from the environment with a schema into a frozen
 * object. A bad value fails at start-up with a message naming the variable.
 * Every variable is listed, with its default, in the README.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseApiKey } from '../domain/api-keys.ts';
import { type Cidr, parseCidr } from '../domain/client-address.ts';
import { defaultEventLimits } from '../domain/event-rules.ts';
import { parseCidr as parseDeliveryCidr } from '../domain/network-address.ts';
import {
  DEFAULT_JWT_ALGORITHMS,
  type JwtVerifierOptions,
  PUBLIC_KEY_JWT_ALGORITHMS,
} from './auth/jwt-verifier.ts';
import type { RedisSecurity } from './counters/redis-counter-store.ts';
import type { KafkaSecurity } from './log/kafka-security.ts';
import {
  readTlsMaterial,
  TlsFileError,
  type TlsFileRole,
  type TlsFiles,
  type TlsMaterial,
} from './tls/tls-files.ts';

/**
 * Events a credential may write per minute by default (docs/security.md, "Rate limits"): 50,000 a
 * second, above what one server sends in normal use, so that the default stops a runaway client
 * rather than a busy one; a key's override sets its own.
 */
export const DEFAULT_INGEST_PER_MIN = 3_000_000;
/** Reads a credential may make per minute by default (1,000 a second). */
export const DEFAULT_READ_PER_MIN = 60_000;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== ''),
);
const bool = z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1');
const name = z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits and . _ - only');
/** A comma-separated list of event types, or `none` (empty: every type). */
const typeList = (what: string) =>
  z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== ''),
    )
    .refine((types) => !types.includes('none') || types.length === 1, {
      message: `"none" turns ${what} off and cannot be listed with types`,
    });
/** Every type when the list is empty, none for `none`, else the types listed. */
const typesSetting = (types: readonly string[]): 'all' | readonly string[] =>
  types.length === 0 ? 'all' : types[0] === 'none' ? [] : types;
/** An https URL, or http to a loopback address (a JWKS served on the same host). */
const secureUrl = z
  .string()
  .url()
  .refine((s) => {
    if (!URL.canParse(s)) return true; // reported by url()
    const url = new URL(s);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
  }, 'must be https:// (http:// only to localhost)');
const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;
const jwtAlgorithms = list.pipe(z.array(z.string()).min(1)).superRefine((algorithms, ctx) => {
  const bad = algorithms.find((a) => !PUBLIC_KEY_JWT_ALGORITHMS.includes(a));
  if (bad !== undefined)
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(bad)} is not allowed: each one of ${PUBLIC_KEY_JWT_ALGORITHMS.join(', ')} (never none; HS* needs a shared secret, which Tally does not take)`,
    });
});

/** A comma-separated list of CIDR ranges (or single addresses), each checked. */
const cidrList = list.transform((items, ctx) => {
  const ranges: Cidr[] = [];
  for (const item of items) {
    const parsed = parseCidr(item);
    if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    else ranges.push(parsed);
  }
  return ranges;
});
/** CIDR blocks a webhook may reach (network-address.ts's syntax, IPv4 and IPv6), each checked. */
const deliveryCidrs = list.superRefine((items, ctx) => {
  for (const item of items)
    try {
      parseDeliveryCidr(item);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    }
});
/** A rate in units per minute: at most 60,000,000 (a unit per microsecond, the limiter's finest). */
const perMinute = int(1, 60_000_000);

/** Each variable with its default; the README's configuration table lists the same. */
const schema = z.object({
  TALLY_DATA_DIR: z.string().min(1).default('./data'),
  TALLY_KAFKA_BROKERS: list.optional(),
  TALLY_KAFKA_CLIENT_ID: name.default('tally'),
  TALLY_KAFKA_SESSION_TIMEOUT_MS: int(6_000, 300_000).default(30_000),
  TALLY_KAFKA_CLIENT: z.enum(['kafkajs', 'platformatic']).default('kafkajs'),
  TALLY_KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  TALLY_KAFKA_SASL_USERNAME: z.string().optional(),
  TALLY_KAFKA_SASL_PASSWORD: z.string().optional(),
  TALLY_KAFKA_TLS: bool.default(false),
  TALLY_KAFKA_TLS_CA_FILE: z.string().min(1).optional(),
  TALLY_REDIS_URL: z.string().url().optional(),
  TALLY_REDIS_CLUSTER_NODES: list.optional(),
  TALLY_REDIS_USERNAME: z.string().min(1).optional(),
  TALLY_REDIS_PASSWORD: z.string().optional(),
  TALLY_REDIS_TLS: bool.default(false),
  TALLY_REDIS_TLS_CA_FILE: z.string().min(1).optional(),
  TALLY_PG_URL: z.string().url().optional(),
  TALLY_PG_READ_URLS: list.optional(),
  TALLY_PG_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier')
    .default('public'),
  TALLY_PG_POOL_SIZE: int(1, 1000).default(10),
  TALLY_PG_MIGRATE: bool.default(true),
  TALLY_BIND_HOST: z.string().min(1).default('0.0.0.0'),
  TALLY_HTTP_PORT: int(0, 65535).default(8080),
  TALLY_GRPC_PORT: int(0, 65535).default(50051),
  TALLY_METRICS_PORT: int(0, 65535).default(9464),
  TALLY_TLS_CERT_FILE: z.string().min(1).optional(),
  TALLY_TLS_KEY_FILE: z.string().min(1).optional(),
  TALLY_TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  TALLY_GRPC_TLS: bool.default(false),
  TALLY_GRPC_TLS_CA_FILE: z.string().min(1).optional(),
  TALLY_GRPC_TLS_CLIENT_CERT_FILE: z.string().min(1).optional(),
  TALLY_GRPC_TLS_CLIENT_KEY_FILE: z.string().min(1).optional(),
  TALLY_INGEST_ADDR: z.string().min(1).default('127.0.0.1:50051'),
  TALLY_QUERY_ADDR: z.string().min(1).default('127.0.0.1:50051'),
  TALLY_EVENTS_TOPIC: name.default('events'),
  TALLY_EVENTS_PARTITIONS: int(1, 10_000).default(12),
  TALLY_DLQ_TOPIC: name.default('events.dlq'),
  TALLY_ACCEPTED_TOPIC: name.default('events.accepted'),
  TALLY_NOTIFICATIONS_TOPIC: name.default('notifications'),
  TALLY_GROUP_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/)
    .default(''),
  TALLY_REDIS_PREFIX: name.default('tally'),
  TALLY_WINDOW_MAX_MEMBERS: int(100, 1_000_000).default(1000),
  TALLY_AGGREGATE_TYPES: typeList('the aggregates'),
  TALLY_AGGREGATE_RANKINGS: typeList('the rankings'),
  TALLY_MAX_LATENESS_MS: int(0).default(defaultEventLimits.maxLatenessMs),
  TALLY_MAX_FUTURE_MS: int(0).default(defaultEventLimits.maxFutureMs),
  TALLY_MAX_BATCH_EVENTS: int(1, 100_000).default(1000),
  TALLY_HTTP_MAX_BODY_BYTES: int(1024).default(1024 * 1024),
  TALLY_HTTP_REQUEST_TIMEOUT_MS: int(100).default(30_000),
  TALLY_GRPC_MAX_MESSAGE_BYTES: int(1024).default(4 * 1024 * 1024),
  TALLY_GRPC_REFLECTION: bool.default(true),
  TALLY_PRODUCE_LINGER_MS: int(0, 1000).default(0),
  TALLY_PRODUCE_MAX_BATCH_EVENTS: int(1, 100_000).default(5000),
  TALLY_PRODUCE_TIMEOUT_MS: int(100).default(10_000),
  TALLY_CONSUMER_MAX_WAIT_MS: int(1, 30_000).default(60),
  TALLY_CONSUMER_PACE_MS: int(0, 10_000).default(0),
  TALLY_CONSUMER_MIN_BYTES: int(1, 16 * 1024 * 1024).default(16 * 1024),
  TALLY_AGGREGATOR_MIN_BYTES: int(1, 16 * 1024 * 1024).default(256 * 1024),
  TALLY_AGGREGATOR_MAX_WAIT_MS: int(1, 30_000).default(1_000),
  TALLY_CONSUMER_LAG_INTERVAL_MS: int(100, 3_600_000).default(5_000),
  TALLY_ALERT_RULES_REFRESH_MS: int(100, 3_600_000).default(2_000),
  TALLY_ALERT_LATENESS_MS: int(0, 86_400_000).default(60_000),
  TALLY_DESTINATIONS_REFRESH_MS: int(100, 3_600_000).default(2_000),
  TALLY_PROJECTIONS_REFRESH_MS: int(100, 3_600_000).default(2_000),
  TALLY_DRAIN_TIMEOUT_MS: int(0).default(15_000),
  TALLY_DELIVERY_ALLOW_CIDRS: deliveryCidrs.optional(),
  TALLY_SENDER_INLINE_MS: int(0, 60_000).default(1_000),
  TALLY_SENDER_POLL_MS: int(50, 60_000).default(1_000),
  TALLY_SENDER_LEASE_MARGIN_MS: int(1_000, 3_600_000).default(30_000),
  TALLY_DELIVERY_LOG_RETENTION_HOURS: int(1, 8_760).default(72),
  TALLY_DEAD_LETTER_RETENTION_DAYS: int(1, 3_650).default(30),
  TALLY_EVENT_RETENTION_DAYS: int(0, 36_500).default(0),
  TALLY_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  TALLY_NOTIFICATIONS_POLL_MS: int(10, 60_000).default(250),
  TALLY_NOTIFICATIONS_REPLAY_MAX: int(1, 100_000).default(1_000),
  TALLY_JWT_JWKS_URL: secureUrl.optional(),
  TALLY_JWT_PUBLIC_KEY_FILE: z.string().min(1).optional(),
  TALLY_JWT_ISSUER: z.string().min(1).optional(),
  TALLY_JWT_AUDIENCE: list.pipe(z.array(z.string()).min(1)).optional(),
  TALLY_JWT_ALGORITHMS: jwtAlgorithms.default([...DEFAULT_JWT_ALGORITHMS]),
  TALLY_JWT_SCOPES_CLAIM: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_:.-]*$/, 'a claim name')
    .default('scope'),
  TALLY_JWT_CLOCK_TOLERANCE_S: int(0, 300).default(30),
  TALLY_AUTH: z.enum(['on', 'off']).optional(),
  TALLY_BOOTSTRAP_ADMIN_KEY: z.string().optional(),
  TALLY_METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  TALLY_RATE_LIMITS: z.enum(['on', 'off']).default('on'),
  TALLY_RATE_LIMIT_INGEST_PER_MIN: perMinute.default(DEFAULT_INGEST_PER_MIN),
  TALLY_RATE_LIMIT_READ_PER_MIN: perMinute.default(DEFAULT_READ_PER_MIN),
  TALLY_RATE_LIMIT_IP_PER_MIN: perMinute.optional(),
  TALLY_RATE_LIMIT_FAILURE: z.enum(['open', 'closed']).default('open'),
  TALLY_RATE_LIMIT_REDIS_URL: z.string().url().optional(),
  TALLY_TRUSTED_PROXIES: cidrList.optional(),
});

/** The names of every variable the schema reads (the README's configuration table lists each). */
export const configVariables: readonly string[] = Object.freeze(Object.keys(schema.shape));

/** Everything a process needs to know, frozen. */
export interface TallyConfig {
  /** Where the embedded adapters keep their files (ports without a server configured). */
  dataDir: string;
  kafka: {
    brokers: string[] | undefined;
    clientId: string;
    sessionTimeoutMs: number;
    /** The Kafka client library behind the event log port. */
    client: 'kafkajs' | 'platformatic';
    /** SASL authentication, when the brokers ask for it. */
    sasl:
      | { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string }
      | undefined;
    /** TLS to the brokers; `caFile`: a PEM bundle trusted besides the system's CAs. */
    tls: { caFile: string | undefined } | undefined;
  };
  redis: {
    url: string | undefined;
    clusterNodes: string[];
    keyPrefix: string;
    /** AUTH as `username` (an ACL user; absent: `default`); applies over credentials in the URL. */
    auth: { username: string | undefined; password: string } | undefined;
    /** TLS to Redis (also on for a `rediss://` URL); `caFile`: a PEM bundle trusted besides the system's CAs. */
    tls: { caFile: string | undefined } | undefined;
  };
  /** The counter store, Redis or embedded: members each hour's leaderboard window keeps. */
  counters: { windowMaxMembers: number };
  /**
   * The event types whose sliding-window aggregates the counter role keeps per user and per
   * target (docs/aggregates.md): `all`, or a list, or none (TALLY_AGGREGATE_TYPES: empty, a list, `none`).
   */
  aggregates: {
    types: 'all' | readonly string[];
    /** The types ranked over sliding windows (TALLY_AGGREGATE_RANKINGS, same forms): every aggregated type by default. */
    rankings: 'all' | readonly string[];
  };
  pg: { url: string | undefined; readUrls: string[]; schema: string; poolSize: number; migrate: boolean };
  http: { host: string; port: number; maxBodyBytes: number; requestTimeoutMs: number };
  grpc: {
    host: string;
    port: number;
    maxMessageBytes: number;
    ingestAddr: string;
    queryAddr: string;
    /** Whether gRPC servers answer server reflection (grpc.reflection.v1 and v1alpha). */
    reflection: boolean;
  };
  /** The /metrics server of a process without a gateway (a gateway serves /metrics on its HTTP port). */
  metrics: { host: string; port: number };
  /**
   * TLS on the listeners (HTTP, metrics, gRPC), followed as the files change; with `clientCaFile`,
   * gRPC clients must present a certificate signed by it (docs/security.md).
   */
  tls: { certFile: string; keyFile: string; clientCaFile: string | undefined } | undefined;
  /**
   * TLS when dialling ingest and query (TALLY_GRPC_TLS): `caFile` trusted instead of the system's
   * CAs; `certFile`/`keyFile`: the certificate presented to a server asking for one.
   */
  grpcClientTls:
    | { caFile: string | undefined; certFile: string | undefined; keyFile: string | undefined }
    | undefined;
  /**
   * `events`: what ingest writes; `accepted`: the events the persister stored, first sight of
   * each id only, partition for partition (what the other sinks read); `dlq`: poison records.
   */
  topics: { events: string; eventsPartitions: number; accepted: string; dlq: string; notifications: string };
  groupPrefix: string;
  ingest: {
    maxLatenessMs: number;
    maxFutureMs: number;
    maxBatchEvents: number;
    lingerMs: number;
    maxProduceBatchEvents: number;
    produceTimeoutMs: number;
  };
  /** `paceMs`: pacing of small batches (event-consumer.ts). */
  /**
   * `minBytes`: what a sink's fetch waits for, up to `maxWaitMs`; `aggregator`: the same two for the
   * aggregator alone, whose summaries may be seconds behind (docs/performance.md).
   */
  consumer: {
    maxWaitMs: number;
    minBytes: number;
    lagIntervalMs: number;
    paceMs: number;
    aggregator: { maxWaitMs: number; minBytes: number };
  };
  /**
   * The alerter: how often it reads the alert rules' change feed (ms), and how late an event may
   * be behind the latest of its series and still count for threshold and spike rules (ms).
   */
  alerts: { rulesRefreshMs: number; latenessMs: number };
  /** The projector (docs/entities.md): how often it reads the projections (ms). */
  projections: { refreshMs: number };
  /**
   * The senders (docs/delivery.md, "The sender"): how often the destinations' change feed is read
   * (ms); the CIDR blocks webhooks may reach although not public (TALLY_DELIVERY_ALLOW_CIDRS);
   * how long a batch delivers before parking the rest (ms); how often parked deliveries are
   * polled (ms); what a lease adds to an attempt's timeout (ms); how long finished deliveries are
   * kept in the delivery log (delivered: hours, dead-lettered: days).
   */
  delivery: {
    refreshMs: number;
    allowCidrs: string[];
    inlineMs: number;
    pollMs: number;
    leaseMarginMs: number;
    deliveredRetentionMs: number;
    deadRetentionMs: number;
  };
  /**
   * Days of stored events (the `event` table) kept before today's, by event time; 0 keeps every
   * day. Whole days are dropped (docs/architecture.md, "The event table by day").
   */
  eventRetentionDays: number;
  drainTimeoutMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * WatchNotifications (query role): how often the store is read while someone watches (ms), and
   * the most notifications a resuming watch is replayed.
   */
  notifications: { pollMs: number; replayMax: number };
  /**
   * End users' JWTs (docs/security.md), when a JWKS URL or a public key file is set: the keys,
   * the required `iss` and `aud`, the allowed algorithms, the scopes claim and the clock skew.
   */
  jwt:
    | {
        jwksUrl: string | undefined;
        publicKeyFile: string | undefined;
        issuer: string;
        audience: string[];
        algorithms: string[];
        scopesClaim: string;
        clockToleranceSec: number;
      }
    | undefined;
  /**
   * Access control (docs/security.md). `mode`: TALLY_AUTH as set (undefined: decided by
   * {@link resolveAuthMode}); `bootstrapAdminKey`: a `tly_sk_` key stored (hashed) with scope
   * admin at start-up if absent; `metricsToken`: the bearer token `/metrics` asks for.
   */
  auth: {
    mode: 'on' | 'off' | undefined;
    bootstrapAdminKey: string | undefined;
    metricsToken: string | undefined;
  };
  /**
   * Rate limits and quotas (docs/security.md, "Rate limits"); undefined when TALLY_RATE_LIMITS=off.
   * Per minute: `ingestPerMin` events and `readPerMin` reads per credential (a key's own limits
   * override them), `ipPerMin` requests per client address (none: no limit per address).
   * `redisUrl`: the limiter's own Redis (default: the counters' Redis, else in process);
   * `failure`: what a check does when that Redis fails.
   */
  rateLimits:
    | {
        ingestPerMin: number;
        readPerMin: number;
        ipPerMin: number | undefined;
        failure: 'open' | 'closed';
        redisUrl: string | undefined;
      }
    | undefined;
  /** Peers whose `X-Forwarded-For` is believed (TALLY_TRUSTED_PROXIES); empty: none. */
  trustedProxies: readonly Cidr[];
}

/** Thrown when the environment holds a bad value; the message names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses `env` (default: process.env) into a frozen TallyConfig. */
export function loadConfig(env: Record<string, string | undefined> = process.env): TallyConfig {
  const present = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k.startsWith('TALLY_') && v !== ''),
  );
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const missing = e.TALLY_KAFKA_SASL_MECHANISM
    ? (['TALLY_KAFKA_SASL_USERNAME', 'TALLY_KAFKA_SASL_PASSWORD'] as const).filter((k) => e[k] === undefined)
    : [];
  const conflicts = missing.map((k) => `${k}: required with TALLY_KAFKA_SASL_MECHANISM`);
  const redisTls = e.TALLY_REDIS_TLS || e.TALLY_REDIS_URL?.startsWith('rediss://') === true;
  if (e.TALLY_REDIS_USERNAME !== undefined && e.TALLY_REDIS_PASSWORD === undefined)
    conflicts.push('TALLY_REDIS_PASSWORD: required with TALLY_REDIS_USERNAME');
  if (e.TALLY_REDIS_TLS_CA_FILE !== undefined && !redisTls)
    conflicts.push(
      'TALLY_REDIS_TLS_CA_FILE: set without TLS: set TALLY_REDIS_TLS=true (or a rediss:// TALLY_REDIS_URL)',
    );
  conflicts.push(...tlsConflicts(e));
  const jwtKeys = [e.TALLY_JWT_JWKS_URL, e.TALLY_JWT_PUBLIC_KEY_FILE].filter((v) => v !== undefined);
  if (jwtKeys.length > 1)
    conflicts.push(
      'TALLY_JWT_PUBLIC_KEY_FILE: set with TALLY_JWT_JWKS_URL: tokens are verified with one or the other',
    );
  for (const k of ['TALLY_JWT_ISSUER', 'TALLY_JWT_AUDIENCE'] as const)
    if (jwtKeys.length > 0 && e[k] === undefined)
      conflicts.push(`${k}: required with TALLY_JWT_JWKS_URL or TALLY_JWT_PUBLIC_KEY_FILE`);
    else if (jwtKeys.length === 0 && e[k] !== undefined)
      conflicts.push(
        `${k}: set without TALLY_JWT_JWKS_URL or TALLY_JWT_PUBLIC_KEY_FILE to verify tokens with`,
      );
  if (e.TALLY_BOOTSTRAP_ADMIN_KEY !== undefined) {
    // Never echoed: the message says what is wrong, not what was given.
    const parsed = parseApiKey(e.TALLY_BOOTSTRAP_ADMIN_KEY);
    if (!parsed.ok) conflicts.push(`TALLY_BOOTSTRAP_ADMIN_KEY: ${parsed.message}`);
    else if (parsed.kind !== 'secret')
      conflicts.push('TALLY_BOOTSTRAP_ADMIN_KEY: must be a secret key (tly_sk_…), not an ingest key');
  }
  // An event ingest still accepts must find its day kept: else it is stored and dropped at once.
  if (
    e.TALLY_EVENT_RETENTION_DAYS > 0 &&
    e.TALLY_EVENT_RETENTION_DAYS * 86_400_000 <= e.TALLY_MAX_LATENESS_MS
  )
    conflicts.push(
      `TALLY_EVENT_RETENTION_DAYS: must keep more than TALLY_MAX_LATENESS_MS (${e.TALLY_MAX_LATENESS_MS} ms), ` +
        'or events ingest accepts would be dropped as soon as stored',
    );
  if (e.TALLY_RATE_LIMITS === 'off')
    for (const k of [
      'TALLY_RATE_LIMIT_INGEST_PER_MIN',
      'TALLY_RATE_LIMIT_READ_PER_MIN',
      'TALLY_RATE_LIMIT_IP_PER_MIN',
      'TALLY_RATE_LIMIT_REDIS_URL',
    ] as const)
      if (present[k] !== undefined)
        conflicts.push(`${k}: set with TALLY_RATE_LIMITS=off, which checks no limit`);
  // Each topic has one kind of record: two roles sharing one would read each other's records.
  const topics = [
    'TALLY_EVENTS_TOPIC',
    'TALLY_ACCEPTED_TOPIC',
    'TALLY_DLQ_TOPIC',
    'TALLY_NOTIFICATIONS_TOPIC',
  ] as const;
  for (const [i, k] of topics.entries())
    for (const other of topics.slice(0, i))
      if (e[k] === e[other]) conflicts.push(`${k}: must differ from ${other} (both are "${e[k]}")`);
  if (conflicts.length > 0)
    throw new ConfigError(`invalid configuration:\n${conflicts.map((c) => `  ${c}`).join('\n')}`);
  return deepFreeze({
    dataDir: e.TALLY_DATA_DIR,
    kafka: {
      brokers: e.TALLY_KAFKA_BROKERS,
      clientId: e.TALLY_KAFKA_CLIENT_ID,
      sessionTimeoutMs: e.TALLY_KAFKA_SESSION_TIMEOUT_MS,
      client: e.TALLY_KAFKA_CLIENT,
      sasl: e.TALLY_KAFKA_SASL_MECHANISM
        ? {
            mechanism: e.TALLY_KAFKA_SASL_MECHANISM,
            username: e.TALLY_KAFKA_SASL_USERNAME!,
            password: e.TALLY_KAFKA_SASL_PASSWORD!,
          }
        : undefined,
      tls: e.TALLY_KAFKA_TLS || e.TALLY_KAFKA_TLS_CA_FILE ? { caFile: e.TALLY_KAFKA_TLS_CA_FILE } : undefined,
    },
    redis: {
      url: e.TALLY_REDIS_URL,
      clusterNodes: e.TALLY_REDIS_CLUSTER_NODES ?? [],
      keyPrefix: e.TALLY_REDIS_PREFIX,
      auth:
        e.TALLY_REDIS_PASSWORD !== undefined
          ? { username: e.TALLY_REDIS_USERNAME, password: e.TALLY_REDIS_PASSWORD }
          : undefined,
      tls: redisTls ? { caFile: e.TALLY_REDIS_TLS_CA_FILE } : undefined,
    },
    counters: { windowMaxMembers: e.TALLY_WINDOW_MAX_MEMBERS },
    aggregates: {
      types: typesSetting(e.TALLY_AGGREGATE_TYPES),
      rankings: typesSetting(e.TALLY_AGGREGATE_RANKINGS),
    },
    pg: {
      url: e.TALLY_PG_URL,
      readUrls: e.TALLY_PG_READ_URLS ?? [],
      schema: e.TALLY_PG_SCHEMA,
      poolSize: e.TALLY_PG_POOL_SIZE,
      migrate: e.TALLY_PG_MIGRATE,
    },
    http: {
      host: e.TALLY_BIND_HOST,
      port: e.TALLY_HTTP_PORT,
      maxBodyBytes: e.TALLY_HTTP_MAX_BODY_BYTES,
      requestTimeoutMs: e.TALLY_HTTP_REQUEST_TIMEOUT_MS,
    },
    grpc: {
      host: e.TALLY_BIND_HOST,
      port: e.TALLY_GRPC_PORT,
      maxMessageBytes: e.TALLY_GRPC_MAX_MESSAGE_BYTES,
      ingestAddr: e.TALLY_INGEST_ADDR,
      queryAddr: e.TALLY_QUERY_ADDR,
      reflection: e.TALLY_GRPC_REFLECTION,
    },
    metrics: { host: e.TALLY_BIND_HOST, port: e.TALLY_METRICS_PORT },
    tls:
      e.TALLY_TLS_CERT_FILE !== undefined && e.TALLY_TLS_KEY_FILE !== undefined
        ? {
            certFile: e.TALLY_TLS_CERT_FILE,
            keyFile: e.TALLY_TLS_KEY_FILE,
            clientCaFile: e.TALLY_TLS_CLIENT_CA_FILE,
          }
        : undefined,
    grpcClientTls: e.TALLY_GRPC_TLS
      ? {
          caFile: e.TALLY_GRPC_TLS_CA_FILE,
          certFile: e.TALLY_GRPC_TLS_CLIENT_CERT_FILE,
          keyFile: e.TALLY_GRPC_TLS_CLIENT_KEY_FILE,
        }
      : undefined,
    topics: {
      events: e.TALLY_EVENTS_TOPIC,
      eventsPartitions: e.TALLY_EVENTS_PARTITIONS,
      accepted: e.TALLY_ACCEPTED_TOPIC,
      dlq: e.TALLY_DLQ_TOPIC,
      notifications: e.TALLY_NOTIFICATIONS_TOPIC,
    },
    groupPrefix: e.TALLY_GROUP_PREFIX,
    ingest: {
      maxLatenessMs: e.TALLY_MAX_LATENESS_MS,
      maxFutureMs: e.TALLY_MAX_FUTURE_MS,
      maxBatchEvents: e.TALLY_MAX_BATCH_EVENTS,
      lingerMs: e.TALLY_PRODUCE_LINGER_MS,
      maxProduceBatchEvents: e.TALLY_PRODUCE_MAX_BATCH_EVENTS,
      produceTimeoutMs: e.TALLY_PRODUCE_TIMEOUT_MS,
    },
    consumer: {
      maxWaitMs: e.TALLY_CONSUMER_MAX_WAIT_MS,
      lagIntervalMs: e.TALLY_CONSUMER_LAG_INTERVAL_MS,
      paceMs: e.TALLY_CONSUMER_PACE_MS,
      minBytes: e.TALLY_CONSUMER_MIN_BYTES,
      aggregator: { maxWaitMs: e.TALLY_AGGREGATOR_MAX_WAIT_MS, minBytes: e.TALLY_AGGREGATOR_MIN_BYTES },
    },
    alerts: { rulesRefreshMs: e.TALLY_ALERT_RULES_REFRESH_MS, latenessMs: e.TALLY_ALERT_LATENESS_MS },
    projections: { refreshMs: e.TALLY_PROJECTIONS_REFRESH_MS },
    delivery: {
      refreshMs: e.TALLY_DESTINATIONS_REFRESH_MS,
      allowCidrs: e.TALLY_DELIVERY_ALLOW_CIDRS ?? [],
      inlineMs: e.TALLY_SENDER_INLINE_MS,
      pollMs: e.TALLY_SENDER_POLL_MS,
      leaseMarginMs: e.TALLY_SENDER_LEASE_MARGIN_MS,
      deliveredRetentionMs: e.TALLY_DELIVERY_LOG_RETENTION_HOURS * 3_600_000,
      deadRetentionMs: e.TALLY_DEAD_LETTER_RETENTION_DAYS * 86_400_000,
    },
    eventRetentionDays: e.TALLY_EVENT_RETENTION_DAYS,
    drainTimeoutMs: e.TALLY_DRAIN_TIMEOUT_MS,
    logLevel: e.TALLY_LOG_LEVEL,
    notifications: { pollMs: e.TALLY_NOTIFICATIONS_POLL_MS, replayMax: e.TALLY_NOTIFICATIONS_REPLAY_MAX },
    jwt:
      jwtKeys.length > 0
        ? {
            jwksUrl: e.TALLY_JWT_JWKS_URL,
            publicKeyFile: e.TALLY_JWT_PUBLIC_KEY_FILE,
            issuer: e.TALLY_JWT_ISSUER!,
            audience: e.TALLY_JWT_AUDIENCE!,
            algorithms: e.TALLY_JWT_ALGORITHMS,
            scopesClaim: e.TALLY_JWT_SCOPES_CLAIM,
            clockToleranceSec: e.TALLY_JWT_CLOCK_TOLERANCE_S,
          }
        : undefined,
    auth: {
      mode: e.TALLY_AUTH,
      bootstrapAdminKey: e.TALLY_BOOTSTRAP_ADMIN_KEY,
      metricsToken: e.TALLY_METRICS_TOKEN,
    },
    rateLimits:
      e.TALLY_RATE_LIMITS === 'on'
        ? {
            ingestPerMin: e.TALLY_RATE_LIMIT_INGEST_PER_MIN,
            readPerMin: e.TALLY_RATE_LIMIT_READ_PER_MIN,
            ipPerMin: e.TALLY_RATE_LIMIT_IP_PER_MIN,
            failure: e.TALLY_RATE_LIMIT_FAILURE,
            redisUrl: e.TALLY_RATE_LIMIT_REDIS_URL,
          }
        : undefined,
    trustedProxies: e.TALLY_TRUSTED_PROXIES ?? [],
  });
}

/** Whether `host` is a loopback address (or name): nobody else can reach what listens on it. */
export function isLoopbackHost(host: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$/.test(host);
}

/** Access control as a process runs it, and why (for the start-up log). */
export interface AuthMode {
  on: boolean;
  /** `explicit` (TALLY_AUTH), `servers` (a server backend is configured), `credentials`, `loopback`. */
  why: 'explicit' | 'servers' | 'credentials' | 'loopback';
}

/**
 * The access control mode: TALLY_AUTH when set; else on, unless the process is the open local
 * default — every port embedded, no credential configured (no bootstrap key, no JWT), listening
 * on loopback only — which runs open. Never open on another address without TALLY_AUTH=off: an
 * embedded process bound elsewhere with no credential configured is a ConfigError saying how to
 * choose.
 */
export function resolveAuthMode(config: TallyConfig): AuthMode {
  if (config.auth.mode !== undefined) return { on: config.auth.mode === 'on', why: 'explicit' };
  const servers =
    config.kafka.brokers !== undefined ||
    config.redis.url !== undefined ||
    config.redis.clusterNodes.length > 0 ||
    config.pg.url !== undefined;
  if (servers) return { on: true, why: 'servers' };
  if (config.auth.bootstrapAdminKey !== undefined || config.jwt !== undefined)
    return { on: true, why: 'credentials' };
  if (isLoopbackHost(config.http.host)) return { on: false, why: 'loopback' };
  throw new ConfigError(
    `invalid configuration:\n  TALLY_AUTH: unset, and TALLY_BIND_HOST=${config.http.host} would expose the API to the network without access control. ` +
      'Either set TALLY_AUTH=on with TALLY_BOOTSTRAP_ADMIN_KEY (a tly_sk_ key; or keys made by `tally keys create`, or TALLY_JWT_*), ' +
      'or TALLY_AUTH=off to run open on purpose, or TALLY_BIND_HOST=127.0.0.1 to stay local',
  );
}

/**
 * The Kafka adapters' security options from `config.kafka`, the CA bundle read from its file
 * (a ConfigError naming TALLY_KAFKA_TLS_CA_FILE when it cannot be read).
 */
export function kafkaSecurity(config: TallyConfig['kafka']): KafkaSecurity {
  const security: KafkaSecurity = {};
  if (config.sasl) security.sasl = { ...config.sasl };
  if (config.tls) {
    security.tls = {};
    if (config.tls.caFile !== undefined)
      security.tls.ca = readCaFile('TALLY_KAFKA_TLS_CA_FILE', config.tls.caFile);
  }
  return security;
}

/** The Redis adapter's security options from `config.redis`, the CA bundle read from its file. */
export function redisSecurity(config: TallyConfig['redis']): RedisSecurity {
  const security: RedisSecurity = {};
  if (config.auth) security.auth = { ...config.auth };
  if (config.tls) {
    security.tls = {};
    if (config.tls.caFile !== undefined)
      security.tls.ca = readCaFile('TALLY_REDIS_TLS_CA_FILE', config.tls.caFile);
  }
  return security;
}

/**
 * The JWT verifier's options from `config.jwt` (defined: JWTs are configured), the public key
 * read from its file (a ConfigError naming TALLY_JWT_PUBLIC_KEY_FILE when it cannot be read).
 */
export function jwtVerifierOptions(config: NonNullable<TallyConfig['jwt']>): JwtVerifierOptions {
  const options: JwtVerifierOptions = {
    issuer: config.issuer,
    audience: config.audience,
    algorithms: config.algorithms,
    scopesClaim: config.scopesClaim,
    clockToleranceSec: config.clockToleranceSec,
  };
  if (config.jwksUrl !== undefined) options.jwksUrl = config.jwksUrl;
  if (config.publicKeyFile !== undefined) {
    const file = config.publicKeyFile;
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `invalid configuration:\n  TALLY_JWT_PUBLIC_KEY_FILE: cannot read ${file} (${(error as Error).message})`,
      );
    }
    if (!/-----BEGIN (PUBLIC KEY|CERTIFICATE)-----/.test(pem))
      throw new ConfigError(
        `invalid configuration:\n  TALLY_JWT_PUBLIC_KEY_FILE: ${file} holds no PEM public key (-----BEGIN PUBLIC KEY-----)`,
      );
    options.publicKeyPem = pem;
  }
  return options;
}

/** The TLS variables that only make sense together. */
function tlsConflicts(e: z.infer<typeof schema>): string[] {
  const conflicts: string[] = [];
  const pair = [
    ['TALLY_TLS_CERT_FILE', 'TALLY_TLS_KEY_FILE'],
    ['TALLY_GRPC_TLS_CLIENT_CERT_FILE', 'TALLY_GRPC_TLS_CLIENT_KEY_FILE'],
  ] as const;
  for (const [cert, key] of pair)
    if ((e[cert] === undefined) !== (e[key] === undefined)) {
      const [set, unset] = e[cert] === undefined ? [key, cert] : [cert, key];
      conflicts.push(`${unset}: required with ${set} (a certificate and its key go together)`);
    }
  if (e.TALLY_TLS_CLIENT_CA_FILE !== undefined && e.TALLY_TLS_CERT_FILE === undefined)
    conflicts.push(
      'TALLY_TLS_CLIENT_CA_FILE: set without TLS on the listeners: set TALLY_TLS_CERT_FILE and TALLY_TLS_KEY_FILE',
    );
  if (!e.TALLY_GRPC_TLS)
    for (const k of [
      'TALLY_GRPC_TLS_CA_FILE',
      'TALLY_GRPC_TLS_CLIENT_CERT_FILE',
      'TALLY_GRPC_TLS_CLIENT_KEY_FILE',
    ] as const)
      if (e[k] !== undefined)
        conflicts.push(`${k}: set without TLS to ingest and query: set TALLY_GRPC_TLS=true`);
  return conflicts;
}

/** The variable naming each file of the listeners' TLS material. */
const LISTENER_TLS_VARIABLES: Record<TlsFileRole, string> = {
  cert: 'TALLY_TLS_CERT_FILE',
  key: 'TALLY_TLS_KEY_FILE',
  ca: 'TALLY_TLS_CLIENT_CA_FILE',
};

/** The variable naming each file of the gRPC client's TLS material. */
const GRPC_CLIENT_TLS_VARIABLES: Record<TlsFileRole, string> = {
  cert: 'TALLY_GRPC_TLS_CLIENT_CERT_FILE',
  key: 'TALLY_GRPC_TLS_CLIENT_KEY_FILE',
  ca: 'TALLY_GRPC_TLS_CA_FILE',
};

/**
 * The listeners' TLS files (`config.tls`, defined) and their material, read and checked: a
 * ConfigError naming the variable of a file that is missing, holds no PEM, or whose key does not
 * match the certificate.
 */
export function listenerTls(config: NonNullable<TallyConfig['tls']>): {
  files: TlsFiles;
  material: TlsMaterial;
} {
  const files = { certFile: config.certFile, keyFile: config.keyFile, caFile: config.clientCaFile };
  return { files, material: checkedTls(files, LISTENER_TLS_VARIABLES) };
}

/** The gRPC client's TLS files (`config.grpcClientTls`, defined) and their material, checked as {@link listenerTls}. */
export function grpcClientTls(config: NonNullable<TallyConfig['grpcClientTls']>): {
  files: TlsFiles;
  material: TlsMaterial;
} {
  const files = { certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile };
  return { files, material: checkedTls(files, GRPC_CLIENT_TLS_VARIABLES) };
}

function checkedTls(files: TlsFiles, variables: Record<TlsFileRole, string>): TlsMaterial {
  try {
    return readTlsMaterial(files);
  } catch (error) {
    if (!(error instanceof TlsFileError)) throw error;
    throw new ConfigError(`invalid configuration:\n  ${variables[error.role]}: ${error.message}`);
  }
}

/** The PEM bundle a TALLY_*_TLS_CA_FILE names, or a ConfigError naming that variable. */
function readCaFile(variable: string, file: string): string {
  let ca: string;
  try {
    ca = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: cannot read ${file} (${(error as Error).message})`,
    );
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  return ca;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
