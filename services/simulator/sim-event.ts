/**
 * What a scenario produces: events in the shape of Tally's rules (`EventInput` of
 * domain/event-rules.ts) without the send time, which the simulator stamps when it sends.
 */

/** One generated event. */
export interface SimEvent {
  /** Unique in the run: `<id prefix>-<sequence>` (sequence from 1). */
  id: string;
  type: string;
  target: string;
  /** Tally's partition key: one user's events stay in order. */
  userId: string;
  /** Empty: Tally takes the caller's address. */
  ip: string;
  value: number | undefined;
  attributes: Record<string, string>;
  /**
   * When it happens in the scenario's own clock, in ms from the start of the run. The model is
   * calibrated so that this clock advances at the send rate (events arrive at `ratePerSecond`).
   */
  modelTimeMs: number;
}

/** What every scenario is built from. */
export interface ScenarioOptions {
  /** Any non-negative safe integer; the same seed gives the same events. */
  seed: number;
  /** Events per second the model is calibrated to. */
  ratePerSecond: number;
  /** Size of the target population (pages, posts, merchants, stores). */
  targets: number;
  /** Size of the user population. */
  users: number;
  /** Prefix of event ids (and of session and order ids): letters and digits. */
  idPrefix: string;
  /**
   * clickstream only: run the model for a while before the first event, so that the run starts
   * with sessions already in progress, as a live site would (default true).
   */
  warmUp?: boolean;
}

/** An endless, deterministic stream of events. */
export interface EventSource {
  next(): SimEvent;
}

/** Rounds to cents. */
export function toCents(amount: number): number {
  return Math.max(0.01, Math.round(amount * 100) / 100);
}
