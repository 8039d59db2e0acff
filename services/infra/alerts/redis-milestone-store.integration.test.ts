import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { milestoneStoreContract } from './milestone-store.contract.ts';
import { createRedisMilestoneStore } from './redis-milestone-store.ts';

await requireRealServers();

milestoneStoreContract('redis', async () => {
  const ns = testNamespace();
  return {
    open: async () => createRedisMilestoneStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix),
  };
});

// Each series' script keeps to its one key, so a 3-master Cluster runs the same contract.
milestoneStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  return {
    open: async () =>
      createRedisMilestoneStore({ clusterNodes: realServers.redisClusterNodes, keyPrefix: ns.redisPrefix }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix, 'cluster'),
  };
});
