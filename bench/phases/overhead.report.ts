/**
 * Phase `overhead` in the report: what tracing and metrics cost each load against the target,
 * its section and summary row.
 */
import { boundNote, maximum } from '../lib/evidence.ts';
import { cpuPerEvent, micros, ms, num, type Push, pct, ratio, stepList, table } from '../lib/format.ts';
import type { LoadStep, OverheadResult, Results, Series } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

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

/** What tracing and metrics cost. */
export function overheadRows(r: Results, rows: SummaryRow[]): void {
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

/** Phase `overhead`: how tracing and metrics were measured, their cost against the target, then each. */
export function renderOverhead(r: Results, push: Push): void {
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
