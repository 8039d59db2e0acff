/**
 * The counter store port: live counts and sums per (target, type), each event applied once:
 * an event applies when its offset is above the mark its target keeps for its partition, and the
 * mark moves with it, atomically. Adapters: Redis standalone or Cluster
 * (redis-counter-store.ts) and in memory with a journal (embedded-counter-store.ts);
 * both pass counter-store.contract.ts.
 */

/** One event's contribution to its (target, type) counter. */
export interface CounterIncrement {
  /** Its partition of the events topic. */
  partition: number;
  /** Its offset in that partition; below 2^53. */
  position: bigint;
  target: string;
  type: string;
  /** Added to the sum; absent counts as 0. */
  value: number | undefined;
  /**
   * The event's time (occurred, else received; epoch ms): its hour's leaderboard window and its
   * day of unique users. Absent: counted in the all-time counters only.
   */
  timeMs?: number | undefined;
  /** Its user, counted in the target's unique users; absent or empty: none. */
  userId?: string | undefined;
}

export interface TypeCounter {
  type: string;
  count: number;
  sum: number;
}

/** The leaderboard of one type. */
export interface TypeLeaders {
  type: string;
  /** Highest count first. */
  targets: { target: string; count: number }[];
}

/** Unique users of one type of a target (HyperLogLog estimates, relative standard error 0.81 %). */
export interface TypeUniques {
  type: string;
  /** Distinct users of the UTC day asked for. */
  day: number;
  /** Distinct users since counting began. */
  allTime: number;
}

/** How long an hour's leaderboard window is kept after the hour ends: two days and a little more. */
export const WINDOW_RETENTION_MS = 50 * 3_600_000;
/** How long a UTC day's unique users are kept after the day ends. */
export const UNIQUES_RETENTION_MS = 35 * 24 * 3_600_000;
/** Members each hour's leaderboard window keeps (TALLY_WINDOW_MAX_MEMBERS). */
export const DEFAULT_WINDOW_MAX_MEMBERS = 1000;
/** The relative standard error of a unique-user count: 1.04 / √16384 registers. */
export const UNIQUES_RELATIVE_STANDARD_ERROR = 0.0081;

export interface CounterStore {
  /** Which adapter, for the start-up log. */
  readonly description: string;
  /**
   * Applies increments of any partitions, each partition's given in offset order: each whose
   * position is above its target's mark for its partition, moving the mark; atomic per target. A
   * position at or below the mark (a redelivery, a repeated forward) changes nothing. Returns how
   * many applied.
   */
  apply(increments: readonly CounterIncrement[]): Promise<number>;
  /** Every type counted for `target`, ordered by type. */
  read(target: string): Promise<TypeCounter[]>;
  /**
   * The `limit` most counted targets of each type in `types` (every type counted so far when
   * empty), ordered by type. Counts may trail `read` by the batch being applied, never exceed it.
   */
  top(types: readonly string[], limit: number): Promise<TypeLeaders[]>;
  /**
   * The `limit` most counted targets of each type over the UTC hours starting at `hours` (epoch
   * ms, on the hour; the hours' windows added up), by event time, ordered by type. Each hour's
   * window keeps its most counted members only (TALLY_WINDOW_MAX_MEMBERS): a target trimmed from
   * it counts from its next event again, so counts below the cut are approximate.
   */
  topWindow(types: readonly string[], hours: readonly number[], limit: number): Promise<TypeLeaders[]>;
  /**
   * Unique users of `target` per type in `types` (every type counted for it when empty), on the
   * UTC day starting at `dayStartMs` and all time, ordered by type.
   */
  uniques(target: string, types: readonly string[], dayStartMs: number): Promise<TypeUniques[]>;
  /** Resolves when the store answers (Redis: PING, which needs a working connection and authentication); for readiness, untimed. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
