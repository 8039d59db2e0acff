/**
 * The destination limiter contract on a real Redis and on the 3-master Redis Cluster, and its
 * key layout: a destination's keys in one hash slot, expiring with their last lease.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { destinationLimiterContract } from './destination-limiter.contract.ts';
import { createRedisDestinationLimiter, slotsKey } from './redis-destination-limiter.ts';
import { bucketKey } from './redis-rate-limiter.ts';

await requireRealServers();

for (const on of ['standalone', 'cluster'] as const) {
  const where =
    on === 'standalone' ? { url: realServers.redisUrl } : { clusterNodes: realServers.redisClusterNodes };
  destinationLimiterContract(on === 'standalone' ? 'redis' : 'redis cluster', async () => {
    const ns = testNamespace();
    return {
      open: async () => createRedisDestinationLimiter({ ...where, keyPrefix: ns.redisPrefix }),
      cleanup: () => deleteRedisKeys(ns.redisPrefix, on),
    };
  });
}

test('a destination’s slots and rate bucket share one hash slot; the slots expire with their last lease', async (t) => {
  const ns = testNamespace();
  const limiter = createRedisDestinationLimiter({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix });
  const redis = new Redis(realServers.redisUrl);
  t.after(async () => {
    await limiter.close();
    await redis.quit();
    await deleteRedisKeys(ns.redisPrefix);
  });
  const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
  const slots = slotsKey(ns.redisPrefix, id);
  const bucket = bucketKey(ns.redisPrefix, 'delivery', id);
  const tag = (k: string) => k.slice(k.indexOf('{'), k.indexOf('}') + 1);
  assert.equal(tag(slots), tag(bucket));
  const grant = await limiter.acquire(id, { concurrency: 2, ratePerSecond: 10 }, 2_000);
  assert.equal(grant.granted, true);
  assert.equal(await redis.zcard(slots), 1);
  const ttl = await redis.pttl(slots);
  assert.ok(ttl > 1_500 && ttl <= 2_001, `${ttl}`);
  assert.ok((await redis.exists(bucket)) === 1, 'the rate bucket holds the start');
  if (grant.granted) await grant.release();
  assert.equal(await redis.zcard(slots), 0);
});
