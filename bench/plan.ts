/**
 * The run's settings: the full run (`make bench`, about 12–18 minutes on 2 cores) and the smoke
 * variant (`--smoke`: seconds of tiny load on tiny tables, to check the harness end to end).
 */

/** A stepped search: the first rate (iterations/s), the factor between steps, at most so many steps. */
export interface Stepping {
  start: number;
  factor: number;
  maxSteps: number;
}

export interface Plan {
  smoke: boolean;
  /** Seconds of each ingest step, and of the run at 70 % of the maximum. */
  stepSeconds: number;
  at70Seconds: number;
  restSingle: Stepping;
  restBatch: Stepping & { batchSize: number };
  grpcStream: Stepping & { streamEvents: number };
  rawProducerSeconds: number;
  /** Longest a consumer role may catch up alone on the backlog, s. */
  catchUpSeconds: number;
  pgCopyMaxRows: number;
  redisBench: { requests: number; clients: number; pipeline: number };
  /** End to end: events/s of the simulators (iterations are events here). */
  e2e: Stepping & { stepSeconds: number; drainTimeoutSeconds: number };
  probesPerSecond: number;
  getCounters: { rate: number; seconds: number };
  getReport: { rate: number; seconds: number };
  seed: { targetsPerFamily: number; days: number };
  /** Past this many seconds, no further step starts (every phase still runs its first). */
  budgetSeconds: number;
}

export const FULL: Plan = {
  smoke: false,
  stepSeconds: 15,
  at70Seconds: 30,
  restSingle: { start: 400, factor: 1.5, maxSteps: 9 },
  restBatch: { start: 20, factor: 1.6, maxSteps: 7, batchSize: 100 },
  grpcStream: { start: 4, factor: 1.6, maxSteps: 7, streamEvents: 500 },
  rawProducerSeconds: 8,
  catchUpSeconds: 25,
  pgCopyMaxRows: 300_000,
  redisBench: { requests: 300_000, clients: 50, pipeline: 16 },
  e2e: { start: 1000, factor: 1.5, maxSteps: 6, stepSeconds: 30, drainTimeoutSeconds: 30 },
  probesPerSecond: 10,
  getCounters: { rate: 1000, seconds: 20 },
  getReport: { rate: 200, seconds: 20 },
  seed: { targetsPerFamily: 1000, days: 30 },
  budgetSeconds: 17 * 60,
};

export const SMOKE: Plan = {
  smoke: true,
  stepSeconds: 2,
  at70Seconds: 2,
  restSingle: { start: 10, factor: 2, maxSteps: 2 },
  restBatch: { start: 2, factor: 2, maxSteps: 2, batchSize: 10 },
  grpcStream: { start: 1, factor: 2, maxSteps: 2, streamEvents: 10 },
  rawProducerSeconds: 1,
  catchUpSeconds: 3,
  pgCopyMaxRows: 10_000,
  redisBench: { requests: 2000, clients: 4, pipeline: 4 },
  e2e: { start: 40, factor: 2, maxSteps: 2, stepSeconds: 3, drainTimeoutSeconds: 20 },
  probesPerSecond: 5,
  getCounters: { rate: 20, seconds: 2 },
  getReport: { rate: 10, seconds: 2 },
  seed: { targetsPerFamily: 5, days: 2 },
  budgetSeconds: 10 * 60,
};
