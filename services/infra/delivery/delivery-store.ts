/**
 * The delivery store port: the senders' durable state (docs/delivery.md, "The sender") — the
 * deliveries parked to be attempted again or finished later, their attempts, and the marks by
 * which router duplicates are recognised. Adapter: sql-delivery-store.ts, on the SQL port
 * (PostgreSQL, or PGlite in embedded mode); migration 0009_deliveries.sql.
 *
 * Times are the caller's (ms since the epoch), so tests can move the clock.
 */

/** What an attempt came to, as the delivery log keeps it. */
export type AttemptOutcome = 'delivered' | 'retry' | 'dead' | 'gone';

/** One attempt of a delivery. */
export interface AttemptRecord {
  /** 1 for the first attempt. */
  attempt: number;
  atMs: number;
  outcome: AttemptOutcome;
  /** The response's status, when one came. */
  status?: number | undefined;
  latencyMs: number;
  error?: string | undefined;
}

/** A delivery as parked by a sender's batch: pending (to be attempted) or already dead. */
export interface ParkedDelivery {
  messageId: string;
  /** The record's key: the user id (or the event id of an event without a user). */
  userKey: string;
  eventId: string;
  eventType: string;
  occurredAtMs: number;
  sourcePartition: number;
  sourceOffset: bigint;
  body: Uint8Array;
  state: 'pending' | 'dead';
  /** Attempts made so far (the attempt log's length). */
  attempts: number;
  /** Pending: when it may be attempted. */
  nextAttemptAtMs: number;
  /** An attempt in flight by this sender (a lease), finished later with {@link DeliveryStore.finish}. */
  lease?: { owner: string; untilMs: number } | undefined;
  /** The attempts made while the batch was in hand. */
  log: readonly AttemptRecord[];
}

/** A pending delivery a sender leased to attempt. */
export interface ClaimedDelivery {
  destinationId: string;
  messageId: string;
  userKey: string;
  body: Uint8Array;
  /** Attempts made before this one. */
  attempts: number;
  /** How many of them came before its current retry schedule (a redelivery starts it again). */
  retryFrom: number;
  leaseOwner: string;
}

/** What to do with a leased delivery once its attempt is over (or was not made). */
export type Finish =
  | { kind: 'delivered'; attempt: AttemptRecord }
  /** Failed; attempted again at `nextAttemptAtMs`. */
  | { kind: 'retry'; attempt: AttemptRecord; nextAttemptAtMs: number }
  /** Dead-lettered: failed for good, or out of attempts. */
  | { kind: 'dead'; attempt: AttemptRecord }
  /** Not attempted (breaker open, destination disabled, stopping), or a 410 recorded: pending again, attempts unchanged but for `attempt`. */
  | { kind: 'release'; nextAttemptAtMs: number; attempt?: AttemptRecord };

export interface ClaimOptions {
  /** Per-user order: only each user's first pending delivery may be claimed. */
  perUser: boolean;
  limit: number;
  owner: string;
  leaseMs: number;
  nowMs: number;
}

export interface DeliveryStore {
  readonly description: string;
  /**
   * The marks of destination `destinationId`'s topic partition `topicPartition`: per source
   * partition, the highest source offset handled (absent: none yet).
   */
  positions(
    destinationId: string,
    topicPartition: number,
    sourcePartitions: readonly number[],
  ): Promise<Map<number, bigint>>;
  /** Among `userKeys`, those with a pending delivery to `destinationId` (their next records wait behind it). */
  blockedUsers(destinationId: string, userKeys: readonly string[]): Promise<Set<string>>;
  /**
   * One transaction: parks `parked` at `nowMs` (a message id parked before is left as it is),
   * keeps their attempt logs, and raises the marks of `topicPartition` to `positions` (never
   * lowers them).
   */
  settle(
    destinationId: string,
    topicPartition: number,
    parked: readonly ParkedDelivery[],
    positions: ReadonlyMap<number, bigint>,
    nowMs: number,
  ): Promise<void>;
  /** The destinations with a pending delivery due at `nowMs` and not leased. */
  dueDestinations(nowMs: number): Promise<string[]>;
  /** Leases up to `limit` due deliveries of a destination (the oldest due first). */
  claim(destinationId: string, options: ClaimOptions): Promise<ClaimedDelivery[]>;
  /** Ends a lease; false when the lease was lost (expired and taken): nothing was written. */
  finish(claim: ClaimedDelivery, finish: Finish, nowMs: number): Promise<boolean>;
  /** Whether `destinationId` has a pending delivery (leased or not). */
  hasPending(destinationId: string): Promise<boolean>;
  /** Pending deliveries per destination. */
  pendingCounts(): Promise<Map<string, number>>;
  /**
   * Deletes deliveries delivered before `deliveredBeforeMs`, dead before `deadBeforeMs`, and every
   * row of deleted destinations; at most `limit` deliveries per call. Returns how many went.
   */
  prune(options: { deliveredBeforeMs: number; deadBeforeMs: number; limit: number }): Promise<number>;
}
