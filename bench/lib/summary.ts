/**
 * The report's summary table: the project's targets, and the row of each figure, which each
 * phase's report (bench/phases/*.report.ts) fills in.
 */
import type { SUMMARY_ROWS } from '../report.ts';

/** The project's targets (report only: a run never fails on them). */
export const TARGETS = {
  restSingleEventsPerSecond: 10_000,
  restSingleP99MsAt70: 20,
  batchEventsPerSecond: 50_000,
  e2eEventsPerSecond: 20_000,
  redisVisibleP99Ms: 250,
  /** The rate at which the Redis-visible p99 is held to its target (the nearest step reports it). */
  redisVisibleAtRate: 5_000,
  /** CPU per event end to end (ingest, the sinks, Kafka, Redis, PostgreSQL), µs: near 3,000/s and at the maximum. */
  e2eCpuPerEventUsAt3000: 150,
  e2eCpuPerEventUsAtMax: 100,
  summaryVisibleP99Ms: 5_000,
  getCountersP99Ms: 5,
  getCountersRate: 1_000,
  getReportP99Ms: 10,
  getReportEvents: 10_000_000,
  /** GetWindows (1h, 6h, 24h in one call) at `windowsRate` calls/s over `windowsUsers` active users. */
  windowsP99Ms: 5,
  windowsRate: 1_000,
  windowsUsers: 100_000,
  /** Acknowledged → counted by GetWindows, p99, with the simulators at `windowsFreshRate` events/s. */
  windowsFreshP99Ms: 250,
  windowsFreshRate: 5_000,
  /** Deliveries a second to a receiver answering in 5 ms, the rest of the suite running. */
  deliveriesPerSecond: 3_000,
  /** Acknowledged → first delivery attempt, p99, at `deliveryRate` events/s. */
  deliveryP99Ms: 200,
  deliveryRate: 1_000,
  /** A healthy destination beside a dead and a slow one, against all healthy: its throughput share, its p99 ratio. */
  isolationThroughputShare: 0.9,
  isolationP99Ratio: 1.2,
  /** A 100-event page of the event log, p99, on a table of `eventLogEvents`. */
  eventLogPageP99Ms: 10,
  eventLogEvents: 10_000_000,
  gatewayVsBareHttp: 0.4,
  ingestVsRawProducer: 0.5,
  /** What tracing and metrics may cost, as a share of the throughput without them. */
  observabilityCost: 0.1,
  /** What access control and rate limiting may cost, as a share of the throughput without them. */
  authCost: 0.05,
  /** The counter's Redis memory after 24 h at `dayEventsPerSecond`, bytes (1 GB). */
  counterRedisBytesPerDay: 1e9,
  dayEventsPerSecond: 20_000,
} as const;

/** One figure of the summary table, against its target and its baseline. */
export interface SummaryRow {
  label: (typeof SUMMARY_ROWS)[number];
  measured: string;
  target: string;
  ok: boolean | undefined;
  baseline: string;
  ratio: string;
  ratioTarget: string;
  ratioOk: boolean | undefined;
  /** Why it missed, when it did. */
  limit?: string;
}
