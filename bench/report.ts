/**
 * Renders a run's results as bench/RESULTS.md: machine and versions, the summary of every figure
 * against its target and its baseline, what limits the figures that miss, the tables of each
 * phase (latency against offered load, with each process's CPU), and the method.
 */
import { type CpuUse, MULTI_THREADED } from './lib/proc.ts';
import {
  type E2eSeries,
  type E2eStep,
  KAFKA_LIBRARY,
  type KafkaClient,
  type KafkaClientRun,
  type KafkaClientsResult,
  type LoadStep,
  type OverheadResult,
  type Quantiles,
  type Results,
  type Series,
} from './lib/results.ts';

/** The project's targets (report only: a run never fails on them). */
export const TARGETS = {
  restSingleEventsPerSecond: 10_000,
  restSingleP99MsAt70: 20,
  batchEventsPerSecond: 50_000,
  e2eEventsPerSecond: 25_000,
  redisVisibleP99Ms: 250,
  summaryVisibleP99Ms: 5_000,
  getCountersP99Ms: 5,
  getCountersRate: 1_000,
  getReportP99Ms: 10,
  getReportEvents: 10_000_000,
  gatewayVsBareHttp: 0.4,
  ingestVsRawProducer: 0.5,
  /** What tracing and metrics may cost, as a share of the throughput without them. */
  observabilityCost: 0.1,
} as const;

/** Every section heading the report has, in order (the smoke test checks them). */
export const SECTIONS = [
  'Machine and versions',
  'Summary',
  'What limits the figures that miss their target',
  'REST single events: latency against offered load',
  'REST batches and gRPC streams',
  'Raw producer baseline',
  'Sinks',
  'End to end',
  'Queries',
  'The edge in one process: in-process calls against gRPC',
  'Start-up of `tally all` (embedded, as `npm start`)',
  'Kafka client: kafkajs against @platformatic/kafka',
  'Cost of tracing and metrics',
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
  'GetCounters p99 at 1,000 calls/s',
  'GetReport p99 on ≥ 10 M events',
  'Persister alone (event rows)',
  'Counter alone (Redis)',
  'Aggregator alone (summaries)',
  'Kafka client, @platformatic/kafka ÷ kafkajs',
  'Tracing and metrics on, cost in throughput',
] as const;

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

const NODE_GROUPS = new Set([
  'gateway',
  'ingest',
  'query',
  'persister',
  'counter',
  'aggregator',
  'simulator',
  'bare-http',
  'raw-producer',
  'harness',
]);

// ---------------------------------------------------------------------------------------------
// Formatting

const num = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : // + 0: a value that rounds to zero reads 0, not -0.
      (Number(n.toFixed(digits)) + 0).toLocaleString('en-US', {
        maximumFractionDigits: digits,
        minimumFractionDigits: digits,
      });
const ms = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : n >= 100
      ? `${num(n)} ms`
      : n >= 10
        ? `${num(n, 1)} ms`
        : `${num(n, 2)} ms`;
const pct = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n) ? '—' : `${num(n, digits)} %`;
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? a / b : undefined;
const met = (ok: boolean | undefined): string =>
  ok === undefined ? 'not measured' : ok ? '**met**' : '**not met**';

/** A Markdown table with padded columns (as the project's formatter lays tables out). */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${widths.map((w, i) => (cells[i] ?? '').padEnd(w)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function cpuCells(cpu: CpuUse | undefined, groups: string[]): string[] {
  return [
    ...groups.map((g) => (cpu ? pct(cpu.byGroup[g] ?? 0) : '—')),
    cpu ? pct(cpu.otherPct) : '—',
    cpu ? pct(cpu.machineBusyPct) : '—',
  ];
}

function cpuHeader(groups: string[]): string[] {
  return [...groups.map((g) => `CPU ${g}`), 'CPU other work', 'machine busy'];
}

// ---------------------------------------------------------------------------------------------
// What limits a figure, from the CPU of the step that shows it

/** A sentence on where the CPU went during `cpu`, naming saturated processes. */
export function cpuEvidence(cpu: CpuUse | undefined, where: string): string {
  if (!cpu || cpu.seconds === 0) return `${where}: no CPU sample.`;
  const top = Object.entries(cpu.byGroup)
    .filter(([, v]) => v >= 3)
    .sort((a, b) => b[1] - a[1]);
  const parts = top.map(([g, v]) => `${g} ${pct(v)}`);
  if (cpu.otherPct >= 3) parts.push(`other work on the machine ${pct(cpu.otherPct)}`);
  const saturated = top.filter(([g, v]) => NODE_GROUPS.has(g) && v >= 85).map(([g, v]) => `${g} (${pct(v)})`);
  const machineFull = cpu.machineBusyPct >= 90;
  const sentences = [
    `${where}, the machine was ${pct(cpu.machineBusyPct)} busy (${cpu.cores} cores; CPU in % of one core: ${parts.join(', ') || 'nothing above 3 %'}).`,
  ];
  if (saturated.length > 0)
    sentences.push(
      `${saturated.join(' and ')} ran at about a full core: a Node.js process does its JavaScript on one thread, so ${saturated.length > 1 ? 'these processes were' : 'this process was'} saturated.`,
    );
  if (machineFull)
    sentences.push(
      'Both cores were busy: the processes of the path, the load generator and any other work competed for CPU, so the figure is bounded by the machine rather than by one component.',
    );
  const k6 = cpu.byGroup.k6 ?? 0;
  const sim = cpu.byGroup.simulator ?? 0;
  if (k6 >= 50 || sim >= 50)
    sentences.push(
      `The load generator itself took ${pct(Math.max(k6, sim))} of a core on the same machine: on separate load machines the service would get that CPU too.`,
    );
  const waited = Object.entries(cpu.waitByGroup ?? {})
    .filter(([g, v]) => v >= 5 && !MULTI_THREADED.has(g) && (cpu.byGroup[g] ?? 0) >= 10)
    .sort((a, b) => b[1] - a[1]);
  if (waited.length > 0)
    sentences.push(
      `Main threads runnable but waiting for a core (the run queue, % of the step): ${waited.map(([g, v]) => `${g} ${pct(v)}`).join(', ')}: time lost to CPU contention, which shows as latency before any process saturates.`,
    );
  if (!machineFull && saturated.length === 0 && waited.length === 0)
    sentences.push(
      'Neither a process nor the machine was saturated on average over the step: the limit lies in waits (on the servers, the batching linger) and in stalls shorter than the CPU samples.',
    );
  else if (!machineFull && saturated.length === 0)
    sentences.push(
      `No process was saturated on average, but with ${pct(cpu.machineBusyPct)} of two cores busy the processes of the path queue for a core, and latency grows before throughput tops out.`,
    );
  return sentences.join(' ');
}

/** `12 µs`, `1.4 ms`. */
function micros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '—';
  return us >= 1000 ? `${num(us / 1000, 1)} ms` : `${num(us)} µs`;
}

/**
 * CPU per event of each process at a steady step, and the rate a full core of this machine
 * would give that process alone (a Node.js process runs its JavaScript on one thread).
 */
export function costEvidence(
  cpu: CpuUse | undefined,
  perSecond: number | undefined,
  groups: string[],
  unit = 'event',
): string {
  if (!cpu || !(perSecond && perSecond > 0)) return '';
  const parts = groups
    .filter((g) => (cpu.byGroup[g] ?? 0) > 0.5)
    .map((g) => {
      const us = (cpu.byGroup[g]! / 100 / perSecond) * 1e6;
      return `${g} ${micros(us)} (a full core: about ${num(1e6 / us)}/s)`;
    });
  return parts.length === 0 ? '' : `CPU per ${unit} at ${num(perSecond)}/s: ${parts.join(', ')}.`;
}

/** The step above the best one (where the series broke), else the best, else the last. */
function breakingStep<S extends { passed: boolean; rate: number }>(
  steps: S[],
  best: S | undefined,
): S | undefined {
  if (best) return steps.find((s) => !s.passed && s.rate > best.rate) ?? best;
  return steps.at(-1);
}

/** Did some step above the best one fail, i.e. was the maximum found rather than only bounded below? */
function saturated<S extends { passed: boolean; rate: number }>(steps: S[], best: S | undefined): boolean {
  return best !== undefined && steps.some((s) => !s.passed && s.rate > best.rate);
}

/** Where a series' figure comes from: the step that broke it, or the highest one when none did. */
function stepEvidence<S extends { passed: boolean; rate: number; why: string; cpu: CpuUse }>(
  steps: S[],
  best: S | undefined,
  offered: (s: S) => string,
): string | undefined {
  const step = breakingStep(steps, best);
  if (!step) return undefined;
  if (best && !saturated(steps, best))
    return `No step failed: the steps stopped at ${offered(step)} (their number or the run's time budget), so the figure is a lower bound, not the maximum. ${cpuEvidence(step.cpu, `At ${offered(step)}`)}`;
  return cpuEvidence(
    step.cpu,
    `At ${offered(step)} (${step.passed ? 'the highest step' : `the step that broke: ${step.why}`})`,
  );
}

/** " (lower bound: no step failed)" when the series never broke. */
function boundNote<S extends { passed: boolean; rate: number }>(steps: S[], best: S | undefined): string {
  return best && !saturated(steps, best) ? ' (lower bound: no step failed)' : '';
}

// ---------------------------------------------------------------------------------------------
// The Kafka clients compared, and the cost of tracing and metrics

/**
 * Two figures closer than this (as a ratio) count as even: the searches' steps are 15 % apart,
 * and the machine is shared.
 */
export const EVEN_WITHIN = 0.1;

/** One figure of both clients (a rate: higher is better). */
export interface ClientFigure {
  figure: string;
  /** Ingest, sinks and end to end; the libraries alone are not. */
  service: boolean;
  /** Records per send, for the libraries alone. */
  batch?: number;
  kafkajs: number | undefined;
  platformatic: number | undefined;
  /** Each client's figure is only a lower bound (a search none of whose steps failed). */
  kafkajsBound?: boolean;
  platformaticBound?: boolean;
}

const runOf = (k: KafkaClientsResult, client: KafkaClient): KafkaClientRun | undefined =>
  k.runs.find((r) => r.client === client);

/** A search's maximum, and whether it is only a lower bound. */
function maximum<S extends { passed: boolean; rate: number; achievedEvents: number }>(
  series: { steps: S[]; best?: S } | undefined,
): { value: number | undefined; bound: boolean } {
  const best = series?.best;
  return { value: best?.achievedEvents, bound: best !== undefined && !saturated(series!.steps, best) };
}

/** Every figure measured with both clients, in the report's order. */
export function clientFigures(k: KafkaClientsResult): ClientFigure[] {
  const a = runOf(k, 'kafkajs');
  const b = runOf(k, 'platformatic');
  const out: ClientFigure[] = [];
  for (const raw of a?.rawProducer ?? [])
    out.push({
      figure: `raw producer, ${num(raw.batch)} records per send`,
      service: false,
      batch: raw.batch,
      kafkajs: raw.eventsPerSecond,
      platformatic: b?.rawProducer.find((x) => x.batch === raw.batch)?.eventsPerSecond,
    });
  const searches = [
    ['gRPC stream ingest', (r: KafkaClientRun | undefined) => r?.grpcStream],
    ['REST batch ingest', (r: KafkaClientRun | undefined) => r?.restBatch],
  ] as const;
  for (const [figure, of] of searches) {
    const x = maximum(of(a));
    const y = maximum(of(b));
    out.push({
      figure,
      service: true,
      kafkajs: x.value,
      platformatic: y.value,
      kafkajsBound: x.bound,
      platformaticBound: y.bound,
    });
  }
  for (const c of a?.catchUp ?? [])
    out.push({
      figure: `${c.role} alone`,
      service: true,
      kafkajs: c.eventsPerSecond,
      platformatic: b?.catchUp.find((x) => x.role === c.role)?.eventsPerSecond,
    });
  if (a?.e2e || b?.e2e) {
    const x = maximum(a?.e2e);
    const y = maximum(b?.e2e);
    out.push({
      figure: 'end to end',
      service: true,
      kafkajs: x.value,
      platformatic: y.value,
      kafkajsBound: x.bound,
      platformaticBound: y.bound,
    });
  }
  return out;
}

/**
 * Which client a figure favours, `even` within EVEN_WITHIN, `undecided` when a lower bound
 * leaves it open (a client whose search never failed may be faster than it shows).
 */
export function faster(f: ClientFigure): KafkaClient | 'even' | 'undecided' | undefined {
  const q = ratio(f.platformatic, f.kafkajs);
  if (q === undefined || !Number.isFinite(q)) return undefined;
  const verdict = q >= 1 + EVEN_WITHIN ? 'platformatic' : q <= 1 / (1 + EVEN_WITHIN) ? 'kafkajs' : 'even';
  // A bound holds only for the client it is below: the other can only be ahead by more.
  if (f.kafkajsBound && f.platformaticBound) return 'undecided';
  if (f.platformaticBound && verdict !== 'platformatic') return 'undecided';
  if (f.kafkajsBound && verdict !== 'kafkajs') return 'undecided';
  return verdict;
}

/** `115 %`, `≥ 115 %` (platformatic's figure a lower bound), `≤ 90 %` (kafkajs's). */
export function clientRatio(f: ClientFigure): string {
  const q = ratio(f.platformatic, f.kafkajs);
  if (q === undefined) return '—';
  if (f.kafkajsBound && f.platformaticBound) return `${pct(q * 100)} (both lower bounds)`;
  return `${f.platformaticBound ? '≥ ' : f.kafkajsBound ? '≤ ' : ''}${pct(q * 100)}`;
}

/** The verdict line: which client is faster on which figure, and what the service's figures favour. */
export function clientVerdict(figures: ClientFigure[]): string {
  const judged = figures.filter((f) => faster(f) !== undefined);
  if (judged.length === 0) return 'No figure was measured with both clients.';
  const list = (who: ReturnType<typeof faster>) =>
    judged
      .filter((f) => faster(f) === who)
      .map((f) => `${f.figure} at ${clientRatio(f)}`)
      .join(', ');
  const parts = [
    list('platformatic') && `${KAFKA_LIBRARY.platformatic} faster on ${list('platformatic')}`,
    list('kafkajs') && `kafkajs faster on ${list('kafkajs')}`,
    list('even') && `even (within ${pct(EVEN_WITHIN * 100)}) on ${list('even')}`,
    list('undecided') && `undecided (a search found no maximum) on ${list('undecided')}`,
  ].filter(Boolean);
  // The service's own figures decide; a library alone is not what the roles do.
  const service = judged.filter((f) => f.service && faster(f) !== 'undecided');
  const wins = (who: KafkaClient) => service.filter((f) => faster(f) === who).length;
  const p = wins('platformatic');
  const k = wins('kafkajs');
  const on = `On the service's own figures (ingest, sinks, end to end: ${service.length} decided)`;
  const conclusion =
    service.length === 0
      ? 'No figure of the service itself decides between them.'
      : p > 0 && k === 0
        ? `${on} the run favours ${KAFKA_LIBRARY.platformatic}: faster on ${p}, slower on none.`
        : k > 0 && p === 0
          ? `${on} the run favours kafkajs: faster on ${k}, slower on none.`
          : p === 0 && k === 0
            ? `${on} neither client is faster by more than ${pct(EVEN_WITHIN * 100)}.`
            : `${on} the run is mixed: ${KAFKA_LIBRARY.platformatic} faster on ${p}, kafkajs on ${k}.`;
  return `${parts.join('; ')}. ${conclusion}`;
}

/** What tracing and metrics cost one load, as shares of the throughput without them. */
export interface ObservabilityCost {
  load: 'gRPC stream' | 'REST single';
  /** 1 − (CPU per event of the path with tracing off ÷ with it on), at the same offered rate. */
  tracingCpu: number | undefined;
  /** 1 − (maximum with tracing on ÷ maximum with it off), when both searches found their maximum. */
  tracingMax: number | undefined;
  /** The one held against the target: by CPU when measured, else by the maxima. */
  tracing: number | undefined;
  /** The share of the path's busy CPU spent in metrics code (its processes' samples together). */
  metrics: number | undefined;
  /** 1 − (1 − tracing) × (1 − metrics), a negative tracing cost counted as none. */
  combined: number | undefined;
}

/** The processes of each load's path. */
export const PATH_OF: Record<ObservabilityCost['load'], readonly string[]> = {
  'gRPC stream': ['ingest'],
  'REST single': ['gateway', 'ingest'],
};

export function observabilityCosts(o: OverheadResult): ObservabilityCost[] {
  return (['gRPC stream', 'REST single'] as const).map((load) => {
    const key = loadKey(load);
    const pair = commonStep(o.off[key], o.on?.[key]);
    const cpuOff = cpuPerEvent(pair?.[0], PATH_OF[load]);
    const cpuOn = cpuPerEvent(pair?.[1], PATH_OF[load]);
    const qCpu = ratio(cpuOff, cpuOn);
    const off = maximum(o.off[key]);
    const on = maximum(o.on?.[key]);
    const qMax = off.bound || on.bound ? undefined : ratio(on.value, off.value);
    const tracingCpu = qCpu === undefined ? undefined : 1 - qCpu;
    const tracingMax = qMax === undefined ? undefined : 1 - qMax;
    const tracing = tracingCpu ?? tracingMax;
    const processes = o.profiles.find((p) => p.load === load)?.processes ?? [];
    const busy = processes.reduce((n, p) => n + p.busy, 0);
    const own = processes.reduce((n, p) => n + p.promClient + p.metricsModule, 0);
    const metrics = busy > 0 ? own / busy : undefined;
    const combined =
      tracing === undefined || metrics === undefined
        ? undefined
        : 1 - (1 - Math.max(0, tracing)) * (1 - metrics);
    return { load, tracingCpu, tracingMax, tracing, metrics, combined };
  });
}

/** Met when every load's combined cost is within the target; undefined when one was not measured. */
export function observabilityMet(costs: ObservabilityCost[]): boolean | undefined {
  if (costs.length === 0 || costs.some((c) => c.combined === undefined)) return undefined;
  return costs.every((c) => c.combined! <= TARGETS.observabilityCost);
}

/**
 * The step of each series at the highest rate both offered and both passed (else the highest
 * both offered): where their CPU per event compares at the same load.
 */
export function commonStep(a: Series | undefined, b: Series | undefined): [LoadStep, LoadStep] | undefined {
  if (!a || !b) return undefined;
  const pairs = a.steps
    .map((x) => [x, b.steps.find((y) => y.rate === x.rate)] as const)
    .filter((p): p is readonly [LoadStep, LoadStep] => p[1] !== undefined)
    .sort((p, q) => q[0].rate - p[0].rate);
  const pair = pairs.find(([x, y]) => x.passed && y.passed) ?? pairs[0];
  return pair && [pair[0], pair[1]];
}

const loadKey = (load: ObservabilityCost['load']) => (load === 'gRPC stream' ? 'grpcStream' : 'restSingle');

/** The unit of a load's iterations. */
const UNIT_OF: Record<ObservabilityCost['load'], string> = {
  'gRPC stream': 'streams',
  'REST single': 'requests',
};

/** Where the cost of tracing and metrics comes from, per load. */
function overheadEvidence(o: OverheadResult, costs: ObservabilityCost[]): string {
  const parts = costs.map((c) => {
    const key = loadKey(c.load);
    const pair = commonStep(o.off[key], o.on?.[key]);
    const path = PATH_OF[c.load];
    const cpu = pair
      ? ` At ${num(pair[0].rate)} ${UNIT_OF[c.load]}/s, ${path.join(' and ')} used ${micros(cpuPerEvent(pair[0], path))} of CPU per event with tracing off, ${micros(cpuPerEvent(pair[1], path))} with it on: tracing costs ${pct((c.tracingCpu ?? Number.NaN) * 100, 1)} of what a CPU-bound path serves.`
      : '';
    const maxima = ` The maxima: ${num(o.off[key]?.best?.achievedEvents)} events/s with tracing off, ${num(o.on?.[key]?.best?.achievedEvents)} on${c.tracingMax === undefined ? ' (a search found no maximum: no cost from them)' : `, ${pct(c.tracingMax * 100, 1)} lower`}.`;
    return `${c.load}: ${pct((c.combined ?? Number.NaN) * 100, 1)} in all; metrics took ${pct((c.metrics ?? Number.NaN) * 100, 1)} of the path's busy CPU in the profile.${cpu}${maxima}`;
  });
  if (o.on && o.on.droppedSpans > 0)
    parts.push(
      `The batch span processors dropped ${num(o.on.droppedSpans)} spans (queue full, OTEL_BSP_* defaults): the exporter did not keep up, so tracing cost less than exporting every span would.`,
    );
  return parts.join(' ');
}

/** CPU per event of `groups` together at a step, µs. */
function cpuPerEvent(step: LoadStep | undefined, groups: readonly string[]): number | undefined {
  if (!step || !(step.achievedEvents > 0) || step.cpu.seconds === 0) return undefined;
  const total = groups.reduce((t, g) => t + (step.cpu.byGroup[g] ?? 0), 0);
  return (total / 100 / step.achievedEvents) * 1e6;
}

// ---------------------------------------------------------------------------------------------

interface SummaryRow {
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

function rawFor(results: Results, series: Series | undefined) {
  const mean = series?.best?.writes?.meanEvents;
  if (mean === undefined)
    return results.rawProducer.find((r) => r.batch === results.setup.maxProduceBatchEvents);
  return results.rawProducer.find((r) => r.batch === Math.round(mean));
}

/** The summary table's rows, in the order of SUMMARY_ROWS. */
function summaryRows(r: Results): SummaryRow[] {
  const rows: SummaryRow[] = [];
  restSingleRows(r, rows);
  ingestRows(r, rows);
  e2eRows(r, rows);
  queryRows(r, rows);
  sinkRows(r, rows);
  kafkaClientRows(r, rows);
  overheadRows(r, rows);
  return rows;
}

/** REST single events against the bare HTTP server, and their p99 at 70 % of the maximum. */
function restSingleRows(r: Results, rows: SummaryRow[]): void {
  const single = r.restSingle?.best;
  const bare = r.bareHttp?.best;
  const singleRatio = ratio(single?.achievedEvents, bare?.achievedEvents);
  rows.push({
    label: 'REST single, sustained',
    measured: single
      ? `${num(single.achievedEvents)} events/s${boundNote(r.restSingle!.steps, single)}`
      : '—',
    target: `≥ ${num(TARGETS.restSingleEventsPerSecond)} events/s`,
    ok: single ? single.achievedEvents >= TARGETS.restSingleEventsPerSecond : undefined,
    baseline: bare ? `bare Node HTTP: ${num(bare.achievedEvents)} requests/s` : '—',
    ratio: singleRatio === undefined ? '—' : pct(singleRatio * 100),
    ratioTarget: `≥ ${pct(TARGETS.gatewayVsBareHttp * 100)}`,
    ratioOk: singleRatio === undefined ? undefined : singleRatio >= TARGETS.gatewayVsBareHttp,
    limit:
      r.restSingle &&
      [
        stepEvidence(r.restSingle.steps, single, (s) => `${num(s.rate)} requests/s offered`),
        costEvidence(single?.cpu, single?.achievedEvents, ['gateway', 'ingest', 'kafka', 'k6'], 'request'),
        bare
          ? `The bare HTTP server at its best step: ${costEvidence(bare.cpu, bare.achievedEvents, ['bare-http', 'k6'], 'request')}`
          : '',
      ]
        .filter(Boolean)
        .join(' '),
  });
  const at70 = r.at70;
  rows.push({
    label: 'REST single, p99 at 70 % of max',
    measured: at70 ? `${ms(at70.latency.p99)} at ${num(at70.rate)} requests/s` : '—',
    target: `≤ ${TARGETS.restSingleP99MsAt70} ms`,
    ok: at70 ? at70.latency.p99 <= TARGETS.restSingleP99MsAt70 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: at70
      ? `${cpuEvidence(at70.cpu, `At ${num(at70.rate)} requests/s (70 % of the maximum)`)}${at70.writes ? ` Ingest's Kafka writes took ${ms(at70.writes.p99Ms)} at p99 (${num(at70.writes.meanEvents, 1)} events per write): the acknowledgement waits for one.` : ''}`
      : undefined,
  });
}

/** REST batches and gRPC streams against the raw producer. */
function ingestRows(r: Results, rows: SummaryRow[]): void {
  for (const [label, series] of [
    ['REST batch ingest', r.restBatch],
    ['gRPC stream ingest', r.grpcStream],
  ] as const) {
    const best = series?.best;
    const raw = rawFor(r, series);
    const q = ratio(best?.achievedEvents, raw?.eventsPerSecond);
    rows.push({
      label,
      measured: best ? `${num(best.achievedEvents)} events/s${boundNote(series!.steps, best)}` : '—',
      target: `≥ ${num(TARGETS.batchEventsPerSecond)} events/s`,
      ok: best ? best.achievedEvents >= TARGETS.batchEventsPerSecond : undefined,
      baseline: raw
        ? `${KAFKA_LIBRARY[raw.client ?? 'kafkajs']} alone, ${num(raw.batch)} records per send: ${num(raw.eventsPerSecond)} events/s`
        : '—',
      ratio: q === undefined ? '—' : pct(q * 100),
      ratioTarget: `≥ ${pct(TARGETS.ingestVsRawProducer * 100)}`,
      ratioOk: q === undefined ? undefined : q >= TARGETS.ingestVsRawProducer,
      limit:
        series &&
        [
          stepEvidence(series.steps, best, (s) => `${num(s.offeredEvents)} events/s offered`),
          costEvidence(best?.cpu, best?.achievedEvents, series.columns),
          raw
            ? costEvidence(raw.cpu, raw.eventsPerSecond, ['raw-producer', 'kafka']).replace(
                'CPU per event',
                'The raw producer: CPU per event',
              )
            : '',
        ]
          .filter(Boolean)
          .join(' '),
    });
  }
}

/** End to end, and how long an event takes to show in Redis and the summary. */
function e2eRows(r: Results, rows: SummaryRow[]): void {
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

/** GetCounters and GetReport. */
function queryRows(r: Results, rows: SummaryRow[]): void {
  const gc = r.getCounters;
  const redisHget = r.redisBench?.rows.find((x) => x.name === 'HGETALL, 10 clients, no pipeline');
  rows.push({
    label: 'GetCounters p99 at 1,000 calls/s',
    measured: gc ? `${ms(gc.latency.p99)} at ${num(gc.rate)} calls/s` : '—',
    target: `≤ ${TARGETS.getCountersP99Ms} ms`,
    ok: gc ? gc.latency.p99 <= TARGETS.getCountersP99Ms && gc.rate >= TARGETS.getCountersRate : undefined,
    baseline: redisHget
      ? `redis-benchmark HGETALL (10 clients, no pipeline) p99 ${ms(redisHget.p99Ms)}`
      : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: gc ? cpuEvidence(gc.cpu, `At ${num(gc.rate)} calls/s`) : undefined,
  });
  const gr = r.getReport;
  rows.push({
    label: 'GetReport p99 on ≥ 10 M events',
    measured: gr
      ? `${ms(gr.latency.p99)} at ${num(gr.rate)} calls/s, ${num(gr.seed.rows)} summary rows of ${num(gr.seed.events)} events`
      : '—',
    target: `≤ ${TARGETS.getReportP99Ms} ms`,
    ok: gr
      ? gr.latency.p99 <= TARGETS.getReportP99Ms && gr.seed.events >= TARGETS.getReportEvents
      : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: gr
      ? `${cpuEvidence(gr.cpu, `At ${num(gr.rate)} calls/s`)}${gr.seed.events < TARGETS.getReportEvents ? ` The table summarised only ${num(gr.seed.events)} events (a smoke run's tiny table).` : ''}`
      : undefined,
  });
}

/** Each sink alone against its server's baseline. */
function sinkRows(r: Results, rows: SummaryRow[]): void {
  const catchUp = (role: string) => r.catchUp.find((c) => c.role === role);
  const persister = catchUp('persister');
  const copyRatio = ratio(persister?.eventsPerSecond, r.pgCopy?.rowsPerSecond);
  rows.push({
    label: 'Persister alone (event rows)',
    measured: persister ? `${num(persister.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: r.pgCopy ? `COPY of the same rows: ${num(r.pgCopy.rowsPerSecond)} rows/s` : '—',
    ratio: copyRatio === undefined ? '—' : pct(copyRatio * 100),
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const counter = catchUp('counter');
  const apply = r.redisBench?.rows.find((x) => x.name === 'EVALSHA apply ×1');
  const applyRatio = ratio(counter?.eventsPerSecond, apply?.eventsPerSecond);
  rows.push({
    label: 'Counter alone (Redis)',
    measured: counter ? `${num(counter.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: apply
      ? `redis-benchmark apply script, one event per call: ${num(apply.eventsPerSecond)} events/s`
      : '—',
    ratio: applyRatio === undefined ? '—' : pct(applyRatio * 100),
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const aggregator = catchUp('aggregator');
  rows.push({
    label: 'Aggregator alone (summaries)',
    measured: aggregator ? `${num(aggregator.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
}

/** The Kafka clients compared. */
function kafkaClientRows(r: Results, rows: SummaryRow[]): void {
  const figures = r.kafkaClients ? clientFigures(r.kafkaClients) : [];
  const service = figures.filter((f) => f.service);
  const raws = figures.filter((f) => !f.service);
  rows.push({
    label: 'Kafka client, @platformatic/kafka ÷ kafkajs',
    measured: service.length > 0 ? service.map((f) => `${f.figure} ${clientRatio(f)}`).join(', ') : '—',
    target: '—',
    ok: undefined,
    baseline:
      raws.length > 0
        ? `the libraries alone, records per send: ${raws.map((f) => `${num(f.batch)} ${clientRatio(f)}`).join(', ')}`
        : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
}

/** What tracing and metrics cost. */
function overheadRows(r: Results, rows: SummaryRow[]): void {
  const costs = r.overhead ? observabilityCosts(r.overhead) : [];
  const measuredCosts = costs.filter((c) => c.combined !== undefined);
  rows.push({
    label: 'Tracing and metrics on, cost in throughput',
    measured:
      measuredCosts.length > 0
        ? measuredCosts.map((c) => `${c.load} ${pct(c.combined! * 100, 1)}`).join(', ')
        : '—',
    target: `≤ ${pct(TARGETS.observabilityCost * 100)}`,
    ok: observabilityMet(costs),
    baseline: r.overhead
      ? `tracing off: ${costs.map((c) => `${c.load} ${num(r.overhead!.off[loadKey(c.load)]?.best?.achievedEvents)} events/s`).join(', ')}`
      : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: r.overhead && overheadEvidence(r.overhead, costs),
  });
}

/** Which consumer group fell furthest behind in a step, and how far. */
function slowestGroup(step: E2eStep): string {
  const entries = Object.entries(step.maxLag).sort((a, b) => b[1] - a[1]);
  const [group, lag] = entries[0] ?? ['—', 0];
  if (!(lag > 0)) return 'No group had a lag worth naming.';
  const cpu = step.cpu.byGroup[group];
  return `The furthest behind was the ${group} (${num(lag)} records at most in the step's second half${cpu !== undefined ? `, its process at ${pct(cpu)} of a core` : ''}).`;
}

// ---------------------------------------------------------------------------------------------

function loadTable(series: Series, unit: string): string {
  const withWrites = series.steps.some((s) => s.writes);
  return table(
    [
      `offered ${unit}/s`,
      'offered events/s',
      'acknowledged events/s',
      'p50',
      'p90',
      'p99',
      'max',
      'dropped',
      'failed',
      ...(withWrites ? ['events per Kafka write'] : []),
      ...cpuHeader(series.columns),
      'verdict',
    ],
    series.steps.map((s) => [
      num(s.rate),
      num(s.offeredEvents),
      num(s.achievedEvents),
      ms(s.latency.p50),
      ms(s.latency.p90),
      ms(s.latency.p99),
      ms(s.latency.max),
      `${num(s.dropped)} of ${num(s.planned)}`,
      pct(s.failedRate * 100, 2),
      ...(withWrites ? [s.writes ? num(s.writes.meanEvents, 1) : '—'] : []),
      ...cpuCells(s.cpu, series.columns),
      verdict(s, series.best),
    ]),
  );
}

function verdict(s: LoadStep | E2eStep, best: LoadStep | E2eStep | undefined): string {
  if (s === best) return '**max**';
  return s.passed ? 'pass' : `fail: ${s.why}`;
}

function quant(q: Quantiles | undefined): string {
  return q && q.n > 0 ? `${ms(q.p50)} / ${ms(q.p99)}` : '—';
}

type Push = (...lines: string[]) => void;

/** `26 pass, 30 pass, 34 fail`: a search's steps, compactly. */
function stepList(steps: { rate: number; passed: boolean }[]): string {
  return steps.map((s) => `${num(s.rate)} ${s.passed ? 'pass' : 'fail'}`).join(', ');
}

/** A row of ratios: `platformatic ÷ kafkajs`, each cell the quotient of the two runs' cells. */
function ratioCell(a: number | undefined, b: number | undefined): string {
  const q = ratio(b, a);
  return q === undefined ? '—' : pct(q * 100);
}

function renderKafkaClients(r: Results, push: Push): void {
  push('## Kafka client: kafkajs against @platformatic/kafka', '');
  const k = r.kafkaClients;
  if (!k || k.runs.length === 0) {
    push('Not measured.', '');
    return;
  }
  const a = runOf(k, 'kafkajs');
  const b = runOf(k, 'platformatic');
  const name = (run: KafkaClientRun) => run.library;
  push(
    `The roles restarted with each client in turn (\`TALLY_KAFKA_CLIENT=kafkajs\`, then \`platformatic\`: ${k.runs.map(name).join(', ')}), ` +
      `on the same figures with the same steps: ingest's maxima (gRPC streams straight to ingest, REST batches through the gateway, ${num(k.stepSeconds)} s per step, ` +
      "starting a step below the maxima of the phases above, in finer steps); each consumer role alone on the backlog that client's own ingest steps wrote " +
      "(in consumer groups of the client's own, set to the end of the events topic before its ingest steps: events no sink had seen)" +
      `${k.e2eStepSeconds ? `; end to end with the simulators (${num(k.e2eStepSeconds)} s per step)` : ''}; ` +
      "and each library's producer alone (`bench/baselines/raw-producer.ts --client`) at the sizes of ingest's writes with the first client. The clients ran one after the other, so a shared machine's other work weighs on each differently; " +
      `a ratio within ${pct(EVEN_WITHIN * 100)} of 100 % counts as even.`,
    '',
  );
  const figures = clientFigures(k);
  push(`**Verdict.** ${clientVerdict(figures)}`, '');

  renderClientRawProducers(a, b, push);
  renderClientIngest(figures, a, b, push);
  renderClientSinks(a, b, push);
  renderClientE2e(figures, a, b, push);
}

/** Each library alone at the write sizes of the first client's ingest. */
function renderClientRawProducers(
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  push('### Raw producer', '');
  const sizes = a?.rawProducer ?? [];
  push(
    sizes.length === 0
      ? 'Not measured.'
      : table(
          [
            'records per send',
            'mirrors',
            'kafkajs events/s',
            '@platformatic/kafka events/s',
            'platformatic ÷ kafkajs',
            'send p99 kafkajs / platformatic',
            'producer CPU per event kafkajs / platformatic',
          ],
          sizes.map((x) => {
            const y = b?.rawProducer.find((z) => z.batch === x.batch);
            const perEvent = (run: typeof x | undefined) =>
              run && run.eventsPerSecond > 0 && run.cpu.seconds > 0
                ? micros(((run.cpu.byGroup['raw-producer'] ?? 0) / 100 / run.eventsPerSecond) * 1e6)
                : '—';
            return [
              num(x.batch),
              x.mirrors,
              num(x.eventsPerSecond),
              num(y?.eventsPerSecond),
              ratioCell(x.eventsPerSecond, y?.eventsPerSecond),
              `${ms(x.sendP99Ms)} / ${ms(y?.sendP99Ms)}`,
              `${perEvent(x)} / ${perEvent(y)}`,
            ];
          }),
        ),
    '',
  );
}

/** The gRPC stream and REST batch searches with each client. */
function renderClientIngest(
  figures: ClientFigure[],
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  for (const [title, figureName, key, unit, groups] of [
    ['Ingest: gRPC streams', 'gRPC stream ingest', 'grpcStream', 'streams', ['ingest', 'kafka']],
    ['Ingest: REST batches', 'REST batch ingest', 'restBatch', 'batches', ['gateway', 'ingest', 'kafka']],
  ] as const) {
    push(`### ${title}`, '');
    const sa = a?.[key];
    const sb = b?.[key];
    if (!sa && !sb) {
      push('Not measured.', '');
      continue;
    }
    const row = (run: KafkaClientRun | undefined) => {
      const series = run?.[key];
      const best = series?.best;
      return [
        run ? KAFKA_LIBRARY[run.client] : '—',
        best ? `${num(best.achievedEvents)}${boundNote(series!.steps, best) ? ' (lower bound)' : ''}` : '—',
        ms(best?.latency.p99),
        best?.writes ? num(best.writes.meanEvents, 1) : '—',
        ...groups.map((g) =>
          best && best.achievedEvents > 0 && best.cpu.seconds > 0
            ? micros(((best.cpu.byGroup[g] ?? 0) / 100 / best.achievedEvents) * 1e6)
            : '—',
        ),
        series ? stepList(series.steps) : '—',
      ];
    };
    const figure = figures.find((f) => f.figure === figureName);
    push(
      table(
        [
          'client',
          'max events/s',
          'p99 at the max',
          'events per Kafka write',
          ...groups.map((g) => `${g} CPU per event`),
          `steps (offered ${unit}/s)`,
        ],
        [
          row(a),
          row(b),
          ['platformatic ÷ kafkajs', figure ? clientRatio(figure) : '—', '', '', ...groups.map(() => ''), ''],
        ],
      ),
      '',
    );
  }
}

/** The sinks catching up with each client. */
function renderClientSinks(a: KafkaClientRun | undefined, b: KafkaClientRun | undefined, push: Push): void {
  push('### Sinks', '');
  const roles = a?.catchUp ?? [];
  push(
    roles.length === 0
      ? 'Not measured.'
      : table(
          [
            'role',
            'kafkajs events/s',
            '@platformatic/kafka events/s',
            'platformatic ÷ kafkajs',
            'its CPU per event kafkajs / platformatic',
            'events handled kafkajs / platformatic',
          ],
          roles.map((x) => {
            const y = b?.catchUp.find((z) => z.role === x.role);
            const perEvent = (c: typeof x | undefined) =>
              c && c.eventsPerSecond > 0
                ? micros(((c.cpu.byGroup[c.role] ?? 0) / 100 / c.eventsPerSecond) * 1e6)
                : '—';
            return [
              x.role,
              num(x.eventsPerSecond),
              num(y?.eventsPerSecond),
              ratioCell(x.eventsPerSecond, y?.eventsPerSecond),
              `${perEvent(x)} / ${perEvent(y)}`,
              `${num(x.events)} / ${num(y?.events)}`,
            ];
          }),
        ),
    '',
  );
}

/** The end-to-end search with each client, when the plan has one. */
function renderClientE2e(
  figures: ClientFigure[],
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  push('### End to end', '');
  if (!a?.e2e && !b?.e2e) push('Not measured (left out of this plan).', '');
  else {
    const row = (run: KafkaClientRun | undefined) => {
      const e2e: E2eSeries | undefined = run?.e2e;
      const best = e2e?.best;
      return [
        run ? KAFKA_LIBRARY[run.client] : '—',
        best ? `${num(best.achievedEvents)}${boundNote(e2e!.steps, best) ? ' (lower bound)' : ''}` : '—',
        quant(best?.probes.counter),
        quant(best?.probes.aggregator),
        quant(best?.probes.persister),
        e2e ? stepList(e2e.steps) : '—',
      ];
    };
    push(
      table(
        [
          'client',
          'max events/s',
          '→ Redis p50 / p99',
          '→ summary p50 / p99',
          '→ event row p50 / p99',
          'steps (offered events/s)',
        ],
        [
          row(a),
          row(b),
          [
            'platformatic ÷ kafkajs',
            ((f) => (f ? clientRatio(f) : '—'))(figures.find((f) => f.figure === 'end to end')),
            '',
            '',
            '',
            '',
          ],
        ],
      ),
      '',
    );
  }
}

function renderOverhead(r: Results, push: Push): void {
  push('## Cost of tracing and metrics', '');
  const o = r.overhead;
  if (!o) {
    push('Not measured.', '');
    return;
  }
  const costs = observabilityCosts(o);
  const ok = observabilityMet(costs);
  const tracingVariables = Object.entries(o.tracingEnv)
    .map(([key, value]) => `\`${key}=${value.replace(/\/\/127\.0\.0\.1:\d+/, '//127.0.0.1:<port>')}\``)
    .join(', ');
  push(
    `Target: tracing and metrics on cost at most ${pct(TARGETS.observabilityCost * 100)} of throughput. Ingest and the gateway restarted ` +
      `with tracing off (no OTEL_* variable: the SDK is not even loaded), then on (${tracingVariables}), every span exported to a ` +
      'receiver the harness runs that discards it (`bench/lib/otlp-sink.ts`), through the default batch span processor; the same gRPC ' +
      `stream and REST single searches each way, ${num(o.stepSeconds)} s per step, starting a step below the maxima of the phases above. ` +
      "Tracing's cost is read from the CPU per event of the path's processes at the same offered rate (a CPU-bound path serves in " +
      'inverse proportion to it), the maxima corroborating when both searches found theirs. Metrics cannot be switched off: ingest and ' +
      `the gateway ran once more under V8's CPU profiler (\`--cpu-prof\`, profiles in \`${o.profileDir}\`) for one fixed-load step of each ` +
      `path at ${pct(o.profileShare * 100)} of its maximum without tracing, and the share of their busy samples running in \`prom-client\` ` +
      'or `services/infra/metrics.ts` is what metrics cost them. Both together: 1 − (1 − tracing) × (1 − metrics).',
    '',
  );
  push(
    `**Metrics and tracing on cost ≤ ${pct(TARGETS.observabilityCost * 100)} of throughput: ${ok === undefined ? 'not measured' : ok ? 'met' : 'not met'}** ` +
      `(${costs.map((c) => `${c.load} ${pct((c.combined ?? Number.NaN) * 100, 1)}: tracing ${pct((c.tracing ?? Number.NaN) * 100, 1)}${c.tracingCpu === undefined && c.tracingMax !== undefined ? ' by the maxima' : ''}, metrics ${pct((c.metrics ?? Number.NaN) * 100, 1)}`).join('; ')}).`,
    '',
  );

  renderTracingCost(o, costs, push);
  renderMetricsCost(o, push);
}

/** Tracing off and on: CPU per event at a common step, and the maxima. */
function renderTracingCost(o: OverheadResult, costs: ObservabilityCost[], push: Push): void {
  push('### Tracing', '');
  const rows: string[][] = [];
  for (const c of costs) {
    const key = loadKey(c.load);
    const path = PATH_OF[c.load];
    const off = o.off[key];
    const on = o.on?.[key];
    const pair = commonStep(off, on);
    const perEvent = pair?.map((step) => cpuPerEvent(step, path)) ?? [];
    const stage = (series: Series | undefined, tracing: string, us: number | undefined) => [
      c.load,
      tracing,
      series?.best
        ? `${num(series.best.achievedEvents)}${boundNote(series.steps, series.best) ? ' (lower bound)' : ''}`
        : '—',
      ms(series?.best?.latency.p99),
      micros(us),
      series ? stepList(series.steps) : '—',
    ];
    rows.push(stage(off, 'off', perEvent[0]));
    rows.push(stage(on, 'on', perEvent[1]));
    rows.push([
      c.load,
      'on ÷ off, and the cost',
      c.tracingMax === undefined
        ? '— (a search found no maximum)'
        : `${pct((1 - c.tracingMax) * 100, 1)}: ${pct(c.tracingMax * 100, 1)} less`,
      '',
      c.tracingCpu === undefined
        ? '—'
        : `${pct((ratio(perEvent[1], perEvent[0]) ?? Number.NaN) * 100, 1)} at ${num(pair![0].rate)} ${UNIT_OF[c.load]}/s: ${pct(c.tracingCpu * 100, 1)} of the throughput`,
      '',
    ]);
  }
  push(
    table(
      [
        'load',
        'tracing',
        'max events/s',
        'p99 at the max',
        "CPU per event of the path's processes",
        'steps (offered/s)',
      ],
      rows,
    ),
    '',
  );
  if (o.on)
    push(
      `The path's processes: ingest, and the gateway for REST; their CPU per event is at the highest rate both stages passed, fixed costs included. ` +
        `With tracing on, the receiver got ${num(o.on.exported.requests)} export requests (${num(o.on.exported.bytes / 2 ** 20, 1)} MiB) ` +
        `and the roles logged ${num(o.on.droppedSpans)} spans dropped by their batch span processors${o.on.droppedSpans > 0 ? ' (queue full: a dropped span costs less than an exported one, so the cost of exporting every span is higher)' : ''}.`,
      '',
    );
}

/** Metrics: their share of the profiled path's busy samples. */
function renderMetricsCost(o: OverheadResult, push: Push): void {
  push('### Metrics', '');
  push(
    o.profiles.length === 0
      ? 'Not measured.'
      : table(
          [
            'load',
            'offered/s',
            'acknowledged events/s',
            'process',
            'busy samples',
            'prom-client',
            'metrics.ts',
            'share of busy CPU',
            'with what they call',
          ],
          o.profiles.flatMap((p) =>
            p.processes.map((x) => [
              p.load,
              num(p.step.rate),
              num(p.step.achievedEvents),
              x.role,
              num(x.busy),
              num(x.promClient),
              num(x.metricsModule),
              pct(x.share * 100, 1),
              pct(x.busy > 0 ? (x.inclusive / x.busy) * 100 : Number.NaN, 1),
            ]),
          ),
        ),
    '',
  );
  if (o.profiles.length > 0)
    push(
      '_Share of busy CPU_ counts the busy samples whose running function is metrics code (self time); _with what they call_ counts those with metrics code anywhere on the stack, the functions and built-ins it calls included (an upper bound).',
      '',
    );
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
  renderE2e(r, push);
  renderQueries(r, push);
  renderInProcess(r, push);
  renderStartup(r, push);
  renderKafkaClients(r, push);
  renderOverhead(r, push);
  renderMethod(r, push);
  renderErrors(r, push);
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

/** The edge split and in one process (bench/phases/edge.ts): CPU per event and latency, side by side. */
function renderInProcess(r: Results, push: Push): void {
  push('## The edge in one process: in-process calls against gRPC', '');
  if (!r.inProcess || r.inProcess.length === 0) {
    push('Not measured in this run.', '');
    return;
  }
  push(
    'The same REST load at a fixed rate, first through the gateway and ingest in processes of their own ' +
      '(the gateway calls ingest over gRPC), then through one process running both (`tally gateway ingest`: ' +
      'the gateway calls ingest in-process, as `tally all` does). CPU per event is the edge processes’ ' +
      '(gateway + ingest; the one process in the second case), Kafka excluded.',
    '',
  );
  const rows = r.inProcess.flatMap(({ load, split, combined }) => {
    const a = cpuPerEvent(split, ['gateway', 'ingest']);
    const b = cpuPerEvent(combined, ['gateway']);
    return [
      [
        load,
        'split (gRPC)',
        num(split.achievedEvents),
        micros(a),
        ms(split.latency.p50),
        ms(split.latency.p99),
        '—',
      ],
      [
        load,
        'one process',
        num(combined.achievedEvents),
        micros(b),
        ms(combined.latency.p50),
        ms(combined.latency.p99),
        ratio(b, a) === undefined ? '—' : pct(ratio(b, a)! * 100),
      ],
    ];
  });
  push(table(['load', 'edge', 'events/s', 'edge CPU per event', 'p50', 'p99', 'CPU vs split'], rows), '');
}

/** `tally all` on embedded backends started fresh and restarted (bench/phases/edge.ts). */
function renderStartup(r: Results, push: Push): void {
  push('## Start-up of `tally all` (embedded, as `npm start`)', '');
  if (!r.startup || r.startup.length === 0) {
    push('Not measured in this run.', '');
    return;
  }
  push(
    'Milliseconds from the spawn of `bin/tally all` with an empty data directory (`fresh`), and again on ' +
      'the directory it left (`restart`), to `/healthz` answering, to the first event acknowledged over REST ' +
      '(ingest and the event log up), and to `/readyz` 200 (every backend answering, the embedded ' +
      'PostgreSQL migrated). The median of the runs, and the slowest.',
    '',
  );
  const rows = (['fresh', 'restart'] as const).map((kind) => {
    const runs = r.startup!.filter((x) => x.kind === kind);
    const cell = (pick: (x: (typeof runs)[number]) => number) => {
      const values = runs.map(pick).sort((x, y) => x - y);
      return values.length === 0
        ? '—'
        : `${num(values[Math.floor((values.length - 1) / 2)])} (max ${num(values[values.length - 1])})`;
    };
    return [
      kind,
      String(runs.length),
      cell((x) => x.healthzMs),
      cell((x) => x.firstEventMs),
      cell((x) => x.readyMs),
    ];
  });
  push(table(['data directory', 'runs', '/healthz, ms', 'first event, ms', '/readyz, ms'], rows), '');
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

/** Phases `rest-single` and `bare-http`: the latency table of each step, and 70 % of the maximum. */
function renderRestSingle(r: Results, push: Push): void {
  push('## REST single events: latency against offered load', '');
  if (r.restSingle) {
    push(
      `\`loadtest/rest-single.js\` against the gateway (\`POST /v1/events\`, one event per request, acknowledged once Kafka holds it), ` +
        `${r.setup.stepSeconds} s per step. A step passes when at most 1 % of its iterations were dropped (every VU busy), at most ` +
        `0.1 % failed, and p99 stayed under ${num(r.restSingle.blowUpMs)} ms; the maximum is the best passing step.`,
      '',
      loadTable(r.restSingle, 'requests'),
      '',
    );
  } else push('Not measured.', '');
  if (r.at70)
    push(
      `At 70 % of the maximum (${num(r.at70.rate)} requests/s for ${num(r.at70.planned / Math.max(1, r.at70.rate))} s): ` +
        `${num(r.at70.achievedEvents)} events/s acknowledged, p50 ${ms(r.at70.latency.p50)}, p90 ${ms(r.at70.latency.p90)}, ` +
        `p99 ${ms(r.at70.latency.p99)}, max ${ms(r.at70.latency.max)}, ${num(r.at70.dropped)} dropped, ${pct(r.at70.failedRate * 100, 2)} failed` +
        `${r.at70.writes ? `; ${num(r.at70.writes.meanEvents, 1)} events per Kafka write, ${num(r.at70.writes.perSecond)} writes/s, write p99 ${ms(r.at70.writes.p99Ms)}` : ''}. ` +
        `CPU: ${Object.entries(r.at70.cpu.byGroup)
          .filter(([, x]) => x >= 3)
          .sort((a, b) => b[1] - a[1])
          .map(([g, x]) => `${g} ${pct(x)}`)
          .join(', ')}; machine ${pct(r.at70.cpu.machineBusyPct)} busy.`,
      '',
    );
  push(
    '### Baseline: a bare Node.js HTTP server',
    '',
    '`bench/baselines/bare-http.ts` answers `POST /v1/events` as the gateway does on the wire (parses the JSON, answers `{"id"}`), ' +
      'with nothing behind it, under the same k6 script and the same steps.',
    '',
    r.bareHttp ? loadTable(r.bareHttp, 'requests') : 'Not measured.',
    '',
  );
}

/** Phases `rest-batch` and `grpc-stream`, and the load tests' own scripts at their maxima. */
function renderBatches(r: Results, push: Push): void {
  push('## REST batches and gRPC streams', '');
  const prebuilt =
    "except that each VU builds its events once and each iteration only stamps its own ids into them: generating every event in k6's JavaScript costs the load generator about as much CPU as ingesting it costs Tally or more (see the comparison below), which on one machine would cap the figure";
  for (const [title, series, how, same, script] of [
    [
      'REST batches',
      r.restBatch,
      `\`bench/rest-batch-prebuilt.js\` (\`POST /v1/events:batch\`) against the gateway: the load tests' REST batch script (the same mix, settings, checks and summary) ${prebuilt}`,
      r.restBatchLoadtestScript,
      'loadtest/rest-batch.js',
    ],
    [
      'gRPC client streams',
      r.grpcStream,
      `\`bench/grpc-stream-prebuilt.js\` (\`IngestService/PublishStream\`) straight to ingest: the load tests' stream script ${prebuilt}`,
      r.grpcStreamLoadtestScript,
      'loadtest/grpc-stream.js',
    ],
  ] as const) {
    push(`### ${title}`, '');
    if (!series) {
      push('Not measured.', '');
      continue;
    }
    const unit = series.iteration.startsWith('batch') ? 'batches' : 'streams';
    push(
      `${how}. One ${series.iteration} per iteration, ${r.setup.stepSeconds} s per step; a step blows up past a p99 of ${num(series.blowUpMs)} ms (5 × the load tests' bound of 20 ms + 1 ms per event).`,
      '',
      loadTable(series, unit),
      '',
    );
    if (same)
      push(
        `The load tests' own \`${script}\` at the same ${num(same.rate)} ${unit}/s: ${num(same.achievedEvents)} events/s acknowledged, ` +
          `p99 ${ms(same.latency.p99)}, ${num(same.dropped)} of ${num(same.planned)} dropped (${same.passed ? 'pass' : `fail: ${same.why}`}); ` +
          `k6 used ${pct(same.cpu.byGroup.k6)} of a core, against ${pct(series.best?.cpu.byGroup.k6)} with events built once.`,
        '',
      );
  }
}

/** Phase `raw-producer`: the Kafka client alone at each write size. */
function renderRawProducer(r: Results, push: Push): void {
  push('## Raw producer baseline', '');
  push(
    `\`bench/baselines/raw-producer.ts\`: ${KAFKA_LIBRARY[r.setup.kafkaClient ?? 'kafkajs']} (the roles' client) alone, with ingest's producer settings (idempotent, \`acks=-1\`, one request in ` +
      "flight, the Java client's partitioner) and ingest's batching (one send at a time, of as many records as ingest put in one write), " +
      "on records encoded as ingest encodes the load tests' events, to a topic of the same partitions, in a process of its own.",
    '',
  );
  push(
    r.rawProducer.length === 0
      ? 'Not measured.'
      : table(
          [
            'records per send',
            'mirrors',
            'events/s',
            'send p50',
            'send p99',
            ...cpuHeader(['raw-producer', 'kafka']),
          ],
          r.rawProducer.map((x) => [
            num(x.batch),
            x.mirrors,
            num(x.eventsPerSecond),
            ms(x.sendP50Ms),
            ms(x.sendP99Ms),
            ...cpuCells(x.cpu, ['raw-producer', 'kafka']),
          ]),
        ),
    '',
  );
}

/** Phase `sinks`: each consumer catching up alone, PostgreSQL COPY and redis-benchmark. */
function renderSinks(r: Results, push: Push): void {
  push('## Sinks', '');
  push(
    'Each consumer role alone (the others stopped) on the backlog the ingest phases left in the events topic, its rate counted ' +
      "from its first commit; then the servers' own baselines on the same kind of work.",
    '',
  );
  push(
    r.catchUp.length === 0
      ? 'Not measured.'
      : table(
          [
            'role',
            'backlog (records)',
            'events handled',
            'seconds',
            'events/s',
            'its CPU per event',
            ...cpuHeader(['persister', 'counter', 'aggregator', 'kafka', 'redis', 'postgres']),
          ],
          r.catchUp.map((c) => [
            c.role,
            num(c.backlog),
            num(c.events),
            num(c.seconds, 1),
            num(c.eventsPerSecond),
            c.eventsPerSecond > 0
              ? micros(((c.cpu.byGroup[c.role] ?? 0) / 100 / c.eventsPerSecond) * 1e6)
              : '—',
            ...cpuCells(c.cpu, ['persister', 'counter', 'aggregator', 'kafka', 'redis', 'postgres']),
          ]),
        ),
    '',
  );
  push('### PostgreSQL COPY', '');
  push(
    r.pgCopy
      ? `\`bench/baselines/pg-copy.ts\`: ${num(r.pgCopy.rows)} rows the persister wrote to \`event\` (${num(r.pgCopy.bytes / 2 ** 20, 1)} MiB as COPY text), copied back with psql's \`\\copy\` into a table of the same definition (\`LIKE event INCLUDING ALL\`: primary key and index): ${num(r.pgCopy.rowsPerSecond)} rows/s (${num(r.pgCopy.seconds, 2)} s).`
      : 'Not measured.',
    '',
  );
  push('### redis-benchmark', '');
  if (r.redisBench)
    push(
      `\`bench/baselines/redis-bench.ts\`: ${r.redisBench.version}, ${num(r.redisBench.requests)} requests per command, ` +
        `${r.redisBench.clients} clients, pipeline ${r.redisBench.pipeline} (the server's ceiling; the last row: its latency unloaded), on the counter store's own apply script (EVALSHA) and the other commands of the counter sink and GetCounters.`,
      '',
      table(
        ['command', 'what it stands for', 'requests/s', 'events/s', 'p50', 'p99'],
        r.redisBench.rows.map((x) => [
          x.name,
          x.what,
          num(x.requestsPerSecond),
          x.eventsPerRequest ? num(x.eventsPerSecond) : '—',
          ms(x.p50Ms),
          ms(x.p99Ms),
        ]),
      ),
      '',
    );
  else push('Not measured.', '');
}

/** Phase `e2e`: each step's lag, drain and visibility, and the consumers' own histogram. */
function renderE2e(r: Results, push: Push): void {
  push('## End to end', '');
  if (r.e2e) {
    const groups = E2E_GROUPS;
    push(
      `Every role running; three simulators (\`tally simulate\`: clickstream 50 %, social 35 %, transactions 15 %, batches of 100 ` +
        `over gRPC to ingest) offer each rate for ${r.setup.e2eStepSeconds} s. The lag of each consumer group (end offsets less ` +
        `committed offsets, read through the event log port every second) must stay under max(2 s of events, 2,000) in the second ` +
        `half of the step, and every group must have committed everything within a drain wait after it. Meanwhile ` +
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

/** Phase `queries`: GetCounters and GetReport at their fixed rates. */
function renderQueries(r: Results, push: Push): void {
  push('## Queries', '');
  const gc = r.getCounters;
  push(
    gc
      ? `\`bench/grpc-query.js\` (k6) calling \`QueryService/GetCounters\` on the query role at ${num(gc.rate)} calls/s for ${num(gc.seconds)} s, targets of the load tests' mix by popularity: p50 ${ms(gc.latency.p50)}, p90 ${ms(gc.latency.p90)}, p99 ${ms(gc.latency.p99)}, max ${ms(gc.latency.max)}; ${num(gc.dropped)} dropped, ${pct(gc.failedRate * 100, 2)} failed. ${cpuEvidence(gc.cpu, 'Meanwhile')}`
      : 'GetCounters: not measured.',
    '',
  );
  const gr = r.getReport;
  push(
    gr
      ? `\`QueryService/GetReport\` at ${num(gr.rate)} calls/s for ${num(gr.seconds)} s, for a random target of ${num(gr.seed.targetsPerFamily * 3)} and a random day of ${gr.seed.firstDate} … ${gr.seed.lastDate}, on \`event_summary\` seeded with ${num(gr.seed.rows)} rows (${num(gr.seed.tableBytes / 2 ** 20)} MiB with its key) summarising ${num(gr.seed.events)} events (seeded in ${num(gr.seed.seconds, 1)} s): p50 ${ms(gr.latency.p50)}, p90 ${ms(gr.latency.p90)}, p99 ${ms(gr.latency.p99)}, max ${ms(gr.latency.max)}; ${num(gr.dropped)} dropped, ${pct(gr.failedRate * 100, 2)} failed. ${cpuEvidence(gr.cpu, 'Meanwhile')}`
      : 'GetReport: not measured.',
    '',
  );
}

/** How every figure was measured. */
function renderMethod(r: Results, push: Push): void {
  push('## Method', '');
  push(
    `- **Servers.** The local Kafka, Redis and PostgreSQL of \`scripts/services-up.sh\` (${r.setup.servers}), started by the harness when they are not running, in a namespace of the run's own (\`bench-${r.setup.namespace}\`: topics, consumer groups, Redis key prefix, schema \`bench_${r.setup.namespace}\`), deleted at the end. These are the servers the project develops and tests against, already warm and configured as documented; private servers would add a Kafka start-up to every run and differ in configuration (the test helpers run PostgreSQL without fsync and Kafka on a 384 MiB heap).`,
    `- **Processes.** Each role is a process of its own (\`bin/tally gateway\`, \`ingest\`, \`query\`, \`persister\`, \`counter\`, \`aggregator\`), the gateway reaching ingest and query over gRPC, on Kafka through ${KAFKA_LIBRARY[r.setup.kafkaClient ?? 'kafkajs']} (\`TALLY_KAFKA_CLIENT\`) except in the comparison of the clients, started with Node's compile cache (\`NODE_COMPILE_CACHE\`: it only spares compiling the sources at start-up); the events topic has ${r.setup.partitions} partitions; ingest batches Kafka writes with its defaults (linger ${r.setup.lingerMs} ms, at most ${num(r.setup.maxProduceBatchEvents)} events); the dedup window is ${num(r.setup.dedupWindowMs / 60_000)} minutes so that the run's Redis markers expire soon (the work per event is the same). The consumer roles start after the ingest phases, so the ingest figures are not shared with consumers catching up.`,
    "- **Load.** k6 with an open model (`constant-arrival-rate`): RATE per step, VUs allocated up front for 100 ms per iteration and allowed up to the rate × the blow-up latency, so that a saturated service shows as dropped iterations. Single events use the load tests' own `loadtest/rest-single.js`, against the gateway and the bare server alike; batches and streams use `bench/rest-batch-prebuilt.js` and `bench/grpc-stream-prebuilt.js`, the load tests' scripts with each VU's events built once (the originals run once at the maximum, for comparison); queries use `bench/grpc-query.js`. The end-to-end phase uses the simulator (`tally simulate`, gRPC batches). Events are the load tests' realistic mix (Zipf-popular shop pages, posts and merchants, 100,000 users).",
    "- **Maxima.** Steps go up by a factor while they pass and down while the first ones fail; one more step between the last pass and the first failure refines the maximum. An ingest step passes with at most 1 % of its iterations dropped, at most 0.1 % failed and p99 under its blow-up bound; an end-to-end step with every group's lag bounded, 95 % of the offered events acknowledged and everything committed soon after.",
    "- **CPU.** Every process of the run (the roles, the servers — PostgreSQL with its backends — k6, the simulators, the baselines, the harness) is sampled from `/proc/<pid>/stat` every second and around each step; a step's CPU is its use inside the load window, in % of one core. _Other work_ is the machine's busy time (`/proc/stat`) less the run's processes; the shared servers' CPU includes what other clients made them do meanwhile. Where a process's main thread was runnable but waited for a core (the run queue, from `/proc/<pid>/task/<pid>/schedstat`), the evidence says how much of the step it waited, summed over a group's processes (three simulators can wait 120 %). _CPU per event_ divides a process's CPU by the step's rate, fixed costs (timers, polling, the gateway's live feed) included, so it overstates the cost at low rates; _a full core_ is the rate that process alone would reach with a core to itself.",
    "- **Visibility.** Probes measure from the client's acknowledgement to readability, with the poll interval as resolution; the consumers' histogram (when exported) measures from the log write to the batch being held.",
    "- **Kafka clients.** The last phases restart ingest and the gateway (side by side, fresh processes) for each configuration they compare, and stop the consumers: the two Kafka clients one after the other with the same steps, then tracing off and on. Their ingest searches start a step below the maxima the phases above found (else below the last full run's) and go in finer steps; a ratio closer to 1 than " +
      `${pct(EVEN_WITHIN * 100)} counts as even.`,
    "- **Tracing and metrics.** Tracing is off unless OTEL_* variables ask for it (`services/infra/tracing.ts`): the stage with it on sets them for an OTLP/HTTP exporter and the `always_on` sampler, to a receiver the harness runs that discards everything (`bench/lib/otlp-sink.ts`). Metrics cannot be switched off: their cost is read from V8 CPU profiles (`--cpu-prof`, sampling every millisecond) of one fixed-load step, as the share of the busy samples (those not idle) whose running function is in `prom-client` or `services/infra/metrics.ts`, within the step's load window. Tracing's cost is the share of the path's CPU per event it adds at the same offered rate (what a CPU-bound path loses in throughput), the maxima of the two searches corroborating; the cost of both together on a load is 1 − (1 − tracing's) × (1 − metrics').",
    "- **Baselines.** Raw producer: the Kafka client's ceiling with ingest's settings and write sizes. Bare HTTP: the ceiling of a Node.js HTTP server under the same k6 script. redis-benchmark: Redis's ceiling on the sink's commands with many pipelined clients. COPY: PostgreSQL's bulk path for the persister's rows, with the same indexes.",
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
