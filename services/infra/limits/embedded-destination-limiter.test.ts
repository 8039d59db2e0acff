import { destinationLimiterContract } from './destination-limiter.contract.ts';
import {
  createEmbeddedDestinationLimiter,
  createEmbeddedDestinationLimitState,
} from './embedded-destination-limiter.ts';

destinationLimiterContract('embedded', async () => {
  const state = createEmbeddedDestinationLimitState();
  return {
    open: async () => createEmbeddedDestinationLimiter({ state }),
    cleanup: async () => {},
  };
});
