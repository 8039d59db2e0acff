import type { BreakerState } from '../../domain/circuit-breaker.ts';
import { breakerStoreContract } from './breaker-store.contract.ts';
import { createEmbeddedBreakerStore } from './embedded-breaker-store.ts';

breakerStoreContract('embedded', async () => {
  // Handles opened on one environment share its breakers, as replicas share Redis.
  const states = new Map<string, BreakerState>();
  return {
    open: async (config) => createEmbeddedBreakerStore({ config, states }),
    cleanup: async () => states.clear(),
  };
});
