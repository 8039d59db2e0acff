/**
 * Hour buckets and day reports: pure arithmetic over UTC hours.
 */
import type { FieldViolation } from './event-rules.ts';

export const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Start of the UTC hour holding `epochMs`. */
export function hourStart(epochMs: number): number {
  return Math.floor(epochMs / HOUR_MS) * HOUR_MS;
}

/** The UTC day `YYYY-MM-DD` as [startMs, endMs), or the violation naming `field`. */
export function parseReportDate(
  date: string,
  field = 'date',
): { startMs: number; endMs: number } | FieldViolation {
  const match = DATE_PATTERN.exec(date);
  if (!match) return { field, description: date === '' ? 'is required' : 'must be a date as YYYY-MM-DD' };
  const [, y, m, d] = match;
  const startMs = Date.UTC(Number(y), Number(m) - 1, Number(d));
  // Date.UTC rolls 2024-02-30 over into March: a date that does not round-trip does not exist.
  if (new Date(startMs).toISOString().slice(0, 10) !== date)
    return { field, description: `is not a calendar date: ${date}` };
  return { startMs, endMs: startMs + DAY_MS };
}

/** One summary row: the events of one (type) in one hour. */
export interface HourTypeTotal {
  hourStartMs: number;
  type: string;
  count: number;
  sum: number;
}

export interface TypeTotal {
  type: string;
  count: number;
  sum: number;
}

export interface DayReport {
  /** Always 24 entries, hour 0..23 ascending; each lists every type of the day, ordered by type. */
  hours: { hour: number; counts: TypeTotal[] }[];
}

/** Zero-filled 24-hour report of the day starting at `dayStartMs` from its summary rows. */
export function buildDayReport(dayStartMs: number, rows: readonly HourTypeTotal[]): DayReport {
  // Every type of the rows, ordered; then one cell per (hour, type), rows of an hour added up.
  const column = new Map<string, number>();
  for (const row of rows) column.set(row.type, 0);
  const types = [...column.keys()].sort();
  for (let i = 0; i < types.length; i++) column.set(types[i]!, i);
  const width = types.length;
  const counts = new Float64Array(24 * width);
  const sums = new Float64Array(24 * width);
  const seen = new Uint8Array(24 * width);
  for (const row of rows) {
    const hour = Math.floor((row.hourStartMs - dayStartMs) / HOUR_MS);
    if (hour < 0 || hour > 23) continue;
    const cell = hour * width + column.get(row.type)!;
    // The first row of a cell as it is, the next ones added to it.
    counts[cell] = seen[cell] ? counts[cell]! + row.count : row.count;
    sums[cell] = seen[cell] ? sums[cell]! + row.sum : row.sum;
    seen[cell] = 1;
  }
  const hours: DayReport['hours'] = new Array(24);
  for (let hour = 0; hour < 24; hour++) {
    const totals: TypeTotal[] = new Array(width);
    for (let i = 0; i < width; i++) {
      const cell = hour * width + i;
      totals[i] = { type: types[i]!, count: counts[cell]!, sum: sums[cell]! };
    }
    hours[hour] = { hour, counts: totals };
  }
  return { hours };
}

/** An event as the hourly summary sees it. */
export interface SummarizableEvent {
  target: string;
  type: string;
  /** Event time: occurred_at, else received_at. */
  eventTimeMs: number;
  value: number | undefined;
}

export interface SummaryDelta {
  target: string;
  hourStartMs: number;
  type: string;
  count: number;
  sum: number;
}

/** Folds events into one delta per (target, hour, type), in first-seen order. */
export function summarize(events: Iterable<SummarizableEvent>): SummaryDelta[] {
  const deltas = new Map<string, SummaryDelta>();
  for (const e of events) {
    const hourStartMs = hourStart(e.eventTimeMs);
    const key = `${e.target}\u0000${hourStartMs}\u0000${e.type}`;
    const delta = deltas.get(key);
    if (delta) {
      delta.count += 1;
      delta.sum += e.value ?? 0;
    } else {
      deltas.set(key, { target: e.target, hourStartMs, type: e.type, count: 1, sum: e.value ?? 0 });
    }
  }
  return [...deltas.values()];
}
