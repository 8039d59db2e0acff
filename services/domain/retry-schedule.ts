/**
 * When a webhook message is attempted again after a failed attempt, or given up (dead-lettered).
 * Pure: the caller passes the clock's reading and a source of random numbers in [0, 1).
 *
 * The schedule lists the nominal delay before each attempt: the first is sent at once, then after
 * 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (Standard Webhooks' suggestion): 8 attempts over
 * about 27.6 hours. Retries are spread with full jitter inside each step: the delay before
 * attempt n (n ≥ 2, nominal d[n]) is
 *
 *     delay = lo + r × (d[n] − lo),   lo = min(d[n−1], d[n] / 2),   r uniform in [0, 1)
 *
 * so it falls anywhere between the previous step (or half of its own, when the steps repeat)
 * and its own nominal delay: failing messages of one outage spread out instead of coming back
 * together, and each step stays at least as long as the one before. A `Retry-After` the receiver
 * sent is honoured: the delay is the later of the jittered one and Retry-After (the latter capped
 * at `maxRetryAfterMs`).
 */

/** The nominal delays before each attempt, in ms (the first is 0: sent at once). */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = Object.freeze([
  0,
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
]);

export interface RetryPolicy {
  /** Nominal delay before each attempt, ms; its length is the number of attempts. */
  delaysMs: readonly number[];
  /** The longest `Retry-After` honoured, ms (a longer one is shortened to this). Default 10 h. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  delaysMs: DEFAULT_RETRY_DELAYS_MS,
  maxRetryAfterMs: 10 * 3_600_000,
});

/** Checks a policy; throws a message naming what is wrong. */
export function validateRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const { delaysMs, maxRetryAfterMs } = policy;
  if (delaysMs.length < 1) throw new Error('a retry schedule has at least one attempt');
  if (delaysMs[0] !== 0) throw new Error('the first attempt of a retry schedule is immediate (0 ms)');
  if (delaysMs.some((d) => !Number.isFinite(d) || d < 0))
    throw new Error('retry delays are finite and not negative');
  if (!(maxRetryAfterMs >= 0)) throw new Error('maxRetryAfterMs is not negative');
  return policy;
}

export interface NextAttemptInput {
  /** Attempts made so far (≥ 1: the one that just failed included). */
  attempts: number;
  /** The clock's reading when the attempt failed, ms since the epoch. */
  nowMs: number;
  /** The receiver's Retry-After, ms from now, when it sent one. */
  retryAfterMs?: number | undefined;
  /** Uniform in [0, 1). */
  random: () => number;
}

export type NextAttempt =
  | {
      kind: 'retry';
      /** The attempt to make next (2 for the first retry). */
      attempt: number;
      delayMs: number;
      /** nowMs + delayMs. */
      atMs: number;
    }
  /** No attempt left: the message goes to the dead letters. */
  | { kind: 'exhausted'; attempts: number };

/** The jitter window of attempt `attempt` (2-based index into the schedule), ms. */
export function jitterWindow(policy: RetryPolicy, attempt: number): { lowMs: number; highMs: number } {
  const high = policy.delaysMs[attempt - 1]!;
  const previous = policy.delaysMs[attempt - 2] ?? 0;
  return { lowMs: Math.min(previous, high / 2), highMs: high };
}

/** When to try a message again after `attempts` failed ones, or that none is left. */
export function nextAttempt(
  input: NextAttemptInput,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): NextAttempt {
  const attempt = input.attempts + 1;
  if (attempt > policy.delaysMs.length) return { kind: 'exhausted', attempts: input.attempts };
  const { lowMs, highMs } = jitterWindow(policy, attempt);
  let delayMs = Math.round(lowMs + input.random() * (highMs - lowMs));
  if (input.retryAfterMs !== undefined && input.retryAfterMs > 0)
    delayMs = Math.max(delayMs, Math.min(Math.round(input.retryAfterMs), policy.maxRetryAfterMs));
  return { kind: 'retry', attempt, delayMs, atMs: input.nowMs + delayMs };
}

/**
 * A `Retry-After` header as ms from `nowMs`: delta-seconds (`120`) or an HTTP-date
 * (`Wed, 21 Oct 2026 07:28:00 GMT`); undefined when absent or unreadable, 0 for a past date.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) return Number(text) * 1000;
  if (!/^[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$/.test(text))
    return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
