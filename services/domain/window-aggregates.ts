/**
 * Sliding-window aggregates (docs/aggregates.md): count, sum, min, max and average of one event
 * type of a user or a target over any window of 1 minute to 7 days ending at a given moment, to
 * the millisecond. A window [start, end) is answered from three kinds of pieces: the raw events
 * of its partial first and last minutes, the minute tiles up to the hours' boundaries, and the
 * hour tiles between. Pure: the caller passes the clock.
 */
import type { Principal } from './api-keys.ts';
import type { FieldViolation } from './event-rules.ts';

export const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The longest window, and how far back any window reaches: events older are in none. */
export const AGGREGATE_HORIZON_MS = 7 * DAY_MS;
/** The shortest window. */
export const MIN_WINDOW_MS = MINUTE_MS;
/** Windows one call may ask for. */
export const MAX_WINDOWS_PER_CALL = 10;
/** How far ahead of now a window may end (clocks differ; events may be that far ahead too). */
export const MAX_AT_FUTURE_MS = 5 * MINUTE_MS;

/** What a set of events adds up to. `min`/`max` are over the events that carry a value. */
export interface Aggregate {
  /** Events. */
  count: number;
  /** Events that carry a value. */
  valueCount: number;
  /** Sum of their values (0 when none carries one). */
  sum: number;
  /** Undefined when no event carries a value. */
  min: number | undefined;
  max: number | undefined;
}

export function emptyAggregate(): Aggregate {
  return { count: 0, valueCount: 0, sum: 0, min: undefined, max: undefined };
}

/** Adds one event (its value, or undefined when it has none) to `into`. */
export function addEvent(into: Aggregate, value: number | undefined): Aggregate {
  into.count += 1;
  if (value === undefined) return into;
  into.valueCount += 1;
  into.sum += value;
  if (into.min === undefined || value < into.min) into.min = value;
  if (into.max === undefined || value > into.max) into.max = value;
  return into;
}

/** Adds `part` to `into`. */
export function addAggregate(into: Aggregate, part: Aggregate): Aggregate {
  into.count += part.count;
  into.valueCount += part.valueCount;
  into.sum += part.sum;
  if (part.min !== undefined && (into.min === undefined || part.min < into.min)) into.min = part.min;
  if (part.max !== undefined && (into.max === undefined || part.max > into.max)) into.max = part.max;
  return into;
}

/** The average of the values, undefined when no event carries one. */
export function averageOf(aggregate: Aggregate): number | undefined {
  return aggregate.valueCount === 0 ? undefined : aggregate.sum / aggregate.valueCount;
}

/** The minute (since the epoch) holding `epochMs`. */
export const minuteOf = (epochMs: number): number => Math.floor(epochMs / MINUTE_MS);
/** The hour (since the epoch) holding `epochMs`. */
export const hourOf = (epochMs: number): number => Math.floor(epochMs / HOUR_MS);

/**
 * The pieces of the window [startMs, endMs): raw-event ranges [from, to) (at most two, each
 * within one minute), whole minutes and whole hours (indexes since the epoch), which together
 * cover the window exactly once.
 */
export interface WindowPieces {
  raw: { fromMs: number; toMs: number }[];
  minutes: number[];
  hours: number[];
}

export function windowPieces(startMs: number, endMs: number): WindowPieces {
  const pieces: WindowPieces = { raw: [], minutes: [], hours: [] };
  if (endMs <= startMs) return pieces;
  const firstMinuteMs = Math.ceil(startMs / MINUTE_MS) * MINUTE_MS;
  const lastMinuteMs = Math.floor(endMs / MINUTE_MS) * MINUTE_MS;
  if (firstMinuteMs >= lastMinuteMs) {
    // No whole minute inside: the window is raw events (within one minute, or across one boundary).
    pieces.raw.push({ fromMs: startMs, toMs: endMs });
    return pieces;
  }
  if (startMs < firstMinuteMs) pieces.raw.push({ fromMs: startMs, toMs: firstMinuteMs });
  if (lastMinuteMs < endMs) pieces.raw.push({ fromMs: lastMinuteMs, toMs: endMs });
  const firstHourMs = Math.ceil(firstMinuteMs / HOUR_MS) * HOUR_MS;
  const lastHourMs = Math.floor(lastMinuteMs / HOUR_MS) * HOUR_MS;
  const minutes = (from: number, to: number) => {
    for (let m = from; m < to; m += MINUTE_MS) pieces.minutes.push(m / MINUTE_MS);
  };
  if (firstHourMs >= lastHourMs) {
    minutes(firstMinuteMs, lastMinuteMs);
    return pieces;
  }
  minutes(firstMinuteMs, firstHourMs);
  for (let h = firstHourMs; h < lastHourMs; h += HOUR_MS) pieces.hours.push(h / HOUR_MS);
  minutes(lastHourMs, lastMinuteMs);
  return pieces;
}

const WINDOW_PATTERN = /^([1-9][0-9]{0,5})([mhd])$/;
const UNIT_MS = { m: MINUTE_MS, h: HOUR_MS, d: DAY_MS } as const;

/** A window as asked for: its text (`6h`) and its length. */
export interface WindowLength {
  name: string;
  ms: number;
}

/** `1m` .. `7d` (units m, h, d) as a length, or the violation naming `field`. */
export function parseWindowLength(text: string, field: string): WindowLength | FieldViolation {
  const match = WINDOW_PATTERN.exec(text);
  if (!match)
    return {
      field,
      description: `must be a number and a unit m, h or d (1m to 7d): ${JSON.stringify(text)}`,
    };
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms < MIN_WINDOW_MS || ms > AGGREGATE_HORIZON_MS)
    return { field, description: `must be from 1m to 7d: ${text}` };
  return { name: text, ms };
}

/** A validated request: the windows in the order asked and the moment they end. */
export interface WindowsQuery {
  windows: WindowLength[];
  atMs: number;
}

/**
 * The windows of a request (each entry may hold several, comma-separated: `1h,6h`), ending at
 * `atMs` (undefined: now), or the violation naming the field (`windows[1]`, `at`). A window may
 * end at most MAX_AT_FUTURE_MS after now and must start within the horizon (7 days before now),
 * give or take the same skew.
 */
export function parseWindowsQuery(
  entries: readonly string[],
  atMs: number | undefined,
  nowMs: number,
): WindowsQuery | FieldViolation {
  const texts = entries.flatMap((e) => e.split(',')).map((t) => t.trim());
  if (texts.length === 0) return { field: 'windows', description: 'is required: one or more of 1m to 7d' };
  if (texts.length > MAX_WINDOWS_PER_CALL)
    return { field: 'windows', description: `must be at most ${MAX_WINDOWS_PER_CALL} windows` };
  const windows: WindowLength[] = [];
  for (const [i, text] of texts.entries()) {
    const window = parseWindowLength(text, `windows[${i}]`);
    if ('field' in window) return window;
    windows.push(window);
  }
  if (atMs === undefined) return { windows, atMs: nowMs };
  if (!Number.isFinite(atMs)) return { field: 'at', description: 'must be a valid timestamp' };
  if (atMs > nowMs + MAX_AT_FUTURE_MS)
    return { field: 'at', description: `must be at most ${MAX_AT_FUTURE_MS / 1000} s in the future` };
  const longest = Math.max(...windows.map((w) => w.ms));
  // The same skew back: an `at` taken a moment ago with a 7d window is still answered (events are
  // kept an hour past the horizon: aggregate-store.ts).
  if (atMs - longest < nowMs - AGGREGATE_HORIZON_MS - MAX_AT_FUTURE_MS)
    return {
      field: 'at',
      description: `is too far back: every window must start within the last 7 days (the longest asked, ${
        windows.find((w) => w.ms === longest)?.name
      }, would start ${new Date(atMs - longest).toISOString()})`,
    };
  return { windows, atMs };
}

/** The longest window a ranking covers: a day. */
export const MAX_RANKING_WINDOW_MS = DAY_MS;

/** A ranking as asked for: what is ranked, over which window, by what, how many. */
export interface RankingQuery {
  of: 'user' | 'target';
  window: WindowLength;
  atMs: number;
  by: 'sum' | 'count';
  limit: number;
}

/**
 * A ranking request's fields checked (`TopByWindow`): `of` user (default) or target, one window
 * of 1m to 24h starting within the last day and an hour, `by` sum (default) or count, `limit`
 * 1 to 100 (default 10).
 */
export function parseRankingQuery(
  input: { of: string; window: string; by: string; limit: number },
  atMs: number | undefined,
  nowMs: number,
): RankingQuery | FieldViolation {
  const of = input.of === '' ? 'user' : input.of;
  if (of !== 'user' && of !== 'target')
    return { field: 'of', description: `must be user or target: ${JSON.stringify(input.of)}` };
  const by = input.by === '' ? 'sum' : input.by;
  if (by !== 'sum' && by !== 'count')
    return { field: 'by', description: `must be sum or count: ${JSON.stringify(input.by)}` };
  const limit = input.limit === 0 ? 10 : input.limit;
  if (limit > 100) return { field: 'limit', description: 'must be 1 to 100' };
  if (input.window === '') return { field: 'window', description: 'is required: 1m to 24h' };
  const window = parseWindowLength(input.window.trim(), 'window');
  if ('field' in window) return window;
  if (window.ms > MAX_RANKING_WINDOW_MS)
    return { field: 'window', description: `must be at most 24h: ${window.name}` };
  if (atMs === undefined) return { of, window, atMs: nowMs, by, limit };
  if (!Number.isFinite(atMs)) return { field: 'at', description: 'must be a valid timestamp' };
  if (atMs > nowMs + MAX_AT_FUTURE_MS)
    return { field: 'at', description: `must be at most ${MAX_AT_FUTURE_MS / 1000} s in the future` };
  if (atMs - window.ms < nowMs - MAX_RANKING_WINDOW_MS - HOUR_MS)
    return {
      field: 'at',
      description: `is too far back: a ranked window must start within the last 25 hours (this one would start ${new Date(atMs - window.ms).toISOString()})`,
    };
  return { of, window, atMs, by, limit };
}

/**
 * Why `principal` may not rank users, or undefined: an end user — a JWT naming a user, without
 * scope admin — reads its own user's aggregates only, so not a ranking of everyone's.
 */
export function userRankingDenial(principal: Principal | undefined): string | undefined {
  if (principal?.kind !== 'jwt' || principal.userId === undefined || principal.scopes.has('admin'))
    return undefined;
  return `a token for user ${JSON.stringify(principal.userId)} may not rank other users`;
}

/**
 * Why `principal` may not read the aggregates of user `userId`, or undefined. An end user — a JWT
 * naming a user, without scope admin — reads its own user's only (as it reads its own
 * notifications); a target's aggregates are read as its counters are, by any caller with scope read.
 */
export function userAggregatesDenial(principal: Principal | undefined, userId: string): string | undefined {
  if (principal?.kind !== 'jwt' || principal.userId === undefined || principal.scopes.has('admin'))
    return undefined;
  if (userId === principal.userId) return undefined;
  return `a token for user ${JSON.stringify(principal.userId)} may read only that user's aggregates`;
}
