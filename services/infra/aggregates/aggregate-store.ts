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
