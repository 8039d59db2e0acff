/**
 * The destination limiter port: a delivery destination's `concurrency` (attempts in flight) and
 * `rate_limit_per_second` (attempts started per second), kept across every sender replica.
 *
 * - Concurrency is a semaphore of **leases**: a grant holds one of the destination's
 *   `concurrency` slots until it is released or its lease expires (`leaseMs`, the attempt's
 *   timeout and a margin), so a sender that dies holding slots frees them by itself.
 * - The rate is the API rate limits' GCRA (`rate-limiter.ts`, policy `delivery`, key = the
 *   destination id): `ratePerSecond` starts per second with bursts of up to one second's worth.
 *
 * An acquisition takes a slot, then a unit of the rate; refused by the rate, it gives the slot
 * back at once, so a destination waiting on its rate holds no slot. A refusal says which limit
 * refused and how long to wait before trying again; nothing waits inside the limiter. Adapters:
 * redis-destination-limiter.ts (standalone or Cluster, every replica), embedded-destination-
 * limiter.ts (in the process). Both are this file's {@link destinationLimiter} over their
 * {@link SlotLeases} and {@link RateLimiter}.
 */
import type { RateLimiter, RateLimitPolicy } from './rate-limiter.ts';

/** A destination's limits as the sender enforces them. */
export interface DestinationLimits {
  /** Attempts in flight at once, at least 1. */
  concurrency: number;
  /** Attempts started per second, a whole number; undefined: no rate limit. */
  ratePerSecond: number | undefined;
}

/** Which limit refused an acquisition. */
export type LimitKind = 'concurrency' | 'rate';

/** The outcome of one acquisition. */
export type LimitGrant =
  | {
      granted: true;
      /** Gives the slot back (idempotent; a failure only leaves the lease to expire). */
      release(): Promise<void>;
    }
  | {
      granted: false;
      limit: LimitKind;
      /** Until trying again may succeed (ms): the rate's exact wait, or a hint for a slot. */
      retryAfterMs: number;
    };

export interface DestinationLimiter {
  /** Which adapter, and where (for the start-up log and readiness). */
  readonly description: string;
  /**
   * Takes a slot of `destination` for at most `leaseMs` and a unit of its rate, or nothing.
   * Rejects (UNAVAILABLE) when the backend fails.
   */
  acquire(destination: string, limits: DestinationLimits, leaseMs: number): Promise<LimitGrant>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Counting semaphores with expiring leases, one per key. */
export interface SlotLeases {
  readonly description: string;
  /**
   * Holds one of `key`'s `limit` slots under `lease` (a unique name) until `leaseMs` from now, when
   * fewer than `limit` unexpired leases are held; else refuses, with the wait until the earliest
   * lease expires.
   */
  acquire(
    key: string,
    lease: string,
    limit: number,
    leaseMs: number,
  ): Promise<{ granted: true } | { granted: false; untilExpiryMs: number }>;
  release(key: string, lease: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The rate policy of a destination limited to `ratePerSecond`. */
export function deliveryRatePolicy(ratePerSecond: number): RateLimitPolicy {
  return { name: 'delivery', limit: ratePerSecond, periodMs: 1_000 };
}

/**
 * The longest a refusal by concurrency asks to wait: slots are mostly given back long before
 * their leases expire, and a release in another replica wakes nobody here.
 */
export const SLOT_RETRY_MS = 25;

let leaseSeq = 0;
const leasePrefix = `${process.pid.toString(36)}.${Math.random().toString(36).slice(2, 8)}`;

/** A destination limiter over `slots` and `rate`, which it closes. */
export function destinationLimiter(
  slots: SlotLeases,
  rate: RateLimiter,
  description: string,
): DestinationLimiter {
  return {
    description,
    async acquire(destination, limits, leaseMs) {
      const lease = `${leasePrefix}.${(leaseSeq++).toString(36)}`;
      const slot = await slots.acquire(destination, lease, limits.concurrency, leaseMs);
      if (!slot.granted)
        return {
          granted: false,
          limit: 'concurrency',
          retryAfterMs: Math.max(1, Math.min(SLOT_RETRY_MS, slot.untilExpiryMs)),
        };
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        await slots.release(destination, lease).catch(() => {});
      };
      if (limits.ratePerSecond !== undefined) {
        let decision: Awaited<ReturnType<RateLimiter['check']>>;
        try {
          decision = await rate.check(destination, deliveryRatePolicy(limits.ratePerSecond), 1);
        } catch (error) {
          await release();
          throw error;
        }
        if (!decision.allowed) {
          await release();
          return { granted: false, limit: 'rate', retryAfterMs: Math.max(1, decision.retryAfterMs) };
        }
      }
      return { granted: true, release };
    },
    ping: () => slots.ping(),
    async close() {
      await Promise.allSettled([slots.close(), rate.close()]);
    },
  };
}
