/**
 * Rate limits by GCRA (the generic cell rate algorithm): a token bucket kept as one number per
 * key, its theoretical arrival time (TAT). A policy admits `limit` units per `periodMs`, one
 * unit every emission interval T = periodMs / limit, with bursts of up to `burst` units (default
 * `limit`): a bucket of `burst` units that refills at that rate. A check of `cost` units at `now`
 * is admitted when max(TAT, now) + cost·T − now ≤ burst·T, and then moves the TAT there; a
 * refused check changes nothing. The TAT is never more than burst·T ahead of now, so once it is
 * in the past the key's state equals no state at all and may be forgotten (the adapters let it
 * expire then).
 *
 * Time is in integer microseconds (Redis's `TIME` resolution; exact as a double until the year
 * 2255) and T is rounded up to a whole microsecond, so the arithmetic is exact, the same in Lua
 * and here, and never admits more than the policy's rate. Over any window of length w a key
 * admits at most burst + w/T units; checks within one emission interval, at most `burst`.
 */

/** How much a key may do: `limit` units per `periodMs`, bursts up to `burst` (default `limit`). */
export interface GcraPolicy {
  limit: number;
  periodMs: number;
  burst?: number;
}

/** Why a check was refused. */
export type GcraRefusal =
  /** The bucket holds fewer units than the check costs; it will after `retryAfterMs`. */
  | 'limited'
  /** The check costs more than the bucket can ever hold: never admitted, however long one waits. */
  | 'cost-exceeds-burst';

/** The outcome of one check. */
export interface GcraResult {
  allowed: boolean;
  /** The TAT to store (µs): moved when admitted, as it was when refused. */
  tatUs: number;
  /** Units a check could take now (after this one, when it was admitted). */
  remaining: number;
  /** Until the bucket is full again, i.e. until the TAT (ms, rounded up). */
  resetMs: number;
  /**
   * Refused: how long until the same check would be admitted (ms, rounded up); `Infinity` when
   * the cost exceeds the burst. Admitted: 0.
   */
  retryAfterMs: number;
  /** Present when refused. */
  refusal?: GcraRefusal;
}

/** Fewest microseconds between two units: more than 1,000,000 units a second is not a rate we keep. */
const MIN_EMISSION_US = 1;

/** The emission interval T of a policy, in whole microseconds (rounded up: never faster than asked). */
export function emissionIntervalUs(policy: GcraPolicy): number {
  return Math.max(MIN_EMISSION_US, Math.ceil((policy.periodMs * 1000) / policy.limit));
}

/** The burst of a policy, in units. */
export function burstOf(policy: GcraPolicy): number {
  return policy.burst ?? policy.limit;
}

/** A description of what is wrong with `policy`, or undefined when it can be enforced. */
export function policyProblem(policy: GcraPolicy): string | undefined {
  if (!Number.isSafeInteger(policy.limit) || policy.limit < 1) return 'limit must be a positive integer';
  if (!Number.isSafeInteger(policy.periodMs) || policy.periodMs < 1)
    return 'periodMs must be a positive integer';
  const burst = burstOf(policy);
  if (!Number.isSafeInteger(burst) || burst < 1) return 'burst must be a positive integer';
  if ((policy.periodMs * 1000) / policy.limit < MIN_EMISSION_US) return 'more than 1,000,000 units a second';
  if (emissionIntervalUs(policy) * burst > Number.MAX_SAFE_INTEGER / 4) return 'burst × period too large';
  return undefined;
}

/** A description of what is wrong with `cost`, or undefined when it is a whole number of units. */
export function costProblem(cost: number): string | undefined {
  return Number.isSafeInteger(cost) && cost >= 0 ? undefined : 'cost must be a non-negative integer';
}

/**
 * A check of `cost` units at `nowUs` against the stored TAT (`undefined`: none stored, or expired).
 * `policy` and `cost` must be valid ({@link policyProblem}, {@link costProblem}); a cost of 0
 * reads the state without taking anything.
 */
export function gcraCheck(
  policy: GcraPolicy,
  storedTatUs: number | undefined,
  nowUs: number,
  cost: number,
): GcraResult {
  const { taken: _, ...result } = gcraTake(policy, storedTatUs, nowUs, cost, cost);
  return result;
}

/**
 * Takes as many units as the bucket holds, at least `least` and at most `most` (≥ `least`),
 * in one step: admitted when `least` units are there (as a check of `least` would be), then
 * `taken` is the most of `most` the bucket holds, and the TAT moves by that many. A refusal
 * is a refusal of `least`: its wait is until `least` units are there. A check of `cost` is a
 * take of at least and at most `cost`.
 */
export function gcraTake(
  policy: GcraPolicy,
  storedTatUs: number | undefined,
  nowUs: number,
  least: number,
  most: number,
): GcraResult & { taken: number } {
  const t = emissionIntervalUs(policy);
  const burst = burstOf(policy);
  const capacityUs = burst * t;
  const tat = storedTatUs === undefined ? nowUs : Math.max(storedTatUs, nowUs);
  const free = remainingOf(capacityUs - (tat - nowUs), t);
  const refused = (refusal: GcraRefusal, retryAfterMs: number) => ({
    allowed: false,
    taken: 0,
    tatUs: tat,
    remaining: free,
    resetMs: microsToMillis(tat - nowUs),
    retryAfterMs,
    refusal,
  });
  if (least > burst) return refused('cost-exceeds-burst', Number.POSITIVE_INFINITY);
  const excessUs = tat + least * t - nowUs - capacityUs;
  if (excessUs > 0) return refused('limited', microsToMillis(excessUs));
  const taken = Math.min(most, free);
  const next = tat + taken * t;
  return {
    allowed: true,
    taken,
    tatUs: next,
    remaining: free - taken,
    resetMs: microsToMillis(next - nowUs),
    retryAfterMs: 0,
  };
}

/** Whole units in `freeUs` of bucket. */
function remainingOf(freeUs: number, t: number): number {
  return Math.max(0, Math.floor(freeUs / t));
}

/** Microseconds as milliseconds, rounded up: waiting that long is always enough. */
function microsToMillis(us: number): number {
  return Math.ceil(us / 1000);
}
