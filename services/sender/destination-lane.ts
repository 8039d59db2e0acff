/**
 * One destination in one sender: its pace, its breaker, and the two ways its deliveries go
 * (docs/delivery.md, "The sender").
 *
 * - `handle`: a batch of its topic, within a deadline. Each user's records go in order, users
 *   side by side (with `ordering: none`, each record on its own); whatever cannot go before the
 *   deadline is parked in the delivery store — a retry with its next time, a record behind a
 *   parked one of its user, every record while the breaker is not closed or the lane is parking —
 *   and an attempt still in flight at the deadline is parked under this sender's lease and
 *   finished when its answer comes. The batch's marks are raised in the same transaction, and the
 *   handler resolves: the consumer commits.
 * - `drain`: the parked deliveries due now, claimed under leases (a user's first pending one
 *   only, with per-user order), attempted at the destination's pace, each finished in the store.
 *
 * A lane whose attempt was still in flight at the deadline after half the batch's time (a slow
 * destination), or whose breaker opened, parks every new record until a drain finds nothing
 * pending for the destination: a slow or failing destination costs a batch one insert, never the
 * deadline again. An attempt that merely started late is parked alone (with its user's later
 * records), and the next batch goes inline: a busy sender is not taken for a slow destination.
 */
import { nextAttempt, type RetryPolicy } from '../domain/retry-schedule.ts';
import type { BreakerStore } from '../infra/delivery/breaker-store.ts';
import type {
  AttemptRecord,
  ClaimedDelivery,
  DeliveryStore,
  Finish,
  ParkedDelivery,
} from '../infra/delivery/delivery-store.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import type { DestinationLimiter } from '../infra/limits/destination-limiter.ts';
import type { Logger } from '../infra/logger.ts';
import type { DeliveryMetrics } from '../infra/metrics.ts';
import type { DeliveryRecord } from '../pipeline/delivery-record.ts';
import type { Attempter, AttemptResult } from './attempt.ts';
import { Pace } from './pace.ts';

export interface LaneDeps {
  store: DeliveryStore;
  breakers: BreakerStore;
  attempt: Attempter;
  /** Disables the destination in the destination store, with `reason` (a 410, the breaker's verdict). */
  disable(destination: Destination, reason: string): Promise<void>;
  logger: Logger;
  metrics: DeliveryMetrics;
  /** This sender's lease owner name. */
  owner: string;
  now(): number;
  random(): number;
  /** Aborted when the sender stops: attempts end early and their deliveries are released. */
  stopping: AbortSignal;
  /** The concurrency and rate limits every sender shares; without it, limits are this process's. */
  limiter?: DestinationLimiter;
  /** The shared limiter failed (logged by the caller, at most so often). */
  limiterFailed?(error: unknown): void;
}

export interface LaneTimings {
  /** Added to an attempt's own timeout in a lease: how long after it another sender may take the delivery. */
  leaseMarginMs: number;
  /** The timeout of a Kafka destination's append. */
  kafkaTimeoutMs: number;
}

/** A record as a batch hands it to its lane. */
export type LaneRecord = DeliveryRecord;

const BREAKER_STATE = { closed: 0, 'half-open': 1, open: 2 } as const;

/** The most deliveries one drain claims at a time. */
const MAX_CLAIM = 500;

export class DestinationLane {
  #destination: Destination;
  readonly #deps: LaneDeps;
  readonly #timings: LaneTimings;
  readonly pace: Pace;
  /** Park every new record until a drain finds nothing pending. */
  #parking = false;
  #disabled = false;
  #draining: Promise<void> | undefined;
  #drainAgain = false;
  /** Attempts left running past their batch's deadline (leased), for the stop to wait for. */
  readonly #detached = new Set<Promise<void>>();

  constructor(destination: Destination, deps: LaneDeps, timings: LaneTimings) {
    this.#destination = destination;
    this.#deps = deps;
    this.#timings = timings;
    const { limiter, metrics } = deps;
    this.pace = new Pace(
      { concurrency: destination.concurrency, ratePerSecond: destination.rateLimitPerSecond },
      deps.now,
      limiter && {
        limiter,
        destination: destination.id,
        leaseMs: () => this.#attemptTimeoutMs() + this.#timings.leaseMarginMs,
        waited: (seconds, limit) =>
          metrics.limitWait.observe({ destination: destination.id, limit }, seconds),
        failed: (error) => {
          metrics.limiterErrors.inc();
          deps.limiterFailed?.(error);
        },
      },
    );
  }

  get destination(): Destination {
    return this.#destination;
  }

  get parking(): boolean {
    return this.#parking;
  }

  /** The destination as changed in the store. */
  update(destination: Destination): void {
    this.#destination = destination;
    this.pace.update({ concurrency: destination.concurrency, ratePerSecond: destination.rateLimitPerSecond });
  }

  #policy(): RetryPolicy {
    return {
      delaysMs: this.#destination.retryDelaysSeconds.map((s) => s * 1000),
      maxRetryAfterMs: 10 * 3_600_000,
    };
  }

  #attemptTimeoutMs(): number {
    const e = this.#destination.endpoint;
    return e.kind === 'webhook' ? e.timeoutMs : this.#timings.kafkaTimeoutMs;
  }

  #label() {
    return { destination: this.#destination.id };
  }

  /** Attempts one delivery and tells the breaker what came of it. */
  async #attempt(delivery: { messageId: string; userKey: string; body: Uint8Array }): Promise<AttemptResult> {
    const d = this.#destination;
    const result = await this.#deps.attempt(d, delivery, this.#deps.stopping);
    const { metrics } = this.#deps;
    if (this.#deps.stopping.aborted && result.kind === 'retry') return result; // released, not counted
    metrics.attemptDuration.observe(this.#label(), result.latencyMs / 1000);
    if (result.kind === 'delivered') metrics.delivered.inc(this.#label());
    else metrics.failedAttempts.inc({ ...this.#label(), outcome: result.kind });
    try {
      const answer = await this.#deps.breakers.record(d.id, result.signal, this.#deps.now());
      metrics.breakerState.set(this.#label(), BREAKER_STATE[answer.snapshot.phase]);
      if (answer.transition === 'opened' || answer.transition === 'reopened') {
        this.#parking = true;
        if (answer.transition === 'opened')
          this.#deps.logger.warn('circuit breaker opened: deliveries wait', {
            destination: d.id,
            probeAt: new Date(answer.snapshot.openUntilMs).toISOString(),
          });
      }
      if (answer.transition === 'closed')
        this.#deps.logger.info('circuit breaker closed', { destination: d.id });
      if (answer.disable) await this.#disable('circuit breaker not closed for the auto-disable time');
    } catch (error) {
      // The breaker is advisory: a Redis outage must not hold deliveries.
      this.#deps.logger.warn('circuit breaker not updated', {
        destination: d.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    if (result.kind === 'gone') await this.#disable('the receiver answered 410 Gone');
    return result;
  }

  async #disable(reason: string): Promise<void> {
    if (this.#disabled) return;
    this.#disabled = true;
    this.#parking = true;
    this.#deps.logger.warn('disabling destination', { destination: this.#destination.id, reason });
    try {
      await this.#deps.disable(this.#destination, reason);
    } catch (error) {
      this.#disabled = false; // tried again at its next failure
      this.#deps.logger.error('destination not disabled', {
        destination: this.#destination.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /**
   * What a finished attempt becomes, after `attemptsBefore` earlier attempts, `retryFrom` of them
   * before its current retry schedule (a redelivery starts the schedule again).
   */
  #finishOf(result: AttemptResult, attemptsBefore: number, atMs: number, retryFrom = 0): Finish {
    const attempt: AttemptRecord = {
      attempt: attemptsBefore + 1,
      atMs,
      outcome: result.kind,
      status: result.status,
      latencyMs: result.latencyMs,
      error: result.error,
    };
    if (result.kind === 'delivered') return { kind: 'delivered', attempt };
    if (result.kind === 'dead') return { kind: 'dead', attempt };
    if (result.kind === 'gone') return { kind: 'release', nextAttemptAtMs: this.#deps.now(), attempt };
    const next = nextAttempt(
      {
        attempts: attemptsBefore - retryFrom + 1,
        nowMs: this.#deps.now(),
        retryAfterMs: result.retryAfterMs,
        random: this.#deps.random,
      },
      this.#policy(),
    );
    if (next.kind === 'exhausted')
      return {
        kind: 'dead',
        attempt: { ...attempt, outcome: 'dead', error: `out of attempts: ${result.error ?? 'failed'}` },
      };
    return { kind: 'retry', attempt, nextAttemptAtMs: next.atMs };
  }

  #counted(finish: Finish): void {
    const { metrics } = this.#deps;
    if (finish.kind === 'retry') metrics.retried.inc(this.#label());
    if (finish.kind === 'dead') metrics.deadLettered.inc(this.#label());
  }

  /**
   * Handles a batch's fresh records (duplicates already skipped) of topic partition
   * `topicPartition`: delivers what can go before `deadlineMs`, parks the rest, and raises the
   * marks to `positions` — all durable when it resolves.
   */
  async handle(
    records: readonly LaneRecord[],
    topicPartition: number,
    positions: ReadonlyMap<number, bigint>,
    deadlineMs: number,
  ): Promise<void> {
    const d = this.#destination;
    const { store, metrics, now } = this.#deps;
    // An attempt still in flight at the deadline says the destination is slow only when it had
    // run for half the batch's time: one that started just before the deadline says nothing but
    // that the batch was long (a busy sender), and parking every record for it would make a busy
    // sender busier (a parked delivery costs a row written, claimed and finished).
    const slowAfterMs = Math.max(0, deadlineMs - now()) / 2;
    const parked: ParkedDelivery[] = [];
    const park = (r: LaneRecord, reason: string, extra: Partial<ParkedDelivery> = {}) => {
      metrics.parkedRecords.inc({ ...this.#label(), reason });
      parked.push({ ...parkedOf(r, now()), ...extra });
    };
    let settled!: () => void;
    const settledPromise = new Promise<void>((resolve) => {
      settled = resolve;
    });
    let failedSettle = false;
    const afterSettle = settledPromise.then(() => !failedSettle);

    let parkAll: string | undefined = this.#disabled ? 'disabled' : this.#parking ? 'slow' : undefined;
    if (!parkAll && records.length > 0) {
      try {
        const answer = await this.#deps.breakers.inspect(d.id, now());
        metrics.breakerState.set(this.#label(), BREAKER_STATE[answer.snapshot.phase]);
        if (answer.snapshot.phase !== 'closed') {
          parkAll = 'breaker';
          this.#parking = true;
        }
      } catch {
        // Unknown breaker: attempts go (the breaker is advisory).
      }
    }
    if (parkAll) for (const r of records) park(r, parkAll);
    else {
      const perUser = d.ordering === 'per_user';
      const users = perUser ? [...new Set(records.map((r) => userKeyOf(r)))] : [];
      const blocked = perUser ? await store.blockedUsers(d.id, users) : new Set<string>();
      const chains = new Map<string, LaneRecord[]>();
      records.forEach((r, i) => {
        const key = perUser ? userKeyOf(r) : String(i);
        const chain = chains.get(key);
        if (chain) chain.push(r);
        else chains.set(key, [r]);
      });
      await Promise.all(
        [...chains].map(async ([key, chain]) => {
          if (perUser && blocked.has(key)) {
            for (const r of chain) park(r, 'user');
            return;
          }
          for (let i = 0; i < chain.length; i++) {
            const r = chain[i]!;
            const rest = () => {
              for (const later of chain.slice(i + 1)) park(later, 'user');
            };
            if (this.#parking || this.#disabled || this.#deps.stopping.aborted) {
              for (const later of chain.slice(i)) park(later, this.#disabled ? 'disabled' : 'slow');
              return;
            }
            const release = await this.pace.acquire(deadlineMs, this.#deps.stopping);
            if (!release) {
              for (const later of chain.slice(i)) park(later, 'slow');
              return;
            }
            // The breaker may have opened (or the destination been disabled) while this waited
            // for its turn: what has not started is parked, not attempted.
            if (this.#parking || this.#disabled) {
              release();
              for (const later of chain.slice(i)) park(later, this.#disabled ? 'disabled' : 'slow');
              return;
            }
            const startedMs = now();
            const attempt = this.#attempt(sendableOf(r));
            const raced = await raceDeadline(attempt, deadlineMs - now());
            if (raced === undefined) {
              // Still in flight at the deadline: parked under this sender's lease, finished when
              // its answer comes (after the batch's transaction, which holds the row).
              if (now() - startedMs >= slowAfterMs) this.#parking = true;
              park(r, 'slow', {
                lease: {
                  owner: this.#deps.owner,
                  untilMs: startedMs + this.#attemptTimeoutMs() + this.#timings.leaseMarginMs,
                },
              });
              rest();
              this.#detach(
                attempt
                  .then(async (result) => {
                    release();
                    if (!(await afterSettle)) return;
                    const claim = claimOf(d.id, r, this.#deps.owner);
                    const finish =
                      this.#deps.stopping.aborted && result.kind === 'retry'
                        ? ({ kind: 'release', nextAttemptAtMs: now() } as const)
                        : this.#finishOf(result, 0, startedMs);
                    this.#counted(finish);
                    await store.finish(claim, finish, now());
                    this.wake();
                  })
                  .finally(release),
              );
              return;
            }
            release();
            const result = raced;
            if (this.#deps.stopping.aborted && result.kind === 'retry') {
              park(r, 'slow');
              rest();
              return;
            }
            const finish = this.#finishOf(result, 0, startedMs);
            this.#counted(finish);
            if (finish.kind === 'delivered') continue;
            if (finish.kind === 'dead') {
              park(r, 'dead', { state: 'dead', attempts: 1, log: [finish.attempt] });
              continue; // dead-lettered: the user's next record may go
            }
            park(r, finish.kind === 'retry' ? 'retry' : 'disabled', {
              attempts: 1,
              log: finish.attempt ? [finish.attempt] : [],
              nextAttemptAtMs: finish.nextAttemptAtMs,
            });
            rest();
            return;
          }
        }),
      );
    }
    try {
      await store.settle(d.id, topicPartition, parked, positions, now());
    } catch (error) {
      failedSettle = true;
      throw error;
    } finally {
      settled();
    }
    if (parked.some((p) => p.state === 'pending' && !p.lease)) this.wake();
  }

  #detach(task: Promise<void>): void {
    const tracked = task.catch((error) =>
      this.#deps.logger.warn(
        'delivery attempt not finished in the store; another sender takes it once its lease expires',
        {
          destination: this.#destination.id,
          error: error instanceof Error ? error.message : String(error),
        },
      ),
    );
    this.#detached.add(tracked);
    void tracked.finally(() => this.#detached.delete(tracked));
  }

  /** Starts a drain now (or another one after the one running). */
  wake(): void {
    if (this.#draining) {
      this.#drainAgain = true;
      return;
    }
    this.#draining = (async () => {
      try {
        do {
          this.#drainAgain = false;
          await this.#drain();
        } while (this.#drainAgain && !this.#deps.stopping.aborted);
      } catch (error) {
        this.#deps.logger.warn('drain of parked deliveries failed; tried again at the next poll', {
          destination: this.#destination.id,
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        this.#draining = undefined;
      }
    })();
  }

  /** The parked deliveries due now, attempted until none is left. */
  async #drain(): Promise<void> {
    const { store, breakers, now, metrics } = this.#deps;
    for (;;) {
      if (this.#disabled || this.#deps.stopping.aborted) return;
      const d = this.#destination;
      let phase: 'closed' | 'half-open' | 'open' = 'closed';
      try {
        const answer = await breakers.inspect(d.id, now());
        phase = answer.snapshot.phase;
        metrics.breakerState.set(this.#label(), BREAKER_STATE[phase]);
        if (phase === 'open' && now() < answer.snapshot.openUntilMs) return; // the poll comes back
      } catch {
        // advisory: drain as if closed
      }
      const limit =
        phase === 'closed'
          ? Math.min(MAX_CLAIM, 2 * d.concurrency, Math.ceil(d.rateLimitPerSecond ?? MAX_CLAIM))
          : 1;
      const claimed = await store.claim(d.id, {
        perUser: d.ordering === 'per_user',
        limit,
        owner: this.#deps.owner,
        leaseMs: this.#attemptTimeoutMs() + this.#timings.leaseMarginMs + 2_000,
        nowMs: now(),
      });
      if (claimed.length === 0) {
        if (this.#parking && !(await store.hasPending(d.id))) this.#parking = false;
        return;
      }
      let stop = false;
      await Promise.all(
        claimed.map(async (claim) => {
          const released = await this.#attemptClaimed(claim);
          if (released) stop = true;
        }),
      );
      if (stop) return;
    }
  }

  /** Attempts a claimed delivery and finishes it; true when it was released unattempted. */
  async #attemptClaimed(claim: ClaimedDelivery): Promise<boolean> {
    const { store, breakers, now } = this.#deps;
    const d = this.#destination;
    const releaseAt = async (atMs: number) => {
      await store.finish(claim, { kind: 'release', nextAttemptAtMs: atMs }, now());
      return true;
    };
    if (this.#disabled || this.#deps.stopping.aborted) return releaseAt(now());
    try {
      const answer = await breakers.admit(d.id, now());
      if (answer.disable) {
        await this.#disable('circuit breaker not closed for the auto-disable time');
        return releaseAt(now());
      }
      if (!answer.admission.allowed) return releaseAt(answer.admission.retryAtMs);
    } catch {
      // advisory
    }
    const release = await this.pace.acquire(Number.POSITIVE_INFINITY, this.#deps.stopping);
    if (!release) return releaseAt(now());
    const startedMs = now();
    let result: AttemptResult;
    try {
      result = await this.#attempt(claim);
    } finally {
      release();
    }
    if (this.#deps.stopping.aborted && result.kind === 'retry') return releaseAt(now());
    const finish = this.#finishOf(result, claim.attempts, startedMs, claim.retryFrom);
    this.#counted(finish);
    await store.finish(claim, finish, now());
    return result.kind === 'gone';
  }

  /** Waits for the drain and the attempts left running past their batch. */
  async settled(): Promise<void> {
    while (this.#draining || this.#detached.size > 0) await Promise.all([this.#draining, ...this.#detached]);
  }
}

/** The key a record's order is kept by: its user, or its event id when it has none. */
export function userKeyOf(r: LaneRecord): string {
  return r.userId !== '' ? r.userId : r.eventId;
}

function sendableOf(r: LaneRecord) {
  return { messageId: r.messageId, userKey: userKeyOf(r), body: r.body };
}

function parkedOf(r: LaneRecord, nowMs: number): ParkedDelivery {
  return {
    messageId: r.messageId,
    userKey: userKeyOf(r),
    eventId: r.eventId,
    eventType: r.eventType,
    occurredAtMs: r.occurredAtMs,
    sourcePartition: r.sourcePartition,
    sourceOffset: r.sourceOffset,
    body: r.body,
    state: 'pending',
    attempts: 0,
    nextAttemptAtMs: nowMs,
    log: [],
  };
}

function claimOf(destinationId: string, r: LaneRecord, owner: string): ClaimedDelivery {
  return {
    destinationId,
    messageId: r.messageId,
    userKey: userKeyOf(r),
    body: r.body,
    attempts: 0,
    retryFrom: 0,
    leaseOwner: owner,
  };
}

/** `promise`'s value, or undefined when `ms` passed first. */
async function raceDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  if (ms <= 0) return Promise.race([promise, Promise.resolve(undefined)]);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
