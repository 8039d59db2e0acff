/**
 * Renders a run's results as bench/RESULTS.md: machine and versions, the summary of every figure
 * against its target and its baseline, what limits the figures that miss, the tables of each
 * phase (latency against offered load, with each process's CPU), and the method. Each phase's
 * section and summary rows are written by its bench/phases/<phase>.report.ts; this module puts
 * them together.
 */
import { met, num, type Push, pct, table } from './lib/format.ts';
import { KAFKA_LIBRARY, type Results } from './lib/results.ts';
import type { SummaryRow } from './lib/summary.ts';
import { alertRows, renderAlerts } from './phases/alerts.report.ts';
import { authRows, renderAuth } from './phases/auth.report.ts';
import { ingestRows, renderBatches } from './phases/batches.report.ts';
import { bookkeepingRows, renderBookkeeping } from './phases/bookkeeping.report.ts';
import { deliveryRows, renderDelivery } from './phases/delivery.report.ts';
import { e2eCostRows, e2eRows, renderE2e } from './phases/e2e.report.ts';
import { renderInProcess, renderStartup } from './phases/edge.report.ts';
import { eventLogRows, renderEventLog } from './phases/event-log.report.ts';
import { EVEN_WITHIN, kafkaClientRows, renderKafkaClients } from './phases/kafka-clients.report.ts';
import { overheadRows, renderOverhead } from './phases/overhead.report.ts';
import { queryRows, renderQueries } from './phases/queries.report.ts';
import { renderRawProducer } from './phases/raw-producer.report.ts';
import { renderRestSingle, restSingleRows } from './phases/rest-single.report.ts';
import { renderSinks, sinkRows } from './phases/sinks.report.ts';
import { renderWindows, windowsRows } from './phases/windows.report.ts';

// Defined with the summary rows (bench/lib/summary.ts), so that the phases' reports need not import this module.
export { TARGETS } from './lib/summary.ts';

/** Every section heading the report has, in order (the smoke test checks them). */
export const SECTIONS = [
  'Machine and versions',
  'Summary',
  'What limits the figures that miss their target',
  'REST single events: latency against offered load',
  'REST batches and gRPC streams',
  'Raw producer baseline',
  'Sinks',
  'Bookkeeping per event',
  'End to end',
  'Queries',
  'Event log pages',
  'Alerts',
  'Sliding-window aggregates',
  'Delivery',
  'The edge in one process: in-process calls against gRPC',
  'Start-up of `tally all` (embedded, as `npm start`)',
  'Kafka client: kafkajs against @platformatic/kafka',
  'Cost of tracing and metrics',
  'Cost of access control',
  'Method',
] as const;

/** The rows of the summary table, by label (the smoke test checks each has a figure). */
export const SUMMARY_ROWS = [
  'REST single, sustained',
  'REST single, p99 at 70 % of max',
  'REST batch ingest',
  'gRPC stream ingest',
  'End to end, every group keeping up',
  'Accepted → visible in Redis, p50',
  'Accepted → visible in Redis, p99',
  'Accepted → visible in the hourly summary, p99',
  'Accepted → visible in Redis, p99 near 5,000 events/s',
  'CPU per event end to end, near 3,000 events/s',
  'CPU per event end to end, at the maximum',
  'GetCounters p99 at 1,000 calls/s',
  'GetReport p99 on ≥ 10 M events',
  'Event log page p99 on ≥ 10 M events',
  'Notification on the WebSocket, p99, at 5,000 events/s',
  'Spikes (×10) detected within 60 s',
  'Spike alerts on steady series, 10 minutes',
  'GetWindows (3 windows) p99 at 1,000 calls/s, 100,000 active users',
  'Acknowledged → counted by GetWindows, p99 at 5,000 events/s',
  'Deliveries/s to a receiver answering in 5 ms, the suite running',
  'Acknowledged → first delivery attempt, p99 at 1,000 events/s',
  'Healthy destination beside a dead and a slow one: throughput',
  'Healthy destination beside a dead and a slow one: p99',
  'Persister alone (event rows)',
  'Counter alone (Redis)',
  'Aggregator alone (summaries)',
  'Alerter alone (milestone, spike and window rules)',
  'Projector alone (order entities)',
  "Counter's Redis memory, 24 h at 20,000 events/s",
  'Kafka client, @platformatic/kafka ÷ kafkajs',
  'Tracing and metrics on, cost in throughput',
  'Access control on, cost in throughput',
] as const;

/** The summary table's rows, in the order of SUMMARY_ROWS. */
function summaryRows(r: Results): SummaryRow[] {
  const rows: SummaryRow[] = [];
  restSingleRows(r, rows);
  ingestRows(r, rows);
  e2eRows(r, rows);
  e2eCostRows(r, rows);
  queryRows(r, rows);
  eventLogRows(r, rows);
  alertRows(r, rows);
  windowsRows(r, rows);
  deliveryRows(r, rows);
  sinkRows(r, rows);
  bookkeepingRows(r, rows);
  kafkaClientRows(r, rows);
  overheadRows(r, rows);
  authRows(r, rows);
  return rows;
}

export function renderReport(r: Results): string {
  const out: string[] = [];
  const push: Push = (...lines) => out.push(...lines);
  renderHeader(r, push);
  renderMachine(r, push);
  renderSummary(r, push);
  renderRestSingle(r, push);
  renderBatches(r, push);
  renderRawProducer(r, push);
  renderSinks(r, push);
  renderBookkeeping(r, push);
  renderE2e(r, push);
  renderQueries(r, push);
  renderEventLog(r, push);
  renderAlerts(r, push);
  renderWindows(r, push);
  renderDelivery(r, push);
  renderInProcess(r, push);
  renderStartup(r, push);
  renderKafkaClients(r, push);
  renderOverhead(r, push);
  renderAuth(r, push);
  renderMethod(r, push);
  renderErrors(r, push);
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

/** The title, and how and when the run measured. */
function renderHeader(r: Results, push: Push): void {
  const started = r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  push('# Tally benchmark results', '');
  if (r.smoke)
    push(
      '> **Smoke run** (`node bench/bench.ts --smoke`): seconds of tiny load on tiny tables. It checks the harness; its figures mean nothing.',
      '',
    );
  push(
    `Measured by \`make bench\` (\`node bench/bench.ts\`) on ${started}, in ${num(r.seconds / 60, 1)} minutes. ` +
      'Every figure and its baseline come from the same run, on the same machine, against the same servers. ' +
      "Targets are the project's objectives; the run reports them and never fails on them. " +
      'What was profiled and optimised, what bounds the figures that miss, and how the default Kafka client was ' +
      'chosen: [docs/performance.md](../docs/performance.md).',
    '',
  );
}

/** The machine and the versions of everything measured. */
function renderMachine(r: Results, push: Push): void {
  push('## Machine and versions', '');
  const m = r.machine;
  const v = r.versions;
  push(
    table(
      ['', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores`],
        ['RAM', `${num(m.memGiB, 1)} GiB`],
        ['kernel', m.kernel],
        ['load average at the start (1, 5, 15 min)', m.loadAverage.map((l) => num(l, 2)).join(', ')],
        ['Node.js', v.node],
        ['Kafka', v.kafka],
        ['Redis', v.redis],
        ['PostgreSQL', v.postgres],
        ['k6', v.k6],
        ['kafkajs', v.kafkajs],
        ['@platformatic/kafka', v.platformaticKafka ?? '—'],
        ['redis-benchmark', v.redisBenchmark],
      ],
    ),
    '',
    `The machine is shared with other work (its load average was ${num(m.loadAverage[0], 2)} when the run started, on ${m.cores} cores), ` +
      'and the load generators (k6, the simulator) run on the same cores as Tally and its servers. Every table shows the CPU of ' +
      'each process of the run and, as _other work_, what the rest of the machine used meanwhile (from `/proc/stat` less the ' +
      'processes of the run). Figures from a dedicated machine, with the load generated elsewhere, would be higher.',
    '',
  );
}

/** Every figure against its target and baseline, then what limits the ones that miss. */
function renderSummary(r: Results, push: Push): void {
  push('## Summary', '');
  const rows = summaryRows(r);
  push(
    table(
      [
        'figure',
        'measured',
        'target',
        'target met',
        'baseline (same run)',
        'ratio to baseline',
        'ratio target',
        'ratio met',
      ],
      rows.map((row) => [
        row.label,
        row.measured,
        row.target,
        row.target === '—' ? '—' : met(row.ok),
        row.baseline,
        row.ratio,
        row.ratioTarget,
        row.ratioTarget === '—' ? '—' : met(row.ratioOk),
      ]),
    ),
    '',
  );

  push('## What limits the figures that miss their target', '');
  const missed = rows.filter((row) => row.ok === false || row.ratioOk === false);
  if (missed.length === 0) push('Every figure that was measured met its target.', '');
  for (const row of missed)
    push(
      `- **${row.label}** (${row.measured}; target ${row.target}${row.ratioOk === false ? `, ratio ${row.ratio} against ${row.ratioTarget}` : ''}): ${row.limit ?? 'no evidence recorded.'}`,
    );
  if (missed.length > 0) push('');
}

/** How every figure was measured. */
function renderMethod(r: Results, push: Push): void {
  push('## Method', '');
  push(
    `- **Servers.** The local Kafka, Redis and PostgreSQL of \`scripts/services-up.sh\` (${r.setup.servers}), started by the harness when they are not running, in a namespace of the run's own (\`bench-${r.setup.namespace}\`: topics, consumer groups, Redis key prefix, schema \`bench_${r.setup.namespace}\`), deleted at the end. These are the servers the project develops and tests against, already warm and configured as documented; private servers would add a Kafka start-up to every run and differ in configuration (the test helpers run PostgreSQL without fsync and Kafka on a 384 MiB heap).`,
    `- **Processes.** Each role is a process of its own (\`bin/tally gateway\`, \`ingest\`, \`query\`, \`persister\`, \`counter\`, \`aggregator\`), the gateway reaching ingest and query over gRPC, on Kafka through ${KAFKA_LIBRARY[r.setup.kafkaClient ?? 'kafkajs']} (\`TALLY_KAFKA_CLIENT\`) except in the comparison of the clients, started with Node's compile cache (\`NODE_COMPILE_CACHE\`: it only spares compiling the sources at start-up); the events topic has ${r.setup.partitions} partitions, and so has the accepted topic, where the persister forwards the events it accepts (partition for partition) and which the counter and the aggregator read; ingest batches Kafka writes with its defaults (linger ${r.setup.lingerMs} ms, at most ${num(r.setup.maxProduceBatchEvents)} events). The consumer roles start after the ingest phases, so the ingest figures are not shared with consumers catching up.`,
    "- **Load.** k6 with an open model (`constant-arrival-rate`): RATE per step, VUs allocated up front for 100 ms per iteration and allowed up to the rate × the blow-up latency, so that a saturated service shows as dropped iterations. Single events use the load tests' own `loadtest/rest-single.js`, against the gateway and the bare server alike; batches and streams use `bench/rest-batch-prebuilt.js` and `bench/grpc-stream-prebuilt.js`, the load tests' scripts with each VU's events built once (the originals run once at the maximum, for comparison); queries use `bench/grpc-query.js`. The end-to-end phase uses the simulator (`tally simulate`, gRPC batches). Events are the load tests' realistic mix (Zipf-popular shop pages, posts and merchants, 100,000 users).",
    "- **Maxima.** Steps go up by a factor while they pass and down while the first ones fail; one more step between the last pass and the first failure refines the maximum. An ingest step passes with at most 1 % of its iterations dropped, at most 0.1 % failed and p99 under its blow-up bound; an end-to-end step with every group's lag bounded, 95 % of the offered events acknowledged and everything committed soon after.",
    "- **CPU.** Every process of the run (the roles, the servers — PostgreSQL with its backends — k6, the simulators, the baselines, the harness) is sampled from `/proc/<pid>/stat` every second and around each step; a step's CPU is its use inside the load window, in % of one core. _Other work_ is the machine's busy time (`/proc/stat`) less the run's processes; the shared servers' CPU includes what other clients made them do meanwhile. Where a process's main thread was runnable but waited for a core (the run queue, from `/proc/<pid>/task/<pid>/schedstat`), the evidence says how much of the step it waited, summed over a group's processes (three simulators can wait 120 %). _CPU per event_ divides a process's CPU by the step's rate, fixed costs (timers, polling, the gateway's live feed) included, so it overstates the cost at low rates; _a full core_ is the rate that process alone would reach with a core to itself.",
    "- **Visibility.** Probes measure from the client's acknowledgement to readability, with the poll interval as resolution; the consumers' histogram (when exported) measures from the log write to the batch being held.",
    "- **Kafka clients.** The last phases restart ingest and the gateway (side by side, fresh processes) for each configuration they compare, and stop the consumers: the two Kafka clients one after the other with the same steps, then tracing off and on. Their ingest searches start a step below the maxima the phases above found (else below the last full run's) and go in finer steps; a ratio closer to 1 than " +
      `${pct(EVEN_WITHIN * 100)} counts as even.`,
    "- **Tracing and metrics.** Tracing is off unless OTEL_* variables ask for it (`services/infra/tracing.ts`): the stage with it on sets them for an OTLP/HTTP exporter and the `always_on` sampler, to a receiver the harness runs that discards everything (`bench/lib/otlp-sink.ts`). Metrics cannot be switched off: their cost is read from V8 CPU profiles (`--cpu-prof`, sampling every millisecond) of one fixed-load step, as the share of the busy samples (those not idle) whose running function is in `prom-client` or `services/infra/metrics.ts`, within the step's load window. Tracing's cost is the share of the path's CPU per event it adds at the same offered rate (what a CPU-bound path loses in throughput), the maxima of the two searches corroborating; the cost of both together on a load is 1 − (1 − tracing's) × (1 − metrics').",
    "- **Baselines.** Raw producer: the Kafka client's ceiling with ingest's settings and write sizes. Bare HTTP: the ceiling of a Node.js HTTP server under the same k6 script. redis-benchmark: Redis's ceiling on the sink's commands with many pipelined clients. COPY: PostgreSQL's bulk path for the persister's rows, with the same indexes. The design before (a Redis marker and a `summary_event_seen` row per event for a 24 h window): its keys and rows written for the same events on the same servers, for what the sinks keep per event.",
  );
}

/** The phases that failed, if any. */
function renderErrors(r: Results, push: Push): void {
  if (r.errors.length > 0) {
    push('## Errors', '');
    for (const e of r.errors) push(`- ${e.phase}: ${e.error.split('\n')[0]}`);
    push('');
  }
}
