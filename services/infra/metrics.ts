/**
 * Prometheus metrics (prom-client). One `Registry` per process, created by
 * main.ts and handed to each component through its deps; a component asks the
 * registry for its instruments (`httpMetrics(registry)`, …), which creates
 * them on first use and returns the same ones afterwards, so roles sharing a
 * process share each metric. docs/metrics.md lists every metric.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export { Registry };

/** Seconds: calls and queries, 0.5 ms to 10 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds: from acceptance to visibility in a sink, 5 ms to 5 min. */
const VISIBLE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Events per batch, 1 to 10,000. */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/**
 * A registry with prom-client's default metrics under their standard names
 * (`process_*`, `nodejs_*`: event-loop delay, heap, GC, CPU, file descriptors).
 */
export function createMetricsRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** The metric `name` of `registry`, created by `create` when the registry does not hold it yet. */
function once<T>(registry: Registry, name: string, create: (registers: Registry[]) => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create([registry]);
}

/** REST requests of the gateway. */
export interface HttpMetrics {
  requests: Counter<'route' | 'method' | 'code'>;
  duration: Histogram<'route' | 'method'>;
}

export function httpMetrics(registry: Registry): HttpMetrics {
  return {
    requests: once(
      registry,
      'tally_http_requests_total',
      (registers) =>
        new Counter({
          name: 'tally_http_requests_total',
          help: 'HTTP requests answered, by route template, method and status code',
          labelNames: ['route', 'method', 'code'],
          registers,
        }),
    ),
    duration: once(
      registry,
      'tally_http_request_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_http_request_duration_seconds',
          help: 'Time from a request to the end of its answer, by route template and method',
          labelNames: ['route', 'method'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
  };
}

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The method as a label: the standard ones as they are, anything a client invents as `other`. */
export function httpMethodLabel(method: string | undefined): string {
  return method !== undefined && HTTP_METHODS.has(method) ? method : 'other';
}

/** gRPC calls served by ingest and query. */
export interface GrpcMetrics {
  requests: Counter<'service' | 'method' | 'code'>;
  duration: Histogram<'service' | 'method'>;
}

export function grpcMetrics(registry: Registry): GrpcMetrics {
  return {
    requests: once(
      registry,
      'tally_grpc_requests_total',
      (registers) =>
        new Counter({
          name: 'tally_grpc_requests_total',
          help: 'gRPC calls answered, by service, method and status code name',
          labelNames: ['service', 'method', 'code'],
          registers,
        }),
    ),
    duration: once(
      registry,
      'tally_grpc_request_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_grpc_request_duration_seconds',
          help: 'Time from a call (a whole client stream) to its answer, by service and method',
          labelNames: ['service', 'method'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
  };
}

/** Events ingest accepted: acknowledged by the log. */
export function ingestMetrics(registry: Registry): { events: Counter<'method'> } {
  return {
    events: once(
      registry,
      'tally_ingest_events_total',
      (registers) =>
        new Counter({
          name: 'tally_ingest_events_total',
          help: 'Events accepted (acknowledged by the event log), by gRPC method',
          labelNames: ['method'],
          registers,
        }),
    ),
  };
}

/** The writes of ingest's batching producer. */
export interface ProduceMetrics {
  duration: Histogram;
  batchEvents: Histogram;
  failures: Counter;
}

/**
 * Refused credentials, by the surface that refused them (`rest`, `grpc`, `websocket`, `metrics`)
 * and the ErrorInfo reason (`MISSING_CREDENTIAL`, `INVALID_CREDENTIAL`, `INVALID_TOKEN`,
 * `INSUFFICIENT_SCOPE`, …). docs/security.md.
 */
export function authMetrics(registry: Registry): { failures: Counter<'surface' | 'reason'> } {
  return {
    failures: once(
      registry,
      'tally_auth_failures_total',
      (registers) =>
        new Counter({
          name: 'tally_auth_failures_total',
          help: 'Requests refused by access control (401 or 403), by surface and reason',
          labelNames: ['surface', 'reason'],
          registers,
        }),
    ),
  };
}

export function produceMetrics(registry: Registry): ProduceMetrics {
  return {
    duration: once(
      registry,
      'tally_kafka_produce_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_kafka_produce_duration_seconds',
          help: "Time of one write of gathered events to the event log, until the log's acknowledgement (failures included)",
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
    batchEvents: once(
      registry,
      'tally_kafka_produce_batch_events',
      (registers) =>
        new Histogram({
          name: 'tally_kafka_produce_batch_events',
          help: 'Events in one write to the event log',
          buckets: BATCH_BUCKETS,
          registers,
        }),
    ),
    failures: once(
      registry,
      'tally_kafka_produce_failures_total',
      (registers) =>
        new Counter({
          name: 'tally_kafka_produce_failures_total',
          help: 'Writes to the event log that failed or were not acknowledged in time',
          registers,
        }),
    ),
  };
}

/**
 * Events the persister did not accept because their id was stored before (docs/guarantees.md):
 * `retry` (the same event sent again) or `conflict` (the id reused for different content).
 */
export function duplicateMetrics(registry: Registry): { duplicates: Counter<'kind'> } {
  return {
    duplicates: once(
      registry,
      'tally_duplicate_events_total',
      (registers) =>
        new Counter({
          name: 'tally_duplicate_events_total',
          help: 'Events whose id was stored before, not applied by any sink: kind="retry" (same content) or "conflict" (the id reused for different content)',
          labelNames: ['kind'],
          registers,
        }),
    ),
  };
}

/**
 * The day partitions of `event` (infra/events/event-partitions.ts): partitions dropped by the
 * retention, and maintenance runs by outcome (`done`; `skipped`: another process held the lock;
 * `failed`: an error, logged).
 */
export function eventPartitionMetrics(registry: Registry): {
  dropped: Counter;
  runs: Counter<'outcome'>;
} {
  return {
    dropped: once(
      registry,
      'tally_event_partitions_dropped_total',
      (registers) =>
        new Counter({
          name: 'tally_event_partitions_dropped_total',
          help: 'Day partitions of the event table dropped by the retention (TALLY_EVENT_RETENTION_DAYS)',
          registers,
        }),
    ),
    runs: once(
      registry,
      'tally_event_partition_maintenance_runs_total',
      (registers) =>
        new Counter({
          name: 'tally_event_partition_maintenance_runs_total',
          help: 'Runs of the event partitions maintenance: outcome="done", "skipped" (another process held the lock) or "failed"',
          labelNames: ['outcome'],
          registers,
        }),
    ),
  };
}

/**
 * Notifications the alert rules raised (docs/alerts.md): kept in the notification store for the
 * first time, so a crossing answered again after a redelivery or a restart is counted once.
 */
export function notificationMetrics(registry: Registry): { notifications: Counter } {
  return {
    notifications: once(
      registry,
      'tally_notifications_total',
      (registers) =>
        new Counter({
          name: 'tally_notifications_total',
          help: 'Notifications raised by the alert rules: kept in the notification store for the first time (one per id, however often a crossing is answered)',
          registers,
        }),
    ),
  };
}

/** How the alerter's threshold and spike rules evaluate (docs/alerts.md). */
export function alertEvaluationMetrics(registry: Registry): { lateEvents: Counter; conflicts: Counter } {
  return {
    lateEvents: once(
      registry,
      'tally_alert_late_events_total',
      (registers) =>
        new Counter({
          name: 'tally_alert_late_events_total',
          help: 'Events a threshold or spike rule watched that came later than the lateness bound (TALLY_ALERT_LATENESS_MS) behind their series: not counted in any window',
          registers,
        }),
    ),
    conflicts: once(
      registry,
      'tally_alert_evaluation_conflicts_total',
      (registers) =>
        new Counter({
          name: 'tally_alert_evaluation_conflicts_total',
          help: 'Evaluations of a threshold or spike series not committed because another batch changed the series meanwhile (evaluated again)',
          registers,
        }),
    ),
  };
}

/**
 * What the router wrote to the destinations' topics (docs/delivery.md): records per destination
 * (a batch written again after a redelivery counts again), and events a destination's filter let
 * through whose transform failed (the output over its bound), which that destination never gets.
 */
export function routerMetrics(registry: Registry): {
  routed: Counter<'destination'>;
  transformFailures: Counter<'destination'>;
} {
  return {
    routed: once(
      registry,
      'tally_routed_events_total',
      (registers) =>
        new Counter({
          name: 'tally_routed_events_total',
          help: "Records the router wrote to a destination's topic (an event matching its filter, transformed)",
          labelNames: ['destination'],
          registers,
        }),
    ),
    transformFailures: once(
      registry,
      'tally_route_transform_failures_total',
      (registers) =>
        new Counter({
          name: 'tally_route_transform_failures_total',
          help: "Events matching a destination's filter whose transform failed (output too large): not written for that destination",
          labelNames: ['destination'],
          registers,
        }),
    ),
  };
}

/**
 * What the projector did with the events of its projections (docs/entities.md), per kind:
 * `applied` changed an entity, `stale` came older than the entity's state (its newer attributes
 * only kept), `duplicate` changed nothing; refused transitions went to the dead-letter topic.
 */
export function projectorMetrics(registry: Registry): {
  projected: Counter<'kind' | 'outcome'>;
  refused: Counter<'kind'>;
} {
  return {
    projected: once(
      registry,
      'tally_projected_events_total',
      (registers) =>
        new Counter({
          name: 'tally_projected_events_total',
          help: 'Events the projector folded into an entity, by kind and outcome (applied, stale, duplicate)',
          labelNames: ['kind', 'outcome'],
          registers,
        }),
    ),
    refused: once(
      registry,
      'tally_projection_refused_total',
      (registers) =>
        new Counter({
          name: 'tally_projection_refused_total',
          help: 'Events the projector refused (a transition not allowed, no entity id) and sent to the dead-letter topic, by kind',
          labelNames: ['kind'],
          registers,
        }),
    ),
  };
}

/** Seconds: one delivery attempt, 5 ms to 60 s (a webhook's longest timeout). */
const DELIVERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The sender's deliveries, per destination (docs/metrics.md, "Delivery"). */
export interface DeliveryMetrics {
  delivered: Counter<'destination'>;
  failedAttempts: Counter<'destination' | 'outcome'>;
  retried: Counter<'destination'>;
  deadLettered: Counter<'destination'>;
  duplicates: Counter<'destination'>;
  parkedRecords: Counter<'destination' | 'reason'>;
  attemptDuration: Histogram<'destination'>;
  breakerState: Gauge<'destination'>;
  parked: Gauge<'destination'>;
  invalidRecords: Counter;
  limitWait: Histogram<'destination' | 'limit'>;
  limiterErrors: Counter;
}

export function deliveryMetrics(registry: Registry): DeliveryMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
    once(registry, name, (registers) => new Counter<L>({ name, help, labelNames, registers }));
  const gauge = (name: string, help: string) =>
    once(
      registry,
      name,
      (registers) => new Gauge<'destination'>({ name, help, labelNames: ['destination'], registers }),
    );
  return {
    delivered: counter(
      'tally_delivery_delivered_total',
      'Deliveries that succeeded (2xx, or a Kafka append acknowledged), by destination',
      ['destination'],
    ),
    failedAttempts: counter(
      'tally_delivery_failed_attempts_total',
      'Delivery attempts that failed, by destination and outcome (retry, dead, gone)',
      ['destination', 'outcome'],
    ),
    retried: counter(
      'tally_delivery_retries_total',
      "Failed attempts given another attempt later on the destination's schedule, by destination",
      ['destination'],
    ),
    deadLettered: counter(
      'tally_delivery_dead_letters_total',
      'Deliveries dead-lettered (a refusal, or out of attempts), by destination',
      ['destination'],
    ),
    duplicates: counter(
      'tally_delivery_duplicates_total',
      'Records the router wrote twice, recognised by their source position and skipped, by destination',
      ['destination'],
    ),
    parkedRecords: counter(
      'tally_delivery_parked_total',
      'Records parked in PostgreSQL by the batch that read them, by destination and reason (retry, user, breaker, slow, disabled)',
      ['destination', 'reason'],
    ),
    attemptDuration: once(
      registry,
      'tally_delivery_attempt_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_delivery_attempt_duration_seconds',
          help: 'One delivery attempt, from the call to the end of the response or the failure, by destination',
          labelNames: ['destination'],
          buckets: DELIVERY_BUCKETS,
          registers,
        }),
    ),
    breakerState: gauge(
      'tally_delivery_breaker_state',
      "The destination's circuit breaker as this sender last saw it: 0 closed, 1 half-open, 2 open",
    ),
    parked: gauge(
      'tally_delivery_parked',
      'Deliveries parked and pending (retries, records waiting behind their user, an open breaker), by destination; sampled',
    ),
    invalidRecords: counter(
      'tally_delivery_invalid_records_total',
      'Records of a destination topic that no router wrote (a header missing or unreadable): skipped',
      [],
    ),
    limitWait: once(
      registry,
      'tally_delivery_limit_wait_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_delivery_limit_wait_seconds',
          help: "Time a delivery attempt waited for its destination's concurrency and rate limits before it started (or was parked), by destination and the limit that held it last (local, concurrency, rate)",
          labelNames: ['destination', 'limit'],
          buckets: [0, ...DELIVERY_BUCKETS],
          registers,
        }),
    ),
    limiterErrors: counter(
      'tally_delivery_limiter_errors_total',
      "Calls to the senders' shared destination limiter (Redis) that failed: the attempt was paced by this sender's own limits",
      [],
    ),
  };
}

/** The sink consumers (persister, counter, aggregator, alerter). */
export interface ConsumerMetrics {
  lag: Gauge<'group' | 'topic' | 'partition'>;
  batchEvents: Histogram<'group'>;
  batchDuration: Histogram<'group'>;
  batchFailures: Counter<'group'>;
  sinkEvents: Counter<'sink'>;
  writeEvents: Histogram<'sink'>;
  visibleLatency: Histogram<'sink'>;
  dlqRecords: Counter<'group' | 'reason'>;
}

export function consumerMetrics(registry: Registry): ConsumerMetrics {
  return {
    lag: once(
      registry,
      'tally_consumer_lag_messages',
      (registers) =>
        new Gauge({
          name: 'tally_consumer_lag_messages',
          help: 'Records of a partition not yet committed by the group (end offset − committed offset), sampled periodically',
          labelNames: ['group', 'topic', 'partition'],
          registers,
        }),
    ),
    batchEvents: once(
      registry,
      'tally_consumer_batch_events',
      (registers) =>
        new Histogram({
          name: 'tally_consumer_batch_events',
          help: 'Records in one consumed batch (dead-lettered ones included), by group',
          labelNames: ['group'],
          buckets: BATCH_BUCKETS,
          registers,
        }),
    ),
    batchDuration: once(
      registry,
      'tally_consumer_batch_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_consumer_batch_duration_seconds',
          help: 'Time to handle one batch: decoding, dead-lettering and the sink (failures included), by group',
          labelNames: ['group'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
    batchFailures: once(
      registry,
      'tally_consumer_batch_failures_total',
      (registers) =>
        new Counter({
          name: 'tally_consumer_batch_failures_total',
          help: 'Batches whose handling failed (to be redelivered), by group',
          labelNames: ['group'],
          registers,
        }),
    ),
    sinkEvents: once(
      registry,
      'tally_sink_events_total',
      (registers) =>
        new Counter({
          name: 'tally_sink_events_total',
          help: 'Events a sink holds after a batch (redelivered ones it deduplicated included), by sink',
          labelNames: ['sink'],
          registers,
        }),
    ),
    writeEvents: once(
      registry,
      'tally_sink_write_events',
      (registers) =>
        new Histogram({
          name: 'tally_sink_write_events',
          help: 'Events in one sink write: the batches of every partition in hand at once, gathered, by sink',
          labelNames: ['sink'],
          buckets: BATCH_BUCKETS,
          registers,
        }),
    ),
    visibleLatency: once(
      registry,
      'tally_sink_visible_latency_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_sink_visible_latency_seconds',
          help: 'Time from ingest accepting the event (its received_at) to its batch being held by the sink, by sink',
          labelNames: ['sink'],
          buckets: VISIBLE_BUCKETS,
          registers,
        }),
    ),
    dlqRecords: once(
      registry,
      'tally_dlq_records_total',
      (registers) =>
        new Counter({
          name: 'tally_dlq_records_total',
          help: 'Records sent to the dead-letter topic, by group and reason class (undecodable, invalid)',
          labelNames: ['group', 'reason'],
          registers,
        }),
    ),
  };
}

/** Counter store calls on Redis. */
export function redisMetrics(registry: Registry): { duration: Histogram<'operation'> } {
  return {
    duration: once(
      registry,
      'tally_redis_operation_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_redis_operation_duration_seconds',
          help: 'Time of one counter store or alert store call on Redis (failures included), by operation (apply, read, top, uniques; milestones, series)',
          labelNames: ['operation'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
  };
}

/** Rate limits: requests refused, and checks the limiter's backend could not make. */
export interface RateLimitMetrics {
  limited: Counter<'limit'>;
  backendErrors: Counter;
}

export function rateLimitMetrics(registry: Registry): RateLimitMetrics {
  return {
    limited: once(
      registry,
      'tally_rate_limited_total',
      (registers) =>
        new Counter({
          name: 'tally_rate_limited_total',
          help: 'Rate limit checks refused, by limit (the policy name: ingest, read, …)',
          labelNames: ['limit'],
          registers,
        }),
    ),
    backendErrors: once(
      registry,
      'tally_rate_limit_backend_errors_total',
      (registers) =>
        new Counter({
          name: 'tally_rate_limit_backend_errors_total',
          help: 'Rate limit or quota checks whose backend failed, answered by the failure policy (open or closed)',
          registers,
        }),
    ),
  };
}

/** Statements on PostgreSQL. */
export function pgMetrics(registry: Registry): { duration: Histogram<'operation'> } {
  return {
    duration: once(
      registry,
      'tally_pg_query_duration_seconds',
      (registers) =>
        new Histogram({
          name: 'tally_pg_query_duration_seconds',
          help: 'Time of one PostgreSQL statement (failures included), by operation (its leading SQL keyword)',
          labelNames: ['operation'],
          buckets: LATENCY_BUCKETS,
          registers,
        }),
    ),
  };
}

const SQL_OPERATIONS = new Set([
  'select',
  'insert',
  'update',
  'delete',
  'with',
  'begin',
  'commit',
  'rollback',
]);

/** A statement's operation label: its leading keyword when it is a known one, else `other`. */
export function sqlOperation(text: string): string {
  const keyword = /^\s*([A-Za-z]+)/.exec(text)?.[1]?.toLowerCase();
  return keyword !== undefined && SQL_OPERATIONS.has(keyword) ? keyword : 'other';
}

/** Seconds since `startMs` (a `performance.now()` reading). */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}
