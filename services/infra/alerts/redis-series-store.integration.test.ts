import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { createRedisSeriesStore } from './redis-series-store.ts';
import { seriesStoreContract } from './series-store.contract.ts';

await requireRealServers();

seriesStoreContract('redis', async () => {
  const ns = testNamespace();
  return {
    open: async () => createRedisSeriesStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix),
  };
});

// Each series' scripts keep to its one key, so a 3-master Cluster runs the same contract.
seriesStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  return {
    open: async () =>
      createRedisSeriesStore({ clusterNodes: realServers.redisClusterNodes, keyPrefix: ns.redisPrefix }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix, 'cluster'),
  };
});
