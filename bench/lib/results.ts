/**
 * What a benchmark run measured, as bench/report.ts renders it. Rates are per second, latencies
 * in milliseconds, CPU in percent of one core (100 = one core busy) unless a name says otherwise.
 */
import type { PgCopyResult } from '../baselines/pg-copy.ts';
import type { RedisBenchResult } from '../baselines/redis-bench.ts';
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

export interface RawProducerRun {
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
  /** Records waiting when it started. */
  backlog: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  cpu: CpuUse;
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

export interface QueryRun {
  rate: number;
  seconds: number;
  latency: Latency;
  achieved: number;
  dropped: number;
  failedRate: number;
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
    dedupWindowMs: number;
    stepSeconds: number;
    e2eStepSeconds: number;
    probeRedisPollMs: number;
    probePgPollMs: number;
    probesPerSecond: number;
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
  e2e?: { steps: E2eStep[]; best?: E2eStep };
  getCounters?: QueryRun;
  getReport?: QueryRun & { seed: SeedResult };
  /** Whether the consumers export these metrics (docs/metrics.md). */
  metrics: { lagGauge: boolean; visibleHistogram: boolean };
  /** Phases that failed, with their error. */
  errors: { phase: string; error: string }[];
}
