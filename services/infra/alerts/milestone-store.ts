/**
 * The milestone store port: the counts behind milestone rules ("your post got 100 likes"), kept
 * exactly once, and the thresholds each count crossed, claimed in the same atomic step and held
 * until their notifications are written (docs/alerts.md).
 *
 * A series is a rule and what it counts on (a target); the store treats its name as opaque. Each
 * series keeps the offset of the last event applied per partition of the topic read, as the
 * counter store does, so a redelivered batch counts nothing twice. A threshold crossed is claimed
 * once, ever, per series: the step that crosses it records it as pending and moves the series'
 * "notified up to" past it. `apply` answers every pending crossing of the series it touches — a
 * redelivery after a crash that came before the notifications were written answers them again —
 * and `confirm` forgets them once written. So with the order apply → write notifications →
 * confirm → commit the batch, no crossing is lost and each is written at least once, under the
 * same deterministic id; the notifications' readers keep one.
 *
 * Adapters: redis-milestone-store.ts (standalone or Cluster), embedded-milestone-store.ts.
 */

export interface MilestoneIncrement {
  /** A rule and its target, as the alerter names it; the same name every time. */
  series: string;
  /** The partition of the topic the event came from. */
  partition: number;
  /**
   * The event's offset in that partition: increments of a series and partition come in
   * ascending order, and one at or below the series' mark for the partition is a redelivery.
   */
  offset: bigint;
  /** What the event adds to the count (1 for a count of events). */
  amount: number;
  /** The rule's thresholds, ascending; the same for every increment of the series in a call. */
  thresholds: readonly number[];
}

/** A threshold a series' count reached, held until its notification is written. */
export interface MilestoneCrossing {
  series: string;
  threshold: number;
  /** The count when it was crossed (at the end of the step that crossed it). */
  count: number;
}

export interface MilestoneStore {
  /** Which adapter, for the start-up log and readiness. */
  readonly description: string;
  /**
   * Applies the increments not applied before and claims the thresholds their series crossed;
   * answers the pending crossings of every series touched — this call's and those left by a
   * call whose notifications were not confirmed — lowest threshold first per series.
   */
  apply(increments: readonly MilestoneIncrement[]): Promise<MilestoneCrossing[]>;
  /** Forgets crossings whose notifications are written. */
  confirm(crossings: readonly MilestoneCrossing[]): Promise<void>;
  /** A series' count and the highest threshold claimed (0 when none); for tests and inspection. */
  inspect(series: string): Promise<{ count: number; notifiedUpTo: number; pending: number[] }>;
  /** Resolves when the store answers (Redis: PING); for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The increments of one partition, in the order given, grouped by series. */
export function bySeries(increments: readonly MilestoneIncrement[]): Map<string, MilestoneIncrement[]> {
  const groups = new Map<string, MilestoneIncrement[]>();
  for (const increment of increments) {
    const group = groups.get(increment.series);
    if (group) group.push(increment);
    else groups.set(increment.series, [increment]);
  }
  return groups;
}
