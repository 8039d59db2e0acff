/**
 * A circuit breaker per webhook destination, as a pure state machine over an injected clock
 * (docs/webhooks.md, "Circuit breaker"). The shared store (infra/delivery/breaker-store.ts) runs
 * the same machine atomically, so every sender replica sees one breaker per destination; its
 * Redis adapter mirrors these functions in Lua and the store contract holds both to the same
 * answers.
 *
 *   closed     attempts go; outcomes are counted in a rolling window of buckets. It opens when,
 *              over the window, at least `minAttempts` were made and failures/attempts ≥
 *              `failureRate`, or after `consecutiveTimeouts` timeouts in a row.
 *   open       attempts wait until `openUntilMs`: `openBaseMs` after the first opening, doubling
 *              with each failed probe up to `openMaxMs`. Late outcomes are ignored.
 *   half-open  one probe at a time (held for `probeLeaseMs` unless its outcome comes first);
 *              `probeSuccesses` successes in a row close it, a failure opens it again.
 * When it has not been closed for `disableAfterMs` (5 days), every answer says `disable`: the
 * caller disables the destination (and `reset`s the breaker when it is enabled again).
 */

export type BreakerSignal = 'success' | 'failure' | 'timeout';
export type BreakerPhase = 'closed' | 'open' | 'half-open';

export interface BreakerConfig {
  /** The rolling window's length, ms (default 60 s); a whole number of buckets. */
  windowMs: number;
  /** A bucket's length, ms (default 10 s). */
  bucketMs: number;
  /** Attempts in the window before the failure rate counts (default 20). */
  minAttempts: number;
  /** Failures/attempts at which it opens, 0 to 1 (default 0.5). */
  failureRate: number;
  /** Timeouts in a row that open it whatever the rate (default 5). */
  consecutiveTimeouts: number;
  /** The first wait before a probe, ms (default 10 s). */
  openBaseMs: number;
  /** The longest wait before a probe, ms (default 10 min). */
  openMaxMs: number;
  /** How long a probe holds the half-open slot when its outcome does not come, ms (default 60 s). */
  probeLeaseMs: number;
  /** Probe successes in a row that close it (default 3). */
  probeSuccesses: number;
  /** Not closed for this long → disable the destination, ms (default 5 days). */
  disableAfterMs: number;
}

export const DEFAULT_BREAKER_CONFIG: BreakerConfig = Object.freeze({
  windowMs: 60_000,
  bucketMs: 10_000,
  minAttempts: 20,
  failureRate: 0.5,
  consecutiveTimeouts: 5,
  openBaseMs: 10_000,
  openMaxMs: 600_000,
  probeLeaseMs: 60_000,
  probeSuccesses: 3,
  disableAfterMs: 5 * 24 * 3_600_000,
});

/** Checks a configuration; throws a message naming the field. */
export function validateBreakerConfig(config: BreakerConfig): BreakerConfig {
  const positive = [
    'windowMs',
    'bucketMs',
    'minAttempts',
    'consecutiveTimeouts',
    'openBaseMs',
    'probeLeaseMs',
    'probeSuccesses',
    'disableAfterMs',
  ] as const;
  for (const field of positive)
    if (!Number.isInteger(config[field]) || config[field] < 1)
      throw new Error(`breaker ${field} is a positive integer`);
  if (config.windowMs % config.bucketMs !== 0) throw new Error('breaker windowMs is a multiple of bucketMs');
  if (!(config.failureRate > 0 && config.failureRate <= 1))
    throw new Error('breaker failureRate is in (0, 1]');
  if (!(config.openMaxMs >= config.openBaseMs)) throw new Error('breaker openMaxMs is at least openBaseMs');
  return config;
}

/** One bucket of the rolling window: `index` = floor(time / bucketMs). */
export interface BreakerBucket {
  index: number;
  attempts: number;
  failures: number;
}

export interface BreakerState {
  phase: BreakerPhase;
  /** Closed: the window's buckets, oldest first (empty otherwise). */
  buckets: BreakerBucket[];
  consecutiveTimeouts: number;
  /** Openings since it was last closed (the probe backoff's exponent). */
  opens: number;
  /** Open: when a probe may go, ms since the epoch (0 otherwise). */
  openUntilMs: number;
  /** Half-open: until when the probe in flight holds the slot (0: none in flight). */
  probeUntilMs: number;
  /** Half-open: probe successes in a row. */
  probeSuccesses: number;
  /** When it last opened from closed (0 while closed): the start of the auto-disable clock. */
  failingSinceMs: number;
}

export const CLOSED: BreakerState = Object.freeze({
  phase: 'closed',
  buckets: [],
  consecutiveTimeouts: 0,
  opens: 0,
  openUntilMs: 0,
  probeUntilMs: 0,
  probeSuccesses: 0,
  failingSinceMs: 0,
}) as BreakerState;

export type Admission = { allowed: true; probe: boolean } | { allowed: false; retryAtMs: number };
export type BreakerTransition = 'opened' | 'reopened' | 'closed';

function shouldDisable(state: BreakerState, nowMs: number, config: BreakerConfig): boolean {
  return state.phase !== 'closed' && nowMs - state.failingSinceMs >= config.disableAfterMs;
}

/** The buckets still inside the window at `nowMs`. */
function liveBuckets(state: BreakerState, nowMs: number, config: BreakerConfig): BreakerBucket[] {
  const oldest = Math.floor(nowMs / config.bucketMs) - config.windowMs / config.bucketMs + 1;
  return state.buckets.filter((b) => b.index >= oldest);
}

/** Attempts and failures in the window at `nowMs`. */
export function windowTotals(state: BreakerState, nowMs: number, config: BreakerConfig) {
  let attempts = 0;
  let failures = 0;
  for (const b of liveBuckets(state, nowMs, config)) {
    attempts += b.attempts;
    failures += b.failures;
  }
  return { attempts, failures };
}

/** Whether an attempt may go now; the half-open slot is taken by the probe it allows. */
export function admit(
  state: BreakerState,
  nowMs: number,
  config: BreakerConfig,
): { state: BreakerState; admission: Admission; disable: boolean } {
  const disable = shouldDisable(state, nowMs, config);
  if (state.phase === 'closed') return { state, admission: { allowed: true, probe: false }, disable };
  if (state.phase === 'open' && nowMs < state.openUntilMs)
    return { state, admission: { allowed: false, retryAtMs: state.openUntilMs }, disable };
  if (state.phase === 'half-open' && nowMs < state.probeUntilMs)
    return { state, admission: { allowed: false, retryAtMs: state.probeUntilMs }, disable };
  const next: BreakerState = {
    ...state,
    phase: 'half-open',
    openUntilMs: 0,
    probeUntilMs: nowMs + config.probeLeaseMs,
  };
  return { state: next, admission: { allowed: true, probe: true }, disable };
}

/** Records an attempt's outcome. */
export function record(
  state: BreakerState,
  signal: BreakerSignal,
  nowMs: number,
  config: BreakerConfig,
): { state: BreakerState; transition?: BreakerTransition; disable: boolean } {
  const failed = signal !== 'success';
  let next: BreakerState;
  let transition: BreakerTransition | undefined;
  if (state.phase === 'open') {
    next = state; // an attempt made before it opened
  } else if (state.phase === 'half-open') {
    if (!failed) {
      const successes = state.probeSuccesses + 1;
      if (successes >= config.probeSuccesses) {
        next = CLOSED;
        transition = 'closed';
      } else {
        next = { ...state, probeSuccesses: successes, probeUntilMs: 0 };
      }
    } else {
      const opens = state.opens + 1;
      next = {
        ...state,
        phase: 'open',
        opens,
        openUntilMs: nowMs + Math.min(config.openMaxMs, config.openBaseMs * 2 ** (opens - 1)),
        probeUntilMs: 0,
        probeSuccesses: 0,
      };
      transition = 'reopened';
    }
  } else {
    const index = Math.floor(nowMs / config.bucketMs);
    const buckets = liveBuckets(state, nowMs, config).map((b) => ({ ...b }));
    let current = buckets.find((b) => b.index === index);
    if (!current) {
      current = { index, attempts: 0, failures: 0 };
      buckets.push(current);
      buckets.sort((a, b) => a.index - b.index);
    }
    current.attempts++;
    if (failed) current.failures++;
    const consecutiveTimeouts = signal === 'timeout' ? state.consecutiveTimeouts + 1 : 0;
    let attempts = 0;
    let failures = 0;
    for (const b of buckets) {
      attempts += b.attempts;
      failures += b.failures;
    }
    if (
      consecutiveTimeouts >= config.consecutiveTimeouts ||
      (attempts >= config.minAttempts && failures >= config.failureRate * attempts)
    ) {
      next = {
        ...CLOSED,
        phase: 'open',
        opens: 1,
        openUntilMs: nowMs + config.openBaseMs,
        failingSinceMs: nowMs,
      };
      transition = 'opened';
    } else {
      next = { ...state, buckets, consecutiveTimeouts };
    }
  }
  return { state: next, ...(transition ? { transition } : {}), disable: shouldDisable(next, nowMs, config) };
}
