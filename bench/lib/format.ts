/**
 * The formatting the report's sections share: figures as the report writes them, Markdown tables,
 * the CPU columns of a step, and the table of a stepped series.
 */
import type { CpuUse } from './proc.ts';
import type { E2eStep, LoadStep, Quantiles, Series } from './results.ts';

/** Appends lines to the report. */
export type Push = (...lines: string[]) => void;

export const num = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : // + 0: a value that rounds to zero reads 0, not -0.
      (Number(n.toFixed(digits)) + 0).toLocaleString('en-US', {
        maximumFractionDigits: digits,
        minimumFractionDigits: digits,
      });

export const ms = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : n >= 100
      ? `${num(n)} ms`
      : n >= 10
        ? `${num(n, 1)} ms`
        : `${num(n, 2)} ms`;

export const pct = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n) ? '—' : `${num(n, digits)} %`;

export const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? a / b : undefined;

export const met = (ok: boolean | undefined): string =>
  ok === undefined ? 'not measured' : ok ? '**met**' : '**not met**';

/**
 * A size in decimal units, as the targets are stated (`1 GB` = 10⁹ bytes): `512 B`, `3.4 kB`,
 * `12.5 MB`, `268 GB`.
 */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (i < units.length - 1 && Math.abs(n) >= 1000 ** (i + 1)) i++;
  const v = n / 1000 ** i;
  return `${num(v, i === 0 || Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : 1)} ${units[i]}`;
}

/** A large count to two significant digits, in words past a million (`1.9 million`, `48,000`). */
export function approx(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(Math.max(1, Math.abs(n)))) - 1);
  const r = Math.round(n / magnitude) * magnitude;
  return r >= 1e9 ? `${num(r / 1e9, 1)} billion` : r >= 1e6 ? `${num(r / 1e6, 1)} million` : num(r);
}

/** A share as a percentage with as many decimals as a small one needs to show (`0.0012 %`). */
export function smallPct(share: number | undefined): string {
  if (share === undefined || !Number.isFinite(share)) return '—';
  const p = share * 100;
  const digits = p >= 1 || p <= 0 ? 0 : Math.min(8, Math.ceil(-Math.log10(p)) + 1);
  return pct(p, digits);
}

/** `12 µs`, `1.4 ms`. */
export function micros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '—';
  return us >= 1000 ? `${num(us / 1000, 1)} ms` : `${num(us)} µs`;
}

/** A Markdown table with padded columns (as the project's formatter lays tables out). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${widths.map((w, i) => (cells[i] ?? '').padEnd(w)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function cpuCells(cpu: CpuUse | undefined, groups: string[]): string[] {
  return [
    ...groups.map((g) => (cpu ? pct(cpu.byGroup[g] ?? 0) : '—')),
    cpu ? pct(cpu.otherPct) : '—',
    cpu ? pct(cpu.machineBusyPct) : '—',
  ];
}

export function cpuHeader(groups: string[]): string[] {
  return [...groups.map((g) => `CPU ${g}`), 'CPU other work', 'machine busy'];
}

/** CPU per event of `groups` together at a step, µs. */
export function cpuPerEvent(
  step: Pick<LoadStep, 'achievedEvents' | 'cpu'> | undefined,
  groups: readonly string[],
): number | undefined {
  if (!step || !(step.achievedEvents > 0) || step.cpu.seconds === 0) return undefined;
  const total = groups.reduce((t, g) => t + (step.cpu.byGroup[g] ?? 0), 0);
  return (total / 100 / step.achievedEvents) * 1e6;
}

export function quant(q: Quantiles | undefined): string {
  return q && q.n > 0 ? `${ms(q.p50)} / ${ms(q.p99)}` : '—';
}

/** `26 pass, 30 pass, 34 fail`: a search's steps, compactly. */
export function stepList(steps: { rate: number; passed: boolean }[]): string {
  return steps.map((s) => `${num(s.rate)} ${s.passed ? 'pass' : 'fail'}`).join(', ');
}

export function loadTable(series: Series, unit: string): string {
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

export function verdict(s: LoadStep | E2eStep, best: LoadStep | E2eStep | undefined): string {
  if (s === best) return '**max**';
  return s.passed ? 'pass' : `fail: ${s.why}`;
}
