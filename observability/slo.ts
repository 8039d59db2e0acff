/**
 * Tally's service level objectives and the PromQL that measures them: the one source of the
 * recording and alert rules (prometheus/rules.ts) and of the SLO dashboard. docs/slo.md explains
 * the numbers; change one here and run `node observability/render.ts`: the rules and the dashboard
 * change together.
 */

/** The Prometheus `job` of every Tally target (the scrape configuration sets it, docs/slo.md). */
export const JOB = 'tally';

/** The gRPC service whose calls the ingest SLOs count (REST ingest reaches it through the gateway). */
export const INGEST_SERVICE = 'tally.v1.IngestService';

/** The unary ingest methods: a `PublishStream` call lasts as long as its client streams. */
export const INGEST_UNARY_METHODS = ['Publish', 'PublishBatch'] as const;

/**
 * The gRPC codes that are the server's fault (the HTTP 5xx of the code table, the codes that fail
 * a server span): a call ending with one of them spends the availability budget.
 */
export const SERVER_FAULT_CODES = [
  'UNKNOWN',
  'DEADLINE_EXCEEDED',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
] as const;

/** The period an objective is met over. */
export const SLO_PERIOD = '30d';

/** Windows the error ratios are recorded over: the burn-rate alerts' windows and the period. */
export const SLO_WINDOWS = ['5m', '30m', '1h', '6h', '3d', '30d'] as const;
export type SloWindow = (typeof SLO_WINDOWS)[number];

/** Windows computed from the recorded 5-minute rates rather than from every raw series. */
const SUMMED_WINDOWS: ReadonlySet<SloWindow> = new Set(['3d', '30d']);

/** Readable window names for descriptions. */
export const WINDOW_NAMES: Record<SloWindow, string> = {
  '5m': '5 minutes',
  '30m': '30 minutes',
  '1h': '1 hour',
  '6h': '6 hours',
  '3d': '3 days',
  '30d': '30 days',
};

/**
 * One multi-window burn-rate alert (The Site Reliability Workbook, "Alerting on SLOs", table 5-8):
 * it fires while the error ratio over both windows is above `factor` × the budget ratio, i.e.
 * while `budgetSpent` of the 30-day budget would go in `longWindow`.
 */
export interface BurnRateAlert {
  severity: 'critical' | 'warning';
  longWindow: SloWindow;
  shortWindow: SloWindow;
  factor: number;
  /** Share of the period's budget spent in `longWindow` at this rate. */
  budgetSpent: number;
}

export const BURN_RATE_ALERTS: readonly BurnRateAlert[] = [
  { severity: 'critical', longWindow: '1h', shortWindow: '5m', factor: 14.4, budgetSpent: 0.02 },
  { severity: 'critical', longWindow: '6h', shortWindow: '30m', factor: 6, budgetSpent: 0.05 },
  { severity: 'warning', longWindow: '3d', shortWindow: '6h', factor: 1, budgetSpent: 0.1 },
];

/** Recording rule names (level:metric:operations), each with an `slo` label. */
export const RECORDED = {
  requestsRate5m: 'namespace:tally_slo_requests:rate5m',
  errorsRate5m: 'namespace:tally_slo_errors:rate5m',
  errorRatio: (window: SloWindow) => `namespace:tally_slo_errors:ratio_rate${window}`,
} as const;

export interface Slo {
  /** The `slo` label value and anchor: `ingest-availability`. */
  id: string;
  title: string;
  /** Good events / valid events over the period, e.g. 0.999. */
  objective: number;
  /** What is counted, in a sentence or two, for dashboards and alerts. */
  sli: string;
  /** How the objective is alerted on: burn rates, or the alert named in `prometheus/rules.ts`. */
  alerting: 'burn-rate' | 'p99';
  /** Events per second over `window`, by namespace. */
  total(window: string): string;
  /** Bad events per second over `window`, by namespace; 0 (not absent) when there are none. */
  bad(window: string): string;
}

/** `{job="tally", …}` with the given matchers. */
export function selector(...matchers: string[]): string {
  return `{${[`job="${JOB}"`, ...matchers].join(', ')}}`;
}

/** `1 - objective` without floating-point noise: 0.001 for 0.999. */
export function budgetRatio(slo: Slo): number {
  return Number((1 - slo.objective).toPrecision(6));
}

/** A share as a percentage, written as Prometheus's `humanizePercentage` does: 0.999 → "99.9%". */
export function percent(ratio: number): string {
  return `${Number((ratio * 100).toPrecision(6))}%`;
}

/** Seconds as a duration, written as Prometheus's `humanizeDuration` does: 0.05 → "50ms", 5 → "5s". */
export function seconds(value: number): string {
  return value < 1 ? `${Number((value * 1000).toPrecision(6))}ms` : `${value}s`;
}

const ingestCalls = selector(`service="${INGEST_SERVICE}"`);
const ingestFaults = selector(`service="${INGEST_SERVICE}"`, `code=~"${SERVER_FAULT_CODES.join('|')}"`);

export const INGEST_AVAILABILITY: Slo = {
  id: 'ingest-availability',
  title: 'Ingest availability',
  objective: 0.999,
  sli:
    `Ingest calls (gRPC ${INGEST_SERVICE}: Publish, PublishBatch, PublishStream; REST ingest reaches ` +
    `them through the gateway) that did not end with a server fault (${SERVER_FAULT_CODES.join(', ')}), ` +
    'among all ingest calls. A refused bad request is a success: the service did its job.',
  alerting: 'burn-rate',
  total: (w) => `sum by (namespace) (rate(tally_grpc_requests_total${ingestCalls}[${w}]))`,
  bad: (w) =>
    `(\n  sum by (namespace) (rate(tally_grpc_requests_total${ingestFaults}[${w}]))\n  or\n` +
    `  0 * sum by (namespace) (rate(tally_grpc_requests_total${ingestCalls}[${w}]))\n)`,
};

/** The latency objective's bound: a histogram bucket of `tally_grpc_request_duration_seconds`. */
export const INGEST_LATENCY_SECONDS = 0.05;

const ingestUnary = selector(`service="${INGEST_SERVICE}"`, `method=~"${INGEST_UNARY_METHODS.join('|')}"`);

export const INGEST_LATENCY: Slo = {
  id: 'ingest-latency',
  title: 'Ingest latency',
  objective: 0.99,
  sli:
    `Unary ingest calls (${INGEST_UNARY_METHODS.join(', ')}) answered within ` +
    `${seconds(INGEST_LATENCY_SECONDS)}, whatever their outcome, among all unary ingest calls ` +
    '(a PublishStream call lasts as long as its client streams, so it is left out).',
  alerting: 'burn-rate',
  total: (w) => `sum by (namespace) (rate(tally_grpc_request_duration_seconds_count${ingestUnary}[${w}]))`,
  bad: (w) =>
    `(\n  sum by (namespace) (rate(tally_grpc_request_duration_seconds_count${ingestUnary}[${w}]))\n  -\n` +
    `  sum by (namespace) (rate(tally_grpc_request_duration_seconds_bucket${selector(
      `service="${INGEST_SERVICE}"`,
      `method=~"${INGEST_UNARY_METHODS.join('|')}"`,
      `le="${INGEST_LATENCY_SECONDS}"`,
    )}[${w}]))\n)`,
};

/** A freshness objective: `objective` of the events a sink holds are readable within `boundSeconds`. */
function freshness(sink: string, id: string, title: string, where: string, boundSeconds: number): Slo {
  const all = selector(`sink="${sink}"`);
  const fast = selector(`sink="${sink}"`, `le="${boundSeconds}"`);
  return {
    id,
    title,
    objective: 0.99,
    sli:
      `Events readable ${where} within ${seconds(boundSeconds)} of ingest's write to the event log ` +
      `(tally_sink_visible_latency_seconds{sink="${sink}"}), among all events the ${sink} sink held.`,
    alerting: 'p99',
    total: (w) => `sum by (namespace) (rate(tally_sink_visible_latency_seconds_count${all}[${w}]))`,
    bad: (w) =>
      `(\n  sum by (namespace) (rate(tally_sink_visible_latency_seconds_count${all}[${w}]))\n  -\n` +
      `  sum by (namespace) (rate(tally_sink_visible_latency_seconds_bucket${fast}[${w}]))\n)`,
  };
}

/** Live counters (Redis): p99 of the time until an event is counted. */
export const COUNTER_FRESHNESS_SECONDS = 0.25;
/** Hourly summaries (PostgreSQL `event_summary`): p99 of the time until an event is summed. */
export const SUMMARY_FRESHNESS_SECONDS = 5;

export const COUNTER_FRESHNESS = freshness(
  'counter',
  'counter-freshness',
  'Live counters freshness',
  'in the live counters (Redis)',
  COUNTER_FRESHNESS_SECONDS,
);
export const SUMMARY_FRESHNESS = freshness(
  'aggregator',
  'summary-freshness',
  'Hourly summaries freshness',
  'in the hourly summaries (PostgreSQL event_summary)',
  SUMMARY_FRESHNESS_SECONDS,
);

export const SLOS: readonly Slo[] = [
  INGEST_AVAILABILITY,
  INGEST_LATENCY,
  COUNTER_FRESHNESS,
  SUMMARY_FRESHNESS,
];

/** The expression recording `slo`'s error ratio over `window`. */
export function errorRatioExpr(slo: Slo, window: SloWindow): string {
  const sloLabel = `{slo="${slo.id}"}`;
  if (window === '5m') return `${RECORDED.errorsRate5m}${sloLabel}\n/\n${RECORDED.requestsRate5m}${sloLabel}`;
  if (SUMMED_WINDOWS.has(window))
    return (
      `sum_over_time(${RECORDED.errorsRate5m}${sloLabel}[${window}])\n/\n` +
      `sum_over_time(${RECORDED.requestsRate5m}${sloLabel}[${window}])`
    );
  return `${slo.bad(window)}\n/\n${slo.total(window)}`;
}
