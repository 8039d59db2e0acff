/** Phase `e2e` in the report: its section and summary rows. */
import { boundNote, breakingStep, costEvidence, cpuEvidence, stepEvidence } from '../lib/evidence.ts';
import { cpuCells, cpuHeader, ms, num, type Push, pct, quant, table, verdict } from '../lib/format.ts';
import type { E2eStep, Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** The processes of the end-to-end path, for its tables and evidence. */
const E2E_GROUPS = [
  'ingest',
  'persister',
  'counter',
  'aggregator',
  'kafka',
  'redis',
  'postgres',
  'simulator',
];

/** Which consumer group fell furthest behind in a step, and how far. */
function slowestGroup(step: E2eStep): string {
  const entries = Object.entries(step.maxLag).sort((a, b) => b[1] - a[1]);
  const [group, lag] = entries[0] ?? ['—', 0];
  if (!(lag > 0)) return 'No group had a lag worth naming.';
  const cpu = step.cpu.byGroup[group];
  return `The furthest behind was the ${group} (${num(lag)} records at most in the step's second half${cpu !== undefined ? `, its process at ${pct(cpu)} of a core` : ''}).`;
}

/** End to end, and how long an event takes to show in Redis and the summary. */
export function e2eRows(r: Results, rows: SummaryRow[]): void {
  const e2e = r.e2e?.best;
  const e2eBreak = r.e2e && breakingStep(r.e2e.steps, e2e);
  rows.push({
    label: 'End to end, every group keeping up',
    measured: e2e ? `${num(e2e.achievedEvents)} events/s${boundNote(r.e2e!.steps, e2e)}` : '—',
    target: `≥ ${num(TARGETS.e2eEventsPerSecond)} events/s`,
    ok: e2e ? e2e.achievedEvents >= TARGETS.e2eEventsPerSecond : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit:
      r.e2e && e2eBreak
        ? [
            stepEvidence(r.e2e.steps, e2e, (s) => `${num(s.rate)} events/s offered`),
            slowestGroup(e2eBreak),
            costEvidence(e2e?.cpu, e2e?.achievedEvents, E2E_GROUPS),
            r.catchUp.length > 0
              ? `Alone on a backlog, the sinks went much faster (${r.catchUp.map((c) => `${c.role} ${num(c.eventsPerSecond)}/s`).join(', ')}): together, with ingest, the servers and the load generator on two cores, they share the CPU.`
              : '',
          ]
            .filter(Boolean)
            .join(' ')
        : undefined,
  });
  const vis = e2e ?? r.e2e?.steps[0];
  const where = vis ? ` (at ${num(vis.rate)} events/s)` : '';
  const probe = (sink: string) => vis?.probes[sink];
  const visLimit = vis
    ? `${cpuEvidence(vis.cpu, `During the step at ${num(vis.rate)} events/s`)} ${slowestGroup(vis)}`
    : undefined;
  rows.push({
    label: 'Accepted → visible in Redis, p50',
    measured: probe('counter') ? `${ms(probe('counter')!.p50)}${where}` : '—',
    target: '—',
    ok: undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
  rows.push({
    label: 'Accepted → visible in Redis, p99',
    measured: probe('counter') ? `${ms(probe('counter')!.p99)}${where}` : '—',
    target: `≤ ${TARGETS.redisVisibleP99Ms} ms`,
    ok: probe('counter') ? probe('counter')!.p99 <= TARGETS.redisVisibleP99Ms : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: visLimit,
  });
  rows.push({
    label: 'Accepted → visible in the hourly summary, p99',
    measured: probe('aggregator') ? `${ms(probe('aggregator')!.p99)}${where}` : '—',
    target: `≤ ${num(TARGETS.summaryVisibleP99Ms / 1000)} s`,
    ok: probe('aggregator') ? probe('aggregator')!.p99 <= TARGETS.summaryVisibleP99Ms : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: visLimit,
  });
}

/** Phase `e2e`: each step's lag, drain and visibility, and the consumers' own histogram. */
export function renderE2e(r: Results, push: Push): void {
  push('## End to end', '');
  if (r.e2e) {
    const groups = E2E_GROUPS;
    push(
      `Every role running; three simulators (\`tally simulate\`: clickstream 50 %, social 35 %, transactions 15 %, batches of 100 ` +
        `over gRPC to ingest) offer each rate for ${r.setup.e2eStepSeconds} s. The lag of each consumer group on the topic it reads (end offsets less ` +
        `committed offsets, read through the event log port every second: the persister's on the events topic, the counter's and the aggregator's ` +
        `on the accepted topic the persister fills, so an event on its way to them is in one lag or the other) must stay under max(2 s of events, 2,000) in the second ` +
        `half of the step, and every group must have committed everything within a drain wait after it (the persister first). Meanwhile ` +
        `${r.setup.probesPerSecond} probe events per second, each on a target of its own, go through \`Publish\`; from each ` +
        `acknowledgement the harness polls Redis every ${r.setup.probeRedisPollMs} ms and PostgreSQL every ${r.setup.probePgPollMs} ms ` +
        'until the probe is readable there (p50 / p99 below).',
      '',
      table(
        [
          'offered events/s',
          'acknowledged events/s',
          'max lag persister / counter / aggregator',
          'drained in',
          '→ Redis p50 / p99',
          '→ summary p50 / p99',
          '→ event row p50 / p99',
          ...cpuHeader(groups),
          'verdict',
        ],
        r.e2e.steps.map((s) => [
          num(s.rate),
          num(s.achievedEvents),
          ['persister', 'counter', 'aggregator'].map((g) => num(s.maxLag[g])).join(' / '),
          s.drainSeconds === undefined ? 'not drained' : `${num(s.drainSeconds, 1)} s`,
          quant(s.probes.counter),
          quant(s.probes.aggregator),
          quant(s.probes.persister),
          ...cpuCells(s.cpu, groups),
          verdict(s, r.e2e?.best),
        ]),
      ),
      '',
    );
    const vis = r.e2e.best ?? r.e2e.steps[0];
    if (vis?.histogram)
      push(
        `The consumers' own histogram \`tally_sink_visible_latency_seconds\` (from the record's log timestamp to the batch being ` +
          `held; quantiles interpolated within its buckets) at ${num(vis.rate)} events/s: ` +
          ['counter', 'aggregator', 'persister']
            .map(
              (s) =>
                `${s} p50 ${ms(vis.histogram![s]?.p50)}, p99 ${ms(vis.histogram![s]?.p99)} (${num(vis.histogram![s]?.n)} events)`,
            )
            .join('; ') +
          '.',
        '',
      );
    else
      push(
        'The consumers did not export `tally_sink_visible_latency_seconds` in this run: visibility comes from the probes only.',
        '',
      );
  } else push('Not measured.', '');
}
