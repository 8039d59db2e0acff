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
  /** Resolves when the store answers (Redis: PING, which needs a working connection and authentication); for readiness, untimed. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
