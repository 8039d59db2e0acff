/**
 * Rate limits and monthly quotas in the process, for the embedded mode: the same GCRA as the
 * Redis adapter (domain/gcra.ts) over a Map of TATs, and a Map of monthly counts. Entries whose
 * time has passed (a TAT behind now is a full bucket; a month over) are swept every
 * `sweepEveryMs` by the calls themselves, so the Maps hold only the keys active within about a
 * period and do not grow without bound. Nothing is kept across restarts: a restart refills
 * every bucket and forgets the month's counts.
 *
 * Time is the process's monotonic clock (`performance.timeOrigin + performance.now()`), so a
 * wall clock stepped back or forth does not move the buckets.
 */
import { gcraCheck } from '../../domain/gcra.ts';
import {
  assertCheckable,
  assertConsumable,
  type Decision,
  decisionOf,
  monthOf,
  type Quota,
  type QuotaCounter,
  type QuotaDecision,
  quotaDecision,
  type RateLimiter,
  type RateLimitPolicy,
} from './rate-limiter.ts';

/** The state of buckets and quotas, which several limiters may share (tests: two gateways). */
export interface EmbeddedRateLimitState {
  /** (policy name, key) → TAT (µs). */
  readonly buckets: Map<string, number>;
  /** (quota name, key, month) → units used, and when the entry may go (epoch ms). */
  readonly months: Map<string, { used: number; expiresMs: number }>;
  /** Entries held, buckets and months. */
  size(): number;
}

/** An empty state. */
export function createEmbeddedRateLimitState(): EmbeddedRateLimitState {
  const buckets = new Map<string, number>();
  const months = new Map<string, { used: number; expiresMs: number }>();
  return { buckets, months, size: () => buckets.size + months.size };
}

export interface EmbeddedRateLimiterOptions {
  /** Shared state (default: a state of its own). */
  state?: EmbeddedRateLimitState;
  /** Now, in epoch ms, fractions allowed (default: the monotonic clock). */
  now?: () => number;
  /** How often calls sweep out passed entries (default 10 s). */
  sweepEveryMs?: number;
}

const DEFAULT_SWEEP_EVERY_MS = 10_000;

export function createEmbeddedRateLimiter(options: EmbeddedRateLimiterOptions = {}): {
  limiter: RateLimiter;
  quotas: QuotaCounter;
} {
  const state = options.state ?? createEmbeddedRateLimitState();
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const sweepEveryMs = options.sweepEveryMs ?? DEFAULT_SWEEP_EVERY_MS;
  let nextSweepMs = now() + sweepEveryMs;
  const sweep = (atMs: number) => {
    if (atMs < nextSweepMs) return;
    nextSweepMs = atMs + sweepEveryMs;
    const atUs = Math.floor(atMs * 1000);
    for (const [key, tat] of state.buckets) if (tat <= atUs) state.buckets.delete(key);
    for (const [key, month] of state.months) if (month.expiresMs <= atMs) state.months.delete(key);
  };
  const description = 'embedded (in process)';

  const limiter: RateLimiter = {
    description,
    async check(key: string, policy: RateLimitPolicy, cost: number): Promise<Decision> {
      assertCheckable(policy, cost);
      const atMs = now();
      sweep(atMs);
      const id = `${policy.name}\0${key}`;
      const stored = state.buckets.get(id);
      const atUs = Math.floor(atMs * 1000);
      const result = gcraCheck(policy, stored, atUs, cost);
      if (result.allowed && result.tatUs > atUs) state.buckets.set(id, result.tatUs);
      return decisionOf(policy, result);
    },
    close: async () => {},
  };

  const quotas: QuotaCounter = {
    description,
    async consume(key: string, quota: Quota, cost: number): Promise<QuotaDecision> {
      assertConsumable(quota, cost);
      const atMs = now();
      sweep(atMs);
      const { month, endMs } = monthOf(atMs);
      const id = `${quota.name}\0${key}\0${month}`;
      const entry = state.months.get(id);
      const used = entry?.used ?? 0;
      if (used + cost > quota.limit) return quotaDecision(quota, false, used, endMs - atMs);
      if (cost > 0) state.months.set(id, { used: used + cost, expiresMs: endMs });
      return quotaDecision(quota, true, used + cost, endMs - atMs);
    },
    close: async () => {},
  };
  return { limiter, quotas };
}
