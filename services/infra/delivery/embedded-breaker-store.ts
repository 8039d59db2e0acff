/**
 * Breakers in this process's memory: the domain machine applied to a map, one step at a time
 * (JavaScript runs one at a time, so each step is atomic). For a single sender replica and
 * tests; a restart starts every breaker closed. `states` may be shared by several store handles,
 * as replicas share Redis.
 */
import {
  admit,
  type BreakerConfig,
  type BreakerState,
  CLOSED,
  DEFAULT_BREAKER_CONFIG,
  record,
  validateBreakerConfig,
  windowTotals,
} from '../../domain/circuit-breaker.ts';
import type { BreakerSnapshot, BreakerStore } from './breaker-store.ts';

export interface EmbeddedBreakerStoreOptions {
  config?: BreakerConfig;
  /** The breakers, by destination (default: a map of this store's own). */
  states?: Map<string, BreakerState>;
}

export function snapshotOf(state: BreakerState, nowMs: number, config: BreakerConfig): BreakerSnapshot {
  const { attempts, failures } = windowTotals(state, nowMs, config);
  return {
    phase: state.phase,
    attempts,
    failures,
    consecutiveTimeouts: state.consecutiveTimeouts,
    openUntilMs: state.openUntilMs,
    failingSinceMs: state.failingSinceMs,
    probeSuccesses: state.probeSuccesses,
    opens: state.opens,
  };
}

export function createEmbeddedBreakerStore(options: EmbeddedBreakerStoreOptions = {}): BreakerStore {
  const config = validateBreakerConfig(options.config ?? DEFAULT_BREAKER_CONFIG);
  const states = options.states ?? new Map<string, BreakerState>();
  const put = (destination: string, state: BreakerState) => {
    if (state === CLOSED) states.delete(destination);
    else states.set(destination, state);
  };
  return {
    description: 'embedded (in-process)',
    async admit(destination, nowMs) {
      const step = admit(states.get(destination) ?? CLOSED, nowMs, config);
      put(destination, step.state);
      return {
        admission: step.admission,
        disable: step.disable,
        snapshot: snapshotOf(step.state, nowMs, config),
      };
    },
    async record(destination, signal, nowMs) {
      const step = record(states.get(destination) ?? CLOSED, signal, nowMs, config);
      put(destination, step.state);
      return {
        disable: step.disable,
        snapshot: snapshotOf(step.state, nowMs, config),
        ...(step.transition ? { transition: step.transition } : {}),
      };
    },
    async inspect(destination, nowMs) {
      const state = states.get(destination) ?? CLOSED;
      const { disable } = admit(state, nowMs, config);
      return { disable, snapshot: snapshotOf(state, nowMs, config) };
    },
    async reset(destination) {
      states.delete(destination);
    },
    async ping() {},
    async close() {},
  };
}
