/**
 * The series store port: the per-minute totals behind threshold and spike rules, the state of
 * each series' detector, and the notifications it raised until they are written (docs/alerts.md).
 *
 * A series is a rule and what it watches (a target, or a user); the store treats its name as
 * opaque. Its events add to the total of their minute (by occurred time), each applied once by its
 * partition and offset, as the counter and milestone stores do. A minute at or before the series'
 * closed mark — the last minute its detector evaluated as closed — takes nothing more: such an
 * event is later than the lateness bound and is counted as late instead.
 *
 * The detector itself runs in the alerter (domain/alert-detectors.ts); the store keeps what it
 * reads and writes, under a version that moves with every change. An evaluation reads a series
 * (`apply` answers each series it touched), computes the next state and the notifications raised,
 * and `commit`s them only if the version is still the one it read — so two alerter processes
 * whose batches touch one series (a target's events come from many partitions) never both
 * evaluate the same minutes: the second one's commit is refused, and it reads and evaluates again.
 * The notifications of a commit stay pending, answered with every read of the series, until
 * `confirm` forgets them once written. With the order apply → evaluate → commit → write → confirm
 * → commit the batch, nothing raised is lost and each notification is written at least once under
 * its deterministic id.
 *
 * Adapters: redis-series-store.ts (standalone or Cluster), embedded-series-store.ts.
 */

export interface SeriesIncrement {
  /** A rule and its subject, as the alerter names it. */
  series: string;
  /** The partition of the topic the event came from. */
  partition: number;
  /** The event's offset in that partition: ascending per series and partition in a call. */
  offset: bigint;
  /** The minute since the epoch the event occurred in. */
  minute: number;
  /** The event's occurred time (ms): the series' latest moves to the highest seen. */
  occurredAtMs: number;
  /** What it adds to its minute: 1 for a count, the event's value for a sum. */
  amount: number;
  /** How long an idle series is kept (ms); the same for every increment of a series. */
  ttlMs: number;
}

/** A series as stored: what an evaluation reads. */
export interface SeriesSnapshot {
  series: string;
  /** Moves with every change; a commit names the one its evaluation read. */
  version: number;
  /** The latest occurred time applied (ms); 0 before any. */
  latestMs: number;
  /** The last minute evaluated as closed: minutes up to it take no more events. */
  closedMinute?: number;
  /** minute → total, for the minutes kept. */
  totals: Map<number, number>;
  /** The detector's state as last committed (opaque to the store); undefined before the first. */
  state?: string;
  /** Notifications committed and not yet confirmed: id → the notification, serialised. */
  pending: Map<string, string>;
  /** Increments of this call refused as later than the closed minute. */
  late: number;
}

export interface SeriesCommit {
  series: string;
  /** The version the evaluation read. */
  expectedVersion: number;
  /** The detector's next state. */
  state: string;
  /** The last minute now evaluated as closed (never moves back). */
  closedMinute: number;
  /** Minutes before this one are dropped: no window will read them again. */
  keepFromMinute: number;
  /** Notifications raised: id → the notification, serialised; kept pending until confirmed. */
  notifications: ReadonlyMap<string, string>;
  /** How long an idle series is kept (ms). */
  ttlMs: number;
}

export interface SeriesStore {
  /** Which adapter, for the start-up log and readiness. */
  readonly description: string;
  /**
   * Applies the increments not applied before (by partition and offset), each to its minute
   * unless that minute is closed, and answers every series named — also a series that took
   * nothing this time — as it now is.
   */
  apply(increments: readonly SeriesIncrement[]): Promise<SeriesSnapshot[]>;
  /** Reads series as they are (no increments). */
  read(series: readonly string[]): Promise<SeriesSnapshot[]>;
  /**
   * Writes an evaluation's result if the series' version is still `expectedVersion`: answers the
   * notifications now pending (the new ones and any left unconfirmed), or `undefined` when the
   * series changed meanwhile and nothing was written.
   */
  commit(commit: SeriesCommit): Promise<Map<string, string> | undefined>;
  /** Forgets pending notifications once written. */
  confirm(series: string, ids: readonly string[]): Promise<void>;
  /** Resolves when the store answers (Redis: PING); for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The increments of a call grouped by series, each group in the order given. */
export function groupBySeries(increments: readonly SeriesIncrement[]): Map<string, SeriesIncrement[]> {
  const groups = new Map<string, SeriesIncrement[]>();
  for (const increment of increments) {
    const group = groups.get(increment.series);
    if (group) group.push(increment);
    else groups.set(increment.series, [increment]);
  }
  return groups;
}
