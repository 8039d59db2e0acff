/**
 * The run's settings: the full run (`make bench`, about 25–30 minutes on 2 cores, and the alerts,
 * windows and delivery phases' 14, 3 and 6 more) and the smoke
 * variant (`--smoke`: seconds of tiny load on tiny tables, to check the harness end to end).
 */
import { CONSUMER_ROLES, type ConsumerRole } from './lib/deployment.ts';

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
  /** Events of the orders scenario the projector catches up on alone (0: not measured). */
  projectorEvents: number;
  pgCopyMaxRows: number;
  redisBench: { requests: number; clients: number; pipeline: number };
  /**
   * What the sinks keep per event besides the events themselves: the events of the mix, on
   * `targetsPerFamily` targets of each family, sent through the persister, the counter and the
   * aggregator, with the servers' memory and tables read after each of `events` (cumulative
   * counts, at least two: the growth between them is what more traffic costs).
   */
  bookkeeping: { events: number[]; targetsPerFamily: number; drainTimeoutSeconds: number };
  /** End to end: events/s of the simulators (iterations are events here). */
  e2e: Stepping & { stepSeconds: number; drainTimeoutSeconds: number };
  probesPerSecond: number;
  getCounters: { rate: number; seconds: number };
  getReport: { rate: number; seconds: number };
  seed: { targetsPerFamily: number; days: number };
  /**
   * The Kafka clients compared, one after the other with the same steps. The ingest searches
   * start a step below this run's maxima when it measured them (else at `start`, a step below the
   * last full run's), in finer steps than the phases above: the two clients differ by less than
   * their factor. End to end starts at this run's maximum.
   */
  kafkaClients: {
    stepSeconds: number;
    grpcStream: Stepping;
    restBatch: Stepping;
    rawProducerSeconds: number;
    /**
     * The consumer roles that catch up alone with each client, and for how long at most, s. The
     * counter and the aggregator read what the persister forwards: without the persister among
     * them, they have no backlog.
     */
    catchUpRoles: readonly ConsumerRole[];
    catchUpSeconds: number;
    /** End to end with each client (events/s); left out when undefined. */
    e2e?: Stepping & { stepSeconds: number; drainTimeoutSeconds: number };
  };
  /**
   * The cost of tracing and metrics: the gRPC stream and REST single searches with tracing off
   * and on (starting a step below this run's maxima when measured, so that both pass a step at
   * the same rate), then one profiled step of each.
   */
  overhead: {
    stepSeconds: number;
    grpcStream: Stepping;
    restSingle: Stepping;
    /** The profiled steps' rate, as a share of the maximum with tracing off. */
    profileShare: number;
  };
  /**
   * The cost of access control: the REST single, REST batch and gRPC stream searches with it off
   * and on (starting a step below this run's maxima when measured, so that both pass a step at
   * the same rate).
   */
  auth: {
    stepSeconds: number;
    restSingle: Stepping;
    restBatch: Stepping;
    grpcStream: Stepping;
    /**
     * Rounds of paired steps after the searches: access control off then on (on then off every
     * other round), each load a step below the highest rate both searches passed; the cost is read from
     * the geometric mean of their ratios, so a drift of the machine during the searches does not
     * count as a cost.
     */
    pairedRounds: number;
    /** Of each paired step: longer than the searches' steps, each round being one sample. */
    pairedStepSeconds: number;
  };
  /**
   * The alert rules live (bench/phases/alerts.ts): the simulators at `backgroundRate` events/s
   * for `warmupSeconds` + `seconds`, probes every `probeEverySeconds`, spike series at
   * `perTargetPerMinute`, each spiky one taking `spikeFactor` × its rate for `spikeSeconds`.
   */
  alerts: {
    backgroundRate: number;
    warmupSeconds: number;
    seconds: number;
    probeEverySeconds: number;
    spikyTargets: number;
    steadyTargets: number;
    perTargetPerMinute: number;
    spikeFactor: number;
    spikeSeconds: number;
  };
  /**
   * Sliding-window aggregates (bench/phases/windows.ts): `users` users' aggregates loaded through
   * the aggregate store's apply path (`eventsPerUser` events each over the last 24 h, on `targets`
   * targets), then GetWindows with `windows` at `rate` calls/s for `seconds`; then freshness: the
   * simulators at `freshnessRate` events/s for `freshnessSeconds`, probes polled through GetWindows.
   */
  windows: {
    users: number;
    eventsPerUser: number;
    targets: number;
    windows: string[];
    rate: number;
    seconds: number;
    freshnessRate: number;
    freshnessSeconds: number;
    drainTimeoutSeconds: number;
  };
  /**
   * Delivery (bench/phases/delivery.ts): the router and a sender to local receivers answering in
   * `receiverLatencyMs`. Throughput: the simulators stepped (every event to one destination of
   * `concurrency`); latency: the harness's events at `latencyRate`/s; isolation: at
   * `isolationRate`/s to three destinations, all healthy, then one dead and one slow
   * (`slowLatencyMs`) beside the healthy one.
   */
  delivery: {
    throughput: Stepping & { stepSeconds: number; drainTimeoutSeconds: number };
    concurrency: number;
    receiverLatencyMs: number;
    slowLatencyMs: number;
    latencyRate: number;
    latencySeconds: number;
    isolationRate: number;
    isolationSeconds: number;
    drainTimeoutSeconds: number;
  };
  /**
   * The event log's pages on a large table (bench/phases/event-log.ts): `events` loaded by COPY
   * over `days` days, users and targets by Zipf rank among `users` and `targets`, and `pages`
   * pages read of each shape.
   */
  eventLog: { events: number; days: number; users: number; targets: number; pages: number };
  /** `tally all` started on a fresh data directory and restarted on it, this many times each. */
  startupRuns: number;
  /** The fixed loads run through the split edge and through one process (bench/phases/edge.ts). */
  inProcess: { restSingleRate: number; restBatchEventsRate: number };
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
  projectorEvents: 400_000,
  pgCopyMaxRows: 300_000,
  redisBench: { requests: 300_000, clients: 50, pipeline: 16 },
  bookkeeping: { events: [100_000, 400_000], targetsPerFamily: 1000, drainTimeoutSeconds: 180 },
  e2e: { start: 1000, factor: 1.5, maxSteps: 8, stepSeconds: 30, drainTimeoutSeconds: 30 },
  probesPerSecond: 10,
  getCounters: { rate: 1000, seconds: 20 },
  getReport: { rate: 200, seconds: 20 },
  seed: { targetsPerFamily: 1000, days: 30 },
  // About 8–9 minutes: per client 2 searches of up to 4 steps, 3 catch-ups, 2 end-to-end steps.
  kafkaClients: {
    stepSeconds: 10,
    grpcStream: { start: 22, factor: 1.15, maxSteps: 4 },
    restBatch: { start: 180, factor: 1.15, maxSteps: 4 },
    rawProducerSeconds: 6,
    catchUpRoles: CONSUMER_ROLES,
    catchUpSeconds: 15,
    e2e: { start: 5300, factor: 1.2, maxSteps: 2, stepSeconds: 20, drainTimeoutSeconds: 20 },
  },
  // About 3–4 minutes: 2 searches of up to 3 steps each way, 2 profiled steps.
  overhead: {
    stepSeconds: 10,
    grpcStream: { start: 22, factor: 1.15, maxSteps: 3 },
    restSingle: { start: 960, factor: 1.15, maxSteps: 3 },
    profileShare: 0.7,
  },
  // About 3–4 minutes: 3 searches of up to 3 steps each way.
  auth: {
    stepSeconds: 10,
    restSingle: { start: 960, factor: 1.15, maxSteps: 3 },
    restBatch: { start: 180, factor: 1.15, maxSteps: 3 },
    grpcStream: { start: 22, factor: 1.15, maxSteps: 3 },
    pairedRounds: 6,
    pairedStepSeconds: 30,
  },
  // About 14 minutes: a warm-up of three and a half, ten measured (the steady series' ten minutes).
  alerts: {
    backgroundRate: 5000,
    warmupSeconds: 210,
    seconds: 600,
    probeEverySeconds: 2,
    spikyTargets: 10,
    steadyTargets: 10,
    perTargetPerMinute: 60,
    spikeFactor: 10,
    spikeSeconds: 30,
  },
  // About 3 minutes: the load (100,000 users, 400,000 events, 800,000 increments), 30 s of queries,
  // 30 s of freshness.
  windows: {
    users: 100_000,
    eventsPerUser: 4,
    targets: 500,
    windows: ['1h', '6h', '24h'],
    rate: 1000,
    seconds: 30,
    freshnessRate: 5000,
    freshnessSeconds: 30,
    drainTimeoutSeconds: 30,
  },
  // About 5–6 minutes: up to 4 throughput steps of 20 s with their drains, 30 s of latency, two
  // isolation runs of 30 s.
  delivery: {
    throughput: { start: 2000, factor: 1.5, maxSteps: 4, stepSeconds: 20, drainTimeoutSeconds: 30 },
    concurrency: 100,
    receiverLatencyMs: 5,
    slowLatencyMs: 2000,
    latencyRate: 1000,
    latencySeconds: 30,
    isolationRate: 500,
    isolationSeconds: 30,
    drainTimeoutSeconds: 30,
  },
  // Not yet timed in a full run: most of it is the load and the index builds (a smoke run's 20,000 take 3 s).
  eventLog: { events: 10_000_000, days: 30, users: 100_000, targets: 10_000, pages: 2_000 },
  startupRuns: 3,
  // Below both shapes' maxima, so CPU per event compares like with like.
  inProcess: { restSingleRate: 800, restBatchEventsRate: 10_000 },
  budgetSeconds: 30 * 60,
};

export const SMOKE: Plan = {
  smoke: true,
  stepSeconds: 2,
  at70Seconds: 2,
  restSingle: { start: 10, factor: 2, maxSteps: 2 },
  // One step each: rest-single and bare-http exercise the stepping.
  restBatch: { start: 2, factor: 2, maxSteps: 1, batchSize: 10 },
  grpcStream: { start: 1, factor: 2, maxSteps: 1, streamEvents: 10 },
  rawProducerSeconds: 1,
  catchUpSeconds: 3,
  projectorEvents: 5_000,
  pgCopyMaxRows: 10_000,
  redisBench: { requests: 2000, clients: 4, pipeline: 4 },
  bookkeeping: { events: [2_000, 6_000], targetsPerFamily: 100, drainTimeoutSeconds: 60 },
  e2e: { start: 40, factor: 2, maxSteps: 1, stepSeconds: 3, drainTimeoutSeconds: 20 },
  probesPerSecond: 5,
  getCounters: { rate: 20, seconds: 2 },
  getReport: { rate: 10, seconds: 2 },
  seed: { targetsPerFamily: 5, days: 2 },
  kafkaClients: {
    stepSeconds: 1,
    grpcStream: { start: 1, factor: 2, maxSteps: 1 },
    restBatch: { start: 2, factor: 2, maxSteps: 1 },
    rawProducerSeconds: 1,
    catchUpRoles: ['persister', 'counter'],
    catchUpSeconds: 2,
  },
  // Steps of 2 s: a step's CPU window leaves out 300 ms at each end, the sampler takes one every 500 ms.
  overhead: {
    stepSeconds: 2,
    grpcStream: { start: 1, factor: 2, maxSteps: 1 },
    restSingle: { start: 5, factor: 2, maxSteps: 1 },
    profileShare: 0.7,
  },
  auth: {
    stepSeconds: 2,
    restSingle: { start: 5, factor: 2, maxSteps: 1 },
    restBatch: { start: 2, factor: 2, maxSteps: 1 },
    grpcStream: { start: 1, factor: 2, maxSteps: 1 },
    pairedRounds: 1,
    pairedStepSeconds: 2,
  },
  alerts: {
    backgroundRate: 40,
    warmupSeconds: 5,
    seconds: 30,
    probeEverySeconds: 2,
    spikyTargets: 1,
    steadyTargets: 1,
    perTargetPerMinute: 60,
    spikeFactor: 10,
    spikeSeconds: 20,
  },
  windows: {
    users: 1000,
    eventsPerUser: 2,
    targets: 20,
    windows: ['1h', '6h', '24h'],
    rate: 20,
    seconds: 3,
    freshnessRate: 40,
    freshnessSeconds: 4,
    drainTimeoutSeconds: 20,
  },
  delivery: {
    throughput: { start: 20, factor: 2, maxSteps: 1, stepSeconds: 6, drainTimeoutSeconds: 20 },
    concurrency: 100,
    receiverLatencyMs: 5,
    slowLatencyMs: 2000,
    latencyRate: 20,
    latencySeconds: 3,
    isolationRate: 20,
    isolationSeconds: 3,
    drainTimeoutSeconds: 20,
  },
  eventLog: { events: 20_000, days: 3, users: 200, targets: 50, pages: 50 },
  startupRuns: 1,
  inProcess: { restSingleRate: 10, restBatchEventsRate: 40 },
  budgetSeconds: 10 * 60,
};
