import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { breakerStoreContract } from './breaker-store.contract.ts';
import { createRedisBreakerStore } from './redis-breaker-store.ts';

await requireRealServers();

breakerStoreContract('redis', async () => {
  const ns = testNamespace();
  return {
    open: async (config) =>
      createRedisBreakerStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix, config }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix),
  };
});

// Each destination's script keeps to its one key, so a 3-master Cluster runs the same contract.
breakerStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  return {
    open: async (config) =>
      createRedisBreakerStore({
        clusterNodes: realServers.redisClusterNodes,
        keyPrefix: ns.redisPrefix,
        config,
      }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix, 'cluster'),
  };
});
