/**
 * The aggregate store port: per series — a user's or a target's events of one type — what the
 * sliding-window aggregates read (docs/aggregates.md): the raw events (time, value) of the last
 * 7 days, and tiles (count, events with a value, sum, min, max) per minute and per hour of event
 * time. Each event applies once, by its partition and offset in the events topic, as the counter
 * store's do: an offset at or below the series' mark for its partition changes nothing. Events
 * whose time is older than the retention (7 days and an hour) apply to nothing but move the mark.
 * Adapters: redis-aggregate-store.ts (standalone or Cluster), embedded-aggregate-store.ts; both
 * pass aggregate-store.contract.ts.
 */
import { AGGREGATE_HORIZON_MS, type Aggregate } from '../../domain/window-aggregates.ts';
import { AppError } from '../app-error.ts';

/** Whose events a series holds. */
export type SeriesKind = 'user' | 'target';

/** A series: one user's (or target's) events of one type. */
export interface SeriesName {
  kind: SeriesKind;
  /** The user id or the target. */
  subject: string;
  type: string;
}

/** One event's contribution to one series. */
export interface AggregateIncrement extends SeriesName {
  /** Its partition of the events topic. */
  partition: number;
  /** Its offset in that partition (below 2^53); ascending per series and partition in a call. */
  position: bigint;
  /** Its time (occurred, else received), epoch ms. */
  timeMs: number;
  /** Absent when the event carries none. */
  value: number | undefined;
}

/** A window to read: [startMs, endMs), epoch ms. */
export interface TimeSpan {
  startMs: number;
  endMs: number;
}

/**
 * How long events and tiles are kept after their time: the horizon of every window and an hour
 * more, so that a query process whose clock is behind the counter's still finds a window's oldest
 * minutes complete.
 */
export const AGGREGATE_RETENTION_MS = AGGREGATE_HORIZON_MS + 3_600_000;

/**
 * How long a series' marks are kept after its last apply: the retention and a day more, so that a
 * batch redelivered within that time (after an outage) still finds them. An event applied again
 * after its marks expired is one whose series has been idle that long.
 */
export const AGGREGATE_MARK_TTL_MS = AGGREGATE_RETENTION_MS + 24 * 3_600_000;

/**
 * The longest window rankings cover ({@link AggregateStore.top}): a day. The Redis adapter keeps
 * its per-hour rankings this long and an hour more.
 */
export const RANKING_HORIZON_MS = 24 * 3_600_000;

/** What a ranking orders by: the window's sum of values, or its count of events. */
export type RankBy = 'sum' | 'count';

/** One ranked series: its subject and its aggregate over the window. */
export interface RankedSeries {
  subject: string;
  aggregate: Aggregate;
}

/** Which event types are ranked (TALLY_AGGREGATE_RANKINGS): every aggregated type, or those listed. */
export type RankedTypes = 'all' | readonly string[];

export function isRanked(types: RankedTypes, type: string): boolean {
  return types === 'all' || types.includes(type);
}

/** Refuses a ranking of a type not ranked, naming the setting. */
export function checkRanked(types: RankedTypes, type: string): void {
  if (isRanked(types, type)) return;
  const setting = types === 'all' ? 'all' : types.length === 0 ? 'none' : types.join(',');
  throw AppError.invalidField('type', `is not ranked here: TALLY_AGGREGATE_RANKINGS is ${setting}`);
}

export interface AggregateStore {
  /** Which adapter, for the start-up log and readiness. */
  readonly description: string;
  /**
   * Applies increments of any series and partitions, each partition's in offset order: each
   * whose position is above its series' mark for the partition, moving the mark; atomic per
   * series. Returns how many applied (kept or too old to keep).
   */
  apply(increments: readonly AggregateIncrement[]): Promise<number>;
  /**
   * The aggregate of `series` over each span, in order, read at one moment (atomic against
   * `apply`). A span must lie within the retention (the query role checks).
   */
  read(series: SeriesName, spans: readonly TimeSpan[]): Promise<Aggregate[]>;
  /**
   * The `limit` series of `kind` and `type` with the highest sum (or count) over `span`, highest
   * first (ties in any order), each with its exact aggregate over the span; series with no event
   * in it are not ranked. The span must lie within the last {@link RANKING_HORIZON_MS} and an
   * hour (the query role checks), and the type must be ranked.
   */
  top(kind: SeriesKind, type: string, span: TimeSpan, by: RankBy, limit: number): Promise<RankedSeries[]>;
  /** Resolves when the store answers (Redis: PING); for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A series' name as one string, unambiguous whatever its subject and type hold (the type is length-prefixed). */
export function seriesId(series: SeriesName): string {
  return `${series.kind}:${series.type.length}:${series.type}:${series.subject}`;
}

/** The increments of a call per series (by `seriesId`), each per partition, in the order given. */
export function groupIncrements(
  increments: readonly AggregateIncrement[],
): Map<string, { series: SeriesName; events: number; partitions: Map<number, AggregateIncrement[]> }> {
  const groups = new Map<
    string,
    { series: SeriesName; events: number; partitions: Map<number, AggregateIncrement[]> }
  >();
  for (const inc of increments) {
    const id = seriesId(inc);
    let group = groups.get(id);
    if (!group) {
      group = {
        series: { kind: inc.kind, subject: inc.subject, type: inc.type },
        events: 0,
        partitions: new Map(),
      };
      groups.set(id, group);
    }
    group.events++;
    const list = group.partitions.get(inc.partition);
    if (list) list.push(inc);
    else group.partitions.set(inc.partition, [inc]);
  }
  return groups;
}

/** The measure a ranking orders by. */
export function measureOf(aggregate: Aggregate, by: RankBy): number {
  return by === 'sum' ? aggregate.sum : aggregate.count;
}

/**
 * The exact top `limit` from candidates ranked by an upper bound of their measure (the threshold
 * algorithm): candidates come a page at a time, highest bound first; each page's series are read
 * exactly; the search stops once the `limit`-th best measure read is at least the bound of the
 * last candidate seen, since no later one can beat it. The bounds must hold: a series' measure
 * over the window is at most its bound.
 */
export async function exactTop(input: {
  /** Candidates from `start`, at most `count`, by descending bound. */
  candidates: (start: number, count: number) => Promise<{ subject: string; bound: number }[]>;
  /** The exact aggregates of the subjects over the window, in order. */
  read: (subjects: readonly string[]) => Promise<Aggregate[]>;
  by: RankBy;
  limit: number;
}): Promise<RankedSeries[]> {
  const pageSize = Math.max(50, 2 * input.limit);
  const best: RankedSeries[] = [];
  for (let start = 0; ; ) {
    const page = await input.candidates(start, pageSize);
    start += page.length;
    if (page.length === 0) break;
    const aggregates = await input.read(page.map((c) => c.subject));
    page.forEach((c, i) => {
      const aggregate = aggregates[i]!;
      if (aggregate.count > 0) best.push({ subject: c.subject, aggregate });
    });
    best.sort(
      (a, b) =>
        measureOf(b.aggregate, input.by) - measureOf(a.aggregate, input.by) ||
        (a.subject < b.subject ? -1 : 1),
    );
    best.length = Math.min(best.length, input.limit);
    const kth = best[input.limit - 1];
    if (page.length < pageSize) break;
    if (kth && measureOf(kth.aggregate, input.by) >= page.at(-1)!.bound) break;
  }
  return best;
}

/**
 * Resolves once this turn of the event loop is over (a setImmediate): what was called on a client
 * meanwhile has gone out (ioredis sends the calls of one tick together), so that Redis runs them
 * while the caller builds the next.
 */
export const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
