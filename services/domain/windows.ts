/**
 * Leaderboard windows as spans of UTC hours: the current hour, a day (UTC or any IANA time zone)
 * and a month. Windows are built from hourly buckets, so a window always covers whole UTC hours:
 * a local day is the UTC hours that begin within it. For a zone whose offset is a whole number of
 * hours this is exactly the local day (23, 24 or 25 hours); for a zone whose offset has a
 * fraction of an hour (+05:30, +05:45, −03:30) it is the local day shifted later by that
 * fraction (from 00:30 or 00:15 local to the same time the next day).
 * Pure: the caller passes the clock; time zones come from the ECMAScript Intl database.
 */
import type { FieldViolation } from './event-rules.ts';
import { HOUR_MS, hourStart } from './report.ts';

const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH_PATTERN = /^(\d{4})-(\d{2})$/;
const MAX_ZONE_CHARS = 64;

/** A span of whole UTC hours, [startMs, endMs), both on the hour. */
export interface HourSpan {
  startMs: number;
  endMs: number;
}

/** The UTC hour starts of `span`, ascending. */
export function hoursOf(span: HourSpan): number[] {
  const hours: number[] = [];
  for (let h = span.startMs; h < span.endMs; h += HOUR_MS) hours.push(h);
  return hours;
}

/** First UTC hour start at or after `epochMs`. */
function hourCeil(epochMs: number): number {
  const floor = hourStart(epochMs);
  return floor === epochMs ? floor : floor + HOUR_MS;
}

/** Formatters per zone: building one costs far more than formatting with it. */
const formatters = new Map<string, Intl.DateTimeFormat>();
const MAX_FORMATTERS = 512;

function formatterOf(zone: string): Intl.DateTimeFormat {
  let format = formatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    if (formatters.size >= MAX_FORMATTERS) formatters.delete(formatters.keys().next().value as string);
    formatters.set(zone, format);
  }
  return format;
}

/** The time zone `zone` (empty: UTC) as the Intl database names it, or the violation naming `field`. */
export function parseTimeZone(zone: string, field = 'time_zone'): { zone: string } | FieldViolation {
  if (zone === '') return { zone: 'UTC' };
  if (zone.length > MAX_ZONE_CHARS)
    return { field, description: `must be at most ${MAX_ZONE_CHARS} characters` };
  try {
    return { zone: formatterOf(zone).resolvedOptions().timeZone };
  } catch {
    return { field, description: `is not a known time zone: ${zone}` };
  }
}

/** The local wall-clock time at `epochMs` in `zone`, as if it were UTC (epoch ms). */
function wallClockMs(epochMs: number, zone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatterOf(zone).formatToParts(epochMs))
    if (p.type !== 'literal' && p.type !== 'era') parts[p.type] = Number(p.value);
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
}

/** The offset of `zone` from UTC at `epochMs`, in ms (east positive), to the second. */
function offsetMs(epochMs: number, zone: string): number {
  const whole = Math.floor(epochMs / 1000) * 1000;
  return wallClockMs(whole, zone) - whole;
}

/**
 * The first instant of the local date `y-m-d` (UTC fields) in `zone`: local midnight, or the
 * first instant after it when a transition skips midnight.
 */
function localDayStartMs(y: number, m: number, d: number, zone: string): number {
  const midnight = Date.UTC(y, m, d);
  // Two rounds reach the offset in force at local midnight, either side of a transition.
  let t = midnight - offsetMs(midnight, zone);
  t = midnight - offsetMs(t, zone);
  // A transition that skips local midnight (the clock goes 23:59:59 → 01:00): t lands before the
  // date begins, which is the first second whose wall clock is on the date (found by bisection,
  // transitions move the clock by at most a few hours).
  if (wallClockMs(t, zone) < midnight) {
    let low = t;
    let high = t + 4 * HOUR_MS;
    while (high - low > 1000) {
      const mid = low + Math.floor((high - low) / 2000) * 1000;
      if (wallClockMs(mid, zone) < midnight) low = mid;
      else high = mid;
    }
    t = high;
  }
  return t;
}

/** The UTC hours that begin within the local day [startMs, endMs). */
function spanOfInstants(startMs: number, endMs: number): HourSpan {
  return { startMs: hourCeil(startMs), endMs: hourCeil(endMs) };
}

/** The hours of the local day in `zone` that holds `epochMs`. */
export function dayHoldingMs(epochMs: number, zone: string): HourSpan {
  const wall = new Date(wallClockMs(epochMs, zone));
  const y = wall.getUTCFullYear();
  const m = wall.getUTCMonth();
  const d = wall.getUTCDate();
  const start = localDayStartMs(y, m, d, zone);
  const end = localDayStartMs(y, m, d + 1, zone);
  // With a fractional offset, the shifted day holding `epochMs` may be the previous one.
  const span = spanOfInstants(start, end);
  if (epochMs < span.startMs) return spanOfInstants(localDayStartMs(y, m, d - 1, zone), start);
  return span;
}

/** The current UTC hour. */
export function hourHoldingMs(epochMs: number): HourSpan {
  const startMs = hourStart(epochMs);
  return { startMs, endMs: startMs + HOUR_MS };
}

/**
 * The hours of the local date `date` (YYYY-MM-DD) in `zone`, which must have begun by `nowMs`,
 * or the violation naming `field`.
 */
export function parsePastDate(
  date: string,
  zone: string,
  nowMs: number,
  field = 'date',
): HourSpan | FieldViolation {
  const match = DATE_PATTERN.exec(date);
  if (!match) return { field, description: date === '' ? 'is required' : 'must be a date as YYYY-MM-DD' };
  const [y, m, d] = [Number(match[1]), Number(match[2]) - 1, Number(match[3])];
  if (new Date(Date.UTC(y, m, d)).toISOString().slice(0, 10) !== date)
    return { field, description: `is not a calendar date: ${date}` };
  const span = spanOfInstants(localDayStartMs(y, m, d, zone), localDayStartMs(y, m, d + 1, zone));
  if (span.startMs > nowMs) return { field, description: `is in the future: ${date}` };
  return span;
}

/**
 * The hours of the local month `month` (YYYY-MM) in `zone`, which must have begun by `nowMs`,
 * or the violation naming `field`.
 */
export function parsePastMonth(
  month: string,
  zone: string,
  nowMs: number,
  field = 'month',
): HourSpan | FieldViolation {
  const match = MONTH_PATTERN.exec(month);
  if (!match) return { field, description: month === '' ? 'is required' : 'must be a month as YYYY-MM' };
  const [y, m] = [Number(match[1]), Number(match[2]) - 1];
  if (m < 0 || m > 11 || y < 1970) return { field, description: `is not a calendar month: ${month}` };
  const span = spanOfInstants(localDayStartMs(y, m, 1, zone), localDayStartMs(y, m + 1, 1, zone));
  if (span.startMs > nowMs) return { field, description: `is in the future: ${month}` };
  return span;
}
