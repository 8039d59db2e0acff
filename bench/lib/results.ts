/**
 * What a benchmark run measured, as bench/report.ts renders it. Rates are per second, latencies
 * in milliseconds, CPU in percent of one core (100 = one core busy) unless a name says otherwise.
 */
import type { PgCopyResult } from '../baselines/pg-copy.ts';
import type { RedisBenchResult } from '../baselines/redis-bench.ts';
import type { InProcessRun, StartupRun } from '../phases/edge.ts';
import type { Latency } from './k6.ts';
import type { Machine, Versions } from './machine.ts';
import type { CpuUse } from './proc.ts';
import type { SeedResult } from './seed-report.ts';

/** One step of an open-model load. */
export interface LoadStep {
  /** Iterations offered per second (requests, batches, streams). */
  rate: number;
  /** Events offered and acknowledged per second. */
  offeredEvents: number;
  achievedEvents: number;
  latency: Latency;
  planned: number;
  dropped: number;
  failedRate: number;
  passed: boolean;
  why: string;
  cpu: CpuUse;
  /** When the offered load ran (epoch ms). */
  loadMs?: { from: number; to: number };
  /** Ingest's Kafka writes during the step, when ingest was in the path. */
  writes?: { meanEvents: number; perSecond: number; p99Ms: number };
}

/** A stepped search for a maximum. */
export interface Series {
  /** How one iteration reads (`request`, `batch of 100`, `stream of 500`). */
  iteration: string;
  eventsPerIteration: number;
  /** Latency above which a step counts as blown up, ms. */
  blowUpMs: number;
  steps: LoadStep[];
  best?: LoadStep;
  /** CPU groups worth a column in its table. */
  columns: string[];
}

/** The Kafka client libraries behind the event log port (TALLY_KAFKA_CLIENT). */
export const KAFKA_CLIENTS = ['kafkajs', 'platformatic'] as const;
export type KafkaClient = (typeof KAFKA_CLIENTS)[number];
/** Each client's library, by its package name. */
export const KAFKA_LIBRARY: Record<KafkaClient, string> = {
  kafkajs: 'kafkajs',
  platformatic: '@platformatic/kafka',
};

export interface RawProducerRun {
  /** The library that produced (kafkajs when absent: runs before the comparison existed). */
  client?: KafkaClient;
  batch: number;
  /** Which ingest figure this batch size mirrors. */
  mirrors: string;
  eventsPerSecond: number;
  sendP50Ms: number;
  sendP99Ms: number;
  cpu: CpuUse;
}

export interface CatchUp {
  role: string;
  /**
   * The topic it read: `events` (the persister), or `accepted`, what the persister forwarded
   * (the counter and the aggregator). Absent in runs from before the accepted topic: `events`.
   */
  topic?: 'events' | 'accepted';
  /** Records waiting when it started. */
  backlog: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  cpu: CpuUse;
}

/** The kinds of key the counter writes under its prefix (services/infra/counters/redis-counter-store.ts). */
export const REDIS_KEY_KINDS = ['counts', 'sums', 'marks', 'leaderboards', 'uniques', 'aggregates'] as const;
export type RedisKeyKind = (typeof REDIS_KEY_KINDS)[number];

/** What Redis holds at one moment: the whole server's memory, and the counter's keys by kind. */
export interface RedisFootprint {
  /** INFO memory `used_memory`: the whole server's, other clients' keys included. */
  usedMemory: number;
  /** The counter's keys under its prefix, by kind (the leaderboards' sorted sets and the set of types). */
  keys: Record<RedisKeyKind, number>;
  /** Their MEMORY USAGE (SAMPLES 0: every element), bytes, by kind. */
  bytes: Record<RedisKeyKind, number>;
  /** Fields of the marks hashes: the (target, partition) pairs with a mark. */
  markFields: number;
  /** Events the counts hashes hold, summed over targets and types. */
  counted: number;
}

/** A table of the run's schema: its rows and pg_total_relation_size (heap, indexes, TOAST). */
export interface PgTableFootprint {
  table: string;
  rows: number;
  bytes: number;
}

/** What the sinks hold after some number of the bookkeeping phase's events. */
export interface BookkeepingSnapshot {
  /** Events of the phase sent through the sinks so far (0: before the first). */
  events: number;
  redis: RedisFootprint;
  /** Every table of the run's schema. */
  pg: PgTableFootprint[];
  /** The rows of `consumer_offset` that the phase's aggregator group holds. */
  offsetRows: number;
}

/** Phase `bookkeeping`: what the sinks keep besides the events, at two event counts and before. */
export interface BookkeepingResult {
  partitions: number;
  /** The mix's targets the events were drawn on (every family's). */
  targets: number;
  /** Before the phase's first event, then after each count (cumulative). */
  start: BookkeepingSnapshot;
  snapshots: BookkeepingSnapshot[];
  /**
   * The design before: a Redis marker per event for the 24 h dedup window, set as the counter
   * set it (`SET <prefix>:{<tag>}:e:<id> 1 NX PX`) for the first count's events, then deleted.
   */
  markers?: { events: number; usedMemory: number; bytes: number; ttlMs: number };
  /**
   * The design before: a `summary_event_seen` row per event (id primary key, seen_at indexed),
   * for the first count's ids in a twin table, then dropped.
   */
  seenRows?: { events: number; bytes: number };
}

export interface Quantiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface E2eStep {
  rate: number;
  offeredEvents: number;
  achievedEvents: number;
  failedEvents: number;
  /** Highest lag (records) of each group in the second half of the step, and at its end. */
  maxLag: Record<string, number>;
  endLag: Record<string, number>;
  /** Lag bound of the step, records. */
  lagBound: number;
  /** Seconds until every group had committed everything after the load stopped; undefined when it did not. */
  drainSeconds: number | undefined;
  probes: Record<string, Quantiles & { unseen: number }>;
  /** From tally_sink_visible_latency_seconds, when the consumers export it. */
  histogram?: Record<string, Quantiles>;
  passed: boolean;
  why: string;
  cpu: CpuUse;
}

/** A stepped search of the end-to-end rate. */
export interface E2eSeries {
  steps: E2eStep[];
  best?: E2eStep;
}

/** One Kafka client's figures: its roles' ingest maxima, sinks' catch-up and end to end. */
export interface KafkaClientRun {
  client: KafkaClient;
  /** The library's package and version. */
  library: string;
  grpcStream?: Series;
  restBatch?: Series;
  /** Each consumer role alone on the backlog this client's ingest steps wrote. */
  catchUp: CatchUp[];
  e2e?: E2eSeries;
  /** The library's own producer at the batch sizes of ingest's writes. */
  rawProducer: RawProducerRun[];
}

/** The Kafka clients compared on the same figures, one after the other. */
export interface KafkaClientsResult {
  stepSeconds: number;
  e2eStepSeconds?: number;
  runs: KafkaClientRun[];
}

/** The ingest loads of one stage of the overhead phase (tracing off, or on). */
export interface OverheadStage {
  tracing: boolean;
  grpcStream?: Series;
  restSingle?: Series;
  /** What the harness's OTLP receiver got meanwhile: export requests and their bytes. */
  exported: { requests: number; bytes: number };
  /** Spans the roles' batch span processors dropped, from their warnings. */
  droppedSpans: number;
}

/** The CPU profile of one role process over one fixed-load step. */
export interface ProcessProfile {
  role: string;
  /** Samples in the step's window, and those not idle. */
  samples: number;
  busy: number;
  /** Busy samples running (self time) in prom-client, and in services/infra/metrics.ts. */
  promClient: number;
  metricsModule: number;
  /** Busy samples with a frame of either anywhere on the stack (what they call included). */
  inclusive: number;
  /** (promClient + metricsModule) / busy. */
  share: number;
}

/** One fixed-load step with gateway and ingest under the CPU profiler. */
export interface MetricsProfile {
  load: 'REST single' | 'gRPC stream';
  step: LoadStep;
  processes: ProcessProfile[];
}

/** What tracing (off against on) and metrics (by CPU profile) cost the ingest path. */
export interface OverheadResult {
  stepSeconds: number;
  off: OverheadStage;
  on?: OverheadStage;
  /** The OTEL_* variables of the stage with tracing on. */
  tracingEnv: Record<string, string>;
  /** The profiled steps' rate, as a share of the maximum with tracing off. */
  profileShare: number;
  profiles: MetricsProfile[];
  /** Where the .cpuprofile files are (the raw directory). */
  profileDir: string;
}

/** The ingest loads of one stage of the auth phase (access control off, or on). */
export interface AuthStage {
  on: boolean;
  restSingle?: Series;
  restBatch?: Series;
  grpcStream?: Series;
}

/** What access control (and rate limiting, once configured) costs the ingest path: off against on. */
export interface AuthResult {
  stepSeconds: number;
  off: AuthStage;
  on?: AuthStage;
  /** The TALLY_RATE_LIMIT* variables of the harness's environment, passed to the stage with access control on. */
  rateLimitEnv: Record<string, string>;
  /** The load's key: its kind and scopes, made through KeysService with the bootstrap admin key. */
  key: { kind: string; scopes: string[]; id: string };
  /** Paired steps after the searches, per load: access control off and on alternately, round by round. */
  paired?: AuthPaired[];
  /** The length of each paired step. */
  pairedStepSeconds?: number;
}

/** One load's paired steps at one rate: round r ran `off[r]` and `on[r]` (in turn, either first). */
export interface AuthPaired {
  load: 'restSingle' | 'restBatch' | 'grpcStream';
  rate: number;
  off: LoadStep[];
  on: LoadStep[];
}

export interface QueryRun {
  rate: number;
  seconds: number;
  latency: Latency;
  achieved: number;
  dropped: number;
  failedRate: number;
  cpu: CpuUse;
}

/** Phase `windows`: sliding-window aggregates (GetWindows) of many active users, and how fresh they are. */
export interface WindowsResult {
  /** How the users' aggregates were loaded before the queries. */
  load: {
    users: number;
    eventsPerUser: number;
    /** The targets (merchants) the same events also went to, as the counter applies them. */
    targets: number;
    /** Series increments applied (each event to its user's series and its target's). */
    increments: number;
    seconds: number;
    /** Redis `used_memory` growth over the load (the whole server's: other clients' work included). */
    redisBytes: number | undefined;
  };
  /** The windows of each call, as asked (`1h`, `6h`, `24h`). */
  windows: string[];
  type: string;
  query: QueryRun;
  /** GetCounters at the same rate on the same transport (k6 → gRPC → query → Redis). */
  baseline: QueryRun & { measuredIn: 'queries' | 'windows' };
  freshness?: {
    /** The simulators' rate asked for, and what ingest acknowledged of it (events/s). */
    rate: number;
    achievedRate: number;
    seconds: number;
    probesPerSecond: number;
    pollMs: number;
    /** From the probe's acknowledgement to GetWindows counting it (ms); unseen: never counted in the wait. */
    ms: Quantiles & { unseen: number; sent: number; failed: number };
    cpu: CpuUse;
  };
}

/** One step of the delivery throughput search: the simulators at `rate`, every event to one healthy destination. */
export interface DeliveryStep {
  rate: number;
  /** What ingest acknowledged of the simulators' events, events/s. */
  achievedEvents: number;
  /** Deliveries the receiver answered in the step's measured window, per second. */
  deliveredPerSecond: number;
  /** Seconds after the load until the receiver had every acknowledged event; undefined: not within the wait. */
  drainSeconds: number | undefined;
  passed: boolean;
  why: string;
  cpu: CpuUse;
}

/** One isolation run: the harness's events to three destinations, the healthy one's figures. */
export interface IsolationRun {
  /** What the other two destinations were. */
  others: string;
  acknowledged: number;
  /** The healthy destination: deliveries per second while the events were sent, and ack → arrival. */
  deliveredPerSecond: number;
  ms: Quantiles & { unseen: number };
  /** Requests the slow receiver got meanwhile (none when it is not in the run). */
  slowRequests: number;
  cpu: CpuUse;
}

/** Phase `delivery`: router and sender delivering webhooks to local receivers. */
export interface DeliveryResult {
  receiverLatencyMs: number;
  slowLatencyMs: number;
  /** The concurrency of the throughput destination (the others: the default). */
  concurrency: number;
  throughput: { steps: DeliveryStep[]; best?: DeliveryStep; stepSeconds: number };
  latency?: {
    rate: number;
    seconds: number;
    acknowledged: number;
    /** From the event's acknowledgement to its first arrival at the receiver (ms). */
    ms: Quantiles & { unseen: number };
    cpu: CpuUse;
  };
  isolation?: { rate: number; seconds: number; allHealthy: IsolationRun; withFaults: IsolationRun };
}

/** One shape of event log page (bench/phases/event-log.ts): its latency over the pages read, ms. */
export interface EventLogPageShape {
  shape: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Events per page, on average (a subject of the long tail has fewer than 100 in a day). */
  meanEvents: number;
}

/** Phase `event-log`: the table loaded by COPY, and the pages read from it. */
export interface EventLogResult {
  events: number;
  days: number;
  users: number;
  targets: number;
  pages: number;
  loadSeconds: number;
  indexSeconds: number;
  /** The partitions with their indexes, bytes. */
  tableBytes: number;
  shapes: EventLogPageShape[];
}

/** Phase `alerts`: the alert rules live under the end-to-end load. */
export interface AlertsResult {
  /** The simulators' rate asked for, and what ingest acknowledged of it (events/s). */
  backgroundRate: number;
  achievedRate: number;
  seconds: number;
  /** Probe targets taken to their milestone, and the milestones' arrival on the WebSocket after the acknowledgement (ms). */
  probes: number;
  notificationMs: Quantiles;
  /** Spikes injected (each `spikeFactor` × the series' rate for `spikeSeconds`), and those whose alert arrived within 60 s of their start. */
  spikes: number;
  spikeFactor: number;
  spikeSeconds: number;
  spikesDetected: number;
  /** From a spike's start to its alert's arrival (s), for the spikes detected at all. */
  detectionSeconds: Quantiles;
  /** Spike alerts on series given no spike (the steady ones, the simulators' posts) or before a spike. */
  falseSpikeAlerts: number;
  /** The first false alarms, each its series and message. */
  falseAlarms?: string[];
  steadySeries: number;
  /** Harness requests ingest refused (none expected). */
  harnessFailures: number;
  cpu: CpuUse;
}

export interface Results {
  smoke: boolean;
  startedAt: string;
  seconds: number;
  machine: Machine;
  versions: Versions;
  /** How the run was set up, for the report's method section. */
  setup: {
    namespace: string;
    servers: string;
    partitions: number;
    lingerMs: number;
    maxProduceBatchEvents: number;
    stepSeconds: number;
    e2eStepSeconds: number;
    probeRedisPollMs: number;
    probePgPollMs: number;
    probesPerSecond: number;
    /** The Kafka client of the roles (TALLY_KAFKA_CLIENT); kafkajs when absent. */
    kafkaClient?: KafkaClient;
  };
  restSingle?: Series;
  bareHttp?: Series;
  at70?: LoadStep;
  restBatch?: Series;
  /** loadtest/rest-batch.js at the REST batch maximum (events generated per iteration). */
  restBatchLoadtestScript?: LoadStep;
  grpcStream?: Series;
  /** loadtest/grpc-stream.js at the gRPC stream maximum (events generated per iteration). */
  grpcStreamLoadtestScript?: LoadStep;
  rawProducer: RawProducerRun[];
  catchUp: CatchUp[];
  pgCopy?: PgCopyResult;
  redisBench?: RedisBenchResult;
  bookkeeping?: BookkeepingResult;
  e2e?: E2eSeries;
  getCounters?: QueryRun;
  getReport?: QueryRun & { seed: SeedResult };
  eventLog?: EventLogResult;
  kafkaClients?: KafkaClientsResult;
  overhead?: OverheadResult;
  auth?: AuthResult;
  /** `tally all` (embedded) started fresh and restarted: bench/phases/edge.ts. */
  startup?: StartupRun[];
  /** The edge split and in one process at the same loads: bench/phases/edge.ts. */
  inProcess?: InProcessRun[];
  /** Whether the consumers export these metrics (docs/metrics.md). */
  metrics: { lagGauge: boolean; visibleHistogram: boolean };
  /** Phases that failed, with their error. */
  errors: { phase: string; error: string }[];
  alerts?: AlertsResult;
  windows?: WindowsResult;
  delivery?: DeliveryResult;
}
