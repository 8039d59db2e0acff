/** Phase `e2e` in the report: its section and summary rows. */
import { boundNote, breakingStep, costEvidence, cpuEvidence, stepEvidence } from '../lib/evidence.ts';
import {
  cpuCells,
  cpuHeader,
  cpuPerEvent,
  micros,
  ms,
  num,
  type Push,
  pct,
  quant,
  table,
  verdict,
} from '../lib/format.ts';
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

/** Tally's processes and its servers: what a user pays per event (the load generator excluded). */
const TALLY_GROUPS = E2E_GROUPS.filter((g) => g !== 'simulator');

/** The passing step whose rate is nearest `rate`. */
function stepNear(steps: readonly E2eStep[], rate: number): E2eStep | undefined {
  let best: E2eStep | undefined;
  for (const s of steps)
    if (s.passed && (!best || Math.abs(s.rate - rate) < Math.abs(best.rate - rate))) best = s;
  return best;
}

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

/** The figures held to a rate: Redis-visible p99 near 5,000/s, CPU per event near 3,000/s and at the maximum. */
export function e2eCostRows(r: Results, rows: SummaryRow[]): void {
  const steps = r.e2e?.steps ?? [];
  const at5000 = stepNear(steps, TARGETS.redisVisibleAtRate);
  const p99 = at5000?.probes.counter?.p99;
  const empty = { baseline: '—', ratio: '—', ratioTarget: '—', ratioOk: undefined };
  rows.push({
    label: 'Accepted → visible in Redis, p99 near 5,000 events/s',
    measured: p99 !== undefined ? `${ms(p99)} (at ${num(at5000!.rate)} events/s)` : '—',
    target: `≤ ${TARGETS.redisVisibleP99Ms} ms`,
    ok: p99 !== undefined ? p99 <= TARGETS.redisVisibleP99Ms : undefined,
    ...empty,
    limit: at5000 ? cpuEvidence(at5000.cpu, `During the step at ${num(at5000.rate)} events/s`) : undefined,
  });
  const split = (step: E2eStep) =>
    TALLY_GROUPS.map((g) => `${g} ${micros(cpuPerEvent(step, [g]))}`).join(', ');
  const cpuRow = (label: SummaryRow['label'], step: E2eStep | undefined, targetUs: number) => {
    const perEvent = cpuPerEvent(step, TALLY_GROUPS);
    rows.push({
      label,
      measured:
        perEvent !== undefined
          ? `${micros(perEvent)} (at ${num(step!.rate)} events/s: ${split(step!)})`
          : '—',
      target: `≤ ${micros(targetUs)}`,
      ok: perEvent !== undefined ? perEvent <= targetUs : undefined,
      ...empty,
      limit: step ? cpuEvidence(step.cpu, `During the step at ${num(step.rate)} events/s`) : undefined,
    });
  };
  cpuRow(
    'CPU per event end to end, near 3,000 events/s',
    stepNear(steps, 3_000),
    TARGETS.e2eCpuPerEventUsAt3000,
  );
  cpuRow('CPU per event end to end, at the maximum', r.e2e?.best, TARGETS.e2eCpuPerEventUsAtMax);
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
