/**
 * The counter store port: live counts and sums per (target, type), applied
 * exactly once per event id. Adapters: Redis standalone or Cluster
 * (redis-counter-store.ts) and in memory with a journal (embedded-counter-store.ts);
 * both pass counter-store.contract.ts.
 */

/** One event's contribution to its (target, type) counter. */
export interface CounterIncrement {
  eventId: string;
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
   * Applies each increment unless its (target, event id) was already applied
   * within the deduplication window; atomic per target. Returns how many were new.
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
