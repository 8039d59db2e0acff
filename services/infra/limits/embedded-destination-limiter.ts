/**
 * Destination limits in the process, for the embedded mode (one sender) and tests: slot leases
 * in a Map, the rate by the embedded rate limiter (the same GCRA as Redis's). Expired leases are
 * dropped by the acquisitions of their key.
 */
import { type DestinationLimiter, destinationLimiter, type SlotLeases } from './destination-limiter.ts';
import {
  createEmbeddedRateLimiter,
  createEmbeddedRateLimitState,
  type EmbeddedRateLimitState,
} from './embedded-rate-limiter.ts';

/** The state several limiters may share (tests: two senders). */
export interface EmbeddedDestinationLimitState {
  /** key → lease → expiry (ms). */
  readonly slots: Map<string, Map<string, number>>;
  readonly rate: EmbeddedRateLimitState;
}

export function createEmbeddedDestinationLimitState(): EmbeddedDestinationLimitState {
  return { slots: new Map(), rate: createEmbeddedRateLimitState() };
}

export interface EmbeddedDestinationLimiterOptions {
  state?: EmbeddedDestinationLimitState;
  /** Now, in ms (default: the monotonic clock). */
  now?: () => number;
}

export function createEmbeddedDestinationLimiter(
  options: EmbeddedDestinationLimiterOptions = {},
): DestinationLimiter {
  const state = options.state ?? createEmbeddedDestinationLimitState();
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const description = 'embedded (in process)';
  const slots: SlotLeases = {
    description,
    async acquire(key, lease, limit, leaseMs) {
      const at = now();
      let held = state.slots.get(key);
      if (!held) {
        held = new Map();
        state.slots.set(key, held);
      }
      let earliest = Number.POSITIVE_INFINITY;
      for (const [name, until] of held)
        if (until <= at) held.delete(name);
        else earliest = Math.min(earliest, until);
      if (held.size >= limit) return { granted: false, untilExpiryMs: Math.ceil(earliest - at) };
      held.set(lease, at + leaseMs);
      return { granted: true };
    },
    async release(key, lease) {
      const held = state.slots.get(key);
      held?.delete(lease);
      if (held?.size === 0) state.slots.delete(key);
    },
    ping: async () => {},
    close: async () => {},
  };
  const { limiter } = createEmbeddedRateLimiter({
    state: state.rate,
    ...(options.now ? { now: options.now } : {}),
  });
  return destinationLimiter(slots, limiter, description);
}
