/**
 * The delivery log port: what the admin API reads and changes of the senders' durable state
 * (delivery-store.ts; docs/delivery.md, "Deliveries: the admin API") — listing deliveries,
 * a delivery's attempts, redelivering one, recovering a destination's dead letters. A delivery's
 * id is its message id (`msg_…`, the `webhook-id`), which names its destination.
 * Adapter: sql-delivery-log.ts, on the same tables as the senders' store.
 */
import type { AttemptOutcome } from './delivery-store.ts';

export type DeliveryState = 'pending' | 'delivered' | 'dead';
export const DELIVERY_STATES: readonly DeliveryState[] = ['pending', 'delivered', 'dead'];

/** A delivery as the log keeps it. */
export interface DeliveryEntry {
  id: string;
  destinationId: string;
  state: DeliveryState;
  userKey: string;
  eventId: string;
  eventType: string;
  occurredAtMs: number;
  attempts: number;
  nextAttemptAtMs?: number | undefined;
  lastStatus?: number | undefined;
  lastError?: string | undefined;
  createdAtMs: number;
  finishedAtMs?: number | undefined;
}

export interface AttemptEntry {
  attempt: number;
  atMs: number;
  outcome: AttemptOutcome;
  status?: number | undefined;
  latencyMs: number;
  error?: string | undefined;
}

export interface DeliveryFilter {
  destinationId?: string | undefined;
  state?: DeliveryState | undefined;
  userKey?: string | undefined;
  /** Kept at or after (ms since the epoch). */
  sinceMs?: number | undefined;
  /** Kept before. */
  untilMs?: number | undefined;
}

export interface DeliveryLog {
  /**
   * Deliveries matching `filter`, newest first, at most `limit`, after the page whose last
   * delivery had position `after` (the order's key: opaque to callers, encoded by the API).
   */
  list(
    filter: DeliveryFilter,
    limit: number,
    after?: bigint,
  ): Promise<{ entries: DeliveryEntry[]; last?: bigint }>;
  /** The delivery `id`, or undefined. */
  get(id: string): Promise<DeliveryEntry | undefined>;
  /** Its attempts, first first (empty when the delivery is unknown: ask `get`). */
  attempts(id: string): Promise<AttemptEntry[]>;
  /**
   * Sets a dead or delivered delivery pending again, due at `nowMs`, its retry schedule started
   * again (its attempts go on being numbered). Answers the delivery as it is now: unchanged when
   * it was pending already; undefined when unknown.
   */
  redeliver(id: string, nowMs: number): Promise<{ entry: DeliveryEntry; changed: boolean } | undefined>;
  /**
   * Sets every delivery of `destinationId` dead-lettered at or after `sinceMs` pending again, due
   * at `nowMs`, each with its retry schedule started again; one statement, so a delivery goes back
   * once however many calls race. Returns how many.
   */
  recover(destinationId: string, sinceMs: number, nowMs: number): Promise<number>;
}
