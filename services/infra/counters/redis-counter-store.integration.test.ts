/**
 * The counter store contract on a real Redis, plus what only Redis has: the
 * hash-slot layout that keeps each target's script valid on Redis Cluster.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { counterStoreContract } from './counter-store.contract.ts';
import { createRedisCounterStore } from './redis-counter-store.ts';

await requireRealServers();

async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(realServers.redisUrl);
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    await redis.quit();
  }
}

counterStoreContract('redis', async () => {
  const ns = testNamespace();
  return {
    open: async ({ dedupWindowMs }) =>
      createRedisCounterStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix, dedupWindowMs }),
    cleanup: () => deleteKeys(ns.redisPrefix),
  };
});

test('every key of a target shares one hash slot, whatever the target contains', async (t) => {
  const ns = testNamespace();
  const store = createRedisCounterStore({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
    dedupWindowMs: 60_000,
  });
  const redis = new Redis(realServers.redisUrl);
  t.after(async () => {
    await store.close();
    await redis.quit();
    await deleteKeys(ns.redisPrefix);
  });
  await store.apply([{ eventId: 'slot-1', target: 'a}{weird{', type: 'X', value: 1 }]);
  const keys = (await redis.keys(`${ns.redisPrefix}:*`)).filter(
    (k) => !k.includes(':top:') && !k.endsWith(':types'),
  );
  assert.equal(keys.length, 3, keys.join(' '));
  const tags = new Set(keys.map((k) => /\{([^}]*)\}/.exec(k)?.[1]));
  assert.equal(tags.size, 1);
  assert.match([...tags][0] ?? '', /^[A-Za-z0-9_-]{22}$/);
});

// The same contract on a 3-master Redis Cluster: each target's script stays within one slot.
counterStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  return {
    open: async ({ dedupWindowMs }) =>
      createRedisCounterStore({
        clusterNodes: realServers.redisClusterNodes,
        keyPrefix: ns.redisPrefix,
        dedupWindowMs,
      }),
    cleanup: async () => {
      const cluster = new Cluster(
        realServers.redisClusterNodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })),
      );
      try {
        for (const node of cluster.nodes('master')) {
          const keys = await node.keys(`${ns.redisPrefix}:*`);
          for (const key of keys) await node.del(key);
        }
      } finally {
        await cluster.quit();
      }
    },
  };
});
