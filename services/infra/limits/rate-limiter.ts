/**
 * The rate limiter port: GCRA per (policy, key) (domain/gcra.ts), in Redis shared by every
 * gateway (redis-rate-limiter.ts) or in the process (embedded-rate-limiter.ts); and a monthly
 * quota per key beside it (`QuotaCounter`). Callers use them through {@link failurePolicy} and
 * {@link quotaFailurePolicy}, which turn a backend failure into a decision (admit or refuse, by
 * configuration), count refusals and failures, and never throw for a backend.
 *
 * A policy's name is part of its keys' identity: `check('k', ingest, …)` and
 * `check('k', read, …)` use two buckets. A policy whose `limit` changes (a per-key override)
 * keeps its bucket's state, which stays meaningful: GCRA keeps a time, not a count.
 */
import { costProblem, type GcraPolicy, type GcraResult, policyProblem } from '../../domain/gcra.ts';
import type { Logger } from '../logger.ts';
import { type Registry, rateLimitMetrics } from '../metrics.ts';

/** `limit` units per `periodMs` with bursts of up to `burst` (default `limit`), named. */
export interface RateLimitPolicy extends GcraPolicy {
  /** Names the policy in metrics (`limit` label) and headers: one of a few configured names, never a key. */
  name: string;
}

/**
 * Why a check was refused or not judged: `limited` (over the rate), `cost-exceeds-burst` (a cost
 * the bucket can never hold), `unavailable` (the backend failed and the failure policy answered).
 */
export type DecisionReason = 'limited' | 'cost-exceeds-burst' | 'unavailable';

/** The outcome of one check. */
export interface Decision {
  allowed: boolean;
  /** Units a check could take now (after this one, when admitted). */
  remaining: number;
  /** Until the bucket is full again (ms). */
  resetMs: number;
  /**
   * Refused: until the same check would be admitted (ms); `Infinity` when it never would
   * (`cost-exceeds-burst`: no Retry-After, and a gRPC error without RetryInfo). Admitted: 0.
   */
  retryAfterMs: number;
  policy: RateLimitPolicy;
  /** Set when refused, and when admitted without a check (`unavailable`, failing open). */
  reason?: DecisionReason;
}

/** Rate limits per key. */
export interface RateLimiter {
  /** Which adapter, and where (for logs). */
  readonly description: string;
  /**
   * Takes `cost` units (an ingest batch of 500 events costs 500; 0 reads the state) from `key`'s
   * bucket under `policy` when they are there. Adapters reject (UNAVAILABLE) when their backend
   * fails, and throw for an invalid policy or cost.
   */
  check(key: string, policy: RateLimitPolicy, cost: number): Promise<Decision>;
  close(): Promise<void>;
}

/** A take from a shared bucket: the decision on its least, and how many units it took. */
export interface Take {
  decision: Decision;
  taken: number;
}

/**
 * Buckets several processes share (Redis), from which each may take units ahead of its checks
 * (leased-rate-limiter.ts): a take admits when `least` units are there and then takes what is
 * there up to `most`; units taken and not spent are given back.
 */
export interface SharedBuckets {
  readonly description: string;
  /**
   * Takes at least `least` and at most `most` units from `key`'s bucket under `policy`, or
   * nothing (refused: the decision is that on `least`). Rejects (UNAVAILABLE) when the backend fails.
   */
  take(key: string, policy: RateLimitPolicy, least: number, most: number): Promise<Take>;
  /** Gives back `units` taken from `key`'s bucket and not spent. */
  giveBack(key: string, policy: RateLimitPolicy, units: number): Promise<void>;
  close(): Promise<void>;
}

/** At most `limit` units per calendar month (UTC) per key. */
export interface Quota {
  name: string;
  limit: number;
}

/** The outcome of one quota consumption. */
export interface QuotaDecision {
  allowed: boolean;
  /** Units used this month, this call's included when admitted. */
  used: number;
  remaining: number;
  /** Until the month ends (ms). */
  resetMs: number;
  /** Refused: until the month ends (ms). Admitted: 0. */
  retryAfterMs: number;
  quota: Quota;
  /** Set when refused (`quota-exceeded`), and when admitted without a check (`unavailable`). */
  reason?: 'quota-exceeded' | 'unavailable';
}

/** Monthly quotas per key. */
export interface QuotaCounter {
  readonly description: string;
  /** Adds `cost` units to `key`'s month unless that would pass the quota (then nothing is added). */
  consume(key: string, quota: Quota, cost: number): Promise<QuotaDecision>;
  close(): Promise<void>;
}

/** Throws when `policy` or `cost` cannot be checked: a caller's or a configuration's mistake. */
export function assertCheckable(policy: RateLimitPolicy, cost: number): void {
  const problem = policyProblem(policy) ?? costProblem(cost);
  if (problem) throw new TypeError(`rate limit policy ${JSON.stringify(policy.name)}: ${problem}`);
}

/** Throws when `quota` or `cost` cannot be counted. */
export function assertConsumable(quota: Quota, cost: number): void {
  const problem =
    !Number.isSafeInteger(quota.limit) || quota.limit < 0
      ? 'limit must be a non-negative integer'
      : costProblem(cost);
  if (problem) throw new TypeError(`quota ${JSON.stringify(quota.name)}: ${problem}`);
}

/** A domain result as the port's decision. */
export function decisionOf(policy: RateLimitPolicy, result: GcraResult): Decision {
  const decision: Decision = {
    allowed: result.allowed,
    remaining: result.remaining,
    resetMs: result.resetMs,
    retryAfterMs: result.retryAfterMs,
    policy,
  };
  if (result.refusal) decision.reason = result.refusal;
  return decision;
}

/** The decision on a quota of which `used` units are used, `untilEndMs` before the month ends. */
export function quotaDecision(
  quota: Quota,
  allowed: boolean,
  used: number,
  untilEndMs: number,
): QuotaDecision {
  const decision: QuotaDecision = {
    allowed,
    used,
    remaining: Math.max(0, quota.limit - used),
    resetMs: untilEndMs,
    retryAfterMs: allowed ? 0 : untilEndMs,
    quota,
  };
  if (!allowed) decision.reason = 'quota-exceeded';
  return decision;
}

/** The UTC month of `epochMs` as `YYYY-MM`, and when it ends (epoch ms). */
export function monthOf(epochMs: number): { month: string; endMs: number } {
  const d = new Date(epochMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { month: `${y}-${String(m + 1).padStart(2, '0')}`, endMs: Date.UTC(y, m + 1, 1) };
}

/** What to do when the backend fails: admit (`open`) or refuse (`closed`). */
export type FailureMode = 'open' | 'closed';

export interface FailurePolicyOptions {
  mode: FailureMode;
  logger: Logger;
  /** Counts refusals and backend failures there (docs/metrics.md). */
  metrics?: Registry;
  /** The wait a refusal names when failing closed (default 5 s). */
  unavailableRetryAfterMs?: number;
  /** At most one log line per this long about failures (default 60 s); the next one says how many. */
  logEveryMs?: number;
  /** Now, in ms (tests). */
  now?: () => number;
}

const DEFAULT_UNAVAILABLE_RETRY_AFTER_MS = 5_000;
const DEFAULT_LOG_EVERY_MS = 60_000;

/**
 * `limiter` with a decision for every check: a backend failure admits (`open`) or refuses
 * (`closed`, after `unavailableRetryAfterMs`), with reason `unavailable`, is counted in
 * `tally_rate_limit_backend_errors_total`, and is logged once per `logEveryMs` at most; a
 * refusal is counted in `tally_rate_limited_total{limit}`. Throws only for an invalid policy or
 * cost.
 */
export function failurePolicy(limiter: RateLimiter, options: FailurePolicyOptions): RateLimiter {
  const failed = failureHandler(options, limiter.description);
  const limited = options.metrics && rateLimitMetrics(options.metrics).limited;
  const retryAfterMs = options.unavailableRetryAfterMs ?? DEFAULT_UNAVAILABLE_RETRY_AFTER_MS;
  return {
    description: `${limiter.description}, failing ${options.mode}`,
    async check(key, policy, cost) {
      assertCheckable(policy, cost);
      let decision: Decision;
      try {
        decision = await limiter.check(key, policy, cost);
      } catch (error) {
        failed(error, policy.name);
        decision =
          options.mode === 'open'
            ? { allowed: true, remaining: 0, resetMs: 0, retryAfterMs: 0, policy, reason: 'unavailable' }
            : { allowed: false, remaining: 0, resetMs: 0, retryAfterMs, policy, reason: 'unavailable' };
      }
      if (!decision.allowed) limited?.inc({ limit: policy.name });
      return decision;
    },
    close: () => limiter.close(),
  };
}

/** `quotas` with a decision for every call, as {@link failurePolicy} gives for rate limits. */
export function quotaFailurePolicy(quotas: QuotaCounter, options: FailurePolicyOptions): QuotaCounter {
  const failed = failureHandler(options, quotas.description);
  const limited = options.metrics && rateLimitMetrics(options.metrics).limited;
  const retryAfterMs = options.unavailableRetryAfterMs ?? DEFAULT_UNAVAILABLE_RETRY_AFTER_MS;
  return {
    description: `${quotas.description}, failing ${options.mode}`,
    async consume(key, quota, cost) {
      assertConsumable(quota, cost);
      let decision: QuotaDecision;
      try {
        decision = await quotas.consume(key, quota, cost);
      } catch (error) {
        failed(error, quota.name);
        const open = options.mode === 'open';
        decision = {
          allowed: open,
          used: 0,
          remaining: 0,
          resetMs: 0,
          retryAfterMs: open ? 0 : retryAfterMs,
          quota,
          reason: 'unavailable',
        };
      }
      if (!decision.allowed) limited?.inc({ limit: quota.name });
      return decision;
    },
    close: () => quotas.close(),
  };
}

/** Counts a backend failure and logs it, the first at once and then at most once per interval. */
function failureHandler(options: FailurePolicyOptions, description: string) {
  const errors = options.metrics && rateLimitMetrics(options.metrics).backendErrors;
  const now = options.now ?? Date.now;
  const everyMs = options.logEveryMs ?? DEFAULT_LOG_EVERY_MS;
  let lastLogMs = Number.NEGATIVE_INFINITY;
  let unlogged = 0;
  return (error: unknown, limit: string): void => {
    errors?.inc();
    unlogged++;
    const at = now();
    if (at - lastLogMs < everyMs) return;
    lastLogMs = at;
    options.logger.warn(
      options.mode === 'open'
        ? 'rate limit backend failed: admitting without limits'
        : 'rate limit backend failed: refusing',
      { limiter: description, limit, failures: unlogged, error },
    );
    unlogged = 0;
  };
}
